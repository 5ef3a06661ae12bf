//! `vhdboot passwd`: prints the crypt(3) SHA-512 hash that the `password`
//! setting of vhdboot.conf takes. On a terminal it asks twice with the
//! echo off; otherwise it reads one line from standard input, so scripts
//! can pipe a password in.

use anyhow::{Context, bail};
use clap::Args;
use std::fs::File;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use vhdboot::password::{self, MAX_LENGTH};
use vhdboot::sys::console::echo_off;

#[derive(Args)]
pub struct PasswdArgs {}

pub fn run(_: PasswdArgs) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let typed = if stdin.is_terminal() {
        let first = ask("New password: ")?;
        let second = ask("The same again: ")?;
        if first != second {
            bail!(
                "passwd: the two passwords differ; nothing was printed, run vhdboot passwd again"
            );
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .take(4 * MAX_LENGTH as u64)
            .read_line(&mut line)
            .context("passwd: reading the password from standard input failed")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if typed.is_empty() {
        bail!(
            "passwd: the password is empty; an empty password would lock nothing, so none was made"
        );
    }
    if typed.chars().count() > MAX_LENGTH {
        bail!(
            "passwd: the password is longer than {MAX_LENGTH} characters, more than the menu's prompt takes"
        );
    }
    let mut salt = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .context("passwd: reading a random salt from /dev/urandom failed")?;
    let hash = password::hash(&typed, &salt).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

/// Asks for one line on the terminal with its echo off.
fn ask(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let _quiet = echo_off(std::os::fd::AsFd::as_fd(&stdin))
        .context("passwd: cannot hide the typed password")?;
    let mut line = String::new();
    stdin
        .lock()
        .take(4 * MAX_LENGTH as u64)
        .read_line(&mut line)
        .context("passwd: reading the password from the terminal failed")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
