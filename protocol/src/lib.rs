//! Switchyard's wire protocol: the frames client and broker exchange over QUIC, and the codec
//! that turns them into bytes. No IO happens here (no tokio, no quinn): the broker and the
//! client SDK own the streams and hand this crate buffers, so it can be tested and fuzzed alone.
//!
//! A connection negotiates the ALPN [`ALPN`] during the TLS handshake, then the client opens
//! streams, each a bidirectional QUIC stream carrying one frame type per direction:
//!
//! | stream  | opened                 | client → broker | broker → client |
//! |---------|------------------------|-----------------|-----------------|
//! | control | first, exactly one     | [`ControlUp`]   | [`ControlDown`] |
//! | publish | any number             | [`PublishUp`]   | [`PublishDown`] |
//! | consume | one per consumer       | [`ConsumeUp`]   | [`ConsumeDown`] |
//!
//! Every stream begins with one [`StreamKind`] byte, written by the client before its first
//! frame, so the broker knows which frames to expect; the control stream must be the first
//! stream opened. After that byte the stream is a sequence of frames (see [`FrameDecoder`]).
//!
//! Start with [`encode`] and [`FrameDecoder::decode`]. Each stream's conversation (who sends
//! what when, and what every answer means) is in its module's docs: [`control`], [`publish`],
//! [`consume`]. Refusals carry a stable [`ErrorCode`]; the bounds the broker enforces are in
//! [`limits`].

mod body;
mod bounded;
mod codec;
pub mod consume;
pub mod control;
mod error_code;
pub mod limits;
mod message;
pub mod publish;
mod stream_kind;
pub mod value_json;
mod version;

pub use body::SHARE_BODIES_FROM;
pub use codec::{
    CLAIM_HEADROOM, DEFAULT_MAX_FRAME, DecodeError, EncodeError, FrameDecoder, FrameEncoder,
    FrameView, LENGTH_PREFIX_BYTES, encode,
};
pub use consume::{
    CancelReason, ConsumeDown, ConsumeDownFrames, ConsumeDownView, ConsumeUp, DeliverRef, Delivery,
    DeliveryView, FilterSpec, Subscribe,
};
pub use control::{
    Auth, Binding, ControlDown, ControlOk, ControlOp, ControlReply, ControlRequest, ControlUp,
    DestinationKind, Divergence, ExchangeInfo, Hello, PluginInfo, PluginKind, PluginSource,
    PluginStatus, QueueInfo, ShadowReport, Welcome,
};
pub use error_code::{ErrorCode, WireError};
pub use limits::{MAX_HEADERS, MAX_NAME_BYTES, NameKind, validate_headers, validate_name};
pub use message::{Headers, Identifier, Properties};
pub use publish::{Publish, PublishDown, PublishUp, UNCONFIRMED};
pub use stream_kind::StreamKind;
pub use switchyard_value as value;
pub use switchyard_value::{Decimal, MAX_TABLE_ITEMS, MAX_VALUE_DEPTH, Table, Value};
pub use version::{ALPN, PROTOCOL_VERSION, SUPPORTED_VERSIONS, negotiate};
