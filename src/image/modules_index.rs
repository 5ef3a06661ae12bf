//! depmod's index files, read without a syscall: module names as the
//! kernel spells them, `modules.builtin`, `modules.dep`, `modules.softdep`
//! and `modules.alias` with its glob patterns. `sys::modules` reads the
//! files of the running kernel and inserts modules; the boot-time initrd
//! check reads the target's lists from its initramfs. Both use this one
//! reading, so they agree on what a module is called.

use std::collections::{BTreeSet, HashMap};

/// The file-name endings of a module: plain, or compressed the ways the
/// kernel's MODULE_DECOMPRESS and kmod know.
const MODULE_SUFFIXES: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// The stem of a module file name (`loop.ko.xz` → `loop`), or None when
/// the name does not end like a module.
fn module_stem(file: &str) -> Option<&str> {
    MODULE_SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
}

/// The canonical name of a module file (`nls-utf8.ko.zst` → `nls_utf8`),
/// or None when the file is not a module. `file` is a bare file name.
pub fn module_file_name(file: &str) -> Option<String> {
    module_stem(file).map(|stem| stem.replace('-', "_"))
}

/// The canonical module name of a name or path: the file name without
/// `.ko[.xz|.zst|.gz]`, with `-` turned into `_` as the kernel does, so
/// `usb-storage`, `usb_storage` and `kernel/…/usb-storage.ko.zst` are one
/// module.
pub fn canonical_name(name_or_path: &str) -> String {
    let base = name_or_path.rsplit('/').next().unwrap_or(name_or_path);
    module_stem(base).unwrap_or(base).replace('-', "_")
}

/// The module names in a `modules.builtin` (one path per line, such as
/// `kernel/drivers/block/loop.ko`). Lines that name no module are skipped.
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| module_file_name(l.trim().rsplit('/').next().unwrap_or_default()))
        .collect()
}

/// Why [`DepmodIndex::resolve`] found no load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The module is neither in modules.dep nor built in.
    NotFound {
        name: String,
    },
    DependencyCycle {
        name: String,
        via: String,
    },
}

#[derive(Debug, Clone)]
struct DepEntry {
    /// Path relative to the modules root, as modules.dep has it.
    path: String,
    /// Dependencies by canonical name, as listed in modules.dep.
    deps: Vec<String>,
}

/// depmod's view of one kernel's modules.
#[derive(Debug, Clone, Default)]
pub struct DepmodIndex {
    modules: HashMap<String, DepEntry>,
    /// (pattern, module) in file order.
    aliases: Vec<(String, String)>,
    builtin: BTreeSet<String>,
    /// Modules to load before a module (`softdep X pre: A B`).
    softdep_pre: HashMap<String, Vec<String>>,
}

