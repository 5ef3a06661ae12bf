//! One partition of an image file, mounted read-only through the kernel's
//! own driver, for the `/boot` reader of filesystems no userspace reader of
//! ours understands (btrfs, xfs; issue 12, item 2).
//!
//! What it touches, and that it writes nothing: the image file is opened
//! O_RDONLY and attached to a loop device with LO_FLAGS_READ_ONLY, offset
//! and size limit set to the partition's bytes; the filesystem is mounted
//! MS_RDONLY (with nosuid, nodev, noexec) and with the option that stops
//! log replay (`rescue=nologreplay` for btrfs, `norecovery` for xfs), so
//! neither the driver nor the block layer can write to the image. The
//! mount point is a fresh mkdtemp directory, removed again at
//! [`ReadOnlyPartition::close`].
//!
//! A reader killed while the partition is mounted (the probe child hits
//! its time limit) must leak nothing: the child first moves into a private
//! mount namespace ([`private_mount_namespace`]), which the kernel tears
//! down with the child, and the loop device is set to autoclear, so it
//! detaches when that mount goes.
//!
//! Paths inside the filesystem are resolved with `openat2(RESOLVE_IN_ROOT)`
//! on the mount's root: an absolute symlink such as `/boot/vmlinuz ->
//! /boot/vmlinuz-6.12` starts again at the partition's root, never at the
//! machine's, and `..` cannot climb out.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::sys::loopdev::{self, LoopConfig, LoopDevice, LoopError};
use crate::sys::mount::{self, MountError, MountMode};
use crate::sys::tempdir;

#[derive(Debug, thiserror::Error)]
pub enum PartitionMountError {
    #[error("making a private mount namespace (unshare CLONE_NEWNS) failed: {0}; run as root")]
    Namespace(Errno),
    #[error("attaching the partition read-only: {0}")]
    Loop(#[from] LoopError),
    #[error("making a mount point: {0}")]
    MountPoint(io::Error),
    #[error("{0}")]
    Mount(#[from] MountError),
    #[error("opening the root of the mount at {target}: {source}")]
    OpenRoot { target: PathBuf, source: Errno },
}

/// Moves the calling process (a single-threaded child) into a mount
/// namespace of its own whose mounts propagate nowhere, so that what it
/// mounts is seen by no one else and vanishes with it.
pub fn private_mount_namespace() -> Result<(), PartitionMountError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(PartitionMountError::Namespace)?;
    // A new namespace copies the parent's propagation: with a shared "/",
    // our mounts would appear in PID 1's namespace as well.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(PartitionMountError::Namespace)
}

/// What a path inside the mount names, symlinks followed inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootedNode {
    File(u64),
    Dir,
    Other,
    Missing,
    BrokenSymlink,
}

/// A partition mounted read-only; see the module's comment.
#[derive(Debug)]
pub struct ReadOnlyPartition {
    device: LoopDevice,
    target: PathBuf,
    root: OwnedFd,
    closed: bool,
}

impl ReadOnlyPartition {
    /// Attaches `len` bytes of `image` from `offset` to a read-only loop
    /// device and mounts it as `fstype`, trying each of `options` in turn
    /// while the kernel answers EINVAL (an older kernel that does not know
    /// `rescue=nologreplay` knows `nologreplay`).
    pub fn mount(
        image: &Path,
        offset: u64,
        len: u64,
        fstype: &str,
        options: &[&str],
    ) -> Result<ReadOnlyPartition, PartitionMountError> {
        let config = LoopConfig {
            read_only: true,
            autoclear: true,
            offset,
            size_limit: len,
            ..LoopConfig::default()
        };
        // `held` keeps the autoclear device alive until the mount holds it;
        // dropping it on any error below detaches the device.
        let (device, held) = loopdev::attach_held(image, &config)?;
        let target = tempdir::mkdtemp("vhdboot-boot-").map_err(PartitionMountError::MountPoint)?;
        // The first option's error is the one reported: it is the spelling
        // current kernels take, so its reason is the likely one.
        let mut failed = None;
        for opts in options {
            match mount::mount_fs(&device.path, &target, fstype, MountMode::ReadOnly, opts) {
                Ok(()) => {
                    failed = None;
                    break;
                }
                Err(e) => {
                    let retry = matches!(
                        e,
                        MountError::Mount {
                            source: Errno::EINVAL,
                            ..
                        }
                    );
                    failed.get_or_insert(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            let _ = std::fs::remove_dir(&target);
            drop(held);
            return Err(e.into());
        }
        drop(held);
        let root = nix::fcntl::open(
            &target,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| PartitionMountError::OpenRoot {
            target: target.clone(),
            source,
        });
        let root = match root {
            Ok(root) => root,
            Err(e) => {
                let _ = mount::umount_fs(&target);
                let _ = std::fs::remove_dir(&target);
                return Err(e);
            }
        };
        Ok(ReadOnlyPartition {
            device,
            target,
            root,
            closed: false,
        })
    }

    /// The loop device the partition is on.
    pub fn device(&self) -> &Path {
        &self.device.path
    }

    /// What `path` names inside the filesystem.
    pub fn node(&self, path: &str) -> io::Result<RootedNode> {
        let fd = match self.open(path, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => {
                // The path may be a symlink whose target is missing.
                return Ok(match self.open(path, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                    Ok(link) if file_type(&link)? == SFlag::S_IFLNK => RootedNode::BrokenSymlink,
                    _ => RootedNode::Missing,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let st = fstat(&fd)?;
        Ok(
            match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFREG => RootedNode::File(u64::try_from(st.st_size).unwrap_or(0)),
                SFlag::S_IFDIR => RootedNode::Dir,
                _ => RootedNode::Other,
            },
        )
    }

    /// Opens the regular file at `path` for reading.
    pub fn open_file(&self, path: &str) -> io::Result<File> {
        let fd = self.open(path, OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)?;
        if file_type(&fd)? != SFlag::S_IFREG {
            return Err(io::Error::other("it is not a regular file"));
        }
        Ok(File::from(fd))
    }

    /// At most `max` names in the directory `dir` (without `.` and `..`)
    /// and whether it holds more; None when it does not exist or is not a
    /// directory. Names that are not UTF-8 are left out: no kernel or
    /// entry vhdboot lists has one.
    pub fn names(&self, dir: &str, max: usize) -> io::Result<Option<(Vec<String>, bool)>> {
        let fd = match self.open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut listing = nix::dir::Dir::from_fd(fd)?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            if names.len() == max {
                return Ok(Some((names, true)));
            }
            names.push(name.to_string());
        }
        Ok(Some((names, false)))
    }

    fn open(&self, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        openat2(self.root.as_fd(), rel, how)
    }

    /// Unmounts the filesystem (the autoclear loop device then detaches)
    /// and removes the mount point.
    pub fn close(mut self) -> Result<(), MountError> {
        self.closed = true;
        self.teardown()
    }

    fn teardown(&self) -> Result<(), MountError> {
        mount::umount_fs(&self.target)?;
        let _ = std::fs::remove_dir(&self.target);
        Ok(())
    }
}

impl Drop for ReadOnlyPartition {
    /// Best effort, for a reader that returns early: the private mount
    /// namespace cleans up after a killed one.
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.teardown();
        }
    }
}

fn file_type(fd: &OwnedFd) -> io::Result<SFlag> {
    let st = fstat(fd)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}
