//! The clean detach at power-off, following systemd's initrd interface
//! (bootup(7), "The initrd interface"): when `/run/initramfs/shutdown`
//! exists, systemd's final shutdown step pivots into `/run/initramfs` (the
//! old root then lies under `/oldroot`) and execs `/shutdown` with argv[1] =
//! `reboot`, `poweroff`, `halt` or `kexec`.
//!
//! Stage 2 prepares that directory with a copy of itself ([`prepare`]); run
//! as `shutdown`, the binary lands in [`run`], which unmounts everything
//! that lives on the loop device (the target's root and whatever is mounted
//! under it), detaches the loop device, unmounts the host volume strictly
//! (never lazily: an NTFS volume is only marked clean by a real unmount)
//! and then reboots the requested way.
//!
//! The host volume is found through the device number stage 2 wrote next
//! to the binary, so the shutdown works whatever path the mount ended up
//! on after the distro's switch-root and systemd's pivot.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vhdboot::sys::mount::{self, MountEntry, parse_mountinfo};
use vhdboot::sys::{kmsg, loopdev, pid1, teardown};

/// systemd's directory for the shutdown initramfs.
pub const INITRAMFS: &str = "/run/initramfs";
/// Holds "MAJOR:MINOR" of the host volume's block device.
const HOST_NOTE: &str = "host-device";
/// The mount points systemd's switch-root moves into the new root, plus
/// the ones our shutdown needs itself.
const DIRS: [&str; 6] = ["proc", "sys", "dev", "run", "oldroot", "tmp"];
/// How many rounds of unmounting: a mount can only go once the mounts on
/// top of it are gone, and mountinfo order does not always say which.
const ROUNDS: usize = 4;

fn say(line: &str) {
    let _ = kmsg::kmsg_write(line);
    eprintln!("vhdboot: {line}");
}

/// Why the shutdown root could not be prepared. The image then stays
/// attached at power-off, which Windows may notice as an unclean volume;
/// each names the step and the path.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("creating {}: {source}", .dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {}: {source}", .device.display())]
    ReadDevice {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {}: {source}", .path.display())]
    WriteNote {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("copying /proc/self/exe to {}: {source}", .to.display())]
    CopySelf {
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("making {} executable: {source}", .path.display())]
    MakeExecutable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("renaming to {}: {source}", .to.display())]
    Rename {
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The device number (major, minor) of the block device `device`.
pub fn device_number(device: &Path) -> Result<(u64, u64), PrepareError> {
    let rdev = fs::metadata(device)
        .map_err(|source| PrepareError::ReadDevice {
            device: device.to_path_buf(),
            source,
        })?
        .rdev();
    Ok((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)))
}

/// Makes `initramfs` a shutdown root in systemd's sense: the directories
/// switch-root needs, this binary as `shutdown` and the host volume's
/// device number (`host`, as [`device_number`] gives it).
pub fn prepare(initramfs: &Path, host: (u64, u64)) -> Result<(), PrepareError> {
    for d in DIRS {
        let dir = initramfs.join(d);
        fs::create_dir_all(&dir).map_err(|source| PrepareError::CreateDir { dir, source })?;
    }
    let note = format!("{}:{}\n", host.0, host.1);
    let note_path = initramfs.join(HOST_NOTE);
    fs::write(&note_path, note).map_err(|source| PrepareError::WriteNote {
        path: note_path,
        source,
    })?;
    // Copy under a temporary name first: a half-written `shutdown` would
    // be executed by systemd and fail at the worst moment.
    let target = initramfs.join("shutdown");
    let partial = initramfs.join(".shutdown.partial");
    fs::copy("/proc/self/exe", &partial).map_err(|source| PrepareError::CopySelf {
        to: partial.clone(),
        source,
    })?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o755)).map_err(|source| {
        PrepareError::MakeExecutable {
            path: partial.clone(),
            source,
        }
    })?;
    fs::rename(&partial, &target).map_err(|source| PrepareError::Rename { to: target, source })
}

/// What the shutdown does with a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Our own root and the API filesystems we still need.
    Keep,
    /// The host volume: unmounted last, after the loop device is gone.
    Host,
    /// Everything else, the target's root first among them.
    Unmount,
}

/// Sorts a mount into its [`Role`]. Without a recorded host device, NTFS
/// and exFAT mounts count as host volumes, so they at least go last.
pub fn role(entry: &MountEntry, host: Option<(u64, u64)>) -> Role {
    let p = &entry.mount_point;
    let api = ["/proc", "/sys", "/dev"];
    if p == Path::new("/")
        || p == Path::new("/run")
        || p == Path::new(INITRAMFS)
        || api.iter().any(|a| p.starts_with(a))
    {
        return Role::Keep;
    }
    let is_host = match host {
        Some(dev) => entry.device == dev,
        None => matches!(entry.fstype.as_str(), "ntfs3" | "ntfs" | "exfat"),
    };
    if is_host { Role::Host } else { Role::Unmount }
}

