//! The stage 1 → stage 2 contract (shared/design.md, "Handoff contract").
//!
//! Stage 1 writes these parameters onto the target's kernel command line;
//! stage 2 reads them back from /proc/cmdline. This is the only module that
//! knows their names.

use super::cmdline::{Cmdline, UnrepresentableParam};
use crate::model::FsType;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde::Serialize;

/// The literal of [`STAGE2_PATH`], for messages built with `concat!`.
macro_rules! stage2_path {
    () => {
        "/vhdboot/stage2"
    };
}

/// Where stage 2 lives inside the target's initramfs (from our cpio).
/// `boot::cpio` names its archive entries after it, and the binary knows
/// it runs as stage 2 by its file name.
pub const STAGE2_PATH: &str = stage2_path!();
/// The init the kernel runs from an initramfs when no `rdinit=` is given.
pub const DEFAULT_NEXT: &str = "/init";

pub const HOST: &str = "vhdboot.host";
pub const FSTYPE: &str = "vhdboot.fstype";
pub const IMAGE: &str = "vhdboot.image";
pub const SIZE: &str = "vhdboot.size";
pub const NEXT: &str = "vhdboot.next";
pub const HOST_UUID: &str = "vhdboot.uuid";
pub const HOST_PARTUUID: &str = "vhdboot.partuuid";
pub const HOST_SIZE: &str = "vhdboot.hostsize";
/// How the image is attached: absent for a normal (read-write) boot,
/// `ram:<bytes>` or `ram:auto` for an immutable one.
pub const OVERLAY: &str = "vhdboot.overlay";
pub const RDINIT: &str = "rdinit";

/// Every parameter this module writes under the `vhdboot.` prefix; the
/// bootstrapper's configuration skips them.
pub const HANDOFF_KEYS: [&str; 9] = [
    HOST,
    FSTYPE,
    IMAGE,
    SIZE,
    NEXT,
    HOST_UUID,
    HOST_PARTUUID,
    HOST_SIZE,
    OVERLAY,
];

/// A layer stage 2 puts between the image and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Overlay {
    /// Immutable boot: the image is attached read-only and every write
    /// goes to a copy-on-write layer in RAM, thrown away at reboot. The
    /// layer holds at most `limit` bytes; None lets stage 2 take a share
    /// of the target machine's RAM.
    Ram { limit: Option<u64> },
    /// Trial boot: the image is attached read-only and every write goes
    /// to `<image>.trial` on the host, a persistent dm-snapshot store of
    /// `size` bytes that stage 2 creates when it is absent (a later start
    /// of the menu keeps or discards it).
    Trial { size: u64 },
}

impl Overlay {
    /// The kernel modules stage 2 loads for an overlay (besides `loop` and
    /// the host's driver), which the target's initramfs must have: the
    /// device-mapper core and its snapshot target. The RAM layer itself is
    /// a file on tmpfs behind a second loop device, which needs nothing more.
    pub const MODULES: [&str; 2] = ["dm_mod", "dm_snapshot"];

    /// The value `vhdboot.overlay=` carries.
    fn encode(self) -> String {
        match self {
            Overlay::Ram { limit: Some(bytes) } => format!("ram:{bytes}"),
            Overlay::Ram { limit: None } => "ram:auto".to_string(),
            Overlay::Trial { size } => format!("trial:{size}"),
        }
    }

    fn decode(text: &str) -> Result<Overlay, HandoffError> {
        let bad = || HandoffError::Bad {
            param: OVERLAY,
            value: text.to_string(),
            expected: "ram:auto, ram:<bytes> or trial:<bytes> with a positive whole number \
                       of bytes",
        };
        if let Some(n) = text.strip_prefix("trial:") {
            return n
                .parse::<u64>()
                .ok()
                .filter(|&b| b > 0)
                .map(|size| Overlay::Trial { size })
                .ok_or_else(bad);
        }
        match text.strip_prefix("ram:").ok_or_else(bad)? {
            "auto" => Ok(Overlay::Ram { limit: None }),
            n => n
                .parse::<u64>()
                .ok()
                .filter(|&b| b > 0)
                .map(|b| Overlay::Ram { limit: Some(b) })
                .ok_or_else(bad),
        }
    }
}

