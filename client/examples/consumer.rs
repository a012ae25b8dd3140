//! Binds a queue to the `market` topic exchange and prints what arrives, acking each message.
//!
//! `cargo run -p switchyard-client --example consumer -- <broker-addr> <fingerprint>`

use anyhow::Context;
use switchyard_client::{
    ConnectOptions, Connection, ConsumeOptions, ExchangeOptions, QueueOptions, Table, Trust,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .context("usage: consumer <addr> <fingerprint>")?;
    let pin = args
        .next()
        .context("usage: consumer <addr> <fingerprint>")?;

    let connection =
        Connection::connect(ConnectOptions::new(addr.parse()?, Trust::Pinned(pin))).await?;
    connection
        .declare_exchange("market", "topic", ExchangeOptions::default())
        .await?;
    connection
        .declare_queue("ticks", QueueOptions::default())
        .await?;
    connection
        .bind_queue("market", "ticks", "stock.#", Table::new())
        .await?;
    let mut consumer = connection.consume(ConsumeOptions::new("ticks")).await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        println!(
            "{}: {}",
            delivery.routing_key,
            String::from_utf8_lossy(&delivery.body)
        );
        delivery.ack()?;
    }
    Ok(())
}
