//! Unified kernel images: a PE/COFF EFI stub with the kernel (`.linux`),
//! initrd (`.initrd`), command line (`.cmdline`), os-release (`.osrel`) and
//! kernel version (`.uname`) as sections.
//!
//! A UKI found on a disk is untrusted, and stage 1 looks at every UKI on
//! every image before showing the menu. So [`UkiInfo::read`] reads only the
//! PE headers and the small text sections through `Read + Seek`, never the
//! kernel or the initrd; [`UkiInfo::read_section`] fetches those when an
//! entry is booted. goblin parses the headers; we do the I/O and all bounds
//! checks, so a header that lies about sizes gives an error, not a panic or a
//! huge allocation.

use super::bytes::{le_u16, le_u32};
use super::bzimage;
use super::osrelease::OsRelease;
use goblin::pe::header::{Header, PE_MAGIC, PE_POINTER_OFFSET};
use goblin::pe::section_table::{SIZEOF_SECTION_TABLE, SectionTable};
use serde::Serialize;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// The DOS header, which holds the offset of the PE header at 0x3c.
const DOS_HEADER_LEN: u64 = 64;
/// "PE\0\0" plus the COFF file header.
const PE_SIGNATURE_AND_COFF_LEN: u64 = 4 + 20;
/// The text sections read whole (`.cmdline`) are a few KiB in practice, and
/// the kernel takes at most 2 KiB of command line. 64 KiB leaves room for
/// padding; a bigger section is refused before it is read, so a disk cannot
/// make discovery read and hold a megabyte per UKI.
pub const SMALL_SECTION_LIMIT: u64 = 64 * 1024;
/// How much of `.osrel` is read. Distributions' os-release files are under
/// 2 KiB; the fields a menu shows come first, and a bigger section is cut
/// here rather than parsed whole into strings kept per entry.
pub const OSREL_READ_CAP: u64 = 16 * 1024;
/// How much of `.uname` is read: the kernel's release string is at most 64
/// bytes (`__NEW_UTS_LEN`), so 256 leaves room for padding and nothing more.
pub const UNAME_READ_CAP: u64 = 256;

/// The sections of a UKI that vhdboot reads or names, as the UAPI group's
/// UKI specification lists them (lanzaboote's `unified_sections.rs` does
/// the same): one spelling of each name, checked by the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UkiSection {
    /// The kernel, an x86 bzImage.
    Linux,
    Initrd,
    Cmdline,
    /// os-release of the OS the UKI boots.
    Osrel,
    /// The kernel release, as `uname -r` prints it.
    Uname,
    Splash,
    Dtb,
    Pcrsig,
    Pcrpkey,
    Sbat,
}

impl UkiSection {
    pub const ALL: [UkiSection; 10] = [
        UkiSection::Linux,
        UkiSection::Initrd,
        UkiSection::Cmdline,
        UkiSection::Osrel,
        UkiSection::Uname,
        UkiSection::Splash,
        UkiSection::Dtb,
        UkiSection::Pcrsig,
        UkiSection::Pcrpkey,
        UkiSection::Sbat,
    ];

