//! Configuration: the bootstrapper's kernel command line (`vhdboot.*`)
//! overrides `/etc/vhdboot.conf`, which overrides the built-in defaults
//! (shared/design.md, "Configuration").
#![forbid(unsafe_code)]

use crate::boot::cmdline::Cmdline;
use crate::boot::handoff;
use crate::password::Password;
use percent_encoding::percent_decode_str;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the bootstrapper's initramfs keeps the configuration file.
pub const CONF_PATH: &str = "/etc/vhdboot.conf";

/// The `default` value that means "the entry booted last" (systemd-boot's
/// word for it).
pub const SAVED_DEFAULT: &str = "@saved";

/// The prefix of our parameters on the bootstrapper's kernel command line.
pub const CMDLINE_PREFIX: &str = "vhdboot.";

/// Every key, in the order the documentation lists them.
pub const KEYS: [&str; 19] = [
    "default",
    "timeout",
    "search",
    "depth",
    "settle",
    "raw",
    "columns",
    "lines",
    "ascii",
    "probe_time",
    "probe_memory",
    "load_time",
    "load_memory",
    "immutable",
    "immutable_ram",
    "trial_size",
    "editor",
    "password",
    "keymap",
];

/// What one child that reads disk content may use (`sys::bounded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildLimits {
    /// Wall-clock time; CPU time is limited to the same.
    pub time: Duration,
    /// Address space in MiB.
    pub memory_mib: u64,
}

/// Which image boots by itself: an optional host selector plus a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultSpec {
    pub host: Option<HostSelector>,
    /// The path on the host filesystem, starting with `/`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSelector {
    Label(String),
    Uuid(String),
}

/// The countdown setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Boot the default without showing the menu.
    Immediate,
    Seconds(u32),
    /// Wait for the user forever.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub default: Option<DefaultSpec>,
    /// `default = @saved`: the entry booted last (the EFI variable
    /// `LoaderEntryLastBooted`, as systemd-boot keeps it) is the default;
    /// `default` above, if an earlier source set one, is the fallback when
    /// nothing was saved or there are no EFI variables.
    pub default_saved: bool,
    pub timeout: Timeout,
    /// Folders searched on each host filesystem.
    pub search: Vec<String>,
    /// Folder depth of the search below each search folder.
    pub depth: u32,
    /// The longest wait for disks to appear.
    pub settle: Duration,
    /// Also list raw `*.img` files.
    pub raw_images: bool,
    /// Terminal size to assume when the console reports 0x0.
    pub columns: Option<u16>,
    pub lines: Option<u16>,
    /// Draw with ASCII only.
    pub ascii: bool,
    /// A test-only fault, from `vhdboot.failpoint=` on the kernel command
    /// line only (it is no setting, so the file does not take it).
    pub failpoint: Option<Failpoint>,
    /// Limits of the child that reads one image at discovery.
    pub probe: ChildLimits,
    /// Limits of the child that reads and checks a kernel and initrd at boot.
    pub load: ChildLimits,
    /// Images that always boot immutable (their changes kept in RAM and
    /// lost at reboot), by their path on the host filesystem.
    pub immutable: Vec<String>,
    /// The most bytes an immutable boot's RAM layer may hold; None lets
    /// stage 2 take a quarter of the machine's RAM.
    pub immutable_ram: Option<u64>,
    /// The size of the `<image>.trial` store a trial boot creates; None
    /// takes 1 GiB (`trial::DEFAULT_TRIAL_SIZE`).
    pub trial_size: Option<u64>,
    /// The command-line editor may be opened (`editor = no` turns it off,
    /// as in systemd-boot's loader.conf).
    pub editor: bool,
    /// The password that the editor, the shell, the repair actions and the
    /// trial's keep and discard ask for, if any.
    pub password: Option<Password>,
    /// The console keyboard layout stage 1 loads before the menu (a name
    /// from `/usr/share/vhdboot/keymaps`), or None for the kernel's US one.
    pub keymap: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default: None,
            default_saved: false,
            timeout: Timeout::Seconds(5),
            search: ["/", "/vhd", "/Images", "/images", "/VHD"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            depth: 2,
            settle: Duration::from_secs(10),
            raw_images: false,
            columns: None,
            lines: None,
            ascii: false,
            failpoint: None,
            // Discovery reads a few hundred KiB per image: a normal image
            // takes milliseconds, a USB disk's seek a few more. Five
            // seconds and 256 MiB leave a hundredfold margin and still
            // bring the menu up promptly when an image attacks the parser.
            probe: ChildLimits {
                time: Duration::from_secs(5),
                memory_mib: 256,
            },
            // A boot reads the whole kernel and initrd (100 MB UKIs exist)
            // and decompresses the initrd to check it, from disks as slow
            // as USB 2 (about 30 MB/s).
            load: ChildLimits {
                time: Duration::from_secs(60),
                memory_mib: 2048,
            },
            immutable: Vec::new(),
            immutable_ram: None,
            trial_size: None,
            editor: true,
            password: None,
            keymap: None,
        }
    }
}

