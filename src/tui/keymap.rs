//! crossterm key events to `Msg`s. Only presses count: terminals that
//! report releases and repeats would otherwise act twice on one key
//! (shared/lessons.md, "Console as PID 1").

use crate::tui::msg::{Key, Msg};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub fn key_to_msg(ev: KeyEvent) -> Option<Msg> {
    if ev.kind != KeyEventKind::Press {
        return None;
    }
    let key = match ev.code {
        KeyCode::Char(c) if ev.modifiers.contains(KeyModifiers::CONTROL) => {
            Key::Ctrl(c.to_ascii_lowercase())
        }
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Tab => Key::Tab,
        KeyCode::F(n) => Key::F(n),
        _ => return None,
    };
    Some(Msg::Key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    fn ev(code: KeyCode, modifiers: KeyModifiers, kind: KeyEventKind) -> KeyEvent {
        KeyEvent {
            code,
            modifiers,
            kind,
            state: KeyEventState::NONE,
        }
    }

    #[test]
    fn release_and_repeat_are_ignored() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            key_to_msg(ev(KeyCode::Enter, none, KeyEventKind::Release)),
            None
        );
        assert_eq!(
            key_to_msg(ev(KeyCode::Enter, none, KeyEventKind::Repeat)),
            None
        );
    }

    #[test]
    fn press_maps_to_key() {
        let m = key_to_msg(ev(KeyCode::Down, KeyModifiers::NONE, KeyEventKind::Press));
        assert_eq!(m, Some(Msg::Key(Key::Down)));
    }

    #[test]
    fn ctrl_letter_maps_to_ctrl_key() {
        let m = key_to_msg(ev(
            KeyCode::Char('W'),
            KeyModifiers::CONTROL,
            KeyEventKind::Press,
        ));
        assert_eq!(m, Some(Msg::Key(Key::Ctrl('w'))));
    }
}
