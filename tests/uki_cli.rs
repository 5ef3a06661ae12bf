//! `vhdboot uki info` and `uki extract` over UKIs built by objcopy from
//! systemd's stub, and the error each broken UKI gives.
// The helpers below run only in tests, where a failed step should stop the
// test with its message.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::uki::{UkiSpec, fake_bzimage, make_uki, section_header};
use vhdboot::image::uki::{UkiError, UkiInfo, UkiSection};

fn vhdboot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "vhdboot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failure_stderr(out: &Output) -> String {
    assert!(!out.status.success(), "vhdboot should have failed");
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn info_shows_title_version_cmdline_and_sections() {
    let dir = tempfile::tempdir().unwrap();
    let uki = make_uki(dir.path(), "debian.efi", &UkiSpec::debian(70_000));
    let text = ok_stdout(&vhdboot(&["uki", "info", p(&uki)]));
    assert!(
        text.contains("Title:          Debian GNU/Linux 12 (bookworm) (6.1.0-18-amd64)"),
        "{text}"
    );
    assert!(
        text.contains("Command line:   root=PARTLABEL=root ro quiet"),
        "{text}"
    );
    assert!(text.contains("Kernel:         bzImage"), "{text}");
    for section in [".text", ".osrel", ".cmdline", ".uname", ".linux", ".initrd"] {
        assert!(
            text.contains(&format!("  {section} ")),
            "{section} missing in {text}"
        );
    }
}

#[test]
fn info_json_reports_exact_section_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = UkiSpec::debian(70_001);
    let uki = make_uki(dir.path(), "debian.efi", &spec);
    let text = ok_stdout(&vhdboot(&["uki", "info", "--json", p(&uki)]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["kernel_version"], "6.1.0-18-amd64");
    assert_eq!(v["pretty_name"], "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(v["kernel_is_bzimage"], true);
    let size_of = |name: &str| {
        v["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))["size"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(size_of(".linux"), 70_001);
    assert_eq!(size_of(".initrd"), spec.initrd.unwrap().len() as u64);
    assert_eq!(size_of(".uname"), "6.1.0-18-amd64".len() as u64);
}

#[test]
fn real_stub_sections_sit_at_the_recipe_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let uki = make_uki(dir.path(), "debian.efi", &UkiSpec::debian(3 << 20));
    let info = UkiInfo::read(&mut std::fs::File::open(&uki).unwrap()).unwrap();
    let linux = info.section(UkiSection::Linux).unwrap();
    let initrd = info.section(UkiSection::Initrd).unwrap();
    assert_eq!(linux.virtual_address, 0x200_0000);
    assert_eq!(initrd.virtual_address, 0x200_0000 + (3 << 20));
    assert_eq!(
        info.section(UkiSection::Osrel).unwrap().virtual_address,
        0x20000
    );
}

#[test]
fn extract_writes_the_exact_kernel_initrd_and_cmdline() {
    let dir = tempfile::tempdir().unwrap();
    let spec = UkiSpec::debian(100_003);
    let uki = make_uki(dir.path(), "debian.efi", &spec);
    let out = dir.path().join("out");
    ok_stdout(&vhdboot(&["uki", "extract", p(&uki), "--out", p(&out)]));
    assert_eq!(
        std::fs::read(out.join("linux")).unwrap(),
        spec.linux.unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("initrd")).unwrap(),
        spec.initrd.unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("cmdline")).unwrap(),
        "root=PARTLABEL=root ro quiet"
    );
}

#[test]
fn uki_without_linux_cannot_be_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = UkiSpec {
        linux: None,
        initrd: None,
        ..UkiSpec::debian(0)
    };
    let uki = make_uki(dir.path(), "nolinux.efi", &spec);
    let out = dir.path().join("out");
    let err = failure_stderr(&vhdboot(&["uki", "extract", p(&uki), "--out", p(&out)]));
    assert!(err.contains("nolinux.efi"), "{err}");
    assert!(err.contains("no .linux section"), "{err}");
    assert!(!out.join("linux").exists());
    let info = ok_stdout(&vhdboot(&["uki", "info", p(&uki)]));
    assert!(
        info.contains("no .linux section, so this UKI cannot boot"),
        "{info}"
    );
}

#[test]
fn cmdline_of_only_nuls_is_an_empty_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = UkiSpec {
        cmdline: Some(vec![0; 64]),
        ..UkiSpec::debian(4096)
    };
    let uki = make_uki(dir.path(), "nul.efi", &spec);
    let info = UkiInfo::read(&mut std::fs::File::open(&uki).unwrap()).unwrap();
    assert_eq!(info.cmdline.as_deref(), Some(""));
    let out = dir.path().join("out");
    ok_stdout(&vhdboot(&["uki", "extract", p(&uki), "--out", p(&out)]));
    assert_eq!(std::fs::read(out.join("cmdline")).unwrap(), b"");
}

#[test]
fn text_file_is_reported_as_not_a_pe() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.efi");
    std::fs::write(&file, "this is not an EFI program\n".repeat(10)).unwrap();
    let err = failure_stderr(&vhdboot(&["uki", "info", p(&file)]));
    assert!(err.contains("notes.efi"), "{err}");
    assert!(err.contains("not a PE/EFI file"), "{err}");
}

#[test]
fn truncated_uki_names_the_cut_section() {
    let dir = tempfile::tempdir().unwrap();
    let uki = make_uki(dir.path(), "cut.efi", &UkiSpec::debian(200_000));
    let bytes = std::fs::read(&uki).unwrap();
    let (_, initrd_at) = section_header(&bytes, ".initrd");
    // Cut the file in the middle of .initrd, as an interrupted copy would.
    std::fs::write(&uki, &bytes[..initrd_at as usize + 10]).unwrap();
    let err = failure_stderr(&vhdboot(&["uki", "info", p(&uki)]));
    assert!(err.contains("cut.efi"), "{err}");
    assert!(
        err.contains("section .initrd lies past the end of the file"),
        "{err}"
    );
    assert!(err.contains("copy it again"), "{err}");
}

#[test]
fn section_pointer_past_the_end_is_an_error_naming_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let uki = make_uki(dir.path(), "patched.efi", &UkiSpec::debian(8192));
    let mut bytes = std::fs::read(&uki).unwrap();
    let (entry, _) = section_header(&bytes, ".cmdline");
    bytes[entry + 20..entry + 24].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    std::fs::write(&uki, &bytes).unwrap();
    let err = UkiInfo::read(&mut std::fs::File::open(&uki).unwrap()).unwrap_err();
    assert!(
        matches!(err, UkiError::SectionPastEnd { ref name, offset: 0x7fff_0000, .. } if name == ".cmdline"),
        "{err}"
    );
}

#[test]
fn fake_kernel_without_hdrs_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut kernel = fake_bzimage(4096);
    kernel[0x202..0x206].copy_from_slice(b"XXXX");
    let spec = UkiSpec {
        linux: Some(kernel),
        ..UkiSpec::debian(0)
    };
    let uki = make_uki(dir.path(), "odd.efi", &spec);
    let text = ok_stdout(&vhdboot(&["uki", "info", p(&uki)]));
    assert!(text.contains("not a bzImage"), "{text}");
}
