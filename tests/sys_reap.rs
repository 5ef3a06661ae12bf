//! PID 1's reaper against real child processes. This file holds a single
//! test on purpose: `reap_zombies` reaps every unclaimed child of the test
//! process, which would steal statuses from other tests running in
//! parallel threads of the same binary. The menu's loop calls
//! `reap_zombies` on every pass (stage 1 passes it as `AppOptions::on_idle`);
//! the loop itself needs a terminal, so this drives the reaper directly.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vhdboot::sys::pid1::{reap_zombies, spawn_and_wait};

#[test]
fn reaper_collects_orphans_but_never_a_claimed_childs_status() {
    // An unclaimed child that exits becomes a zombie until reaped.
    let orphan = Command::new("true").spawn().unwrap();
    let orphan_pid = orphan.id() as i32;
    drop(orphan);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reaped = Vec::new();
    while Instant::now() < deadline && !reaped.iter().any(|(p, _)| *p == orphan_pid) {
        reaped.extend(reap_zombies().into_iter().map(|(p, s)| (p.as_raw(), s)));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        reaped.iter().any(|(p, _)| *p == orphan_pid),
        "orphan {orphan_pid} was not reaped: {reaped:?}"
    );

    // The rescue shell's case: a child (waited for with spawn_and_wait)
    // leaves a background job behind. As a subreaper this process inherits
    // it the way PID 1 does, and the reaper collects it once it exits.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 0.2 & echo $! > {}", pid_file.display());
    let status = spawn_and_wait(Command::new("sh").args(["-c", &script])).unwrap();
    assert!(status.success());
    let grandchild: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reaped = Vec::new();
    while Instant::now() < deadline && !reaped.iter().any(|(p, _)| *p == grandchild) {
        reaped.extend(reap_zombies().into_iter().map(|(p, s)| (p.as_raw(), s)));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        reaped.iter().any(|(p, _)| *p == grandchild),
        "the orphaned grandchild {grandchild} was not reaped: {reaped:?}"
    );

    // A reaper running flat out in another thread must not steal the exit
    // status of children waited for with spawn_and_wait.
    let stop = Arc::new(AtomicBool::new(false));
    let reaper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut count = 0usize;
            while !stop.load(Ordering::Relaxed) {
                count += reap_zombies().len();
            }
            count
        })
    };
    for i in 0..30 {
        let status = spawn_and_wait(Command::new("sh").args(["-c", "exit 7"])).unwrap();
        assert_eq!(status.code(), Some(7), "iteration {i}: status was stolen");
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(reaper.join().unwrap(), 0, "the reaper took a claimed child");
}
