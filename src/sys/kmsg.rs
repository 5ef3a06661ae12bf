//! The kernel log through /dev/kmsg: our own lines go in with a `vhdboot:`
//! prefix, and the kernel's lines come out so that a failed mount can show
//! the driver's own reason (ntfs3 prints e.g. `volume is dirty and "force"
//! flag is not set!`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where the kernel exposes its log buffer.
pub const KMSG_PATH: &str = "/dev/kmsg";

/// A read of /dev/kmsg returns one record and fails with EINVAL when the
/// buffer is smaller than that record; the kernel caps records at 8 KiB.
const RECORD_BUFFER: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum KmsgError {
    #[error("opening {path} failed: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing to {path} failed: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path} failed: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Syslog priority (0 = emerg .. 7 = debug), facility stripped.
    pub level: u8,
    /// The kernel's sequence number.
    pub sequence: u64,
    /// Microseconds since boot.
    pub timestamp_us: u64,
    /// The message text without the header and the device dictionary.
    pub message: String,
}

impl KmsgRecord {
    /// Parses one record as read from /dev/kmsg:
    /// `prefix,seq,timestamp,flags[,more];message\n SUBSYSTEM=...`.
    /// Returns None for a record that does not have that shape.
    pub fn parse(record: &str) -> Option<KmsgRecord> {
        let (header, rest) = record.split_once(';')?;
        let mut fields = header.split(',');
        let prefix: u32 = fields.next()?.trim().parse().ok()?;
        let sequence: u64 = fields.next()?.trim().parse().ok()?;
        let timestamp_us: u64 = fields.next()?.trim().parse().ok()?;
        // Continuation lines start with a space and hold the device
        // dictionary (SUBSYSTEM=, DEVICE=), which the user does not need.
        let message = rest.lines().next().unwrap_or("").to_string();
        Some(KmsgRecord {
            level: (prefix & 7) as u8,
            sequence,
            timestamp_us,
            message: unescape(&message),
        })
    }
}

/// The kernel escapes non-printable bytes as `\xNN`; turn them back so that
/// quotes and tabs read naturally.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("\\x") {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let hex = rest.get(pos + 2..pos + 4);
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if byte.is_ascii() => {
                out.push(char::from(byte));
                rest = rest.get(pos + 4..).unwrap_or("");
            }
            _ => {
                out.push_str("\\x");
                rest = rest.get(pos + 2..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// Writes one line to the kernel log as `vhdboot: <line>`, so that it shows
/// up in `dmesg` of the booted system next to the kernel's own messages.
pub fn kmsg_write(line: &str) -> Result<(), KmsgError> {
    kmsg_write_to(Path::new(KMSG_PATH), line)
}

/// As [`kmsg_write`], to another path (tests use a plain file).
pub fn kmsg_write_to(path: &Path, line: &str) -> Result<(), KmsgError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| KmsgError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    // One write is one record; embedded newlines would split it.
    let text = format!("vhdboot: {}\n", line.replace('\n', " "));
    file.write_all(text.as_bytes())
        .map_err(|source| KmsgError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// A read position in the kernel log. Take one before an operation, and
/// [`KmsgCursor::read_new`] afterwards returns what the kernel said during it.
#[derive(Debug)]
pub struct KmsgCursor {
    file: File,
    path: PathBuf,
}

impl KmsgCursor {
    /// Opens /dev/kmsg positioned after the newest record.
    pub fn at_end() -> Result<KmsgCursor, KmsgError> {
        let mut cursor = KmsgCursor::open(Path::new(KMSG_PATH))?;
        cursor
            .file
            .seek(SeekFrom::End(0))
            .map_err(|source| KmsgError::Read {
                path: cursor.path.clone(),
                source,
            })?;
        Ok(cursor)
    }

    /// Opens /dev/kmsg at the oldest record still in the buffer.
    pub fn at_start() -> Result<KmsgCursor, KmsgError> {
        KmsgCursor::open(Path::new(KMSG_PATH))
    }

    fn open(path: &Path) -> Result<KmsgCursor, KmsgError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| KmsgError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(KmsgCursor {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Returns every record logged since the last read, without blocking.
    pub fn read_new(&mut self) -> Result<Vec<KmsgRecord>, KmsgError> {
        let mut records = Vec::new();
        let mut buffer = vec![0u8; RECORD_BUFFER];
        loop {
            match self.file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(buffer.get(..n).unwrap_or(&[]));
                    if let Some(record) = KmsgRecord::parse(&text) {
                        records.push(record);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // EPIPE: records we had not read yet were overwritten; the
                // next read continues at the oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(KmsgError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(records)
    }
}

/// The last `max` kernel messages, oldest first (for the log view).
pub fn read_recent(max: usize) -> Result<Vec<KmsgRecord>, KmsgError> {
    let mut records = KmsgCursor::at_start()?.read_new()?;
    let skip = records.len().saturating_sub(max);
    records.drain(..skip);
    Ok(records)
}

/// The messages among `records` that name `needle` (a device like `loop3`
/// or `sda1`, or a driver like `ntfs3`), as plain lines.
#[cfg(test)]
pub fn messages_mentioning(records: &[KmsgRecord], needle: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.message.contains(needle))
        .map(|r| r.message.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_header_and_message_are_split() {
        let r = KmsgRecord::parse(
            "3,1234,5678901,-;ntfs3(sda2): volume is dirty and \"force\" flag is not set!\n",
        )
        .unwrap();
        assert_eq!(r.level, 3);
        assert_eq!(r.sequence, 1234);
        assert_eq!(r.timestamp_us, 5678901);
        assert_eq!(
            r.message,
            "ntfs3(sda2): volume is dirty and \"force\" flag is not set!"
        );
    }

    #[test]
    fn facility_is_stripped_from_the_level() {
        // Userspace writes without a prefix get facility 1 (user) => 14.
        let r = KmsgRecord::parse("14,9,10,-;vhdboot: hello\n").unwrap();
        assert_eq!(r.level, 6);
    }

    #[test]
    fn dictionary_continuation_lines_are_dropped() {
        let r = KmsgRecord::parse(
            "6,1,2,-;loop0: detected capacity change\n SUBSYSTEM=block\n DEVICE=b7:0\n",
        )
        .unwrap();
        assert_eq!(r.message, "loop0: detected capacity change");
    }

    #[test]
    fn escaped_bytes_are_unescaped() {
        let r = KmsgRecord::parse("6,1,2,-;a\\x09b\n").unwrap();
        assert_eq!(r.message, "a\tb");
    }

    #[test]
    fn malformed_record_is_none() {
        assert!(KmsgRecord::parse("no header here").is_none());
        assert!(KmsgRecord::parse("x,1,2;msg").is_none());
    }

    #[test]
    fn messages_mentioning_filters_by_substring() {
        let records = vec![
            KmsgRecord::parse("6,1,2,-;loop0: detected capacity change\n").unwrap(),
            KmsgRecord::parse("3,2,3,-;EXT4-fs (loop1): bad geometry\n").unwrap(),
        ];
        assert_eq!(
            messages_mentioning(&records, "loop1"),
            vec!["EXT4-fs (loop1): bad geometry".to_string()]
        );
    }

    #[test]
    fn kmsg_write_to_prefixes_and_flattens_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        std::fs::write(&path, "").unwrap();
        kmsg_write_to(&path, "two\nlines").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "vhdboot: two lines\n"
        );
    }
}
