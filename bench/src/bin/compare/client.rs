//! The client operations every workload is written against, so one workload drives both
//! brokers with the same logic: connect, declare, publish (optionally with a window of
//! unconfirmed publishes), consume with a prefetch, and acknowledge the latest delivery.
//! [`crate::amqp`] implements it with lapin for RabbitMQ, [`crate::sdk`] with
//! `switchyard-client` for Switchyard.
//!
//! Both implementations pipeline writes the same way: a publish or an ack returns as soon as
//! its frames are queued for the connection's writer, and waits only when a bounded window
//! is full.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A boxed, sendable future of a fallible result: the trait objects' return type.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// The exchange types the workloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Topic,
    Fanout,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Bytes,
    pub persistent: bool,
}

/// How a publisher treats confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirms {
    /// Fire and forget. (The Switchyard SDK always asks for confirms; the harness drops them
    /// and its in-flight window of [`crate::sdk::UNCONFIRMED_WINDOW`] is the backpressure.)
    None,
    /// Wait for confirmations, at most this many outstanding.
    Window(usize),
}

/// Opens connections to one broker.
pub trait Connector: Send + Sync {
    fn connect(&self) -> BoxFut<'_, Box<dyn Session>>;
}

/// One connection.
pub trait Session: Send + Sync {
    fn declare_exchange<'a>(&'a self, name: &'a str, kind: ExchangeKind) -> BoxFut<'a, ()>;
    fn declare_queue<'a>(&'a self, name: &'a str, durable: bool) -> BoxFut<'a, ()>;
    fn bind<'a>(&'a self, exchange: &'a str, queue: &'a str, key: &'a str) -> BoxFut<'a, ()>;
    fn delete_queue<'a>(&'a self, name: &'a str) -> BoxFut<'a, ()>;
    fn delete_exchange<'a>(&'a self, name: &'a str) -> BoxFut<'a, ()>;
    fn publisher(&self, confirms: Confirms) -> BoxFut<'_, Box<dyn Sender>>;
    /// Consumes `queue` with manual acks and at most `prefetch` unacked deliveries.
    fn subscribe<'a>(&'a self, queue: &'a str, prefetch: u32) -> BoxFut<'a, Box<dyn Receiver>>;
    fn close(&self) -> BoxFut<'_, ()>;
}

/// Publishes on one channel (AMQP) or publish stream (Switchyard).
pub trait Sender: Send {
    /// Queues `message`; waits only while the write or confirm window is full.
    fn publish(&mut self, message: Outgoing) -> BoxFut<'_, ()>;
    /// Waits until every publish is written and, with confirms, confirmed.
    fn finish(&mut self) -> BoxFut<'_, ()>;
}

/// One consumer.
pub trait Receiver: Send {
    /// The next delivery's body; `None` when the subscription ended.
    fn next(&mut self) -> BoxFut<'_, Option<Bytes>>;
    /// Acknowledges the latest delivery (with `multiple`, and every one before it).
    fn ack_latest(&mut self, multiple: bool) -> BoxFut<'_, ()>;
}
