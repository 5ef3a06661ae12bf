//! Carried modules (issue 12, item 3): when the target's initramfs lacks
//! `loop` or the host's filesystem driver, stage 1 takes them, with their
//! dependencies, from the image's own `/lib/modules/<kver>` on its ext4
//! root, and the stage-2 archive carries them into the target's boot.
//!
//! Only the tree of the exact kernel being booted is used: a module built
//! for another kernel is refused by the kernel (vermagic), or worse, loads
//! and misbehaves. The dependency closure comes from that tree's
//! `modules.dep`, read with every size bounded before it is allocated:
//! [`MAX_MODULES_DEP`] for the list, [`MAX_CARRIED_MODULES`] modules and
//! [`MAX_DEP_DEPTH`] levels of dependency, and [`MAX_CARRIED_BYTES`] of
//! module files in all. The walk is iterative, so a hostile list costs
//! no stack. Module files stay as they are (`.ko.xz`, `.ko.zst`,
//! `.ko.gz`): stage 2 hands them to finit_module with
//! MODULE_INIT_COMPRESSED_FILE, as it does the initramfs's own.
//!
//! The filesystem is read through `ext4_window` (ext4-view, read-only, in
//! a worker that sees only its partition); this runs in the bounded boot
//! child (`probe.rs`), never in PID 1.

use super::ext4_window::{Ext4OpenError, with_ext4};
use super::modules_index::{canonical_name, parse_builtin};
use super::partitions::{PartitionKind, read_partitions};
use crate::model::{ByteRange, EntrySource};
use ext4_view::{Ext4, Ext4Error};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Seek};

/// The largest `modules.dep` read. Debian's 6.12 list is about 400 KiB
/// for some 4,000 modules; this leaves room for a kernel with everything.
pub const MAX_MODULES_DEP: u64 = 8 << 20;
/// The largest `modules.builtin` read (Debian's is about 20 KiB).
pub const MAX_MODULES_BUILTIN: u64 = 1 << 20;
/// The most module bytes carried. loop and ntfs3 with their dependencies
/// are about 250 KiB compressed; the archive lives in the target's memory
/// until its initramfs is freed.
pub const MAX_CARRIED_BYTES: u64 = 16 << 20;
/// The most modules carried, dependencies included.
pub const MAX_CARRIED_MODULES: usize = 32;
/// The deepest chain of dependencies followed.
pub const MAX_DEP_DEPTH: usize = 16;
/// The most Linux partitions looked at for `/lib/modules`.
const MAX_ROOT_CANDIDATES: usize = 4;
/// The most other kernel versions named when the wanted one is absent.
const MAX_VERSIONS_NAMED: usize = 8;
/// The file-name endings a carried module may have, as depmod writes them.
const MODULE_SUFFIXES: [&str; 4] = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"];

/// One module as `modules.dep` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    /// The path as written: relative to `/lib/modules/<kver>` (or, from an
    /// old depmod, absolute).
    pub path: String,
    /// Dependencies by canonical name.
    pub deps: Vec<String>,
}

/// `modules.dep` by canonical module name. Lines that are not `path:
/// deps` are skipped; a later line for the same module replaces an
/// earlier one, as depmod never writes two.
pub fn parse_modules_dep(text: &str) -> HashMap<String, DepEntry> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() || module_suffix(path).is_none() {
            continue;
        }
        out.insert(
            canonical_name(path),
            DepEntry {
                path: path.to_string(),
                deps: deps.split_whitespace().map(canonical_name).collect(),
            },
        );
    }
    out
}

/// The module ending of `path` (`.ko.xz`), or None when it is not a
/// module file.
fn module_suffix(path: &str) -> Option<&'static str> {
    MODULE_SUFFIXES.into_iter().find(|s| path.ends_with(s))
}

/// Why no load order was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosureError {
    #[error("{name}, which {needed_by} needs, is not in its modules.dep")]
    NotFound { name: String, needed_by: String },
    #[error("its modules.dep has a dependency cycle through {name}")]
    Cycle { name: String },
    #[error(
        "the dependencies of {name} are more than {MAX_DEP_DEPTH} levels deep in its modules.dep"
    )]
    TooDeep { name: String },
    #[error(
        "{name} and its dependencies are more than {MAX_CARRIED_MODULES} modules, more than vhdboot carries"
    )]
    TooMany { name: String },
}

