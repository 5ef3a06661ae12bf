//! The event loop shared by PID 1 and `vhdboot menu --demo`: read keys and
//! the clock, run `update`, run its effects through the executor, redraw.
//!
//! The terminal is handed back (raw mode off, main screen, cursor shown)
//! around everything that gives the console to someone else: the rescue
//! shell, kexec, reboot and power off.

use crate::tui::executor::execute;
use crate::tui::host::{Effect, Failure, Host};
use crate::tui::keymap::key_to_msg;
use crate::tui::model::Model;
use crate::tui::msg::Msg;
use crate::tui::update::update;
use crate::tui::view::view;
use crossterm::event::{self, Event};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute as queue_now};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use std::collections::VecDeque;
use std::io::{self, Stdout};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The size assumed when the console cannot tell (a serial console reports
/// 0x0, and ratatui then silently draws nothing).
pub const FALLBACK_SIZE: (u16, u16) = (80, 24);

const TICK: Duration = Duration::from_secs(1);
/// How often the inbox is looked at when one is given.
const INBOX_POLL: Duration = Duration::from_millis(200);
/// How often it is looked at while a boot waits for its preload.
const INBOX_POLL_WAITING: Duration = Duration::from_millis(10);

#[derive(Default)]
pub struct AppOptions {
    /// Draw at this size whatever the terminal says (the demo's
    /// `--columns`/`--lines`).
    pub size: Option<(u16, u16)>,
    /// The size to assume when the terminal reports 0x0 or cannot tell
    /// (`vhdboot.columns`/`vhdboot.lines`); 80x24 when None.
    pub fallback_size: Option<(u16, u16)>,
    /// Messages from outside the loop, such as kernel log lines.
    pub inbox: Option<Receiver<Msg>>,
    /// Repaint the whole screen after every key. Kernel messages printed
    /// on the console overwrite the menu behind ratatui's back, so PID 1
    /// sets this (shared/lessons.md, "Console as PID 1").
    pub repaint_on_key: bool,
    /// Runs on every pass of the loop, at least once a second. PID 1 reaps
    /// its zombies here (tini's way), for the whole life of the menu: the
    /// rescue shell's orphans become its children. This layer makes no
    /// syscalls itself, so the face that owns the machine passes it in.
    pub on_idle: Option<Box<dyn FnMut()>>,
}

/// Why the loop ended.
#[derive(Debug)]
pub enum Exit {
    /// The user pressed q in a menu that allows quitting.
    Quit,
}

/// Runs the menu until it is allowed to quit. PID 1's model never allows
/// it, so there this returns only a terminal error.
pub fn run(model: &mut Model, host: &mut dyn Host, mut options: AppOptions) -> io::Result<Exit> {
    let (viewport, fixed_size) = choose_viewport(
        options.size,
        options.fallback_size,
        crossterm::terminal::size(),
    );
    let mut console = Console::open(viewport)?;
    let size = console.size();
    update(model, Msg::Resize(size.0, size.1));
    let mut next_tick = Instant::now() + TICK;
    // The menu is up: a preload of the selection may start at once.
    let mut first = Some(Msg::Shown);
    loop {
        if let Some(on_idle) = options.on_idle.as_mut() {
            on_idle();
        }
        console.draw(model)?;
        let mut timeout = next_tick.saturating_duration_since(Instant::now());
        if options.inbox.is_some() {
            // A boot waiting for its preload reboots as soon as the news
            // arrives, not up to one poll later.
            let poll = if model.waiting_for_preload() {
                INBOX_POLL_WAITING
            } else {
                INBOX_POLL
            };
            timeout = timeout.min(poll);
        }
        let mut msgs: Vec<Msg> = first.take().into_iter().collect();
        if msgs.is_empty() && event::poll(timeout)? {
            match event::read()? {
                Event::Key(k) => {
                    if options.repaint_on_key {
                        model.repaint = true;
                    }
                    msgs.extend(key_to_msg(k));
                }
                Event::Resize(w, h) if !fixed_size && w > 0 && h > 0 => {
                    console.resize(w, h)?;
                    msgs.push(Msg::Resize(w, h));
                }
                _ => {}
            }
        }
        if Instant::now() >= next_tick {
            msgs.push(Msg::Tick);
            // On the schedule, not from now: a tick that came late (a
            // preload's kexec_file_load can hold the only CPU for seconds)
            // must not make "5 s" of countdown last 8.
            next_tick += TICK;
        }
        if let Some(inbox) = &options.inbox {
            msgs.extend(inbox.try_iter());
        }
        let mut queue: VecDeque<Msg> = msgs.into();
        let mut worked = false;
        while let Some(msg) = queue.pop_front() {
            for effect in update(model, msg) {
                if effect == Effect::Quit {
                    if model.settings.can_quit {
                        return Ok(Exit::Quit);
                    }
                    continue;
                }
                // Starting or stopping a preload returns at once: no
                // redraw before it, and the clock runs on.
                let background = matches!(effect, Effect::Preload { .. } | Effect::CancelPreload);
                if !background {
                    // Show "Booting ..." before the work starts.
                    console.draw(model)?;
                    worked = true;
                }
                let mut guarded = SuspendingHost {
                    host: &mut *host,
                    console: &mut console,
                };
                queue.extend(execute(effect, &model.snapshot, &mut guarded));
            }
        }
        if worked {
            // A shell may have run for minutes; start the clock afresh.
            next_tick = Instant::now() + TICK;
        }
    }
}

/// Picks the viewport: the override if given; the terminal's size if it
/// reports one; else a fixed fallback size (configured, or 80x24). Returns
/// whether the size is pinned, in which case resize events are ignored.
pub fn choose_viewport(
    size_override: Option<(u16, u16)>,
    fallback: Option<(u16, u16)>,
    reported: io::Result<(u16, u16)>,
) -> (Viewport, bool) {
    let usable = |s: &(u16, u16)| s.0 > 0 && s.1 > 0;
    let fixed = |(w, h): (u16, u16)| Viewport::Fixed(Rect::new(0, 0, w, h));
    if let Some(size) = size_override.filter(usable) {
        return (fixed(size), true);
    }
    match reported {
        Ok(size) if usable(&size) => (Viewport::Fullscreen, false),
        _ => (
            fixed(fallback.filter(usable).unwrap_or(FALLBACK_SIZE)),
            false,
        ),
    }
}

/// Hands the terminal back in a state a shell can use: raw mode off, the
/// main screen, the cursor shown. The one way out for the menu, PID 1's
/// error path and both panic hooks, so it must not fail or panic itself:
/// a console that cannot be restored is still better handed over than
/// kept.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = queue_now!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// The terminal while the menu owns it.
struct Console {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    active: bool,
}

impl Console {
    fn open(viewport: Viewport) -> io::Result<Console> {
        let mut console = Console {
            terminal: Terminal::with_options(
                CrosstermBackend::new(io::stdout()),
                TerminalOptions { viewport },
            )?,
            active: false,
        };
        console.enter()?;
        Ok(console)
    }

    fn size(&mut self) -> (u16, u16) {
        let area = self.terminal.get_frame().area();
        (area.width, area.height)
    }

    fn resize(&mut self, w: u16, h: u16) -> io::Result<()> {
        self.terminal.resize(Rect::new(0, 0, w, h))
    }

    fn draw(&mut self, model: &mut Model) -> io::Result<()> {
        if model.repaint {
            model.repaint = false;
            self.repaint_all()?;
        }
        self.terminal.draw(|f| view(model, f))?;
        Ok(())
    }

    fn enter(&mut self) -> io::Result<()> {
        enable_raw_mode()?;
        queue_now!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        self.active = true;
        // Whatever ran meanwhile drew over the screen: repaint all of it.
        self.repaint_all()
    }

    /// Clears the screen and makes the next draw repaint every cell.
    /// `Terminal::clear()` would ask the terminal for the cursor position
    /// first, and a serial line with nothing attached never answers, so
    /// the menu would fail on a headless machine. Resizing to the same area
    /// clears and resets ratatui's back buffer without that query.
    fn repaint_all(&mut self) -> io::Result<()> {
        let area = self.terminal.get_frame().area();
        self.terminal.resize(area)
    }

    fn leave(&mut self) {
        if !self.active {
            return;
        }
        self.active = false;
        restore_terminal();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The Host, with the terminal handed back around every call that gives
/// the console away.
struct SuspendingHost<'a> {
    host: &'a mut dyn Host,
    console: &'a mut Console,
}

impl SuspendingHost<'_> {
    fn away<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Host) -> T,
        lost: impl FnOnce(io::Error) -> T,
    ) -> T {
        self.console.leave();
        let out = f(&mut *self.host);
        match self.console.enter() {
            Ok(()) => out,
            Err(e) => lost(e),
        }
    }
}

