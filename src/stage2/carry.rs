//! Getting the host mount and the shutdown hook into the real root's /run,
//! whatever initramfs generator made the target's initrd, without
//! installing anything in the target.
//!
//! Where the host ends up: `/run/initramfs/vhdboot/host`. systemd treats
//! every mount under /run/initramfs as outside its control ("extrinsic",
//! like the API filesystems): no mount unit of it is stopped at shutdown,
//! and systemd-shutdown's unmount loop skips it. So the host stays mounted
//! while the target's root is unmounted, and our `/run/initramfs/shutdown`
//! (which systemd-shutdown execs after pivoting into /run/initramfs, see
//! `shutdown`) finds it there, detaches the loop device and only then
//! unmounts the host. A host mount anywhere else under /run was unmounted
//! by systemd as an ordinary mount unit while the root still sat on it.
//!
//! How it gets there depends on the init stage 2 hands over to:
//! - systemd in the initrd (dracut, mkinitcpio's systemd hook) and dracut's
//!   shell init keep a /run that is already mounted and move it into the
//!   real root, submounts included. Stage 2 mounts that tmpfs on /run
//!   itself, and one more on /run/initramfs, so the host mount and the
//!   hook sit in them from the start.
//! - initramfs-tools mounts a fresh tmpfs over /run whatever is there and
//!   moves only that one into the real root. Stage 2 then mounts the host
//!   on the initramfs root (`/vhdboot/host`) and appends one line to
//!   initramfs-tools' own init-bottom list (in the initramfs in memory,
//!   never on the target's disk); run there, this binary moves the host
//!   into the new /run/initramfs and lays out the shutdown hook beside it.
//!   That /run is noexec, so /run/initramfs gets a tmpfs of its own first:
//!   systemd-shutdown runs the hook only if it may execute it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use vhdboot::sys::mount::parse_mountinfo;
use vhdboot::sys::{kmsg, mount, teardown};

use super::shutdown;

/// Where the host volume is mounted in the end (see the module comment).
pub const HOST_MOUNT: &str = "/run/initramfs/vhdboot/host";
/// Where stage 2 mounts it under initramfs-tools, until init-bottom.
const STAGING_MOUNT: &str = "/vhdboot/host";
/// The name this binary runs under as the initramfs-tools hook (a symlink
/// beside `/vhdboot/stage2`; main.rs dispatches on it).
pub const INIT_BOTTOM_NAME: &str = "init-bottom";
/// initramfs-tools sources this list at init-bottom, after the real root
/// is mounted and before it moves /run into it.
const INIT_BOTTOM_ORDER: &str = "scripts/init-bottom/ORDER";

/// The init that follows stage 2, as far as the detach cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// Debian's and Ubuntu's initramfs-tools: a fresh /run, init-bottom.
    InitramfsTools,
    /// Anything that keeps a mounted /run: systemd, dracut, a plain init.
    KeepsRun,
}

impl Generator {
    /// Tells initramfs-tools by the files its /init sources.
    pub fn detect(initramfs_root: &Path) -> Generator {
        let tools = ["scripts/functions", "conf/initramfs.conf"]
            .iter()
            .all(|f| initramfs_root.join(f).is_file());
        if tools {
            Generator::InitramfsTools
        } else {
            Generator::KeepsRun
        }
    }

    /// Where stage 2 mounts the host for this init.
    pub fn first_mount(self) -> &'static str {
        match self {
            Generator::InitramfsTools => STAGING_MOUNT,
            Generator::KeepsRun => HOST_MOUNT,
        }
    }
}

fn say(line: &str) {
    let _ = kmsg::kmsg_write(line);
    eprintln!("vhdboot: {line}");
}

/// Makes sure /run is a mount of its own before the host goes under it,
/// so that systemd or dracut keep it (they stack a new tmpfs only on a /run
/// that is not mounted, which would hide the host), then gives
/// /run/initramfs a tmpfs of its own, as under initramfs-tools: with the
/// shutdown root on the same mount as /run, systemd-shutdown's pivot left
/// /run (and with it the target's root) impossible to unmount.
pub fn mount_run(root: &Path) -> Result<(), String> {
    let run = root.join("run");
    let mounted = fs::read_to_string("/proc/self/mountinfo")
        .map(|t| mount::mountinfo_has_mount_point(&t, &run))
        .unwrap_or(false);
    if !mounted {
        fs::create_dir_all(&run).map_err(|e| format!("creating {}: {e}", run.display()))?;
        teardown::mount_tmpfs(&run)
            .map_err(|e| format!("mounting a tmpfs on {}: {e}", run.display()))?;
    }
    exec_tmpfs_on(&run.join("initramfs")).map(drop)
}

/// The line stage 2 appends to initramfs-tools' init-bottom list.
fn order_line(root: &Path) -> String {
    let hook = root.join("vhdboot").join(INIT_BOTTOM_NAME);
    format!(
        "# vhdboot: carry the host volume into /run/initramfs (added in memory by stage 2)\n\
         [ -x {0} ] && {0}\n",
        hook.display()
    )
}

/// Registers the init-bottom hook of an initramfs-tools initrd unpacked at
/// `root`: the `init-bottom` link to this binary, then one line at the end
/// of the list (created if the initrd has no init-bottom scripts).
pub fn register_init_bottom(root: &Path) -> io::Result<()> {
    let link = root.join("vhdboot").join(INIT_BOTTOM_NAME);
    if fs::symlink_metadata(&link).is_err() {
        symlink("stage2", &link)?;
    }
    let order = root.join(INIT_BOTTOM_ORDER);
    if let Some(dir) = order.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().append(true).create(true).open(&order)?;
    // The list may not end with a newline.
    file.write_all(b"\n")?;
    file.write_all(order_line(Path::new("/")).as_bytes())
}