impl DepmodIndex {
    /// Builds an index from the text of modules.dep, modules.alias,
    /// modules.builtin and modules.softdep (any may be empty).
    pub fn parse(dep: &str, alias: &str, builtin: &str, softdep: &str) -> DepmodIndex {
        let mut modules = HashMap::new();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            modules.insert(
                canonical_name(path),
                DepEntry {
                    path: path.to_string(),
                    deps: deps.split_whitespace().map(canonical_name).collect(),
                },
            );
        }
        let aliases = alias
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("alias"), Some(pattern), Some(module)) => {
                        Some((pattern.to_string(), canonical_name(module)))
                    }
                    _ => None,
                }
            })
            .collect();
        let mut softdep_pre: HashMap<String, Vec<String>> = HashMap::new();
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let mut in_pre = false;
            for word in words {
                match word {
                    "pre:" => in_pre = true,
                    "post:" => in_pre = false,
                    dep if in_pre => softdep_pre
                        .entry(canonical_name(module))
                        .or_default()
                        .push(canonical_name(dep)),
                    _ => {}
                }
            }
        }
        DepmodIndex {
            modules,
            aliases,
            builtin: parse_builtin(builtin),
            softdep_pre,
        }
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&canonical_name(name))
    }

    /// The files (relative to the modules root) to insert for `name`,
    /// dependencies first. A built-in module needs no file and resolves to
    /// an empty list.
    pub fn resolve(&self, name: &str) -> Result<Vec<&str>, ResolveError> {
        let mut order = Vec::new();
        let mut visiting = Vec::new();
        self.visit(&canonical_name(name), &mut order, &mut visiting)?;
        Ok(order
            .into_iter()
            .filter_map(|n| self.modules.get(&n).map(|e| e.path.as_str()))
            .collect())
    }

    /// Depth-first, post-order: every module comes after what it needs.
    fn visit(
        &self,
        name: &str,
        order: &mut Vec<String>,
        visiting: &mut Vec<String>,
    ) -> Result<(), ResolveError> {
        if order.iter().any(|n| n == name) {
            return Ok(());
        }
        if visiting.iter().any(|n| n == name) {
            return Err(ResolveError::DependencyCycle {
                name: name.to_string(),
                via: visiting.join(" -> "),
            });
        }
        let Some(entry) = self.modules.get(name) else {
            if self.builtin.contains(name) {
                return Ok(());
            }
            return Err(ResolveError::NotFound {
                name: name.to_string(),
            });
        };
        visiting.push(name.to_string());
        // Soft dependencies are best effort: a missing one is skipped.
        for pre in self.softdep_pre.get(name).into_iter().flatten() {
            if self.modules.contains_key(pre) {
                self.visit(pre, order, visiting)?;
            }
        }
        for dep in &entry.deps {
            self.visit(dep, order, visiting)?;
        }
        visiting.pop();
        order.push(name.to_string());
        Ok(())
    }

    /// The modules whose alias patterns match `modalias`, in file order,
    /// without duplicates. A plain module name also matches itself, as
    /// modprobe does.
    pub fn lookup_alias(&self, modalias: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let normalized = canonical_name(modalias);
        if self.modules.contains_key(&normalized) || self.builtin.contains(&normalized) {
            found.push(normalized);
        }
        for (pattern, module) in &self.aliases {
            if !found.contains(module) && glob_match(pattern, modalias) {
                found.push(module.clone());
            }
        }
        found
    }
}

