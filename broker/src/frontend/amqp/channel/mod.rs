//! One AMQP channel: a state machine from commands (a method, with its content) to session
//! calls and reply frames. It does no IO: replies are appended to the connection's output
//! buffer, deliveries and confirms arrive as events the connection hands in, and a refusal is
//! returned as a [`Fault`] that closes the channel (or, for the connection-level codes, the
//! connection).
//!
//! Delivery tags are the channel's: one counter for every consumer and `basic.get` of the
//! channel, mapped to the tag of the subscription (or getter) that delivered the message, so
//! `basic.ack` with `multiple` settles across consumers as AMQP says it does.
//!
//! This module holds the state and the dispatch from methods; the work is in `publish.rs`
//! (publishes, returns, confirms, transactions), `deliver.rs` (consumers, gets, settling) and
//! `declare.rs` (exchanges and queues).
//!
//! `basic.qos`: `global = false` sets the prefetch of the channel's consumers, including those
//! already consuming (RabbitMQ applies it to new consumers only; see `docs/amqp.md` for why we
//! do not); `global = true` caps each consumer of the channel too — an approximation of
//! RabbitMQ's channel-wide count, which the session layer does not have yet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use switchyard_amqp::method::*;
use switchyard_amqp::{BASIC_CLASS_ID, Command, ContentAssembler, Method, ReplyCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod declare;
mod deliver;
mod publish;

use self::publish::{ReturnCopy, confirm_in_order};
use super::connection::Event;
use super::translate::{message_from_amqp, properties_to_amqp, reply_for, reply_text};
use crate::session::{
    Binding, BindingDestination, BrokerError, DeliveryEvent, DurabilityWait, ExchangeSpec, Getter,
    Outcome, PendingPublish, PublishRequest, Publisher, QueueSpec, Session, Settlement,
    SubscribeOptions, Subscription, Table, Value, delivery_channel,
};

/// The pseudo-queue of RabbitMQ's direct reply-to.
pub(super) const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Deliveries a consumer without a prefetch limit may have waiting for the connection.
const UNLIMITED_CONSUMER_WINDOW: usize = 1024;

/// Consumers one channel may have.
pub(super) const MAX_CONSUMERS_PER_CHANNEL: usize = 1024;

/// Publishes gathered before they are published as a batch.
const MAX_PENDING_PUBLISHES: usize = 256;

/// Publishes and settlements one transaction may hold before commit.
const MAX_TRANSACTION_ITEMS: usize = 65_536;

/// Why the channel (or the connection) must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fault {
    pub code: ReplyCode,
    pub text: String,
    /// The method that failed (0, 0 for none).
    pub class_id: u16,
    pub method_id: u16,
}

impl Fault {
    pub(super) fn new(code: ReplyCode, message: impl AsRef<str>) -> Fault {
        Fault {
            code,
            text: reply_text(code, message.as_ref()),
            class_id: 0,
            method_id: 0,
        }
    }

    fn from_error(error: &BrokerError) -> Fault {
        let (code, text) = reply_for(error);
        Fault {
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }

    pub(super) fn during(mut self, method: &Method) -> Fault {
        self.class_id = method.class_id();
        self.method_id = method.method_id();
        self
    }
}

impl From<BrokerError> for Fault {
    fn from(error: BrokerError) -> Fault {
        Fault::from_error(&error)
    }
}

/// What the channel needs from its connection while it handles a command.
pub(super) struct Context<'a> {
    pub session: &'a Arc<Session>,
    /// Frames to send, appended in order.
    pub out: &'a mut BytesMut,
    pub frame_max: u32,
    pub events: &'a mpsc::Sender<Event>,
    pub connection: u64,
    /// Whether the client wants `basic.cancel` when a queue goes away.
    pub cancel_notify: bool,
    /// The queue behind this connection's direct reply-to, once it has consumed from it.
    pub reply_queue: &'a mut Option<String>,
}

