//! The menu's whole state. `update` changes it, `view` draws it; nothing
//! else does either.

use crate::boot::plan::{PlanError, blocker, image_blocker};
use crate::config::Config;
use crate::model::{EntryRef, Snapshot};
use crate::tui::host::Failure;
use crate::tui::keys::Action;
use crate::tui::line_edit::LineEdit;
use crate::tui::lock::{Lock, Secret};

/// The help screen's text.
pub use crate::tui::keys::HELP_TEXT;

/// Most kernel lines kept for the log view; older ones are dropped.
pub const MAX_KMSG_LINES: usize = 500;

/// One line of the main list. Image and entry rows carry the verdict of
/// `boot::plan` on them, judged once when the rows are built, so the list
/// draws what a boot would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A host volume, drawn as a group header.
    Volume { volume: usize },
    /// An image. It is selectable when it has no entries (so its details
    /// and problems show); with several entries it is a header. `blocker`
    /// says why none of its entries can boot.
    Image {
        volume: usize,
        image: usize,
        selectable: bool,
        blocker: Option<PlanError>,
    },
    /// A boot entry. `nested` is false when it is its image's only entry
    /// and so stands for the image on one line. `blocker` says why it
    /// cannot boot with its own command line.
    Entry {
        entry: EntryRef,
        nested: bool,
        blocker: Option<PlanError>,
    },
}

impl Row {
    pub fn is_selectable(&self) -> bool {
        match self {
            Row::Volume { .. } => false,
            Row::Image { selectable, .. } => *selectable,
            Row::Entry { .. } => true,
        }
    }

    /// Why this row cannot boot, as judged by `boot::plan`.
    pub fn blocker(&self) -> Option<&PlanError> {
        match self {
            Row::Volume { .. } => None,
            Row::Image { blocker, .. } | Row::Entry { blocker, .. } => blocker.as_ref(),
        }
    }

    /// The image this row belongs to, if any.
    pub fn image(&self) -> Option<(usize, usize)> {
        match self {
            Row::Volume { .. } => None,
            Row::Image { volume, image, .. } => Some((*volume, *image)),
            Row::Entry { entry, .. } => Some((entry.volume, entry.image)),
        }
    }
}

/// What fills the screen. The error modal sits on top of any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Menu,
    /// Editing the command line of `entry`, for this boot only.
    Editor {
        entry: EntryRef,
        edit: LineEdit,
    },
    Help {
        scroll: usize,
    },
    Log {
        scroll: usize,
    },
    Confirm(PowerAction),
    /// The question before opening image `image` of volume `volume`
    /// read-write (src/tui/repair.rs).
    ConfirmRepair {
        volume: usize,
        image: usize,
    },
    /// The question before keeping or discarding the trial changes of
    /// image `image` of volume `volume` (src/tui/trial.rs).
    ConfirmTrial {
        volume: usize,
        image: usize,
        action: crate::boot::trial::TrialAction,
    },
    /// The support report, `model.report`, scrolled.
    Report {
        scroll: usize,
    },
    /// Choosing where to save the report; `confirming` once Enter picked
    /// `choice` and the y/n question is up.
    ReportSave {
        choice: usize,
        confirming: bool,
    },
    /// The password prompt before `action` (the editor, the shell or a
    /// repair action), drawn over the menu.
    Password {
        action: Action,
        typed: Secret,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
}

/// Settings taken from the configuration once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Draw with ASCII only (serial consoles, fonts without box drawing).
    pub ascii: bool,
    /// `q` leaves the menu. Only the demo allows it: PID 1 never exits.
    pub can_quit: bool,
    /// Where the scan looked, for the empty screen.
    pub search: Vec<String>,
    pub depth: u32,
    /// Prepare the selected entry's boot in the background while the menu
    /// waits (issue 17). Stage 1 turns it on; with it off, Enter loads and
    /// reboots in one step as before.
    pub preload: bool,
}

/// What the status line says while the machine works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Busy {
    Booting(String),
    /// A boot waiting for its preload, with the step the preload is at.
    Preparing {
        title: String,
        step: Option<String>,
    },
    Shell,
    /// An image is open for repair and its shell runs.
    Repair,
    /// The report is being gathered or saved.
    Report,
    Rescanning,
    PowerAction(PowerAction),
    /// Keeping or discarding trial changes, in the words to show.
    Trial(String),
}

