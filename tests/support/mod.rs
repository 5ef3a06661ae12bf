//! Fixture builders shared by the integration tests. Each test crate uses a
//! different subset, so unused functions are expected here. These helpers
//! run only in tests, where a failed fixture step should stop the test with
//! its message, so unwrap and panic are allowed (clippy.toml allows them
//! only inside `#[test]` functions themselves).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "each test crate uses a different subset of these fixtures, so `expect` would go \
              unfulfilled in some; unwrap and panic stop a test at a failed fixture step"
)]

pub mod disk;
pub mod uki;
