//! Turning a chosen entry into a boot: the quote-aware command-line
//! tokenizer and editor, the handoff parameters for stage 2, the BootPlan,
//! and the stage-2 cpio writer. Pure code; `sys::kexec` does the syscalls.
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod cpio;
pub mod entry_id;
pub mod handoff;
pub mod host_match;
pub mod in_use;
pub mod loader_interface;
pub mod plan;
pub mod repair;
pub mod trial;
