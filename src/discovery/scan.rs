//! Finding image files on a mounted host filesystem and describing each one.
//!
//! Functions take the mount root rather than absolute paths, so tests pass a
//! temp tree. Only headers, the GPT, FAT metadata and small UKI sections are
//! read (through `image::inspect`), never whole images.

use crate::image::inspect;
use crate::image::readahead::ReadAhead;
use crate::model::{Image, ImageKind, Problem};
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The image files below `root`, as paths on that filesystem (starting with
/// `/`), sorted and without duplicates. `search` folders are matched
/// case-insensitively, since NTFS and exFAT are case-insensitive; missing
/// folders are skipped. Symlinks are not followed.
pub fn find_image_files(root: &Path, search: &[String], depth: u32, raw: bool) -> Vec<String> {
    let mut found = Found::default();
    for folder in search {
        let Some(dir) = resolve_folder(root, folder) else {
            continue;
        };
        walk(root, &dir, depth, raw, &mut found);
    }
    found.paths.into_iter().collect()
}

/// The files found so far. On a case-insensitive filesystem `/Images` and
/// `/images` are one folder, so a file is known by its inode, not its path.
#[derive(Default)]
struct Found {
    paths: BTreeSet<String>,
    inodes: HashSet<(u64, u64)>,
}

/// Finds `folder` below `root`, matching each component case-insensitively
/// but spelling it as the directory does, so that paths shown and handed
/// to stage 2 are the real names.
fn resolve_folder(root: &Path, folder: &str) -> Option<std::path::PathBuf> {
    let mut dir = root.to_path_buf();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        let dirs: Vec<_> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .collect();
        let hit = dirs
            .iter()
            .find(|e| e.file_name().to_string_lossy() == part)
            .or_else(|| {
                dirs.iter()
                    .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(part))
            })?;
        dir = hit.path();
    }
    Some(dir)
}

fn is_image_name(name: &str, raw: bool) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".vhd") || (raw && lower.ends_with(".img"))
}

/// `depth` counts folder levels below `dir`: 0 means only `dir` itself.
fn walk(root: &Path, dir: &Path, depth: u32, raw: bool, found: &mut Found) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_file() && is_image_name(&entry.file_name().to_string_lossy(), raw) {
            let Ok(meta) = entry.metadata() else { continue };
            if !found.inodes.insert((meta.dev(), meta.ino())) {
                continue;
            }
            if let Ok(rel) = path.strip_prefix(root) {
                found.paths.insert(format!("/{}", rel.to_string_lossy()));
            }
        } else if ft.is_dir() && depth > 0 {
            walk(root, &path, depth - 1, raw, found);
        }
    }
}

/// Describes one image file: its kind, boot entries and problems. Never
/// fails: an unreadable file becomes an image with a blocking problem, so
/// the menu can list it with its reason.
pub fn describe_image(root: &Path, path: &str, raw: bool) -> Image {
    describe_image_with(root, path, raw, None)
}

/// [`describe_image`], reading btrfs and xfs `/boot` through `mounted`
/// (see [`inspect::inspect_with`]).
pub fn describe_image_with(
    root: &Path,
    path: &str,
    raw: bool,
    mounted: Option<&mut dyn inspect::MountedBoot>,
) -> Image {
    let full = root.join(path.trim_start_matches('/'));
    let unreadable = |what: String, hint: &str| Image {
        path: path.to_string(),
        file_size: 0,
        kind: ImageKind::Unreadable,
        entries: Vec::new(),
        problems: vec![Problem::blocking(what, hint)],
        trial: None,
    };
    let mut file = match File::open(&full) {
        Ok(f) => f,
        Err(e) => {
            return unreadable(
                format!("cannot open {path}: {e}"),
                "check the file on the host volume, then press r to rescan",
            );
        }
    };
    let file_size = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            return unreadable(
                format!("cannot read the size of {path}: {e}"),
                "check the file on the host volume, then press r to rescan",
            );
        }
    };
    // Discovery's reads are small and scattered; read-ahead turns ~1,300
    // syscalls per image into a few dozen.
    let found = inspect::inspect_with(&mut ReadAhead::new(&mut file), file_size, raw, mounted);
    let trial = crate::trial::look(&full);
    let mut problems = found.problems;
    // A merge cut short left the image with part of the trial's changes:
    // no boot may see it so (nor stack a new trial on it) until the merge
    // is finished.
    if trial.is_some_and(|t| t.merging) {
        problems.insert(
            0,
            Problem::blocking(
                "the merge of its trial changes was cut short, so it holds part of them",
                "select it and press m to finish the merge",
            ),
        );
    }
    Image {
        path: path.to_string(),
        file_size,
        kind: found.kind,
        entries: found.entries,
        problems,
        trial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    fn defaults() -> Vec<String> {
        crate::config::Config::default().search
    }

    #[test]
    fn finds_vhd_files_in_any_case_within_depth() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "arch.vhd");
        touch(t.path(), "Images/Debian.VHD");
        touch(t.path(), "images2/deep/deeper/too-deep.vhd");
        touch(t.path(), "notes.txt");
        let found = find_image_files(t.path(), &defaults(), 2, false);
        assert_eq!(found, vec!["/Images/Debian.VHD", "/arch.vhd"]);
    }

    #[test]
    fn depth_zero_searches_only_the_folder_itself() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "top.vhd");
        touch(t.path(), "sub/below.vhd");
        let found = find_image_files(t.path(), &["/".to_string()], 0, false);
        assert_eq!(found, vec!["/top.vhd"]);
    }

    #[test]
    fn raw_images_are_listed_only_when_configured() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "disk.img");
        assert!(find_image_files(t.path(), &defaults(), 2, false).is_empty());
        assert_eq!(
            find_image_files(t.path(), &defaults(), 2, true),
            vec!["/disk.img"]
        );
    }

    #[test]
    fn search_folders_match_case_insensitively_and_results_are_deduplicated() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "vHd/a.vhd");
        let search = vec!["/".to_string(), "/VHD".to_string()];
        assert_eq!(
            find_image_files(t.path(), &search, 2, false),
            vec!["/vHd/a.vhd"]
        );
    }

    #[test]
    fn one_file_reached_through_two_paths_is_listed_once() {
        // On exFAT, /Images/a.vhd and /images/a.vhd are one file; a hard
        // link gives the same situation on the test machine's filesystem.
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "Images/a.vhd");
        std::fs::create_dir(t.path().join("VHD")).unwrap();
        std::fs::hard_link(t.path().join("Images/a.vhd"), t.path().join("VHD/a.vhd")).unwrap();
        let search = vec!["/Images".to_string(), "/VHD".to_string()];
        assert_eq!(
            find_image_files(t.path(), &search, 0, false),
            vec!["/Images/a.vhd"]
        );
    }

    #[test]
    fn folders_are_spelled_as_the_directory_spells_them() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "Images/a.vhd");
        let search = vec!["/images".to_string()];
        assert_eq!(
            find_image_files(t.path(), &search, 0, false),
            vec!["/Images/a.vhd"]
        );
    }

    #[test]
    fn a_missing_file_becomes_an_unreadable_image_with_a_reason() {
        let t = tempfile::tempdir().unwrap();
        let img = describe_image(t.path(), "/gone.vhd", false);
        assert_eq!(img.kind, ImageKind::Unreadable);
        assert!(img.problems[0].what.contains("/gone.vhd"));
        assert!(crate::boot::plan::image_problem("the test folder", &img).is_err());
    }
}
