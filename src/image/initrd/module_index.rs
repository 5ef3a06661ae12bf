//! The module trees an initramfs holds (`lib/modules/<version>/`), and
//! which modules the check wants, so that the scan can stop once it knows.

use crate::image::modules_index::{canonical_name, parse_builtin};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What `lib/modules/<version>/` in the initramfs holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleTree {
    /// Loadable modules by canonical name (`-` read as `_`), with the
    /// path of the file.
    pub modules: BTreeMap<String, String>,
    /// The modules built into the kernel, from `modules.builtin`, or None
    /// when the initramfs has no such list.
    pub builtin: Option<BTreeSet<String>>,
}

/// Splits a cpio name into (kernel version, path below it) when it lies
/// in `lib/modules/` (or `usr/lib/modules/`, for merged-/usr images).
pub(super) fn modules_path(name: &str) -> Option<(&str, &str)> {
    let name = name.trim_start_matches("./").trim_start_matches('/');
    let name = name.strip_prefix("usr/").unwrap_or(name);
    let rest = name.strip_prefix("lib/modules/")?;
    let (version, below) = rest.split_once('/')?;
    (!version.is_empty() && !below.is_empty()).then_some((version, below))
}

/// Which modules are wanted, for which kernel, so that the scan can stop
/// as soon as it knows.
#[derive(Debug, Clone)]
pub(super) struct Wanted {
    version: Option<String>,
    modules: Vec<String>,
}

impl Wanted {
    pub(super) fn satisfied(&self, trees: &BTreeMap<String, ModuleTree>) -> bool {
        let Some(tree) = self.version.as_ref().and_then(|v| trees.get(v)) else {
            return false;
        };
        self.modules.iter().all(|m| {
            tree.modules.contains_key(m) || tree.builtin.as_ref().is_some_and(|b| b.contains(m))
        })
    }
}

impl Wanted {
    pub(super) fn new(version: Option<&str>, modules: &[&str]) -> Wanted {
        Wanted {
            version: version.map(str::to_string),
            modules: modules.iter().map(|m| canonical_name(m)).collect(),
        }
    }
}

/// The module names in a `modules.builtin` read from the initramfs.
pub(super) fn builtin_list(bytes: &[u8]) -> BTreeSet<String> {
    parse_builtin(&String::from_utf8_lossy(bytes))
}
