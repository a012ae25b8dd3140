//! Protocol frontends. Each owns its listener, its codec and the translation between its
//! protocol and the session layer ([`crate::session`]), and nothing else: it authenticates
//! through the session layer, opens a session per client, and reaches the broker's core only
//! through it. The arrows go frontends → session → core, never back.
//!
//! - [`quic`]: Switchyard's own protocol over QUIC (`switchyard_protocol`).
//! - [`amqp`]: AMQP 0-9-1 over TCP and TLS (`switchyard_amqp`), for RabbitMQ's clients.
//!
//! MQTT and STOMP come next, each a sibling folder here.

pub(crate) mod amqp;
pub(crate) mod quic;