/// Where a setting came from, for warnings.
#[derive(Debug, Clone, Copy)]
enum Origin {
    File { line: usize },
    Cmdline,
}

impl Config {
    /// Builds the configuration: the built-in defaults, then the
    /// configuration file's text (if there is one), then the `vhdboot.*`
    /// parameters of the bootstrapper's kernel command line.
    ///
    /// Nothing here fails: a bad line or value becomes a warning that names
    /// the key, the value and the accepted forms, and the earlier value
    /// stays.
    pub fn from_sources(conf_text: Option<&str>, kernel_cmdline: &str) -> (Config, Vec<String>) {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        if let Some(text) = conf_text {
            for (index, line) in text.lines().enumerate() {
                config.apply_conf_line(line, index + 1, &mut warnings);
            }
        }
        for param in Cmdline::parse(kernel_cmdline).params() {
            let Some(key) = param.key().strip_prefix(CMDLINE_PREFIX) else {
                continue;
            };
            if is_handoff_param(param.key()) {
                continue;
            }
            if param.key() == FAILPOINT_PARAM {
                match param.value().and_then(Failpoint::from_name) {
                    Some(point) => config.failpoint = Some(point),
                    None => warnings.push(format!(
                        "{}: {FAILPOINT_PARAM}={} is not a failpoint; the failpoints are {}",
                        Origin::Cmdline,
                        param.value().unwrap_or(""),
                        Failpoint::ALL.map(Failpoint::name).join(", ")
                    )),
                }
                continue;
            }
            config.apply(key, param.value(), Origin::Cmdline, &mut warnings);
        }
        (config, warnings)
    }

