//! The discovery model (disks, volumes, images, boot entries, problems) and
//! the decisions made over it. It works from snapshots, so tests feed it
//! fixtures; the I/O that fills a snapshot lives in `sys` and `scan`.
#![forbid(unsafe_code)]

pub mod decisions;
pub mod model;
pub mod preflight;
pub mod scan;

pub use model::*;
