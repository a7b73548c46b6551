//! The commands besides `run` (which is [`crate::pipeline`]): each module holds its
//! arguments and the one function `main.rs` calls. They sit above every other module.

pub mod alerts_tail;
pub mod catalog_as_of;
pub mod catalog_import;
pub mod config_show;
pub mod dlq;
pub mod produce;
pub mod progress;
pub mod reconcile;
pub mod sample;