/// The modules to insert for `wanted`, dependencies first, each once.
/// A name that `builtin` lists needs no file and is left out, as are its
/// own dependencies. Post-order depth-first with an explicit stack: every
/// module comes after what it needs.
pub fn dependency_closure<'a>(
    dep: &'a HashMap<String, DepEntry>,
    builtin: &BTreeSet<String>,
    wanted: &[String],
) -> Result<Vec<(String, &'a DepEntry)>, ClosureError> {
    let mut order: Vec<(String, &DepEntry)> = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for root in wanted {
        if builtin.contains(root) || done.contains(root) {
            continue;
        }
        let Some(entry) = dep.get(root) else {
            return Err(ClosureError::NotFound {
                name: root.clone(),
                needed_by: "the boot".into(),
            });
        };
        // Each frame: a module and how many of its dependencies were taken.
        let mut stack: Vec<(&str, &DepEntry, usize)> = vec![(root.as_str(), entry, 0)];
        while let Some(top) = stack.last_mut() {
            let (name, entry, next) = (top.0, top.1, top.2);
            let Some(child) = entry.deps.get(next) else {
                stack.pop();
                if done.insert(name.to_string()) {
                    if order.len() == MAX_CARRIED_MODULES {
                        return Err(ClosureError::TooMany { name: root.clone() });
                    }
                    order.push((name.to_string(), entry));
                }
                continue;
            };
            top.2 += 1;
            if builtin.contains(child) || done.contains(child) {
                continue;
            }
            if stack.iter().any(|(n, _, _)| *n == child) {
                return Err(ClosureError::Cycle {
                    name: child.clone(),
                });
            }
            let Some(child_entry) = dep.get(child) else {
                return Err(ClosureError::NotFound {
                    name: child.clone(),
                    needed_by: name.to_string(),
                });
            };
            if stack.len() == MAX_DEP_DEPTH {
                return Err(ClosureError::TooDeep { name: root.clone() });
            }
            stack.push((child.as_str(), child_entry, 0));
        }
    }
    Ok(order)
}

/// One module file taken from the image.
#[derive(Clone, PartialEq, Eq)]
pub struct CarriedFile {
    /// The canonical module name.
    pub name: String,
    /// The file name in the stage-2 archive: the name plus its original
    /// ending, so that stage 2 knows it is compressed.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for CarriedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarriedFile")
            .field("file_name", &self.file_name)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// What the image's own module tree offers for the wanted modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageModules {
    /// The kernel version of the tree.
    pub kver: String,
    /// The GPT partition number the tree was found on.
    pub partition: u32,
    /// The tree, as a path inside that filesystem.
    pub dir: String,
    /// The files to carry, in load order (dependencies first).
    pub files: Vec<CarriedFile>,
    /// Wanted modules that the tree's `modules.builtin` lists.
    pub builtin: Vec<String>,
}

impl ImageModules {
    /// Whether `module` is covered: carried or built in.
    pub fn covers(&self, module: &str) -> bool {
        self.builtin.iter().any(|m| m == module) || self.files.iter().any(|f| f.name == module)
    }

    /// The carried module names, in load order.
    pub fn names(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.name.as_str()).collect()
    }

    /// Where they came from, for the log line: the partition and tree.
    pub fn origin(&self) -> String {
        format!("partition {} {}", self.partition, self.dir)
    }
}

/// The image's answer: the modules, or why it cannot give them.
pub type ImageModulesResult = Result<ImageModules, String>;

