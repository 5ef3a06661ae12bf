//! Our lines reach the real kernel log and a cursor reads back only what
//! was logged after it was taken. Needs root (/dev/kmsg is root-writable).

use vhdboot::sys::kmsg::{KmsgCursor, kmsg_write, read_recent};

#[test]
fn cursor_sees_our_line_and_nothing_from_before() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it writes to /dev/kmsg)"
    );
    let before = format!("test-before-{}", std::process::id());
    let after = format!("test-after-{}", std::process::id());
    kmsg_write(&before).unwrap();
    let mut cursor = KmsgCursor::at_end().unwrap();
    kmsg_write(&after).unwrap();
    let messages: Vec<String> = cursor
        .read_new()
        .unwrap()
        .into_iter()
        .map(|r| r.message)
        .collect();
    assert!(
        messages.contains(&format!("vhdboot: {after}")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains(&before)),
        "{messages:?}"
    );
    // Nothing new since: the cursor does not re-read.
    assert!(
        cursor
            .read_new()
            .unwrap()
            .iter()
            .all(|r| !r.message.contains(&after))
    );

    let recent = read_recent(50).unwrap();
    assert!(recent.len() <= 50);
    assert!(
        recent.iter().any(|r| r.message.ends_with(&after)),
        "{recent:?}"
    );
}
