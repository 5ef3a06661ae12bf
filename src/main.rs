//! The vhdboot binary. It dispatches on how it was started: as PID 1 it runs
//! stage 1 (the boot menu), as `/vhdboot/stage2` it runs stage 2 inside the
//! target's initramfs, as `shutdown` it detaches the image at power-off
//! (systemd's initrd interface), and anything else is the command-line tool.

mod bundle;
mod cli;
mod live_scan;
mod probe;
mod stage1;
mod stage2;

use std::process::ExitCode;

use vhdboot::boot::handoff::STAGE2_PATH;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stage2_name = std::path::Path::new(STAGE2_PATH)
        .file_name()
        .map(|n| n.to_string_lossy());
    if stage2_name.as_deref() == Some(name.as_str()) {
        // Stage 2 hands over to the target's init and never returns.
        stage2::run();
    }
    if name == stage2::carry::INIT_BOTTOM_NAME {
        // initramfs-tools' init-bottom hook, linked there by stage 2.
        stage2::carry::run_init_bottom();
    }
    if name == "shutdown" {
        // systemd's initrd shutdown hook (/run/initramfs/shutdown), copied
        // there by stage 2; it powers off and never returns.
        stage2::shutdown::run();
    }
    if std::process::id() == 1 {
        // After a panic with a password set, the panic hook execs
        // `/init --locked-shell` (sys::pid1::install_panic_hook).
        if std::env::args().nth(1).as_deref() == Some(vhdboot::sys::pid1::LOCKED_SHELL_ARG) {
            stage1::locked_shell_forever();
        }
        // Stage 1 is PID 1 and must never exit.
        stage1::run();
    }
    cli::run()
}
