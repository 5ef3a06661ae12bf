//! `vhdboot report` writes the support bundle with every section under its
//! fixed heading (issue 16, item 3). On this machine it scans the disks as
//! `vhdboot scan` does (nothing is mounted read-write) and reads the kernel
//! log and the block devices it may.

use std::process::Command;

#[test]
fn report_writes_every_section_in_order_to_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle.txt");
    let run = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["report", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("wrote the report to"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("vhdboot report\n"), "{text}");
    let mut at = 0;
    for name in vhdboot::report::SECTIONS {
        let heading = format!("\n== {name} ==\n");
        let found = text[at..]
            .find(&heading)
            .unwrap_or_else(|| panic!("no {heading:?} after byte {at}"));
        at += found + 1;
    }
    assert!(text.contains(&format!("vhdboot {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn report_to_dash_prints_it() {
    let run = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["report", "--out", "-"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("== block devices =="), "{text}");
}