    /// The name in the PE section table.
    pub fn name(self) -> &'static str {
        match self {
            UkiSection::Linux => ".linux",
            UkiSection::Initrd => ".initrd",
            UkiSection::Cmdline => ".cmdline",
            UkiSection::Osrel => ".osrel",
            UkiSection::Uname => ".uname",
            UkiSection::Splash => ".splash",
            UkiSection::Dtb => ".dtb",
            UkiSection::Pcrsig => ".pcrsig",
            UkiSection::Pcrpkey => ".pcrpkey",
            UkiSection::Sbat => ".sbat",
        }
    }

    /// The section a PE section name stands for, if it is one of these.
    pub fn from_name(name: &str) -> Option<UkiSection> {
        UkiSection::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for UkiSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Each message is complete on its own (cause included, then what to do),
/// because stage 1 shows it as one line; so no variant exposes a separate
/// `source()` that `{:#}` would print a second time.
#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("cannot read the UKI while {step}: {cause}")]
    Io {
        step: &'static str,
        cause: io::Error,
    },
    #[error("not a PE/EFI file ({reason}); a UKI is an EFI executable built by ukify or objcopy")]
    NotPe { reason: String },
    #[error(
        "the PE headers are truncated: they need {needed} bytes but the file has {file_len}; the file was probably cut short while copying, copy it again"
    )]
    TruncatedHeaders { needed: u64, file_len: u64 },
    #[error("the PE headers are malformed ({reason}); rebuild the UKI")]
    Malformed { reason: String },
    #[error(
        "section {name} lies past the end of the file (bytes {offset}..{end}, file has {file_len}); the file was probably cut short while copying, copy it again"
    )]
    SectionPastEnd {
        name: String,
        offset: u64,
        end: u64,
        file_len: u64,
    },
    #[error(
        "the file has no {name} section; it is not a unified kernel image, or it was built without one (rebuild it with ukify)"
    )]
    MissingSection { name: String },
    #[error(
        "section {name} is {size} bytes, more than the {limit} bytes such a section can hold; the UKI is damaged or not built by ukify/objcopy, rebuild it"
    )]
    SectionTooLarge { name: String, size: u64, limit: u64 },
    #[error(
        "cannot allocate {size} bytes for section {name} ({cause}); the machine has too little memory for this kernel and initrd"
    )]
    OutOfMemory {
        name: String,
        size: u64,
        cause: std::collections::TryReserveError,
    },
}

impl UkiError {
    fn io(step: &'static str) -> impl FnOnce(io::Error) -> UkiError {
        move |cause| UkiError::Io { step, cause }
    }
}

/// One entry of the PE section table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionInfo {
    pub name: String,
    /// Where the section's bytes start in the file (PointerToRawData).
    pub file_offset: u64,
    /// How many bytes are the section's content: see [`section_len`].
    pub size: u64,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub size_of_raw_data: u32,
}

/// The content length of a section. `SizeOfRawData` is padded to the file
/// alignment and `VirtualSize` is the real size, but a linker may also
/// leave the raw data shorter than the virtual size (the loader fills the
/// rest with zeros). The bytes we can take from the file are the smaller of
/// the two. A `VirtualSize` of 0 means the producer did not set it (COFF
/// objects do this), so the raw size stands.
pub fn section_len(virtual_size: u32, size_of_raw_data: u32) -> u64 {
    if virtual_size == 0 {
        u64::from(size_of_raw_data)
    } else {
        u64::from(virtual_size.min(size_of_raw_data))
    }
}

/// What a UKI says about itself, read from its headers and text sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UkiInfo {
    pub file_len: u64,
    pub sections: Vec<SectionInfo>,
    pub os_release: Option<OsRelease>,
    /// `.cmdline` with NUL padding and surrounding whitespace removed. A
    /// section that held only those is `Some("")`: an empty command line is
    /// legal, and differs from having no `.cmdline` at all.
    pub cmdline: Option<String>,
    /// The kernel version from `.uname`, trimmed.
    pub uname: Option<String>,
}

impl UkiInfo {
    /// Reads the PE headers and the `.osrel`, `.cmdline` and `.uname`
    /// sections. It does not require `.linux`: callers that boot or extract
    /// check that with [`UkiInfo::require`].
    pub fn read<R: Read + Seek>(r: &mut R) -> Result<UkiInfo, UkiError> {
        let file_len = r
            .seek(SeekFrom::End(0))
            .map_err(UkiError::io("finding its length"))?;
        UkiInfo::read_with_len(r, file_len)
    }

