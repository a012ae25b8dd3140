//! Resident memory of a fresh server: 1,000 idle connections, then 10,000 idle queues, then
//! 1 million queued 256 B transient messages. Each figure is the growth of VmRSS over the
//! sample taken just before that step (so earlier steps do not count), divided by the count.

use std::time::Duration;

use crate::client::{Confirms, Connector, Outgoing};
use crate::servers::{ProcessSample, sample};

#[derive(Debug, Clone)]
pub struct MemoryFigures {
    pub baseline: ProcessSample,
    pub connections: u64,
    pub per_connection_bytes: f64,
    pub queues: u64,
    pub per_queue_bytes: f64,
    pub messages: u64,
    pub payload_bytes: u64,
    pub backlog_rss_growth: u64,
    /// VmRSS and VmHWM with the backlog queued.
    pub with_backlog: ProcessSample,
}

impl MemoryFigures {
    /// Memory growth per payload byte with the backlog queued.
    pub fn backlog_ratio(&self) -> f64 {
        self.backlog_rss_growth as f64 / self.payload_bytes.max(1) as f64
    }
}

/// Lets the server settle (and the allocator return freed memory) before a sample.
async fn settled_sample(pid: i32) -> anyhow::Result<ProcessSample> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    sample(pid)
}

pub async fn measure(
    connector: &dyn Connector,
    pid: i32,
    scale: f64,
) -> anyhow::Result<MemoryFigures> {
    let scaled = |n: u64| ((n as f64 * scale).round() as u64).max(1);
    let baseline = settled_sample(pid).await?;

    let connections = scaled(1_000);
    let mut idle = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        idle.push(connector.connect().await?);
    }
    let with_connections = settled_sample(pid).await?;
    let per_connection_bytes = with_connections
        .rss_bytes
        .saturating_sub(baseline.rss_bytes) as f64
        / connections as f64;
    futures::future::join_all(idle.iter().map(|session| session.close())).await;
    drop(idle);

    let admin = connector.connect().await?;
    let before_queues = settled_sample(pid).await?;
    let queues = scaled(10_000);
    for q in 0..queues {
        admin.declare_queue(&format!("idle.{q}"), false).await?;
    }
    let with_queues = settled_sample(pid).await?;
    let per_queue_bytes = with_queues
        .rss_bytes
        .saturating_sub(before_queues.rss_bytes) as f64
        / queues as f64;

    let messages = scaled(1_000_000);
    let backlog = "backlog";
    admin.declare_queue(backlog, false).await?;
    let before_backlog = settled_sample(pid).await?;
    let producer = connector.connect().await?;
    let mut sender = producer.publisher(Confirms::Window(1000)).await?;
    let body = bytes::Bytes::from(vec![0x5a_u8; 256]);
    for _ in 0..messages {
        sender
            .publish(Outgoing {
                exchange: String::new(),
                routing_key: backlog.into(),
                body: body.clone(),
                persistent: false,
            })
            .await?;
    }
    sender.finish().await?;
    let with_backlog = settled_sample(pid).await?;
    let _ = producer.close().await;
    let _ = admin.close().await;
    Ok(MemoryFigures {
        baseline,
        connections,
        per_connection_bytes,
        queues,
        per_queue_bytes,
        messages,
        payload_bytes: messages * 256,
        backlog_rss_growth: with_backlog
            .rss_bytes
            .saturating_sub(before_backlog.rss_bytes),
        with_backlog,
    })
}