/// Bytes escaped in `vhdboot.image`: controls and whitespace would split
/// the word, a double quote would start quoting, `%` is the escape itself,
/// and non-ASCII bytes (always escaped by the crate) may hold 0xA0, which
/// the kernel's isspace() counts as a space.
const IMAGE_PATH_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// How stage 2 finds the host filesystem again after kexec. It prints as
/// it is written in `vhdboot.host=`: `UUID=…` or `PARTUUID=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostId {
    Uuid(String),
    PartUuid(String),
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostId::Uuid(u) => write!(f, "UUID={u}"),
            HostId::PartUuid(u) => write!(f, "PARTUUID={u}"),
        }
    }
}

/// Everything stage 1 knew about the host volume, so that stage 2 mounts
/// that volume and no other: a cloned disk has the same filesystem UUID,
/// and exFAT serials are only 32 bits. Each is None where stage 1 had no
/// value, or where a command line written by an older vhdboot (or by
/// hand) carries only `vhdboot.host=`; stage 2 then checks what it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub uuid: Option<String>,
    pub partuuid: Option<String>,
    /// The partition's size in bytes.
    pub size: Option<u64>,
}

/// Everything stage 2 needs to attach the image and hand over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// How stage 2 looks for the host (`vhdboot.host=`).
    pub host: HostId,
    /// What the device it finds must match besides; it includes the id in
    /// `host`.
    pub identity: HostIdentity,
    /// `FsType::Ntfs` or `FsType::Exfat`; others are refused by `plan`.
    pub fstype: FsType,
    /// The image's path on the host filesystem, starting with `/`.
    pub image: String,
    /// The image's data size in bytes (the file size minus the footer).
    pub size: u64,
    /// The init that stage 2 execs: the entry's own `rdinit=`, or `/init`.
    pub next: String,
    /// None: the image is attached read-write, as it is.
    pub overlay: Option<Overlay>,
}

