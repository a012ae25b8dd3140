//! Publishes messages to a topic exchange with confirms.
//!
//! `cargo run -p switchyard-client --example publisher -- <broker-addr> <fingerprint> [count]`
//! (`switchyard serve` prints the fingerprint of its development certificate).

use anyhow::Context;
use switchyard_client::{ConnectOptions, Connection, ExchangeOptions, OutgoingMessage, Trust};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .context("usage: publisher <addr> <fingerprint> [count]")?;
    let pin = args
        .next()
        .context("usage: publisher <addr> <fingerprint> [count]")?;
    let count: u64 = args.next().map(|c| c.parse()).transpose()?.unwrap_or(10);

    let connection =
        Connection::connect(ConnectOptions::new(addr.parse()?, Trust::Pinned(pin))).await?;
    connection
        .declare_exchange("market", "topic", ExchangeOptions::default())
        .await?;
    let mut publisher = connection.publisher().await?;
    let mut confirmations = Vec::new();
    for i in 0..count {
        let message = OutgoingMessage::new(
            "market",
            format!("stock.{}.nyse", i % 3),
            format!("tick {i}"),
        );
        confirmations.push(publisher.publish(message).await?);
    }
    for confirmation in confirmations {
        confirmation.wait().await?;
    }
    println!("{count} messages confirmed");
    connection.close().await;
    Ok(())
}