    fn apply_conf_line(&mut self, line: &str, number: usize, warnings: &mut Vec<String>) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let origin = Origin::File { line: number };
        let Some((key, value)) = line.split_once('=') else {
            warnings.push(format!(
                "{origin}: {line:?} is not a setting; write key = value (keys: {}), or start \
                 the line with # for a comment",
                KEYS.join(", ")
            ));
            return;
        };
        let value = value.trim();
        // A value that is one word to the kernel's tokenizer loses its
        // quotes the kernel's way; a longer value (an unquoted path with
        // spaces, a list) is kept as written.
        let words = Cmdline::parse(value);
        let value = match words.params() {
            [one] if words.init_args().is_none() => one.unquoted(),
            _ => value.to_string(),
        };
        self.apply(key.trim(), Some(&value), origin, warnings);
    }

    fn apply(
        &mut self,
        key: &str,
        value: Option<&str>,
        origin: Origin,
        warnings: &mut Vec<String>,
    ) {
        let shown = |v: Option<&str>| match origin {
            Origin::File { .. } => format!("{key} = {:?}", v.unwrap_or("")),
            Origin::Cmdline => match v {
                Some(v) => format!("{CMDLINE_PREFIX}{key}={v}"),
                None => format!("{CMDLINE_PREFIX}{key}"),
            },
        };
        if !KEYS.contains(&key) {
            warnings.push(format!(
                "{origin}: unknown setting {} ignored; the settings are {}",
                shown(value),
                KEYS.join(", ")
            ));
            return;
        }
        // A bare flag on the kernel command line (`vhdboot.ascii`) means on.
        let text = match (value, key) {
            (Some(v), _) => v,
            (None, "raw" | "ascii") => "1",
            (None, _) => "",
        };
        // Whoever can change the bootstrapper's command line is at the
        // keyboard already, so it may add a lock but never take one away
        // that the file (built into the initramfs) set.
        if matches!(origin, Origin::Cmdline)
            && let Some(refusal) = self.cmdline_would_unlock(key, text)
        {
            warnings.push(format!("{origin}: {} ignored: {refusal}", shown(value)));
            return;
        }
        let result = match key {
            "default" if text.trim().eq_ignore_ascii_case(SAVED_DEFAULT) => {
                self.default_saved = true;
                Ok(())
            }
            "default" => parse_default(text).map(|d| {
                self.default = d;
                self.default_saved = false;
            }),
            "editor" => parse_bool(text).map(|b| self.editor = b),
            "password" => {
                self.password = (!text.is_empty()).then(|| Password::from_setting(text));
                if let Some(Password::Unusable { reason }) = &self.password {
                    warnings.push(format!(
                        "{origin}: password is not usable: {reason}; the editor and the shell \
                         stay locked until it is fixed (vhdboot passwd prints a hash)"
                    ));
                }
                Ok(())
            }
            "timeout" => parse_timeout(text).map(|t| self.timeout = t),
            "search" => parse_search(text).map(|s| self.search = s),
            "depth" => text
                .parse::<u32>()
                .map(|d| self.depth = d)
                .map_err(|_| "a whole number of folder levels, such as 2".into()),
            "settle" => parse_duration(text).map(|d| self.settle = d),
            "raw" => parse_bool(text).map(|b| self.raw_images = b),
            "ascii" => parse_bool(text).map(|b| self.ascii = b),
            "columns" => parse_size(text).map(|c| self.columns = c),
            "lines" => parse_size(text).map(|l| self.lines = l),
            "probe_time" => parse_duration(text).map(|d| self.probe.time = d),
            "probe_memory" => parse_mib(text).map(|m| self.probe.memory_mib = m),
            "load_time" => parse_duration(text).map(|d| self.load.time = d),
            "load_memory" => parse_mib(text).map(|m| self.load.memory_mib = m),
            "immutable" => parse_image_list(text).map(|l| self.immutable = l),
            "immutable_ram" => parse_ram_limit(text).map(|r| self.immutable_ram = r),
            "trial_size" => parse_ram_limit(text).map(|r| self.trial_size = r),
            "keymap" => parse_keymap(text).map(|k| self.keymap = k),
            _ => Ok(()),
        };
        if let Err(accepted) = result {
            warnings.push(format!(
                "{origin}: {} is not valid; use {accepted}; keeping {}",
                shown(value),
                self.current(key)
            ));
        }
    }

    /// Why the kernel command line may not set `key` to `text`, if it
    /// would open a lock.
    fn cmdline_would_unlock(&self, key: &str, text: &str) -> Option<&'static str> {
        match key {
            "editor" if !self.editor && parse_bool(text) == Ok(true) => Some(
                "the kernel command line cannot turn on an editor that vhdboot.conf turned off",
            ),
            "password" if self.password.is_some() => {
                Some("the kernel command line cannot replace or clear the password of vhdboot.conf")
            }
            _ => None,
        }
    }

    /// The current value of `key`, as a warning shows it.
    fn current(&self, key: &str) -> String {
        let or_auto = |v: Option<u16>| v.map_or("auto".to_string(), |v| v.to_string());
        match key {
            "default" if self.default_saved => SAVED_DEFAULT.to_string(),
            "default" => self
                .default
                .as_ref()
                .map_or("no default".to_string(), |d| d.to_string()),
            "timeout" => match self.timeout {
                Timeout::Immediate => "0".into(),
                Timeout::Never => "-1".into(),
                Timeout::Seconds(s) => s.to_string(),
            },
            "search" => self.search.join(","),
            "depth" => self.depth.to_string(),
            "settle" => format!("{}ms", self.settle.as_millis()),
            "raw" => u8::from(self.raw_images).to_string(),
            "ascii" => u8::from(self.ascii).to_string(),
            "columns" => or_auto(self.columns),
            "lines" => or_auto(self.lines),
            "probe_time" => format!("{}ms", self.probe.time.as_millis()),
            "probe_memory" => self.probe.memory_mib.to_string(),
            "load_time" => format!("{}ms", self.load.time.as_millis()),
            "load_memory" => self.load.memory_mib.to_string(),
            "immutable" => self.immutable.join(","),
            "immutable_ram" => self
                .immutable_ram
                .map_or("auto".to_string(), |b| format!("{}M", b >> 20)),
            "editor" => u8::from(self.editor).to_string(),
            "keymap" => self
                .keymap
                .clone()
                .unwrap_or_else(|| "us (the kernel's)".into()),
            _ => String::new(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { line } => write!(f, "{CONF_PATH} line {line}"),
            Origin::Cmdline => f.write_str("kernel command line"),
        }
    }
}

impl fmt::Display for DefaultSpec {
    /// The form `default=` accepts, so messages show what to write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => f.write_str(&self.path),
            Some(HostSelector::Label(l)) => write!(f, "LABEL={l}:{}", self.path),
            Some(HostSelector::Uuid(u)) => write!(f, "UUID={u}:{}", self.path),
        }
    }
}

/// The kernel command-line parameter that arms a [`Failpoint`].
pub const FAILPOINT_PARAM: &str = "vhdboot.failpoint";

/// A fault the end-to-end suite injects on purpose (bootupd's failpoints),
/// armed with `vhdboot.failpoint=<name>` on the bootstrapper's kernel
/// command line. Harmless in production: each one only ends in the rescue
/// shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Loading a boot entry panics inside the executor, so the suite can
    /// prove that a panic in PID 1 ends in a shell.
    PanicOnBoot,
    /// The first kexec_file_load is refused as the kernel refuses a bad
    /// kernel; later ones run. The suite proves that the menu takes keys
    /// after a refused load and that another entry still boots.
    KexecRefusedOnce,
    /// The first reboot into a loaded kernel fails, after the volumes were
    /// unmounted for it; later ones run. The suite proves that the volumes
    /// are mounted again and that `r` and another boot still work.
    ExecFailsOnce,
}

