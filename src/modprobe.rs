//! Kernel modules without udev or modprobe: depmod's index files
//! (modules.dep, modules.alias, modules.builtin, modules.softdep, read by
//! the pure `image::modules_index`), coldplug over sysfs, and the loading
//! order; the syscall itself is `sys::modules::finit_module`.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::image::modules_index::{DepmodIndex, ResolveError, canonical_name};
use crate::sys::modules::{ModuleError, finit_module, kernel_release};

/// Passes of [`coldplug`]: loading a bus driver (virtio_pci, a USB host
/// controller) exposes devices that need another pass.
const COLDPLUG_PASSES: u32 = 4;

/// depmod's view of one kernel's modules, with where they lie and where
/// to look for the loaded ones. The reading of the index is pure
/// ([`DepmodIndex`]); this adds the paths and the syscalls.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    root: PathBuf,
    sys_root: PathBuf,
    index: DepmodIndex,
}

/// What loading one module and its dependencies did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Inserted now, in order.
    pub inserted: Vec<String>,
    /// Built in or already loaded, so skipped.
    pub present: Vec<String>,
}

impl ModuleIndex {
    /// Reads the index of `modules_root` (`/lib/modules/<kver>`).
    /// modules.dep is required; alias, builtin and softdep are optional.
    pub fn load(modules_root: &Path) -> Result<ModuleIndex, ModuleError> {
        let dep_path = modules_root.join("modules.dep");
        let dep = fs::read_to_string(&dep_path).map_err(|source| ModuleError::ReadIndex {
            path: dep_path,
            source,
        })?;
        let optional = |name: &str| -> Result<String, ModuleError> {
            let path = modules_root.join(name);
            match fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
                Err(source) => Err(ModuleError::ReadIndex { path, source }),
            }
        };
        Ok(ModuleIndex::parse(
            modules_root,
            &dep,
            &optional("modules.alias")?,
            &optional("modules.builtin")?,
            &optional("modules.softdep")?,
        ))
    }

    /// Builds an index from the text of the four files.
    pub fn parse(
        modules_root: &Path,
        dep: &str,
        alias: &str,
        builtin: &str,
        softdep: &str,
    ) -> ModuleIndex {
        ModuleIndex {
            root: modules_root.to_path_buf(),
            sys_root: PathBuf::from("/sys"),
            index: DepmodIndex::parse(dep, alias, builtin, softdep),
        }
    }

    /// Uses `sys_root` instead of /sys to see which modules are loaded.
    pub fn with_sys_root(mut self, sys_root: &Path) -> ModuleIndex {
        self.sys_root = sys_root.to_path_buf();
        self
    }

    /// The modules directory this index describes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.index.is_builtin(name)
    }

    /// Whether the kernel has the module now (`/sys/module/<name>`).
    pub fn is_loaded(&self, name: &str) -> bool {
        self.sys_root
            .join("module")
            .join(canonical_name(name))
            .exists()
    }

    /// The files to insert for `name`, dependencies first. A built-in module
    /// needs no file and resolves to an empty list.
    pub fn resolve(&self, name: &str) -> Result<Vec<PathBuf>, ModuleError> {
        match self.index.resolve(name) {
            Ok(paths) => Ok(paths.into_iter().map(|p| self.root.join(p)).collect()),
            Err(ResolveError::NotFound { name }) => Err(ModuleError::NotFound {
                name,
                dir: self.root.clone(),
            }),
            Err(ResolveError::DependencyCycle { name, via }) => {
                Err(ModuleError::DependencyCycle { name, via })
            }
        }
    }

    /// The modules whose alias patterns match `modalias`, in file order,
    /// without duplicates (see [`DepmodIndex::lookup_alias`]).
    pub fn lookup_alias(&self, modalias: &str) -> Vec<String> {
        self.index.lookup_alias(modalias)
    }

    /// Inserts `name` and what it depends on, skipping built-in and loaded
    /// modules. EEXIST (a race with another loader) counts as present.
    pub fn load_module(&self, name: &str) -> Result<LoadReport, ModuleError> {
        let mut report = LoadReport::default();
        let canonical = canonical_name(name);
        if self.is_builtin(&canonical) {
            report.present.push(canonical);
            return Ok(report);
        }
        for path in self.resolve(&canonical)? {
            let module = canonical_name(&path.to_string_lossy());
            if self.is_builtin(&module) || self.is_loaded(&module) {
                report.present.push(module);
                continue;
            }
            match finit_module(&module, &path) {
                Ok(()) => report.inserted.push(module),
                Err(ModuleError::Init {
                    errno: Errno::EEXIST,
                    ..
                }) => report.present.push(module),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// What a coldplug run did.
#[derive(Debug, Default)]
pub struct ColdplugReport {
    /// Modules inserted, in order.
    pub inserted: Vec<String>,
    /// Modules that matched a device but were built in or already loaded.
    pub present: Vec<String>,
    /// Modules that failed to load, with why.
    pub failed: Vec<(String, ModuleError)>,
    /// Device modaliases no module claims (normal: many devices need none).
    pub unmatched: usize,
    /// Distinct modaliases seen.
    pub devices: usize,
    /// Passes over /sys/devices made.
    pub passes: u32,
}

/// Loads the modules for every device under `<sys_root>/devices`: each
/// `modalias` file is matched against modules.alias. Repeats while new
/// devices appear (at most a few passes), since a bus driver exposes the
/// devices behind it. Symlinks are not followed (sysfs has loops).
pub fn coldplug(sys_root: &Path, index: &ModuleIndex) -> ColdplugReport {
    Coldplug::new(sys_root, index.clone()).run()
}

impl ColdplugReport {
    /// The log lines for a later run: what it loaded or failed to load
    /// (nothing when no new device needed a driver).
    pub fn late_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.inserted.is_empty() {
            lines.push(format!(
                "coldplug: new device(s): inserted [{}]",
                self.inserted.join(", ")
            ));
        }
        for (name, e) in &self.failed {
            lines.push(format!("coldplug: loading {name} failed: {e}"));
        }
        lines
    }
}

/// Coldplug that can be run again: it remembers the modaliases it has
/// handled and the modules it has tried, so a later run handles only the
/// devices that appeared since. Devices behind a bus show up after their
/// bus driver loads, and not always at once: a USB stick enumerates some
/// hundreds of milliseconds after its host controller's driver, which one
/// pass cannot wait for, and a stick can be plugged in while the menu runs.
/// Stage 1 runs it again while it waits for disks and at each rescan. What
/// it remembers grows with the machine's devices only.
#[derive(Debug, Clone)]
pub struct Coldplug {
    sys_root: PathBuf,
    index: ModuleIndex,
    seen: HashSet<String>,
    tried: HashSet<String>,
}

impl Coldplug {
    pub fn new(sys_root: &Path, index: ModuleIndex) -> Coldplug {
        Coldplug {
            sys_root: sys_root.to_path_buf(),
            index,
            seen: HashSet::new(),
            tried: HashSet::new(),
        }
    }

    /// Loads the modules of the devices not seen before, in passes while
    /// new ones appear. `devices` counts every modalias seen so far.
    pub fn run(&mut self) -> ColdplugReport {
        let mut report = ColdplugReport::default();
        for _ in 0..COLDPLUG_PASSES {
            let mut fresh = BTreeSet::new();
            collect_modaliases(&self.sys_root.join("devices"), &mut fresh);
            fresh.retain(|m| !self.seen.contains(m));
            if fresh.is_empty() {
                break;
            }
            report.passes += 1;
            for modalias in fresh {
                let modules = self.index.lookup_alias(&modalias);
                if modules.is_empty() {
                    report.unmatched += 1;
                }
                for module in modules {
                    if !self.tried.insert(module.clone()) {
                        continue;
                    }
                    match self.index.load_module(&module) {
                        Ok(r) => {
                            report.inserted.extend(r.inserted);
                            report.present.extend(r.present);
                        }
                        Err(e) => report.failed.push((module, e)),
                    }
                }
                self.seen.insert(modalias);
            }
        }
        report.devices = self.seen.len();
        report
    }
}

fn collect_modaliases(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // DirEntry::file_type does not follow symlinks.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_modaliases(&entry.path(), out);
        } else if kind.is_file()
            && entry.file_name() == "modalias"
            && let Ok(text) = fs::read_to_string(entry.path())
        {
            let text = text.trim();
            if !text.is_empty() {
                out.insert(text.to_string());
            }
        }
    }
}

