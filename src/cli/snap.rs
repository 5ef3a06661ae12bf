//! `vhdboot snap`, run on a target: boot another firmware entry once (the
//! Windows Boot Manager, say, to take a VSS snapshot of the volume that
//! holds this very image), then come back. It lists the firmware's
//! `Boot####` entries with `BootOrder` and `BootCurrent`, sets `BootNext`
//! to the chosen one (the firmware boots it once and clears it), and
//! schedules a reboot. Only efivarfs is used; `--efivars DIR` points at a
//! fixture folder in tests.

use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vhdboot::boot::loader_interface::{
    GLOBAL_GUID, LoadOption, NV_BS_RT, boot_variable, decode_boot_number, decode_boot_order,
    encode_boot_number, file_name, parse_boot_variable, parse_load_option, split_attributes,
    with_attributes,
};
use vhdboot::sys::efivars::{self, VarChange};

#[derive(Args)]
pub struct SnapArgs {
    /// The entry to boot once: its number (0003 or Boot0003) or a part of
    /// its description (e.g. Windows). Without it, the entries are listed.
    pub entry: Option<String>,
    /// Reboot at this time of day (HH:MM, 24-hour, local time).
    #[arg(long, value_name = "HH:MM", conflicts_with = "in_minutes")]
    pub at: Option<String>,
    /// Reboot in this many minutes.
    #[arg(long = "in", value_name = "MINUTES")]
    pub in_minutes: Option<u32>,
    /// Print what would be written and run; write and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The efivarfs folder.
    #[arg(long, value_name = "DIR", default_value = efivars::EFIVARS)]
    pub efivars: PathBuf,
}

/// One `Boot####` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOption {
    pub number: u16,
    pub option: LoadOption,
}

/// When the reboot happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    At { hour: u8, minute: u8 },
    In { minutes: u32 },
}

