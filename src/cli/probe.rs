//! `vhdboot probe`: the child side of `crate::probe`, run by vhdboot itself
//! under limits, never by hand. It reads one image (or one entry's kernel
//! and initrd) and answers with JSON on stdout.

use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Subcommand)]
pub enum ProbeCommand {
    /// Describe one image file below a mounted host filesystem.
    Image(ImageArgs),
    /// Read and check one entry's kernel and initrd into descriptors 3 and 4.
    Load {
        /// The request, as JSON.
        request: String,
    },
}

#[derive(Args)]
pub struct ImageArgs {
    /// Where the host filesystem is mounted.
    root: PathBuf,
    /// The image's path on it, starting with `/`.
    path: String,
    /// The file may be a raw disk image.
    #[arg(long)]
    raw: bool,
}

/// A test-only misbehaviour of the image child (tests/probe_limits.rs):
/// `spin`, `allocate` or `garbage`, so the limits and the parent's reading
/// of a broken answer are proven on the real binary. Nobody sets it in a
/// boot; it can only make an image be listed as skipped.
const TEST_MISBEHAVE: &str = "VHDBOOT_TEST_PROBE";

fn misbehave_if_asked() {
    match std::env::var(TEST_MISBEHAVE).as_deref() {
        Ok("spin") => loop {
            std::hint::spin_loop();
        },
        Ok("allocate") => {
            // Past any probe_memory: the allocation fails and Rust aborts.
            let hog = vec![1u8; 4 << 30];
            std::hint::black_box(hog);
        }
        Ok("garbage") => print!("this is not JSON"),
        _ => {}
    }
}

pub fn run(c: ProbeCommand) -> anyhow::Result<ExitCode> {
    let answer = match c {
        ProbeCommand::Image(a) => {
            misbehave_if_asked();
            serde_json::to_vec(&crate::probe::describe_image_here(&a.root, &a.path, a.raw))?
        }
        ProbeCommand::Load { request } => {
            let request: crate::probe::LoadRequest =
                serde_json::from_str(&request).context("reading the load request")?;
            serde_json::to_vec(&crate::probe::load_here(&request))?
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&answer)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