fn terminal_lost(e: io::Error) -> Failure {
    Failure {
        what: "Could not take the terminal back".into(),
        cause: e.to_string(),
        hint: "Press Ctrl-L to redraw.".into(),
    }
}

impl Host for SuspendingHost<'_> {
    fn load(&mut self, plan: &crate::boot::plan::BootPlan) -> Result<(), Failure> {
        self.host.load(plan)
    }

    fn preload(
        &mut self,
        id: u64,
        plan: &crate::boot::plan::BootPlan,
    ) -> Option<Result<(), Failure>> {
        self.host.preload(id, plan)
    }

    fn cancel_preload(&mut self) {
        self.host.cancel_preload();
    }

    fn exec(&mut self) -> Failure {
        self.away(|h| h.exec(), terminal_lost)
    }

    fn rescue_shell(&mut self) -> Result<(), Failure> {
        self.away(|h| h.rescue_shell(), |e| Err(terminal_lost(e)))
    }

    fn repair(&mut self, plan: &crate::boot::repair::RepairPlan) -> Result<Vec<String>, Failure> {
        self.away(|h| h.repair(plan), |e| Err(terminal_lost(e)))
    }

    fn gather_report(
        &mut self,
    ) -> (
        crate::report::ReportFacts,
        Vec<crate::tui::repair::FatDevice>,
    ) {
        self.host.gather_report()
    }

    fn save_report(
        &mut self,
        target: &crate::tui::repair::SaveTarget,
        text: &str,
    ) -> Result<String, Failure> {
        self.host.save_report(target, text)
    }

    fn rescan(&mut self) -> Result<crate::model::Snapshot, Failure> {
        self.host.rescan()
    }

    fn discard_trial(&mut self, plan: &crate::boot::trial::TrialPlan) -> Result<String, Failure> {
        self.host.discard_trial(plan)
    }

    fn start_merge(
        &mut self,
        plan: &crate::boot::trial::TrialPlan,
    ) -> Result<crate::trial::MergeStatus, Failure> {
        self.host.start_merge(plan)
    }

    fn merge_status(&mut self) -> Result<crate::trial::MergeStatus, Failure> {
        self.host.merge_status()
    }

    fn finish_merge(&mut self) -> Result<String, Failure> {
        self.host.finish_merge()
    }

    fn reboot(&mut self) -> Failure {
        self.away(|h| h.reboot(), terminal_lost)
    }

    fn power_off(&mut self) -> Failure {
        self.away(|h| h.power_off(), terminal_lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_size_console_falls_back_to_80x24() {
        let (v, fixed) = choose_viewport(None, None, Ok((0, 0)));
        assert_eq!(v, Viewport::Fixed(Rect::new(0, 0, 80, 24)));
        assert!(!fixed);
    }

    #[test]
    fn zero_size_console_uses_the_configured_size() {
        let (v, _) = choose_viewport(None, Some((100, 37)), Ok((0, 0)));
        assert_eq!(v, Viewport::Fixed(Rect::new(0, 0, 100, 37)));
    }

    #[test]
    fn configured_size_does_not_override_a_reported_one() {
        let (v, _) = choose_viewport(None, Some((100, 37)), Ok((120, 40)));
        assert_eq!(v, Viewport::Fullscreen);
    }

    #[test]
    fn size_error_falls_back_to_80x24() {
        let (v, _) = choose_viewport(None, None, Err(io::Error::other("no tty")));
        assert_eq!(v, Viewport::Fixed(Rect::new(0, 0, 80, 24)));
    }

    #[test]
    fn size_override_wins_and_is_fixed() {
        let (v, fixed) = choose_viewport(Some((132, 43)), None, Ok((80, 24)));
        assert_eq!(v, Viewport::Fixed(Rect::new(0, 0, 132, 43)));
        assert!(fixed);
    }

    #[test]
    fn reported_size_gives_fullscreen() {
        let (v, fixed) = choose_viewport(None, None, Ok((100, 30)));
        assert_eq!(v, Viewport::Fullscreen);
        assert!(!fixed);
    }
}