/// Looks for `wanted` (canonical names) in `/lib/modules/<kver>` of the
/// image's ext4 root: the entry's own ext4 partition first, then the
/// Linux root and Linux filesystem partitions in table order. Never
/// fails hard: the error is a sentence for the refusal.
pub fn find_image_modules<R: Read + Seek>(
    r: &mut R,
    data_size: u64,
    source: &EntrySource,
    kver: Option<&str>,
    wanted: &[String],
) -> ImageModulesResult {
    let Some(kver) = kver else {
        return Err(
            "the kernel's version is unknown (its bzImage header names none), so no \
             /lib/modules tree on the image can be matched to it"
                .into(),
        );
    };
    if kver.is_empty() || kver.contains('/') || kver == "." || kver == ".." {
        return Err(format!(
            "the kernel's version {kver:?} cannot name a /lib/modules folder"
        ));
    }
    let table = read_partitions(&mut *r, data_size)
        .map_err(|e| format!("the image's partition table could not be read: {e}"))?;
    let mut candidates: Vec<(u32, ByteRange)> = Vec::new();
    if let EntrySource::Ext4 { partition, .. } = source
        && let Some(p) = table.partitions.iter().find(|p| p.range == *partition)
    {
        candidates.push((p.number, p.range));
    }
    for kind in [PartitionKind::LinuxRoot, PartitionKind::LinuxFilesystem] {
        for p in table.of_kind(kind) {
            if !candidates.iter().any(|(_, range)| *range == p.range) {
                candidates.push((p.number, p.range));
            }
        }
    }
    candidates.truncate(MAX_ROOT_CANDIDATES);
    if candidates.is_empty() {
        return Err("the image has no Linux partition to hold /lib/modules".into());
    }
    let mut other_versions: BTreeSet<String> = BTreeSet::new();
    let mut read_errors: Vec<String> = Vec::new();
    for (number, range) in candidates {
        if range.offset.saturating_add(range.len) > data_size {
            continue;
        }
        let found = with_ext4(&mut *r, range, &mut |_| Ok(()), |link, _| {
            let fs = link.load().map_err(|e| Found::Error(e.to_string()))?;
            modules_on(&fs, kver, wanted)
        });
        match found {
            Err(Ext4OpenError::NotExt4) => {}
            Err(e) => read_errors.push(format!("partition {number}: {e}")),
            Ok(Ok((dir, files, builtin))) => {
                return Ok(ImageModules {
                    kver: kver.to_string(),
                    partition: number,
                    dir,
                    files,
                    builtin,
                });
            }
            Ok(Err(Found::NoTree(versions))) => other_versions.extend(versions),
            Ok(Err(Found::Error(why))) => {
                return Err(format!("partition {number}: {why}"));
            }
        }
    }
    if !other_versions.is_empty() {
        let named: Vec<String> = other_versions
            .into_iter()
            .take(MAX_VERSIONS_NAMED)
            .collect();
        return Err(format!(
            "the image's /lib/modules holds {} but not {kver}, the kernel being booted, and \
             modules are carried only for the exact same kernel",
            named.join(", ")
        ));
    }
    if let Some(first) = read_errors.first() {
        return Err(format!("its Linux partitions could not be read ({first})"));
    }
    Err(format!(
        "no ext4 Linux partition of the image holds /lib/modules/{kver}"
    ))
}

/// Why one filesystem gave no modules.
enum Found {
    /// No tree for the kernel; the versions it has instead.
    NoTree(Vec<String>),
    /// A tree, but unusable; the sentence says why.
    Error(String),
}

type Tree = (String, Vec<CarriedFile>, Vec<String>);