/// A merge of trial changes that runs (src/tui/trial.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeWatch {
    /// The image's file name, for the status line.
    pub image: String,
    /// Data sectors left to merge at the first status; percentages count
    /// from there.
    pub start_remaining: Option<u64>,
    pub percent: u8,
    /// The merge is done and the host is removing the store.
    pub finishing: bool,
}

/// A boot prepared in the background: which entry with which line, and how
/// far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preload {
    /// Tells this preload's messages from those of one already cancelled.
    pub id: u64,
    pub entry: EntryRef,
    /// None: the entry's own line, as in `Effect::Boot`.
    pub cmdline: Option<String>,
    pub state: PreloadState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreloadState {
    /// Still reading, checking or loading; `step` is the last one reported.
    Running { step: Option<String> },
    /// The kernel is loaded: a boot only reboots.
    Ready,
    /// It failed; the reason shows when the user boots this entry.
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub snapshot: Snapshot,
    pub settings: Settings,
    /// The main list, derived from the snapshot.
    pub rows: Vec<Row>,
    /// Index into `rows`; always a selectable row when there is one.
    pub selected: usize,
    pub default: Option<EntryRef>,
    /// Seconds left before the default boots by itself.
    pub countdown: Option<u32>,
    pub screen: Screen,
    /// An error shown over the current screen until a key is pressed.
    pub modal: Option<Failure>,
    pub busy: Option<Busy>,
    /// A one-line note in the status line, e.g. after the shell exits.
    pub notice: Option<String>,
    /// Every failure seen, for the log view.
    pub failures: Vec<Failure>,
    pub kmsg: Vec<String>,
    /// The terminal size as last reported.
    pub size: (u16, u16),
    /// Set when the whole screen must be repainted, e.g. after kernel
    /// messages overwrote it; the app loop clears it.
    pub repaint: bool,
    /// The boot being prepared in the background, if any.
    pub preload: Option<Preload>,
    /// The merge of trial changes that runs, if any: keys wait for it.
    pub merge: Option<MergeWatch>,
    /// The id the next preload gets.
    pub next_preload_id: u64,
    /// A boot was asked for while its preload still ran; it reboots when
    /// the preload is ready.
    pub boot_waits: bool,
    /// The selection moved since the last tick; a preload starts only once
    /// it rests, so holding Down does not start one per row.
    pub moved_since_tick: bool,
    /// The support report while it is on screen.
    pub report: Option<crate::tui::repair::ReportShown>,
    /// Whether the machine has EFI variables (one-shot and @saved entries,
    /// the Boot Loader Interface); None where nobody asked (the CLI).
    pub efi_variables: Option<bool>,
    /// The editor and shell lock (`editor`, `password`).
    pub lock: Lock,
}

impl Model {
    /// A menu over `snapshot`. `default` is preselected; `start_countdown`
    /// is the number of seconds before it boots by itself (None: wait).
    pub fn new(
        snapshot: Snapshot,
        config: &Config,
        default: Option<EntryRef>,
        start_countdown: Option<u32>,
    ) -> Model {
        let rows = build_rows(&snapshot);
        let default = default.filter(|r| snapshot.entry(*r).is_some());
        // Counting down to a boot that is sure to fail would only show an
        // error after the wait; the user decides instead.
        let countdown = default
            .filter(|d| blocker(&snapshot, *d).is_none())
            .and(start_countdown);
        let mut model = Model {
            snapshot,
            settings: Settings {
                ascii: config.ascii,
                can_quit: false,
                search: config.search.clone(),
                depth: config.depth,
                preload: false,
            },
            rows,
            selected: 0,
            default,
            countdown,
            screen: Screen::Menu,
            modal: None,
            busy: None,
            notice: None,
            failures: Vec::new(),
            kmsg: Vec::new(),
            size: (80, 24),
            repaint: false,
            preload: None,
            merge: None,
            next_preload_id: 1,
            boot_waits: false,
            moved_since_tick: false,
            report: None,
            efi_variables: None,
            lock: Lock::from_config(config),
        };
        model.selected = default
            .and_then(|d| model.row_of_entry(d))
            .or_else(|| model.first_selectable())
            .unwrap_or(0);
        // A merge cut by a power loss is offered at once: the image does
        // not boot until it is finished.
        model.notice = model
            .snapshot
            .volumes
            .iter()
            .flat_map(|v| &v.images)
            .find(|i| i.trial.is_some_and(|t| t.merging))
            .map(|i| {
                format!(
                    "The merge of {}'s trial changes was cut short: select it and press m to \
                     finish it.",
                    i.name()
                )
            });
        model
    }