    /// Like [`UkiInfo::read`], with the length already known. A file on FAT
    /// knows its size from its directory entry, while seeking to its end
    /// would walk its whole cluster chain.
    pub fn read_with_len<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<UkiInfo, UkiError> {
        let sections = read_section_table(r, file_len)?;
        let mut info = UkiInfo {
            file_len,
            sections,
            os_release: None,
            cmdline: None,
            uname: None,
        };
        if let Some(bytes) = info.read_prefix(r, UkiSection::Osrel, OSREL_READ_CAP)? {
            info.os_release = Some(OsRelease::parse_bytes(&bytes));
        }
        if let Some(bytes) = info.read_small(r, UkiSection::Cmdline)? {
            info.cmdline = Some(trim_text(&bytes));
        }
        if let Some(bytes) = info.read_prefix(r, UkiSection::Uname, UNAME_READ_CAP)? {
            info.uname = Some(trim_text(&bytes)).filter(|u| !u.is_empty());
        }
        Ok(info)
    }

    pub fn section(&self, section: UkiSection) -> Option<&SectionInfo> {
        self.sections.iter().find(|s| s.name == section.name())
    }

    /// The section, or an error saying this is not a bootable UKI.
    pub fn require(&self, section: UkiSection) -> Result<&SectionInfo, UkiError> {
        self.section(section)
            .ok_or_else(|| UkiError::MissingSection {
                name: section.name().to_string(),
            })
    }

    /// The size of `.linux`, or 0 when it is missing.
    pub fn kernel_size(&self) -> u64 {
        self.section(UkiSection::Linux).map_or(0, |s| s.size)
    }

    /// The size of `.initrd`, or 0 when it is missing (a UKI may have none).
    pub fn initrd_size(&self) -> u64 {
        self.section(UkiSection::Initrd).map_or(0, |s| s.size)
    }

    /// The kernel version, from `.uname`.
    pub fn version(&self) -> Option<&str> {
        self.uname.as_deref()
    }

    /// The name for menus: os-release's PRETTY_NAME (else NAME, else
    /// `file_name`), followed by the kernel version in parentheses as
    /// systemd-boot shows it.
    pub fn title(&self, file_name: &str) -> String {
        let name = self
            .os_release
            .as_ref()
            .and_then(OsRelease::display_name)
            .unwrap_or_else(|| file_name.to_string());
        compose_title(&name, self.version())
    }

    /// Reads a whole section, such as `.linux` or `.initrd` for a boot.
    pub fn read_section<R: Read + Seek>(
        &self,
        r: &mut R,
        name: UkiSection,
    ) -> Result<Vec<u8>, UkiError> {
        let section = self.require(name)?;
        read_at(r, section.file_offset, section.size, name.name())
    }

    /// Copies a whole section into `out` without holding it in memory.
    pub fn copy_section<R: Read + Seek, W: Write>(
        &self,
        r: &mut R,
        name: UkiSection,
        out: &mut W,
    ) -> Result<u64, UkiError> {
        let section = self.require(name)?;
        r.seek(SeekFrom::Start(section.file_offset))
            .map_err(UkiError::io("seeking to a section"))?;
        let copied =
            io::copy(&mut r.take(section.size), out).map_err(UkiError::io("copying a section"))?;
        if copied != section.size {
            return Err(UkiError::SectionPastEnd {
                name: name.name().to_string(),
                offset: section.file_offset,
                end: section.file_offset.saturating_add(section.size),
                file_len: section.file_offset.saturating_add(copied),
            });
        }
        Ok(copied)
    }

    /// Reads the first bytes of `.linux`, enough for
    /// [`bzimage::is_bzimage`].
    pub fn read_kernel_prefix<R: Read + Seek>(&self, r: &mut R) -> Result<Vec<u8>, UkiError> {
        let linux = self.require(UkiSection::Linux)?;
        let len = linux.size.min(bzimage::MAGIC_PREFIX_LEN as u64);
        read_at(r, linux.file_offset, len, UkiSection::Linux.name())
    }

    /// The first `cap` bytes of a section that only names things, where
    /// the rest would be padding or junk.
    fn read_prefix<R: Read + Seek>(
        &self,
        r: &mut R,
        name: UkiSection,
        cap: u64,
    ) -> Result<Option<Vec<u8>>, UkiError> {
        let Some(section) = self.section(name) else {
            return Ok(None);
        };
        read_at(r, section.file_offset, section.size.min(cap), name.name()).map(Some)
    }

