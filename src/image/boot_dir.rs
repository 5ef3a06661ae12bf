//! Kernels in an image's `/boot` on ext4, without a UKI: Boot Loader Spec
//! type #1 files in `/boot/loader/entries` (Fedora, with grubenv variables
//! such as `$kernelopts` expanded), and kernel/initramfs pairs found by
//! name (`vmlinuz-<ver>` with `initrd.img-<ver>` on Debian and Ubuntu,
//! `initramfs-<ver>.img` on Fedora and Arch, `initrd-<ver>` on SUSE), as
//! ZFSBootMenu finds them.
//!
//! The filesystem is read through a [`BootFiles`]: ext4-view for ext4
//! (see `ext4_window.rs`), or, for btrfs and xfs, a directory on a
//! read-only kernel mount opened with `openat2(RESOLVE_IN_ROOT)` (the
//! boot child's `probe/mounted.rs`). Both keep path resolution inside the
//! filesystem: an absolute symlink target starts again at this
//! filesystem's root, and a path follows at most 40 symlinks (ext4-view's
//! cap and the kernel's). A broken symlink is skipped with a warning. Every read here is bounded: at most [`MAX_BOOT_DIR_NAMES`]
//! names from a directory, small files (entries, grubenv, os-release,
//! `/etc/kernel/cmdline`) up to [`SMALL_FILE_CAP`], and kernel and initrd
//! sizes checked against their partition; nothing reads a kernel here.

use super::bls::BlsEntry;
use super::bytes::pad4;
use super::inspect::{KERNEL_CMDLINE_SIZE, MAX_BLS_FILES_PER_ESP};
use super::osrelease::OsRelease;
use super::version::compare_versions;
use ext4_view::{Ext4, Ext4Error};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// What a path names, symlinks followed inside the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A regular file of this many bytes.
    File(u64),
    Dir,
    /// A device, FIFO, socket: nothing a boot reads.
    Other,
    Missing,
    /// A symlink whose target is not in this filesystem.
    BrokenSymlink,
}

/// The names in one directory, as [`BootFiles::names`] read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// The directory does not exist (or is not a directory).
    Missing,
    /// It could not be opened; the sentence says why.
    Failed(String),
    Read {
        /// Without `.` and `..`, in the directory's own order.
        names: Vec<String>,
        /// True when the directory holds more than the `max` asked for.
        more: bool,
        /// Why listing stopped early, when it did.
        error: Option<String>,
    },
}

/// The few reads the `/boot` reader makes, over one filesystem. Every
/// path is absolute inside that filesystem, and a source resolves it, its
/// symlinks included, without leaving the filesystem. The parsers above
/// it stay pure and bounded: they decide every size before asking.
pub trait BootFiles {
    /// What `path` names.
    fn node(&self, path: &str) -> Result<Node, String>;
    /// A reader over the regular file at `path`. Callers bound what they
    /// take from it by the size [`BootFiles::node`] gave.
    fn open(&self, path: &str) -> Result<Box<dyn Read + '_>, String>;
    /// At most `max` names of the directory `dir`.
    fn names(&self, dir: &str, max: usize) -> Names;
}

impl BootFiles for Ext4 {
    fn node(&self, path: &str) -> Result<Node, String> {
        match self.metadata(path) {
            Ok(m) if m.file_type().is_regular_file() => Ok(Node::File(m.len())),
            Ok(m) if m.is_dir() => Ok(Node::Dir),
            Ok(_) => Ok(Node::Other),
            Err(Ext4Error::NotFound) => match self.symlink_metadata(path) {
                Ok(m) if m.is_symlink() => Ok(Node::BrokenSymlink),
                _ => Ok(Node::Missing),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + '_>, String> {
        Ext4::open(self, path)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| e.to_string())
    }

    fn names(&self, dir: &str, max: usize) -> Names {
        let iter = match self.read_dir(dir) {
            Ok(iter) => iter,
            Err(Ext4Error::NotFound | Ext4Error::NotADirectory) => return Names::Missing,
            Err(e) => return Names::Failed(e.to_string()),
        };
        let mut names = Vec::new();
        let mut more = false;
        let mut error = None;
        for entry in iter {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            };
            if let Ok(name) = entry.file_name().as_str()
                && name != "."
                && name != ".."
            {
                if names.len() == max {
                    more = true;
                    break;
                }
                names.push(name.to_string());
            }
        }
        Names::Read { names, more, error }
    }
}