fn modules_on(fs: &Ext4, kver: &str, wanted: &[String]) -> Result<Tree, Found> {
    let Some(dir) = ["/lib/modules", "/usr/lib/modules"]
        .into_iter()
        .map(|base| format!("{base}/{kver}"))
        .find(|d| fs.metadata(d).is_ok_and(|m| m.is_dir()))
    else {
        return Err(Found::NoTree(versions_in(fs, "/lib/modules")));
    };
    let dep_path = format!("{dir}/modules.dep");
    let dep_bytes = read_capped(fs, &dep_path, MAX_MODULES_DEP)
        .map_err(|why| Found::Error(format!("{dep_path}: {why}")))?
        .ok_or_else(|| {
            Found::Error(format!(
                "{dir} has no modules.dep (run depmod {kver} inside the OS)"
            ))
        })?;
    let builtin_path = format!("{dir}/modules.builtin");
    let builtin = match read_capped(fs, &builtin_path, MAX_MODULES_BUILTIN) {
        Ok(Some(bytes)) => parse_builtin(&String::from_utf8_lossy(&bytes)),
        Ok(None) => BTreeSet::new(),
        Err(why) => return Err(Found::Error(format!("{builtin_path}: {why}"))),
    };
    let dep = parse_modules_dep(&String::from_utf8_lossy(&dep_bytes));
    drop(dep_bytes);
    // A wanted module the tree lacks is left to the verdict, which names
    // it; the others are still carried.
    let present: Vec<String> = wanted
        .iter()
        .filter(|w| dep.contains_key(*w))
        .cloned()
        .collect();
    let order = dependency_closure(&dep, &builtin, &present)
        .map_err(|e| Found::Error(format!("{dir}: {e}")))?;
    let mut total = 0u64;
    let mut files = Vec::new();
    for (name, entry) in order {
        let path = if entry.path.starts_with('/') {
            entry.path.clone()
        } else {
            format!("{dir}/{}", entry.path)
        };
        let size = regular_size(fs, &path)
            .map_err(|why| Found::Error(format!("{path}: {why}")))?
            .ok_or_else(|| Found::Error(format!("{path}, which modules.dep lists, is missing")))?;
        total = total.saturating_add(size);
        if total > MAX_CARRIED_BYTES {
            return Err(Found::Error(format!(
                "the modules to carry are more than {} MiB (at {path}), more than vhdboot carries",
                MAX_CARRIED_BYTES >> 20
            )));
        }
        let bytes = read_capped(fs, &path, MAX_CARRIED_BYTES)
            .map_err(|why| Found::Error(format!("{path}: {why}")))?
            .unwrap_or_default();
        let suffix = module_suffix(&entry.path).unwrap_or(".ko");
        files.push(CarriedFile {
            file_name: format!("{name}{suffix}"),
            name,
            bytes,
        });
    }
    let builtin_wanted = wanted
        .iter()
        .filter(|w| builtin.contains(*w))
        .cloned()
        .collect();
    Ok((dir, files, builtin_wanted))
}

/// The kernel versions under `dir`, at most a few.
fn versions_in(fs: &Ext4, dir: &str) -> Vec<String> {
    let Ok(iter) = fs.read_dir(dir) else {
        return Vec::new();
    };
    iter.filter_map(Result::ok)
        .filter_map(|e| e.file_name().as_str().ok().map(str::to_string))
        .filter(|n| n != "." && n != "..")
        .take(MAX_VERSIONS_NAMED)
        .collect()
}