/// fnmatch(3) without flags, as kmod matches modules.alias patterns: `*`
/// matches any run of bytes, `?` one byte, `[...]` one byte of a class
/// (ranges `a-z`, negation with `!` or `^`, a `]` first is literal), and
/// `\` quotes the next byte. A `[` without its `]` is literal.
///
/// Modaliases are ASCII, so this works on bytes. `*` is matched with the
/// iterative two-pointer method (back up only to the last `*`), so a
/// pattern costs at most pattern × text steps, never exponential time.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // A cheap prefix test first: most patterns start with a literal bus
    // prefix like `pci:v00008086`, and there are tens of thousands of them.
    let literal_end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    let prefix = pattern.get(..literal_end).unwrap_or("");
    if !text.starts_with(prefix) {
        return false;
    }
    if literal_end == pattern.len() {
        return text == pattern;
    }
    let (pat, txt) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern after it, and the
    // text position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match pat.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(_) => {
                if let Some(&byte) = txt.get(t)
                    && let Some((true, next)) = match_one(pat, p, byte)
                {
                    p = next;
                    t += 1;
                    continue;
                }
            }
            None if t == txt.len() => return true,
            None => {}
        }
        match star {
            Some((after, swallowed)) if swallowed < txt.len() => {
                star = Some((after, swallowed + 1));
                p = after;
                t = swallowed + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one pattern element at `pat[p]` (not `*`) against `byte`: the
/// verdict and where the next element starts.
fn match_one(pat: &[u8], p: usize, byte: u8) -> Option<(bool, usize)> {
    match *pat.get(p)? {
        b'?' => Some((true, p + 1)),
        b'\\' => match pat.get(p + 1) {
            Some(&quoted) => Some((quoted == byte, p + 2)),
            None => Some((byte == b'\\', p + 1)),
        },
        b'[' => Some(match_class(pat, p, byte).unwrap_or((byte == b'[', p + 1))),
        literal => Some((literal == byte, p + 1)),
    }
}

/// A `[...]` class starting at `pat[p]`, or None when it has no closing
/// `]` (then the `[` is literal).
fn match_class(pat: &[u8], p: usize, byte: u8) -> Option<(bool, usize)> {
    let mut i = p + 1;
    let negated = matches!(pat.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *pat.get(i)?;
        if c == b']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        let (low, after) = if c == b'\\' {
            (*pat.get(i + 1)?, i + 2)
        } else {
            (c, i + 1)
        };
        if pat.get(after) == Some(&b'-') && pat.get(after + 1).is_some_and(|&h| h != b']') {
            let high = *pat.get(after + 1)?;
            matched |= (low..=high).contains(&byte);
            i = after + 2;
        } else {
            matched |= low == byte;
            i = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_are_canonical_and_other_files_are_not_modules() {
        assert_eq!(module_file_name("loop.ko.xz").as_deref(), Some("loop"));
        assert_eq!(module_file_name("nls-utf8.ko").as_deref(), Some("nls_utf8"));
        assert_eq!(module_file_name("ntfs3.ko.zst").as_deref(), Some("ntfs3"));
        assert_eq!(module_file_name("virtio.ko.gz").as_deref(), Some("virtio"));
        assert_eq!(module_file_name("modules.dep"), None);
        assert_eq!(module_file_name("loop.kotlin"), None);
        assert_eq!(module_file_name(".ko"), None);
    }

    #[test]
    fn names_and_paths_share_one_canonical_form() {
        assert_eq!(
            canonical_name("kernel/drivers/usb/storage/usb-storage.ko.zst"),
            "usb_storage"
        );
        assert_eq!(canonical_name("usb-storage"), "usb_storage");
        assert_eq!(canonical_name("ext4.ko"), "ext4");
    }

    #[test]
    fn builtin_lists_give_module_names() {
        let list =
            parse_builtin("kernel/fs/ext4/ext4.ko\n\n  kernel/drivers/block/loop.ko \nREADME\n");
        assert_eq!(list.into_iter().collect::<Vec<_>>(), ["ext4", "loop"]);
    }

    #[test]
    fn real_modules_alias_patterns_match() {
        let intel = "pci:v00008086d*sv*sd*bc*sc*i*";
        assert!(glob_match(
            intel,
            "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00"
        ));
        assert!(!glob_match(
            intel,
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(glob_match(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(!glob_match(
            "virtio:d00000002v*",
            "virtio:d00000012v00001AF4"
        ));
        assert!(glob_match("acpi*:PNP0501:*", "acpi:PNP0501:"));
        assert!(glob_match(
            "acpi*:PNP0501:*",
            "acpi:LNXSYSTM:PNP0501:PNP0500:"
        ));
        assert!(!glob_match("acpi*:PNP0501:*", "acpi:PNP0500:"));
        let usb = "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*";
        assert!(glob_match(
            usb,
            "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"
        ));
    }

    #[test]
    fn bracket_classes_match() {
        assert!(glob_match("pci:v0000[89]086d*", "pci:v00008086d1234"));
        assert!(glob_match("pci:v0000[89]086d*", "pci:v00009086d1234"));
        assert!(!glob_match("pci:v0000[89]086d*", "pci:v00007086d1234"));
        assert!(glob_match("a?c", "abc") && !glob_match("a?c", "abbc"));
        assert!(glob_match("x[0-9A-F]y", "xCy") && !glob_match("x[0-9A-F]y", "xgy"));
        assert!(glob_match("x[!0-9]y", "xay") && !glob_match("x[!0-9]y", "x5y"));
        assert!(glob_match("x[]]y", "x]y"));
        assert!(glob_match("x[ab", "x[ab"), "an unclosed class is literal");
        assert!(glob_match("a\\*b", "a*b") && !glob_match("a\\*b", "axb"));
    }

    #[test]
    fn many_stars_match_in_bounded_time() {
        let pattern = "*a".repeat(30) + "b";
        let text = "a".repeat(2000);
        assert!(!glob_match(&pattern, &text));
        assert!(glob_match("*", "") && glob_match("**", "x") && !glob_match("?", ""));
    }
}
