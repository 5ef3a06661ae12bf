//! Coldplug's walk over this machine's real sysfs, which has symlink loops
//! everywhere. No module is loaded: the index is empty.

use std::path::Path;

use vhdboot::modprobe::{ModuleIndex, coldplug};

#[test]
fn coldplug_walks_the_real_sysfs_and_terminates() {
    let index = ModuleIndex::parse(Path::new("/nonexistent/modules"), "", "", "", "")
        .with_sys_root(Path::new("/sys"));
    let report = coldplug(Path::new("/sys"), &index);
    assert!(report.devices > 0, "no modalias found under /sys/devices");
    assert_eq!(report.unmatched, report.devices);
    assert!(report.inserted.is_empty() && report.failed.is_empty());
    assert_eq!(report.passes, 1, "an empty index exposes no new devices");
    eprintln!("real sysfs: {} distinct modaliases", report.devices);
}
