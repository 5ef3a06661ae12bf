//! The vhdboot binary is linked without unwind tables (build.rs), so
//! capturing a backtrace would abort it. These tests run it with every
//! backtrace switch on, as a kernel command line can set them for PID 1,
//! and check that an ordinary error still exits with its message.

use std::process::Command;

#[test]
fn error_exit_with_backtrace_variables_set_still_exits_1_with_the_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["inspect", "/nonexistent/disk.vhd"])
        .env("RUST_BACKTRACE", "full")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("/nonexistent/disk.vhd: cannot open the image"),
        "{err}"
    );
}

#[test]
fn binary_has_no_eh_frame_section() {
    let out = Command::new("readelf")
        .args(["-S", "-W", env!("CARGO_BIN_EXE_vhdboot")])
        .output()
        .expect("readelf (binutils) must be installed for this test");
    assert!(out.status.success(), "readelf failed: {out:?}");
    let sections = String::from_utf8_lossy(&out.stdout);
    assert!(
        sections.contains(".text"),
        "no section table read: {sections}"
    );
    assert!(!sections.contains(".eh_frame"), "{sections}");
}
