//! The workloads' client operations over AMQP 0-9-1 with lapin, for RabbitMQ.
//!
//! A session is one TCP connection with one channel for declarations; every publisher and
//! every consumer gets its own channel (as every Switchyard publisher and consumer gets its
//! own QUIC stream). lapin resolves a publish or an ack when its frames are written, so
//! waiting for each one would serialise the client on its IO loop; instead up to
//! [`WRITE_WINDOW`] writes are in flight, polled once (which queues their frames) and
//! collected later.

use std::collections::VecDeque;

use anyhow::Context as _;
use bytes::Bytes;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};

use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};

use crate::client::{
    BoxFut, Confirms, Connector, ExchangeKind, Outgoing, Receiver, Sender, Session,
};

/// Publishes or acks whose frames are queued but not yet known to be written.
const WRITE_WINDOW: usize = 256;

/// Connects to `amqp://127.0.0.1:<port>/%2f`.
#[derive(Debug, Clone)]
pub struct AmqpConnector {
    pub uri: String,
}

impl Connector for AmqpConnector {
    fn connect(&self) -> BoxFut<'_, Box<dyn Session>> {
        Box::pin(async move {
            let connection = Connection::connect(&self.uri, ConnectionProperties::default())
                .await
                .with_context(|| format!("connecting to {}", self.uri))?;
            let control = connection.create_channel().await?;
            Ok(Box::new(AmqpSession {
                connection,
                control,
            }) as Box<dyn Session>)
        })
    }
}

struct AmqpSession {
    connection: Connection,
    control: Channel,
}

impl Session for AmqpSession {
    fn declare_exchange<'a>(&'a self, name: &'a str, kind: ExchangeKind) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let kind = match kind {
                ExchangeKind::Topic => lapin::ExchangeKind::Topic,
                ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            };
            self.control
                .exchange_declare(
                    name.into(),
                    kind,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok(())
        })
    }

    fn declare_queue<'a>(&'a self, name: &'a str, durable: bool) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.control
                .queue_declare(
                    name.into(),
                    QueueDeclareOptions {
                        durable,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok(())
        })
    }

    fn bind<'a>(&'a self, exchange: &'a str, queue: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.control
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok(())
        })
    }

    fn delete_queue<'a>(&'a self, name: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.control
                .queue_delete(name.into(), QueueDeleteOptions::default())
                .await?;
            Ok(())
        })
    }

    fn delete_exchange<'a>(&'a self, name: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.control
                .exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await?;
            Ok(())
        })
    }

    fn publisher(&self, confirms: Confirms) -> BoxFut<'_, Box<dyn Sender>> {
        Box::pin(async move {
            let channel = self.connection.create_channel().await?;
            let window = match confirms {
                Confirms::None => None,
                Confirms::Window(n) => {
                    channel
                        .confirm_select(ConfirmSelectOptions::default())
                        .await?;
                    Some(n.max(1))
                }
            };
            Ok(Box::new(AmqpSender {
                channel,
                writes: FuturesOrdered::new(),
                confirms: VecDeque::new(),
                window,
            }) as Box<dyn Sender>)
        })
    }

    fn subscribe<'a>(&'a self, queue: &'a str, prefetch: u32) -> BoxFut<'a, Box<dyn Receiver>> {
        Box::pin(async move {
            let channel = self.connection.create_channel().await?;
            let prefetch = u16::try_from(prefetch).context("AMQP prefetch is at most 65535")?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    queue.into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok(Box::new(AmqpReceiver {
                channel,
                consumer,
                latest_tag: None,
                acks: FuturesUnordered::new(),
            }) as Box<dyn Receiver>)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let _ = self.connection.close(200, "bench done".into()).await;
            Ok(())
        })
    }
}

type Write<T> = futures::future::BoxFuture<'static, lapin::Result<T>>;

struct AmqpSender {
    channel: Channel,
    writes: FuturesOrdered<Write<PublisherConfirm>>,
    confirms: VecDeque<PublisherConfirm>,
    window: Option<usize>,
}

impl AmqpSender {
    async fn settle(&mut self, confirm: PublisherConfirm) -> anyhow::Result<()> {
        if let Some(window) = self.window {
            self.confirms.push_back(confirm);
            while self.confirms.len() >= window {
                let front = self.confirms.pop_front().expect("non-empty");
                check_confirm(front.await?)?;
            }
        }
        Ok(())
    }
}

fn check_confirm(confirmation: Confirmation) -> anyhow::Result<()> {
    anyhow::ensure!(!confirmation.is_nack(), "RabbitMQ nacked a publish");
    Ok(())
}

impl Sender for AmqpSender {
    fn publish(&mut self, message: Outgoing) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let channel = self.channel.clone();
            let properties = if message.persistent {
                BasicProperties::default().with_delivery_mode(2)
            } else {
                BasicProperties::default()
            };
            self.writes.push_back(Box::pin(async move {
                channel
                    .basic_publish(
                        message.exchange.into(),
                        message.routing_key.into(),
                        BasicPublishOptions::default(),
                        &message.body,
                        properties,
                    )
                    .await
            }));
            // Poll once: the new publish queues its frames; finished ones are collected.
            while let Some(Some(written)) = self.writes.next().now_or_never() {
                self.settle(written?).await?;
            }
            while self.writes.len() >= WRITE_WINDOW {
                let written = self.writes.next().await.expect("non-empty")?;
                self.settle(written).await?;
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            while let Some(written) = self.writes.next().await {
                self.settle(written?).await?;
            }
            for confirm in std::mem::take(&mut self.confirms) {
                check_confirm(confirm.await?)?;
            }
            Ok(())
        })
    }
}

struct AmqpReceiver {
    channel: Channel,
    consumer: lapin::Consumer,
    latest_tag: Option<u64>,
    acks: FuturesUnordered<Write<()>>,
}

impl Receiver for AmqpReceiver {
    fn next(&mut self) -> BoxFut<'_, Option<Bytes>> {
        Box::pin(async move {
            while let Some(Some(acked)) = self.acks.next().now_or_never() {
                acked?;
            }
            match self.consumer.next().await {
                Some(delivery) => {
                    let delivery = delivery?;
                    self.latest_tag = Some(delivery.delivery_tag);
                    Ok(Some(Bytes::from(delivery.data)))
                }
                None => Ok(None),
            }
        })
    }

    fn ack_latest(&mut self, multiple: bool) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let Some(tag) = self.latest_tag else {
                return Ok(());
            };
            let channel = self.channel.clone();
            self.acks.push(Box::pin(async move {
                channel.basic_ack(tag, BasicAckOptions { multiple }).await
            }));
            while let Some(Some(acked)) = self.acks.next().now_or_never() {
                acked?;
            }
            while self.acks.len() >= WRITE_WINDOW {
                self.acks.next().await.expect("non-empty")?;
            }
            Ok(())
        })
    }
}
