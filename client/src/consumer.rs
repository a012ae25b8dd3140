//! Consuming on a consume stream: subscribe (a bad queue or filter expression fails here), then
//! a [`Consumer`] is a `Stream` of [`Delivery`]s, each acked, nacked or rejected through its own
//! methods. Acks travel on the same stream, coalesced with other frames.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use switchyard_protocol::{
    CancelReason, ConsumeDown, ConsumeUp, FilterSpec, Headers, Properties, StreamKind, Subscribe,
};
use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::error::ClientError;
use crate::framed::{FramedRecv, FramedSend};

/// What a consumer asks for.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    pub queue: String,
    /// Empty: the broker picks one.
    pub consumer_tag: String,
    /// Unacknowledged deliveries at most (0 = no limit).
    pub prefetch: u32,
    /// Deliveries count as acknowledged when sent.
    pub no_ack: bool,
    pub exclusive: bool,
    /// A filter plugin and its expression, e.g. `("selector", "region = 'eu'")`.
    pub filter: Option<(String, String)>,
}

impl ConsumeOptions {
    pub fn new(queue: impl Into<String>) -> Self {
        ConsumeOptions {
            queue: queue.into(),
            prefetch: 100,
            ..ConsumeOptions::default()
        }
    }
}

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_tag: u64,
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    /// Deliveries before this one.
    pub delivery_count: u32,
    pub headers: Headers,
    pub properties: Properties,
    pub body: Bytes,
    acks: mpsc::UnboundedSender<ConsumeUp>,
}

impl Delivery {
    fn settle(&self, frame: ConsumeUp) -> Result<(), ClientError> {
        self.acks
            .send(frame)
            .map_err(|_| ClientError::closed("the consume stream is gone"))
    }

    pub fn ack(&self) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Ack {
            delivery_tag: self.delivery_tag,
            multiple: false,
        })
    }

    /// Acknowledges this and every earlier delivery of the consumer.
    pub fn ack_multiple(&self) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Ack {
            delivery_tag: self.delivery_tag,
            multiple: true,
        })
    }

    pub fn nack(&self, multiple: bool, requeue: bool) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Nack {
            delivery_tag: self.delivery_tag,
            multiple,
            requeue,
        })
    }

    pub fn reject(&self, requeue: bool) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Reject {
            delivery_tag: self.delivery_tag,
            requeue,
        })
    }
}

/// A subscription: a stream of deliveries that ends when the consumer is cancelled.
#[derive(Debug)]
pub struct Consumer {
    tag: String,
    deliveries: mpsc::Receiver<Result<Delivery, ClientError>>,
    frames: mpsc::UnboundedSender<ConsumeUp>,
}

impl Consumer {
    pub(crate) async fn subscribe(
        connection: &Connection,
        options: ConsumeOptions,
    ) -> Result<Consumer, ClientError> {
        let (mut send, mut recv) = connection.open_stream(StreamKind::Consume).await?;
        send.send(&ConsumeUp::Subscribe(Subscribe {
            queue: options.queue,
            consumer_tag: options.consumer_tag,
            prefetch: options.prefetch,
            no_ack: options.no_ack,
            exclusive: options.exclusive,
            filter: options
                .filter
                .map(|(plugin, expression)| FilterSpec { plugin, expression }),
        }))
        .await?;
        let tag = match recv.next::<ConsumeDown>().await? {
            Some(ConsumeDown::Subscribed { consumer_tag }) => consumer_tag,
            Some(ConsumeDown::Error(error)) => return Err(ClientError::Refused(error)),
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected Subscribed, got {other:?}"
                )));
            }
            None => return Err(ClientError::closed("the broker ended the consume stream")),
        };
        let (frames, outgoing) = mpsc::unbounded_channel();
        let (deliveries_tx, deliveries) = mpsc::channel(1024);
        tokio::spawn(write_frames(send, outgoing));
        tokio::spawn(read_deliveries(recv, deliveries_tx, frames.clone()));
        Ok(Consumer {
            tag,
            deliveries,
            frames,
        })
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The next delivery; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Delivery, ClientError>> {
        self.deliveries.recv().await
    }

    /// Changes the prefetch.
    pub fn set_prefetch(&self, prefetch: u32) -> Result<(), ClientError> {
        self.frames
            .send(ConsumeUp::Credit { prefetch })
            .map_err(|_| ClientError::closed("the consume stream is gone"))
    }

    /// Asks the broker to end the subscription; unacked deliveries go back to the queue.
    /// Deliveries already on their way still arrive, then `next` returns `None`.
    pub fn cancel(&self) {
        let _ = self.frames.send(ConsumeUp::Cancel);
    }

    /// Cancels and waits until the broker confirms, so every ack sent before has been applied.
    /// Deliveries that arrive meanwhile are not acked and go back to the queue.
    pub async fn close(mut self) {
        self.cancel();
        let drain = async { while self.deliveries.recv().await.is_some() {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
    }
}

impl futures::Stream for Consumer {
    type Item = Result<Delivery, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.deliveries.poll_recv(cx)
    }
}

async fn write_frames(mut send: FramedSend, mut outgoing: mpsc::UnboundedReceiver<ConsumeUp>) {
    while let Some(first) = outgoing.recv().await {
        let mut cancel = matches!(first, ConsumeUp::Cancel);
        if send.push(&first).is_err() {
            return;
        }
        while let Ok(next) = outgoing.try_recv() {
            cancel |= matches!(next, ConsumeUp::Cancel);
            if send.push(&next).is_err() {
                return;
            }
        }
        if send.flush().await.is_err() || cancel {
            send.finish();
            return;
        }
    }
}

async fn read_deliveries(
    mut recv: FramedRecv,
    deliveries: mpsc::Sender<Result<Delivery, ClientError>>,
    acks: mpsc::UnboundedSender<ConsumeUp>,
) {
    loop {
        let outcome = match recv.next::<ConsumeDown>().await {
            Ok(Some(ConsumeDown::Deliver(d))) => Ok(Delivery {
                delivery_tag: d.delivery_tag,
                exchange: d.exchange,
                routing_key: d.routing_key,
                redelivered: d.redelivered,
                delivery_count: d.delivery_count,
                headers: d.headers,
                properties: d.properties,
                body: d.body,
                acks: acks.clone(),
            }),
            Ok(Some(ConsumeDown::Cancelled { reason })) => match reason {
                CancelReason::ClientRequest => return,
                CancelReason::Error(error) => Err(ClientError::Refused(error)),
                other => Err(ClientError::closed(format!(
                    "subscription cancelled: {other:?}"
                ))),
            },
            Ok(Some(ConsumeDown::Error(error))) => Err(ClientError::Refused(error)),
            Ok(Some(ConsumeDown::Subscribed { .. })) => {
                Err(ClientError::Protocol("a second Subscribed".into()))
            }
            Ok(None) => return,
            Err(e) => Err(ClientError::from(e)),
        };
        let last = outcome.is_err();
        if deliveries.send(outcome).await.is_err() || last {
            return;
        }
    }
}