    fn read_small<R: Read + Seek>(
        &self,
        r: &mut R,
        name: UkiSection,
    ) -> Result<Option<Vec<u8>>, UkiError> {
        let Some(section) = self.section(name) else {
            return Ok(None);
        };
        if section.size > SMALL_SECTION_LIMIT {
            return Err(UkiError::SectionTooLarge {
                name: name.name().to_string(),
                size: section.size,
                limit: SMALL_SECTION_LIMIT,
            });
        }
        read_at(r, section.file_offset, section.size, name.name()).map(Some)
    }
}

/// `name (version)`, or just `name` when the version is unknown.
pub fn compose_title(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if !v.is_empty() => format!("{name} ({v})"),
        _ => name.to_string(),
    }
}

/// Text sections are NUL-padded by some builders; the kernel would see the
/// padding as part of the command line.
fn trim_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// Reads the headers up to the end of the section table and returns the
/// table, every entry checked to lie inside the file.
fn read_section_table<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Vec<SectionInfo>, UkiError> {
    if file_len < DOS_HEADER_LEN {
        return Err(UkiError::NotPe {
            reason: format!("{file_len} bytes is too short for a DOS header"),
        });
    }
    let dos = read_at(r, 0, DOS_HEADER_LEN, "DOS header")?;
    // goblin's DosHeader::parse also wants the PE header in the same
    // buffer, so the two fields we need are read here.
    if dos.get(..2) != Some(b"MZ".as_slice()) {
        return Err(UkiError::NotPe {
            reason: "no MZ signature at the start".to_string(),
        });
    }
    let pe_offset =
        u64::from(
            le_u32(&dos, PE_POINTER_OFFSET as usize).ok_or_else(|| UkiError::NotPe {
                reason: "the DOS header is cut short".to_string(),
            })?,
        );
    let coff_end = pe_offset.saturating_add(PE_SIGNATURE_AND_COFF_LEN);
    if coff_end > file_len {
        return Err(UkiError::NotPe {
            reason: format!("the PE header offset {pe_offset:#x} lies past the end of the file"),
        });
    }
    let coff = read_at(r, pe_offset, PE_SIGNATURE_AND_COFF_LEN, "PE header")?;
    if coff.get(..4) != Some(PE_MAGIC.to_le_bytes().as_slice()) {
        return Err(UkiError::NotPe {
            reason: format!("no PE signature at {pe_offset:#x}"),
        });
    }
    let (Some(number_of_sections), Some(size_of_optional_header)) =
        (le_u16(&coff, 6), le_u16(&coff, 20))
    else {
        return Err(UkiError::TruncatedHeaders {
            needed: coff_end,
            file_len,
        });
    };
    let (number_of_sections, size_of_optional_header) = (
        u64::from(number_of_sections),
        u64::from(size_of_optional_header),
    );
    let table_offset = PE_SIGNATURE_AND_COFF_LEN + size_of_optional_header;
    // These are u16 counts, so the whole header is at most about 2.7 MB.
    let headers_len = table_offset + number_of_sections * SIZEOF_SECTION_TABLE as u64;
    let needed = pe_offset.saturating_add(headers_len);
    if needed > file_len {
        return Err(UkiError::TruncatedHeaders { needed, file_len });
    }
    let headers = read_at(r, pe_offset, headers_len, "PE headers")?;
    let header = Header::parse_without_dos(&headers).map_err(|e| UkiError::Malformed {
        reason: e.to_string(),
    })?;
    let mut offset = usize::try_from(table_offset).map_err(|e| UkiError::Malformed {
        reason: e.to_string(),
    })?;
    let table = header
        .coff_header
        .sections(&headers, &mut offset)
        .map_err(|e| UkiError::Malformed {
            reason: format!("section table: {e}"),
        })?;
    table.iter().map(|s| section_info(s, file_len)).collect()
}

