//! The command-line tool: what vhdboot does on an ordinary Linux. This is
//! the binary edge, so errors are `anyhow` with context here.

/// `println!` for lines that may hold text from a disk (titles, paths,
/// command lines, labels): the whole line goes through
/// `terminal_text::escape_controls`, so no byte from an image reaches the
/// terminal as a control character. The CLI's own lines hold none, so
/// escaping whole lines changes only what came from a disk.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", vhdboot::terminal_text::escape_controls(&format!($($arg)*)))
    };
}

/// `eprintln!` with the same escaping as [`say!`].
macro_rules! say_err {
    ($($arg:tt)*) => {
        eprintln!("{}", vhdboot::terminal_text::escape_controls(&format!($($arg)*)))
    };
}

mod convert;
mod image;
mod menu;
mod passwd;
mod probe;
mod report;
mod scan;
mod snap;
mod uki;
mod vhd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "vhdboot",
    version,
    about = "Boot Linux installed in fixed VHD files on NTFS or exFAT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append a fixed-VHD footer to a raw disk image, in place.
    Raw2vhd(vhd::Raw2VhdArgs),
    /// Convert a dynamic VHD to a fixed one that vhdboot can boot.
    Convert(convert::ConvertArgs),
    /// Work with VHD footers.
    #[command(subcommand)]
    Vhd(vhd::VhdCommand),
    /// Show the partition table, ESPs and boot entries inside an image.
    Inspect(image::InspectArgs),
    /// Work with unified kernel images.
    #[command(subcommand)]
    Uki(uki::UkiCommand),
    /// Probe this machine's NTFS and exFAT volumes for bootable images.
    Scan(scan::ScanArgs),
    /// Write a support bundle: versions, configuration, scan log, problems,
    /// boot timeline, kernel log and block devices, in one text file.
    Report(report::ReportArgs),
    /// Run the boot menu on this terminal without booting anything.
    Menu(menu::MenuArgs),
    /// On a target: boot a firmware entry (e.g. Windows) once, at a given
    /// time, through BootNext.
    Snap(snap::SnapArgs),
    /// Print the hash that vhdboot.conf's `password` setting takes.
    Passwd(passwd::PasswdArgs),
    /// Read disk content for vhdboot itself, under limits (internal).
    #[command(subcommand, hide = true)]
    Probe(probe::ProbeCommand),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Raw2vhd(a) => vhd::raw2vhd(a),
        Command::Convert(a) => convert::run(a),
        Command::Vhd(c) => vhd::run(c),
        Command::Inspect(a) => image::inspect_bounded(a),
        Command::Uki(c) => uki::run(c),
        Command::Scan(a) => scan::run(a),
        Command::Menu(a) => menu::run(a),
        Command::Report(a) => report::run(a),
        Command::Snap(a) => snap::run(a),
        Command::Passwd(a) => passwd::run(a),
        Command::Probe(c) => probe::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Errors name paths and sometimes text read from an image.
            say_err!("vhdboot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A path argument, shared by the subcommands.
pub type FileArg = PathBuf;
