//! The only layer that makes syscalls or holds unsafe code. Every unsafe
//! block carries a `// SAFETY:` comment. Wrappers are named after the calls
//! they wrap.

pub mod blkid;
pub mod bounded;
pub mod console;
pub mod devmapper;
pub mod efi;
pub mod efivars;
pub mod fileinfo;
pub mod kexec;
pub mod kmsg;
pub mod loopdev;
pub mod modules;
pub mod mount;
pub mod partition_mount;
pub mod pid1;
pub mod teardown;
pub mod tempdir;
pub mod timeline;
