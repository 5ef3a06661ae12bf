//! The decisions made over the model (`crate::model`: volumes, images,
//! boot entries, problems) and the pure steps that fill it. It works from
//! snapshots, so tests feed it fixtures; the I/O that fills a snapshot
//! lives in `sys` and `scan`.
#![forbid(unsafe_code)]

pub mod decisions;
pub mod in_use;
pub mod preflight;
pub mod scan;
