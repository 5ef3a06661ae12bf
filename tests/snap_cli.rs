//! `vhdboot snap` over a fixture efivarfs folder: the firmware's entries
//! are listed, `--dry-run` writes nothing, a real run sets BootNext, and a
//! machine without EFI variables gets "not available here".

// The helpers below are test code too; clippy.toml's test allowances only
// reach #[test] functions.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

use std::path::Path;
use std::process::{Command, Output};

use vhdboot::boot::loader_interface::{
    GLOBAL_GUID, LOAD_OPTION_ACTIVE, NV_BS_RT, encode_load_option, file_name, with_attributes,
};

/// A firmware with Windows, the vhdboot disk (current) and an inactive
/// network entry, in that BootOrder.
fn fixture(dir: &Path) {
    let write = |name: &str, data: &[u8]| {
        std::fs::write(
            dir.join(file_name(name, GLOBAL_GUID)),
            with_attributes(NV_BS_RT, data),
        )
        .unwrap()
    };
    write(
        "Boot0000",
        &encode_load_option(LOAD_OPTION_ACTIVE, "Windows Boot Manager"),
    );
    write(
        "Boot0001",
        &encode_load_option(LOAD_OPTION_ACTIVE, "vhdboot"),
    );
    write("Boot0002", &encode_load_option(0, "UEFI PXEv4"));
    write("BootOrder", &[1, 0, 0, 0, 2, 0]);
    write("BootCurrent", &[1, 0]);
    // Not a Boot#### variable, though it starts like one.
    write("BootOptionSupport", &[1, 0, 0, 0]);
}

fn snap(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .arg("snap")
        .arg("--efivars")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn snap_lists_the_firmware_entries_with_order_and_current() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let out = snap(t.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("BootOrder: 0001,0000,0002"), "{text}");
    assert!(text.contains("BootCurrent: 0001"), "{text}");
    assert!(text.contains("  Boot0000 Windows Boot Manager\n"), "{text}");
    assert!(text.contains("* Boot0001 vhdboot\n"), "{text}");
    assert!(
        text.contains("  Boot0002 UEFI PXEv4 (inactive)\n"),
        "{text}"
    );
    assert!(!text.contains("BootOptionSupport"), "{text}");
}

#[test]
fn snap_dry_run_prints_the_write_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let before = contents(t.path());
    let out = snap(t.path(), &["--dry-run", "--in", "5", "windows"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let next = file_name("BootNext", GLOBAL_GUID);
    assert!(
        text.contains(&format!(
            "would write {next} = 0000 (Boot0000 \"Windows Boot Manager\"): 07 00 00 00 00 00"
        )),
        "{text}"
    );
    assert!(
        text.lines().nth(1).is_some_and(|l| l.starts_with("would ")),
        "{text}"
    );
    assert_eq!(contents(t.path()), before);
}

#[test]
fn snap_sets_boot_next_to_the_chosen_entry() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let out = snap(t.path(), &["Boot0000"]);
    assert!(out.status.success(), "{out:?}");
    let next = std::fs::read(t.path().join(file_name("BootNext", GLOBAL_GUID))).unwrap();
    assert_eq!(next, [7, 0, 0, 0, 0, 0]);
    let listed = String::from_utf8(snap(t.path(), &[]).stdout).unwrap();
    assert!(listed.contains("BootNext: 0000"), "{listed}");
}

#[test]
fn snap_refuses_an_ambiguous_description() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let out = snap(t.path(), &["--dry-run", "o"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("give the number instead"), "{err}");
}

#[test]
fn snap_without_efi_variables_says_not_available_here() {
    let t = tempfile::tempdir().unwrap();
    let out = snap(&t.path().join("sys/firmware/efi/efivars"), &["windows"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("EFI variables are not available here"),
        "{err}"
    );
}
