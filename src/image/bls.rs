//! Boot Loader Spec type #1 entries: the `/loader/entries/*.conf` files
//! that Fedora, systemd-boot and kernel-install write. Each line is a key,
//! whitespace, then the value up to the end of the line. Unknown keys (GRUB's
//! `grub_users`, `grub_class` ...) are ignored, as the spec asks.

use serde::Serialize;

/// One parsed entry. Paths are as written, relative to the root of the
/// partition that holds the entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlsEntry {
    pub title: Option<String>,
    pub version: Option<String>,
    pub machine_id: Option<String>,
    pub sort_key: Option<String>,
    pub linux: Option<String>,
    /// Every `initrd` line, in order: they are loaded one after the other.
    pub initrd: Vec<String>,
    /// Every `options` line, in order.
    pub options: Vec<String>,
    pub efi: Option<String>,
    pub devicetree: Option<String>,
}

/// The most `initrd` lines one BLS entry may have. Real entries have one
/// or two (microcode, then the initramfs); each line is a file lookup and a
/// file loaded at boot.
pub const MAX_INITRD_LINES: usize = 32;

impl BlsEntry {
    /// The kernel this entry boots, or why vhdboot cannot kexec it: it
    /// names no kernel, starts an EFI program, or has more initrd lines
    /// than [`MAX_INITRD_LINES`]. Entries on an ESP and in /boot alike.
    pub fn kexec_kernel(&self) -> Result<&str, String> {
        let Some(linux) = self.linux.as_deref() else {
            return Err(match &self.efi {
                Some(efi) => {
                    format!("the entry starts an EFI program ({efi}), which vhdboot cannot kexec")
                }
                None => "the entry has no `linux` line".to_string(),
            });
        };
        if self.initrd.len() > MAX_INITRD_LINES {
            return Err(format!(
                "the entry has {} initrd lines; vhdboot accepts at most {MAX_INITRD_LINES} \
                 (real entries have one or two)",
                self.initrd.len()
            ));
        }
        Ok(linux)
    }

