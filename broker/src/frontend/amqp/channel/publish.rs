//! Publishing on a channel: messages gathered and published as a batch, `basic.return` for
//! unroutable mandatory ones, publisher confirms in order once each message is final, and
//! transactions.

use super::*;

/// A mandatory message's copy, kept to send back in `basic.return`.
#[derive(Debug)]
pub(super) struct ReturnCopy {
    pub(super) exchange: String,
    routing_key: String,
    properties: switchyard_amqp::BasicProperties,
    body: Bytes,
}

impl Channel {
    pub(super) fn publish(
        &mut self,
        publish: BasicPublish,
        content: switchyard_amqp::Content,
        ctx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        if publish.immediate {
            return Err(Fault::new(
                ReplyCode::NotImplemented,
                "immediate=true is not supported (RabbitMQ dropped it too)",
            ));
        }
        let mut properties = content.properties;
        if properties.reply_to.as_deref() == Some(REPLY_TO) {
            match ctx.reply_queue.as_ref() {
                Some(queue) => properties.reply_to = Some(queue.clone()),
                None => {
                    return Err(Fault::new(
                        ReplyCode::PreconditionFailed,
                        "fast reply consumer does not exist: consume from amq.rabbitmq.reply-to (no-ack) before publishing with it",
                    ));
                }
            }
        }
        let copy = publish.mandatory.then(|| ReturnCopy {
            exchange: publish.exchange.clone(),
            routing_key: publish.routing_key.clone(),
            properties: properties.clone(),
            body: content.body.clone(),
        });
        let message = message_from_amqp(publish.routing_key, properties, content.body)?;
        let request = PublishRequest {
            exchange: publish.exchange,
            message,
            mandatory: publish.mandatory,
        };
        if let Some(transaction) = &mut self.transaction {
            if transaction.settlements.len() + transaction.publishes.len() >= MAX_TRANSACTION_ITEMS
            {
                return Err(Fault::new(
                    ReplyCode::PreconditionFailed,
                    format!(
                        "a transaction holds at most {MAX_TRANSACTION_ITEMS} publishes and acknowledgements"
                    ),
                ));
            }
            transaction.publishes.push((request, copy));
            return Ok(());
        }
        if self.pending_publishes.len() >= MAX_PENDING_PUBLISHES {
            self.publish_pending(ctx)?;
        }
        self.pending_publishes.push((request, copy));
        Ok(())
    }

    /// Returns an unroutable mandatory message, closes the channel for refusals AMQP treats as
    /// errors, and queues the confirm.
    pub(super) fn after_publish(
        &mut self,
        pending: PendingPublish,
        copy: Option<ReturnCopy>,
        ctx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        match &pending.outcome {
            Outcome::Returned => {
                if let Some(copy) = copy {
                    self.send_return(copy, ctx);
                }
            }
            Outcome::Refused(error) => match error {
                // What RabbitMQ answers with a channel error, confirms or not.
                BrokerError::NotFound { .. }
                | BrokerError::NotAllowed { .. }
                | BrokerError::PreconditionFailed { .. }
                | BrokerError::InvalidArgument { .. }
                | BrokerError::MessageTooLarge { .. } => return Err(Fault::from_error(error)),
                // A refusal of this one message: a nack under confirms, else only logged.
                _ if self.confirms.is_none() => {
                    tracing::debug!(channel = self.id, %error, "unconfirmed publish refused");
                }
                _ => {}
            },
            Outcome::Accepted => {}
        }
        if let Some(confirms) = &mut self.confirms {
            let seq = confirms.next_seq;
            confirms.next_seq += 1;
            let _ = confirms.to_confirmer.send(vec![(seq, pending)]);
        }
        Ok(())
    }

    /// Sends the confirms the confirmer found final, in order: each run of acks (or nacks) as
    /// one frame with `multiple`, which is exact because every earlier sequence number has
    /// been answered already.
    pub(in crate::frontend::amqp) fn confirmed(
        &mut self,
        answers: Vec<(u64, bool)>,
        ctx: &mut Context<'_>,
    ) {
        let mut runs: Vec<(u64, bool)> = Vec::new();
        for (seq, accepted) in answers {
            match runs.last_mut() {
                Some((last, verdict)) if *verdict == accepted => *last = seq,
                _ => runs.push((seq, accepted)),
            }
        }
        for (last, accepted) in runs {
            if accepted {
                ctx.send(
                    self.id,
                    BasicAck {
                        delivery_tag: last,
                        multiple: true,
                    },
                );
            } else {
                ctx.send(
                    self.id,
                    BasicNack {
                        delivery_tag: last,
                        multiple: true,
                        requeue: false,
                    },
                );
            }
        }
    }

    /// Publishes and settles what the transaction holds, and answers `commit-ok` once its
    /// messages are on disk where they must be.
    pub(super) fn commit(&mut self, ctx: &mut Context<'_>) -> Result<(), Fault> {
        let transaction = std::mem::take(self.transaction.as_mut().expect("checked"));
        let (requests, copies): (Vec<_>, Vec<_>) = transaction.publishes.into_iter().unzip();
        let published = self.publisher.publish_batch(requests);
        for settlement in transaction.settlements {
            match settlement {
                Method::BasicAck(ack) => self.settle(ack.delivery_tag, ack.multiple, None)?,
                Method::BasicNack(nack) => {
                    self.settle(nack.delivery_tag, nack.multiple, Some(nack.requeue))?
                }
                Method::BasicReject(reject) => {
                    self.settle(reject.delivery_tag, false, Some(reject.requeue))?
                }
                _ => {}
            }
        }
        let mut durable = Vec::with_capacity(published.len());
        for (pending, copy) in published.into_iter().zip(copies) {
            match (&pending.outcome, copy) {
                (Outcome::Returned, Some(copy)) => self.send_return(copy, ctx),
                (Outcome::Refused(error), _) => {
                    tracing::debug!(channel = self.id, %error, "transactional publish refused");
                }
                _ => {}
            }
            durable.push(pending);
        }
        let durability = self.durability.clone();
        let events = ctx.events.clone();
        let channel = self.id;
        tokio::spawn(async move {
            durability.settle(durable.iter_mut()).await;
            let _ = events.send(Event::Committed { channel }).await;
        });
        Ok(())
    }

    pub(super) fn send_return(&self, copy: ReturnCopy, ctx: &mut Context<'_>) {
        let returned = BasicReturn {
            reply_code: ReplyCode::NoRoute.code(),
            reply_text: "NO_ROUTE".into(),
            exchange: copy.exchange,
            routing_key: copy.routing_key,
        };
        ctx.send_with_content(self.id, returned, &copy.properties, &copy.body);
    }
}

/// Waits for each publish to be final (on disk where it must be), in order, and tells the
/// connection which to ack and which to nack.
pub(super) async fn confirm_in_order(
    channel: u16,
    mut from_channel: mpsc::UnboundedReceiver<Vec<(u64, PendingPublish)>>,
    durability: DurabilityWait,
    events: mpsc::Sender<Event>,
) {
    let mut received = Vec::new();
    while from_channel.recv_many(&mut received, 256).await > 0 {
        let mut batch: Vec<(u64, PendingPublish)> = received.drain(..).flatten().collect();
        durability
            .settle(batch.iter_mut().map(|(_, pending)| pending))
            .await;
        let answers = batch
            .into_iter()
            .map(|(seq, pending)| {
                let accepted = matches!(pending.outcome, Outcome::Accepted | Outcome::Returned);
                (seq, accepted)
            })
            .collect();
        if events
            .send(Event::Confirmed { channel, answers })
            .await
            .is_err()
        {
            return;
        }
    }
}
