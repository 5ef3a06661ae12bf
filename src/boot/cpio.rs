//! The stage-2 archive: a small newc cpio carrying `/vhdboot/stage2`,
//! appended to the target's initrd so that the kernel unpacks it on top.
//!
//! The archive holds only the `vhdboot` directory and the binary. Stage 2
//! creates the mount points it needs at run time: the initramfs root is
//! writable, and every target initramfs already has /proc, /sys and /dev.
//! Adding entries for existing directories is not free either: the kernel's
//! unpacker applies our mode and mtime to them.

use super::handoff::STAGE2_PATH;
use crate::image::bytes::pad4;
use cpio::newc::{self, Builder, ModeFileType};
use std::io::{self, Read, Write};

/// The binary in the archive: `handoff::STAGE2_PATH` without the leading
/// slash, as newc names are relative to the unpack root.
const STAGE2_NAME: &str = match STAGE2_PATH.split_at_checked(1) {
    Some((_root, name)) => name,
    None => STAGE2_PATH,
};
/// The directory in the archive that holds the binary.
const DIR_NAME: &str = parent(STAGE2_NAME);

/// Everything before the last `/` of `name` (`name` itself if it has none).
const fn parent(name: &str) -> &str {
    let bytes = name.as_bytes();
    let mut at = bytes.len();
    while at > 0 {
        at -= 1;
        if bytes[at] == b'/' {
            return match name.split_at_checked(at) {
                Some((dir, _)) => dir,
                None => name,
            };
        }
    }
    name
}

/// The boundary the target's initrd is padded to before our archive.
/// shared/lessons.md: an uncompressed cpio right after a zstd one at an
/// unaligned offset was silently ignored by the kernel.
pub const INITRD_ALIGN: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error(
        "the stage-2 binary is {size} bytes, more than a newc cpio entry can hold (4 GiB); \
         build vhdboot in release mode"
    )]
    TooLarge { size: usize },
    #[error(
        "the stage-2 binary ended after {read} of its {expected} bytes; \
         it changed while being read"
    )]
    ShortBinary { expected: u64, read: u64 },
    #[error("writing the stage-2 cpio archive failed: {0}")]
    Write(#[from] std::io::Error),
}

/// The stage-2 archive around the binary's bytes, so that the binary can be
/// copied from its file straight into the kernel's initrd buffer (a memfd)
/// without ever being held in memory: `head` (the `vhdboot/` entry and the
/// header of `vhdboot/stage2`), then exactly `binary_len` bytes of the
/// binary, then `tail` (the binary's padding and the trailer).
///
/// Under QEMU TCG every copy of the 3 MB binary costs tens of milliseconds
/// (bench/kexec-trace), and the boot path used to make four.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stage2Frame {
    head: Vec<u8>,
    binary_len: u32,
    tail: Vec<u8>,
}

impl Stage2Frame {
    /// The archive's total length.
    fn archive_len(&self) -> usize {
        self.head.len() + self.binary_len as usize + self.tail.len()
    }
}

/// Frames a binary of `binary_len` bytes as the newc archive holding
/// `vhdboot/` (0755) and `vhdboot/stage2` (0755), then the trailer.
///
/// Owner root, mtime 0, so the same binary always gives the same bytes.
fn stage2_frame(binary_len: u64) -> Result<Stage2Frame, CpioError> {
    let size = u32::try_from(binary_len).map_err(|_| CpioError::TooLarge {
        size: usize::try_from(binary_len).unwrap_or(usize::MAX),
    })?;
    let dir = Builder::new(DIR_NAME)
        .ino(1)
        .mode(0o755)
        .set_mode_file_type(ModeFileType::Directory)
        .nlink(2);
    let head = dir.write(Vec::new(), 0).finish()?;

    let file = Builder::new(STAGE2_NAME)
        .ino(2)
        .mode(0o755)
        .set_mode_file_type(ModeFileType::Regular)
        .nlink(1);
    // Finishing an entry before its body makes the cpio writer emit the
    // header alone, without padding, as the body is incomplete. The body
    // and its padding are ours to write (tests compare with the crate's own
    // whole-entry output).
    let head = file.write(head, size).finish()?;

    let body_end = head.len() as u64 + binary_len;
    let padding = usize::try_from(pad4(body_end) - body_end).unwrap_or(0);
    let mut tail = vec![0u8; padding];
    tail = newc::trailer(tail)?;
    Ok(Stage2Frame {
        head,
        binary_len: size,
        tail,
    })
}

