//! The verdict of the pre-flight module check: can the target get `loop`
//! and the host's filesystem driver from its initramfs, and what to tell
//! the user when it cannot or when the check could not be made.

use super::{Segment, scan};
use crate::image::bzimage;
use crate::image::carry::ImageModulesResult;
use crate::image::modules_index::canonical_name;
use crate::image::payload::Payload;
use crate::model::Problem;
use serde::Serialize;

/// Whether the target can get a module it needs at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Presence {
    /// The initramfs holds the module at this path.
    File(String),
    /// The kernel has it built in (listed in the initramfs's modules.builtin).
    BuiltIn,
    /// Neither: the initramfs lists the built-in modules and this is not
    /// one of them, and no module file for it was found.
    Missing,
    /// The initramfs does not say (no modules.builtin for this kernel, or
    /// part of it could not be read).
    Unknown,
}

/// The verdict of the boot-time module check for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleCheck {
    /// The kernel version checked against, if one could be told.
    pub version: Option<String>,
    /// Each wanted module and whether the target can get it.
    pub modules: Vec<(String, Presence)>,
    /// Why the check could not be made in full, if it could not.
    pub unsure: Option<String>,
    pub segments: Vec<Segment>,
}

impl ModuleCheck {
    /// True when the entry has no initramfs at all: stage 2 would have no
    /// `/init` to hand over to and no modules to load.
    pub fn no_initramfs(&self) -> bool {
        self.segments.is_empty() && self.unsure.is_none()
    }
}

/// [`check_modules`] for a loaded entry. The kernel version comes from its
/// bzImage header, which is what will run, whatever the entry claims;
/// `claimed` (the UKI's `.uname` or the entry's `version`) is the fallback.
pub fn check_payload(payload: &Payload, claimed: Option<&str>, fs_driver: &str) -> ModuleCheck {
    let release = bzimage::release(&payload.kernel);
    check_modules(&payload.initrd, release.as_deref().or(claimed), fs_driver)
}

/// Checks that the target can get `loop` and `fs_driver` (`ntfs3` or
/// `exfat`) for kernel `version` from `initrd`. With no version, a single
/// module tree in the initramfs is taken as the target's.
pub fn check_modules(initrd: &[u8], version: Option<&str>, fs_driver: &str) -> ModuleCheck {
    check_modules_with(initrd, version, fs_driver, &[])
}

/// [`check_modules`] that also wants `extra` (an immutable boot's
/// device-mapper modules).
pub fn check_modules_with(
    initrd: &[u8],
    version: Option<&str>,
    fs_driver: &str,
    extra: &[&str],
) -> ModuleCheck {
    let mut wanted = vec!["loop", fs_driver];
    wanted.extend_from_slice(extra);
    let found = scan(initrd, version, &wanted);
    let version = version.map(str::to_string).or_else(|| {
        match found.trees.keys().collect::<Vec<_>>().as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        }
    });
    let tree = version.as_ref().and_then(|v| found.trees.get(v));
    let mut unsure = found.unread.clone();
    if found.segments.is_empty() {
        // No initramfs at all: `no_initramfs` reports it.
    } else if tree.is_none() {
        let have: Vec<&str> = found.trees.keys().map(String::as_str).collect();
        unsure.get_or_insert_with(|| match (&version, have.is_empty()) {
            (_, true) => "the initramfs holds no kernel modules at all (lib/modules)".to_string(),
            (Some(v), false) => format!(
                "the initramfs holds modules for kernel {} but none for {v}",
                have.join(", ")
            ),
            (None, false) => format!(
                "the kernel version is unknown and the initramfs holds modules for {}",
                have.join(", ")
            ),
        });
    } else if tree.is_some_and(|t| t.builtin.is_none()) && unsure.is_none() {
        unsure = Some(
            "the initramfs has no modules.builtin, so built-in drivers cannot be told apart".into(),
        );
    }
    let modules = wanted
        .iter()
        .map(|m| {
            let m = canonical_name(m);
            let presence = match tree {
                Some(t) if t.modules.contains_key(&m) => {
                    Presence::File(t.modules.get(&m).cloned().unwrap_or_default())
                }
                Some(t) if t.builtin.as_ref().is_some_and(|b| b.contains(&m)) => Presence::BuiltIn,
                // Only a complete read with a built-in list proves absence.
                Some(t) if t.builtin.is_some() && found.unread.is_none() => Presence::Missing,
                _ => Presence::Unknown,
            };
            (m, presence)
        })
        .collect();
    ModuleCheck {
        version,
        modules,
        unsure,
        segments: found.segments,
    }
}