fn section_info(s: &SectionTable, file_len: u64) -> Result<SectionInfo, UkiError> {
    let name = match s.name() {
        Ok(n) => n.to_string(),
        Err(_) => String::from_utf8_lossy(&s.name)
            .trim_end_matches('\0')
            .to_string(),
    };
    let size = section_len(s.virtual_size, s.size_of_raw_data);
    let file_offset = u64::from(s.pointer_to_raw_data);
    // Both are u32, so the sum cannot overflow a u64.
    let end = file_offset + size;
    if end > file_len {
        return Err(UkiError::SectionPastEnd {
            name,
            offset: file_offset,
            end,
            file_len,
        });
    }
    Ok(SectionInfo {
        name,
        file_offset,
        size,
        virtual_address: s.virtual_address,
        virtual_size: s.virtual_size,
        size_of_raw_data: s.size_of_raw_data,
    })
}

/// Reads exactly `len` bytes at `offset`. The buffer is reserved fallibly:
/// PID 1 must not abort because a disk claims a huge section.
fn read_at<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, UkiError> {
    let oom = |cause| UkiError::OutOfMemory {
        name: what.to_string(),
        size: len,
        cause,
    };
    let mut buf = Vec::new();
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    buf.try_reserve_exact(want).map_err(oom)?;
    r.seek(SeekFrom::Start(offset))
        .map_err(UkiError::io("seeking to a section"))?;
    r.take(len)
        .read_to_end(&mut buf)
        .map_err(UkiError::io("reading a section"))?;
    if (buf.len() as u64) < len {
        return Err(UkiError::SectionPastEnd {
            name: what.to_string(),
            offset,
            end: offset.saturating_add(len),
            file_len: offset.saturating_add(buf.len() as u64),
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::bzimage::is_bzimage;
    use std::io::Cursor;

    /// A minimal PE32+ image: a DOS header, the PE signature, a COFF header,
    /// an optional header with 16 empty data directories, the section table
    /// and each section's raw bytes at 512-byte alignment.
    pub(crate) fn tiny_pe(sections: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let pe_offset = 0x80usize;
        let opt_len = 240usize;
        let table_offset = pe_offset + 24 + opt_len;
        let headers_end = table_offset + 40 * sections.len();
        let align = |n: usize| n.div_ceil(512) * 512;
        let mut out = vec![0u8; align(headers_end)];
        out[0..2].copy_from_slice(b"MZ");
        out[0x3c..0x40].copy_from_slice(&(pe_offset as u32).to_le_bytes());
        out[pe_offset..pe_offset + 4].copy_from_slice(b"PE\0\0");
        let coff = pe_offset + 4;
        out[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
        out[coff + 2..coff + 4].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        out[coff + 16..coff + 18].copy_from_slice(&(opt_len as u16).to_le_bytes());
        let opt = coff + 20;
        out[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        out[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        for (i, (name, virtual_size, raw)) in sections.iter().enumerate() {
            let data_offset = out.len();
            let raw_len = align(raw.len());
            out.extend_from_slice(raw);
            out.resize(data_offset + raw_len, 0);
            let e = table_offset + 40 * i;
            out[e..e + name.len()].copy_from_slice(name.as_bytes());
            out[e + 8..e + 12].copy_from_slice(&virtual_size.to_le_bytes());
            out[e + 12..e + 16].copy_from_slice(&(0x1000 * (i as u32 + 1)).to_le_bytes());
            out[e + 16..e + 20].copy_from_slice(&(raw_len as u32).to_le_bytes());
            out[e + 20..e + 24].copy_from_slice(&(data_offset as u32).to_le_bytes());
        }
        out
    }

    fn fake_bzimage(len: usize) -> Vec<u8> {
        let mut k = vec![0xAB; len];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k
    }

    fn info(pe: &[u8]) -> Result<UkiInfo, UkiError> {
        UkiInfo::read(&mut Cursor::new(pe))
    }

    #[test]
    fn text_sections_are_read_and_trimmed() {
        let osrel = b"NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        let kernel = fake_bzimage(3000);
        let pe = tiny_pe(&[
            (".osrel", osrel.len() as u32, osrel),
            (".cmdline", 28, b"  root=/dev/sda2 quiet\n\0\0\0\0\0"),
            (".uname", 14, b"6.1.0-18-amd64"),
            (".linux", 3000, &kernel),
            (".initrd", 100, &[7; 100]),
        ]);
        let uki = info(&pe).unwrap();
        assert_eq!(uki.cmdline.as_deref(), Some("root=/dev/sda2 quiet"));
        assert_eq!(uki.version(), Some("6.1.0-18-amd64"));
        assert_eq!(
            uki.title("debian.efi"),
            "Debian GNU/Linux 12 (bookworm) (6.1.0-18-amd64)"
        );
        assert_eq!(uki.kernel_size(), 3000);
        assert_eq!(uki.initrd_size(), 100);
        assert_eq!(
            uki.read_section(&mut Cursor::new(&pe), UkiSection::Linux)
                .unwrap(),
            kernel
        );
        assert!(is_bzimage(
            &uki.read_kernel_prefix(&mut Cursor::new(&pe)).unwrap()
        ));
    }

    #[test]
    fn virtual_size_smaller_than_raw_size_cuts_the_alignment_padding() {
        let pe = tiny_pe(&[(".cmdline", 5, b"quiet")]);
        let uki = info(&pe).unwrap();
        let s = uki.section(UkiSection::Cmdline).unwrap();
        assert_eq!((s.virtual_size, s.size_of_raw_data, s.size), (5, 512, 5));
    }

    #[test]
    fn virtual_size_larger_than_raw_size_takes_only_the_raw_bytes() {
        let pe = tiny_pe(&[(".initrd", 4096, &[1; 512])]);
        let uki = info(&pe).unwrap();
        let s = uki.section(UkiSection::Initrd).unwrap();
        assert_eq!(
            (s.virtual_size, s.size_of_raw_data, s.size),
            (4096, 512, 512)
        );
        assert_eq!(
            uki.read_section(&mut Cursor::new(&pe), UkiSection::Initrd)
                .unwrap(),
            vec![1; 512]
        );
    }

    #[test]
    fn zero_virtual_size_falls_back_to_raw_size() {
        assert_eq!(section_len(0, 1024), 1024);
        assert_eq!(section_len(10, 1024), 10);
        assert_eq!(section_len(2000, 1024), 1024);
    }

    #[test]
    fn cmdline_of_only_nuls_is_an_empty_cmdline() {
        let pe = tiny_pe(&[(".cmdline", 16, &[0; 16])]);
        assert_eq!(info(&pe).unwrap().cmdline.as_deref(), Some(""));
    }

    #[test]
    fn osrel_and_uname_are_read_only_as_far_as_their_caps() {
        let mut osrel = b"PRETTY_NAME=\"Arch\"\n".to_vec();
        osrel.resize(2 * OSREL_READ_CAP as usize, b'#');
        let uname = vec![b'6'; 4096];
        let pe = tiny_pe(&[
            (".osrel", osrel.len() as u32, &osrel),
            (".uname", uname.len() as u32, &uname),
        ]);
        let uki = info(&pe).unwrap();
        assert_eq!(uki.uname.unwrap().len(), UNAME_READ_CAP as usize);
        assert_eq!(
            uki.os_release.unwrap().pretty_name(),
            Some("Arch"),
            "the fields before the cap are kept"
        );
    }

    #[test]
    fn title_falls_back_to_name_then_file_name() {
        let pe = tiny_pe(&[(".osrel", 9, b"NAME=Arch"), (".uname", 9, b"6.12.1-1\n")]);
        assert_eq!(info(&pe).unwrap().title("arch.efi"), "Arch (6.12.1-1)");
        let pe = tiny_pe(&[(".linux", 600, &fake_bzimage(600))]);
        assert_eq!(info(&pe).unwrap().title("linux.efi"), "linux.efi");
    }

    #[test]
    fn missing_linux_is_reported_by_require() {
        let pe = tiny_pe(&[(".cmdline", 5, b"quiet")]);
        let uki = info(&pe).unwrap();
        let err = uki
            .read_section(&mut Cursor::new(&pe), UkiSection::Linux)
            .unwrap_err();
        assert!(
            matches!(err, UkiError::MissingSection { ref name } if name == ".linux"),
            "{err}"
        );
    }

    #[test]
    fn text_file_is_not_a_pe() {
        let err = info(&[b'x'; 200]).unwrap_err();
        assert!(matches!(err, UkiError::NotPe { .. }), "{err}");
        let err = info(b"MZ").unwrap_err();
        assert!(matches!(err, UkiError::NotPe { .. }), "{err}");
    }

    #[test]
    fn mz_without_pe_signature_is_not_a_pe() {
        let mut pe = tiny_pe(&[(".cmdline", 5, b"quiet")]);
        pe[0x80..0x84].copy_from_slice(b"NE\0\0");
        assert!(matches!(info(&pe).unwrap_err(), UkiError::NotPe { .. }));
    }

    #[test]
    fn pe_pointer_past_end_is_not_a_pe() {
        let mut pe = tiny_pe(&[]);
        pe[0x3c..0x40].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(matches!(info(&pe).unwrap_err(), UkiError::NotPe { .. }));
    }

    #[test]
    fn truncated_section_table_is_reported() {
        let pe = tiny_pe(&[(".cmdline", 5, b"quiet")]);
        let err = info(&pe[..0x80 + 24 + 240 + 20]).unwrap_err();
        assert!(matches!(err, UkiError::TruncatedHeaders { .. }), "{err}");
    }

    #[test]
    fn section_past_end_of_file_names_the_section() {
        let kernel = fake_bzimage(4096);
        let pe = tiny_pe(&[(".cmdline", 5, b"quiet"), (".linux", 4096, &kernel)]);
        let err = info(&pe[..pe.len() - 100]).unwrap_err();
        match err {
            UkiError::SectionPastEnd { ref name, .. } => assert_eq!(name, ".linux"),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains(".linux"));
    }

    #[test]
    fn oversized_text_section_is_refused() {
        let big = vec![b'a'; (SMALL_SECTION_LIMIT + 1) as usize];
        let pe = tiny_pe(&[(".cmdline", big.len() as u32, &big)]);
        assert!(matches!(
            info(&pe).unwrap_err(),
            UkiError::SectionTooLarge { .. }
        ));
    }

    #[test]
    fn bzimage_magic_is_checked_at_0x202() {
        assert!(is_bzimage(&fake_bzimage(0x206)));
        assert!(!is_bzimage(&fake_bzimage(0x206)[..0x205]));
        assert!(!is_bzimage(&[0; 0x300]));
    }

    /// A cheap stand-in for the fuzz target that runs with every
    /// `cargo test`: corrupt header and table bytes of a valid UKI many
    /// times and require an Ok or an Err, never a panic.
    #[test]
    fn corrupted_headers_never_panic() {
        let kernel = fake_bzimage(1024);
        let pe = tiny_pe(&[
            (".osrel", 9, b"NAME=Arch"),
            (".cmdline", 5, b"quiet"),
            (".linux", 1024, &kernel),
        ]);
        let header_end = 0x80 + 24 + 240 + 3 * 40;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut errors = 0;
        for _ in 0..20_000 {
            let mut bad = pe.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % header_end as u64) as usize;
                bad[at] = next() as u8;
            }
            let cut = if next() % 8 == 0 {
                (next() % bad.len() as u64) as usize
            } else {
                bad.len()
            };
            if let Ok(uki) = info(&bad[..cut]) {
                let _ = uki.read_section(&mut Cursor::new(&bad[..cut]), UkiSection::Linux);
                let _ = uki.title("x.efi");
            } else {
                errors += 1;
            }
        }
        assert!(errors > 0, "corruption was never detected");
    }

    #[test]
    fn compose_title_omits_an_unknown_version() {
        assert_eq!(compose_title("Fedora", None), "Fedora");
        assert_eq!(compose_title("Fedora", Some("")), "Fedora");
        assert_eq!(compose_title("Fedora", Some("6.8.5")), "Fedora (6.8.5)");
    }
}
