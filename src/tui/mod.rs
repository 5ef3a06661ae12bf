//! The boot menu, in the Elm shape: `update(&mut Model, Msg) -> Vec<Effect>`
//! and a side-effect-free `view(&Model, &mut Frame)`. The executor runs each
//! Effect through the `Host` trait, which `sys` implements for real and
//! tests implement with a recording fake. `app` is the event loop shared by
//! PID 1 and `vhdboot menu --demo`.
#![forbid(unsafe_code)]

pub mod app;
pub mod demo;
pub mod executor;
pub mod host;
pub mod keymap;
pub mod keys;
pub mod line_edit;
pub mod lock;
pub mod model;
pub mod msg;
pub mod repair;
pub mod trial;
pub mod update;
pub mod view;

pub use host::{Effect, Failure, Host};
pub use model::Model;
pub use msg::{Key, Msg};
pub use update::update;
pub use view::view;
