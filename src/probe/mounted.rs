//! btrfs and xfs `/boot` through the kernel's driver, for the probe
//! children (issue 12, item 2): the pure `/boot` reader
//! (`image::boot_dir`) and kernel loader (`image::payload`) over a
//! partition that `sys::partition_mount` mounted read-only, without log
//! replay, inside the child's private mount namespace.
//!
//! Nothing here writes to the image: the loop device is read-only, the
//! mount is `ro` with `rescue=nologreplay` (btrfs) or `norecovery` (xfs),
//! and only `openat2`, `fstat`, `getdents` and `read` reach the files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use vhdboot::boot::repair::{RepairMode, partition_mount};
use vhdboot::image::boot_dir::{BootFiles, Names, Node, read_boot_dir};
use vhdboot::image::inspect::{MountedBoot, MountedDir};
use vhdboot::image::partitions::Partition;
use vhdboot::image::payload::{PayloadError, StreamedPayload, stream_from_files};
use vhdboot::model::{ByteRange, KernelFs};
use vhdboot::sys::partition_mount::{ReadOnlyPartition, RootedNode, private_mount_namespace};

/// The mount options tried in turn, from the one table of read-only
/// options (`boot::repair::partition_mount`). xfs adds `nouuid`: two
/// copies of one image on the host share their UUID, and xfs refuses a
/// second mount of a UUID it already has. btrfs falls back to the older
/// spelling `nologreplay` on a kernel that answers EINVAL to `rescue=`.
/// (A second single-device btrfs with a known fsid is mounted under a
/// temporary fsid by Linux 6.7 and later.)
/// With `subvol`, btrfs mounts that subvolume as the root.
fn mount_options(fs: KernelFs, subvol: Option<&str>) -> Vec<String> {
    let base = partition_mount(fs.name(), RepairMode::ReadOnly)
        .map(|m| m.options)
        .unwrap_or_default();
    match (fs, subvol) {
        (KernelFs::Xfs, _) => vec![format!("{base},nouuid")],
        (KernelFs::Btrfs, None) => vec![base.to_string(), "nologreplay".to_string()],
        (KernelFs::Btrfs, Some(v)) => vec![
            format!("{base},subvol={v}"),
            format!("nologreplay,subvol={v}"),
        ],
    }
}

/// The subvolumes a btrfs root may live in when its top level holds only
/// subvolumes: Ubuntu's installer puts the root in `@` (and /home in
/// `@home`) and leaves the default subvolume at the top. A name from
/// anywhere else is refused, so nothing from a boot request can add
/// mount options.
const ROOT_SUBVOLUMES: [&str; 1] = ["@"];

/// Whether this process already lives in its own mount namespace.
static PRIVATE: AtomicBool = AtomicBool::new(false);

/// Mounts `range` of `image` as `fs`, read-only, in this process's
/// private mount namespace (made on first use). The error is a sentence.
pub fn mount_partition(
    image: &Path,
    range: ByteRange,
    fs: KernelFs,
    subvol: Option<&str>,
) -> Result<ReadOnlyPartition, String> {
    if let Some(v) = subvol
        && (fs != KernelFs::Btrfs || !ROOT_SUBVOLUMES.contains(&v))
    {
        return Err(format!(
            "the subvolume {v:?} is not one vhdboot mounts (only {ROOT_SUBVOLUMES:?} on btrfs)"
        ));
    }
    if !PRIVATE.load(Ordering::Relaxed) {
        private_mount_namespace().map_err(|e| e.to_string())?;
        PRIVATE.store(true, Ordering::Relaxed);
    }
    load_driver(fs);
    let options = mount_options(fs, subvol);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    ReadOnlyPartition::mount(image, range.offset, range.len, fs.name(), &options)
        .map_err(|e| e.to_string())
}

/// Loads `fs`'s driver (and what it depends on) from the bootstrapper's
/// /lib/modules when it is a module there, as stage 1's repair does: the
/// kernel's own request_module would need a modprobe the initramfs lacks.
/// A failure is left to the mount, whose error then names the type.
fn load_driver(fs: KernelFs) {
    let Ok(release) = vhdboot::sys::modules::kernel_release() else {
        return;
    };
    let root = Path::new("/lib/modules").join(release);
    if let Ok(index) = vhdboot::modprobe::ModuleIndex::load(&root) {
        let _ = index.load_module(fs.name());
    }
}

