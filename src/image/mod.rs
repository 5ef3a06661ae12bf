//! Parsers for what lies on a disk: the VHD footer, the GPT, the FAT ESP,
//! UKIs (PE), os-release and Boot Loader Spec entries. Everything here reads
//! untrusted bytes and returns errors; nothing asserts or indexes blindly.
#![forbid(unsafe_code)]

pub mod bls;
pub mod boot_dir;
pub mod bytes;
pub mod bzimage;
pub mod carry;
pub mod dynamic_vhd;
pub mod esp;
pub mod exfat;
pub mod ext4_window;
pub mod fat_dir;
pub mod initrd;
pub mod inspect;
pub mod modules_index;
pub mod ntfs;
pub mod osrelease;
pub mod partitions;
pub mod payload;
pub mod readahead;
pub mod uki;
pub mod version;
pub mod vhd;
pub mod window;
