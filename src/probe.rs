//! Reading untrusted disk content in a child process (issue 11). PID 1
//! starts the same static binary as `vhdboot probe …` for each image at
//! discovery and for the kernel and initrd at boot; the child runs under the
//! configured memory, CPU and wall-clock limits (`sys::bounded`) and answers
//! with JSON on its stdout. An image whose child hits a limit, dies or
//! answers garbage is listed as skipped with the reason, and the menu comes
//! up with every other image. petitboot keeps its discover server apart
//! from its UI for the same reason.
//!
//! Both faces use this module, and it uses neither: stage 1 and `vhdboot
//! scan` through `live_scan`, stage 1's boot through [`prepare_boot`], and
//! the CLI's hidden `probe` subcommand runs the child side.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vhdboot::boot::cpio;
use vhdboot::boot::handoff::Overlay;
use vhdboot::boot::plan::BootPlan;
use vhdboot::config::ChildLimits;
use vhdboot::discovery::preflight;
use vhdboot::discovery::scan::describe_image_with;
use vhdboot::image::readahead::ReadAhead;
use vhdboot::image::{carry, initrd, inspect};
use vhdboot::model::{EntrySource, Image, ImageKind, Problem};
use vhdboot::sys::bounded::{self, BoundedError, Limits};
use vhdboot::sys::{fileinfo, timeline};
use vhdboot::tui::host::Failure;

pub mod mounted;

/// The most JSON an image's child may print. A described image is a few KiB;
/// the parsers' own caps keep even a hostile one far below this.
const MAX_IMAGE_ANSWER: usize = 4 << 20;
/// The boot child prints one small verdict.
const MAX_LOAD_ANSWER: usize = 1 << 20;
/// The descriptors the boot child writes the kernel and the initrd to.
const KERNEL_FD: i32 = 3;
const INITRD_FD: i32 = 4;

/// The binary to start as the child: this very binary, whatever its name on
/// disk, so that stage 1 (PID 1, `/init`) and the CLI both work.
const SELF_EXE: &str = "/proc/self/exe";

/// The sys-level limits of a child with `l`'s settings.
pub fn limits(l: &ChildLimits, max_output: usize) -> Limits {
    Limits {
        memory: l.memory_mib.saturating_mul(1024 * 1024),
        wall: l.time,
        max_output,
    }
}

fn child(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(SELF_EXE);
    std::os::unix::process::CommandExt::arg0(&mut cmd, "vhdboot");
    cmd.arg("probe").args(args);
    cmd
}

// ---------------------------------------------------------------------------
// Discovery: one child per image.

/// Describes the image at `path` on the filesystem mounted at `root` in a
/// bounded child. Never fails: a child that hits a limit or dies gives an
/// image listed with the reason as a blocking problem.
pub fn describe_bounded(root: &Path, path: &str, raw: bool, limits_: &ChildLimits) -> Image {
    let mut args = vec![
        std::ffi::OsStr::new("image"),
        root.as_os_str(),
        std::ffi::OsStr::new(path),
    ];
    if raw {
        args.push(std::ffi::OsStr::new("--raw"));
    }
    let answer = bounded::run_bounded(child(&args), &limits(limits_, MAX_IMAGE_ANSWER));
    match answer.map(|out| serde_json::from_slice::<Image>(&out)) {
        Ok(Ok(image)) if image.path == path => image,
        Ok(Ok(other)) => skipped(
            root,
            path,
            &format!("its reader answered for another file ({})", other.path),
        ),
        Ok(Err(e)) => skipped(
            root,
            path,
            &format!("its reader's answer was not readable: {e}"),
        ),
        Err(e) => skipped(root, path, &describe_limit(&e, "probe", "")),
    }
}

/// An image that could not be read, with why, as the list shows it.
fn skipped(root: &Path, path: &str, why: &str) -> Image {
    // The size comes from the directory entry, which the kernel's driver
    // reads; nothing of the file's content is touched here.
    let file_size = std::fs::metadata(root.join(path.trim_start_matches('/')))
        .map(|m| m.len())
        .unwrap_or(0);
    Image {
        trial: None,
        path: path.to_string(),
        file_size,
        kind: ImageKind::Unreadable,
        entries: Vec::new(),
        problems: vec![Problem::blocking(
            format!("reading this image stopped: {why}; it was skipped"),
            "run `vhdboot inspect` on it from the rescue shell (s) for more, or move it out of \
             the search folders",
        )],
    }
}