/// The most names read from one directory (`/boot`, `loader/entries`). A
/// /boot holds a few files per kernel (kernel, initramfs, config,
/// System.map); a thousand is dozens of kernels.
pub const MAX_BOOT_DIR_NAMES: usize = 1024;
/// Entries, grubenv, os-release and `/etc/kernel/cmdline` are a few
/// hundred bytes (grubenv is exactly 1 KiB); this only stops a bogus size.
pub const SMALL_FILE_CAP: u64 = 64 * 1024;
/// The most variables kept from a grubenv.
const MAX_GRUBENV_VARS: usize = 256;
/// Where Fedora and Debian keep the GRUB environment, inside /boot.
const GRUBENV_PATHS: [&str; 2] = ["/grub2/grubenv", "/grub/grubenv"];
/// CPU microcode images that GRUB loads before the initramfs when they
/// sit in /boot (Arch's layout).
const MICROCODE: [&str; 2] = ["intel-ucode.img", "amd-ucode.img"];

/// What one filesystem says about the system installed on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemFacts {
    /// The filesystem UUID, for a derived `root=UUID=`.
    pub uuid: String,
    /// True when the filesystem has an `/etc`, so it is a root filesystem
    /// and not a separate /boot.
    pub is_root: bool,
    /// os-release PRETTY_NAME (or NAME and VERSION).
    pub pretty_name: Option<String>,
    /// `/etc/kernel/cmdline`, its lines joined.
    pub cmdline: Option<String>,
}

/// One kernel found, before the command line and title are settled
/// (they may come from another partition's facts; see [`settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundKernel {
    /// Where it was found, for messages: the entry file or the kernel.
    pub origin: String,
    /// The BLS entry's display title, when it came from one.
    pub bls_title: Option<String>,
    pub version: Option<String>,
    /// The BLS options with variables expanded; None means derive it.
    pub cmdline: Option<String>,
    /// Absolute paths inside this filesystem.
    pub linux: String,
    pub initrd: Vec<String>,
    pub kernel_size: u64,
    pub initrd_size: u64,
}

/// Everything [`read_boot_dir`] found on one filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootDir {
    pub facts: SystemFacts,
    /// Newest first.
    pub kernels: Vec<FoundKernel>,
    /// One sentence each, for warnings.
    pub warnings: Vec<String>,
}

