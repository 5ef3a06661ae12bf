//! Stage 1: PID 1 of the bootstrapper.
//!
//! Stages in order (ZFSBootMenu style): early setup, kernel modules, wait
//! for disks and discover, then the menu. PID 1 never exits: whatever goes
//! wrong ends on screen with its cause, with the menu or the rescue shell
//! reachable.

mod host;
mod keymap;
mod loader_vars;
mod locked_shell;
mod repair;
mod trial;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use vhdboot::boot::plan::{blocker, image_blocker};
use vhdboot::config::{Config, Timeout};
use vhdboot::discovery::decisions::{self, Start};
use vhdboot::model::MountState;
use vhdboot::model::Snapshot;
use vhdboot::modprobe;
use vhdboot::sys::{console, efivars, kmsg, pid1, timeline};
use vhdboot::terminal_text;
use vhdboot::tui::app::{self, AppOptions};
use vhdboot::tui::executor::execute;
use vhdboot::tui::host::{Effect, Failure, Host};
use vhdboot::tui::model::Model;
use vhdboot::tui::msg::Msg;
use vhdboot::tui::update::update;

use crate::live_scan::{self, Discovery};
use host::RealHost;
use loader_vars::LoaderVars;
pub use locked_shell::locked_shell_forever;

/// The modules stage 1 needs beyond what coldplug finds for the hardware.
const FS_MODULES: [&str; 3] = ["loop", "ntfs3", "exfat"];

/// The console log level while the menu is up: only emergencies, so that
/// kernel messages do not overwrite the menu (shared/lessons.md).
const MENU_LOGLEVEL: u8 = 1;

/// Says why nothing can boot, one line per finding, or None when some
/// entry can boot.
fn nothing_bootable(snapshot: &Snapshot) -> Option<Vec<String>> {
    let bootable = decisions::all_entries(snapshot).any(|r| blocker(snapshot, r).is_none());
    if bootable {
        return None;
    }
    let mut why = vec!["vhdboot: nothing bootable was found.".to_string()];
    if snapshot.volumes.is_empty() {
        why.push(
            "  No NTFS or exFAT volume was found. Check that the disk is attached and its \
             controller's driver is in this kernel (lsmod, dmesg in the shell)."
                .to_string(),
        );
    }
    for (vi, v) in snapshot.volumes.iter().enumerate() {
        let name = format!("{} ({})", v.display_name(), v.device.display());
        if let MountState::Refused { reason } = &v.mount {
            why.push(format!(
                "  {name}: the read-only mount was refused: {reason}"
            ));
        }
        if !v.badges.is_empty() {
            let badges: Vec<String> = v
                .badges
                .iter()
                .map(|b| format!("[{}]", b.label()))
                .collect();
            why.push(format!("  {name}: {}", badges.join(" ")));
        }
        if v.images.is_empty() && !matches!(v.mount, MountState::Refused { .. }) {
            why.push(format!("  {name}: no .vhd images found"));
        }
        for (ii, img) in v.images.iter().enumerate() {
            // The judge's own words: the host's refusal comes before the
            // image's problems, as when booting it.
            match image_blocker(snapshot, vi, ii) {
                Some(refusal) => why.push(format!("  {name}: {}: {refusal}", img.path)),
                None if img.entries.is_empty() => {
                    why.push(format!("  {name}: {}: no boot entries", img.path))
                }
                None => {}
            }
        }
    }
    why.push(
        "vhdboot: starting the rescue shell. Exit it (exit or Ctrl-D) for the menu, where r rescans."
            .to_string(),
    );
    Some(why)
}

