//! Menu timings over a 200-image snapshot: model creation to the first
//! frame, and key press to redrawn frame, drawn into a TestBackend at 80x24.
//! Run with `cargo bench --bench tui`. It prints figures and never asserts
//! them: the goals (< 20 ms first frame, < 5 ms per key) are for reading.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant};
use vhdboot::config::Config;
use vhdboot::model::{EntryRef, Snapshot};
use vhdboot::tui::demo::fixture_snapshot;
use vhdboot::tui::{Key, Model, Msg, update, view};

const IMAGES: usize = 200;
const FIRST_FRAME_RUNS: usize = 50;
const KEY_PRESSES: usize = 2000;

/// 200 images over 4 volumes, cycling through the fixture's kinds of image
/// (two entries, one entry, a warning, a blocking problem).
fn big_snapshot() -> Snapshot {
    let fixture = fixture_snapshot();
    let mut snap = Snapshot {
        volumes: Vec::new(),
        log: fixture.log.clone(),
        secure_boot: None,
        immutable: Default::default(),
    };
    let templates: Vec<_> = fixture.volumes[0].images.clone();
    for v in 0..4 {
        let mut volume = fixture.volumes[v % 2].clone();
        volume.device = format!("/dev/sd{}1", char::from(b'a' + v as u8)).into();
        volume.images = (0..IMAGES / 4)
            .map(|i| {
                let mut image = templates[i % templates.len()].clone();
                image.path = format!("/vhd/image-{v}-{i:03}.vhd");
                image
            })
            .collect();
        snap.volumes.push(volume);
    }
    snap
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let snapshot = big_snapshot();
    let config = Config::default();
    let default = Some(EntryRef {
        volume: 0,
        image: 0,
        entry: 0,
    });
    let entries: usize = snapshot
        .volumes
        .iter()
        .flat_map(|v| &v.images)
        .map(|i| i.entries.len())
        .sum();
    println!(
        "snapshot: {} volumes, {IMAGES} images, {entries} entries",
        snapshot.volumes.len()
    );

    let mut first = Vec::new();
    for _ in 0..FIRST_FRAME_RUNS {
        let snap = snapshot.clone();
        let start = Instant::now();
        let mut model = Model::new(snap, &config, default, Some(5));
        update(&mut model, Msg::Resize(80, 24));
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test backend");
        terminal.draw(|f| view(&model, f)).expect("draw");
        first.push(start.elapsed());
    }
    first.sort();
    println!(
        "model creation -> first frame (80x24, {FIRST_FRAME_RUNS} runs): median {}, max {}  (goal < 20 ms)",
        ms(percentile(&first, 0.5)),
        ms(first.last().copied().unwrap_or_default())
    );

    let per_key = key_presses(snapshot.clone(), &config, default);
    report(&format!("{IMAGES} images"), per_key);
    let per_key = key_presses(fixture_snapshot(), &config, default);
    report("the 5-image demo fixture, for comparison", per_key);
}

/// This thread's CPU time. Wall time on a machine shared with other jobs
/// includes time slices spent waiting for a core; CPU time does not.
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

fn key_presses(snapshot: Snapshot, config: &Config, default: Option<EntryRef>) -> Samples {
    let mut model = Model::new(snapshot, config, default, None);
    update(&mut model, Msg::Resize(80, 24));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test backend");
    terminal.draw(|f| view(&model, f)).expect("draw");
    let mut per_key = Samples {
        wall: Vec::with_capacity(KEY_PRESSES),
        cpu: Vec::with_capacity(KEY_PRESSES),
    };
    // Sweep down and up the whole list, so that scrolling is measured too.
    let mut key = Key::Up;
    for i in 0..KEY_PRESSES {
        if i % 300 == 0 {
            key = if key == Key::Down { Key::Up } else { Key::Down };
        }
        let start = Instant::now();
        let cpu_start = thread_cpu();
        update(&mut model, Msg::Key(key));
        terminal.draw(|f| view(&model, f)).expect("draw");
        per_key.cpu.push(thread_cpu().saturating_sub(cpu_start));
        per_key.wall.push(start.elapsed());
    }
    per_key
}

fn report(what: &str, mut per_key: Samples) {
    per_key.wall.sort();
    per_key.cpu.sort();
    println!("key press -> redrawn frame ({what}, {KEY_PRESSES} keys, goal < 5 ms):");
    for (kind, v) in [("wall", &per_key.wall), ("cpu ", &per_key.cpu)] {
        println!(
            "  {kind}: median {}, p99 {}, max {}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(v.last().copied().unwrap_or_default())
        );
    }
}