/// The failpoint armed for this process; set once, at start-up.
static ARMED: OnceLock<Failpoint> = OnceLock::new();

/// Whether a once-only failpoint has failed already.
static FIRED: AtomicBool = AtomicBool::new(false);

impl Failpoint {
    pub const ALL: [Failpoint; 3] = [
        Failpoint::PanicOnBoot,
        Failpoint::KexecRefusedOnce,
        Failpoint::ExecFailsOnce,
    ];

    /// The name `vhdboot.failpoint=` takes.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::PanicOnBoot => "panic-on-boot",
            Failpoint::KexecRefusedOnce => "kexec-refused-once",
            Failpoint::ExecFailsOnce => "exec-fails-once",
        }
    }

    /// What arming it does, for the scan log.
    pub fn effect(self) -> &'static str {
        match self {
            Failpoint::PanicOnBoot => "booting any entry will panic",
            Failpoint::KexecRefusedOnce => "the first kexec_file_load will be refused",
            Failpoint::ExecFailsOnce => "the first reboot into a loaded kernel will fail",
        }
    }

    fn from_name(name: &str) -> Option<Failpoint> {
        Failpoint::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Arms this failpoint for the rest of the process's life. Only the
    /// first call counts.
    pub fn arm(self) {
        let _ = ARMED.set(self);
    }

    /// Panics here if this failpoint is armed: the one line a panicking
    /// fault site needs (`Failpoint::PanicOnBoot.hit()`).
    pub fn hit(self) {
        if self.fails() {
            panic_on_purpose(self)
        }
    }

    /// Whether the fault site of this failpoint must fail now: it is armed
    /// and, if it fails only once, has not failed yet. Sites that fail by
    /// returning an error ask this (`if Failpoint::ExecFailsOnce.fails()`).
    pub fn fails(self) -> bool {
        if ARMED.get() != Some(&self) {
            return false;
        }
        match self {
            Failpoint::KexecRefusedOnce | Failpoint::ExecFailsOnce => {
                !FIRED.swap(true, Ordering::Relaxed)
            }
            Failpoint::PanicOnBoot => true,
        }
    }
}

impl fmt::Display for Failpoint {
    /// The parameter that arms it, as the log and the panic message show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FAILPOINT_PARAM}={}", self.name())
    }
}

#[expect(clippy::panic, reason = "the test-only failpoint exists to panic")]
fn panic_on_purpose(point: Failpoint) -> ! {
    // tests/e2e/driver.py (scenario panic) waits for "failpoint <param>".
    panic!("failpoint {point}: panicking inside the boot executor on purpose (test only)")
}

/// Parameters meant for stage 2, not settings.
fn is_handoff_param(key: &str) -> bool {
    handoff::HANDOFF_KEYS.contains(&key)
}

type Accepted = String;

const DEFAULT_FORMS: &str = "a path such as /Images/ubuntu.vhd, optionally after LABEL=<label>: or \
     UUID=<uuid>: (spaces quoted or written as %20), @saved for the entry booted last, or nothing \
     for no default";

/// `[LABEL=<label>:|UUID=<uuid>:]<path>`; empty means no default.
fn parse_default(text: &str) -> Result<Option<DefaultSpec>, Accepted> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let prefix = |p: &str| {
        text.get(..p.len())
            .filter(|head| head.eq_ignore_ascii_case(p))
            .and_then(|_| text.get(p.len()..))
    };
    let (host, path) = if let Some(rest) = prefix("LABEL=") {
        let (label, path) = split_selector(rest)?;
        (Some(HostSelector::Label(decode(label)?)), path)
    } else if let Some(rest) = prefix("UUID=") {
        let (uuid, path) = split_selector(rest)?;
        (Some(HostSelector::Uuid(decode(uuid)?)), path)
    } else {
        (None, text)
    };
    Ok(Some(DefaultSpec {
        host,
        path: parse_path(path).map_err(|_| DEFAULT_FORMS.to_string())?,
    }))
}

/// Splits `<selector>:<path>` at the colon before the path's first slash.
fn split_selector(rest: &str) -> Result<(&str, &str), Accepted> {
    let at = rest
        .find(":/")
        .or_else(|| rest.find(":\\"))
        .filter(|&i| i > 0)
        .ok_or_else(|| DEFAULT_FORMS.to_string())?;
    Ok((
        rest.get(..at).unwrap_or(""),
        rest.get(at + 1..).unwrap_or(""),
    ))
}

fn decode(text: &str) -> Result<String, Accepted> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "%XX escapes that spell UTF-8 text".to_string())
}

/// A path on the host filesystem. Backslashes become slashes: Windows
/// users write them, and NTFS and exFAT forbid them in names anyway.
fn parse_path(text: &str) -> Result<String, Accepted> {
    let path = decode(text.trim())?.replace('\\', "/");
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err("an absolute path starting with /".into())
    }
}

