//! Every key binding, once (television's `Action`): one table per screen
//! says which keys do what, how the key line at the bottom names it, and
//! how the help screen explains it. `update` asks a table for the action
//! of a key, `view::status` builds the key line from it and the help text
//! is assets/help.txt with the tables' sections filled in, so the three
//! cannot disagree.

use std::sync::LazyLock;

use crate::tui::msg::Key;

/// What a key does, whatever key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    // The main menu.
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    Boot,
    /// Switches the selected image between an immutable and a normal boot.
    Immutable,
    /// Switches the selected image between a trial and a normal boot.
    Trial,
    Edit,
    Shell,
    Rescan,
    Log,
    Help,
    Reboot,
    PowerOff,
    /// Open the selected image for repair, read-only (src/tui/repair.rs).
    Repair,
    /// Open it read-write with a chroot, after a question.
    RepairWrite,
    /// Gather and show the support report.
    Report,
    /// Keep the selected image's trial changes (merge), after a question.
    TrialKeep,
    /// Discard them (delete the .trial file), after a question.
    TrialDiscard,
    /// Only where the menu may quit (`vhdboot menu --demo`).
    Quit,
    /// Works on every screen.
    Redraw,
    // The command-line editor; any other character is typed.
    CursorLeft,
    CursorRight,
    LineStart,
    LineEnd,
    DeleteBefore,
    DeleteUnder,
    DeleteWordBefore,
    DeleteToStart,
    DeleteToEnd,
    BootEdited,
    Cancel,
    // The help and log screens. The key that opened one also closes it.
    ScrollUp,
    ScrollDown,
    ScrollPageUp,
    ScrollPageDown,
    ScrollTop,
    ScrollBottom,
    Back,
    // The reboot and power-off question; any other key says no.
    Confirm,
    // The report screen and its save chooser.
    SaveReport,
    ChooseUp,
    ChooseDown,
    Choose,
    // The password prompt; any other character is typed, never shown.
    Unlock,
}

/// How the key line names a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLabel {
    Text(&'static str),
    /// The up and down arrows, drawn by the theme (ASCII or not).
    UpDown,
}

/// One action of a screen and everything said about it.
#[derive(Debug)]
pub struct Binding {
    pub action: Action,
    pub keys: &'static [Key],
    /// The key line's label and word for it, when the key line shows it.
    /// A pair of actions (left/right) is shown once, on the first.
    pub hint: Option<(KeyLabel, &'static str)>,
    /// The help screen's key column and explanation, when it lists it; a
    /// pair is listed once, on the first.
    pub help: Option<(&'static str, &'static str)>,
}

/// The bindings of one screen.
#[derive(Debug)]
pub struct KeyTable {
    /// In the help screen's order.
    pub bindings: &'static [Binding],
    /// The actions on the key line, most needed first: a narrow screen
    /// cuts the end.
    pub key_line: &'static [Action],
}

impl KeyTable {
    /// The action of `key` on this screen, if it has one.
    pub fn action(&self, key: Key) -> Option<Action> {
        self.bindings
            .iter()
            .find(|b| b.keys.contains(&key))
            .map(|b| b.action)
    }