pub fn run() -> ! {
    let started = timeline::monotonic();
    pid1::install_panic_hook(app::restore_terminal);
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
    pid1::set_panic_shell_locked(config.password.is_some());
    let (cols, lines) = console::effective_size((config.columns, config.lines));
    early.push(format!("console size {cols}x{lines}"));
    if let Err(e) = pid1::set_console_loglevel(MENU_LOGLEVEL) {
        early.push(format!("console log level: {e}"));
    }
    // Before any shell or prompt, and before any thread (keymap::load).
    // A layout that did not load is said on the menu's status line too.
    let keymap_problem = config
        .keymap
        .as_deref()
        .and_then(|name| match keymap::load(name) {
            Ok(()) => {
                early.push(format!("keyboard layout {name} loaded"));
                None
            }
            Err(e) => {
                early.push(format!("keymap: {e}"));
                Some(e.to_string())
            }
        });

    let mut discovery = Discovery::new(config.clone(), Path::new(live_scan::HOSTS_DIR));
    for line in early {
        discovery.note(line);
    }
    let mut hotplug = load_modules(&mut discovery);
    match pid1::mount_efivarfs() {
        Some(Err(e)) => discovery.note(format!("EFI variables: {e}")),
        Some(Ok(())) => discovery.reread_secure_boot(),
        None => {}
    }
    timeline::mark("modules loaded");
    // Devices behind a bus that appear while we wait (a USB stick
    // enumerates after its controller's driver loaded) get their drivers
    // here, so their disks can still show up before the deadline.
    let mut late = Vec::new();
    let snapshot = discovery.settle(|| {
        pid1::reap_zombies();
        if let Some(plug) = hotplug.as_mut() {
            late.extend(coldplug_again(plug));
        }
    });
    for line in late {
        discovery.note(line);
    }
    timeline::mark("disks settled");
    if let Some(point) = config.failpoint {
        point.arm();
        discovery.note(format!("{point}: {} (test only)", point.effect()));
    }
    let mut loader = LoaderVars::new(Path::new(efivars::EFIVARS), started, config.default_saved);
    let (remembered, notes) = loader.read_remembered();
    for line in notes {
        discovery.note(line);
    }
    // The menu's inbox is given to the preloads when the menu starts.
    let mut host = RealHost {
        discovery,
        preloads: host::Preloads::new(mpsc::channel().0),
        loader,
        merge: None,
        hotplug,
    };
    // Nothing to choose from: say why, then go straight to the shell
    // (ZFSBootMenu does the same when it finds no pool). The menu follows
    // when the shell exits.
    if let Some(why) = nothing_bootable(&snapshot) {
        for line in &why {
            host.discovery.note(line.clone());
            // The lines name labels and paths from the disks.
            eprint!("{}\r\n", terminal_text::escape_controls(line));
        }
        // A password locks the shell (tui::lock): the menu follows at
        // once, and its `s` asks for it, so pulling the disks out is no
        // way around the lock.
        if config.password.is_some() {
            eprint!("The rescue shell is locked by a password; press s in the menu.\r\n");
        } else if let Err(e) = pid1::run_rescue_shell() {
            host.discovery.note(format!("rescue shell: {e}"));
        }
    }

    let mut pending = Vec::new();
    let decision = decisions::decide_start_remembered(&snapshot, &config, &remembered);
    for note in decision.notes {
        host.discovery.note(note);
    }
    let (default, countdown) = match decision.start {
        Start::Boot(entry) => {
            // Boot at once, with the entry's own line; if that fails, the
            // menu shows why.
            let boot = Effect::Boot {
                entry,
                cmdline: None,
            };
            pending = execute(boot, &snapshot, &mut host);
            (Some(entry), None)
        }
        Start::Countdown { entry, seconds } => (Some(entry), Some(seconds)),
        Start::Menu { reason } => {
            if let Some(r) = reason {
                host.discovery.note(r.clone());
                // The menu opens with the reason on screen, not only in the
                // log view: vhdboot.conf promises that "the menu says why".
                pending.push(Msg::BootFailed(Failure {
                    what: "The default entry did not start".into(),
                    cause: r,
                    hint: "Pick another entry, fix the image, or press l for the scan log.".into(),
                }));
            }
            (decision.default, None)
        }
    };
    let countdown = match config.timeout {
        Timeout::Never => None,
        _ => countdown,
    };
    let snapshot = host.discovery.snapshot();
    let mut model = Model::new(snapshot, &config, default, countdown).with_preload();
    model.efi_variables = Some(host.loader.available());
    if let Some(problem) = keymap_problem {
        model.notice = Some(problem);
    }
    if default.is_none()
        && let Some((volume, image)) = decisions::default_image(&model.snapshot, &config)
    {
        model.select_image(volume, image);
    }
    for msg in pending {
        update(&mut model, msg);
    }
    timeline::mark("menu start");
    loop {
        // One inbox per menu run: kernel log lines and the preloads' news.
        let (sender, inbox) = mpsc::channel();
        spawn_kmsg_reader(sender.clone());
        host.preloads.replace_inbox(sender);
        let options = AppOptions {
            size: None,
            fallback_size: config.columns.zip(config.lines),
            inbox: Some(inbox),
            repaint_on_key: true,
            on_idle: Some(Box::new(|| {
                pid1::reap_zombies();
            })),
        };
        match app::run(&mut model, &mut host, options) {
            Ok(_) => {}
            Err(e) => {
                // The inbox went with the failed menu: no preload's news
                // can reach the next one, so none is left running.
                host.cancel_preload();
                model.preload = None;
                model.boot_waits = false;
                model.busy = None;
                app::restore_terminal();
                eprintln!(
                    "\r\nvhdboot: the menu failed: {e}. Starting the rescue shell; exit it to try the menu again.\r"
                );
                match &config.password {
                    // An empty line at its prompt tries the menu again.
                    Some(password) => locked_shell::shell_behind_password(
                        password,
                        locked_shell::OnEmptyLine::GiveUp,
                    ),
                    None => {
                        let _ = pid1::run_rescue_shell();
                    }
                }
            }
        }
    }
}

/// Coldplugs the hardware, then loads the filesystem drivers. A missing
/// module is logged; the menu still comes up and says what it found.
/// Returns the coldplug, to be run again for devices that appear later.
fn load_modules(discovery: &mut Discovery) -> Option<modprobe::Coldplug> {
    let mut modules = FS_MODULES.to_vec();
    // efivarfs is a module in Debian's kernels; it only loads (and is only
    // wanted) where the firmware is EFI.
    if Path::new("/sys/firmware/efi").is_dir() {
        modules.push("efivarfs");
    }
    let loaded = modprobe::load_boot_modules(&modules);
    if let Some(why) = loaded.unavailable {
        discovery.note(why);
    }
    if let Some(report) = &loaded.coldplug {
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
    }
    for (m, e) in loaded.failed {
        discovery.note(format!("loading {m}: {e}"));
    }
    loaded.hotplug
}

/// Runs the coldplug again for the devices that appeared since the last
/// run; the scan-log lines for what it loaded or failed to load.
pub(crate) fn coldplug_again(plug: &mut modprobe::Coldplug) -> Vec<String> {
    plug.run().late_lines()
}

/// Feeds new kernel log lines to the menu's log view.
fn spawn_kmsg_reader(tx: mpsc::Sender<Msg>) {
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
}
