//! Consuming on a channel: consumers and their deliveries, `basic.get`, and settling by the
//! channel's delivery tags (ack, nack, reject, recover) across the consumers and getters that
//! delivered them.

use super::*;

impl Channel {
    pub(super) fn consume(
        &mut self,
        consume: BasicConsume,
        ctx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        if self.consumers.len() >= MAX_CONSUMERS_PER_CHANNEL {
            return Err(Fault::new(
                ReplyCode::PreconditionFailed,
                format!("a channel may have at most {MAX_CONSUMERS_PER_CHANNEL} consumers"),
            ));
        }
        let tag = if consume.consumer_tag.is_empty() {
            format!(
                "amq.ctag-{}-{}-{}",
                ctx.connection, self.id, self.next_consumer
            )
        } else {
            consume.consumer_tag
        };
        if self.consumers.values().any(|c| c.tag == tag) {
            return Err(Fault::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag {tag:?}"),
            ));
        }
        let queue = if consume.queue == REPLY_TO {
            if !consume.no_ack {
                return Err(Fault::new(
                    ReplyCode::PreconditionFailed,
                    "direct reply-to needs a no-ack consumer",
                ));
            }
            self.reply_queue(ctx)?
        } else {
            self.queue_name(consume.queue)?
        };
        let filter = consumer_filter(&consume.arguments)?;
        let prefetch = if consume.no_ack { 0 } else { self.prefetch() };
        let window = match prefetch {
            0 => UNLIMITED_CONSUMER_WINDOW,
            n => usize::from(n),
        };
        let (deliveries, receiver) = delivery_channel(window);
        let options = SubscribeOptions {
            queue,
            consumer_tag: tag.clone(),
            prefetch: u32::from(prefetch),
            no_ack: consume.no_ack,
            exclusive: consume.exclusive,
            filter,
            deliveries,
        };
        let subscription = block(|| ctx.session.subscribe(options))?;
        let key = self.next_consumer;
        self.next_consumer += 1;
        if !consume.no_wait {
            ctx.send(
                self.id,
                BasicConsumeOk {
                    consumer_tag: tag.clone(),
                },
            );
        }
        let pump = tokio::spawn(pump_deliveries(self.id, key, receiver, ctx.events.clone()));
        self.consumers.insert(
            key,
            Consumer {
                tag,
                subscription,
                no_ack: consume.no_ack,
                pump,
                cancelled: false,
            },
        );
        Ok(())
    }

    /// The connection's direct reply-to queue, declared on first use: exclusive to the
    /// connection, named so that a reply published to the default exchange with the rewritten
    /// `reply_to` as its key reaches it.
    pub(super) fn reply_queue(&mut self, ctx: &mut Context<'_>) -> Result<String, Fault> {
        if let Some(queue) = ctx.reply_queue.as_ref() {
            return Ok(queue.clone());
        }
        let spec = QueueSpec {
            name: format!("{REPLY_TO}.{:x}-{:x}", ctx.connection, rand_suffix()),
            durable: false,
            exclusive: true,
            auto_delete: false,
            arguments: Table::new(),
        };
        let queue = block(|| ctx.session.declare_queue(spec, false))?;
        let name = queue.name().to_owned();
        *ctx.reply_queue = Some(name.clone());
        Ok(name)
    }

    /// Writes deliveries for the consumer `key`, or the server's cancel.
    pub(in crate::frontend::amqp) fn deliver(
        &mut self,
        key: u64,
        event: DeliveryEvent,
        ctx: &mut Context<'_>,
    ) {
        let Some(consumer) = self.consumers.get(&key) else {
            return;
        };
        if consumer.cancelled {
            // In flight when the client cancelled: they go back to the queue with the
            // subscription.
            return;
        }
        match event {
            DeliveryEvent::Deliver(batch) => {
                let mut unsendable = Vec::new();
                for delivery in batch {
                    let message = &delivery.queued.message;
                    let tag = self.next_delivery_tag;
                    let deliver = BasicDeliver {
                        consumer_tag: consumer.tag.clone(),
                        delivery_tag: tag,
                        redelivered: delivery.queued.redelivered,
                        exchange: delivery.queued.exchange.to_string(),
                        routing_key: message.routing_key.clone(),
                    };
                    let properties = properties_to_amqp(message);
                    if ctx.send_with_content(self.id, deliver, &properties, &message.body) {
                        self.next_delivery_tag += 1;
                        if !consumer.no_ack {
                            self.unacked.insert(
                                tag,
                                Held {
                                    holder: Holder::Consumer(key),
                                    tag: delivery.tag,
                                },
                            );
                        }
                    } else {
                        unsendable.push(delivery.tag);
                    }
                }
                if !unsendable.is_empty() {
                    consumer.subscription.refuse_unsendable(&unsendable);
                }
                consumer.subscription.dispatch();
            }
            DeliveryEvent::Cancelled(_) => {
                if ctx.cancel_notify {
                    ctx.send(
                        self.id,
                        BasicCancel {
                            consumer_tag: consumer.tag.clone(),
                            no_wait: true,
                        },
                    );
                }
                if let Some(consumer) = self.consumers.remove(&key) {
                    consumer.pump.abort();
                    consumer.subscription.close();
                }
                self.unacked
                    .retain(|_, held| held.holder != Holder::Consumer(key));
            }
        }
    }

    pub(super) fn get(&mut self, get: BasicGet, ctx: &mut Context<'_>) -> Result<(), Fault> {
        let queue = self.queue_name(get.queue)?;
        if !self.getters.contains_key(&queue) {
            if self.getters.len() >= MAX_CONSUMERS_PER_CHANNEL {
                return Err(Fault::new(
                    ReplyCode::PreconditionFailed,
                    format!("a channel may get from at most {MAX_CONSUMERS_PER_CHANNEL} queues"),
                ));
            }
            let getter = block(|| ctx.session.getter(&queue))?;
            self.getters.insert(queue.clone(), getter);
        }
        let getter = &self.getters[&queue];
        let Some(got) = getter.get(get.no_ack) else {
            ctx.send(self.id, BasicGetEmpty::default());
            return Ok(());
        };
        let message = &got.delivery.queued.message;
        let tag = self.next_delivery_tag;
        let get_ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: got.delivery.queued.redelivered,
            exchange: got.delivery.queued.exchange.to_string(),
            routing_key: message.routing_key.clone(),
            message_count: saturate(got.remaining),
        };
        let properties = properties_to_amqp(message);
        if !ctx.send_with_content(self.id, get_ok, &properties, &message.body) {
            getter.settle(&[Settlement::Nack {
                tag: got.delivery.tag,
                multiple: false,
                requeue: false,
            }]);
            return Err(Fault::new(
                ReplyCode::InternalError,
                "the message's properties do not fit a frame",
            ));
        }
        self.next_delivery_tag += 1;
        if !get.no_ack {
            self.unacked.insert(
                tag,
                Held {
                    holder: Holder::Getter(queue),
                    tag: got.delivery.tag,
                },
            );
        }
        Ok(())
    }

    /// Checks a settlement's tag without applying it (a transaction's, until commit).
    pub(super) fn check_settlement(&self, method: &Method) -> Result<(), Fault> {
        let (tag, multiple) = match method {
            Method::BasicAck(ack) => (ack.delivery_tag, ack.multiple),
            Method::BasicNack(nack) => (nack.delivery_tag, nack.multiple),
            Method::BasicReject(reject) => (reject.delivery_tag, false),
            _ => return Ok(()),
        };
        let known = (multiple && tag == 0)
            || self.unacked.contains_key(&tag)
            || (multiple && self.unacked.range(..=tag).next().is_some());
        if known { Ok(()) } else { Err(unknown_tag(tag)) }
    }

    /// Acks (`nack` `None`) or nacks deliveries by the channel's tags.
    pub(super) fn settle(
        &mut self,
        tag: u64,
        multiple: bool,
        nack: Option<bool>,
    ) -> Result<(), Fault> {
        let tags: Vec<u64> = match (multiple, tag) {
            (true, 0) => self.unacked.keys().copied().collect(),
            (true, _) => self.unacked.range(..=tag).map(|(t, _)| *t).collect(),
            (false, _) => vec![tag],
        };
        if tags.is_empty() || (!multiple && !self.unacked.contains_key(&tag)) {
            return Err(unknown_tag(tag));
        }
        // Per holder, the highest of its tags settled. With `multiple`, that one settlement
        // with `multiple` is exact: a holder's tags grow in the order it delivered, as the
        // channel's do, so its unacked tags up to that one are those settled here (and a durable
        // queue records one range instead of one record per message).
        let mut by_holder: BTreeMap<Holder, u64> = BTreeMap::new();
        for channel_tag in tags {
            let Some(held) = self.unacked.remove(&channel_tag) else {
                continue;
            };
            let highest = by_holder.entry(held.holder).or_default();
            *highest = (*highest).max(held.tag);
        }
        for (holder, highest) in by_holder {
            let settlements = [match nack {
                None => Settlement::Ack {
                    tag: highest,
                    multiple,
                },
                Some(requeue) => Settlement::Nack {
                    tag: highest,
                    multiple,
                    requeue,
                },
            }];
            match holder {
                Holder::Consumer(key) => {
                    if let Some(consumer) = self.consumers.get(&key) {
                        consumer.subscription.settle(&settlements);
                    }
                    self.close_if_done(key);
                }
                Holder::Getter(queue) => {
                    if let Some(getter) = self.getters.get(&queue) {
                        getter.settle(&settlements);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn recover(&mut self, requeue: bool) -> Result<(), Fault> {
        if !requeue {
            return Err(Fault::new(
                ReplyCode::NotImplemented,
                "basic.recover with requeue=false is not supported",
            ));
        }
        if self.unacked.is_empty() {
            return Ok(());
        }
        self.settle(0, true, Some(true))
    }
}

/// The consumer filter a `basic.consume` asks for: `x-filter` (the expression) and
/// `x-filter-plugin` (the filter plugin, `selector` when absent).
pub(super) fn consumer_filter(arguments: &Table) -> Result<Option<(String, String)>, Fault> {
    let text = |name: &str| match arguments.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Bytes(bytes)) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
        Some(other) => Err(Fault::new(
            ReplyCode::PreconditionFailed,
            format!("{name} must be a string, not {}", other.type_name()),
        )),
    };
    let expression = text("x-filter")?;
    let plugin = text("x-filter-plugin")?;
    Ok(match (expression, plugin) {
        (Some(expression), plugin) => {
            Some((plugin.unwrap_or_else(|| "selector".into()), expression))
        }
        (None, Some(_)) => {
            return Err(Fault::new(
                ReplyCode::PreconditionFailed,
                "x-filter-plugin needs an x-filter expression",
            ));
        }
        (None, None) => None,
    })
}

/// Forwards a consumer's deliveries to its connection, in order, holding back when the
/// connection is behind (the queue then stops dispatching to it).
pub(super) async fn pump_deliveries(
    channel: u16,
    consumer: u64,
    mut receiver: crate::session::DeliveryReceiver,
    events: mpsc::Sender<Event>,
) {
    while let Some(event) = receiver.recv().await {
        let last = matches!(event, DeliveryEvent::Cancelled(_));
        if events
            .send(Event::Deliveries {
                channel,
                consumer,
                event,
            })
            .await
            .is_err()
            || last
        {
            return;
        }
    }
}
