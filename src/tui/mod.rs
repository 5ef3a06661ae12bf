//! The boot menu, in the Elm shape: `update(&mut Model, Msg) -> Vec<Effect>`
//! and a side-effect-free `view(&Model, &mut Frame)`. The executor runs each
//! Effect through the `Host` trait, which `sys` implements for real and
//! tests implement with a recording fake.
#![forbid(unsafe_code)]

pub mod host;
