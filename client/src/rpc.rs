//! Request/reply over queues, as RabbitMQ users do RPC: a caller publishes a request whose
//! `reply_to` names its own exclusive reply queue and whose `correlation_id` is unique; the
//! server answers with [`OutgoingMessage::reply_to`]; the caller matches the answer by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Mutex, oneshot};

use crate::connection::{Connection, QueueOptions};
use crate::consumer::ConsumeOptions;
use crate::delivery::Delivery;
use crate::error::ClientError;
use crate::publisher::{OutgoingMessage, Publisher};

type Waiters = Arc<parking_lot::Mutex<HashMap<String, oneshot::Sender<Delivery>>>>;

/// Sends requests and waits for their replies.
#[derive(Debug)]
pub struct RpcClient {
    reply_queue: String,
    publisher: Mutex<Publisher>,
    waiters: Waiters,
    next_id: AtomicU64,
}

impl RpcClient {
    /// Declares an exclusive, server-named reply queue and starts listening on it.
    pub async fn new(connection: &Connection) -> Result<RpcClient, ClientError> {
        let reply_queue = connection
            .declare_queue(
                "",
                QueueOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueOptions::default()
                },
            )
            .await?;
        let mut replies = connection
            .consume(ConsumeOptions {
                no_ack: true,
                prefetch: 0,
                ..ConsumeOptions::new(&reply_queue)
            })
            .await?;
        let waiters: Waiters = Arc::default();
        let routing = Arc::clone(&waiters);
        tokio::spawn(async move {
            while let Some(Ok(reply)) = replies.next().await {
                let Some(id) = reply
                    .properties
                    .correlation_id
                    .as_ref()
                    .and_then(|id| id.as_text())
                    .map(str::to_owned)
                else {
                    continue;
                };
                if let Some(waiter) = routing.lock().remove(&id) {
                    let _ = waiter.send(reply);
                }
            }
        });
        Ok(RpcClient {
            reply_queue,
            publisher: Mutex::new(connection.publisher().await?),
            waiters,
            next_id: AtomicU64::new(1),
        })
    }

    /// The queue replies arrive on.
    pub fn reply_queue(&self) -> &str {
        &self.reply_queue
    }

    /// Publishes `request` (its `reply_to` and `correlation_id` are set here) and waits up to
    /// `timeout` for the reply.
    pub async fn call(
        &self,
        mut request: OutgoingMessage,
        timeout: Duration,
    ) -> Result<Delivery, ClientError> {
        let id = format!(
            "{}-{}",
            self.reply_queue,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        request.properties.reply_to = Some(self.reply_queue.clone());
        request.properties.correlation_id = Some(id.as_str().into());
        let (reply_tx, reply) = oneshot::channel();
        self.waiters.lock().insert(id.clone(), reply_tx);
        let sent = async { self.publisher.lock().await.publish_confirmed(request).await };
        if let Err(error) = sent.await {
            self.waiters.lock().remove(&id);
            return Err(error);
        }
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(delivery)) => Ok(delivery),
            Ok(Err(_)) => Err(ClientError::closed("the reply queue's consumer ended")),
            Err(_) => {
                self.waiters.lock().remove(&id);
                Err(ClientError::Timeout {
                    what: format!("a reply to request {id}"),
                    after: timeout,
                })
            }
        }
    }
}

impl OutgoingMessage {
    /// The reply to `request`: sent through the default exchange to its `reply_to` queue, with
    /// its `correlation_id`. `None` if the request named no reply queue.
    pub fn reply_to(request: &Delivery, body: impl Into<Bytes>) -> Option<OutgoingMessage> {
        let queue = request.properties.reply_to.clone()?;
        let mut reply = OutgoingMessage::new("", queue, body);
        reply.properties.correlation_id = request.properties.correlation_id.clone();
        Some(reply)
    }
}