    /// Parses entry text. Lines without a value and comments are skipped;
    /// for single-valued keys the last line wins.
    pub fn parse(text: &str) -> BlsEntry {
        let mut e = BlsEntry::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(|c: char| c.is_ascii_whitespace()) else {
                continue;
            };
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            match key {
                "title" => e.title = Some(value),
                "version" => e.version = Some(value),
                "machine-id" => e.machine_id = Some(value),
                "sort-key" => e.sort_key = Some(value),
                "linux" => e.linux = Some(value),
                "initrd" => e.initrd.push(value),
                "options" => e.options.push(value),
                "efi" => e.efi = Some(value),
                "devicetree" => e.devicetree = Some(value),
                _ => {}
            }
        }
        e
    }

    /// Parses bytes read from a FAT file; invalid UTF-8 is replaced.
    pub fn parse_bytes(bytes: &[u8]) -> BlsEntry {
        BlsEntry::parse(&String::from_utf8_lossy(bytes))
    }

    /// The kernel command line: every `options` line joined by spaces.
    pub fn cmdline(&self) -> String {
        self.options.join(" ")
    }

    /// The name for menus. Fedora's titles already hold the kernel version,
    /// so it is added only when missing. Without a title the entry's file
    /// name (without `.conf`) stands in, as systemd-boot does.
    pub fn display_title(&self, conf_file_name: &str) -> String {
        let title = match &self.title {
            Some(t) => t.clone(),
            None => conf_file_name
                .strip_suffix(".conf")
                .unwrap_or(conf_file_name)
                .to_string(),
        };
        match &self.version {
            Some(v) if !title.contains(v.as_str()) => format!("{title} ({v})"),
            _ => title,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by kernel-install on Fedora 40.
    const FEDORA_40: &str = "\
title Fedora Linux (6.8.5-301.fc40.x86_64) 40 (Workstation Edition)
version 6.8.5-301.fc40.x86_64
linux /vmlinuz-6.8.5-301.fc40.x86_64
initrd /initramfs-6.8.5-301.fc40.x86_64.img
options root=UUID=3e8b8c0b-2f27-4d5e-9b1b-7f1a2c9e0d11 ro rootflags=subvol=root rhgb quiet
grub_users $grub_users
grub_arg --unrestricted
grub_class fedora
";

    /// The example in the Boot Loader Specification.
    const SPEC_EXAMPLE: &str = "\
# /boot/loader/entries/6a9857a393724b7a981ebb5b8495b9ea-3.8.0-2.fc19.x86_64.conf
title        Fedora 19 (Rawhide)
sort-key     fedora
machine-id   6a9857a393724b7a981ebb5b8495b9ea
version      3.8.0-2.fc19.x86_64
options      root=UUID=6d3376e4-fc93-4509-95ec-a21d68011da2 quiet
architecture x64
linux        /6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/linux
initrd       /6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/initrd
";

    /// systemd-boot's documentation for Arch, with CPU microcode first.
    const ARCH_MICROCODE: &str = "\
title   Arch Linux
linux   /vmlinuz-linux
initrd  /intel-ucode.img
initrd  /initramfs-linux.img
options root=PARTUUID=14420948-2cea-4de7-b042-40f67c618660 rw
options\tquiet splash
";

    #[test]
    fn fedora_entry_ignores_grub_keys() {
        let e = BlsEntry::parse(FEDORA_40);
        assert_eq!(e.version.as_deref(), Some("6.8.5-301.fc40.x86_64"));
        assert_eq!(e.linux.as_deref(), Some("/vmlinuz-6.8.5-301.fc40.x86_64"));
        assert_eq!(e.initrd, vec!["/initramfs-6.8.5-301.fc40.x86_64.img"]);
        assert_eq!(
            e.cmdline(),
            "root=UUID=3e8b8c0b-2f27-4d5e-9b1b-7f1a2c9e0d11 ro rootflags=subvol=root rhgb quiet"
        );
        assert_eq!(e.efi, None);
    }

    #[test]
    fn fedora_title_already_holding_the_version_is_not_repeated() {
        let e = BlsEntry::parse(FEDORA_40);
        assert_eq!(
            e.display_title("x.conf"),
            "Fedora Linux (6.8.5-301.fc40.x86_64) 40 (Workstation Edition)"
        );
    }

    #[test]
    fn spec_example_is_parsed() {
        let e = BlsEntry::parse(SPEC_EXAMPLE);
        assert_eq!(e.title.as_deref(), Some("Fedora 19 (Rawhide)"));
        assert_eq!(e.sort_key.as_deref(), Some("fedora"));
        assert_eq!(
            e.machine_id.as_deref(),
            Some("6a9857a393724b7a981ebb5b8495b9ea")
        );
        assert_eq!(
            e.linux.as_deref(),
            Some("/6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/linux")
        );
        assert_eq!(
            e.cmdline(),
            "root=UUID=6d3376e4-fc93-4509-95ec-a21d68011da2 quiet"
        );
        assert_eq!(
            e.display_title("x.conf"),
            "Fedora 19 (Rawhide) (3.8.0-2.fc19.x86_64)"
        );
    }

    #[test]
    fn repeated_initrd_and_options_keep_their_order() {
        let e = BlsEntry::parse(ARCH_MICROCODE);
        assert_eq!(e.initrd, vec!["/intel-ucode.img", "/initramfs-linux.img"]);
        assert_eq!(
            e.cmdline(),
            "root=PARTUUID=14420948-2cea-4de7-b042-40f67c618660 rw quiet splash"
        );
        assert_eq!(e.display_title("arch.conf"), "Arch Linux");
    }

    #[test]
    fn efi_and_devicetree_are_kept() {
        let e = BlsEntry::parse("efi /EFI/memtest.efi\ndevicetree /dtbs/board.dtb\n");
        assert_eq!(e.efi.as_deref(), Some("/EFI/memtest.efi"));
        assert_eq!(e.devicetree.as_deref(), Some("/dtbs/board.dtb"));
        assert_eq!(e.linux, None);
    }

    #[test]
    fn missing_title_uses_the_file_name() {
        let e = BlsEntry::parse("linux /vmlinuz\nversion 6.1.0\n");
        assert_eq!(e.display_title("debian-6.1.0.conf"), "debian-6.1.0");
        let e = BlsEntry::parse("linux /vmlinuz\n");
        assert_eq!(e.display_title("plain.conf"), "plain");
    }

    #[test]
    fn keys_without_values_and_crlf_lines_are_handled() {
        let e = BlsEntry::parse("title\r\nlinux /vmlinuz\r\ninitrd   \r\noptions quiet\r\n");
        assert_eq!(e.title, None);
        assert_eq!(e.linux.as_deref(), Some("/vmlinuz"));
        assert!(e.initrd.is_empty());
        assert_eq!(e.cmdline(), "quiet");
    }
}
