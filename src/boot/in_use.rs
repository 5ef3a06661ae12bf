//! vhdboot's own record that a Linux image runs from a host volume.
//!
//! Neither NTFS nor exFAT tells us that a target died without a shutdown:
//! ntfs3 (6.12) leaves the NTFS dirty flag at 0 while it has the volume
//! mounted read-write (shared/lessons.md), so after a crash the flag looks
//! clean. So stage 2 writes this small text file in the root of the host
//! volume right after it mounted it read-write and before it attaches the
//! image; the clean detach at shutdown deletes it just before it unmounts
//! the host. A record that is still there when stage 1 starts means the
//! last target did not end with our clean detach: the host needs a check
//! before anything mounts it read-write again.
//!
//! Stage 1 only reads it (through its read-only mount, at most
//! [`MAX_LEN`] bytes), so noticing a crash costs no write. The file
//! explains itself to whoever finds it in Windows, since that is where the
//! user clears it (README, "After a crash").

/// The record's name in the root of the host volume.
pub const FILE_NAME: &str = "vhdboot-in-use.txt";

/// Stage 1 reads no more than this; a larger file is still a record.
pub const MAX_LEN: u64 = 4096;

/// What the record says. Every field is for people: stage 1 refuses the
/// host whenever the file exists, whatever it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUseRecord {
    /// The image's path on the host volume, as the handoff named it.
    pub image: String,
    /// When stage 2 attached it, in seconds since the Unix epoch (the
    /// target kernel's clock, read from the machine's RTC).
    pub started_unix: u64,
    /// The target kernel's boot id (/proc/sys/kernel/random/boot_id), which
    /// the target's own journal is keyed by.
    pub boot_id: String,
}

impl InUseRecord {
    /// The file's text: an explanation, then one `key=value` per field.
    pub fn render(&self) -> String {
        format!(
            "vhdboot: the Linux image below runs from this volume, or it stopped without a \
             clean shutdown.\r\n\
             If no Linux runs from this volume now, the volume needs a check: in Windows, run \
             chkdsk /f on it, then delete this file.\r\n\
             image={}\r\nstarted={} ({})\r\nboot_id={}\r\n",
            one_line(&self.image),
            self.started_unix,
            utc_time(self.started_unix),
            one_line(&self.boot_id)
        )
    }

    /// Reads the fields back; None when the text is not a record (it is
    /// still one for stage 1's verdict, only without details).
    pub fn parse(text: &str) -> Option<InUseRecord> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.trim_end_matches('\r').strip_prefix(key))
                .map(str::to_string)
        };
        let started = field("started=")?;
        let started_unix = started.split_whitespace().next()?.parse().ok()?;
        Some(InUseRecord {
            image: field("image=")?,
            started_unix,
            boot_id: field("boot_id=")?,
        })
    }

    /// One sentence for the scan log and the menu.
    pub fn describe(&self) -> String {
        format!(
            "{} was attached at {} (boot id {}) and never detached",
            self.image,
            utc_time(self.started_unix),
            self.boot_id
        )
    }
}

/// A path from the handoff on one line: a newline would start a field.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], "?")
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> InUseRecord {
        InUseRecord {
            image: "/Images/debian 13.vhd".into(),
            started_unix: 1_796_408_400,
            boot_id: "0b6c2b1e-7b36-4a4e-a2b0-2f4f0d0f1c9a".into(),
        }
    }

    #[test]
    fn any_start_time_from_disk_renders_without_overflow() {
        // The record's `started=` comes from a file anyone can write; the
        // fuzz target in_use reaches u64::MAX through parse and describe.
        let record = InUseRecord::parse("image=x\nstarted=18446744073709551615\nboot_id=b\n");
        let line = record.expect("the fields are all there").describe();
        assert!(line.starts_with("x was attached at "), "{line}");
    }

    #[test]
    fn a_rendered_record_parses_back_to_the_same_fields() {
        assert_eq!(InUseRecord::parse(&record().render()), Some(record()));
    }

    #[test]
    fn the_record_explains_itself_and_names_the_fix() {
        let text = record().render();
        assert!(text.contains("chkdsk /f"), "{text}");
        assert!(text.contains("delete this file"), "{text}");
        assert!(text.contains("2026-12-04 18:20:00 UTC"), "{text}");
    }

    #[test]
    fn a_newline_in_the_image_path_cannot_forge_a_field() {
        let mut r = record();
        r.image = "/a.vhd\nboot_id=forged".into();
        let back = InUseRecord::parse(&r.render()).unwrap();
        assert_eq!(back.boot_id, record().boot_id);
        assert_eq!(back.image, "/a.vhd?boot_id=forged");
    }

    #[test]
    fn text_without_the_fields_is_no_parsed_record() {
        assert_eq!(InUseRecord::parse(""), None);
        assert_eq!(InUseRecord::parse("image=/a.vhd\nstarted=soon\n"), None);
    }

    #[test]
    fn utc_time_matches_known_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_time(1_709_251_199), "2024-02-29 23:59:59 UTC");
    }
}
