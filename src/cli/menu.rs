//! `menu --demo`: the boot menu on an ordinary terminal, over a built-in
//! fixture, without root and without booting anything. It runs the same
//! app loop as PID 1; only the Host differs.

use anyhow::Context;
use clap::Args;
use std::process::ExitCode;
use vhdboot::boot::plan::BootPlan;
use vhdboot::config::{Config, Timeout};
use vhdboot::model::{EntrySource, Snapshot};
use vhdboot::tui::app::{self, AppOptions};
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::executor::execute;
use vhdboot::tui::{Effect, Failure, Host, Model, update};

#[derive(Args)]
pub struct MenuArgs {
    /// Use the built-in fixture set instead of scanning.
    #[arg(long)]
    pub demo: bool,
    /// Draw with ASCII only, as on a console without box-drawing glyphs.
    #[arg(long)]
    pub ascii: bool,
    /// Seconds before the default boots; 0 boots it without showing the
    /// menu first (which in the demo shows what would boot); -1 waits
    /// forever.
    #[arg(long, allow_negative_numbers = true, default_value_t = 5)]
    pub timeout: i64,
    /// Draw at this width instead of the terminal's (with --lines).
    #[arg(long, requires = "lines")]
    pub columns: Option<u16>,
    /// Draw at this height instead of the terminal's (with --columns).
    #[arg(long, requires = "columns")]
    pub lines: Option<u16>,
}

pub fn run(a: MenuArgs) -> anyhow::Result<ExitCode> {
    if !a.demo {
        anyhow::bail!(
            "the menu runs for real only as PID 1 of the bootstrapper; \
             use `vhdboot menu --demo` to try it, or `vhdboot scan` to list this machine's images"
        );
    }
    let timeout = match a.timeout {
        t if t < 0 => Timeout::Never,
        0 => Timeout::Immediate,
        t => Timeout::Seconds(u32::try_from(t).unwrap_or(u32::MAX)),
    };
    let config = Config {
        timeout,
        ascii: a.ascii,
        ..Config::default()
    };
    let countdown = match config.timeout {
        Timeout::Seconds(n) => Some(n),
        Timeout::Never | Timeout::Immediate => None,
    };
    let mut model =
        Model::new(fixture_snapshot(), &config, Some(DEFAULT_ENTRY), countdown).allow_quit();
    let mut host = DemoHost::default();
    if config.timeout == Timeout::Immediate {
        // As in stage 1: boot the default before any menu, and come to the
        // menu only with the reason it did not boot.
        let boot = Effect::Boot {
            entry: DEFAULT_ENTRY,
            cmdline: None,
        };
        for msg in execute(boot, &model.snapshot, &mut host) {
            update(&mut model, msg);
        }
    }
    let options = AppOptions {
        size: a.columns.zip(a.lines),
        ..AppOptions::default()
    };
    restore_terminal_on_panic();
    app::run(&mut model, &mut host, options).context("running the demo menu")?;
    Ok(ExitCode::SUCCESS)
}

/// A Host that shows what it would do instead of doing it.
#[derive(Default)]
struct DemoHost {
    loaded: Option<BootPlan>,
}

impl Host for DemoHost {
    fn load(&mut self, plan: &BootPlan) -> Result<(), Failure> {
        self.loaded = Some(plan.clone());
        Ok(())
    }

    fn preload(&mut self, _id: u64, plan: &BootPlan) -> Option<Result<(), Failure>> {
        Some(self.load(plan))
    }

    fn cancel_preload(&mut self) {
        self.loaded = None;
    }

    fn exec(&mut self) -> Failure {
        let Some(plan) = self.loaded.take() else {
            return Failure {
                what: "demo mode: nothing was loaded".into(),
                cause: "exec ran before load".into(),
                hint: "This is a bug in the menu; please report it.".into(),
            };
        };
        let kernel = match &plan.source {
            EntrySource::Uki { path, .. } => format!("the UKI {path}"),
            EntrySource::Bls { linux, .. }
            | EntrySource::Ext4 { linux, .. }
            | EntrySource::Mounted { linux, .. } => {
                format!("the kernel {linux}")
            }
        };
        Failure {
            what: format!("demo mode: would kexec {kernel} of {}", plan.title),
            cause: format!(
                "image {} on {} ({}); cmdline: {}",
                plan.image_file().display(),
                plan.host_device.display(),
                plan.fstype.driver(),
                plan.cmdline
            ),
            hint: "Nothing was booted: this is the demo.".into(),
        }
    }

    fn rescue_shell(&mut self) -> Result<(), Failure> {
        let shell = std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into());
        say!(
            "vhdboot demo: rescue shell ({}); type exit to return to the menu.",
            shell.to_string_lossy()
        );
        match std::process::Command::new(&shell).status() {
            Ok(_) => Ok(()),
            Err(e) => Err(Failure {
                what: format!("Could not start the shell {}", shell.to_string_lossy()),
                cause: e.to_string(),
                hint: "Set SHELL to a shell that exists.".into(),
            }),
        }
    }

    fn rescan(&mut self) -> Result<Snapshot, Failure> {
        Ok(fixture_snapshot())
    }

    fn reboot(&mut self) -> Failure {
        demo_power("reboot")
    }

    fn power_off(&mut self) -> Failure {
        demo_power("power off")
    }
}

fn demo_power(what: &str) -> Failure {
    Failure {
        what: format!("demo mode: would {what} the machine"),
        cause: "the demo never touches the machine".into(),
        hint: "Press q in the menu to leave the demo.".into(),
    }
}

/// Leaves raw mode and the alternate screen if the demo panics, so the
/// user's shell is usable afterwards. (PID 1 has its own panic hook.)
fn restore_terminal_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        app::restore_terminal();
        previous(info);
    }));
}
