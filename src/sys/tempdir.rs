//! A private temporary directory, made the way mkdtemp(3) makes one.

use std::io;
use std::path::{Path, PathBuf};

/// Makes a new directory `<base>/<prefix>XXXXXX` with a random suffix and
/// mode 0700, failing rather than reusing anything already there. A fixed
/// name such as `/tmp/vhdboot-scan-<pid>` can be planted in advance by any
/// local user (a symlink to elsewhere, or a directory they own), and root
/// would then mount volumes wherever it points.
pub fn mkdtemp_in(base: &Path, prefix: &str) -> io::Result<PathBuf> {
    let template = base.join(format!("{prefix}XXXXXX"));
    nix::unistd::mkdtemp(&template).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("mkdtemp {}: {e}", template.display()),
        )
    })
}

/// [`mkdtemp_in`] under the system's temporary directory ($TMPDIR or /tmp).
pub fn mkdtemp(prefix: &str) -> io::Result<PathBuf> {
    mkdtemp_in(&std::env::temp_dir(), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_directory_is_new_private_and_unpredictable() {
        let base = tempfile::tempdir().expect("a temporary directory for the test");
        let a = mkdtemp_in(base.path(), "vhdboot-scan-").expect("the first mkdtemp");
        let b = mkdtemp_in(base.path(), "vhdboot-scan-").expect("the second mkdtemp");
        assert_ne!(a, b);
        for dir in [&a, &b] {
            let meta = std::fs::symlink_metadata(dir).expect("the new directory's metadata");
            assert!(meta.is_dir(), "{}", dir.display());
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o700,
                "{}",
                dir.display()
            );
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                name.starts_with("vhdboot-scan-") && name.len() == 19,
                "{name}"
            );
        }
    }

    #[test]
    fn a_planted_symlink_at_the_old_fixed_name_is_not_followed() {
        let base = tempfile::tempdir().expect("a temporary directory for the test");
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("the symlink's target");
        let planted = base
            .path()
            .join(format!("vhdboot-scan-{}", std::process::id()));
        std::os::unix::fs::symlink(&elsewhere, &planted).expect("the planted symlink");
        let dir = mkdtemp_in(base.path(), "vhdboot-scan-").expect("mkdtemp");
        assert_ne!(dir, planted);
        assert!(!dir.starts_with(&elsewhere));
        assert_eq!(
            std::fs::read_dir(&elsewhere)
                .expect("the symlink's target")
                .count(),
            0
        );
    }

    #[test]
    fn a_missing_base_is_an_error_naming_the_template() {
        let err = mkdtemp_in(Path::new("/nonexistent/base"), "vhdboot-scan-").unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/base/vhdboot-scan-XXXXXX"),
            "{err}"
        );
    }
}
