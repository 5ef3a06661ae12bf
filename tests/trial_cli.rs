//! A pending trial boot (`<image>.trial` beside the image, issue 15 item
//! 5) shows in `vhdboot inspect` (text and JSON) and in `scan --json`,
//! and looking at it writes nothing.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

use std::path::Path;
use std::process::{Command, Output};

fn vhdboot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(args)
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 16 MiB fixed VHD made by our own raw2vhd, and a 32 MiB trial store.
fn fixture(dir: &Path) -> std::path::PathBuf {
    let vhd = dir.join("deb.vhd");
    std::fs::File::create(&vhd)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let out = vhdboot(&["raw2vhd", p(&vhd)]);
    assert!(out.status.success(), "{out:?}");
    std::fs::File::create(dir.join("deb.vhd.trial"))
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    vhd
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn inspect_shows_the_pending_trial_and_its_size() {
    let t = tempfile::tempdir().unwrap();
    let vhd = fixture(t.path());
    let before = listing(t.path());
    let text = String::from_utf8(vhdboot(&["inspect", p(&vhd)]).stdout).unwrap();
    assert!(text.contains("Trial:  trial changes (32 MiB)"), "{text}");
    let json = vhdboot(&["inspect", "--json", p(&vhd)]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["trial"]["size"], 32u64 << 20);
    assert_eq!(v["trial"]["merging"], false);
    assert_eq!(listing(t.path()), before, "inspect wrote nothing");
}

#[test]
fn scan_json_shows_the_pending_trial_and_an_interrupted_merge() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    std::fs::write(t.path().join("deb.vhd.trial.merging"), b"").unwrap();
    let before = listing(t.path());
    let out = vhdboot(&["scan", "--json", "--root", p(t.path())]);
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = snap["volumes"][0]["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "the store is no image: {images:?}");
    assert_eq!(images[0]["path"], "/deb.vhd");
    assert_eq!(images[0]["trial"]["size"], 32u64 << 20);
    assert_eq!(images[0]["trial"]["merging"], true);
    assert_eq!(listing(t.path()), before, "scan wrote nothing");
}

#[test]
fn an_image_without_a_store_has_no_trial_field() {
    let t = tempfile::tempdir().unwrap();
    let vhd = fixture(t.path());
    std::fs::remove_file(t.path().join("deb.vhd.trial")).unwrap();
    let json = vhdboot(&["inspect", "--json", p(&vhd)]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v.get("trial").is_none(), "{v}");
}
