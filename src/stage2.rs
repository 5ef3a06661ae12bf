//! Stage 2: runs as `rdinit=/vhdboot/stage2` inside the target's initramfs.
//!
//! It mounts the host volume read-write through the kernel's own driver,
//! attaches the image to a loop device (direct I/O, partscan, size limit =
//! data size) and then execs the target's own init. On any failure it says
//! why on the console and still execs the next init, so the distro's own
//! emergency shell appears instead of a kernel panic.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vhdboot::boot::cpio;
use vhdboot::boot::handoff::{self, Handoff, HostId, Overlay};
use vhdboot::boot::host_match::{self, Candidate, HostMatchError};
use vhdboot::boot::plan;
use vhdboot::discovery::preflight;
use vhdboot::image::modules_index::canonical_name;
use vhdboot::image::vhd;
use vhdboot::model::{FsType, VolumeBadge};
use vhdboot::modprobe;
use vhdboot::sys::modules::{ModuleError, finit_module};
use vhdboot::sys::{blkid, kmsg, loopdev, mount, pid1, timeline};
use vhdboot::terminal_text;

pub mod carry;
pub mod immutable;
pub mod record;
pub mod shutdown;
pub mod trial;

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
    #[error("looking for the host volume {host}: {source}")]
    HostMatch {
        host: HostId,
        #[source]
        source: HostMatchError,
    },
    #[error(
        "{} is {why}; stage 2 does not mount it read-write: {hint}",
        .device.display()
    )]
    HostUnsafe {
        device: PathBuf,
        why: String,
        hint: &'static str,
    },
    #[error(
        "{} was mounted read-only by the kernel although stage 2 asked for read-write{}; \
         unmounted it, nothing was written",
        .device.display(),
        match .kernel.as_slice() {
            [] => String::new(),
            lines => format!(" (kernel: {})", lines.join("; ")),
        }
    )]
    MountedReadOnly {
        device: PathBuf,
        kernel: Vec<String>,
    },
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
    #[error(
        "trial boot: {0}; the image itself was not changed; boot it normally or discard the \
         trial from the vhdboot menu"
    )]
    Trial(#[from] trial::TrialError),
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

/// Loads the modules, checks and mounts the host and attaches the loop
/// device. Returns the line logged on success. Once the host is mounted,
/// any failure unmounts it again before the error is returned: the
/// distro's emergency shell must not find the user's volume mounted
/// read-write.
fn attach(h: &Handoff) -> Result<String, AttachError> {
    let ram_limit = match h.overlay {
        Some(Overlay::Ram { limit }) => Some(limit.unwrap_or_else(|| {
            immutable::auto_limit(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
        })),
        _ => None,
    };
    if let Some(limit) = ram_limit {
        say(&immutable::limit_notice(limit));
    }
    load_carried_modules();
    let mut modules = vec!["loop", h.fstype.driver()];
    if h.overlay.is_some() {
        modules.extend_from_slice(&Overlay::MODULES);
    }
    let mut hotplug = load_modules(&modules);
    let (device, size) = wait_for_host(h, &mut hotplug)?;
    let generator = carry::Generator::detect(Path::new("/"));
    if generator == carry::Generator::KeepsRun
        && let Err(e) = carry::mount_run(Path::new("/"))
    {
        say(&format!(
            "{e}; systemd may hide the host under a /run of its own"
        ));
    }
    let host_mount = Path::new(generator.first_mount());
    check_device(&device, size, h, host_mount)?;
    // An immutable boot never writes the host: nothing can reach the
    // user's disk, and no clean detach is needed at power-off.
    let mode = if ram_limit.is_some() {
        mount::MountMode::ReadOnly
    } else {
        mount::MountMode::ReadWrite
    };
    mount::mount_fs(&device, host_mount, h.fstype.driver(), mode, "")?;
    attach_on_mounted_host(h, &device, host_mount, generator, ram_limit).inspect_err(|_| {
        match mount::umount_fs(host_mount) {
            Ok(mount::Unmounted::Clean) => say(&format!("unmounted {}", device.display())),
            Ok(mount::Unmounted::Detached) => say(&format!(
                "{} was busy and was detached lazily",
                device.display()
            )),
            Err(e) => say(&format!("{e}; the host stays mounted")),
        }
    })
}

/// Stage 1's checks again, on the very device stage 2 is about to mount:
/// its own bytes (dirty flag, journal, size), then Windows' hibernation
/// file through a read-only mount that is undone before the read-write
/// one.
fn check_device(
    device: &Path,
    size: u64,
    h: &Handoff,
    host_mount: &Path,
) -> Result<(), AttachError> {
    let (badges, notes) = preflight::device_badges(device, &h.fstype, size);
    for note in notes {
        say(&note);
    }
    if let Some((why, hint)) = badges.iter().find_map(|b| stage2_refusal(b, &h.fstype)) {
        return Err(AttachError::HostUnsafe {
            device: device.to_path_buf(),
            why,
            hint,
        });
    }
    if h.fstype != FsType::Ntfs {
        return Ok(());
    }
    let at = host_mount;
    mount::mount_fs(
        device,
        at,
        h.fstype.driver(),
        mount::MountMode::ReadOnly,
        "",
    )?;
    let hibernated = preflight::hibernation_badge(at);
    mount::umount_fs(at)?;
    match hibernated {
        Ok(Some(badge)) => {
            let (why, hint) = stage2_refusal(&badge, &h.fstype).unwrap_or_default();
            Err(AttachError::HostUnsafe {
                device: device.to_path_buf(),
                why,
                hint,
            })
        }
        Ok(None) => Ok(()),
        Err(e) => {
            say(&format!("cannot check for hibernation: {e}"));
            Ok(())
        }
    }
}

/// Why stage 2 refuses a device with `badge`, and the fix: stage 1's own
/// table (`boot::plan::unsafe_state`), so both stages word each state
/// alike. None for the badges that do not stop a read-write mount.
fn stage2_refusal(badge: &VolumeBadge, fstype: &FsType) -> Option<(String, &'static str)> {
    plan::unsafe_state(badge, fstype).map(|row| match badge {
        // The device's own size is the fact the user needs to fix it.
        VolumeBadge::LargerThanPartition { filesystem_bytes } => (
            format!(
                "{} (its boot sector claims {filesystem_bytes} bytes)",
                row.state
            ),
            row.hint,
        ),
        _ => (row.state.to_string(), row.hint),
    })
}

/// Writes the in-use record on the host before anything runs from it, and
/// says how that went: a crash after the attach must leave the record.
fn in_use_record(host_mount: &Path, image: &str) -> String {
    match record::write(host_mount, image) {
        Ok(path) => format!("in-use record {} written", path.display()),
        Err(e) => format!(
            "the in-use record {} could not be written ({e}); a crash of this boot will go \
             unnoticed by the next vhdboot start",
            record::path_on(host_mount).display()
        ),
    }
}

/// The steps after the host is mounted (read-write, or read-only for an
/// immutable boot).
fn attach_on_mounted_host(
    h: &Handoff,
    device: &Path,
    host_mount: &Path,
    generator: carry::Generator,
    ram_limit: Option<u64>,
) -> Result<String, AttachError> {
    // The kernel may have made the superblock read-only on its own: the
    // mount call succeeded, and only the mount's flags tell.
    if ram_limit.is_none() && mount::is_read_only(host_mount)? {
        return Err(AttachError::MountedReadOnly {
            device: device.to_path_buf(),
            kernel: mount::recent_kernel_lines(device, h.fstype.driver())
                .into_iter()
                .filter(|l| l.to_ascii_lowercase().contains("read-only"))
                .collect(),
        });
    }
    timeline::mark("host mounted");
    let device = device.to_path_buf();
    let file = host_mount.join(h.image.trim_start_matches('/'));
    let len = std::fs::metadata(&file)
        .map_err(|source| AttachError::Stat {
            image: h.image.clone(),
            device: device.clone(),
            source,
        })?
        .len();
    check_size(&h.image, len, h.size)?;
    // Snapshot stacks need the same hand-over of the host mount as a
    // plain boot: under initramfs-tools the host sits on the initramfs
    // root until init-bottom moves it into /run, and run-init refuses to
    // switch root while anything is still mounted there.
    if let Some(limit) = ram_limit {
        let stack = immutable::attach(&file, h.size, limit)?;
        timeline::mark("immutable stack attached");
        return Ok(format!(
            "{}: {stack}, {}",
            h.image,
            detach_words(generator, &device)
        ));
    }
    if let Some(Overlay::Trial { size: store_size }) = h.overlay {
        // The host is mounted read-write: the trial store is written, the
        // image file is only read (see `trial`'s module comment). The
        // store is the user's data too, so the in-use record goes first,
        // as for a plain boot: a crash must leave it for the next start.
        let recorded = in_use_record(host_mount, &h.image);
        let stack = match trial::attach(&file, h.size, store_size) {
            Ok(stack) => stack,
            Err(e) => {
                // Nothing ran from the host: the record would only block it.
                let _ = record::remove(host_mount);
                return Err(e.into());
            }
        };
        timeline::mark("trial stack attached");
        return Ok(format!(
            "{}: {stack}, {recorded}, {}",
            h.image,
            detach_words(generator, &device)
        ));
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
    // The record goes first: a crash right after the attach must leave it.
    let recorded = in_use_record(host_mount, &h.image);
    let lo = match loopdev::attach(&file, &cfg) {
        Ok(lo) => lo,
        Err(e) => {
            // Nothing ran from the host: the record would only block it.
            let _ = record::remove(host_mount);
            return Err(e.into());
        }
    };
    let dio = match lo.direct_io_enabled() {
        Ok(true) => "direct I/O on".to_string(),
        Ok(false) => direct_io_off_reason(&device),
        Err(_) => "direct I/O state unknown".to_string(),
    };
    let parts = loopdev::wait_for_partitions(&lo, Duration::from_secs(5));
    timeline::mark("loop attached");
    let detach = detach_words(generator, &device);
    Ok(format!(
        "{} on {}, {dio}, {} partition(s), host {} at {}, {recorded}, {detach}",
        h.image,
        lo.path.display(),
        parts.len(),
        device.display(),
        host_mount.display()
    ))
}

/// `prepare_detach`'s outcome in the words of stage 2's log line.
fn detach_words(generator: carry::Generator, device: &Path) -> String {
    match prepare_detach(generator, device) {
        Ok(how) => how,
        Err(e) => format!("no clean detach at shutdown: {e}"),
    }
}

/// Arranges the clean detach at shutdown for the init that follows (see
/// `carry`). Returns the words for stage 2's log line.
fn prepare_detach(generator: carry::Generator, device: &Path) -> Result<String, String> {
    match generator {
        carry::Generator::KeepsRun => {
            let host = shutdown::device_number(device).map_err(|e| e.to_string())?;
            shutdown::prepare(Path::new(shutdown::INITRAMFS), host).map_err(|e| e.to_string())?;
            Ok(format!("{}/shutdown ready", shutdown::INITRAMFS))
        }
        carry::Generator::InitramfsTools => {
            carry::register_init_bottom(Path::new("/"))
                .map_err(|e| format!("registering the initramfs-tools init-bottom hook: {e}"))?;
            Ok(format!(
                "initramfs-tools: init-bottom will move the host to {} and prepare {}/shutdown",
                carry::HOST_MOUNT,
                shutdown::INITRAMFS
            ))
        }
    }
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

/// Loads the modules stage 1 carried from the image's own /lib/modules
/// (`boot::cpio::CARRIED_DIR`), in the listed order (dependencies first),
/// before anything else needs them, and says which and from where.
/// Nothing is said when none were carried.
fn load_carried_modules() {
    let dir = Path::new(cpio::CARRIED_DIR);
    let list_path = dir.join(cpio::CARRIED_LIST);
    let mut text = String::new();
    match std::fs::File::open(&list_path)
        .and_then(|f| f.take(cpio::MAX_CARRIED_LIST).read_to_string(&mut text))
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            say(&format!(
                "the carried modules were not loaded: {} is unreadable: {e}",
                list_path.display()
            ));
            return;
        }
    }
    let (origin, files) = match cpio::parse_carried_list(&text) {
        Ok(list) => list,
        Err(why) => {
            say(&format!(
                "the carried modules were not loaded: {} is unusable: {why}",
                list_path.display()
            ));
            return;
        }
    };
    let mut names = Vec::new();
    let mut present = Vec::new();
    let mut failed = Vec::new();
    for file in &files {
        let name = canonical_name(file);
        names.push(name.clone());
        if Path::new("/sys/module").join(&name).exists() {
            present.push(name);
            continue;
        }
        match finit_module(&name, &dir.join(file)) {
            Ok(()) => {}
            Err(ModuleError::Init {
                errno: nix::errno::Errno::EEXIST,
                ..
            }) => present.push(name),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let mut line = format!("carried modules {} from {origin}", names.join(", "));
    if !present.is_empty() {
        line.push_str(&format!(" ({} already present)", present.join(", ")));
    }
    if failed.is_empty() {
        line.push_str(": loaded");
    } else {
        line.push_str(&format!(": loading failed: {}", failed.join("; ")));
    }
    say(&line);
    timeline::mark("carried modules loaded");
}

/// Returns the coldplug, to run again while the host is awaited.
fn load_modules(modules: &[&str]) -> Option<modprobe::Coldplug> {
    // What the carried modules gave is loaded already; asking the target's
    // own index for it again would only report it missing there.
    let wanted: Vec<&str> = modules
        .iter()
        .copied()
        .filter(|m| !Path::new("/sys/module").join(m).exists())
        .collect();
    let loaded = modprobe::load_boot_modules(&wanted);
    if let Some(why) = loaded.unavailable {
        say(&why);
    }
    for (m, e) in loaded.failed {
        say(&format!("loading {m}: {e}"));
    }
    loaded.hotplug
}

/// Waits for the one device that matches everything stage 1 handed over.
/// Two matching devices end the wait at once; a device that shares the id
/// but differs in another fact is reported when the wait runs out.
/// Returns the device and its size. Meanwhile the coldplug runs again
/// every half second: a host on a USB disk enumerates some time after its
/// controller's driver loaded, and then needs usb-storage and sd_mod.
fn wait_for_host(
    h: &Handoff,
    hotplug: &mut Option<modprobe::Coldplug>,
) -> Result<(PathBuf, u64), AttachError> {
    let deadline = Instant::now() + HOST_WAIT;
    let mut next_coldplug = Instant::now() + Duration::from_millis(500);
    loop {
        if let Some(plug) = hotplug.as_mut()
            && Instant::now() >= next_coldplug
        {
            next_coldplug = Instant::now() + Duration::from_millis(500);
            for line in plug.run().late_lines() {
                say(&line);
            }
        }
        let candidates: Vec<Candidate> = blkid::probe_block_devices(Path::new("/sys"))
            .into_iter()
            .map(|d| Candidate {
                device: d.device,
                uuid: d.uuid,
                partuuid: d.partuuid,
                fstype: d.fstype,
                size: d.size,
            })
            .collect();
        let error = match host_match::match_host(&h.identity, &h.fstype, &candidates) {
            Ok(device) => {
                let size = candidates
                    .iter()
                    .find(|c| c.device == device)
                    .map_or(0, |c| c.size);
                return Ok((device, size));
            }
            Err(e) => e,
        };
        if !error.may_resolve() || Instant::now() >= deadline {
            return Err(match error {
                HostMatchError::Missing => AttachError::HostMissing {
                    host: h.host.clone(),
                    waited: HOST_WAIT,
                },
                source => AttachError::HostMatch {
                    host: h.host.clone(),
                    source,
                },
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
    fn every_unsafe_state_is_refused_with_its_fix_and_facts_are_not() {
        for (badge, fix) in [
            (VolumeBadge::Dirty, "chkdsk"),
            (VolumeBadge::UncleanLog, "Restart"),
            (VolumeBadge::Hibernated, "Fast Startup"),
            (VolumeBadge::HibernatedElsewhere, "Fast Startup"),
            (
                VolumeBadge::LargerThanPartition {
                    filesystem_bytes: 4096,
                },
                "partition",
            ),
        ] {
            let (why, hint) = stage2_refusal(&badge, &FsType::Ntfs).unwrap();
            assert!(!why.is_empty() && hint.contains(fix), "{badge:?}: {hint}");
        }
        for badge in [VolumeBadge::Removable, VolumeBadge::DuplicateId] {
            assert_eq!(stage2_refusal(&badge, &FsType::Ntfs), None);
        }
    }

    #[test]
    fn a_mount_the_kernel_made_read_only_is_reported_with_its_line() {
        let err = AttachError::MountedReadOnly {
            device: "/dev/vda3".into(),
            kernel: vec![
                "ntfs3(vda3): RAW NTFS volume: Filesystem size 0.20 Gb > volume size 0.19 Gb. \
                 Mount in read-only."
                    .into(),
            ],
        };
        let text = err.to_string();
        assert!(
            text.contains("RAW NTFS volume") && text.contains("unmounted it"),
            "{text}"
        );
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