impl ModuleCheck {
    fn with(&self, p: fn(&Presence) -> bool) -> Vec<&str> {
        self.modules
            .iter()
            .filter(|(_, s)| p(s))
            .map(|(m, _)| m.as_str())
            .collect()
    }

    /// The modules proven missing.
    pub fn missing(&self) -> Vec<&str> {
        self.with(|s| *s == Presence::Missing)
    }

    /// The modules the initramfs does not provably give the target
    /// (missing, or not known): the ones worth carrying from the image.
    /// Empty when there is no initramfs at all, as nothing can be added to
    /// an archive stage 2 cannot hand over from.
    pub fn wanting(&self) -> Vec<String> {
        if self.no_initramfs() {
            return Vec::new();
        }
        self.modules
            .iter()
            .filter(|(_, s)| matches!(s, Presence::Missing | Presence::Unknown))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// A blocking problem when a module is proven missing, a warning when
    /// the check could not be made, None when all is well.
    ///
    /// A false refusal would stop a boot that works (a kernel with the
    /// drivers built in but no modules.builtin in its initramfs), so only
    /// proof refuses; doubt only warns.
    pub fn problem(&self) -> Option<Problem> {
        self.problem_with(None)
    }

    /// [`problem`](Self::problem) once the image's own module tree was
    /// looked at: what it carries or lists as built in is no longer
    /// wanting, and a refusal says why the image could not help.
    pub fn problem_with(&self, image: Option<&ImageModulesResult>) -> Option<Problem> {
        if self.no_initramfs() {
            return Some(Problem::blocking(
                "the entry has no initramfs, so stage 2 would have neither the loop and \
                 filesystem modules nor an /init to hand over to",
                "inside the OS, build the UKI or entry with its initramfs (kernel-install, ukify \
                 --initrd, or an `initrd` line in the entry)",
            ));
        }
        let all: Vec<&str> = self.modules.iter().map(|(m, _)| m.as_str()).collect();
        let kernel = self
            .version
            .as_deref()
            .map_or_else(|| "its kernel".to_string(), |v| format!("kernel {v}"));
        let hint = format!(
            "inside the OS, add {list} to its initramfs and regenerate it: MODULES=({mods}) in \
             /etc/mkinitcpio.conf then mkinitcpio -P; add_drivers+=\" {mods} \" in \
             /etc/dracut.conf.d/vhdboot.conf then dracut -f; or one per line in \
             /etc/initramfs-tools/modules then update-initramfs -u",
            list = all
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(" and "),
            mods = all.join(" ")
        );
        let covered = |m: &&str| match image {
            Some(Ok(found)) => found.covers(m),
            _ => false,
        };
        let mut missing = self.missing();
        missing.retain(|m| !covered(m));
        if !missing.is_empty() {
            let noun = if missing.len() == 1 {
                "module"
            } else {
                "modules"
            };
            let (image_says, image_hint) = match image {
                None => (String::new(), String::new()),
                Some(found) => {
                    let version = self.version.as_deref().unwrap_or("<version>");
                    let why = match found {
                        Ok(tree) => format!(
                            "its {} on partition {} has neither",
                            tree.dir, tree.partition
                        ),
                        Err(why) => why.clone(),
                    };
                    (
                        format!(
                            ", and vhdboot could not carry {} from the image either: {why}",
                            if missing.len() == 1 { "it" } else { "them" }
                        ),
                        format!(
                            "; or install this kernel's modules in the OS (/lib/modules/{version} \
                             on its ext4 root), which vhdboot then carries by itself"
                        ),
                    )
                }
            };
            return Some(Problem::blocking(
                format!(
                    "the target's initramfs has no {} {noun} for {kernel} (neither as a file \
                     nor built in){image_says}, so it could never find its root on the image",
                    missing.join(" or ")
                ),
                format!("{hint}{image_hint}"),
            ));
        }
        let mut unknown = self.with(|s| *s == Presence::Unknown);
        unknown.retain(|m| !covered(m));
        if unknown.is_empty() {
            return None;
        }
        let why = self
            .unsure
            .as_deref()
            .unwrap_or("the initramfs does not say");
        Some(Problem::warning(
            format!(
                "could not check that the target's initramfs has {} for {kernel}: {why}",
                unknown.join(" and ")
            ),
            format!(
                "the boot may still work if they are built in; if it stops before finding its \
                 root, {hint}"
            ),
        ))
    }
}
