//! PID 1's pseudo-filesystem mounts, done under a temp root so that
//! nothing real is mounted over. Needs root.

#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

use std::fs;
use std::path::{Path, PathBuf};

use vhdboot::sys::mount::{is_mounted, umount_fs};
use vhdboot::sys::pid1::mount_pseudo_filesystems_in;

const TARGETS: [&str; 6] = ["proc", "sys", "dev", "dev/pts", "dev/shm", "run"];

/// Unmounts whatever is still mounted under the temp root, deepest first,
/// even when an assertion failed.
struct Unmounter(PathBuf);

impl Drop for Unmounter {
    fn drop(&mut self) {
        for t in TARGETS.iter().rev() {
            let path = self.0.join(t);
            while is_mounted(&path).unwrap_or(false) {
                if umount_fs(&path).is_err() {
                    break;
                }
            }
        }
    }
}

fn mounts_on(path: &Path) -> usize {
    let wanted = fs::canonicalize(path).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(wanted.to_str().unwrap()))
        .count()
}

#[test]
fn pseudo_filesystems_are_mounted_once_under_a_fresh_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it mounts proc, sysfs, devtmpfs under a temp dir)"
    );
    let root = tempfile::Builder::new()
        .prefix("vhdboot-pid1-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let _cleanup = Unmounter(root.path().to_path_buf());

    let warnings = mount_pseudo_filesystems_in(root.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    for t in TARGETS {
        assert_eq!(
            mounts_on(&root.path().join(t)),
            1,
            "{t} is not mounted once"
        );
    }
    assert!(root.path().join("proc/self/mountinfo").exists());
    assert!(root.path().join("sys/block").is_dir());
    assert!(root.path().join("dev/null").exists());

    // A second call finds everything in place and stacks nothing.
    let warnings = mount_pseudo_filesystems_in(root.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    for t in TARGETS {
        assert_eq!(mounts_on(&root.path().join(t)), 1, "{t} was mounted twice");
    }
}
