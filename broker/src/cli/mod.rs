//! The `switchyard` command line: argument types, the broker-serving command, the client
//! commands and the offline plugin check.

pub mod args;
pub mod bench;
pub mod client_commands;
pub mod plugin_dev;
pub mod serve;
pub mod table;
