//! The image child's limits on the real binary: `vhdboot scan --root` over
//! a folder whose image child misbehaves on purpose (the test-only
//! VHDBOOT_TEST_PROBE) must still return, listing the image as skipped with
//! the limit it hit, in words.
#![expect(
    clippy::unwrap_used,
    reason = "a test binary: a failed step should stop the test"
)]

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `vhdboot scan --root DIR` with the image child told to `how`.
fn scan_with_child(how: &str) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("victim.vhd"), vec![0u8; 4096]).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["scan", "--root"])
        .arg(dir.path())
        .env("VHDBOOT_TEST_PROBE", how)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (text, started.elapsed())
}

#[test]
fn a_child_that_spins_is_stopped_and_its_image_skipped() {
    let (text, took) = scan_with_child("spin");
    assert!(text.contains("victim.vhd"), "{text}");
    assert!(
        text.contains("took longer than 5 s (probe_time)")
            || text.contains("used more than 5 s of CPU time (probe_time)"),
        "{text}"
    );
    assert!(text.contains("it was skipped"), "{text}");
    // The default probe_time is 5 s; the scan ends soon after, not never.
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_child_that_allocates_past_its_budget_is_skipped() {
    let (text, _) = scan_with_child("allocate");
    assert!(
        text.contains("needed more than 256 MiB of memory (probe_memory)"),
        "{text}"
    );
}

#[test]
fn a_child_that_answers_garbage_is_skipped() {
    let (text, _) = scan_with_child("garbage");
    assert!(
        text.contains("its reader's answer was not readable"),
        "{text}"
    );
}
