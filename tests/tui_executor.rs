//! The executor against a recording fake Host: which calls happen in which
//! order, and which message each outcome becomes.

use std::path::PathBuf;
use vhdboot::boot::handoff::HostId;
use vhdboot::boot::plan::{BootPlan, PlanError};
use vhdboot::model::{EntryRef, FsType, Snapshot};
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::executor::{execute, execute_with};
use vhdboot::tui::{Effect, Failure, Host, Msg};

#[derive(Default)]
struct FakeHost {
    calls: Vec<String>,
    load_fails: Option<Failure>,
    shell_fails: Option<Failure>,
    rescan_result: Option<Result<Snapshot, Failure>>,
}

fn failure(what: &str) -> Failure {
    Failure {
        what: what.into(),
        cause: "cause".into(),
        hint: "hint".into(),
    }
}

impl Host for FakeHost {
    fn load(&mut self, plan: &BootPlan) -> Result<(), Failure> {
        self.calls.push(format!("load {}", plan.cmdline));
        match &self.load_fails {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }
    fn preload(&mut self, id: u64, plan: &BootPlan) -> Option<Result<(), Failure>> {
        self.calls.push(format!("preload {id} {}", plan.cmdline));
        None
    }
    fn cancel_preload(&mut self) {
        self.calls.push("cancel".into());
    }
    fn exec(&mut self) -> Failure {
        self.calls.push("exec".into());
        failure("exec failed")
    }
    fn rescue_shell(&mut self) -> Result<(), Failure> {
        self.calls.push("shell".into());
        match &self.shell_fails {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }
    fn rescan(&mut self) -> Result<Snapshot, Failure> {
        self.calls.push("rescan".into());
        self.rescan_result
            .clone()
            .unwrap_or_else(|| Ok(Snapshot::default()))
    }
    fn reboot(&mut self) -> Failure {
        self.calls.push("reboot".into());
        failure("reboot failed")
    }
    fn power_off(&mut self) -> Failure {
        self.calls.push("power_off".into());
        failure("power off failed")
    }
}

/// A planner standing in for `boot::plan`, so load and exec can be driven
/// whatever state that module is in.
fn fake_plan(
    snapshot: &Snapshot,
    entry: EntryRef,
    cmdline: Option<&str>,
) -> Result<BootPlan, PlanError> {
    let e = snapshot.entry(entry).ok_or(PlanError::NoSuchEntry(entry))?;
    let cmdline = cmdline.unwrap_or(&e.cmdline);
    Ok(BootPlan {
        title: e.title.clone(),
        entry_id: "arch-arch-0000abcd".into(),
        host_device: PathBuf::from("/dev/nvme0n1p3"),
        host_id: HostId::Uuid("4A1C5E2F1C5E16B9".into()),
        fstype: FsType::Ntfs,
        host_mount: PathBuf::from("/run/vhdboot/demo/data"),
        image_path: "/vhd/arch.vhd".into(),
        data_size: 1 << 35,
        source: e.source.clone(),
        version: e.version.clone(),
        cmdline: format!("{cmdline} rdinit=/vhdboot/stage2"),
        overlay: None,
    })
}

fn boot(cmdline: &str) -> Effect {
    Effect::Boot {
        entry: DEFAULT_ENTRY,
        cmdline: Some(cmdline.into()),
    }
}

#[test]
fn load_failure_skips_exec_and_reports_boot_failed() {
    let mut host = FakeHost {
        load_fails: Some(failure("load failed")),
        ..FakeHost::default()
    };
    let msgs = execute_with(boot("quiet"), &fixture_snapshot(), &mut host, fake_plan);
    assert_eq!(host.calls, vec!["load quiet rdinit=/vhdboot/stage2"]);
    assert_eq!(msgs, vec![Msg::BootFailed(failure("load failed"))]);
}

#[test]
fn load_ok_then_exec_failure_reports_exec_failure() {
    let mut host = FakeHost::default();
    let msgs = execute_with(boot("quiet"), &fixture_snapshot(), &mut host, fake_plan);
    assert_eq!(
        host.calls,
        vec!["load quiet rdinit=/vhdboot/stage2", "exec"]
    );
    assert_eq!(msgs, vec![Msg::BootFailed(failure("exec failed"))]);
}

#[test]
fn edited_cmdline_reaches_the_planner() {
    let mut host = FakeHost::default();
    execute_with(
        boot("init=/bin/sh"),
        &fixture_snapshot(),
        &mut host,
        fake_plan,
    );
    assert_eq!(
        host.calls.first().map(String::as_str),
        Some("load init=/bin/sh rdinit=/vhdboot/stage2")
    );
}

#[test]
fn boot_without_a_line_plans_with_the_entrys_own() {
    let mut host = FakeHost::default();
    let own = Effect::Boot {
        entry: DEFAULT_ENTRY,
        cmdline: None,
    };
    execute(own, &fixture_snapshot(), &mut host);
    let line = &fixture_snapshot().volumes[0].images[0].entries[0].cmdline;
    let load = host.calls.first().cloned().unwrap_or_default();
    assert!(
        load.starts_with(&format!("load {line} vhdboot.host=")),
        "{load}"
    );
}

#[test]
fn plan_failure_touches_nothing_and_reports_boot_failed() {
    let mut host = FakeHost::default();
    let gone = EntryRef {
        volume: 9,
        image: 0,
        entry: 0,
    };
    let msgs = execute(
        Effect::Boot {
            entry: gone,
            cmdline: None,
        },
        &fixture_snapshot(),
        &mut host,
    );
    assert!(host.calls.is_empty(), "{:?}", host.calls);
    match msgs.as_slice() {
        [Msg::BootFailed(f)] => {
            assert!(f.what.contains("the selected entry"), "{f:?}");
            assert!(f.cause.contains("rescan"), "{f:?}");
        }
        other => panic!("expected one BootFailed, got {other:?}"),
    }
}

#[test]
fn rescue_shell_runs_and_reports_its_exit() {
    let mut host = FakeHost::default();
    let msgs = execute(Effect::RescueShell, &fixture_snapshot(), &mut host);
    assert_eq!(host.calls, vec!["shell"]);
    assert_eq!(msgs, vec![Msg::ShellExited(Ok(()))]);
}

#[test]
fn rescue_shell_failure_is_reported() {
    let mut host = FakeHost {
        shell_fails: Some(failure("no shell")),
        ..FakeHost::default()
    };
    let msgs = execute(Effect::RescueShell, &fixture_snapshot(), &mut host);
    assert_eq!(msgs, vec![Msg::ShellExited(Err(failure("no shell")))]);
}

#[test]
fn rescan_returns_the_new_snapshot() {
    let mut host = FakeHost {
        rescan_result: Some(Ok(fixture_snapshot())),
        ..FakeHost::default()
    };
    let msgs = execute(Effect::Rescan, &Snapshot::default(), &mut host);
    assert_eq!(host.calls, vec!["rescan"]);
    assert_eq!(msgs, vec![Msg::Rescanned(Ok(fixture_snapshot()))]);
}

#[test]
fn rescan_failure_is_reported() {
    let mut host = FakeHost {
        rescan_result: Some(Err(failure("no disks"))),
        ..FakeHost::default()
    };
    let msgs = execute(Effect::Rescan, &Snapshot::default(), &mut host);
    assert_eq!(msgs, vec![Msg::Rescanned(Err(failure("no disks")))]);
}

#[test]
fn reboot_and_power_off_that_return_are_failures() {
    let mut host = FakeHost::default();
    let snap = Snapshot::default();
    assert_eq!(
        execute(Effect::Reboot, &snap, &mut host),
        vec![Msg::PowerFailed(failure("reboot failed"))]
    );
    assert_eq!(
        execute(Effect::PowerOff, &snap, &mut host),
        vec![Msg::PowerFailed(failure("power off failed"))]
    );
    assert_eq!(host.calls, vec!["reboot", "power_off"]);
}

#[test]
fn quit_calls_nothing() {
    let mut host = FakeHost::default();
    assert!(execute(Effect::Quit, &Snapshot::default(), &mut host).is_empty());
    assert!(host.calls.is_empty());
}

#[test]
fn preload_starts_in_the_host_and_reports_later() {
    let mut host = FakeHost::default();
    let preload = Effect::Preload {
        id: 7,
        entry: DEFAULT_ENTRY,
        cmdline: Some("quiet".into()),
    };
    let msgs = execute_with(preload, &fixture_snapshot(), &mut host, fake_plan);
    assert_eq!(host.calls, vec!["preload 7 quiet rdinit=/vhdboot/stage2"]);
    assert!(
        msgs.is_empty(),
        "the outcome comes through the inbox: {msgs:?}"
    );
}

#[test]
fn preload_of_an_unplannable_entry_fails_without_the_host() {
    let mut host = FakeHost::default();
    let gone = EntryRef {
        volume: 9,
        image: 0,
        entry: 0,
    };
    let preload = Effect::Preload {
        id: 3,
        entry: gone,
        cmdline: None,
    };
    let msgs = execute(preload, &fixture_snapshot(), &mut host);
    assert!(host.calls.is_empty(), "{:?}", host.calls);
    assert!(
        matches!(
            msgs.as_slice(),
            [Msg::Preloaded {
                id: 3,
                result: Err(_)
            }]
        ),
        "{msgs:?}"
    );
}

#[test]
fn boot_of_a_preloaded_entry_only_reboots() {
    let mut host = FakeHost::default();
    let boot = Effect::BootPreloaded {
        entry: DEFAULT_ENTRY,
        cmdline: None,
    };
    let msgs = execute(boot, &fixture_snapshot(), &mut host);
    assert_eq!(host.calls, vec!["exec"]);
    assert_eq!(msgs, vec![Msg::BootFailed(failure("exec failed"))]);
}

#[test]
fn cancel_preload_reaches_the_host() {
    let mut host = FakeHost::default();
    assert!(execute(Effect::CancelPreload, &fixture_snapshot(), &mut host).is_empty());
    assert_eq!(host.calls, vec!["cancel"]);
}