fn read_mounts() -> Vec<MountEntry> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

fn read_host_note(initramfs: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(initramfs.join(HOST_NOTE)).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The requested way to leave, from argv[1]. systemd passes `halt` too;
/// a machine that halts without power-off is of no use here, so it powers
/// off.
pub fn mode_for(verb: &str) -> pid1::RebootMode {
    match verb {
        "reboot" => pid1::RebootMode::Restart,
        "kexec" => pid1::RebootMode::Kexec,
        _ => pid1::RebootMode::PowerOff,
    }
}

/// Unmounts every mount of role `Unmount`, deepest and newest first,
/// in rounds. Returns the ones that stayed.
fn unmount_target(host: Option<(u64, u64)>) -> Vec<MountEntry> {
    let mut failed = Vec::new();
    for _ in 0..ROUNDS {
        let left: Vec<MountEntry> = read_mounts()
            .into_iter()
            .rev()
            .filter(|m| role(m, host) == Role::Unmount)
            .collect();
        if left.is_empty() {
            return Vec::new();
        }
        failed.clear();
        let mut progress = false;
        for m in left {
            match teardown::umount_strict(&m.mount_point) {
                Ok(()) => {
                    progress = true;
                    say(&format!(
                        "shutdown: unmounted {} ({}, {})",
                        m.mount_point.display(),
                        m.source,
                        m.fstype
                    ));
                }
                // A snapshot boot's top loop device has the device-mapper
                // node as its backing file, opened under the old root's
                // /dev, so that devtmpfs stays busy until the loop device
                // is detached, and it keeps the old root busy in turn. A
                // devtmpfs holds no data: it is detached lazily, which lets
                // the old root unmount; the loop device and the snapshot
                // follow, and the devtmpfs goes with its last user.
                Err(e) if m.fstype == "devtmpfs" => match mount::umount_fs(&m.mount_point) {
                    Ok(_) => {
                        progress = true;
                        say(&format!(
                            "shutdown: detached {} ({}) lazily: {e} (a loop device's backing \
                             node is open there; it holds no data)",
                            m.mount_point.display(),
                            m.fstype
                        ));
                    }
                    Err(_) => failed.push((m, e)),
                },
                Err(e) => failed.push((m, e)),
            }
        }
        if !progress {
            break;
        }
    }
    let mut stayed = Vec::new();
    for (m, e) in failed {
        let how = match teardown::remount_read_only(&m.mount_point) {
            Ok(()) => "remounted read-only instead",
            Err(_) => "could not even remount it read-only",
        };
        say(&format!(
            "shutdown: unmounting {} ({}) failed: {e}; {how}",
            m.mount_point.display(),
            m.source
        ));
        stayed.push(m);
    }
    stayed
}

/// The loop devices that have a backing file now, with that file's
/// sysfs path, read before anything is unmounted: systemd-shutdown marks
/// a busy loop device autoclear, and the kernel then detaches it by itself
/// when its last partition is unmounted, before we get to it.
fn attached_loops() -> Vec<(loopdev::LoopDevice, PathBuf)> {
    let Ok(dir) = fs::read_dir("/sys/block") else {
        say("shutdown: /sys/block is not readable; cannot detach loop devices");
        return Vec::new();
    };
    let mut attached = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name
            .strip_prefix("loop")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let backing = entry.path().join("loop/backing_file");
        if fs::read_to_string(&backing).is_ok_and(|b| !b.trim().is_empty()) {
            attached.push((loopdev::LoopDevice::from_number(number), backing));
        }
    }
    attached
}

