//! vhdboot: a boot-time selection and rescue shell for Linux installed in
//! fixed VHD files on NTFS or exFAT.
//!
//! The folders show the architecture. `model` is the plain data every layer
//! shares (what a scan found). `image`, `discovery`, `boot` and `tui` are
//! pure logic over bytes and snapshots, as is `terminal_text`, which makes
//! text from a disk safe to print. `sys` is the only module that makes
//! syscalls or holds unsafe code.

pub mod boot;
pub mod config;
pub mod discovery;
pub mod image;
pub mod model;
pub mod modprobe;
pub mod password;
pub mod report;
pub mod sys;
pub mod terminal_text;
pub mod trial;
pub mod tui;
