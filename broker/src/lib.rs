//! Switchyard, a message broker whose exchanges route through WebAssembly plugins.
//!
//! This crate is the server library and the `switchyard` binary. The plugin host is
//! [`plugin`]: start with [`plugin::PluginRegistry`].

pub mod message;
pub mod plugin;

pub use message::{Message, Properties};
