//! Stage 2: runs as `rdinit=/vhdboot/stage2` inside the target's initramfs.
//!
//! It mounts the host volume read-write through the kernel's own driver,
//! attaches the image to a loop device (direct I/O, partscan, size limit =
//! data size) and then execs the target's own init. On any failure it says
//! why on the console and still execs the next init, so the distro's own
//! emergency shell appears instead of a kernel panic.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vhdboot::boot::handoff::{self, Handoff, HostId, Overlay};
use vhdboot::image::vhd;
use vhdboot::modprobe;
use vhdboot::sys::{blkid, kmsg, loopdev, mount, pid1, timeline};
use vhdboot::terminal_text;

pub mod immutable;
pub mod shutdown;

/// Where stage 2 mounts the host volume. It lies under /run because
/// systemd-based initrds (dracut, mkinitcpio's systemd hook) keep the /run
/// stage 2 mounted and move it, submounts included, into the real root at
/// switch-root, and again into `/run/initramfs` at shutdown: the shutdown
/// hook can only unmount the host cleanly if it can still reach it. A mount
/// on the initramfs root itself would become unreachable after switch-root.
/// (initramfs-tools mounts a fresh /run over ours; the host then stays
/// mounted but hidden, and no clean detach happens at shutdown.)
const HOST_MOUNT: &str = "/run/vhdboot/host";

/// How long stage 2 waits for the host device to appear.
const HOST_WAIT: Duration = Duration::from_secs(30);

/// Why stage 2 could not attach the image. Each names the step and the
/// device or path, and says what to do; stage 2 hands over to the next
/// init whatever happens.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "the host volume {host} did not appear within {} s; check that the target's \
         initramfs has the disk controller's driver",
        .waited.as_secs()
    )]
    HostMissing { host: HostId, waited: Duration },
    #[error(transparent)]
    Mount(#[from] mount::MountError),
    #[error("{image} on {}: {source}", .device.display())]
    Stat {
        image: String,
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{image} is {len} bytes, but stage 1 planned for {size} data bytes; the image \
         changed, refusing to attach it"
    )]
    SizeChanged { image: String, len: u64, size: u64 },
    #[error(
        "{}={size} plus the {}-byte VHD footer is more bytes than a file can hold; the \
         kernel command line is corrupt, boot the entry from the vhdboot menu again",
        handoff::SIZE,
        vhd::FOOTER_SIZE
    )]
    SizeOverflow { size: u64 },
    #[error(transparent)]
    Loop(#[from] loopdev::LoopError),
    #[error(
        "immutable boot: {0}; the image was not attached read-write either, so that nothing \
         reaches it; boot it normally from the vhdboot menu (i switches immutable off)"
    )]
    Immutable(#[from] immutable::ImmutableError),
}

fn say(line: &str) {
    // The lines name the image's path, which comes from a disk.
    let line = terminal_text::escape_controls(line);
    let _ = kmsg::kmsg_write(&line);
    eprintln!("vhdboot: {line}");
}

/// The init the panic hook hands over to, once the handoff named it.
static NEXT_INIT: OnceLock<String> = OnceLock::new();

/// Set by the first panic, so that a panic on a second thread cannot
/// start a second hand-over while the first one runs.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// The init a panic hands over to: the one the handoff named if it was
/// read already, else the default, as when the handoff is unreadable.
fn init_after_panic(named: &OnceLock<String>) -> &str {
    named.get().map_or(handoff::DEFAULT_NEXT, String::as_str)
}

/// A panic in stage 2 must not become a kernel panic (stage 2 is PID 1):
/// the hook says what happened and execs the next init, as every other
/// failure of stage 2 does, so the distro's own boot or emergency shell
/// follows. It never returns: the release profile aborts after the hook,
/// and an abort in PID 1 is a kernel panic. A panic inside the hook itself
/// aborts in std without calling the hook again, so it cannot recurse.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if PANICKING.swap(true, Ordering::SeqCst) {
            // Another thread is handing over already; the exec ends us.
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let next = init_after_panic(&NEXT_INIT);
        say(&format!(
            "stage 2 internal error: {info}. Handing over to {next} anyway; the distro's \
             emergency shell may follow."
        ));
        hand_over(next)
    }));
}

