//! The console keyboard layout (`keymap = NAME` in vhdboot.conf, or
//! `vhdboot.keymap=NAME` on the kernel command line), loaded before the
//! menu so that the editor, the password prompt and the rescue shell type
//! what the keys say.
//!
//! The maps are busybox binary keymaps that initrd/keymaps generates at
//! build time; busybox's `loadkmap` applet (the rescue shell's busybox)
//! hands them to the kernel with KDSKBENT, so no parser of ours reads them.
//! The kernel's keymap belongs to the virtual terminals: it changes what a
//! PS/2 or USB keyboard types on the VGA or framebuffer console, and
//! nothing on a serial console, whose bytes arrive already made.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where initrd/build puts the maps, one `NAME.bmap` each.
pub const KEYMAP_DIR: &str = "/usr/share/vhdboot/keymaps";

/// The busybox of the initramfs (initrd/build), which has `loadkmap`.
const BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error(
        "keyboard layout '{name}' is not shipped (see {dir} or vhdboot.conf); \
         the keys keep the US layout. Shipped: {}",
        if shipped.is_empty() { "none found".to_string() } else { shipped.join(", ") },
        dir = dir.display()
    )]
    Unknown {
        name: String,
        dir: PathBuf,
        shipped: Vec<String>,
    },
    #[error(
        "keyboard layout '{name}' was not loaded: {BUSYBOX} loadkmap < {}: {cause}; \
         the keys keep the US layout (a serial console needs no keymap)",
        path.display()
    )]
    Load {
        name: String,
        path: PathBuf,
        cause: String,
    },
}

/// The layouts shipped in `dir`, sorted.
pub fn shipped_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".bmap"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// The map file for `name` in `dir`, or why there is none. The name has
/// been checked by config::parse_keymap (letters, digits, `-`), so it
/// cannot leave `dir`.
pub fn map_path_in(dir: &Path, name: &str) -> Result<PathBuf, KeymapError> {
    let path = dir.join(format!("{name}.bmap"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(KeymapError::Unknown {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            shipped: shipped_in(dir),
        })
    }
}

/// Loads the layout `name` into the kernel. Runs before any thread of
/// stage 1 starts, so no reaper can take the child's exit status.
pub fn load(name: &str) -> Result<(), KeymapError> {
    let path = map_path_in(Path::new(KEYMAP_DIR), name)?;
    let failed = |cause: String| KeymapError::Load {
        name: name.to_string(),
        path: path.clone(),
        cause,
    };
    let map = fs::File::open(&path).map_err(|e| failed(e.to_string()))?;
    let out = Command::new(BUSYBOX)
        .arg("loadkmap")
        .stdin(map)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e: io::Error| failed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(failed(format!("{} ({})", stderr.trim(), out.status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipped_layout_resolves_to_its_map_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("de.bmap"), b"bkeymap").unwrap();
        let path = map_path_in(dir.path(), "de").unwrap();
        assert_eq!(path, dir.path().join("de.bmap"));
    }

    #[test]
    fn an_unknown_layout_names_itself_and_lists_the_shipped_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["fr", "de", "ch-fr"] {
            fs::write(dir.path().join(format!("{name}.bmap")), b"bkeymap").unwrap();
        }
        fs::write(dir.path().join("README"), b"not a map").unwrap();
        let e = map_path_in(dir.path(), "xx").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("keyboard layout 'xx' is not shipped"),
            "{text}"
        );
        assert!(text.contains("the keys keep the US layout"), "{text}");
        assert!(text.ends_with("Shipped: ch-fr, de, fr"), "{text}");
        let dir = dir.path().display();
        assert!(
            text.contains(&format!("(see {dir} or vhdboot.conf)")),
            "{text}"
        );
    }

    #[test]
    fn a_missing_keymap_folder_still_gives_a_whole_message() {
        let e = map_path_in(Path::new("/nonexistent/keymaps"), "de").unwrap_err();
        assert!(e.to_string().ends_with("Shipped: none found"), "{e}");
    }
}
