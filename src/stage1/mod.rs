//! Stage 1: PID 1 of the bootstrapper.
//!
//! Stages in order (ZFSBootMenu style): early setup, kernel modules, wait
//! for disks and discover, then the menu. PID 1 never exits: whatever goes
//! wrong ends on screen with its cause, with the menu or the rescue shell
//! reachable.

pub mod discover;
mod host;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use vhdboot::config::{Config, Timeout};
use vhdboot::discovery::decisions::{self, Start};
use vhdboot::sys::{console, kmsg, modules, pid1, timeline};
use vhdboot::tui::app::{self, AppOptions};
use vhdboot::tui::executor::execute;
use vhdboot::tui::host::Effect;
use vhdboot::tui::model::Model;
use vhdboot::tui::msg::Msg;
use vhdboot::tui::update::update;

use discover::Discovery;
use host::RealHost;

/// The modules stage 1 needs beyond what coldplug finds for the hardware.
const FS_MODULES: [&str; 3] = ["loop", "ntfs3", "exfat"];

/// The console log level while the menu is up: only emergencies, so that
/// kernel messages do not overwrite the menu (shared/lessons.md).
const MENU_LOGLEVEL: u8 = 1;

/// Puts the terminal back in a state a shell can use. Called by the panic
/// hook, so it must not fail or panic itself.
fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

pub fn run() -> ! {
    let started = timeline::monotonic();
    pid1::install_panic_hook(restore_terminal);
    let mut early = Vec::new();
    for e in pid1::mount_pseudo_filesystems() {
        early.push(format!("early setup: {e}"));
    }
    timeline::mark_at("PID 1 start", started);
    // This must run before any thread starts: it sets TERM.
    if let Err(e) = console::acquire_controlling_tty() {
        early.push(format!("console: {e}"));
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let conf = std::fs::read_to_string("/etc/vhdboot.conf").ok();
    let (config, warnings) = Config::from_sources(conf.as_deref(), &cmdline);
    early.extend(warnings.into_iter().map(|w| format!("config: {w}")));
    let (cols, lines) = console::effective_size((config.columns, config.lines));
    early.push(format!("console size {cols}x{lines}"));
    if let Err(e) = pid1::set_console_loglevel(MENU_LOGLEVEL) {
        early.push(format!("console log level: {e}"));
    }

    let mut discovery = Discovery::new(config.clone(), Path::new(discover::HOSTS_DIR));
    for line in early {
        discovery.note(line);
    }
    load_modules(&mut discovery);
    timeline::mark("modules loaded");
    let snapshot = discovery.settle(|| {
        pid1::reap_zombies();
    });
    timeline::mark("disks settled");
    let mut host = RealHost { discovery };

    let mut pending = Vec::new();
    let (default, countdown) = match decisions::decide_start(&snapshot, &config) {
        Start::Boot(entry) => {
            let cmdline = snapshot
                .entry(entry)
                .map(|e| e.cmdline.clone())
                .unwrap_or_default();
            // Boot at once; if that fails, the menu shows why.
            pending = execute(Effect::Boot { entry, cmdline }, &snapshot, &mut host);
            (Some(entry), None)
        }
        Start::Countdown { entry, seconds } => (Some(entry), Some(seconds)),
        Start::Menu { reason } => {
            if let Some(r) = reason {
                host.discovery.note(r);
            }
            (decisions::find_default(&snapshot, &config), None)
        }
    };
    let countdown = match config.timeout {
        Timeout::Never => None,
        _ => countdown,
    };
    let snapshot = host.discovery.snapshot();
    let mut model = Model::new(snapshot, &config, default, countdown);
    for msg in pending {
        update(&mut model, msg);
    }
    timeline::mark("menu start");
    loop {
        let options = AppOptions {
            size: None,
            fallback_size: config.columns.zip(config.lines),
            inbox: Some(spawn_kmsg_reader()),
            repaint_on_key: true,
        };
        match app::run(&mut model, &mut host, options) {
            Ok(_) => {}
            Err(e) => {
                restore_terminal();
                eprintln!(
                    "\r\nvhdboot: the menu failed: {e}. Starting the rescue shell; exit it to try the menu again.\r"
                );
                let _ = pid1::run_rescue_shell();
            }
        }
    }
}

/// Coldplugs the hardware, then loads the filesystem drivers. A missing
/// module is logged; the menu still comes up and says what it found.
fn load_modules(discovery: &mut Discovery) {
    let release = match nix::sys::utsname::uname() {
        Ok(u) => u.release().to_string_lossy().into_owned(),
        Err(e) => {
            discovery.note(format!("uname failed: {e}; not loading modules"));
            return;
        }
    };
    let root = PathBuf::from("/lib/modules").join(&release);
    let index = match modules::ModuleIndex::load(&root) {
        Ok(i) => i,
        Err(e) => {
            discovery.note(format!(
                "no module index at {}: {e}; relying on built-in drivers",
                root.display()
            ));
            return;
        }
    };
    let report = modules::coldplug(Path::new("/sys"), &index);
    discovery.note(format!(
        "coldplug: {} device(s), inserted [{}], already present {}, {} unmatched",
        report.devices,
        report.inserted.join(", "),
        report.present.len(),
        report.unmatched
    ));
    for (name, e) in &report.failed {
        discovery.note(format!("coldplug: loading {name} failed: {e}"));
    }
    for m in FS_MODULES {
        if let Err(e) = index.load_module(m) {
            discovery.note(format!("loading {m}: {e}"));
        }
    }
}

/// Feeds new kernel log lines to the menu's log view.
fn spawn_kmsg_reader() -> mpsc::Receiver<Msg> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("kmsg".into())
        .spawn(move || {
            let Ok(mut cursor) = kmsg::KmsgCursor::at_start() else {
                return;
            };
            loop {
                if let Ok(records) = cursor.read_new() {
                    for r in records {
                        if tx.send(Msg::Kmsg(r.message)).is_err() {
                            return;
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    rx
}
