//! The Switchyard client SDK: an async (tokio) client for the Switchyard broker over QUIC.
//!
//! Start with [`Connection::connect`]; declare topology with its methods, publish with a
//! [`Publisher`] (confirms per message, many in flight, or fire-and-forget with
//! [`Publisher::publish_unconfirmed`]) and consume with a [`Consumer`] (a `Stream` of
//! [`Delivery`]s you ack or nack). [`RpcClient`] does request/reply.
//!
//! ```no_run
//! # async fn example() -> Result<(), switchyard_client::ClientError> {
//! use switchyard_client::{ConnectOptions, Connection, ConsumeOptions, OutgoingMessage, Trust};
//!
//! let options = ConnectOptions::new("127.0.0.1:5680".parse().unwrap(), Trust::InsecureAnyCertificate);
//! let connection = Connection::connect(options).await?;
//! connection.declare_queue("orders", Default::default()).await?;
//! let mut publisher = connection.publisher().await?;
//! publisher.publish_confirmed(OutgoingMessage::new("", "orders", "hello")).await?;
//! let mut consumer = connection.consume(ConsumeOptions::new("orders")).await?;
//! if let Some(delivery) = consumer.next().await {
//!     let delivery = delivery?;
//!     println!("{}", String::from_utf8_lossy(&delivery.body));
//!     delivery.ack()?;
//! }
//! # Ok(()) }
//! ```

mod connection;
mod consumer;
mod delivery;
mod error;
pub mod framed;
mod publish_streams;
mod publisher;
mod rpc;
mod tls;

pub use connection::{ConnectOptions, Connection, ExchangeOptions, ImportReport, QueueOptions};
pub use consumer::{ConsumeOptions, Consumer};
pub use delivery::{Delivery, SharedStr};
pub use error::{ClientError, FrameError};
pub use publisher::{Confirmation, Confirmed, OutgoingMessage, Publisher};
pub use rpc::RpcClient;
pub use switchyard_protocol::{
    Auth, Decimal, ErrorCode, Headers, Identifier, Properties, Table, Value, WireError, value_json,
};
pub use tls::{ALPN, Trust, quic_client_config};

/// How many publishes may await confirmation on one publisher by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;

impl Connection {
    /// Opens a publish stream with [`DEFAULT_MAX_IN_FLIGHT`].
    pub async fn publisher(&self) -> Result<Publisher, ClientError> {
        Publisher::open(self, DEFAULT_MAX_IN_FLIGHT).await
    }

    /// Opens a publish stream allowing `max_in_flight` unconfirmed publishes.
    pub async fn publisher_with(&self, max_in_flight: usize) -> Result<Publisher, ClientError> {
        Publisher::open(self, max_in_flight).await
    }

    /// Subscribes to a queue on a new consume stream.
    pub async fn consume(&self, options: ConsumeOptions) -> Result<Consumer, ClientError> {
        Consumer::subscribe(self, options).await
    }
}