/// Detaches each loop device and waits briefly for the kernel to drop it
/// (the detach completes on the last close). Returns true when all are
/// gone.
fn detach_loops(mut attached: Vec<(loopdev::LoopDevice, PathBuf)>) -> bool {
    // An immutable or trial boot stacks a partition loop device on a
    // snapshot device that holds the image's (and the store's) loop
    // devices: detach from the top down (the newest has the highest
    // number), then remove the snapshot, which lets the lower ones go.
    attached.sort_by_key(|(dev, _)| std::cmp::Reverse(loop_number(&dev.path)));
    let mut asked = Vec::new();
    for (dev, backing) in attached {
        if fs::metadata(&backing).is_err() {
            say(&format!(
                "shutdown: detached {} (autoclear: the kernel let it go with its last user)",
                dev.path.display()
            ));
            continue;
        }
        let result = dev.detach();
        asked.push((dev, backing, result));
    }
    // The snapshot goes once the top loop device has let go of it.
    if let Some((_, top, Ok(()))) = asked.first() {
        wait_gone(top, Duration::from_secs(3));
    }
    remove_snapshots();
    let mut all_gone = true;
    for (dev, backing, result) in asked {
        match result {
            Ok(()) => {
                let deadline = Instant::now() + Duration::from_secs(3);
                while fs::metadata(&backing).is_ok() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if fs::metadata(&backing).is_ok() {
                    all_gone = false;
                    say(&format!(
                        "shutdown: {} is still attached (something holds it open)",
                        dev.path.display()
                    ));
                } else {
                    say(&format!("shutdown: detached {}", dev.path.display()));
                }
            }
            Err(e) => {
                if fs::metadata(&backing).is_err() {
                    say(&format!("shutdown: detached {}", dev.path.display()));
                } else {
                    all_gone = false;
                    say(&format!("shutdown: {e}"));
                }
            }
        }
    }
    all_gone
}

/// The number of `/dev/loopN`, for ordering.
fn loop_number(path: &Path) -> u32 {
    path.to_string_lossy()
        .trim_start_matches("/dev/loop")
        .parse()
        .unwrap_or(0)
}