/// Why the handoff could not be read from, or written to, a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error(
        "the kernel command line has no {param}=, so stage 2 does not know {what}; boot this \
         entry from the vhdboot menu (which adds it), or add {param}={example} by hand"
    )]
    Missing {
        param: &'static str,
        what: &'static str,
        example: &'static str,
    },
    #[error(
        "the kernel command line has {param}={value:?}, which is not valid: {expected}; boot this \
         entry from the vhdboot menu again, or correct {param}= by hand"
    )]
    Bad {
        param: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Unrepresentable(#[from] UnrepresentableParam),
}

impl Handoff {
    /// Rewrites `cmdline` so that the target kernel starts stage 2: any
    /// earlier handoff parameters are removed, the entry's own `rdinit=`
    /// is removed and becomes `vhdboot.next` (`self.next` is used when the
    /// line has none), and ours are appended before any `--`.
    ///
    /// Applying twice gives the same line: an `rdinit=` that already points
    /// at stage 2 is ours, so the `next` it carried is kept instead.
    pub fn apply(&self, cmdline: &mut Cmdline) -> Result<(), HandoffError> {
        let next = next_init(cmdline, &self.next);
        cmdline.retain(|p| !HANDOFF_KEYS.contains(&p.key()) && p.key() != RDINIT);
        let host = self.host.to_string();
        let image = encode_path(&self.image);
        cmdline.append(HOST, Some(&host))?;
        cmdline.append(FSTYPE, Some(self.fstype.driver()))?;
        cmdline.append(IMAGE, Some(&image))?;
        cmdline.append(SIZE, Some(&self.size.to_string()))?;
        cmdline.append(NEXT, Some(&next))?;
        if let Some(u) = &self.identity.uuid {
            cmdline.append(HOST_UUID, Some(u))?;
        }
        if let Some(p) = &self.identity.partuuid {
            cmdline.append(HOST_PARTUUID, Some(p))?;
        }
        if let Some(size) = self.identity.size {
            cmdline.append(HOST_SIZE, Some(&size.to_string()))?;
        }
        if let Some(overlay) = self.overlay {
            cmdline.append(OVERLAY, Some(&overlay.encode()))?;
        }
        cmdline.append(RDINIT, Some(STAGE2_PATH))?;
        Ok(())
    }

    /// Reads the handoff from a kernel command line (stage 2 passes
    /// /proc/cmdline). The last occurrence of each parameter wins.
    pub fn parse(cmdline: &str) -> Result<Handoff, HandoffError> {
        let line = Cmdline::parse(cmdline);
        let host_text = require(
            &line,
            HOST,
            "which partition holds the image",
            "UUID=<uuid>",
        )?;
        let host = parse_host(host_text)?;
        let fstype = match require(&line, FSTYPE, "which driver mounts it", "ntfs3")? {
            "ntfs3" => FsType::Ntfs,
            "exfat" => FsType::Exfat,
            other => {
                return Err(HandoffError::Bad {
                    param: FSTYPE,
                    value: other.to_string(),
                    expected: "ntfs3 or exfat",
                });
            }
        };
        let image_text = require(&line, IMAGE, "which image file to attach", "/Images/a.vhd")?;
        let image = decode_path(image_text)?;
        let size_text = require(&line, SIZE, "the image's data size", "<bytes>")?;
        let size = size_text
            .parse::<u64>()
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| HandoffError::Bad {
                param: SIZE,
                value: size_text.to_string(),
                expected: "a positive whole number of bytes",
            })?;
        let next = match line.get(NEXT) {
            None => DEFAULT_NEXT.to_string(),
            Some(n) if n.starts_with('/') && n != STAGE2_PATH => n.to_string(),
            Some(n) => {
                return Err(HandoffError::Bad {
                    param: NEXT,
                    value: n.to_string(),
                    expected: concat!(
                        "an absolute path to the target's init other than ",
                        stage2_path!()
                    ),
                });
            }
        };
        let identity = parse_identity(&line, &host)?;
        let overlay = line.get(OVERLAY).map(Overlay::decode).transpose()?;
        Ok(Handoff {
            host,
            identity,
            fstype,
            image,
            size,
            next,
            overlay,
        })
    }
}

/// The init stage 2 should exec after applying the handoff to `cmdline`.
fn next_init(cmdline: &Cmdline, wanted: &str) -> String {
    let own = match cmdline.get(RDINIT) {
        Some(STAGE2_PATH) => cmdline.get(NEXT),
        other => other,
    };
    match own {
        Some(n) if !n.is_empty() && n != STAGE2_PATH => n.to_string(),
        _ if !wanted.is_empty() && wanted != STAGE2_PATH => wanted.to_string(),
        _ => DEFAULT_NEXT.to_string(),
    }
}

fn require<'a>(
    line: &'a Cmdline,
    param: &'static str,
    what: &'static str,
    example: &'static str,
) -> Result<&'a str, HandoffError> {
    line.get(param)
        .filter(|v| !v.is_empty())
        .ok_or(HandoffError::Missing {
            param,
            what,
            example,
        })
}

/// The identity parameters, merged with the id in `vhdboot.host=`; a
/// parameter that contradicts it is refused.
fn parse_identity(line: &Cmdline, host: &HostId) -> Result<HostIdentity, HandoffError> {
    let id = |param: &'static str, from_host: Option<&String>| {
        let given = line.get(param).filter(|v| !v.is_empty());
        match (given, from_host) {
            (Some(g), Some(h)) if !g.eq_ignore_ascii_case(h) => Err(HandoffError::Bad {
                param,
                value: g.to_string(),
                expected: "the same id as vhdboot.host=",
            }),
            (Some(g), _) if g.contains(|c: char| c.is_whitespace()) => Err(HandoffError::Bad {
                param,
                value: g.to_string(),
                expected: "an id without spaces",
            }),
            (Some(g), _) => Ok(Some(g.to_string())),
            (None, h) => Ok(h.cloned()),
        }
    };
    let (host_uuid, host_partuuid) = match host {
        HostId::Uuid(u) => (Some(u), None),
        HostId::PartUuid(p) => (None, Some(p)),
    };
    let size =
        match line.get(HOST_SIZE) {
            None => None,
            Some(text) => Some(text.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                HandoffError::Bad {
                    param: HOST_SIZE,
                    value: text.to_string(),
                    expected: "a positive whole number of bytes",
                }
            })?),
        };
    Ok(HostIdentity {
        uuid: id(HOST_UUID, host_uuid)?,
        partuuid: id(HOST_PARTUUID, host_partuuid)?,
        size,
    })
}