/// The limit a child hit, in words that name the settings raising it:
/// `settings` is their prefix (`probe` for probe_time and probe_memory,
/// `load` for the boot's), and `then` follows the limit (" and was
/// stopped" where the sentence needs it).
fn describe_limit(e: &BoundedError, settings: &str, then: &str) -> String {
    match e {
        BoundedError::WallClock { limit } => {
            format!(
                "it took longer than {} s{then} ({settings}_time)",
                secs(*limit)
            )
        }
        BoundedError::Cpu { limit_secs } => {
            format!("it used more than {limit_secs} s of CPU time{then} ({settings}_time)")
        }
        BoundedError::Memory { limit } => format!(
            "it needed more than {} MiB of memory{then} ({settings}_memory)",
            limit / (1024 * 1024)
        ),
        other => other.to_string(),
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// The child's side of [`describe_bounded`]: the image's description, plus
/// the problems in how its file is stored (sparse, compressed, encrypted),
/// from one statx.
pub fn describe_image_here(root: &Path, path: &str, raw: bool) -> Image {
    let full = root.join(path.trim_start_matches('/'));
    // btrfs and xfs roots are read through a read-only kernel mount, made
    // in this child's own mount namespace (`mounted.rs`).
    let mut mounts = mounted::KernelMounts {
        image: full.clone(),
    };
    let mut image = describe_image_with(root, path, raw, Some(&mut mounts));
    // Dynamic, differencing and unreadable images are blocked already.
    if image.kind.data_size().is_some() {
        match fileinfo::file_facts(&full) {
            Ok(facts) => image.problems.extend(preflight::file_problems(&facts)),
            Err(e) => image.problems.push(Problem::warning(
                format!("cannot tell how the file is stored: {e}"),
                "the sparse, compressed and encrypted checks were skipped",
            )),
        }
    }
    image
}

// ---------------------------------------------------------------------------
// Boot: the kernel and initrd, read and checked in a child.

/// What the boot child needs to read one entry's kernel and initrd.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadRequest {
    pub image_file: PathBuf,
    /// The image, as messages name it ("/Images/a.vhd on /dev/sda2").
    pub place: String,
    pub title: String,
    pub data_size: u64,
    pub source: EntrySource,
    /// The host filesystem's driver, which the target's initramfs must have.
    pub fs_driver: String,
    /// The kernel version the entry names, for carried modules when the
    /// kernel's header names none.
    pub version: Option<String>,
    /// An immutable boot, whose device-mapper modules the target's
    /// initramfs must have as well.
    #[serde(default)]
    pub immutable: bool,
}

/// The boot child's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum LoadAnswer {
    /// The kernel and initrd are in the memfds; `warning` is a pre-flight
    /// finding that does not block the boot. The times are the child's
    /// CLOCK_MONOTONIC marks, for the boot timeline.
    Ready {
        warning: Option<String>,
        read_at: Duration,
        checked_at: Duration,
        archived_at: Duration,
    },
    Refused(Failure),
}

/// What the boot child prints on stderr before each step, for the menu's
/// progress line. Other stderr lines are left alone.
const PROGRESS_PREFIX: &str = "vhdboot-progress: ";
/// The longest progress line kept; a longer one is dropped.
const MAX_PROGRESS_LINE: usize = 200;

/// The boot child's steps, in order, as the status line names them.
pub const STEP_READING: &str = "reading the kernel";
pub const STEP_CHECKING: &str = "checking the initramfs";
pub const STEP_CARRYING: &str = "reading modules from the image";
pub const STEP_ARCHIVING: &str = "adding the stage-2 archive";