fn wait_gone(backing: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while fs::metadata(backing).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes stage 2's snapshot devices, if any (immutable, trial), once the
/// loop device over them is gone. A persistent (trial) snapshot has
/// written its exceptions to the store as it went; removing it only ends
/// the mapping. Nothing to remove is the plain boot's case.
fn remove_snapshots() {
    for name in [super::immutable::DM_NAME, super::trial::DM_NAME] {
        match vhdboot::sys::devmapper::remove(name) {
            Ok(()) => say(&format!("shutdown: removed device-mapper device {name}")),
            Err(vhdboot::sys::devmapper::DmError::Ioctl {
                source: nix::errno::Errno::ENXIO,
                ..
            })
            | Err(vhdboot::sys::devmapper::DmError::OpenControl { .. }) => {}
            Err(e) => say(&format!("shutdown: {e}")),
        }
    }
}

/// Removes the in-use record from each host volume, which says that
/// the image was detached cleanly. Called only when it was.
fn remove_records(host: Option<(u64, u64)>) {
    for m in read_mounts()
        .into_iter()
        .filter(|m| role(m, host) == Role::Host)
    {
        match super::record::remove(&m.mount_point) {
            Ok(Some(path)) => say(&format!(
                "shutdown: in-use record {} removed from {}",
                path.display(),
                m.source
            )),
            Ok(None) => say(&format!(
                "shutdown: no in-use record on {} (this boot wrote none)",
                m.source
            )),
            Err(e) => say(&format!(
                "shutdown: removing the in-use record on {}: {e}; the next vhdboot start will \
                 ask for a check of the volume",
                m.source
            )),
        }
    }
}

fn unmount_hosts(host: Option<(u64, u64)>) -> bool {
    let mut clean = true;
    for m in read_mounts()
        .into_iter()
        .rev()
        .filter(|m| role(m, host) == Role::Host)
    {
        match teardown::umount_strict(&m.mount_point) {
            Ok(()) => say(&format!(
                "shutdown: host volume {} ({}) unmounted cleanly from {}",
                m.source,
                m.fstype,
                m.mount_point.display()
            )),
            Err(e) => {
                clean = false;
                let how = match teardown::remount_read_only(&m.mount_point) {
                    Ok(()) => "remounted it read-only, which writes it back",
                    Err(_) => {
                        "it could not be remounted read-only either; Windows may want to check it"
                    }
                };
                say(&format!(
                    "shutdown: unmounting the host volume {} at {} failed: {e}; {how}",
                    m.source,
                    m.mount_point.display()
                ));
            }
        }
    }
    clean
}

/// The `shutdown` entry point. Never returns.
pub fn run() -> ! {
    let verb = std::env::args().nth(1).unwrap_or_else(|| "poweroff".into());
    let mode = mode_for(&verb);
    say(&format!(
        "shutdown: {verb}: detaching the image and the host volume"
    ));
    // After systemd's pivot these are moved in already; alone, mount them.
    let _ = pid1::mount_pseudo_filesystems();
    // After the pivot our root is the former /run/initramfs.
    let host = read_host_note(Path::new("/")).or_else(|| read_host_note(Path::new(INITRAMFS)));
    if host.is_none() {
        say("shutdown: no recorded host device; treating NTFS and exFAT mounts as host volumes");
    }
    let hosts_seen = read_mounts()
        .iter()
        .filter(|m| role(m, host) == Role::Host)
        .count();
    if hosts_seen == 0 {
        say("shutdown: the host volume is not mounted here; it cannot be unmounted cleanly");
    }
    let loops = attached_loops();
    let stayed = unmount_target(host);
    nix::unistd::sync();
    let detached = detach_loops(loops);
    nix::unistd::sync();
    if detached && stayed.is_empty() {
        remove_records(host);
    } else {
        say(
            "shutdown: the image is still in use; the in-use record stays, so the next vhdboot \
             start asks for a check of the host volume",
        );
    }
    let clean = unmount_hosts(host) && stayed.is_empty() && detached && hosts_seen > 0;
    say(&format!(
        "shutdown: {}; {verb} now",
        if clean {
            "everything detached cleanly"
        } else {
            "NOT everything detached cleanly (see above)"
        }
    ));
    let e = pid1::sync_and_reboot(mode);
    say(&format!("shutdown: {e}"));
    pid1::exec_shell_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw
20 1 0:20 / /proc rw,nosuid - proc proc rw
21 1 0:21 / /sys rw - sysfs sysfs rw
22 1 0:5 / /dev rw - devtmpfs devtmpfs rw
23 22 0:22 / /dev/pts rw - devpts devpts rw
24 1 0:23 / /run rw - tmpfs tmpfs rw
30 24 253:1 / /run/vhdboot/host rw - ntfs3 /dev/vda1 rw
31 1 259:1 / /sysroot rw - vfat /dev/loop0p2 rw
32 31 0:30 / /sysroot/my\\040dir rw - tmpfs none rw
";

    fn entries() -> Vec<MountEntry> {
        parse_mountinfo(MOUNTINFO)
    }

    #[test]
    fn mountinfo_lines_give_device_mount_point_and_source() {
        let e = entries();
        assert_eq!(e.len(), 9);
        assert_eq!(e[6].device, (253, 1));
        assert_eq!(e[6].mount_point, PathBuf::from("/run/vhdboot/host"));
        assert_eq!(e[6].fstype, "ntfs3");
        assert_eq!(e[6].source, "/dev/vda1");
    }

    #[test]
    fn escaped_spaces_in_mount_points_are_decoded() {
        assert_eq!(entries()[8].mount_point, PathBuf::from("/sysroot/my dir"));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_mountinfo("garbage\n1 2 x / /a - t s\n").is_empty());
    }

    #[test]
    fn the_recorded_host_device_is_unmounted_last_and_api_mounts_are_kept() {
        let roles: Vec<Role> = entries().iter().map(|m| role(m, Some((253, 1)))).collect();
        use Role::*;
        assert_eq!(
            roles,
            [Keep, Keep, Keep, Keep, Keep, Keep, Host, Unmount, Unmount]
        );
    }

    #[test]
    fn without_a_note_ntfs_and_exfat_mounts_count_as_hosts() {
        let e = entries();
        assert_eq!(role(&e[6], None), Role::Host);
        assert_eq!(role(&e[7], None), Role::Unmount);
    }

    #[test]
    fn a_host_mount_that_is_not_the_recorded_device_is_unmounted_normally() {
        let e = entries();
        assert_eq!(role(&e[6], Some((8, 1))), Role::Unmount);
    }

    #[test]
    fn the_host_under_run_initramfs_is_the_host_not_a_kept_mount() {
        // Where stage 2 (carry::HOST_MOUNT) leaves it after switch-root,
        // as seen after systemd-shutdown's pivot into /run/initramfs.
        let m =
            &parse_mountinfo("40 24 253:1 / /run/initramfs/vhdboot/host rw - ntfs3 /dev/vda1 rw\n")
                [0];
        assert_eq!(role(m, Some((253, 1))), Role::Host);
        assert_eq!(role(m, None), Role::Host);
    }

    #[test]
    fn systemd_verbs_map_to_reboot_modes() {
        assert_eq!(mode_for("reboot"), pid1::RebootMode::Restart);
        assert_eq!(mode_for("poweroff"), pid1::RebootMode::PowerOff);
        assert_eq!(mode_for("halt"), pid1::RebootMode::PowerOff);
        assert_eq!(mode_for("kexec"), pid1::RebootMode::Kexec);
    }

    #[test]
    fn prepare_lays_out_a_shutdown_root_with_the_host_device() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), device_number(Path::new("/dev/null")).unwrap()).unwrap();
        for d in DIRS {
            assert!(dir.path().join(d).is_dir(), "{d}");
        }
        let shutdown = dir.path().join("shutdown");
        assert!(fs::metadata(&shutdown).unwrap().permissions().mode() & 0o111 != 0);
        // /dev/null is character device 1:3.
        assert_eq!(read_host_note(dir.path()), Some((1, 3)));
    }
}