/// Builds the whole uncompressed archive in memory (see [`stage2_frame`]).
/// Only the tests hold it whole; the boot path streams it.
#[cfg(test)]
pub fn stage2_archive(binary: &[u8]) -> Result<Vec<u8>, CpioError> {
    let frame = stage2_frame(binary.len() as u64)?;
    let mut out = Vec::with_capacity(frame.archive_len());
    out.extend_from_slice(&frame.head);
    out.extend_from_slice(binary);
    out.extend_from_slice(&frame.tail);
    Ok(out)
}

/// Writes the initrd kexec gets: the target's initrd, zero padding to
/// [`INITRD_ALIGN`] (the kernel skips zero bytes between concatenated
/// archives), then the stage-2 archive with exactly `binary_len` bytes read
/// from `binary`. An empty target initrd gives just our archive.
///
/// The binary streams through: from one file into another (stage 1: its
/// own /proc/self/exe into a memfd), `io::copy` copies inside the kernel,
/// and the 3 MB binary is never held in memory. Returns the bytes written.
pub fn write_stage2_initrd<W: Write, R: Read>(
    out: &mut W,
    target_initrd: &[u8],
    binary: &mut R,
    binary_len: u64,
) -> Result<u64, CpioError> {
    let frame = stage2_frame(binary_len)?;
    let padding = target_initrd.len().next_multiple_of(INITRD_ALIGN) - target_initrd.len();
    out.write_all(target_initrd)?;
    out.write_all(&[0u8; INITRD_ALIGN][..padding])?;
    out.write_all(&frame.head)?;
    let copied = io::copy(&mut binary.take(binary_len), out)?;
    if copied != binary_len {
        return Err(CpioError::ShortBinary {
            expected: binary_len,
            read: copied,
        });
    }
    out.write_all(&frame.tail)?;
    Ok((target_initrd.len() + padding + frame.archive_len()) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// Some bytes that are not a multiple of 4 long, so padding is exercised.
    fn fake_binary() -> Vec<u8> {
        (0..10_001u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Runs `program args` in `dir` with `input` on stdin; fails the test
    /// with a clear message if the tool is missing or fails.
    fn run_with_input(dir: &Path, program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn assert_extracted(root: &Path, binary: &[u8]) {
        let dir = root.join("vhdboot");
        let file = dir.join("stage2");
        assert!(dir.is_dir(), "no vhdboot directory in {}", root.display());
        assert_eq!(std::fs::read(&file).unwrap(), binary);
        let file_mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(file_mode & 0o7777, 0o755, "stage2 mode {file_mode:o}");
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o7777, 0o755, "vhdboot mode {dir_mode:o}");
    }

    #[test]
    fn gnu_cpio_extracts_the_binary_with_mode_0755() {
        let binary = fake_binary();
        let archive = stage2_archive(&binary).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        run_with_input(
            tmp.path(),
            "cpio",
            &["-i", "--quiet", "--no-absolute-filenames"],
            &archive,
        );
        assert_extracted(tmp.path(), &binary);
    }

    #[test]
    fn busybox_cpio_extracts_the_binary_with_mode_0755() {
        let binary = fake_binary();
        let archive = stage2_archive(&binary).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        run_with_input(tmp.path(), "busybox", &["cpio", "-i"], &archive);
        assert_extracted(tmp.path(), &binary);
    }

    #[test]
    fn archive_lists_directory_then_binary_then_nothing_else() {
        let archive = stage2_archive(b"#!").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let listing = run_with_input(tmp.path(), "cpio", &["-t", "--quiet"], &archive);
        assert_eq!(
            String::from_utf8(listing).unwrap(),
            "vhdboot\nvhdboot/stage2\n"
        );
        assert_eq!(archive.len() % 4, 0, "newc archives end 4-byte aligned");
        assert!(archive.starts_with(b"070701"), "newc magic");
    }

    /// The initrd `write_stage2_initrd` writes for a target initrd and a
    /// binary, checking the length it returns.
    fn initrd_with(target: &[u8], binary: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n =
            write_stage2_initrd(&mut out, target, &mut &binary[..], binary.len() as u64).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    #[test]
    fn binary_streamed_from_a_file_into_a_file_gives_the_same_initrd() {
        use std::io::{Seek, SeekFrom};
        let binary = fake_binary();
        let mut src = tempfile::tempfile().unwrap();
        src.write_all(&binary).unwrap();
        src.seek(SeekFrom::Start(0)).unwrap();
        let mut dst = tempfile::tempfile().unwrap();
        let n = write_stage2_initrd(&mut dst, b"target", &mut src, binary.len() as u64).unwrap();
        dst.seek(SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        dst.read_to_end(&mut back).unwrap();
        assert_eq!(n, back.len() as u64);
        assert_eq!(back, initrd_with(b"target", &binary));
    }

    #[test]
    fn binary_shorter_than_announced_is_an_error() {
        let mut out = Vec::new();
        let err = write_stage2_initrd(&mut out, b"", &mut &b"abc"[..], 10).unwrap_err();
        assert!(
            matches!(
                err,
                CpioError::ShortBinary {
                    expected: 10,
                    read: 3
                }
            ),
            "{err}"
        );
    }

    /// The archive as the cpio crate writes it with whole entries, the way
    /// this module built it before the frame existed.
    fn crate_written_archive(binary: &[u8]) -> Vec<u8> {
        let dir = Builder::new(DIR_NAME)
            .ino(1)
            .mode(0o755)
            .set_mode_file_type(ModeFileType::Directory)
            .nlink(2);
        let out = dir.write(Vec::new(), 0).finish().unwrap();
        let file = Builder::new(STAGE2_NAME)
            .ino(2)
            .mode(0o755)
            .set_mode_file_type(ModeFileType::Regular)
            .nlink(1);
        let mut writer = file.write(out, binary.len() as u32);
        writer.write_all(binary).unwrap();
        newc::trailer(writer.finish().unwrap()).unwrap()
    }

    #[test]
    fn framed_archive_matches_the_crates_whole_entry_output_for_every_padding() {
        for len in [0usize, 1, 2, 3, 4, 5, 10_001] {
            let binary: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frame = stage2_frame(len as u64).unwrap();
            let archive = stage2_archive(&binary).unwrap();
            assert_eq!(
                archive,
                crate_written_archive(&binary),
                "binary of {len} bytes"
            );
            assert_eq!(frame.archive_len(), archive.len());
            assert_eq!(&archive[..frame.head.len()], &frame.head[..]);
            assert_eq!(archive.len() % 4, 0);
        }
    }

    #[test]
    fn binary_over_4_gib_is_refused() {
        assert!(matches!(
            stage2_frame(1 << 32),
            Err(CpioError::TooLarge { .. })
        ));
    }

    #[test]
    fn same_binary_gives_identical_archives() {
        assert_eq!(
            stage2_archive(b"abc").unwrap(),
            stage2_archive(b"abc").unwrap()
        );
    }

    #[test]
    fn target_initrd_is_zero_padded_to_512_before_the_archive() {
        let archive = stage2_archive(b"x").unwrap();
        for target_len in [1usize, 3, 511, 512, 513, 1000, 4097] {
            let target: Vec<u8> = (0..target_len).map(|i| (i % 200 + 1) as u8).collect();
            let joined = initrd_with(&target, b"x");
            let start = target_len.next_multiple_of(512);
            assert_eq!(start % 512, 0);
            assert_eq!(&joined[..target_len], &target[..]);
            assert!(joined[target_len..start].iter().all(|&b| b == 0));
            assert_eq!(
                &joined[start..],
                &archive[..],
                "target of {target_len} bytes"
            );
        }
    }

    #[test]
    fn empty_target_initrd_gives_just_the_archive() {
        let archive = stage2_archive(b"x").unwrap();
        assert_eq!(initrd_with(&[], b"x"), archive);
    }

    /// A zstd-compressed newc archive of a small tree, like the initrd a
    /// distro ships, built with the real tools.
    fn zstd_target_initrd(dir: &Path) -> (Vec<u8>, Vec<u8>) {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("init"), b"#!/bin/sh\necho target init\n").unwrap();
        std::fs::write(tree.join("bin/odd"), vec![7u8; 1234]).unwrap();
        let cpio = run_with_input(
            &tree,
            "cpio",
            &["-o", "-H", "newc", "--quiet"],
            b"init\nbin\nbin/odd\n",
        );
        let zst = run_with_input(&tree, "zstd", &["-q", "-c", "-19"], &cpio);
        (cpio, zst)
    }

    #[test]
    fn stage2_archive_after_a_zstd_initrd_starts_aligned_and_both_parts_unpack() {
        let tmp = tempfile::tempdir().unwrap();
        let (target_cpio, target_zst) = zstd_target_initrd(tmp.path());
        assert_ne!(target_zst.len() % 512, 0, "the fixture should need padding");
        let binary = fake_binary();
        let archive = stage2_archive(&binary).unwrap();
        let joined = initrd_with(&target_zst, &binary);

        let offset = target_zst.len().next_multiple_of(512);
        assert_eq!(offset % 512, 0);
        assert_eq!(&joined[offset..], &archive[..]);

        // The compressed part still decompresses to the target's archive.
        let unpacked = run_with_input(
            tmp.path(),
            "zstd",
            &["-q", "-d", "-c"],
            &joined[..target_zst.len()],
        );
        assert_eq!(unpacked, target_cpio);

        // Ours, read from where the kernel will find it, extracts whole.
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        run_with_input(&root, "cpio", &["-i", "--quiet"], &joined[offset..]);
        assert_extracted(&root, &binary);
    }
}