/// The initramfs-tools hook: moves the host from `/vhdboot/host` into the
/// /run that init moves into the real root next, and lays out the
/// shutdown hook there. Exits 0 whatever happens: init goes on anyway.
pub fn run_init_bottom() -> ! {
    match carry_into_run() {
        Ok(line) => say(&line),
        Err(e) => say(&format!(
            "initramfs-tools init-bottom: {e}; the host volume stays where stage 2 mounted it \
             and no clean detach will happen at shutdown"
        )),
    }
    std::process::exit(0)
}

fn carry_into_run() -> Result<String, String> {
    let staging = Path::new(STAGING_MOUNT);
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let host = mounts
        .iter()
        .find(|m| m.mount_point == staging)
        .ok_or_else(|| format!("nothing is mounted at {STAGING_MOUNT} (stage 2 failed earlier)"))?;
    let kept = exec_tmpfs_on(Path::new(shutdown::INITRAMFS))?;
    let target = PathBuf::from(HOST_MOUNT);
    fs::create_dir_all(&target).map_err(|e| format!("creating {HOST_MOUNT}: {e}"))?;
    teardown::move_mount(staging, &target)
        .map_err(|e| format!("moving {STAGING_MOUNT} to {HOST_MOUNT}: {e}"))?;
    shutdown::prepare(Path::new(shutdown::INITRAMFS), host.device)
        .map_err(|e| format!("host moved to {HOST_MOUNT}, but {e}"))?;
    Ok(format!(
        "initramfs-tools init-bottom: host volume {} moved to {HOST_MOUNT}; {}/shutdown ready \
         on a tmpfs of its own ({kept} file(s) of initramfs-tools kept)",
        host.source,
        shutdown::INITRAMFS
    ))
}

/// The most bytes of one initramfs-tools file carried over; its files
/// there are logs and flags (fsck.log, fsck-root).
const KEEP_MAX: u64 = 1 << 20;

/// Mounts a tmpfs that allows exec on `dir` (/run/initramfs), keeping the
/// regular files initramfs-tools left in it. initramfs-tools mounts /run
/// noexec, and systemd-shutdown only runs `/run/initramfs/shutdown` when
/// access(X_OK) allows it, then execs it from a bind mount of that
/// directory, which keeps the noexec. Returns how many files were kept.
fn exec_tmpfs_on(dir: &Path) -> Result<usize, String> {
    use std::io::Read;
    let mut files = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                say(&format!(
                    "{} is not a regular file; it is hidden by the new tmpfs",
                    path.display()
                ));
                continue;
            }
            let mut bytes = Vec::new();
            match fs::File::open(&path).and_then(|f| f.take(KEEP_MAX).read_to_end(&mut bytes)) {
                Ok(_) => files.push((entry.file_name(), bytes)),
                Err(e) => say(&format!(
                    "reading {}: {e}; it is hidden by the new tmpfs",
                    path.display()
                )),
            }
        }
    }
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    teardown::mount_tmpfs(dir)
        .map_err(|e| format!("mounting a tmpfs on {}: {e}", dir.display()))?;
    let mut kept = 0;
    for (name, bytes) in files {
        let path = dir.join(&name);
        match fs::write(&path, bytes) {
            Ok(()) => kept += 1,
            Err(e) => say(&format!("writing {} back: {e}", path.display())),
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initramfs_tools_initrd_is_told_by_its_scripts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Generator::detect(dir.path()), Generator::KeepsRun);
        fs::create_dir_all(dir.path().join("scripts")).unwrap();
        fs::create_dir_all(dir.path().join("conf")).unwrap();
        fs::write(dir.path().join("scripts/functions"), "").unwrap();
        assert_eq!(Generator::detect(dir.path()), Generator::KeepsRun);
        fs::write(dir.path().join("conf/initramfs.conf"), "").unwrap();
        assert_eq!(Generator::detect(dir.path()), Generator::InitramfsTools);
    }

    #[test]
    fn only_initramfs_tools_mounts_the_host_outside_run_first() {
        assert_eq!(Generator::InitramfsTools.first_mount(), "/vhdboot/host");
        assert_eq!(Generator::KeepsRun.first_mount(), HOST_MOUNT);
        assert!(HOST_MOUNT.starts_with(shutdown::INITRAMFS));
    }

    #[test]
    fn the_hook_is_appended_after_the_existing_list_and_linked_to_stage2() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("vhdboot")).unwrap();
        fs::create_dir_all(dir.path().join("scripts/init-bottom")).unwrap();
        let order = dir.path().join(INIT_BOTTOM_ORDER);
        // Debian's list ends without a newline after its last line.
        fs::write(&order, "/scripts/init-bottom/udev \"$@\"").unwrap();
        register_init_bottom(dir.path()).unwrap();
        let text = fs::read_to_string(&order).unwrap();
        assert!(
            text.starts_with("/scripts/init-bottom/udev \"$@\"\n"),
            "{text}"
        );
        assert!(
            text.ends_with("[ -x /vhdboot/init-bottom ] && /vhdboot/init-bottom\n"),
            "{text}"
        );
        let link = dir.path().join("vhdboot").join(INIT_BOTTOM_NAME);
        assert_eq!(fs::read_link(link).unwrap(), PathBuf::from("stage2"));
    }

    #[test]
    fn without_init_bottom_scripts_the_list_is_created() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("vhdboot")).unwrap();
        register_init_bottom(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(INIT_BOTTOM_ORDER)).unwrap();
        assert!(text.contains("/vhdboot/init-bottom"), "{text}");
    }
}