/// Reads and checks `plan`'s kernel and initrd in a bounded child, which
/// writes them into `kernel` and `initrd` (memfds) for kexec_file_load.
/// Returns the non-blocking warning, if any. The child is killed as soon
/// as `cancelled` says so (a preload the user moved away from), and
/// `progress` hears each step it starts.
pub fn prepare_boot(
    plan: &BootPlan,
    limits_: &ChildLimits,
    kernel: &File,
    initrd: &File,
    cancelled: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<String>, Failure> {
    let request = LoadRequest {
        image_file: plan.image_file(),
        place: format!("{} on {}", plan.image_path, plan.host_device.display()),
        title: plan.title.clone(),
        data_size: plan.data_size,
        source: plan.source.clone(),
        fs_driver: plan.fstype.driver().to_string(),
        version: plan.version.clone(),
        immutable: plan.overlay.is_some(),
    };
    let fail = |cause: String| Failure {
        what: format!("reading the kernel and initrd of {}", plan.title),
        cause,
        hint: "pick another entry; `vhdboot inspect` on the image from the rescue shell (s) \
               shows more"
            .into(),
    };
    let json = serde_json::to_string(&request).map_err(|e| fail(e.to_string()))?;
    let cmd = child(&[std::ffi::OsStr::new("load"), std::ffi::OsStr::new(&json)]);
    let mut lines = ProgressLines::default();
    let mut on_stderr = |chunk: &[u8]| lines.feed(chunk, &mut *progress);
    let out = bounded::run_bounded_watched(
        cmd,
        &limits(limits_, MAX_LOAD_ANSWER),
        &[(kernel.as_fd(), KERNEL_FD), (initrd.as_fd(), INITRD_FD)],
        &mut bounded::Watch {
            cancelled,
            on_stderr: &mut on_stderr,
        },
    )
    .map_err(|e| fail(describe_limit(&e, "load", " and was stopped")))?;
    match serde_json::from_slice::<LoadAnswer>(&out) {
        Ok(LoadAnswer::Ready {
            warning,
            read_at,
            checked_at,
            archived_at,
        }) => {
            timeline::mark_at("UKI read", read_at);
            timeline::mark_at("initrd checked", checked_at);
            timeline::mark_at("stage-2 archive appended", archived_at);
            Ok(warning)
        }
        Ok(LoadAnswer::Refused(f)) => Err(f),
        Err(e) => Err(fail(format!("the reader's answer was not readable: {e}"))),
    }
}

/// Splits the boot child's stderr into lines and passes on the progress
/// ones. A line is held only up to [`MAX_PROGRESS_LINE`] bytes, so a child
/// that prints without newlines costs nothing.
#[derive(Default)]
struct ProgressLines {
    partial: Vec<u8>,
    overlong: bool,
}

impl ProgressLines {
    fn feed(&mut self, chunk: &[u8], progress: &mut dyn FnMut(&str)) {
        for &b in chunk {
            if b == b'\n' {
                if !self.overlong
                    && let Some(step) =
                        String::from_utf8_lossy(&self.partial).strip_prefix(PROGRESS_PREFIX)
                {
                    progress(step);
                }
                self.partial.clear();
                self.overlong = false;
            } else if self.partial.len() < MAX_PROGRESS_LINE {
                self.partial.push(b);
            } else {
                self.overlong = true;
            }
        }
    }
}

/// Tells the parent which step the boot child starts. Best effort: a
/// closed stderr only loses the progress line.
fn report_step(step: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{PROGRESS_PREFIX}{step}");
}

/// The child's side of [`prepare_boot`]: streams the kernel into fd 3,
/// checks the initrd, writes it with the stage-2 archive into fd 4.
pub fn load_here(request: &LoadRequest) -> LoadAnswer {
    match load_into_fds(request) {
        Ok(answer) => answer,
        Err(f) => LoadAnswer::Refused(f),
    }
}

fn load_into_fds(r: &LoadRequest) -> Result<LoadAnswer, Failure> {
    let no_fd = |fd: i32| {
        Failure::new(
            format!("reading the kernel of {}", r.title),
            format!("descriptor {fd} was not handed over"),
            "this command is run by vhdboot itself, not by hand",
        )
    };
    let mut kernel = bounded::inherited_file(KERNEL_FD).ok_or_else(|| no_fd(KERNEL_FD))?;
    let mut initrd_out = bounded::inherited_file(INITRD_FD).ok_or_else(|| no_fd(INITRD_FD))?;
    let mut file = File::open(&r.image_file).map_err(|e| {
        Failure::new(
            format!("opening {}", r.place),
            e,
            "the image may have been moved or deleted; press r to rescan",
        )
    })?;
    let len = file
        .metadata()
        .map_err(|e| {
            Failure::new(
                format!("reading the size of {}", r.place),
                e,
                "press r to rescan",
            )
        })?
        .len();
    if len < r.data_size {
        return Err(Failure::new(
            format!("checking {}", r.place),
            format!(
                "the file is {len} bytes, smaller than its {} data bytes",
                r.data_size
            ),
            "the image changed since the scan; press r to rescan",
        ));
    }
    report_step(STEP_READING);
    // The kernel goes from the image straight into its memfd in bounded
    // chunks: it is never held whole in memory. fatfs reads one cluster per
    // call; read-ahead makes that a few hundred large reads for a whole UKI.
    let streamed = match &r.source {
        // btrfs and xfs: through a read-only mount of the partition, made
        // and undone here in the child (`mounted.rs`). The partition must
        // still lie inside the image's data, as for the other sources.
        EntrySource::Mounted {
            partition,
            fs,
            subvol,
            linux,
            initrd,
        } if partition.offset.saturating_add(partition.len) <= r.data_size => {
            mounted::stream_mounted(
                &r.image_file,
                *partition,
                (*fs, subvol.as_deref()),
                linux,
                initrd,
                &mut kernel,
            )
        }
        _ => inspect::stream_payload(
            &mut ReadAhead::new(&mut file),
            r.data_size,
            &r.source,
            &mut kernel,
        )
        .map_err(|e| e.to_string()),
    };
    let payload = streamed.map_err(|e| {
        Failure::new(
            format!("reading the kernel of {}", r.title),
            e,
            "check the entry with `vhdboot inspect` on another machine",
        )
    })?;
    let read_at = timeline::monotonic();
    report_step(STEP_CHECKING);
    // The pre-flight module check: only now are the initrd's bytes in
    // memory, and decompressing them is too slow for discovery.
    let extra: &[&str] = if r.immutable { &Overlay::MODULES } else { &[] };
    let check = initrd::check_modules_with(
        &payload.initrd,
        payload.kernel_release.as_deref(),
        &r.fs_driver,
        extra,
    );
    // What the initramfs lacks is looked for in the image's own
    // /lib/modules of the very kernel being booted (issue 12, item 3).
    let wanting = check.wanting();
    let image_modules = if wanting.is_empty() {
        None
    } else {
        report_step(STEP_CARRYING);
        let kver = payload.kernel_release.as_deref().or(r.version.as_deref());
        Some(carry::find_image_modules(
            &mut ReadAhead::new(&mut file),
            r.data_size,
            &r.source,
            kver,
            &wanting,
        ))
    };
    let mut warning = None;
    if let Some(problem) = check.problem_with(image_modules.as_ref()) {
        if problem.blocks_boot {
            // Neither the initramfs nor the image has the device-mapper
            // modules: the immutable boot is refused, a normal one may work.
            let dm_missing = check.missing().iter().any(|m| extra.contains(m));
            let hint = if dm_missing {
                format!(
                    "{}; or boot it normally (press i to switch immutable off)",
                    problem.hint
                )
            } else {
                problem.hint
            };
            return Err(Failure::new(r.title.clone(), problem.what, hint));
        }
        warning = Some(problem.what);
    }
    let checked_at = timeline::monotonic();
    report_step(STEP_ARCHIVING);
    let origin;
    let carried = match &image_modules {
        Some(Ok(found)) if !found.files.is_empty() => {
            origin = format!("{}, {}", r.place, found.origin());
            Some(cpio::Carried {
                origin: &origin,
                files: &found.files,
            })
        }
        _ => None,
    };
    write_stage2_initrd(&payload.initrd, carried.as_ref(), &mut initrd_out)?;
    Ok(LoadAnswer::Ready {
        warning,
        read_at,
        checked_at,
        archived_at: timeline::monotonic(),
    })
}

/// The initrd kexec_file_load gets (see `cpio::write_stage2_initrd`). The
/// binary is copied from /proc/self/exe inside the kernel, so the 3 MB
/// binary is never held in memory: every extra copy cost tens of
/// milliseconds under QEMU TCG (bench/kexec-trace).
fn write_stage2_initrd(
    target_initrd: &[u8],
    carried: Option<&cpio::Carried<'_>>,
    out: &mut File,
) -> Result<(), Failure> {
    let hint = "use the rescue shell and report it";
    let mut me = File::open(SELF_EXE)
        .map_err(|e| Failure::new("opening vhdboot itself for stage 2", e, hint))?;
    let len = me
        .metadata()
        .map_err(|e| Failure::new("reading the size of vhdboot itself for stage 2", e, hint))?
        .len();
    cpio::write_stage2_initrd_carrying(out, target_initrd, &mut me, len, carried)
        .map(drop)
        .map_err(|e| {
            Failure::new(
                "writing the initrd with the stage-2 archive to a memfd",
                e,
                "free memory or use the rescue shell",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = ProgressLines::default();
        let mut steps = Vec::new();
        for chunk in chunks {
            lines.feed(chunk, &mut |s| steps.push(s.to_string()));
        }
        steps
    }

    #[test]
    fn progress_lines_are_found_across_chunks_and_others_ignored() {
        let steps = steps_of(&[
            b"vhdboot-progress: reading the ker",
            b"nel\nsome warning\nvhdboot-progress: checking the initramfs\n",
        ]);
        assert_eq!(steps, vec![STEP_READING, STEP_CHECKING]);
    }

    #[test]
    fn an_overlong_progress_line_is_dropped() {
        let long = format!("{PROGRESS_PREFIX}{}\n", "x".repeat(10_000));
        let steps = steps_of(&[long.as_bytes(), b"vhdboot-progress: loading\n"]);
        assert_eq!(steps, vec!["loading"]);
    }
}
