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
use crate::image::carry::CarriedFile;
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

/// Where stage 2 finds the modules stage 1 carried from the image
/// (`image::carry`), with [`CARRIED_LIST`] naming them in load order.
pub const CARRIED_DIR: &str = "/vhdboot/modules";
/// The list of carried modules in [`CARRIED_DIR`]: `from <origin>`, then
/// one file name per line, dependencies first.
pub const CARRIED_LIST: &str = "carried";
/// The longest list stage 2 reads; it holds a few dozen short names.
pub const MAX_CARRIED_LIST: u64 = 64 * 1024;
/// The most files the list may name (the carrying side's own cap).
const MAX_LISTED: usize = crate::image::carry::MAX_CARRIED_MODULES;

/// The modules to carry and where they came from, for the archive.
#[derive(Debug, Clone, Copy)]
pub struct Carried<'a> {
    /// Where they came from, as stage 2's log line names it.
    pub origin: &'a str,
    pub files: &'a [CarriedFile],
}

/// The text of [`CARRIED_LIST`] for `carried`. The origin comes from a
/// disk (the image's path), so line breaks in it become spaces.
pub fn carried_list(carried: &Carried<'_>) -> String {
    let origin: String = carried
        .origin
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let mut text = format!("from {origin}\n");
    for f in carried.files {
        text.push_str(&f.file_name);
        text.push('\n');
    }
    text
}

/// Reads [`CARRIED_LIST`]: the origin and the file names in load order.
/// A name that is not a plain module file name (a path, `..`) is refused,
/// as is a list longer than the carrying side ever writes.
pub fn parse_carried_list(text: &str) -> Result<(String, Vec<String>), String> {
    let mut lines = text.lines();
    let origin = lines
        .next()
        .and_then(|l| l.strip_prefix("from "))
        .ok_or("it does not start with a from line")?
        .to_string();
    let mut files = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if files.len() == MAX_LISTED {
            return Err(format!("it names more than {MAX_LISTED} modules"));
        }
        if line.contains('/') || !line.contains(".ko") || line.starts_with('.') {
            return Err(format!("{line:?} is not a module file name"));
        }
        files.push(line.to_string());
    }
    Ok((origin, files))
}

/// Frames a binary of `binary_len` bytes as the newc archive holding
/// `vhdboot/` (0755) and `vhdboot/stage2` (0755), then the trailer.
///
/// Owner root, mtime 0, so the same binary always gives the same bytes.
#[cfg(test)]
fn stage2_frame(binary_len: u64) -> Result<Stage2Frame, CpioError> {
    stage2_frame_carrying(binary_len, None)
}

/// [`stage2_frame`], with the carried modules after the binary:
/// `vhdboot/modules/` (0755), each module file and the list (0644).
fn stage2_frame_carrying(
    binary_len: u64,
    carried: Option<&Carried<'_>>,
) -> Result<Stage2Frame, CpioError> {
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
    if let Some(carried) = carried {
        let dir = CARRIED_DIR.trim_start_matches('/');
        tail = Builder::new(dir)
            .ino(3)
            .mode(0o755)
            .set_mode_file_type(ModeFileType::Directory)
            .nlink(2)
            .write(tail, 0)
            .finish()?;
        let list = carried_list(carried);
        let entries = carried
            .files
            .iter()
            .map(|f| (f.file_name.as_str(), f.bytes.as_slice()))
            .chain([(CARRIED_LIST, list.as_bytes())]);
        for (ino, (name, body)) in (4u32..).zip(entries) {
            let size =
                u32::try_from(body.len()).map_err(|_| CpioError::TooLarge { size: body.len() })?;
            let mut entry = Builder::new(&format!("{dir}/{name}"))
                .ino(ino)
                .mode(0o644)
                .set_mode_file_type(ModeFileType::Regular)
                .nlink(1)
                .write(tail, size);
            entry.write_all(body)?;
            tail = entry.finish()?;
        }
    }
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
    write_stage2_initrd_carrying(out, target_initrd, binary, binary_len, None)
}

/// [`write_stage2_initrd`], with modules carried from the image in the
/// stage-2 archive (see [`CARRIED_DIR`]).
pub fn write_stage2_initrd_carrying<W: Write, R: Read>(
    out: &mut W,
    target_initrd: &[u8],
    binary: &mut R,
    binary_len: u64,
    carried: Option<&Carried<'_>>,
) -> Result<u64, CpioError> {
    let frame = stage2_frame_carrying(binary_len, carried)?;
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
    fn carried_modules_follow_the_binary_and_extract_with_their_list() {
        let files = vec![
            CarriedFile {
                name: "loop".into(),
                file_name: "loop.ko.xz".into(),
                bytes: vec![1, 2, 3],
            },
            CarriedFile {
                name: "ntfs3".into(),
                file_name: "ntfs3.ko".into(),
                bytes: vec![9; 4097],
            },
        ];
        let carried = Carried {
            origin: "/Images/a.vhd on /dev/sda1,\npartition 2 /lib/modules/6.12",
            files: &files,
        };
        let binary = fake_binary();
        let mut joined = Vec::new();
        let n = write_stage2_initrd_carrying(
            &mut joined,
            b"target",
            &mut &binary[..],
            binary.len() as u64,
            Some(&carried),
        )
        .unwrap();
        assert_eq!(n, joined.len() as u64);
        let tmp = tempfile::tempdir().unwrap();
        run_with_input(tmp.path(), "cpio", &["-i", "--quiet"], &joined[512..]);
        assert_extracted(tmp.path(), &binary);
        let dir = tmp.path().join("vhdboot/modules");
        assert_eq!(std::fs::read(dir.join("loop.ko.xz")).unwrap(), [1, 2, 3]);
        assert_eq!(std::fs::read(dir.join("ntfs3.ko")).unwrap(), vec![9; 4097]);
        let list = std::fs::read_to_string(dir.join(CARRIED_LIST)).unwrap();
        let (origin, names) = parse_carried_list(&list).unwrap();
        assert_eq!(
            origin,
            "/Images/a.vhd on /dev/sda1, partition 2 /lib/modules/6.12"
        );
        assert_eq!(names, ["loop.ko.xz", "ntfs3.ko"]);
    }

    #[test]
    fn a_carried_list_naming_paths_or_too_many_files_is_refused() {
        assert!(parse_carried_list("loop.ko\n").is_err());
        assert!(parse_carried_list("from x\n../../bin/sh.ko\n").is_err());
        assert!(parse_carried_list("from x\nREADME\n").is_err());
        let many: String = (0..=MAX_LISTED).map(|i| format!("m{i}.ko\n")).collect();
        assert!(parse_carried_list(&format!("from x\n{many}")).is_err());
        assert_eq!(
            parse_carried_list("from here\n").unwrap(),
            ("here".to_string(), vec![])
        );
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