fn parse_timeout(text: &str) -> Result<Timeout, Accepted> {
    let number = text.trim().strip_suffix('s').unwrap_or(text.trim());
    match number.parse::<i64>() {
        Ok(-1) => Ok(Timeout::Never),
        Ok(0) => Ok(Timeout::Immediate),
        Ok(n) => u32::try_from(n)
            .map(Timeout::Seconds)
            .map_err(|_| timeout_forms()),
        Err(_) => Err(timeout_forms()),
    }
}

fn timeout_forms() -> Accepted {
    "0 (boot the default at once), -1 (wait in the menu) or a number of seconds such as 5".into()
}

/// Folders separated by commas or spaces; quoted or %20 for spaces inside one.
fn parse_search(text: &str) -> Result<Vec<String>, Accepted> {
    let forms = || {
        "folders starting with /, separated by commas or spaces, such as /,/vhd,/Images \
         (a folder with a space in its name quoted or written with %20)"
            .to_string()
    };
    let mut folders = Vec::new();
    for word in Cmdline::parse(text).params() {
        for item in word
            .unquoted()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            folders.push(parse_path(item).map_err(|_| forms())?);
        }
    }
    if folders.is_empty() {
        return Err(forms());
    }
    Ok(folders)
}

fn parse_duration(text: &str) -> Result<Duration, Accepted> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else {
        (text.strip_suffix('s').unwrap_or(text), 1000)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            "a number of seconds such as 10 or 10s, or milliseconds such as 500ms".into()
        })
}

/// A memory limit in MiB: at least 16, since the child is the whole
/// static binary with its stack.
fn parse_mib(text: &str) -> Result<u64, Accepted> {
    match text.trim().parse::<u64>() {
        Ok(n) if (16..=1 << 20).contains(&n) => Ok(n),
        _ => Err("a number of MiB from 16 to 1048576, such as 256".into()),
    }
}

/// Image paths separated by commas or spaces, like `search`; empty means
/// none.
fn parse_image_list(text: &str) -> Result<Vec<String>, Accepted> {
    let mut images = Vec::new();
    for word in Cmdline::parse(text).params() {
        for item in word
            .unquoted()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            images.push(parse_path(item).map_err(|_| {
                "image paths starting with /, separated by commas or spaces, such as \
                 /Images/a.vhd,/vhd/b.vhd (a space in a name quoted or written as %20)"
                    .to_string()
            })?);
        }
    }
    Ok(images)
}

/// A size in MiB (`512`, `512M`) or GiB (`2G`), at least 1 MiB, or
/// `auto` for a quarter of the machine's RAM.
fn parse_ram_limit(text: &str) -> Result<Option<u64>, Accepted> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let (number, shift) = match text.char_indices().last() {
        Some((at, 'G' | 'g')) => (text.get(..at).unwrap_or(""), 30),
        Some((at, 'M' | 'm')) => (text.get(..at).unwrap_or(""), 20),
        _ => (text, 20),
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && n <= 1 << 20)
        .and_then(|n| n.checked_shl(shift))
        .map(Some)
        .ok_or_else(|| "a size in MiB such as 1024 or 1024M, in GiB such as 2G, or auto".into())
}

/// The longest keymap name taken: the shipped ones are a few letters.
const KEYMAP_NAME_MAX: usize = 32;

/// A keymap name, which stage 1 turns into a file name under
/// `/usr/share/vhdboot/keymaps`: only lowercase letters, digits and `-`, so
/// that no name can reach outside that folder. Empty means the kernel's.
fn parse_keymap(text: &str) -> Result<Option<String>, Accepted> {
    let name = text.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Ok(None);
    }
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain && name.len() <= KEYMAP_NAME_MAX && !name.starts_with('-') {
        Ok(Some(name))
    } else {
        Err("a layout name such as de, fr or ch-fr (vhdboot.conf lists the shipped ones)".into())
    }
}

fn parse_bool(text: &str) -> Result<bool, Accepted> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("1, true, yes or on; or 0, false, no or off".into()),
    }
}