/// The size of a regular file (symlinks followed inside the filesystem),
/// None when it does not exist.
fn regular_size(fs: &Ext4, path: &str) -> Result<Option<u64>, String> {
    match fs.metadata(path) {
        Ok(m) if m.file_type().is_regular_file() => Ok(Some(m.len())),
        Ok(_) => Err("it is not a regular file".into()),
        Err(Ext4Error::NotFound) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// A whole file of at most `cap` bytes, None when it does not exist. The
/// size is checked before anything is reserved, and the reservation is
/// fallible.
fn read_capped(fs: &Ext4, path: &str, cap: u64) -> Result<Option<Vec<u8>>, String> {
    let Some(size) = regular_size(fs, path)? else {
        return Ok(None);
    };
    if size > cap {
        return Err(format!(
            "it is {size} bytes; vhdboot reads at most {cap} bytes of it"
        ));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))
        .map_err(|_| format!("cannot allocate {size} bytes for it"))?;
    let file = fs.open(path).map_err(|e| e.to_string())?;
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 != size {
        return Err(format!("it ended after {} of {size} bytes", bytes.len()));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/block/loop.ko.xz:
kernel/fs/ntfs3/ntfs3.ko.xz:
kernel/fs/exfat/exfat.ko.zst: kernel/fs/nls/nls_base.ko.zst
kernel/fs/nls/nls_base.ko.zst:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/common/usb-common.ko:
not a module line
kernel/README: kernel/x.ko
";

    fn names(order: &[(String, &DepEntry)]) -> Vec<String> {
        order.iter().map(|(n, _)| n.clone()).collect()
    }

    fn w(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn modules_dep_lines_are_read_by_canonical_name_and_junk_is_skipped() {
        let dep = parse_modules_dep(DEP);
        assert_eq!(dep.len(), 7);
        assert_eq!(dep["usb_storage"].deps, ["usbcore", "usb_common"]);
        assert_eq!(dep["exfat"].path, "kernel/fs/exfat/exfat.ko.zst");
        assert!(!dep.contains_key("README"));
    }

    #[test]
    fn closure_puts_dependencies_first_each_once() {
        let dep = parse_modules_dep(DEP);
        let order = dependency_closure(&dep, &BTreeSet::new(), &w(&["usb_storage", "exfat"]));
        assert_eq!(
            names(&order.unwrap()),
            ["usb_common", "usbcore", "usb_storage", "nls_base", "exfat"]
        );
    }

    #[test]
    fn builtin_modules_need_no_file() {
        let dep = parse_modules_dep(DEP);
        let builtin: BTreeSet<String> = ["loop".to_string(), "nls_base".to_string()].into();
        let order = dependency_closure(&dep, &builtin, &w(&["loop", "exfat"])).unwrap();
        assert_eq!(names(&order), ["exfat"]);
    }

    #[test]
    fn a_missing_module_or_dependency_is_named() {
        let dep = parse_modules_dep("a.ko: b.ko\n");
        let none = BTreeSet::new();
        assert_eq!(
            dependency_closure(&dep, &none, &w(&["ntfs3"])).unwrap_err(),
            ClosureError::NotFound {
                name: "ntfs3".into(),
                needed_by: "the boot".into()
            }
        );
        let err = dependency_closure(&dep, &none, &w(&["a"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "b, which a needs, is not in its modules.dep"
        );
    }

    #[test]
    fn a_cycle_is_an_error_not_a_hang() {
        let dep = parse_modules_dep("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n");
        let err = dependency_closure(&dep, &BTreeSet::new(), &w(&["a"])).unwrap_err();
        assert!(matches!(err, ClosureError::Cycle { .. }), "{err}");
    }

    #[test]
    fn a_chain_deeper_than_the_cap_is_refused_without_recursion() {
        let chain: String = (0..10_000)
            .map(|i| format!("m{i}.ko: m{}.ko\n", i + 1))
            .collect::<String>()
            + "m10000.ko:\n";
        let dep = parse_modules_dep(&chain);
        let err = dependency_closure(&dep, &BTreeSet::new(), &w(&["m0"])).unwrap_err();
        assert_eq!(err, ClosureError::TooDeep { name: "m0".into() });
        let ok: String = (0..MAX_DEP_DEPTH - 1)
            .map(|i| format!("m{i}.ko: m{}.ko\n", i + 1))
            .collect::<String>()
            + &format!("m{}.ko:\n", MAX_DEP_DEPTH - 1);
        let dep = parse_modules_dep(&ok);
        let order = dependency_closure(&dep, &BTreeSet::new(), &w(&["m0"])).unwrap();
        assert_eq!(order.len(), MAX_DEP_DEPTH);
    }

    #[test]
    fn more_modules_than_the_cap_are_refused() {
        let deps: String = (1..=MAX_CARRIED_MODULES)
            .map(|i| format!(" m{i}.ko"))
            .collect();
        let mut text = format!("m0.ko:{deps}\n");
        for i in 1..=MAX_CARRIED_MODULES {
            text.push_str(&format!("m{i}.ko:\n"));
        }
        let dep = parse_modules_dep(&text);
        let err = dependency_closure(&dep, &BTreeSet::new(), &w(&["m0"])).unwrap_err();
        assert_eq!(err, ClosureError::TooMany { name: "m0".into() });
    }

    #[test]
    fn image_modules_cover_what_they_carry_or_list_as_built_in() {
        let found = ImageModules {
            kver: "6.12".into(),
            partition: 2,
            dir: "/lib/modules/6.12".into(),
            files: vec![CarriedFile {
                name: "ntfs3".into(),
                file_name: "ntfs3.ko.xz".into(),
                bytes: vec![1],
            }],
            builtin: vec!["loop".into()],
        };
        assert!(found.covers("loop") && found.covers("ntfs3") && !found.covers("exfat"));
        assert_eq!(found.origin(), "partition 2 /lib/modules/6.12");
    }

    #[test]
    fn an_unknown_or_unsafe_kernel_version_is_refused_before_reading() {
        let mut empty = std::io::Cursor::new(Vec::<u8>::new());
        let source = EntrySource::Ext4 {
            partition: ByteRange { offset: 0, len: 0 },
            linux: "/boot/vmlinuz".into(),
            initrd: vec![],
        };
        let none = find_image_modules(&mut empty, 0, &source, None, &w(&["loop"]));
        assert!(none.unwrap_err().contains("version is unknown"));
        let dots = find_image_modules(&mut empty, 0, &source, Some(".."), &w(&["loop"]));
        assert!(dots.unwrap_err().contains("cannot name"));
    }
}