/// What loading the boot modules did: both stages coldplug the running
/// kernel's hardware and then load the filesystem modules they need.
#[derive(Debug)]
pub struct BootModules {
    /// Why no module could be loaded at all (no index for this kernel);
    /// built-in drivers may still do.
    pub unavailable: Option<String>,
    pub coldplug: Option<ColdplugReport>,
    /// The named modules that failed to load, with why.
    pub failed: Vec<(String, ModuleError)>,
    /// The coldplug, to run again for devices that appear later.
    pub hotplug: Option<Coldplug>,
}

/// Coldplugs the hardware, then loads `names` with their dependencies, all
/// from /lib/modules/<running kernel>. Never fails as a whole: a missing
/// module must not stop the boot, so the caller reports what went wrong.
pub fn load_boot_modules(names: &[&str]) -> BootModules {
    let release = match kernel_release() {
        Ok(r) => r,
        Err(e) => {
            return BootModules {
                unavailable: Some(format!("uname failed: {e}; not loading modules")),
                coldplug: None,
                failed: Vec::new(),
                hotplug: None,
            };
        }
    };
    let root = PathBuf::from("/lib/modules").join(&release);
    let index = match ModuleIndex::load(&root) {
        Ok(i) => i,
        Err(e) => {
            return BootModules {
                unavailable: Some(format!(
                    "no module index at {}: {e}; relying on built-in drivers",
                    root.display()
                )),
                coldplug: None,
                failed: Vec::new(),
                hotplug: None,
            };
        }
    };
    let mut hotplug = Coldplug::new(Path::new("/sys"), index);
    let coldplug = hotplug.run();
    let failed = names
        .iter()
        .filter_map(|m| {
            hotplug
                .index
                .load_module(m)
                .err()
                .map(|e| (m.to_string(), e))
        })
        .collect();
    BootModules {
        unavailable: None,
        coldplug: Some(coldplug),
        failed,
        hotplug: Some(hotplug),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ntfs3/ntfs3.ko.xz:
kernel/fs/exfat/exfat.ko.xz: kernel/fs/nls/nls_base.ko.xz
kernel/fs/nls/nls_base.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/virtio/virtio_ring.ko.xz: kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/virtio/virtio.ko.xz:
kernel/drivers/usb/storage/usb-storage.ko.zst: kernel/drivers/usb/core/usbcore.ko.zst kernel/drivers/usb/common/usb-common.ko.zst
kernel/drivers/usb/core/usbcore.ko.zst: kernel/drivers/usb/common/usb-common.ko.zst
kernel/drivers/usb/common/usb-common.ko.zst:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
alias virtio:d00000002v* virtio_blk
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias fs-ntfs3 ntfs3
alias fs-ntfs ntfs3
alias pci:v0000[89]086d*sv*sd*bc*sc*i* fake_intel
";
    const BUILTIN: &str = "kernel/fs/ext4/ext4.ko\nkernel/drivers/block/loop.ko\n";
    const SOFTDEP: &str = "softdep exfat pre: ntfs3 post: nothing\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(
            Path::new("/lib/modules/6.12.0"),
            DEP,
            ALIAS,
            BUILTIN,
            SOFTDEP,
        )
    }

    #[test]
    fn resolve_puts_dependencies_first() {
        let paths = index().resolve("virtio_blk").unwrap();
        let names: Vec<String> = paths
            .iter()
            .map(|p| canonical_name(&p.to_string_lossy()))
            .collect();
        assert_eq!(names, ["virtio", "virtio_ring", "virtio_blk"]);
        assert_eq!(
            paths.last().unwrap(),
            Path::new("/lib/modules/6.12.0/kernel/drivers/block/virtio_blk.ko.xz")
        );
    }

    #[test]
    fn resolve_accepts_dashed_names() {
        let names: Vec<String> = index()
            .resolve("usb-storage")
            .unwrap()
            .iter()
            .map(|p| canonical_name(&p.to_string_lossy()))
            .collect();
        assert_eq!(names, ["usb_common", "usbcore", "usb_storage"]);
    }

    #[test]
    fn softdep_pre_modules_come_first() {
        let names: Vec<String> = index()
            .resolve("exfat")
            .unwrap()
            .iter()
            .map(|p| canonical_name(&p.to_string_lossy()))
            .collect();
        assert_eq!(names, ["ntfs3", "nls_base", "exfat"]);
    }

    #[test]
    fn builtin_module_resolves_to_nothing() {
        assert!(index().resolve("ext4").unwrap().is_empty());
        assert!(index().is_builtin("loop"));
    }

    #[test]
    fn missing_module_names_module_and_directory() {
        let err = index().resolve("btrfs").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("btrfs") && text.contains("/lib/modules/6.12.0"),
            "{text}"
        );
    }

    #[test]
    fn dependency_cycle_is_an_error_not_a_hang() {
        let idx = ModuleIndex::parse(Path::new("/m"), "a.ko: b.ko\nb.ko: a.ko\n", "", "", "");
        assert!(matches!(
            idx.resolve("a"),
            Err(ModuleError::DependencyCycle { .. })
        ));
    }

    #[test]
    fn pci_modalias_matches_with_wildcards() {
        let modalias = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00";
        assert_eq!(index().lookup_alias(modalias), ["virtio_blk"]);
    }

    #[test]
    fn usb_storage_interface_modalias_matches() {
        let modalias = "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00";
        assert_eq!(index().lookup_alias(modalias), ["usb_storage"]);
    }

    #[test]
    fn fs_alias_and_plain_names_resolve() {
        assert_eq!(index().lookup_alias("fs-ntfs"), ["ntfs3"]);
        assert_eq!(index().lookup_alias("exfat"), ["exfat"]);
        assert!(index().lookup_alias("acpi:PNP0A03:").is_empty());
    }

    #[test]
    fn loaded_and_builtin_modules_are_skipped_without_a_syscall() {
        let sys = tempfile::tempdir().unwrap();
        for m in ["virtio", "virtio_ring", "virtio_blk"] {
            fs::create_dir_all(sys.path().join("module").join(m)).unwrap();
        }
        let idx = index().with_sys_root(sys.path());
        let report = idx.load_module("virtio_blk").unwrap();
        assert!(report.inserted.is_empty());
        assert_eq!(report.present, ["virtio", "virtio_ring", "virtio_blk"]);
        assert_eq!(idx.load_module("ext4").unwrap().present, ["ext4"]);
    }

    #[test]
    fn unreadable_module_file_names_module_and_path() {
        let sys = tempfile::tempdir().unwrap();
        let idx = index().with_sys_root(sys.path());
        let err = idx.load_module("ntfs3").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ntfs3") && text.contains("ntfs3.ko.xz"),
            "{text}"
        );
    }

    #[test]
    fn compressed_module_rejection_explains_decompression() {
        let err = ModuleError::Init {
            name: "ntfs3".into(),
            path: "/lib/modules/x/ntfs3.ko.xz".into(),
            errno: Errno::EOPNOTSUPP,
        };
        assert!(err.to_string().contains("MODULE_DECOMPRESS"), "{err}");
    }

    /// A sysfs tree with one virtio block device; returns it and the
    /// device's directory.
    fn sysfs_with_virtio_disk() -> (tempfile::TempDir, PathBuf) {
        let sys = tempfile::tempdir().unwrap();
        let pci = sys.path().join("devices/pci0000:00/0000:00:04.0");
        fs::create_dir_all(&pci).unwrap();
        fs::write(
            pci.join("modalias"),
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        )
        .unwrap();
        (sys, pci)
    }

    #[test]
    fn coldplug_walks_a_sysfs_tree_without_following_symlinks() {
        let (sys, pci) = sysfs_with_virtio_disk();
        let acpi = sys.path().join("devices/LNXSYSTM:00");
        fs::create_dir_all(&acpi).unwrap();
        fs::write(acpi.join("modalias"), "acpi:LNXSYSTM:\n").unwrap();
        // A loop like sysfs's `subsystem` and `device` links.
        std::os::unix::fs::symlink("../..", pci.join("subsystem")).unwrap();
        for m in ["virtio", "virtio_ring", "virtio_blk"] {
            fs::create_dir_all(sys.path().join("module").join(m)).unwrap();
        }
        let idx = index().with_sys_root(sys.path());
        let report = coldplug(sys.path(), &idx);
        assert_eq!(report.devices, 2);
        assert_eq!(report.unmatched, 1);
        assert_eq!(report.present, ["virtio", "virtio_ring", "virtio_blk"]);
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.passes, 1);
    }

    #[test]
    fn coldplug_run_again_handles_only_devices_that_appeared_since() {
        let (sys, _) = sysfs_with_virtio_disk();
        for m in [
            "virtio",
            "virtio_ring",
            "virtio_blk",
            "usbcore",
            "usb_common",
        ] {
            fs::create_dir_all(sys.path().join("module").join(m)).unwrap();
        }
        let mut plug = Coldplug::new(sys.path(), index().with_sys_root(sys.path()));
        let first = plug.run();
        assert_eq!(first.present, ["virtio", "virtio_ring", "virtio_blk"]);
        // Nothing new: nothing is matched or loaded again.
        let idle = plug.run();
        assert_eq!((idle.passes, idle.devices), (0, 1));
        assert!(idle.present.is_empty() && idle.inserted.is_empty());
        // A USB stick enumerates later, behind its host controller.
        let stick = sys
            .path()
            .join("devices/pci0000:00/0000:00:05.0/usb2/2-1/2-1:1.0");
        fs::create_dir_all(&stick).unwrap();
        fs::write(
            stick.join("modalias"),
            "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00\n",
        )
        .unwrap();
        fs::create_dir_all(sys.path().join("module/usb_storage")).unwrap();
        let late = plug.run();
        assert_eq!(late.passes, 1);
        assert_eq!(late.devices, 2);
        assert_eq!(late.present, ["usb_common", "usbcore", "usb_storage"]);
        assert!(late.failed.is_empty(), "{:?}", late.failed);
    }

    #[test]
    fn load_reads_the_index_files_from_the_root() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("modules.dep"), DEP).unwrap();
        fs::write(root.path().join("modules.alias"), ALIAS).unwrap();
        let idx = ModuleIndex::load(root.path()).unwrap();
        assert_eq!(
            idx.lookup_alias("virtio:d00000002v00001AF4"),
            ["virtio_blk"]
        );
        assert!(
            !idx.is_builtin("ext4"),
            "no modules.builtin means nothing built in"
        );
    }

    #[test]
    fn missing_modules_dep_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        let err = ModuleIndex::load(root.path()).unwrap_err();
        assert!(err.to_string().contains("modules.dep"), "{err}");
    }
}
