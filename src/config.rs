//! Configuration: the bootstrapper's kernel command line (`vhdboot.*`)
//! overrides `/etc/vhdboot.conf`, which overrides the built-in defaults
//! (shared/design.md, "Configuration").
#![forbid(unsafe_code)]

use std::time::Duration;

/// Which image boots by itself: an optional host selector plus a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultSpec {
    pub host: Option<HostSelector>,
    /// The path on the host filesystem, starting with `/`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSelector {
    Label(String),
    Uuid(String),
}

/// The countdown setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Boot the default without showing the menu.
    Immediate,
    Seconds(u32),
    /// Wait for the user forever.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub default: Option<DefaultSpec>,
    pub timeout: Timeout,
    /// Folders searched on each host filesystem.
    pub search: Vec<String>,
    /// Folder depth of the search below each search folder.
    pub depth: u32,
    /// The longest wait for disks to appear.
    pub settle: Duration,
    /// Also list raw `*.img` files.
    pub raw_images: bool,
    /// Terminal size to assume when the console reports 0x0.
    pub columns: Option<u16>,
    pub lines: Option<u16>,
    /// Draw with ASCII only.
    pub ascii: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default: None,
            timeout: Timeout::Seconds(5),
            search: ["/", "/vhd", "/Images", "/images", "/VHD"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            depth: 2,
            settle: Duration::from_secs(10),
            raw_images: false,
            columns: None,
            lines: None,
            ascii: false,
        }
    }
}