    /// The key line's entries, in its order.
    pub fn hints(&self) -> impl Iterator<Item = (Action, KeyLabel, &'static str)> + '_ {
        self.key_line.iter().filter_map(|&action| {
            self.bindings
                .iter()
                .find(|b| b.action == action)
                .and_then(|b| b.hint)
                .map(|(label, what)| (action, label, what))
        })
    }

    /// The help screen's lines for this table, one per listed binding.
    fn help_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.bindings
            .iter()
            .filter_map(|b| b.help)
            .map(|(keys, what)| format!("  {keys:<HELP_KEY_WIDTH$}{what}"))
    }
}

/// The width of the help screen's key column.
const HELP_KEY_WIDTH: usize = 18;

const fn bind(
    action: Action,
    keys: &'static [Key],
    hint: Option<(KeyLabel, &'static str)>,
    help: Option<(&'static str, &'static str)>,
) -> Binding {
    Binding {
        action,
        keys,
        hint,
        help,
    }
}

const fn text(label: &'static str, what: &'static str) -> Option<(KeyLabel, &'static str)> {
    Some((KeyLabel::Text(label), what))
}

use Action as A;
use Key as K;

/// The main menu (and the reboot question drawn over it).
pub const MENU: KeyTable = KeyTable {
    bindings: &[
        bind(
            A::Up,
            &[K::Up, K::Char('k')],
            None,
            Some(("Up/Down, j/k", "move between entries")),
        ),
        bind(A::Down, &[K::Down, K::Char('j')], None, None),
        bind(
            A::PageUp,
            &[K::PageUp],
            None,
            Some(("PgUp/PgDn", "move by a page")),
        ),
        bind(A::PageDown, &[K::PageDown], None, None),
        bind(
            A::First,
            &[K::Home, K::Char('g')],
            None,
            Some(("Home/End, g/G", "first / last entry")),
        ),
        bind(A::Last, &[K::End, K::Char('G')], None, None),
        bind(
            A::Boot,
            &[K::Enter],
            text("Enter", "boot"),
            Some(("Enter", "boot the selected entry")),
        ),
        bind(
            A::Immutable,
            &[K::Char('i')],
            None,
            Some(("i", "immutable on/off: changes kept in RAM, lost at reboot")),
        ),
        bind(
            A::Trial,
            &[K::Char('t')],
            None,
            Some(("t", "trial on/off: changes kept in a .trial file beside it")),
        ),
        bind(
            A::TrialKeep,
            &[K::Char('m')],
            None,
            Some((
                "m",
                "keep the trial changes: merge them into the image (asks)",
            )),
        ),
        bind(
            A::TrialDiscard,
            &[K::Char('x')],
            None,
            Some((
                "x",
                "discard the trial changes: delete the .trial file (asks)",
            )),
        ),
        bind(
            A::Edit,
            &[K::Char('e')],
            text("e", "edit"),
            Some(("e", "edit the kernel command line (this boot only)")),
        ),
        bind(
            A::Shell,
            &[K::Char('s')],
            text("s", "shell"),
            Some(("s", "rescue shell; type exit to come back")),
        ),
        bind(
            A::Rescan,
            &[K::Char('r')],
            text("r", "rescan"),
            Some(("r", "scan the disks again")),
        ),
        bind(
            A::Log,
            &[K::Char('l')],
            text("l", "log"),
            Some(("l", "log: what the scan did, errors and kernel messages")),
        ),
        bind(
            A::Help,
            &[K::Char('h'), K::Char('?'), K::F(1)],
            text("?", "help"),
            Some(("h, ?, F1", "this help")),
        ),
        bind(
            A::Repair,
            &[K::Char('o')],
            text("o", "repair"),
            Some(("o", "open the image for repair: read-only mounts, a shell")),
        ),
        bind(
            A::RepairWrite,
            &[K::Char('w')],
            None,
            Some((
                "w",
                "open it read-write with a chroot (asks; safe host only)",
            )),
        ),
        bind(
            A::Report,
            &[K::Char('d')],
            text("d", "report"),
            Some((
                "d",
                "support report: read it, save it to a stick or the ESP",
            )),
        ),
        bind(
            A::Reboot,
            &[K::Char('b')],
            text("b", "reboot"),
            Some(("b", "reboot (asks first)")),
        ),
        bind(
            A::PowerOff,
            &[K::Char('p')],
            text("p", "power off"),
            Some(("p", "power off (asks first)")),
        ),
        bind(
            A::Quit,
            &[K::Char('q'), K::Ctrl('c')],
            text("q", "quit"),
            None,
        ),
        bind(
            A::Redraw,
            &[K::Ctrl('l')],
            None,
            Some(("Ctrl-L", "redraw the screen")),
        ),
    ],
    key_line: &[
        A::Boot,
        A::Edit,
        A::Shell,
        A::Help,
        A::Repair,
        A::Report,
        // The line is cut where the screen ends (view::status::key_line),
        // so the keys after the power keys are the ones a narrow screen
        // leaves to the help.
        A::Reboot,
        A::PowerOff,
        A::Rescan,
        A::Log,
        A::Quit,
    ],
};

/// The kernel command-line editor.
pub const EDITOR: KeyTable = KeyTable {
    bindings: &[
        bind(
            A::CursorLeft,
            &[K::Left, K::Ctrl('b')],
            None,
            Some(("Left/Right", "move the cursor")),
        ),
        bind(A::CursorRight, &[K::Right, K::Ctrl('f')], None, None),
        bind(
            A::LineStart,
            &[K::Home, K::Ctrl('a')],
            text("^A/^E", "start/end"),
            Some(("Home/End, ^A/^E", "start / end of the line")),
        ),
        bind(A::LineEnd, &[K::End, K::Ctrl('e')], None, None),
        bind(
            A::DeleteBefore,
            &[K::Backspace, K::Ctrl('h')],
            None,
            Some(("Backspace/Delete", "delete before / under the cursor")),
        ),
        bind(A::DeleteUnder, &[K::Delete, K::Ctrl('d')], None, None),
        bind(
            A::DeleteWordBefore,
            &[K::Ctrl('w')],
            text("^W", "del word"),
            Some(("^W", "delete the word before the cursor")),
        ),
        bind(
            A::DeleteToStart,
            &[K::Ctrl('u')],
            text("^U/^K", "del to start/end"),
            Some(("^U / ^K", "delete to the start / to the end")),
        ),
        bind(A::DeleteToEnd, &[K::Ctrl('k')], None, None),
        bind(
            A::BootEdited,
            &[K::Enter],
            text("Enter", "boot"),
            Some(("Enter", "boot with the edited line")),
        ),
        bind(
            A::Cancel,
            &[K::Esc],
            text("Esc", "cancel"),
            Some(("Esc", "cancel and keep the entry's own line")),
        ),
    ],
    key_line: &[
        A::BootEdited,
        A::Cancel,
        A::LineStart,
        A::DeleteWordBefore,
        A::DeleteToStart,
    ],
};

/// The password prompt before a locked action.
pub const PROMPT: KeyTable = KeyTable {
    bindings: &[
        bind(A::Unlock, &[K::Enter], text("Enter", "unlock"), None),
        bind(A::Cancel, &[K::Esc], text("Esc", "cancel"), None),
        bind(A::DeleteBefore, &[K::Backspace, K::Ctrl('h')], None, None),
        bind(A::DeleteToStart, &[K::Ctrl('u')], text("^U", "clear"), None),
    ],
    key_line: &[A::Unlock, A::Cancel, A::DeleteToStart],
};

/// The help and log screens.
pub const PAGER: KeyTable = KeyTable {
    bindings: &[
        bind(
            A::ScrollUp,
            &[K::Up, K::Char('k')],
            Some((KeyLabel::UpDown, "scroll")),
            None,
        ),
        bind(A::ScrollDown, &[K::Down, K::Char('j')], None, None),
        bind(
            A::ScrollPageUp,
            &[K::PageUp],
            text("PgUp/PgDn", "page"),
            None,
        ),
        bind(A::ScrollPageDown, &[K::PageDown, K::Char(' ')], None, None),
        bind(A::ScrollTop, &[K::Home, K::Char('g')], None, None),
        bind(A::ScrollBottom, &[K::End, K::Char('G')], None, None),
        bind(
            A::Back,
            &[K::Esc, K::Enter, K::Char('q')],
            text("Esc", "back"),
            None,
        ),
    ],
    key_line: &[A::ScrollUp, A::ScrollPageUp, A::Back],
};

/// The support report: scrolled as the log is, with a key to save it.
pub const REPORT: KeyTable = KeyTable {
    bindings: &[
        bind(
            A::ScrollUp,
            &[K::Up, K::Char('k')],
            Some((KeyLabel::UpDown, "scroll")),
            None,
        ),
        bind(
            A::ScrollPageUp,
            &[K::PageUp],
            text("PgUp/PgDn", "page"),
            None,
        ),
        bind(A::SaveReport, &[K::Char('w')], text("w", "save"), None),
        bind(
            A::Back,
            &[K::Esc, K::Enter, K::Char('q')],
            text("Esc", "back"),
            None,
        ),
    ],
    key_line: &[A::ScrollUp, A::ScrollPageUp, A::SaveReport, A::Back],
};

/// Choosing where the report goes.
pub const SAVE: KeyTable = KeyTable {
    bindings: &[
        bind(
            A::ChooseUp,
            &[K::Up, K::Char('k')],
            Some((KeyLabel::UpDown, "choose")),
            None,
        ),
        bind(A::ChooseDown, &[K::Down, K::Char('j')], None, None),
        bind(A::Choose, &[K::Enter], text("Enter", "save here"), None),
        bind(A::Back, &[K::Esc, K::Char('q')], text("Esc", "back"), None),
    ],
    key_line: &[A::ChooseUp, A::Choose, A::Back],
};

/// The reboot and power-off question.
pub const CONFIRM: KeyTable = KeyTable {
    bindings: &[bind(A::Confirm, &[K::Char('y'), K::Char('Y')], None, None)],
    key_line: &[],
};

/// The help screen: assets/help.txt with each `{keys:<table>}` line
/// replaced by that table's help lines.
pub static HELP_TEXT: LazyLock<String> =
    LazyLock::new(|| fill_help(include_str!("../../assets/help.txt")));

fn fill_help(template: &str) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    for line in template.lines() {
        let table = match line.trim() {
            "{keys:menu}" => Some(&MENU),
            "{keys:editor}" => Some(&EDITOR),
            _ => None,
        };
        match table {
            Some(table) => {
                for help in table.help_lines() {
                    out.push_str(&help);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_has_two_actions_on_one_screen() {
        for table in [&MENU, &EDITOR, &PROMPT, &PAGER, &CONFIRM, &REPORT, &SAVE] {
            for (i, a) in table.bindings.iter().enumerate() {
                for b in table.bindings.iter().skip(i + 1) {
                    for key in a.keys {
                        assert!(
                            !b.keys.contains(key),
                            "{key:?} is bound to {:?} and {:?}",
                            a.action,
                            b.action
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_key_line_action_has_a_hint() {
        for table in [&MENU, &EDITOR, &PROMPT, &PAGER, &CONFIRM, &REPORT, &SAVE] {
            assert_eq!(table.hints().count(), table.key_line.len());
        }
    }

    #[test]
    fn help_text_has_every_section_filled_in() {
        assert!(!HELP_TEXT.contains("{keys:"), "{}", *HELP_TEXT);
        assert!(HELP_TEXT.contains("  Up/Down, j/k      move between entries\n"));
        assert!(HELP_TEXT.contains("  Backspace/Delete  delete before / under the cursor\n"));
    }
}
