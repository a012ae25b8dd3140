//! Request/reply: a responder upper-cases requests from the `rpc.upper` queue; a caller sends
//! one and waits for the answer. Both run in this process over two connections.
//!
//! `cargo run -p switchyard-client --example request_reply -- <broker-addr> <fingerprint>`

use std::time::Duration;

use anyhow::Context;
use switchyard_client::{
    ConnectOptions, Connection, ConsumeOptions, OutgoingMessage, QueueOptions, RpcClient, Trust,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .context("usage: request_reply <addr> <fingerprint>")?;
    let pin = args
        .next()
        .context("usage: request_reply <addr> <fingerprint>")?;
    let options = ConnectOptions::new(addr.parse()?, Trust::Pinned(pin));

    let server = Connection::connect(options.clone()).await?;
    server
        .declare_queue("rpc.upper", QueueOptions::default())
        .await?;
    let mut requests = server.consume(ConsumeOptions::new("rpc.upper")).await?;
    let mut replies = server.publisher().await?;
    tokio::spawn(async move {
        while let Some(Ok(request)) = requests.next().await {
            let answer = String::from_utf8_lossy(&request.body).to_uppercase();
            if let Some(reply) = OutgoingMessage::reply_to(&request, answer) {
                let _ = replies.publish_confirmed(reply).await;
            }
            let _ = request.ack();
        }
    });

    let caller = Connection::connect(options).await?;
    let rpc = RpcClient::new(&caller).await?;
    let reply = rpc
        .call(
            OutgoingMessage::new("", "rpc.upper", "hello"),
            Duration::from_secs(5),
        )
        .await?;
    println!("reply: {}", String::from_utf8_lossy(&reply.body));
    Ok(())
}
