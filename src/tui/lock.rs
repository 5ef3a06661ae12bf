//! The lock on the menu's powerful actions: the command-line editor, the
//! rescue shell and the repair actions. One function, [`gated`], says
//! whether an action may run, is turned off, or waits for the password;
//! `update` sends every such action through it.
//!
//! Once the right password is typed it holds for the whole menu, until
//! the menu has been left alone for [`UNLOCK_IDLE_SECONDS`]. That is
//! sudo's timestamp, which users know: someone repairing a system opens
//! the shell, the editor and the shell again without retyping, and a
//! machine walked away from locks itself. GRUB's superusers type the
//! password for every edit, which punishes the admin for trying a second
//! command line; systemd-boot has no password at all.
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::password::{MAX_LENGTH, Password};
use crate::tui::keys::Action;
use std::fmt;

/// Seconds without a key press after which an unlocked menu locks again.
pub const UNLOCK_IDLE_SECONDS: u32 = 300;

/// The longest wait after wrong passwords, in seconds.
pub const MAX_RETRY_WAIT: u32 = 60;

/// What the lock says about an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Turned off in the configuration; the text says so to the user.
    Off(String),
    /// The password prompt comes first.
    NeedsPassword,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// `editor = no` turns the editor off whatever the password.
    pub editor: bool,
    pub password: Option<Password>,
    /// Seconds of idleness left before the unlock lapses; None while
    /// locked.
    pub unlocked_for: Option<u32>,
    /// Wrong passwords since the last right one.
    pub failures: u32,
    /// Seconds before the prompt takes another try.
    pub retry_in: u32,
}

/// The actions behind the password: the editor, the shell, the two
/// repair actions (each opens a root shell on the image), and keeping or
/// discarding trial changes (each writes to the host volume).
pub fn needs_password(action: Action) -> bool {
    matches!(
        action,
        Action::Edit
            | Action::Shell
            | Action::Repair
            | Action::RepairWrite
            | Action::TrialKeep
            | Action::TrialDiscard
    )
}

/// Whether `action` may run now.
pub fn gated(lock: &Lock, action: Action) -> Gate {
    if action == Action::Edit && !lock.editor {
        return Gate::Off(
            "The command-line editor is turned off (editor = no); entries boot with their own \
             command line."
                .into(),
        );
    }
    if !needs_password(action) || lock.password.is_none() || lock.unlocked_for.is_some() {
        return Gate::Open;
    }
    Gate::NeedsPassword
}

/// Why a typed password opened nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Typed before the wait after the last wrong one was over.
    TooSoon { seconds: u32 },
    /// Wrong; the next try waits this long.
    Wrong { wait: u32 },
}

impl Lock {
    pub fn from_config(config: &Config) -> Lock {
        Lock {
            editor: config.editor,
            password: config.password.clone(),
            unlocked_for: None,
            failures: 0,
            retry_in: 0,
        }
    }

    /// Checks a typed password; the right one unlocks.
    pub fn try_password(&mut self, typed: &Secret) -> Result<(), Refused> {
        if self.retry_in > 0 {
            return Err(Refused::TooSoon {
                seconds: self.retry_in,
            });
        }
        if self.password.as_ref().is_some_and(|p| p.matches(&typed.0)) {
            self.failures = 0;
            self.unlocked_for = Some(UNLOCK_IDLE_SECONDS);
            return Ok(());
        }
        self.failures = self.failures.saturating_add(1);
        // 2, 4, 8, ... seconds up to a minute: a typo costs little, a
        // guessing attack a minute a guess.
        let wait = 2u32
            .checked_shl(self.failures.saturating_sub(1).min(31))
            .unwrap_or(MAX_RETRY_WAIT)
            .min(MAX_RETRY_WAIT);
        self.retry_in = wait;
        Err(Refused::Wrong { wait })
    }

    /// One second passed.
    pub fn tick(&mut self) {
        self.retry_in = self.retry_in.saturating_sub(1);
        self.unlocked_for = match self.unlocked_for {
            Some(left) if left > 1 => Some(left - 1),
            _ => None,
        };
    }

    /// A key was pressed: an unlocked menu stays unlocked.
    pub fn touched(&mut self) {
        if self.unlocked_for.is_some() {
            self.unlocked_for = Some(UNLOCK_IDLE_SECONDS);
        }
    }
}

/// A password being typed. It is never drawn (the prompt shows one bullet
/// per character) and never printed, not even by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn push(&mut self, c: char) {
        if self.0.chars().count() < MAX_LENGTH {
            self.0.push(c);
        }
    }

    pub fn pop(&mut self) {
        self.0.pop();
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Characters typed, for the bullets.
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret(text.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} characters)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::hash;

    fn locked() -> Lock {
        let config = Config {
            password: Some(Password::from_setting(&hash("pw", &[7; 12]).unwrap())),
            ..Config::default()
        };
        Lock::from_config(&config)
    }

    #[test]
    fn without_a_password_everything_is_open() {
        let lock = Lock::from_config(&Config::default());
        assert_eq!(gated(&lock, Action::Edit), Gate::Open);
        assert_eq!(gated(&lock, Action::Shell), Gate::Open);
    }

    #[test]
    fn editor_off_is_off_even_when_unlocked() {
        let mut lock = locked();
        lock.editor = false;
        lock.try_password(&"pw".into()).unwrap();
        assert!(matches!(gated(&lock, Action::Edit), Gate::Off(_)));
        assert_eq!(gated(&lock, Action::Shell), Gate::Open);
    }

    #[test]
    fn a_password_guards_editor_and_shell_only() {
        let lock = locked();
        assert_eq!(gated(&lock, Action::Edit), Gate::NeedsPassword);
        assert_eq!(gated(&lock, Action::Shell), Gate::NeedsPassword);
        assert_eq!(gated(&lock, Action::Boot), Gate::Open);
        assert_eq!(gated(&lock, Action::Rescan), Gate::Open);
    }

    #[test]
    fn wrong_passwords_wait_longer_each_time_up_to_a_minute() {
        let mut lock = locked();
        let mut waits = Vec::new();
        for _ in 0..8 {
            match lock.try_password(&"nope".into()) {
                Err(Refused::Wrong { wait }) => waits.push(wait),
                other => unreachable!("{other:?}"),
            }
            assert_eq!(
                lock.try_password(&"pw".into()),
                Err(Refused::TooSoon {
                    seconds: lock.retry_in
                }),
                "the right password waits too"
            );
            for _ in 0..lock.retry_in {
                lock.tick();
            }
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(lock.try_password(&"pw".into()), Ok(()));
        assert_eq!(lock.failures, 0);
    }

    #[test]
    fn the_unlock_lapses_after_five_idle_minutes_and_keys_renew_it() {
        let mut lock = locked();
        lock.try_password(&"pw".into()).unwrap();
        for _ in 0..UNLOCK_IDLE_SECONDS - 1 {
            lock.tick();
        }
        lock.touched();
        for _ in 0..UNLOCK_IDLE_SECONDS - 1 {
            lock.tick();
        }
        assert_eq!(gated(&lock, Action::Shell), Gate::Open);
        lock.tick();
        assert_eq!(gated(&lock, Action::Shell), Gate::NeedsPassword);
        lock.touched();
        assert_eq!(gated(&lock, Action::Shell), Gate::NeedsPassword);
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(7 characters)");
    }
}