pub fn run(a: SnapArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.efivars;
    if !efivars::available(dir) {
        bail!(
            "EFI variables are not available here ({} is missing: this system did not start \
             through UEFI, e.g. BIOS or Ventoy's legacy mode), so there is no BootNext to set; \
             choose the other system in the firmware's or Ventoy's menu instead",
            dir.display()
        );
    }
    let when = match (&a.at, a.in_minutes) {
        (Some(at), _) => Some(parse_at(at)?),
        (None, Some(minutes)) => Some(When::In { minutes }),
        (None, None) => None,
    };
    let options = read_options(dir)?;
    let order = read_global(dir, "BootOrder")?
        .and_then(|d| decode_boot_order(&d))
        .unwrap_or_default();
    let current = read_global(dir, "BootCurrent")?.and_then(|d| decode_boot_number(&d));
    let next = read_global(dir, "BootNext")?.and_then(|d| decode_boot_number(&d));

    let Some(wanted) = &a.entry else {
        print_options(&options, &order, current, next);
        return Ok(ExitCode::SUCCESS);
    };
    let chosen = choose(&options, wanted)?;
    let change = VarChange {
        file: file_name("BootNext", GLOBAL_GUID),
        content: Some(with_attributes(
            NV_BS_RT,
            &encode_boot_number(chosen.number),
        )),
    };
    let shown = format!(
        "{} \"{}\"",
        boot_variable(chosen.number),
        chosen.option.description
    );
    let command = when.map(|w| reboot_command(w, &have_program));
    if a.dry_run {
        say!(
            "would write {} = {:04X} ({shown}): {}",
            change.file,
            chosen.number,
            hex(change.content.as_deref().unwrap_or_default())
        );
        match &command {
            Some(Some(cmd)) => say!("would run: {}", cmd.join(" ")),
            Some(None) => say!("would find no systemd-run or shutdown to schedule the reboot"),
            None => say!("would schedule no reboot (give --at HH:MM or --in MINUTES)"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    efivars::apply(dir, std::slice::from_ref(&change))
        .with_context(|| format!("setting BootNext to {shown}"))?;
    say!("BootNext = {shown}: the firmware starts it at the next reboot, once.");
    match command {
        None => say!("Reboot when you are ready (e.g. systemctl reboot)."),
        Some(None) => say!(
            "No systemd-run or shutdown here: reboot at the time you want yourself \
             (e.g. echo reboot | at {})",
            when.map(describe).unwrap_or_default()
        ),
        Some(Some(cmd)) => {
            let status = std::process::Command::new(&cmd[0])
                .args(&cmd[1..])
                .status()
                .with_context(|| format!("running {}", cmd.join(" ")))?;
            if !status.success() {
                bail!(
                    "{} failed ({status}); BootNext stays set, so reboot yourself",
                    cmd.join(" ")
                );
            }
            say!(
                "Reboot scheduled {} ({}).",
                when.map(describe).unwrap_or_default(),
                cmd.join(" ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_global(dir: &Path, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let file = efivars::read(dir, &file_name(name, GLOBAL_GUID))?;
    Ok(file.and_then(|f| split_attributes(&f).map(|(_, data)| data.to_vec())))
}

/// Every readable `Boot####` entry, by number. An entry that does not
/// parse is skipped with a line on stderr; it cannot be chosen anyway.
fn read_options(dir: &Path) -> anyhow::Result<Vec<BootOption>> {
    let suffix = format!("-{GLOBAL_GUID}");
    let mut out = Vec::new();
    for file in efivars::list(dir)? {
        let Some(number) = file.strip_suffix(&suffix).and_then(parse_boot_variable) else {
            continue;
        };
        let parsed = efivars::read(dir, &file)?
            .as_deref()
            .and_then(split_attributes)
            .and_then(|(_, data)| parse_load_option(data));
        match parsed {
            Some(option) => out.push(BootOption { number, option }),
            None => say_err!("vhdboot: {file} is not a valid load option; skipped"),
        }
    }
    out.sort_by_key(|o| o.number);
    Ok(out)
}

fn print_options(options: &[BootOption], order: &[u16], current: Option<u16>, next: Option<u16>) {
    say!(
        "BootOrder: {}",
        order
            .iter()
            .map(|n| format!("{n:04X}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    if let Some(c) = current {
        say!("BootCurrent: {c:04X}");
    }
    if let Some(n) = next {
        say!("BootNext: {n:04X}");
    }
    for o in options {
        let mark = if Some(o.number) == current { '*' } else { ' ' };
        let state = if o.option.active() { "" } else { " (inactive)" };
        say!(
            "{mark} {} {}{state}",
            boot_variable(o.number),
            o.option.description
        );
    }
}

/// The entry `wanted` names: a hex number (with or without `Boot`), else
/// the one active entry whose description contains it (case-insensitive).
pub fn choose<'a>(options: &'a [BootOption], wanted: &str) -> anyhow::Result<&'a BootOption> {
    let digits = wanted.strip_prefix("Boot").unwrap_or(wanted);
    if digits.len() == 4
        && let Ok(number) = u16::from_str_radix(digits, 16)
        && let Some(o) = options.iter().find(|o| o.number == number)
    {
        return Ok(o);
    }
    let needle = wanted.to_lowercase();
    let matches: Vec<&BootOption> = options
        .iter()
        .filter(|o| o.option.active() && o.option.description.to_lowercase().contains(&needle))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no active firmware boot entry is numbered or described as {wanted:?}; run vhdboot \
             snap without an entry to list them"
        ),
        many => bail!(
            "{wanted:?} matches {} entries ({}); give the number instead",
            many.len(),
            many.iter()
                .map(|o| format!("{} \"{}\"", boot_variable(o.number), o.option.description))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `HH:MM`, 24-hour.
pub fn parse_at(text: &str) -> anyhow::Result<When> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (hour, minute) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        (hour < 24 && minute < 60 && m.len() == 2).then_some(When::At { hour, minute })
    });
    parsed.with_context(|| format!("--at {text:?}: give a time of day as HH:MM, e.g. 03:30"))
}

fn describe(when: When) -> String {
    match when {
        When::At { hour, minute } => format!("at {hour:02}:{minute:02}"),
        When::In { minutes } => format!("in {minutes} minute(s)"),
    }
}

/// The command that reboots at `when`: a transient systemd timer where
/// systemd runs, else `shutdown -r`; None when neither is installed.
pub fn reboot_command(when: When, have: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let words = |w: &[&str]| Some(w.iter().map(|s| s.to_string()).collect());
    if have("systemd-run") {
        let timer = match when {
            When::At { hour, minute } => format!("--on-calendar=*-*-* {hour:02}:{minute:02}:00"),
            When::In { minutes } => format!("--on-active={minutes}m"),
        };
        return words(&[
            "systemd-run",
            "--unit=vhdboot-snap-reboot",
            &timer,
            "systemctl",
            "reboot",
        ]);
    }
    if have("shutdown") {
        let at = match when {
            When::At { hour, minute } => format!("{hour:02}:{minute:02}"),
            When::In { minutes } => format!("+{minutes}"),
        };
        return words(&["shutdown", "-r", &at]);
    }
    None
}

/// Whether `program` is on PATH.
fn have_program(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vhdboot::boot::loader_interface::LOAD_OPTION_ACTIVE;

    fn option(number: u16, attributes: u32, description: &str) -> BootOption {
        BootOption {
            number,
            option: LoadOption {
                attributes,
                description: description.into(),
            },
        }
    }

    fn options() -> Vec<BootOption> {
        vec![
            option(0, LOAD_OPTION_ACTIVE, "Windows Boot Manager"),
            option(1, LOAD_OPTION_ACTIVE, "UEFI QEMU HARDDISK"),
            option(2, 0, "UEFI QEMU HARDDISK QM00002"),
            option(0x1a, LOAD_OPTION_ACTIVE, "Ventoy"),
        ]
    }

    #[test]
    fn entry_is_chosen_by_number_or_description() {
        let o = options();
        assert_eq!(choose(&o, "001A").unwrap().number, 0x1a);
        assert_eq!(choose(&o, "Boot0000").unwrap().number, 0);
        assert_eq!(choose(&o, "windows").unwrap().number, 0);
        // The inactive entry does not make the description ambiguous.
        assert_eq!(choose(&o, "harddisk").unwrap().number, 1);
    }

    #[test]
    fn ambiguous_or_unknown_description_is_refused_with_the_candidates() {
        let mut o = options();
        o.push(option(3, LOAD_OPTION_ACTIVE, "Windows Recovery"));
        let e = choose(&o, "windows").unwrap_err().to_string();
        assert!(e.contains("Boot0000") && e.contains("Boot0003"), "{e}");
        let e = choose(&o, "macos").unwrap_err().to_string();
        assert!(e.contains("vhdboot snap without an entry"), "{e}");
    }

    #[test]
    fn time_of_day_is_hh_mm() {
        assert_eq!(
            parse_at("03:30").unwrap(),
            When::At {
                hour: 3,
                minute: 30
            }
        );
        for bad in ["24:00", "3:5", "12:60", "noon", "12"] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reboot_goes_through_systemd_run_else_shutdown_else_nothing() {
        let at = When::At { hour: 3, minute: 5 };
        let all = |_: &str| true;
        assert_eq!(
            reboot_command(at, &all).unwrap(),
            [
                "systemd-run",
                "--unit=vhdboot-snap-reboot",
                "--on-calendar=*-*-* 03:05:00",
                "systemctl",
                "reboot"
            ]
        );
        let shutdown_only = |p: &str| p == "shutdown";
        assert_eq!(
            reboot_command(When::In { minutes: 10 }, &shutdown_only).unwrap(),
            ["shutdown", "-r", "+10"]
        );
        assert_eq!(reboot_command(at, &|_| false), None);
    }
}
