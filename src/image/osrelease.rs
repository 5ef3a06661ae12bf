//! os-release(5): the `KEY=value` file a distribution uses to name itself.
//! UKIs carry it in their `.osrel` section, and the menu shows its
//! PRETTY_NAME. The text comes from an untrusted disk, so a line that does
//! not parse is skipped rather than failing the whole file.

use serde::Serialize;
use std::collections::BTreeMap;

/// The fields of one os-release file, with quoting and escapes resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub fields: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parses os-release text. Comments, blank lines and lines that are not
    /// valid assignments are ignored; for a repeated key the last one wins,
    /// as when the file is sourced by a shell.
    pub fn parse(text: &str) -> OsRelease {
        let fields = text.lines().filter_map(parse_line).collect();
        OsRelease { fields }
    }

    /// Parses bytes, such as a UKI's `.osrel` section. Invalid UTF-8 is
    /// replaced rather than rejected, and trailing NUL padding is dropped.
    pub fn parse_bytes(bytes: &[u8]) -> OsRelease {
        let text = String::from_utf8_lossy(bytes);
        OsRelease::parse(text.trim_end_matches('\0'))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn pretty_name(&self) -> Option<&str> {
        self.get("PRETTY_NAME")
    }

    pub fn name(&self) -> Option<&str> {
        self.get("NAME")
    }

    pub fn id(&self) -> Option<&str> {
        self.get("ID")
    }

    pub fn version_id(&self) -> Option<&str> {
        self.get("VERSION_ID")
    }

    /// The name to show a person: PRETTY_NAME, else NAME plus VERSION_ID,
    /// else NAME, as os-release(5) suggests.
    pub fn display_name(&self) -> Option<String> {
        if let Some(p) = self.pretty_name() {
            return Some(p.to_string());
        }
        let name = self.name()?;
        Some(match self.version_id() {
            Some(v) => format!("{name} {v}"),
            None => name.to_string(),
        })
    }
}

/// One `KEY=value` line, or None for comments and invalid lines.
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, raw) = line.split_once('=')?;
    if !is_valid_key(key) {
        return None;
    }
    // The value follows POSIX shell quoting (os-release(5)). An unterminated
    // quote makes the line invalid. Several unquoted words are not valid
    // shell, but systemd keeps them as one value, and so do we.
    let words = shlex::split(raw)?;
    Some((key.to_string(), words.join(" ")))
}

/// Keys are shell variable names: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCH: &str = r#"NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
ANSI_COLOR="38;2;23;147;209"
HOME_URL="https://archlinux.org/"
DOCUMENTATION_URL="https://wiki.archlinux.org/"
SUPPORT_URL="https://bbs.archlinux.org/"
BUG_REPORT_URL="https://gitlab.archlinux.org/groups/archlinux/-/issues"
PRIVACY_POLICY_URL="https://terms.archlinux.org/docs/privacy-policy/"
LOGO=archlinux-logo
"#;

    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    const FEDORA_40: &str = r#"NAME="Fedora Linux"