pub fn run() -> ! {
    install_panic_hook();
    let started = Instant::now();
    let t0 = timeline::monotonic();
    for e in pid1::mount_pseudo_filesystems() {
        say(&e.to_string());
    }
    timeline::mark_at("stage 2 start", t0);
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let next = match Handoff::parse(&cmdline) {
        Ok(handoff) => {
            let next = handoff.next.clone();
            // A panic while attaching still hands over to this init.
            let _ = NEXT_INIT.set(next.clone());
            match attach(&handoff) {
                Ok(msg) => say(&format!("{msg} ({} ms)", started.elapsed().as_millis())),
                Err(e) => say(&format!(
                    "stage 2 failed: {e}. Handing over to {next} anyway; the distro's emergency shell will follow."
                )),
            }
            next
        }
        Err(e) => {
            say(&format!("stage 2 cannot read its parameters: {e}"));
            handoff::DEFAULT_NEXT.to_string()
        }
    };
    exec_next(&next)
}

/// Loads the modules, mounts the host and attaches the loop device.
/// Returns the line logged on success.
fn attach(h: &Handoff) -> Result<String, AttachError> {
    let ram_limit = h.overlay.map(|Overlay::Ram { limit }| {
        limit.unwrap_or_else(|| {
            immutable::auto_limit(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
        })
    });
    if let Some(limit) = ram_limit {
        say(&immutable::limit_notice(limit));
    }
    let mut modules = vec!["loop", h.fstype.driver()];
    if ram_limit.is_some() {
        modules.extend_from_slice(&Overlay::MODULES);
    }
    load_modules(&modules);
    let device = wait_for_host(&h.host)?;
    // An immutable boot never writes the host: nothing can reach the
    // user's disk, and no clean detach is needed at power-off.
    let mode = if ram_limit.is_some() {
        mount::MountMode::ReadOnly
    } else {
        mount::MountMode::ReadWrite
    };
    mount::mount_fs(&device, Path::new(HOST_MOUNT), h.fstype.driver(), mode, "")?;
    timeline::mark("host mounted");
    let file = Path::new(HOST_MOUNT).join(h.image.trim_start_matches('/'));
    let len = std::fs::metadata(&file)
        .map_err(|source| AttachError::Stat {
            image: h.image.clone(),
            device: device.clone(),
            source,
        })?
        .len();
    check_size(&h.image, len, h.size)?;
    if let Some(limit) = ram_limit {
        let stack = immutable::attach(&file, h.size, limit)?;
        timeline::mark("immutable stack attached");
        return Ok(format!("{}: {stack}", h.image));
    }
    let cfg = loopdev::LoopConfig {
        direct_io: true,
        partscan: true,
        size_limit: h.size,
        // Left at 0, the kernel gives a direct-I/O loop device the host
        // disk's block size: 4096 on a 4Kn disk, where the kernel then finds
        // no partition table in the VHD (it counts 512-byte sectors).
        block_size: vhd::SECTOR_SIZE,
        ..loopdev::LoopConfig::default()
    };
    let lo = loopdev::attach(&file, &cfg)?;
    let dio = match lo.direct_io_enabled() {
        Ok(true) => "direct I/O on".to_string(),
        Ok(false) => direct_io_off_reason(&device),
        Err(_) => "direct I/O state unknown".to_string(),
    };
    let parts = loopdev::wait_for_partitions(&lo, Duration::from_secs(5));
    timeline::mark("loop attached");
    let detach = match shutdown::prepare(Path::new(shutdown::INITRAMFS), &device) {
        Ok(()) => format!("{}/shutdown ready", shutdown::INITRAMFS),
        Err(e) => format!("no clean detach at shutdown: {e}"),
    };
    Ok(format!(
        "{} on {}, {dio}, {} partition(s), {detach}",
        h.image,
        lo.path.display(),
        parts.len()
    ))
}

/// Checks that the image file is still `size` data bytes, with or without
/// its footer. `size` comes from the kernel command line, so the sum is
/// checked: a wrap would accept a file of the wrong size.
fn check_size(image: &str, len: u64, size: u64) -> Result<(), AttachError> {
    let with_footer = size
        .checked_add(vhd::FOOTER_SIZE)
        .ok_or(AttachError::SizeOverflow { size })?;
    if len == with_footer || len == size {
        Ok(())
    } else {
        Err(AttachError::SizeChanged {
            image: image.to_string(),
            len,
            size,
        })
    }
}

/// Why the kernel turned direct I/O off, as far as we can tell.
fn direct_io_off_reason(host_device: &Path) -> String {
    match loopdev::logical_block_size_of(host_device) {
        Some(host) if host > u64::from(vhd::SECTOR_SIZE) => format!(
            "direct I/O OFF: {} has {host}-byte sectors and a VHD {}-byte ones, so the loop device \
             cannot pass I/O straight through; expect slower disk access (a host disk with \
             512-byte sectors avoids this)",
            host_device.display(),
            vhd::SECTOR_SIZE
        ),
        _ => "direct I/O OFF (the backing filesystem refused it; expect slow disk access)"
            .to_string(),
    }
}

fn load_modules(modules: &[&str]) {
    let loaded = modprobe::load_boot_modules(modules);
    if let Some(why) = loaded.unavailable {
        say(&why);
    }
    for (m, e) in loaded.failed {
        say(&format!("loading {m}: {e}"));
    }
}

fn wait_for_host(host: &HostId) -> Result<PathBuf, AttachError> {
    let deadline = Instant::now() + HOST_WAIT;
    loop {
        for dev in blkid::probe_block_devices(Path::new("/sys")) {
            let hit = match host {
                HostId::Uuid(u) => dev
                    .uuid
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(u)),
                HostId::PartUuid(u) => dev
                    .partuuid
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(u)),
            };
            if hit {
                return Ok(dev.device);
            }
        }
        if Instant::now() >= deadline {
            return Err(AttachError::HostMissing {
                host: host.clone(),
                waited: HOST_WAIT,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Execs the next init with our own arguments; the environment is
/// inherited. Never returns.
fn exec_next(next: &str) -> ! {
    timeline::mark("exec next init");
    say(&timeline::summary());
    hand_over(next)
}

/// Execs `next`, or a shell loop if that fails. The panic hook calls this
/// directly: the timeline's lock may be held by the code that panicked.
fn hand_over(next: &str) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = pid1::exec_init(Path::new(next), &refs);
    say(&format!("{e}; starting /bin/sh instead"));
    pid1::exec_shell_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_before_the_handoff_is_read_hands_over_to_the_default_init() {
        assert_eq!(init_after_panic(&OnceLock::new()), handoff::DEFAULT_NEXT);
    }

    #[test]
    fn panic_after_the_handoff_is_read_hands_over_to_its_init() {
        let named = OnceLock::new();
        let _ = named.set("/sbin/init".to_string());
        assert_eq!(init_after_panic(&named), "/sbin/init");
    }

    #[test]
    fn image_with_or_without_its_footer_has_the_planned_size() {
        assert!(check_size("/a.vhd", 1024 + 512, 1024).is_ok());
        assert!(check_size("/a.img", 1024, 1024).is_ok());
    }

    #[test]
    fn image_of_another_size_is_refused_naming_it() {
        let err = check_size("/a.vhd", 4096, 1024).unwrap_err();
        assert!(matches!(err, AttachError::SizeChanged { .. }), "{err}");
        assert!(err.to_string().contains("/a.vhd is 4096 bytes"), "{err}");
    }

    #[test]
    fn footer_size_overflow_is_an_error_not_a_wrap() {
        // u64::MAX - 511 + 512 wraps to 0: a wrap would accept an empty file.
        let size = u64::MAX - 511;
        let err = check_size("/a.vhd", 0, size).unwrap_err();
        assert!(matches!(err, AttachError::SizeOverflow { .. }), "{err}");
        assert!(err.to_string().contains("vhdboot.size="), "{err}");
        assert!(matches!(
            check_size("/a.vhd", u64::MAX, u64::MAX),
            Err(AttachError::SizeOverflow { .. })
        ));
    }
}
