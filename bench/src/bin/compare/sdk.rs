//! The workloads' client operations with the Switchyard SDK (`switchyard-client`), pinning
//! the broker's development certificate.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use switchyard_client::{
    Confirmation, ConnectOptions, Connection, ConsumeOptions, Consumer, Delivery, ExchangeOptions,
    OutgoingMessage, Properties, Publisher, QueueOptions, Table, Trust,
};

use crate::client::{
    BoxFut, Confirms, Connector, ExchangeKind, Outgoing, Receiver, Sender, Session,
};

/// Publishes awaiting confirmation when the workload does not wait for confirms: the SDK
/// always asks for them, so this window is what holds a fire-and-forget publisher back.
pub const UNCONFIRMED_WINDOW: usize = 10_000;

/// Connects to a Switchyard broker whose certificate has this SHA-256 fingerprint.
#[derive(Debug, Clone)]
pub struct SdkConnector {
    pub addr: SocketAddr,
    pub fingerprint: String,
}

impl Connector for SdkConnector {
    fn connect(&self) -> BoxFut<'_, Box<dyn Session>> {
        Box::pin(async move {
            let options = ConnectOptions::new(self.addr, Trust::Pinned(self.fingerprint.clone()));
            let connection = Connection::connect(options).await?;
            Ok(Box::new(SdkSession { connection }) as Box<dyn Session>)
        })
    }
}

struct SdkSession {
    connection: Connection,
}

impl Session for SdkSession {
    fn declare_exchange<'a>(&'a self, name: &'a str, kind: ExchangeKind) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let kind = match kind {
                ExchangeKind::Topic => "topic",
                ExchangeKind::Fanout => "fanout",
            };
            self.connection
                .declare_exchange(name, kind, ExchangeOptions::default())
                .await?;
            Ok(())
        })
    }

    fn declare_queue<'a>(&'a self, name: &'a str, durable: bool) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.connection
                .declare_queue(
                    name,
                    QueueOptions {
                        durable,
                        ..QueueOptions::default()
                    },
                )
                .await?;
            Ok(())
        })
    }

    fn bind<'a>(&'a self, exchange: &'a str, queue: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.connection
                .bind_queue(exchange, queue, key, Table::new())
                .await?;
            Ok(())
        })
    }

    fn delete_queue<'a>(&'a self, name: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.connection.delete_queue(name, false, false).await?;
            Ok(())
        })
    }

    fn delete_exchange<'a>(&'a self, name: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.connection.delete_exchange(name, false).await?;
            Ok(())
        })
    }

    fn publisher(&self, confirms: Confirms) -> BoxFut<'_, Box<dyn Sender>> {
        Box::pin(async move {
            let window = match confirms {
                Confirms::None => None,
                Confirms::Window(n) => Some(n.max(1)),
            };
            let publisher = self
                .connection
                .publisher_with(window.unwrap_or(UNCONFIRMED_WINDOW))
                .await?;
            Ok(Box::new(SdkSender {
                publisher,
                confirms: VecDeque::new(),
                window,
            }) as Box<dyn Sender>)
        })
    }

    fn subscribe<'a>(&'a self, queue: &'a str, prefetch: u32) -> BoxFut<'a, Box<dyn Receiver>> {
        Box::pin(async move {
            let consumer = self
                .connection
                .consume(ConsumeOptions {
                    prefetch,
                    ..ConsumeOptions::new(queue)
                })
                .await?;
            Ok(Box::new(SdkReceiver {
                consumer,
                latest: None,
            }) as Box<dyn Receiver>)
        })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            self.connection.close().await;
            Ok(())
        })
    }
}

struct SdkSender {
    publisher: Publisher,
    confirms: VecDeque<Confirmation>,
    window: Option<usize>,
}

impl Sender for SdkSender {
    fn publish(&mut self, message: Outgoing) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let outgoing = OutgoingMessage {
                exchange: message.exchange,
                routing_key: message.routing_key,
                properties: Properties {
                    persistent: message.persistent,
                    ..Properties::default()
                },
                body: message.body,
                ..OutgoingMessage::default()
            };
            let confirmation = self.publisher.publish(outgoing).await?;
            if let Some(window) = self.window {
                self.confirms.push_back(confirmation);
                while self.confirms.len() >= window {
                    self.confirms.pop_front().expect("non-empty").wait().await?;
                }
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            for confirmation in std::mem::take(&mut self.confirms) {
                confirmation.wait().await?;
            }
            Ok(())
        })
    }
}

struct SdkReceiver {
    consumer: Consumer,
    latest: Option<Delivery>,
}

impl Receiver for SdkReceiver {
    fn next(&mut self) -> BoxFut<'_, Option<Bytes>> {
        Box::pin(async move {
            match self.consumer.next().await {
                Some(delivery) => {
                    let delivery = delivery?;
                    let body = delivery.body.clone();
                    self.latest = Some(delivery);
                    Ok(Some(body))
                }
                None => Ok(None),
            }
        })
    }

    fn ack_latest(&mut self, multiple: bool) -> BoxFut<'_, ()> {
        Box::pin(async move {
            if let Some(delivery) = &self.latest {
                if multiple {
                    delivery.ack_multiple()?;
                } else {
                    delivery.ack()?;
                }
            }
            Ok(())
        })
    }
}