/// A terminal dimension; 0 or `auto` means ask the console.
fn parse_size(text: &str) -> Result<Option<u16>, Accepted> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match text.parse::<u16>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(
            "a number of character cells from 1 to 65535, or 0 or auto to ask the console".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(conf: &str, cmdline: &str) -> (Config, Vec<String>) {
        Config::from_sources(Some(conf), cmdline)
    }

    fn spec(host: Option<HostSelector>, path: &str) -> Option<DefaultSpec> {
        Some(DefaultSpec {
            host,
            path: path.into(),
        })
    }

    #[test]
    fn no_sources_give_the_documented_defaults() {
        let (c, w) = Config::from_sources(None, "");
        assert_eq!(c, Config::default());
        assert!(w.is_empty());
        assert_eq!(c.timeout, Timeout::Seconds(5));
        assert_eq!(c.search, ["/", "/vhd", "/Images", "/images", "/VHD"]);
        assert_eq!(c.depth, 2);
        assert_eq!(c.settle, Duration::from_secs(10));
    }

    #[test]
    fn conf_file_sets_every_key() {
        let conf = r#"
# The image that boots by itself.
default = "LABEL=My Data:/Images/Ubuntu 24.04.vhd"
  timeout=0
search = /vhd, /Images "/My Images" /Other%20Images
depth = 3
settle = 15s
raw = yes
columns = 100
lines = 30
ascii = true
"#;
        let (c, w) = from(conf, "");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c,
            Config {
                default: spec(
                    Some(HostSelector::Label("My Data".into())),
                    "/Images/Ubuntu 24.04.vhd"
                ),
                timeout: Timeout::Immediate,
                search: vec![
                    "/vhd".into(),
                    "/Images".into(),
                    "/My Images".into(),
                    "/Other Images".into()
                ],
                depth: 3,
                settle: Duration::from_secs(15),
                raw_images: true,
                columns: Some(100),
                lines: Some(30),
                ascii: true,
                failpoint: None,
                ..Config::default()
            }
        );
    }

    #[test]
    fn kernel_cmdline_overrides_the_conf_file() {
        let (c, w) = from(
            "timeout = 3\ndefault = /a.vhd\nascii = 0",
            r#"quiet vhdboot.timeout=-1 vhdboot.default="/my dir/b.vhd" vhdboot.ascii root=x"#,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.timeout, Timeout::Never);
        assert_eq!(c.default, spec(None, "/my dir/b.vhd"));
        assert!(c.ascii, "a bare vhdboot.ascii flag turns it on");
    }

    #[test]
    fn whole_word_quotes_work_on_the_kernel_cmdline() {
        let (c, _) = from("", r#""vhdboot.default=UUID=1234-ABCD:/my dir/a.vhd""#);
        assert_eq!(
            c.default,
            spec(
                Some(HostSelector::Uuid("1234-ABCD".into())),
                "/my dir/a.vhd"
            )
        );
    }

    #[test]
    fn default_accepts_percent_encoding_and_backslashes() {
        let (c, w) = from(r"default = LABEL=My%20Data:\Images\Ubuntu%2024.04.vhd", "");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c.default,
            spec(
                Some(HostSelector::Label("My Data".into())),
                "/Images/Ubuntu 24.04.vhd"
            )
        );
    }

    #[test]
    fn unquoted_default_with_spaces_in_the_conf_file_is_taken_whole() {
        let (c, w) = from("default = /my dir/a.vhd", "");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.default, spec(None, "/my dir/a.vhd"));
    }

    #[test]
    fn empty_default_on_the_cmdline_clears_the_conf_default() {
        let (c, w) = from("default = /a.vhd", "vhdboot.default=");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.default, None);
    }

    #[test]
    fn saved_default_keeps_an_earlier_path_as_its_fallback() {
        let (c, w) = from("default = /a.vhd", "vhdboot.default=@saved");
        assert!(w.is_empty(), "{w:?}");
        assert!(c.default_saved);
        assert_eq!(c.default, spec(None, "/a.vhd"));
    }

    #[test]
    fn a_path_default_after_saved_turns_saved_off() {
        let (c, w) = from("default = @SAVED", "vhdboot.default=/b.vhd");
        assert!(w.is_empty(), "{w:?}");
        assert!(!c.default_saved);
        assert_eq!(c.default, spec(None, "/b.vhd"));
    }

    #[test]
    fn selector_prefix_is_case_insensitive() {
        let (c, _) = from("default = label=Data:/a.vhd", "");
        assert_eq!(
            c.default,
            spec(Some(HostSelector::Label("Data".into())), "/a.vhd")
        );
    }

    #[test]
    fn bad_values_warn_with_key_value_and_forms_and_keep_the_earlier_value() {
        let cases: [(&str, &str, &str); 10] = [
            (
                "timeout = soon",
                "timeout = \"soon\"",
                "-1 (wait in the menu)",
            ),
            ("timeout = -5", "-5", "number of seconds"),
            ("default = Images/a.vhd", "Images/a.vhd", "LABEL=<label>:"),
            ("default = LABEL=Data", "LABEL=Data", "UUID=<uuid>:"),
            ("search = vhd", "search = \"vhd\"", "starting with /"),
            ("depth = two", "two", "folder levels"),
            ("settle = 1 minute", "1 minute", "500ms"),
            ("raw = maybe", "maybe", "false"),
            ("columns = 70000", "70000", "65535"),
            ("ascii =", "ascii = \"\"", "false"),
        ];
        for (line, shows, forms) in cases {
            let (c, w) = from(&format!("timeout = 9\n{line}"), "");
            assert_eq!(w.len(), 1, "{line}: {w:?}");
            let text = &w[0];
            assert!(text.starts_with("/etc/vhdboot.conf line 2: "), "{text}");
            assert!(text.contains(shows), "{line}: {text}");
            assert!(text.contains(forms), "{line}: {text}");
            assert!(text.contains("keeping"), "{text}");
            let expected = Config {
                timeout: Timeout::Seconds(9),
                ..Config::default()
            };
            assert_eq!(c, expected, "{line} changed the config");
        }
    }

    #[test]
    fn bad_cmdline_value_keeps_the_conf_value_and_says_so() {
        let (c, w) = from("timeout = 3", "vhdboot.timeout=x");
        assert_eq!(c.timeout, Timeout::Seconds(3));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("kernel command line: vhdboot.timeout=x is not valid"),
            "{}",
            w[0]
        );
        assert!(w[0].ends_with("keeping 3"), "{}", w[0]);
    }

    #[test]
    fn unknown_keys_and_malformed_lines_warn() {
        let (c, w) = from("colour = blue\njust words", "vhdboot.bogus=1 bogus=2");
        assert_eq!(c, Config::default());
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("unknown setting colour = \"blue\""),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("line 2") && w[1].contains("key = value"),
            "{}",
            w[1]
        );
        assert!(w[2].contains("vhdboot.bogus=1"), "{}", w[2]);
    }

    #[test]
    fn handoff_params_on_the_cmdline_are_not_settings() {
        let (_, w) = from(
            "",
            "vhdboot.host=UUID=1 vhdboot.image=/a.vhd vhdboot.size=1",
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn timeout_forms() {
        for (text, expected) in [
            ("0", Timeout::Immediate),
            ("-1", Timeout::Never),
            ("12", Timeout::Seconds(12)),
            ("12s", Timeout::Seconds(12)),
        ] {
            assert_eq!(parse_timeout(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn settle_forms() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("99999999999999999999").is_err());
    }

    #[test]
    fn zero_or_auto_size_means_ask_the_console() {
        let (c, w) = from("columns = 0\nlines = auto", "");
        assert!(w.is_empty());
        assert_eq!((c.columns, c.lines), (None, None));
    }

    #[test]
    fn later_lines_win() {
        let (c, _) = from("depth = 1\ndepth = 4", "vhdboot.depth=5 vhdboot.depth=6");
        assert_eq!(c.depth, 6);
    }

    #[test]
    fn default_spec_displays_in_the_accepted_form() {
        let d = DefaultSpec {
            host: Some(HostSelector::Uuid("AB".into())),
            path: "/a.vhd".into(),
        };
        assert_eq!(d.to_string(), "UUID=AB:/a.vhd");
        let (c, w) = from(&format!("default = {d}"), "");
        assert!(w.is_empty());
        assert_eq!(c.default, Some(d));
    }

    #[test]
    fn every_failpoint_is_armed_by_its_name() {
        for point in Failpoint::ALL {
            let (c, w) = from("", &point.to_string());
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(c.failpoint, Some(point));
        }
    }

    #[test]
    fn failpoint_is_read_from_the_cmdline_only() {
        let (c, w) = from("", "vhdboot.failpoint=panic-on-boot");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.failpoint, Some(Failpoint::PanicOnBoot));
        assert_eq!(
            Failpoint::PanicOnBoot.to_string(),
            "vhdboot.failpoint=panic-on-boot"
        );
        let (c, w) = from("failpoint = panic-on-boot", "");
        assert_eq!(c.failpoint, None);
        assert!(w[0].contains("unknown setting"), "{w:?}");
    }

    #[test]
    fn unknown_failpoint_is_a_warning_naming_the_known_ones() {
        let (c, w) = from("", "vhdboot.failpoint=explode");
        assert_eq!(c.failpoint, None);
        assert!(
            w[0].contains("explode") && w[0].contains("panic-on-boot"),
            "{w:?}"
        );
    }

    #[test]
    fn child_limits_are_read_from_the_file_and_the_kernel_command_line() {
        let (c, w) = from(
            "probe_time = 2s\nprobe_memory = 64\nload_memory = 512",
            "vhdboot.load_time=90",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.probe.time, Duration::from_secs(2));
        assert_eq!(c.probe.memory_mib, 64);
        assert_eq!(c.load.time, Duration::from_secs(90));
        assert_eq!(c.load.memory_mib, 512);
        let (c, w) = from("probe_memory = 4", "");
        assert_eq!(c.probe.memory_mib, 256, "a value below 16 MiB is refused");
        assert!(
            w.iter()
                .any(|w| w.contains("probe_memory") && w.contains("from 16")),
            "{w:?}"
        );
    }

    const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    #[test]
    fn editor_and_password_are_read_from_the_file() {
        let (c, w) = from(&format!("editor = no\npassword = {HASH}\n"), "");
        assert!(w.is_empty(), "{w:?}");
        assert!(!c.editor);
        match c.password {
            Some(Password::Hash(h)) => assert_eq!(h.as_str(), HASH),
            other => unreachable!("{other:?}"),
        }
        let (c, _) = from("password =\n", "");
        assert_eq!(c.password, None);
    }

    #[test]
    fn the_cmdline_may_add_a_lock() {
        let (c, w) = from("", &format!("vhdboot.editor=no vhdboot.password={HASH}"));
        assert!(w.is_empty(), "{w:?}");
        assert!(!c.editor);
        assert!(matches!(c.password, Some(Password::Hash(_))));
    }

    #[test]
    fn the_cmdline_cannot_open_a_lock_the_file_set() {
        let other = "$6$othersalt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        let (c, w) = from(
            &format!("editor = no\npassword = {HASH}\n"),
            &format!("vhdboot.editor=yes vhdboot.password={other} vhdboot.password="),
        );
        assert!(!c.editor);
        match &c.password {
            Some(Password::Hash(h)) => assert_eq!(h.as_str(), HASH),
            other => unreachable!("{other:?}"),
        }
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("vhdboot.editor=yes ignored: the kernel command line cannot turn on")
        );
        assert!(w[1].contains("cannot replace or clear the password"));
    }

    #[test]
    fn a_password_that_is_no_hash_locks_and_warns() {
        let (c, w) = from("password = hunter2\n", "");
        assert!(
            matches!(c.password, Some(Password::Unusable { .. })),
            "{:?}",
            c.password
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("line 1: password is not usable: it is not a SHA-512"),
            "{w:?}"
        );
        assert!(w[0].contains("stay locked"), "{w:?}");
    }

    #[test]
    fn immutable_images_and_ram_limit_are_read() {
        let (c, w) = from(
            "immutable = /Images/a.vhd, \"/My Images/b.vhd\"\nimmutable_ram = 1024M",
            "vhdboot.immutable_ram=2G",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.immutable, ["/Images/a.vhd", "/My Images/b.vhd"]);
        assert_eq!(c.immutable_ram, Some(2 << 30));
        assert_eq!(parse_ram_limit("512"), Ok(Some(512 << 20)));
        assert_eq!(parse_ram_limit("auto"), Ok(None));
        for bad in ["0", "1T", "lots", "-5M"] {
            assert!(parse_ram_limit(bad).is_err(), "{bad}");
        }
        let (c, w) = from("immutable = a.vhd", "");
        assert!(c.immutable.is_empty());
        assert!(w[0].contains("starting with /"), "{w:?}");
    }

    #[test]
    fn shipped_conf_file_parses_without_warnings_to_the_defaults() {
        let text = include_str!("../assets/vhdboot.conf");
        let (c, w) = Config::from_sources(Some(text), "");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c, Config::default());
        for key in KEYS {
            assert!(
                text.contains(&format!("# {key} =")) || text.contains(&format!("\n{key} =")),
                "assets/vhdboot.conf does not document {key}"
            );
        }
    }

    #[test]
    fn shipped_conf_file_shows_the_real_defaults() {
        // Uncommenting every "# key = value" line must change nothing.
        let text = include_str!("../assets/vhdboot.conf");
        let uncommented: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| KEYS.iter().any(|k| l.starts_with(&format!("{k} ="))))
            .collect();
        assert_eq!(uncommented.len(), KEYS.len(), "{uncommented:?}");
        let (c, w) = Config::from_sources(Some(&uncommented.join("\n")), "");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn keymap_comes_from_the_file_and_the_cmdline_overrides_it() {
        let (c, w) = from("keymap = DE", "");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c.keymap.as_deref(),
            Some("de"),
            "names are taken in lowercase"
        );
        let (c, w) = from("keymap = de", "vhdboot.keymap=ch-fr");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.keymap.as_deref(), Some("ch-fr"));
        let (c, _) = from("keymap = de", "vhdboot.keymap=");
        assert_eq!(
            c.keymap, None,
            "an empty keymap on the cmdline means the kernel's"
        );
    }

    #[test]
    fn keymap_names_that_could_leave_the_keymap_folder_are_refused() {
        for bad in [
            "../etc/passwd",
            "de/x",
            "de.bmap",
            "-de",
            "d e",
            &"a".repeat(33),
        ] {
            // Quoted, so that "d e" stays one word of the command line.
            let (c, w) = from("keymap = fr", &format!("\"vhdboot.keymap={bad}\""));
            assert_eq!(
                c.keymap.as_deref(),
                Some("fr"),
                "{bad}: the file's value stays"
            );
            assert_eq!(w.len(), 1, "{bad}: {w:?}");
            assert!(w[0].contains("is not valid; use a layout name"), "{}", w[0]);
            assert!(w[0].ends_with("keeping fr"), "{}", w[0]);
        }
    }
}
