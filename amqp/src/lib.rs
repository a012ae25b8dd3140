//! The AMQP 0-9-1 codec of Switchyard's AMQP frontend: bytes in, frames and commands out, and
//! back. No IO and no runtime, so it is unit-tested and fuzzed alone (see `fuzz/`); the
//! frontend owns the socket, timers and the translation to the session layer.
//!
//! A connection's read path: [`decode_protocol_header`] once, then [`FrameDecoder::decode`]
//! for each [`Frame`] (heartbeats are the connection's; everything else goes to the frame's
//! channel), then that channel's [`ContentAssembler::push`] for each whole [`Command`] — a
//! [`Method`], with its [`Content`] when it carries one. Its write path: [`encode_method`],
//! [`encode_content`], [`encode_heartbeat`]. Every error says which [`ReplyCode`] the
//! connection or channel closes with.
//!
//! Methods are our own code, generated from one table by a macro (`method.rs`), not
//! `amq-protocol`'s. We evaluated amq-protocol 10.6.3 (`default-features = false`): it would
//! pull 55 crates (the `url`/`idna`/ICU stack through its non-optional `amq-protocol-uri`,
//! `amq-protocol-tcp` → `tcp-stream` + `async-rs`, `serde_json`, `tracing`, nom, …; already in
//! the workspace lock through `bench`'s lapin, so none new there), and, worse, it cannot give
//! us what the broker needs: its `FieldTable` is a `BTreeMap`, which reorders header names and
//! drops repeated ones (our `Table` keeps both), and its table parser recurses once per
//! nesting level with no bound, so one frame of nested arrays could exhaust a stack. Every
//! method with a table would have needed our parser anyway, and the method list is finite.
//!
//! Field values map onto [`switchyard_value::Value`] as described in [`values`]; the limits of
//! that crate (nesting depth, values per table) hold for every table decoded here.

mod content;
mod encode;
mod frame;
pub mod method;
mod properties;
mod reader;
mod reply_code;
pub mod values;
mod writer;

pub use content::{Command, Content, ContentAssembler, ContentError};
pub use encode::{encode_content, encode_heartbeat, encode_method};
pub use frame::{
    FRAME_END, FRAME_HEADER_SIZE, FRAME_MIN_SIZE, FRAME_OVERHEAD, Frame, FrameDecoder, FrameError,
    PROTOCOL_HEADER, ProtocolHeaderError, decode_protocol_header,
};
pub use method::Method;
pub use properties::{BASIC_CLASS_ID, BasicProperties};
pub use reader::SyntaxError;
pub use reply_code::ReplyCode;
pub use writer::EncodeError;