/// A mounted partition as the pure readers see it.
pub struct MountedFiles<'a>(pub &'a ReadOnlyPartition);

impl BootFiles for MountedFiles<'_> {
    fn node(&self, path: &str) -> Result<Node, String> {
        Ok(match self.0.node(path).map_err(|e| e.to_string())? {
            RootedNode::File(size) => Node::File(size),
            RootedNode::Dir => Node::Dir,
            RootedNode::Other => Node::Other,
            RootedNode::Missing => Node::Missing,
            RootedNode::BrokenSymlink => Node::BrokenSymlink,
        })
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + '_>, String> {
        self.0
            .open_file(path)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| e.to_string())
    }

    fn names(&self, dir: &str, max: usize) -> Names {
        match self.0.names(dir, max) {
            Ok(None) => Names::Missing,
            Ok(Some((names, more))) => Names::Read {
                names,
                more,
                error: None,
            },
            Err(e) => Names::Failed(e.to_string()),
        }
    }
}

/// The `/boot` reader for btrfs and xfs partitions of one image file.
pub struct KernelMounts {
    pub image: PathBuf,
}

impl MountedBoot for KernelMounts {
    fn read_boot_dir(
        &mut self,
        part: &Partition,
        fs: KernelFs,
        uuid: String,
    ) -> Result<MountedDir, String> {
        let mounted = mount_partition(&self.image, part.range, fs, None)?;
        let subvol = root_subvolume(&mounted, fs);
        let (dir, subvol) = match subvol {
            None => {
                let dir = read_boot_dir(&MountedFiles(&mounted), uuid, part.range.len);
                // A mount that will not go is harmless here: it lives in
                // this child's private namespace, which ends with the child.
                let _ = mounted.close();
                (dir, None)
            }
            Some(v) => {
                let _ = mounted.close();
                let inner = mount_partition(&self.image, part.range, fs, Some(v))?;
                let mut dir = read_boot_dir(&MountedFiles(&inner), uuid.clone(), part.range.len);
                let _ = inner.close();
                // The derived command line must name the subvolume, as
                // Ubuntu's GRUB does; one from /etc/kernel/cmdline says
                // what it says.
                if dir.facts.cmdline.is_none() {
                    dir.facts.cmdline = Some(format!("root=UUID={uuid} ro rootflags=subvol={v}"));
                }
                (dir, Some(v.to_string()))
            }
        };
        Ok(MountedDir { dir, subvol })
    }
}

/// The subvolume that holds the system when the default one (the top
/// level) has neither /etc nor /boot but one of [`ROOT_SUBVOLUMES`].
fn root_subvolume(top: &ReadOnlyPartition, fs: KernelFs) -> Option<&'static str> {
    let files = MountedFiles(top);
    let is_dir = |p: &str| matches!(files.node(p), Ok(Node::Dir));
    if fs != KernelFs::Btrfs || is_dir("/etc") || is_dir("/boot") {
        return None;
    }
    ROOT_SUBVOLUMES
        .into_iter()
        .find(|v| is_dir(&format!("/{v}")))
}

/// Streams an `EntrySource::Mounted` entry's kernel into `kernel_out` and
/// reads its initrds, from a read-only mount of its partition that is
/// undone before returning.
pub fn stream_mounted<W: Write>(
    image: &Path,
    partition: ByteRange,
    (fs, subvol): (KernelFs, Option<&str>),
    linux: &str,
    initrd: &[String],
    kernel_out: &mut W,
) -> Result<StreamedPayload, String> {
    let mounted = mount_partition(image, partition, fs, subvol).map_err(|e| {
        format!(
            "mounting the {} partition at byte offset {} read-only: {e}",
            fs.name(),
            partition.offset
        )
    })?;
    let payload = stream_from_files(
        &MountedFiles(&mounted),
        fs.name(),
        partition,
        linux,
        initrd,
        kernel_out,
    )
    .map_err(|e: PayloadError| e.to_string());
    // The bytes are in memory now. A mount that will not go is harmless:
    // it lives in this child's private namespace, which ends with it.
    let _ = mounted.close();
    payload
}