/// Reads the system facts and every boot entry of one ext4 filesystem of
/// `partition_len` bytes whose UUID is `uuid`. It never fails: what cannot
/// be read becomes a warning.
pub fn read_boot_dir(fs: &dyn BootFiles, uuid: String, partition_len: u64) -> BootDir {
    let mut warnings = Vec::new();
    let facts = system_facts(fs, uuid, &mut warnings);
    // /boot on the root filesystem (Debian's default), or a filesystem
    // that is itself /boot (its kernels at its root).
    let prefix = if is_dir(fs, "/boot") { "/boot" } else { "" };
    let mut kernels = Vec::new();
    let vars = grubenv(fs, prefix, &mut warnings);
    let entries_dir = format!("{prefix}/loader/entries");
    let mut confs = list_names(fs, &entries_dir, &mut warnings);
    confs.retain(|n| n.ends_with(".conf"));
    if confs.len() > MAX_BLS_FILES_PER_ESP {
        warnings.push(format!(
            "{entries_dir} holds {} entry files; only the first {MAX_BLS_FILES_PER_ESP} by name were read",
            confs.len()
        ));
        confs.truncate(MAX_BLS_FILES_PER_ESP);
    }
    for name in &confs {
        let path = format!("{entries_dir}/{name}");
        match bls_kernel(fs, prefix, &path, name, &vars, partition_len) {
            Ok(k) => kernels.push(k),
            Err(why) => warnings.push(format!("{path}: {why}")),
        }
    }
    let taken: BTreeSet<String> = kernels.iter().map(|k| k.linux.clone()).collect();
    let dir = if prefix.is_empty() { "/" } else { prefix };
    let names = list_names(fs, dir, &mut warnings);
    for k in paired_kernels(fs, prefix, &names, partition_len, &mut warnings) {
        // Fedora keeps both an entry and the pair it names: list it once.
        if !taken.contains(&k.linux) {
            kernels.push(k);
        }
    }
    kernels.sort_by(|a, b| match (&a.version, &b.version) {
        (Some(x), Some(y)) => compare_versions(y, x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    BootDir {
        facts,
        kernels,
        warnings,
    }
}

/// The title and command line of `kernel`, from `facts` (its own
/// filesystem's, or the root filesystem's when it sits on a separate
/// /boot): a BLS entry's own options first, then `/etc/kernel/cmdline`,
/// else `root=UUID=<root filesystem> ro`.
pub fn settle(kernel: &FoundKernel, facts: &SystemFacts) -> (String, String) {
    let title = match &kernel.bls_title {
        Some(t) => t.clone(),
        None => super::uki::compose_title(
            facts.pretty_name.as_deref().unwrap_or("Linux"),
            kernel.version.as_deref(),
        ),
    };
    let cmdline = match (&kernel.cmdline, &facts.cmdline) {
        (Some(c), _) if !c.trim().is_empty() => c.clone(),
        (_, Some(c)) => c.clone(),
        _ => format!("root=UUID={} ro", facts.uuid),
    };
    (title, cmdline)
}

fn system_facts(fs: &dyn BootFiles, uuid: String, warnings: &mut Vec<String>) -> SystemFacts {
    let is_root = is_dir(fs, "/etc");
    let mut pretty_name = None;
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        match read_small(fs, path) {
            Ok(Some(bytes)) => {
                pretty_name = OsRelease::parse_bytes(&bytes).display_name();
                break;
            }
            Ok(None) => {}
            Err(why) => warnings.push(format!("{path}: {why}")),
        }
    }
    let cmdline = match read_small(fs, "/etc/kernel/cmdline") {
        Ok(Some(bytes)) => kernel_cmdline_file(&String::from_utf8_lossy(&bytes)),
        Ok(None) => None,
        Err(why) => {
            warnings.push(format!("/etc/kernel/cmdline: {why}"));
            None
        }
    };
    SystemFacts {
        uuid,
        is_root,
        pretty_name: pretty_name.map(|p| super::inspect::for_display(&p)),
        cmdline,
    }
}

/// `/etc/kernel/cmdline` as kernel-install reads it: its lines joined by
/// spaces, comment lines left out. None when it says nothing.
pub fn kernel_cmdline_file(text: &str) -> Option<String> {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// The variables of a GRUB environment block: `key=value` lines, with the
/// `#` header and padding left out; at most [`MAX_GRUBENV_VARS`].
pub fn parse_grubenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .take(MAX_GRUBENV_VARS)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `text` with `$name` and `${name}` replaced by their grubenv values, as
/// GRUB's blscfg does; an unknown name becomes nothing. Values are not
/// expanded again, and the result stops growing past the kernel's
/// command-line limit (the entry is then refused as too long).
pub fn expand_vars(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, next) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
        } else if let Some(v) = vars.get(name) {
            out.push_str(v);
        }
        rest = next;
        if out.len() > KERNEL_CMDLINE_SIZE {
            return out;
        }
    }
    out.push_str(rest);
    // GRUB's variables leave runs of spaces where they were empty.
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn grubenv(
    fs: &dyn BootFiles,
    prefix: &str,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    for rel in GRUBENV_PATHS {
        let path = format!("{prefix}{rel}");
        match read_small(fs, &path) {
            Ok(Some(bytes)) => return parse_grubenv(&String::from_utf8_lossy(&bytes)),
            Ok(None) => {}
            Err(why) => warnings.push(format!("{path}: {why}")),
        }
    }
    BTreeMap::new()
}

/// A path named by a BLS entry: relative to the /boot filesystem, so on a
/// root filesystem it is first looked for under /boot, then as written.
fn bls_file(fs: &dyn BootFiles, prefix: &str, written: &str) -> Result<(String, u64), String> {
    let rooted = format!("/{}", written.trim_start_matches('/'));
    let under_boot = format!("{prefix}{rooted}");
    match file_size(fs, &under_boot) {
        Ok(size) => Ok((under_boot, size)),
        Err(first) if !prefix.is_empty() => match file_size(fs, &rooted) {
            Ok(size) => Ok((rooted, size)),
            Err(_) => Err(format!("{under_boot}: {first}")),
        },
        Err(first) => Err(format!("{under_boot}: {first}")),
    }
}

fn bls_kernel(
    fs: &dyn BootFiles,
    prefix: &str,
    path: &str,
    name: &str,
    vars: &BTreeMap<String, String>,
    partition_len: u64,
) -> Result<FoundKernel, String> {
    let bytes = read_small(fs, path)?.ok_or("it vanished while being read")?;
    let bls = BlsEntry::parse_bytes(&bytes);
    let linux = bls.kexec_kernel()?;
    let (linux, kernel_size) =
        bls_file(fs, prefix, linux).map_err(|e| format!("its kernel is unusable: {e}"))?;
    let mut initrd = Vec::new();
    let mut initrd_size = 0u64;
    for i in &bls.initrd {
        let (p, size) =
            bls_file(fs, prefix, i).map_err(|e| format!("its initrd is unusable: {e}"))?;
        initrd.push(p);
        initrd_size = initrd_size.saturating_add(pad4(size));
    }
    check_sizes(kernel_size, initrd_size, partition_len)?;
    let cmdline = expand_vars(&bls.cmdline(), vars);
    let version = bls
        .version
        .clone()
        .or_else(|| kernel_version(&linux).map(str::to_string));
    Ok(FoundKernel {
        origin: path.to_string(),
        bls_title: Some(super::inspect::for_display(&bls.display_title(name))),
        version: version.map(|v| super::inspect::for_display(&v)),
        cmdline: Some(cmdline),
        linux,
        initrd,
        kernel_size,
        initrd_size,
    })
}

/// The version in a kernel's file name: `vmlinuz-<ver>`.
fn kernel_version(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    name.strip_prefix("vmlinuz-").filter(|v| !v.is_empty())
}

/// The initramfs names that go with `vmlinuz-<ver>`, in the order tried.
pub fn initrd_names(ver: &str) -> [String; 4] {
    [
        format!("initrd.img-{ver}"),
        format!("initramfs-{ver}.img"),
        format!("initrd-{ver}"),
        format!("initramfs-{ver}"),
    ]
}

fn paired_kernels(
    fs: &dyn BootFiles,
    prefix: &str,
    names: &[String],
    partition_len: u64,
    warnings: &mut Vec<String>,
) -> Vec<FoundKernel> {
    let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let microcode: Vec<&str> = MICROCODE
        .into_iter()
        .filter(|m| present.contains(m))
        .collect();
    let mut out = Vec::new();
    for name in names {
        let Some(ver) = kernel_version(name) else {
            continue;
        };
        let linux = format!("{prefix}/{name}");
        let kernel_size = match file_size(fs, &linux) {
            Ok(size) => size,
            Err(why) => {
                warnings.push(format!("{linux} is skipped: {why}"));
                continue;
            }
        };
        let mut initrd_main = None;
        let mut last_error = None;
        for candidate in initrd_names(ver) {
            if !present.contains(candidate.as_str()) {
                continue;
            }
            let path = format!("{prefix}/{candidate}");
            match file_size(fs, &path) {
                Ok(size) => {
                    initrd_main = Some((path, size));
                    break;
                }
                Err(why) => last_error = Some(format!("{path}: {why}")),
            }
        }
        let Some((initrd_path, size)) = initrd_main else {
            warnings.push(match last_error {
                Some(e) => format!("{linux} is skipped: its initramfs is unusable: {e}"),
                None => format!(
                    "{linux} is skipped: no initramfs beside it (initrd.img-{ver} or initramfs-{ver}.img)"
                ),
            });
            continue;
        };
        let mut initrd = Vec::new();
        let mut initrd_size = 0u64;
        for m in &microcode {
            let path = format!("{prefix}/{m}");
            if let Ok(s) = file_size(fs, &path) {
                initrd.push(path);
                initrd_size = initrd_size.saturating_add(pad4(s));
            }
        }
        initrd.push(initrd_path);
        initrd_size = initrd_size.saturating_add(pad4(size));
        if let Err(why) = check_sizes(kernel_size, initrd_size, partition_len) {
            warnings.push(format!("{linux} is skipped: {why}"));
            continue;
        }
        out.push(FoundKernel {
            origin: linux.clone(),
            bls_title: None,
            version: Some(super::inspect::for_display(ver)),
            cmdline: None,
            linux,
            initrd,
            kernel_size,
            initrd_size,
        });
    }
    out
}

/// A kernel and initrds bigger than the partition holding them are sizes
/// read from a damaged filesystem (or one file named many times).
fn check_sizes(kernel: u64, initrd: u64, partition_len: u64) -> Result<(), String> {
    if kernel > partition_len || initrd > partition_len {
        return Err(format!(
            "its kernel ({kernel} bytes) or initrds ({initrd} bytes) are larger than the {partition_len}-byte partition holding them; the filesystem is damaged"
        ));
    }
    Ok(())
}

fn is_dir(fs: &dyn BootFiles, path: &str) -> bool {
    matches!(fs.node(path), Ok(Node::Dir))
}

/// The size of a regular file, following symlinks inside the filesystem.
fn file_size(fs: &dyn BootFiles, path: &str) -> Result<u64, String> {
    match fs.node(path)? {
        Node::File(size) => Ok(size),
        Node::Dir | Node::Other => Err("it is not a regular file".to_string()),
        Node::BrokenSymlink => {
            Err("it is a broken symlink (its target is not in this filesystem)".to_string())
        }
        Node::Missing => Err("it does not exist".to_string()),
    }
}

/// A small file's bytes, None when it does not exist.
fn read_small(fs: &dyn BootFiles, path: &str) -> Result<Option<Vec<u8>>, String> {
    let size = match fs.node(path)? {
        Node::File(size) => size,
        Node::Missing | Node::BrokenSymlink => return Ok(None),
        Node::Dir | Node::Other => return Err("it is not a regular file".to_string()),
    };
    if size > SMALL_FILE_CAP {
        return Err(format!(
            "it is {size} bytes; vhdboot reads at most {SMALL_FILE_CAP} bytes of it"
        ));
    }
    let file = fs.open(path)?;
    let mut bytes = Vec::new();
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

/// The names in `dir`, sorted; at most [`MAX_BOOT_DIR_NAMES`], with a
/// warning when there were more. A missing directory gives nothing.
fn list_names(fs: &dyn BootFiles, dir: &str, warnings: &mut Vec<String>) -> Vec<String> {
    let mut names = match fs.names(dir, MAX_BOOT_DIR_NAMES) {
        Names::Missing => return Vec::new(),
        Names::Failed(e) => {
            warnings.push(format!("cannot list {dir}: {e}"));
            return Vec::new();
        }
        Names::Read { names, more, error } => {
            if let Some(e) = error {
                warnings.push(format!("cannot list all of {dir}: {e}"));
            }
            if more {
                warnings.push(format!(
                    "{dir} holds more than {MAX_BOOT_DIR_NAMES} names; only the first {MAX_BOOT_DIR_NAMES} read were used"
                ));
            }
            names
        }
    };
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest_first(mut v: Vec<&str>) -> Vec<&str> {
        v.sort_by(|a, b| compare_versions(b, a));
        v
    }

    #[test]
    fn debian_versions_sort_numerically() {
        assert_eq!(
            newest_first(vec!["6.12.9+deb13-amd64", "6.12.10+deb13-amd64"]),
            ["6.12.10+deb13-amd64", "6.12.9+deb13-amd64"]
        );
        assert_eq!(
            newest_first(vec!["6.1.0-9-amd64", "6.1.0-18-amd64", "6.1.0-10-amd64"]),
            ["6.1.0-18-amd64", "6.1.0-10-amd64", "6.1.0-9-amd64"]
        );
    }

    #[test]
    fn ubuntu_fedora_and_arch_versions_sort_numerically() {
        assert_eq!(
            newest_first(vec![
                "6.8.0-45-generic",
                "6.8.0-100-generic",
                "6.5.0-9-generic"
            ]),
            ["6.8.0-100-generic", "6.8.0-45-generic", "6.5.0-9-generic"]
        );
        assert_eq!(
            compare_versions("6.8.5-301.fc40.x86_64", "6.8.11-300.fc40.x86_64"),
            Ordering::Less
        );
        assert_eq!(compare_versions("linux", "linux-lts"), Ordering::Less);
    }

    #[test]
    fn tilde_sorts_before_anything_even_the_end() {
        assert_eq!(compare_versions("6.12~rc1", "6.12"), Ordering::Less);
        assert_eq!(compare_versions("6.12~rc1", "6.12~rc2"), Ordering::Less);
        assert_eq!(compare_versions("6.12", "6.12+1"), Ordering::Less);
        assert_eq!(compare_versions("6.01", "6.1"), Ordering::Equal);
        assert_eq!(compare_versions("1.0a", "1.0+"), Ordering::Less);
    }

    #[test]
    fn grubenv_variables_expand_once_and_unknown_ones_vanish() {
        let env = "# GRUB Environment Block\nsaved_entry=abc\nkernelopts=root=UUID=1234 ro rhgb quiet\ntuned_params=\nloop=$loop\n########";
        let vars = parse_grubenv(env);
        assert_eq!(vars.get("saved_entry").map(String::as_str), Some("abc"));
        assert_eq!(
            expand_vars("$kernelopts $tuned_params ${missing} x", &vars),
            "root=UUID=1234 ro rhgb quiet x"
        );
        assert_eq!(expand_vars("a=$loop", &vars), "a=$loop");
        assert_eq!(expand_vars("cost=5$ ${", &vars), "cost=5$ ${");
    }

    #[test]
    fn expansion_stops_past_the_command_line_limit() {
        let mut vars = BTreeMap::new();
        vars.insert("v".to_string(), "x".repeat(60_000));
        let text = "$v ".repeat(10_000);
        let out = expand_vars(&text, &vars);
        assert!(
            out.len() > KERNEL_CMDLINE_SIZE && out.len() < 70_000,
            "{}",
            out.len()
        );
    }

    #[test]
    fn kernel_cmdline_file_joins_lines_without_comments() {
        assert_eq!(
            kernel_cmdline_file("# made by hand\nroot=/dev/sda2 ro\n\nquiet\n").as_deref(),
            Some("root=/dev/sda2 ro quiet")
        );
        assert_eq!(kernel_cmdline_file("# nothing\n\n"), None);
    }

    #[test]
    fn a_kernel_is_settled_with_its_own_options_else_the_file_else_root_uuid() {
        let k = FoundKernel {
            origin: "/boot/vmlinuz-6.1".into(),
            bls_title: None,
            version: Some("6.1".into()),
            cmdline: None,
            linux: "/boot/vmlinuz-6.1".into(),
            initrd: vec![],
            kernel_size: 1,
            initrd_size: 1,
        };
        let mut facts = SystemFacts {
            uuid: "u-1".into(),
            is_root: true,
            pretty_name: Some("Debian GNU/Linux 13 (trixie)".into()),
            cmdline: None,
        };
        assert_eq!(
            settle(&k, &facts),
            (
                "Debian GNU/Linux 13 (trixie) (6.1)".to_string(),
                "root=UUID=u-1 ro".to_string()
            )
        );
        facts.cmdline = Some("root=LABEL=r quiet".into());
        assert_eq!(settle(&k, &facts).1, "root=LABEL=r quiet");
        let bls = FoundKernel {
            cmdline: Some("root=UUID=x rhgb".into()),
            bls_title: Some("Fedora".into()),
            ..k
        };
        assert_eq!(
            settle(&bls, &facts),
            ("Fedora".to_string(), "root=UUID=x rhgb".to_string())
        );
    }

    #[test]
    fn initrd_names_cover_debian_fedora_suse_and_arch() {
        assert_eq!(
            initrd_names("6.1.0-18-amd64")[0],
            "initrd.img-6.1.0-18-amd64"
        );
        assert_eq!(initrd_names("linux")[1], "initramfs-linux.img");
        assert_eq!(
            initrd_names("6.4.0-150600.23-default")[2],
            "initrd-6.4.0-150600.23-default"
        );
    }
}