impl Context<'_> {
    fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let method = method.into();
        if let Err(error) = switchyard_amqp::encode_method(channel, &method, self.out) {
            tracing::error!(method = method.name(), %error, "could not encode a reply");
        }
    }

    /// Sends a method with content; `false` if the content cannot be framed (its header is
    /// larger than a frame).
    fn send_with_content(
        &mut self,
        channel: u16,
        method: impl Into<Method>,
        properties: &switchyard_amqp::BasicProperties,
        body: &Bytes,
    ) -> bool {
        let start = self.out.len();
        let method = method.into();
        let sent = switchyard_amqp::encode_method(channel, &method, self.out).is_ok()
            && switchyard_amqp::encode_content(
                channel,
                BASIC_CLASS_ID,
                properties,
                body,
                self.frame_max,
                self.out,
            )
            .is_ok();
        if !sent {
            self.out.truncate(start);
        }
        sent
    }
}

/// Who delivered a message the client holds unacked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Holder {
    Consumer(u64),
    Getter(String),
}

#[derive(Debug)]
struct Held {
    holder: Holder,
    /// The subscription's (or getter's) own tag.
    tag: u64,
}

#[derive(Debug)]
struct Consumer {
    tag: String,
    subscription: Subscription,
    no_ack: bool,
    pump: JoinHandle<()>,
    /// Cancelled by the client, kept while the client holds deliveries of it to settle.
    cancelled: bool,
}

#[derive(Debug)]
struct Confirms {
    next_seq: u64,
    to_confirmer: mpsc::UnboundedSender<Vec<(u64, PendingPublish)>>,
    confirmer: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Transaction {
    publishes: Vec<(PublishRequest, Option<ReturnCopy>)>,
    settlements: Vec<Method>,
}

/// An open channel.
#[derive(Debug)]
pub(super) struct Channel {
    pub id: u16,
    assembler: ContentAssembler,
    publisher: Publisher,
    durability: DurabilityWait,
    confirms: Option<Confirms>,
    transaction: Option<Transaction>,
    consumers: HashMap<u64, Consumer>,
    next_consumer: u64,
    next_delivery_tag: u64,
    unacked: BTreeMap<u64, Held>,
    getters: HashMap<String, Getter>,
    /// `basic.qos` with `global = false`, and with `global = true`.
    prefetch_per_consumer: u16,
    prefetch_per_channel: u16,
    /// The queue this channel declared last: an empty queue name means it (AMQP's rule).
    last_queue: Option<String>,
    /// Publishes read since the last write, published together (see `publish_pending`).
    pending_publishes: Vec<(PublishRequest, Option<ReturnCopy>)>,
}

impl Channel {
    pub(super) fn open(id: u16, session: &Session, max_message_bytes: u64) -> Channel {
        let publisher = session.publisher();
        Channel {
            id,
            assembler: ContentAssembler::new(id, max_message_bytes),
            durability: publisher.durability(),
            publisher,
            confirms: None,
            transaction: None,
            consumers: HashMap::new(),
            next_consumer: 1,
            next_delivery_tag: 1,
            unacked: BTreeMap::new(),
            getters: HashMap::new(),
            prefetch_per_consumer: 0,
            prefetch_per_channel: 0,
            last_queue: None,
            pending_publishes: Vec::new(),
        }
    }

    pub(super) fn has_pending_publishes(&self) -> bool {
        !self.pending_publishes.is_empty()
    }

    /// Publishes, as one batch, the messages read since the last call: routed and enqueued
    /// queue by queue under one lock each, which is what makes a busy publisher cheap. The
    /// connection calls it before it writes, and the channel before any other method, so
    /// nothing overtakes a publish.
    pub(super) fn publish_pending(&mut self, ctx: &mut Context<'_>) -> Result<(), Fault> {
        if self.pending_publishes.is_empty() {
            return Ok(());
        }
        let (requests, copies): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_publishes)
            .into_iter()
            .unzip();
        let published = self.publisher.publish_batch(requests);
        for (pending, copy) in published.into_iter().zip(copies) {
            self.after_publish(pending, copy, ctx)?;
        }
        Ok(())
    }

    /// A transaction's messages are on disk: `tx.commit-ok`.
    pub(super) fn committed(&mut self, ctx: &mut Context<'_>) -> Result<(), Fault> {
        ctx.send(self.id, TxCommitOk::default());
        Ok(())
    }