fn parse_host(text: &str) -> Result<HostId, HandoffError> {
    let bad = || HandoffError::Bad {
        param: HOST,
        value: text.to_string(),
        expected: "UUID=<filesystem uuid> or PARTUUID=<partition uuid>",
    };
    let (kind, id) = text.split_once('=').ok_or_else(bad)?;
    if id.is_empty() || id.contains(|c: char| c.is_whitespace()) {
        return Err(bad());
    }
    match kind {
        "UUID" => Ok(HostId::Uuid(id.to_string())),
        "PARTUUID" => Ok(HostId::PartUuid(id.to_string())),
        _ => Err(bad()),
    }
}

fn decode_path(text: &str) -> Result<String, HandoffError> {
    let bad = |expected| HandoffError::Bad {
        param: IMAGE,
        value: text.to_string(),
        expected,
    };
    let path = percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| bad("a percent-encoded UTF-8 path"))?;
    if !path.starts_with('/') {
        return Err(bad(
            "an absolute path on the host filesystem, starting with /",
        ));
    }
    Ok(path.into_owned())
}

/// Encodes a path the way `vhdboot.image=` carries it. Exposed so that
/// messages and tests can show the exact text.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, IMAGE_PATH_ESCAPES).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_prints_as_written_on_the_command_line() {
        assert_eq!(HostId::Uuid("1A2B".into()).to_string(), "UUID=1A2B");
        assert_eq!(
            HostId::PartUuid("0fc63daf-01".into()).to_string(),
            "PARTUUID=0fc63daf-01"
        );
    }

    fn sample() -> Handoff {
        Handoff {
            host: HostId::Uuid("1A2B3C4D5E6F7081".into()),
            identity: HostIdentity {
                uuid: Some("1A2B3C4D5E6F7081".into()),
                partuuid: Some("5f3c2a10-0b1e-4c5d-9e8f-0123456789ab".into()),
                size: Some(900 << 30),
            },
            fstype: FsType::Ntfs,
            image: "/Images/ubuntu.vhd".into(),
            size: 8 * 1024 * 1024 * 1024,
            next: DEFAULT_NEXT.into(),
            overlay: None,
        }
    }

    fn applied(h: &Handoff, line: &str) -> String {
        let mut c = Cmdline::parse(line);
        h.apply(&mut c).unwrap();
        c.to_string()
    }

    #[test]
    fn apply_appends_the_contract_after_the_entry_line() {
        let line = applied(&sample(), "root=/dev/loop0p2 ro quiet");
        assert_eq!(
            line,
            "root=/dev/loop0p2 ro quiet vhdboot.host=UUID=1A2B3C4D5E6F7081 vhdboot.fstype=ntfs3 \
             vhdboot.image=/Images/ubuntu.vhd vhdboot.size=8589934592 vhdboot.next=/init \
             vhdboot.uuid=1A2B3C4D5E6F7081 \
             vhdboot.partuuid=5f3c2a10-0b1e-4c5d-9e8f-0123456789ab \
             vhdboot.hostsize=966367641600 rdinit=/vhdboot/stage2"
        );
        assert_eq!(Handoff::parse(&line).unwrap(), sample());
    }

    #[test]
    fn path_with_spaces_and_non_ascii_survives_write_then_parse() {
        let h = Handoff {
            image: "/Images/Ubuntu 24.04 – ü.vhd".into(),
            fstype: FsType::Exfat,
            host: HostId::PartUuid("0fc63daf-8483-4772-8e79-3d69d8477de4".into()),
            identity: HostIdentity {
                uuid: None,
                partuuid: Some("0fc63daf-8483-4772-8e79-3d69d8477de4".into()),
                size: None,
            },
            ..sample()
        };
        let line = applied(&h, "quiet");
        assert!(
            line.contains("vhdboot.image=/Images/Ubuntu%2024.04%20%E2%80%93%20%C3%BC.vhd"),
            "{line}"
        );
        assert!(line.is_ascii(), "{line}");
        assert_eq!(Handoff::parse(&line).unwrap(), h);
    }

    #[test]
    fn path_with_quotes_and_percent_signs_survives_write_then_parse() {
        let h = Handoff {
            image: r#"/a "quoted" 100%.vhd"#.into(),
            ..sample()
        };
        let line = applied(&h, "");
        assert!(!line.contains("100%.vhd"), "{line}");
        assert_eq!(Handoff::parse(&line).unwrap(), h);
    }

    #[test]
    fn entry_rdinit_becomes_next_and_is_replaced_by_stage2() {
        let line = applied(&sample(), "rdinit=/sbin/init-custom quiet");
        let c = Cmdline::parse(&line);
        assert_eq!(c.get(RDINIT), Some(STAGE2_PATH));
        assert_eq!(c.params().iter().filter(|p| p.key() == RDINIT).count(), 1);
        assert_eq!(Handoff::parse(&line).unwrap().next, "/sbin/init-custom");
    }

    #[test]
    fn handoff_next_is_used_when_the_line_has_no_rdinit() {
        let h = Handoff {
            next: "/sbin/other-init".into(),
            ..sample()
        };
        let line = applied(&h, "quiet");
        assert_eq!(Handoff::parse(&line).unwrap().next, "/sbin/other-init");
    }

    #[test]
    fn apply_twice_gives_the_same_line() {
        let once = applied(&sample(), "rdinit=/custom quiet -- single");
        let twice = applied(&sample(), &once);
        assert_eq!(once, twice);
        assert_eq!(Handoff::parse(&twice).unwrap().next, "/custom");
        assert!(
            twice.ends_with("rdinit=/vhdboot/stage2 -- single"),
            "{twice}"
        );
    }

    #[test]
    fn stale_handoff_params_are_replaced_and_other_vhdboot_params_kept() {
        let line = applied(
            &sample(),
            "vhdboot.image=/old.vhd vhdboot.size=1 vhdboot.debug=1 quiet",
        );
        let c = Cmdline::parse(&line);
        assert_eq!(c.params().iter().filter(|p| p.key() == IMAGE).count(), 1);
        assert_eq!(c.get(IMAGE), Some("/Images/ubuntu.vhd"));
        assert_eq!(c.get("vhdboot.debug"), Some("1"));
    }

    #[test]
    fn missing_params_are_named_with_what_to_do() {
        let err = Handoff::parse("quiet rdinit=/vhdboot/stage2").unwrap_err();
        assert!(matches!(err, HandoffError::Missing { param: HOST, .. }));
        let text = err.to_string();
        assert!(text.contains("vhdboot.host="), "{text}");
        assert!(text.contains("vhdboot menu"), "{text}");

        let err = Handoff::parse("vhdboot.host=UUID=1 vhdboot.fstype=exfat").unwrap_err();
        assert!(matches!(err, HandoffError::Missing { param: IMAGE, .. }));
    }

    #[test]
    fn bad_values_are_named_with_the_accepted_forms() {
        let good = applied(&sample(), "");
        for (param, value, expect) in [
            (HOST, "LABEL=x", "PARTUUID="),
            (HOST, "UUID=", "UUID="),
            (FSTYPE, "vfat", "ntfs3 or exfat"),
            (IMAGE, "relative.vhd", "starting with /"),
            (IMAGE, "/bad%FF.vhd", "UTF-8"),
            (SIZE, "12k", "bytes"),
            (SIZE, "0", "bytes"),
            (HOST_UUID, "FFFF", "same id as vhdboot.host="),
            (HOST_SIZE, "-1", "bytes"),
            (NEXT, "/vhdboot/stage2", "other than"),
            (NEXT, "init", "absolute"),
        ] {
            let line = format!("{good} {param}={value}");
            let err = Handoff::parse(&line).unwrap_err();
            match &err {
                HandoffError::Bad {
                    param: p, value: v, ..
                } => {
                    assert_eq!((*p, v.as_str()), (param, value));
                }
                other => panic!("{param}={value}: unexpected {other:?}"),
            }
            assert!(err.to_string().contains(expect), "{err}");
        }
    }

    #[test]
    fn next_defaults_to_init_when_absent() {
        let line =
            "vhdboot.host=UUID=AB vhdboot.fstype=ntfs3 vhdboot.image=/a.vhd vhdboot.size=512";
        assert_eq!(Handoff::parse(line).unwrap().next, "/init");
    }

    #[test]
    fn any_path_survives_write_then_parse() {
        let alphabet = [
            '/', 'a', ' ', '"', '%', '=', '\t', '\n', '\u{e0}', '–', '+', '\\',
        ];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..2_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bits = state;
            let mut image = String::from("/");
            for _ in 0..(bits % 16) {
                bits /= 7;
                image.push(alphabet[(bits % alphabet.len() as u64) as usize]);
            }
            let h = Handoff { image, ..sample() };
            let line = applied(&h, "quiet");
            assert_eq!(Handoff::parse(&line).unwrap(), h, "{line}");
        }
    }

    #[test]
    fn a_line_from_before_the_identity_parameters_still_parses() {
        let line =
            "vhdboot.host=UUID=AB vhdboot.fstype=ntfs3 vhdboot.image=/a.vhd vhdboot.size=512";
        assert_eq!(
            Handoff::parse(line).unwrap().identity,
            HostIdentity {
                uuid: Some("AB".into()),
                partuuid: None,
                size: None,
            }
        );
    }

    #[test]
    fn a_partuuid_host_also_carries_the_filesystem_uuid() {
        let h = Handoff {
            host: HostId::PartUuid("0fc63daf-01".into()),
            identity: HostIdentity {
                uuid: Some("1A2B".into()),
                partuuid: Some("0fc63daf-01".into()),
                size: Some(4096),
            },
            ..sample()
        };
        let line = applied(&h, "quiet");
        assert!(line.contains("vhdboot.uuid=1A2B"), "{line}");
        assert_eq!(Handoff::parse(&line).unwrap(), h);
    }

    #[test]
    fn immutable_overlay_survives_write_then_parse() {
        for (overlay, text) in [
            (Overlay::Ram { limit: None }, "vhdboot.overlay=ram:auto "),
            (
                Overlay::Trial { size: 1 << 30 },
                "vhdboot.overlay=trial:1073741824 ",
            ),
            (
                Overlay::Ram {
                    limit: Some(1 << 30),
                },
                "vhdboot.overlay=ram:1073741824 ",
            ),
        ] {
            let h = Handoff {
                overlay: Some(overlay),
                ..sample()
            };
            let line = applied(&h, "quiet");
            assert!(line.contains(text), "{line}");
            assert_eq!(Handoff::parse(&line).unwrap(), h);
            // Booting the same entry normally drops the overlay again.
            let normal = applied(&sample(), &line);
            assert!(!normal.contains("vhdboot.overlay"), "{normal}");
        }
    }

    #[test]
    fn bad_overlay_is_named_with_the_accepted_forms() {
        let good = applied(&sample(), "");
        for value in ["disk", "ram:", "ram:0", "ram:1G", "trial:", "trial:0"] {
            let err = Handoff::parse(&format!("{good} {OVERLAY}={value}")).unwrap_err();
            assert!(
                matches!(err, HandoffError::Bad { param: OVERLAY, .. }),
                "{value}: {err:?}"
            );
            assert!(err.to_string().contains("ram:auto"), "{err}");
        }
    }

    #[test]
    fn encode_path_escapes_only_what_the_command_line_cannot_carry() {
        assert_eq!(
            encode_path("/VHD/deb-12_x86+64.vhd"),
            "/VHD/deb-12_x86+64.vhd"
        );
        assert_eq!(encode_path("/a b\"%\t"), "/a%20b%22%25%09");
    }
}