    /// Lets `q` leave the menu (demo mode).
    pub fn allow_quit(mut self) -> Model {
        self.settings.can_quit = true;
        self
    }

    /// Prepares boots in the background (stage 1).
    pub fn with_preload(mut self) -> Model {
        self.settings.preload = true;
        self
    }

    /// Whether a boot waits for its preload to finish.
    pub fn waiting_for_preload(&self) -> bool {
        self.boot_waits
    }

    pub fn selected_row(&self) -> Option<Row> {
        self.rows
            .get(self.selected)
            .filter(|r| r.is_selectable())
            .cloned()
    }

    pub fn first_selectable(&self) -> Option<usize> {
        self.rows.iter().position(|r| r.is_selectable())
    }

    pub fn last_selectable(&self) -> Option<usize> {
        self.rows.iter().rposition(|r| r.is_selectable())
    }

    /// Puts the cursor on the first selectable row of image `(volume,
    /// image)`: its only entry, its first entry, or the image itself when
    /// it has none. Leaves the cursor where it is when there is no such row.
    pub fn select_image(&mut self, volume: usize, image: usize) {
        if let Some(row) = self
            .rows
            .iter()
            .position(|r| r.is_selectable() && r.image() == Some((volume, image)))
        {
            self.selected = row;
        }
    }

    pub fn row_of_entry(&self, entry: EntryRef) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| matches!(r, Row::Entry { entry: e, .. } if *e == entry))
    }

    /// The title to show for an entry: its own title, else the image name.
    pub fn entry_title(&self, entry: EntryRef) -> String {
        match (self.snapshot.entry(entry), self.snapshot.image(entry)) {
            (Some(e), _) if !e.title.is_empty() => e.title.clone(),
            (_, Some(i)) => i.name().to_string(),
            _ => "the selected entry".to_string(),
        }
    }

    /// Lines the log view shows: the scan log, every failure with its
    /// cause, then kernel messages.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = self.snapshot.log.clone();
        for f in &self.failures {
            lines.push(format!("error: {}: {}", f.what, f.cause));
            if !f.hint.is_empty() {
                lines.push(format!("  hint: {}", f.hint));
            }
        }
        lines.extend(self.kmsg.iter().map(|l| format!("kernel: {l}")));
        lines
    }
}

/// Lays the snapshot out as list rows: each volume, its images, and the
/// entries of images that have more than one, each with its verdict.
pub fn build_rows(snapshot: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for (v, volume) in snapshot.volumes.iter().enumerate() {
        rows.push(Row::Volume { volume: v });
        for (i, image) in volume.images.iter().enumerate() {
            let entry = |e| {
                let entry = EntryRef {
                    volume: v,
                    image: i,
                    entry: e,
                };
                (entry, blocker(snapshot, entry))
            };
            match image.entries.len() {
                0 => rows.push(Row::Image {
                    volume: v,
                    image: i,
                    selectable: true,
                    blocker: image_blocker(snapshot, v, i),
                }),
                1 => {
                    let (entry, blocker) = entry(0);
                    rows.push(Row::Entry {
                        entry,
                        nested: false,
                        blocker,
                    });
                }
                n => {
                    rows.push(Row::Image {
                        volume: v,
                        image: i,
                        selectable: false,
                        blocker: image_blocker(snapshot, v, i),
                    });
                    for e in 0..n {
                        let (entry, blocker) = entry(e);
                        rows.push(Row::Entry {
                            entry,
                            nested: true,
                            blocker,
                        });
                    }
                }
            }
        }
    }
    rows
}