VERSION="40 (Workstation Edition)"
ID=fedora
VERSION_ID=40
VERSION_CODENAME=""
PLATFORM_ID="platform:f40"
PRETTY_NAME="Fedora Linux 40 (Workstation Edition)"
ANSI_COLOR="0;38;2;60;110;180"
LOGO=fedora-logo-icon
CPE_NAME="cpe:/o:fedoraproject:fedora:40"
DEFAULT_HOSTNAME="fedora"
HOME_URL="https://fedoraproject.org/"
DOCUMENTATION_URL="https://docs.fedoraproject.org/en-US/fedora/f40/system-administrators-guide/"
SUPPORT_URL="https://ask.fedoraproject.org/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
REDHAT_BUGZILLA_PRODUCT="Fedora"
REDHAT_BUGZILLA_PRODUCT_VERSION=40
REDHAT_SUPPORT_PRODUCT="Fedora"
REDHAT_SUPPORT_PRODUCT_VERSION=40
SUPPORT_END=2025-05-13
VARIANT="Workstation Edition"
VARIANT_ID=workstation
"#;

    const UBUNTU_2404: &str = r#"PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"#;

    #[test]
    fn arch_rolling_release_has_no_version_id() {
        let os = OsRelease::parse(ARCH);
        assert_eq!(os.pretty_name(), Some("Arch Linux"));
        assert_eq!(os.name(), Some("Arch Linux"));
        assert_eq!(os.id(), Some("arch"));
        assert_eq!(os.version_id(), None);
        assert_eq!(os.get("ANSI_COLOR"), Some("38;2;23;147;209"));
        assert_eq!(os.get("LOGO"), Some("archlinux-logo"));
        assert_eq!(os.fields.len(), 11);
    }

    #[test]
    fn debian_12_is_parsed() {
        let os = OsRelease::parse(DEBIAN_12);
        assert_eq!(os.pretty_name(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os.name(), Some("Debian GNU/Linux"));
        assert_eq!(os.id(), Some("debian"));
        assert_eq!(os.version_id(), Some("12"));
        assert_eq!(os.get("VERSION_CODENAME"), Some("bookworm"));
        assert_eq!(os.fields.len(), 9);
    }

    #[test]
    fn fedora_empty_quoted_value_reads_as_absent() {
        let os = OsRelease::parse(FEDORA_40);
        assert_eq!(
            os.pretty_name(),
            Some("Fedora Linux 40 (Workstation Edition)")
        );
        assert_eq!(os.id(), Some("fedora"));
        assert_eq!(os.version_id(), Some("40"));
        assert_eq!(
            os.fields.get("VERSION_CODENAME").map(String::as_str),
            Some("")
        );
        assert_eq!(os.get("VERSION_CODENAME"), None);
        assert_eq!(os.get("VARIANT_ID"), Some("workstation"));
        assert_eq!(os.fields.len(), 22);
    }

    #[test]
    fn ubuntu_24_04_is_parsed() {
        let os = OsRelease::parse(UBUNTU_2404);
        assert_eq!(os.pretty_name(), Some("Ubuntu 24.04.1 LTS"));
        assert_eq!(os.name(), Some("Ubuntu"));
        assert_eq!(os.id(), Some("ubuntu"));
        assert_eq!(os.version_id(), Some("24.04"));
        assert_eq!(os.get("ID_LIKE"), Some("debian"));
    }

    #[test]
    fn double_quotes_resolve_shell_escapes() {
        let os = OsRelease::parse(r#"PRETTY_NAME="A \"quoted\" \\ \$HOME \` name""#);
        assert_eq!(os.pretty_name(), Some(r#"A "quoted" \ $HOME ` name"#));
    }

    #[test]
    fn single_quotes_are_literal() {
        let os = OsRelease::parse(r#"NAME='It\s $literal "here"'"#);
        assert_eq!(os.name(), Some(r#"It\s $literal "here""#));
    }

    #[test]
    fn comments_blank_and_invalid_lines_are_skipped() {
        let text = "# a comment\n\n  \nNOT A LINE\n1KEY=bad\nKEY-X=bad\n=novalue\nNAME=\"unterminated\nID=ok\n";
        let os = OsRelease::parse(text);
        assert_eq!(os.id(), Some("ok"));
        assert_eq!(os.fields.len(), 1, "{:?}", os.fields);
    }

    #[test]
    fn unquoted_words_are_kept_as_one_value() {
        let os = OsRelease::parse("NAME=Fedora Linux\n");
        assert_eq!(os.name(), Some("Fedora Linux"));
    }

    #[test]
    fn later_assignment_wins() {
        let os = OsRelease::parse("ID=first\nID=second\n");
        assert_eq!(os.id(), Some("second"));
    }

    #[test]
    fn section_bytes_with_nul_padding_and_bad_utf8_parse() {
        let mut bytes = b"NAME=\"Caf\xe9 OS\"\nID=cafe\n".to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let os = OsRelease::parse_bytes(&bytes);
        assert_eq!(os.id(), Some("cafe"));
        assert_eq!(os.name(), Some("Caf\u{fffd} OS"));
    }

    #[test]
    fn display_name_falls_back_to_name_and_version() {
        let os = OsRelease::parse("NAME=Foo\nVERSION_ID=3\n");
        assert_eq!(os.display_name().as_deref(), Some("Foo 3"));
        assert_eq!(
            OsRelease::parse("NAME=Foo").display_name().as_deref(),
            Some("Foo")
        );
        assert_eq!(OsRelease::parse("ID=foo").display_name(), None);
    }
}
