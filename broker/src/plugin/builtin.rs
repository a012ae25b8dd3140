//! The standard plugins built into the broker binary. `build.rs` compiles them from the crates
//! in `plugins/` for `wasm32-wasip2` and generates the table included here.

include!(concat!(env!("OUT_DIR"), "/embedded_plugins.rs"));