    pub(super) fn assembler(&mut self) -> &mut ContentAssembler {
        &mut self.assembler
    }

    /// Ends the channel: consumers stop, and whatever the client held unacked goes back to its
    /// queues (as RabbitMQ requeues a closed channel's unacked messages).
    pub(super) fn close(self) {
        for (_, consumer) in self.consumers {
            consumer.pump.abort();
            consumer.subscription.close();
        }
        for (_, getter) in self.getters {
            getter.close();
        }
        if let Some(confirms) = self.confirms {
            // Answers still owed are dropped with the channel; the messages stay published.
            drop(confirms.to_confirmer);
            confirms.confirmer.abort();
        }
    }

    /// Handles one command. Replies are appended to `ctx.out`.
    pub(super) fn handle(&mut self, command: Command, ctx: &mut Context<'_>) -> Result<(), Fault> {
        let Command {
            method, content, ..
        } = command;
        if !matches!(method, Method::BasicPublish(_)) {
            self.publish_pending(ctx)?;
        }
        let during = (method.class_id(), method.method_id());
        self.dispatch(method, content, ctx).map_err(|mut fault| {
            (fault.class_id, fault.method_id) = during;
            fault
        })
    }

    fn dispatch(
        &mut self,
        method: Method,
        content: Option<switchyard_amqp::Content>,
        ctx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        let id = self.id;
        match method {
            Method::BasicPublish(publish) => {
                let content = content.ok_or_else(|| {
                    Fault::new(ReplyCode::UnexpectedFrame, "basic.publish without content")
                })?;
                self.publish(publish, content, ctx)
            }
            Method::BasicAck(_) | Method::BasicNack(_) | Method::BasicReject(_)
                if self.transaction.is_some() =>
            {
                self.check_settlement(&method)?;
                let transaction = self.transaction.as_mut().expect("checked");
                if transaction.settlements.len() + transaction.publishes.len()
                    >= MAX_TRANSACTION_ITEMS
                {
                    return Err(Fault::new(
                        ReplyCode::PreconditionFailed,
                        format!(
                            "a transaction holds at most {MAX_TRANSACTION_ITEMS} publishes and acknowledgements"
                        ),
                    ));
                }
                transaction.settlements.push(method);
                Ok(())
            }
            Method::BasicAck(ack) => self.settle(ack.delivery_tag, ack.multiple, None),
            Method::BasicNack(nack) => {
                self.settle(nack.delivery_tag, nack.multiple, Some(nack.requeue))
            }
            Method::BasicReject(reject) => {
                self.settle(reject.delivery_tag, false, Some(reject.requeue))
            }
            Method::BasicQos(qos) => {
                if qos.prefetch_size != 0 {
                    return Err(Fault::new(
                        ReplyCode::NotImplemented,
                        "prefetch_size is not supported; use prefetch_count",
                    ));
                }
                if qos.global {
                    self.prefetch_per_channel = qos.prefetch_count;
                } else {
                    self.prefetch_per_consumer = qos.prefetch_count;
                }
                let prefetch = self.prefetch();
                for consumer in self.consumers.values() {
                    if !consumer.no_ack {
                        consumer
                            .subscription
                            .settle(&[Settlement::Prefetch(u32::from(prefetch))]);
                    }
                }
                ctx.send(id, BasicQosOk::default());
                Ok(())
            }
            Method::BasicConsume(consume) => self.consume(consume, ctx),
            Method::BasicCancel(cancel) => {
                if let Some(key) = self.consumer_key(&cancel.consumer_tag) {
                    let consumer = self.consumers.get_mut(&key).expect("found");
                    consumer.pump.abort();
                    consumer.subscription.cancel();
                    consumer.subscription.after_cancel();
                    consumer.cancelled = true;
                    // What it delivered and the client holds stays the client's to settle;
                    // the subscription ends once nothing of it is held.
                    self.close_if_done(key);
                }
                if !cancel.no_wait {
                    ctx.send(
                        id,
                        BasicCancelOk {
                            consumer_tag: cancel.consumer_tag,
                        },
                    );
                }
                Ok(())
            }
            Method::BasicGet(get) => self.get(get, ctx),
            Method::BasicRecover(recover) => {
                self.recover(recover.requeue)?;
                ctx.send(id, BasicRecoverOk::default());
                Ok(())
            }
            Method::BasicRecoverAsync(recover) => self.recover(recover.requeue),
            Method::ConfirmSelect(select) => {
                if self.transaction.is_some() {
                    return Err(Fault::new(
                        ReplyCode::PreconditionFailed,
                        "cannot switch from tx to confirm mode",
                    ));
                }
                if self.confirms.is_none() {
                    let (to_confirmer, from_channel) = mpsc::unbounded_channel();
                    let confirmer = tokio::spawn(confirm_in_order(
                        id,
                        from_channel,
                        self.durability.clone(),
                        ctx.events.clone(),
                    ));
                    self.confirms = Some(Confirms {
                        next_seq: 1,
                        to_confirmer,
                        confirmer,
                    });
                }
                if !select.no_wait {
                    ctx.send(id, ConfirmSelectOk::default());
                }
                Ok(())
            }
            Method::TxSelect(_) => {
                if self.confirms.is_some() {
                    return Err(Fault::new(
                        ReplyCode::PreconditionFailed,
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.transaction.get_or_insert_with(Transaction::default);
                ctx.send(id, TxSelectOk::default());
                Ok(())
            }
            Method::TxCommit(_) | Method::TxRollback(_) if self.transaction.is_none() => {
                Err(Fault::new(
                    ReplyCode::PreconditionFailed,
                    "channel is not transactional",
                ))
            }
            Method::TxRollback(_) => {
                self.transaction = Some(Transaction::default());
                ctx.send(id, TxRollbackOk::default());
                Ok(())
            }
            Method::TxCommit(_) => self.commit(ctx),
            Method::ChannelFlow(flow) => {
                if !flow.active {
                    return Err(Fault::new(
                        ReplyCode::NotImplemented,
                        "channel.flow active=false is not supported; use basic.qos",
                    ));
                }
                ctx.send(id, ChannelFlowOk { active: true });
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::AccessRequest(_) => {
                ctx.send(id, AccessRequestOk { ticket: 1 });
                Ok(())
            }
            Method::ExchangeDeclare(declare) => {
                self.declare_exchange(declare, ctx)?;
                Ok(())
            }
            Method::ExchangeDelete(delete) => {
                check_not_default_exchange(&delete.exchange)?;
                check_not_reserved("exchange", &delete.exchange)?;
                block(|| {
                    ctx.session
                        .delete_exchange(&delete.exchange, delete.if_unused)
                })
                .or_else(ignore_not_found)?;
                if !delete.no_wait {
                    ctx.send(id, ExchangeDeleteOk::default());
                }
                Ok(())
            }
            Method::ExchangeBind(bind) => {
                check_not_default_exchange(&bind.source)?;
                check_not_default_exchange(&bind.destination)?;
                let binding = Binding {
                    source: bind.source,
                    destination: BindingDestination::Exchange(bind.destination),
                    key: bind.routing_key,
                    arguments: bind.arguments,
                };
                block(|| ctx.session.bind(binding))?;
                if !bind.no_wait {
                    ctx.send(id, ExchangeBindOk::default());
                }
                Ok(())
            }
            Method::ExchangeUnbind(unbind) => {
                let binding = Binding {
                    source: unbind.source,
                    destination: BindingDestination::Exchange(unbind.destination),
                    key: unbind.routing_key,
                    arguments: unbind.arguments,
                };
                block(|| ctx.session.unbind(&binding)).or_else(ignore_not_found)?;
                if !unbind.no_wait {
                    ctx.send(id, ExchangeUnbindOk::default());
                }
                Ok(())
            }
            Method::QueueDeclare(declare) => self.declare_queue(declare, ctx),
            Method::QueueBind(bind) => {
                check_not_default_exchange(&bind.exchange)?;
                let queue = self.queue_name(bind.queue)?;
                let binding = Binding {
                    source: bind.exchange,
                    destination: BindingDestination::Queue(queue),
                    key: bind.routing_key,
                    arguments: bind.arguments,
                };
                block(|| ctx.session.bind(binding))?;
                if !bind.no_wait {
                    ctx.send(id, QueueBindOk::default());
                }
                Ok(())
            }
            Method::QueueUnbind(unbind) => {
                check_not_default_exchange(&unbind.exchange)?;
                let queue = self.queue_name(unbind.queue)?;
                let binding = Binding {
                    source: unbind.exchange,
                    destination: BindingDestination::Queue(queue),
                    key: unbind.routing_key,
                    arguments: unbind.arguments,
                };
                block(|| ctx.session.unbind(&binding)).or_else(ignore_not_found)?;
                ctx.send(id, QueueUnbindOk::default());
                Ok(())
            }
            Method::QueuePurge(purge) => {
                let queue = self.queue_name(purge.queue)?;
                let purged = block(|| ctx.session.purge_queue(&queue))?;
                if !purge.no_wait {
                    ctx.send(
                        id,
                        QueuePurgeOk {
                            message_count: saturate(purged),
                        },
                    );
                }
                Ok(())
            }
            Method::QueueDelete(delete) => {
                let queue = self.queue_name(delete.queue)?;
                let deleted = match block(|| {
                    ctx.session
                        .delete_queue(&queue, delete.if_unused, delete.if_empty)
                }) {
                    Ok(messages) => messages,
                    // Deleting a queue that does not exist succeeds, as in RabbitMQ.
                    Err(BrokerError::NotFound { .. }) => 0,
                    Err(error) => return Err(error.into()),
                };
                if let Some(getter) = self.getters.remove(&queue) {
                    getter.close();
                }
                if !delete.no_wait {
                    ctx.send(
                        id,
                        QueueDeleteOk {
                            message_count: saturate(deleted),
                        },
                    );
                }
                Ok(())
            }
            other => Err(Fault::new(
                ReplyCode::CommandInvalid,
                format!(
                    "{} is not a method a client sends on a channel",
                    other.name()
                ),
            )),
        }
    }

    fn prefetch(&self) -> u16 {
        match (self.prefetch_per_consumer, self.prefetch_per_channel) {
            (0, channel) => channel,
            (consumer, 0) => consumer,
            (consumer, channel) => consumer.min(channel),
        }
    }

    /// The active consumer with `tag`.
    fn consumer_key(&self, tag: &str) -> Option<u64> {
        self.consumers
            .iter()
            .find(|(_, c)| c.tag == tag && !c.cancelled)
            .map(|(key, _)| *key)
    }

    /// Ends a cancelled consumer's subscription once the client holds nothing of it.
    fn close_if_done(&mut self, key: u64) {
        let done = self.consumers.get(&key).is_some_and(|c| c.cancelled)
            && !self
                .unacked
                .values()
                .any(|held| held.holder == Holder::Consumer(key));
        if done && let Some(consumer) = self.consumers.remove(&key) {
            consumer.subscription.close();
        }
    }
}

fn check_not_default_exchange(name: &str) -> Result<(), Fault> {
    if name.is_empty() {
        Err(Fault::new(
            ReplyCode::AccessRefused,
            "operation not permitted on the default exchange",
        ))
    } else {
        Ok(())
    }
}

fn check_not_reserved(what: &str, name: &str) -> Result<(), Fault> {
    if name.starts_with("amq.") {
        Err(Fault::new(
            ReplyCode::AccessRefused,
            format!("{what} name {name:?} contains reserved prefix 'amq.*'"),
        ))
    } else {
        Ok(())
    }
}

fn ignore_not_found(error: BrokerError) -> Result<(), BrokerError> {
    match error {
        BrokerError::NotFound { .. } => Ok(()),
        other => Err(other),
    }
}

fn unknown_tag(tag: u64) -> Fault {
    Fault::new(
        ReplyCode::PreconditionFailed,
        format!("unknown delivery tag {tag}"),
    )
}

fn saturate(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Runs a session call that may block (plugins, the disk) off the async worker.
fn block<T>(call: impl FnOnce() -> Result<T, BrokerError>) -> Result<T, BrokerError> {
    tokio::task::block_in_place(call)
}

/// A number no two reply queues of one connection share.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish()
}
