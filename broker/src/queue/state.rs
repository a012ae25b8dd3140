//! The state behind a queue's lock: where its messages are, the policy decisions about them,
//! and the dispatch loop. See `mod.rs` for the rules.
//!
//! Every message enters through [`QueueState::admit`] and leaves for good through
//! [`QueueState::remove_for_good`] — acked, dropped, dead-lettered, purged or deleted; a durable
//! store hooks those two. Dead letters are only collected here (`dead_letters`): the queue
//! routes them after releasing its lock and then removes them for good, so the source lets go
//! of a message only once the dead-letter target holds it.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::consumer::{Consumer, ConsumerId, ConsumerSpec, Delivery, Settled};
use super::dead_letter::DeathReason;
use super::dedup::Deduplication;
use super::delivery_channel::DeliverySender;
use super::durable::{self, Admit, Durability};
use super::policy::{Overflow, QueuePolicy};
use super::ready::ReadyList;
use super::{Cancellation, QueueContext, QueuedMessage, SubscribeRefusal};
use crate::store::{self, DiskTail, QueueLog, Recovered};

/// How long dead letters that could not be routed or stored wait before they are tried again.
const DEAD_LETTER_RETRY: Duration = Duration::from_secs(1);

/// How far past the head dispatch looks for a message a filtering consumer accepts.
const FILTER_LOOKAHEAD: usize = 256;

/// A queue's sizes, as `queue list` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u32,
    pub ready_bytes: u64,
    /// Delayed messages not visible yet.
    pub delayed: u64,
}

impl QueueCounts {
    #[cfg(test)]
    pub(super) fn with_consumers(mut self, consumers: u32) -> Self {
        self.consumers = consumers;
        self
    }
}

/// What a queue did with a message offered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It holds the message (ready, delayed, or already delivered).
    Accepted,
    /// Its message-id was enqueued within the deduplication window; not enqueued again.
    Duplicate,
    /// A length limit with `reject-publish`/`reject-publish-dlx` refused it.
    Refused,
}

/// How a message becomes ready, which decides whether the length limits apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Published now: a length limit may refuse it (`reject-publish*`) or drop the head.
    Published,
    /// A delayed message coming due, confirmed long ago: where a publish would be refused it
    /// is dead-lettered instead.
    CameDue,
    /// Read back from the log (recovery, paging): already accepted under the limits when it
    /// was published, so no limit applies again, as in RabbitMQ, which applies `x-max-length`
    /// on publish only. A queue recovered above its limit shrinks as consumers take from it.
    Recovered,
}

/// Why a message left a queue for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    /// Acknowledged, or delivered to a no-ack consumer.
    Acked,
    /// Discarded by a policy with no dead-letter exchange to send it to (the reason says
    /// which), or refused at the door.
    Dropped(DeathReason),
    /// Its dead-letter exchange has it.
    DeadLettered,
    Purged,
    /// The queue was deleted.
    Deleted,
}

#[derive(Debug)]
pub(super) struct QueueState {
    context: Arc<QueueContext>,
    policy: QueuePolicy,
    ready: ReadyList,
    next_seq: u64,
    consumers: Vec<Consumer>,
    /// Round-robin position: the consumer tried first by the next dispatch.
    cursor: usize,
    dedup: Option<Deduplication>,
    /// Collected under the lock, routed by the queue after releasing it.
    pub(super) dead_letters: Vec<(QueuedMessage, DeathReason)>,
    /// Dead letters whose routing or write failed for a reason that may pass, held until
    /// `retry_at` and then routed again (review finding 13: they used to be dropped).
    retrying: Vec<(QueuedMessage, DeathReason)>,
    retry_at: Option<Instant>,
    /// The earliest wake-up asked of the timer and not yet run.
    pub(super) scheduled: Option<Instant>,
    /// Since when nobody has used the queue (for `x-expires`); meaningful without consumers.
    last_used: Instant,
    pub(super) deleted: bool,
    /// Present for a durable queue: its log, and the part of it only on disk.
    durable: Option<Durability>,
}

impl QueueState {
    pub(super) fn new(context: Arc<QueueContext>, policy: QueuePolicy) -> Self {
        QueueState {
            context,
            ready: ReadyList::new(policy.max_priority),
            dedup: policy.deduplication_window.map(Deduplication::new),
            policy,
            next_seq: 0,
            consumers: Vec::new(),
            cursor: 0,
            dead_letters: Vec::new(),
            retrying: Vec::new(),
            retry_at: None,
            scheduled: None,
            last_used: Instant::now(),
            deleted: false,
            durable: None,
        }
    }

    /// Makes this a durable queue over `durability`'s log, holding what recovery found: the
    /// first messages in memory, the rest behind a disk tail.
    pub(super) fn restore(
        &mut self,
        mut durability: Durability,
        recovered: Recovered,
        now: Instant,
    ) {
        let Recovered {
            next_seq,
            messages,
            tail,
            skip,
            dedup_ids,
            ..
        } = recovered;
        self.next_seq = next_seq;
        if let Some((position, remaining)) = tail {
            let log = Arc::clone(durability.log());
            durability.set_tail(DiskTail::new(log, position, remaining, Arc::new(skip)));
        }
        self.durable = Some(durability);
        let now_ms = store::now_ms();
        if let Some(dedup) = &mut self.dedup {
            for (id, enqueued_ms) in dedup_ids {
                dedup.record(id.as_bytes(), instant_of(enqueued_ms, now, now_ms), None);
            }
        }
        for recovered in messages {
            let (message, enqueued_ms) = durable::from_recovered(recovered);
            self.take_back(message, enqueued_ms, now, now_ms);
        }
    }

    /// Takes a message read back from the log: its delay and TTL count from when it was
    /// enqueued, not from now.
    fn take_back(
        &mut self,
        mut message: QueuedMessage,
        enqueued_ms: u64,
        now: Instant,
        now_ms: u64,
    ) {
        self.context.memory.add(message.memory_len());
        let enqueued = instant_of(enqueued_ms, now, now_ms);
        let wall = UNIX_EPOCH + Duration::from_millis(enqueued_ms);
        match super::visible_at(&message.message, enqueued, wall) {
            Ok(Some(due)) if due > now => {
                message.not_before = Some(due);
                self.ready.push_delayed(due, message);
            }
            // Visible since `due`: its TTL started then.
            Ok(Some(due)) => {
                self.make_ready(message, due, Arrival::Recovered);
            }
            _ => {
                self.make_ready(message, enqueued, Arrival::Recovered);
            }
        }
    }

    pub(super) fn log(&self) -> Option<&Arc<QueueLog>> {
        self.durable.as_ref().map(Durability::log)
    }

    /// Refills a durable queue's in-memory window from its log.
    fn page_in(&mut self, now: Instant) {
        let Some(durable) = &mut self.durable else {
            return;
        };
        let paged = durable.page_in(self.ready.len(), self.ready.bytes());
        if paged.is_empty() {
            return;
        }
        let now_ms = store::now_ms();
        for (message, enqueued_ms) in paged {
            self.take_back(message, enqueued_ms, now, now_ms);
        }
    }

    pub(super) fn counts(&self) -> QueueCounts {
        let on_disk = self.durable.as_ref().map_or(0, Durability::on_disk);
        QueueCounts {
            ready: self.ready.len() as u64 + on_disk,
            unacked: self.consumers.iter().map(|c| c.unacked.len() as u64).sum(),
            consumers: self.active_consumers().count() as u32,
            ready_bytes: self.ready.bytes(),
            delayed: (self.ready.delayed_len() + self.retrying.len()) as u64,
        }
    }

    /// Takes a published (or dead-lettered) message: deduplicates, numbers it, then holds it
    /// until it is due or makes it ready under the length limits. Also returns the LSN its
    /// publisher's confirm must wait for: its own record's, or for a duplicate the original's.
    pub(super) fn admit(
        &mut self,
        mut message: QueuedMessage,
        now: Instant,
    ) -> (Admission, Option<u64>) {
        let id = message.message.properties.message_id.clone();
        if let (Some(dedup), Some(id)) = (&mut self.dedup, &id)
            && let Some(original) = dedup.duplicate_of(id.as_bytes(), now)
        {
            return (Admission::Duplicate, original);
        }
        message.seq = self.next_seq;
        self.next_seq += 1;
        let delayed = message.not_before.is_some_and(|due| due > now);
        let mut lsn = None;
        if let Some(durable) = &mut self.durable {
            // Only plain FIFO queues page to disk: a priority or length-limited queue, or a
            // delayed message, needs every message at hand.
            let may_page = !delayed
                && self.policy.max_priority.is_none()
                && self.policy.max_length.is_none()
                && self.policy.max_length_bytes.is_none();
            match durable.admit(message, may_page, self.ready.len(), self.ready.bytes()) {
                Admit::Memory(kept, kept_lsn) => (message, lsn) = (kept, kept_lsn),
                Admit::Disk(paged_lsn) => {
                    if let (Some(dedup), Some(id)) = (&mut self.dedup, &id) {
                        dedup.record(id.as_bytes(), now, paged_lsn);
                    }
                    return (Admission::Accepted, paged_lsn);
                }
            }
        }
        self.context.memory.add(message.memory_len());
        let admission = match message.not_before {
            Some(due) if due > now => {
                self.ready.push_delayed(due, message);
                Admission::Accepted
            }
            _ => self.make_ready(message, now, Arrival::Published),
        };
        if let (Some(dedup), Some(id), Admission::Accepted) = (&mut self.dedup, &id, admission) {
            dedup.record(id.as_bytes(), now, lsn);
        }
        (admission, lsn)
    }

    /// Starts a message's life as a ready message: its TTL clock starts, and the length
    /// limits apply as its [`Arrival`] says.
    fn make_ready(
        &mut self,
        mut message: QueuedMessage,
        now: Instant,
        arrival: Arrival,
    ) -> Admission {
        let ttl = match (
            self.policy.message_ttl,
            message.message.properties.expiration,
        ) {
            (Some(queue), Some(own)) => Some(queue.min(std::time::Duration::from_millis(own))),
            (queue, own) => queue.or(own.map(std::time::Duration::from_millis)),
        };
        message.expires_at = ttl.map(|ttl| now + ttl);
        if arrival == Arrival::Recovered {
            self.ready.push_back(message);
            return Admission::Accepted;
        }
        let would_overflow = self.policy.is_over(
            self.ready.len() as u64 + 1,
            self.ready.bytes() + message.body_len(),
        );
        if would_overflow {
            match self.policy.overflow {
                Overflow::DropHead => {}
                Overflow::RejectPublish if arrival == Arrival::Published => {
                    self.remove_for_good(&[message], Removal::Dropped(DeathReason::MaxLen));
                    return Admission::Refused;
                }
                Overflow::RejectPublish => {
                    self.dead_letter(message, DeathReason::MaxLen);
                    return Admission::Refused;
                }
                Overflow::RejectPublishDlx => {
                    self.dead_letter(message, DeathReason::MaxLen);
                    return Admission::Refused;
                }
            }
        }
        self.ready.push_back(message);
        while self
            .policy
            .is_over(self.ready.len() as u64, self.ready.bytes())
        {
            let Some(head) = self.ready.pop_head_for_overflow() else {
                break;
            };
            self.dead_letter(head, DeathReason::MaxLen);
        }
        Admission::Accepted
    }

    /// The one exit: `messages` have left the queue for good (a durable queue records it).
    pub(super) fn remove_for_good(&mut self, messages: &[QueuedMessage], why: Removal) {
        if messages.is_empty() {
            return;
        }
        self.context
            .memory
            .sub(messages.iter().map(QueuedMessage::memory_len).sum());
        if let Some(durable) = &mut self.durable
            && why != Removal::Deleted
        {
            durable.removed(messages);
        }
        tracing::trace!(count = messages.len(), why = ?why, "messages left the queue");
    }

    /// Holds dead letters that could not be routed or written now, to route again after
    /// [`DEAD_LETTER_RETRY`].
    pub(super) fn retry_dead_letters_later(
        &mut self,
        letters: Vec<(QueuedMessage, DeathReason)>,
        now: Instant,
    ) {
        if letters.is_empty() || self.deleted {
            let held: Vec<QueuedMessage> = letters.into_iter().map(|(m, _)| m).collect();
            self.remove_for_good(&held, Removal::Deleted);
            return;
        }
        tracing::warn!(
            count = letters.len(),
            retry_in = ?DEAD_LETTER_RETRY,
            "dead letters could not be routed or stored; kept, to be tried again"
        );
        self.retrying.extend(letters);
        self.retry_at.get_or_insert(now + DEAD_LETTER_RETRY);
    }

    /// Sends a message to the dead-letter exchange, or drops it when the queue has none.
    fn dead_letter(&mut self, message: QueuedMessage, reason: DeathReason) {
        if self.policy.dead_letter_exchange.is_some() {
            self.dead_letters.push((message, reason));
            return;
        }
        if reason == DeathReason::DeliveryLimit {
            tracing::warn!(
                seq = message.seq,
                deliveries = message.delivery_count,
                "message dropped: delivered x-delivery-limit times and the queue has no dead-letter exchange"
            );
        }
        self.remove_for_good(&[message], Removal::Dropped(reason));
    }

    /// Puts returned messages back at the head, in their original order, marked redelivered —
    /// except those delivered `x-delivery-limit` times, which are dead-lettered.
    pub(super) fn requeue_front(&mut self, messages: Vec<QueuedMessage>) {
        let limit = self.policy.delivery_limit;
        let (spent, returned): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .partition(|m| limit.is_some_and(|limit| m.delivery_count >= limit));
        for message in spent {
            self.dead_letter(message, DeathReason::DeliveryLimit);
        }
        for mut message in returned.into_iter().rev() {
            message.redelivered = true;
            self.ready.push_front(message);
        }
    }

    /// Acks: the settled messages leave for good. Returns how many tags were known.
    pub(super) fn ack(&mut self, id: ConsumerId, tag: u64, multiple: bool) -> usize {
        let settled = self.settle(id, tag, multiple);
        self.remove_for_good(&settled.messages, Removal::Acked);
        settled.messages.len() + settled.timed_out
    }

    /// Nacks: requeued, or dead-lettered with reason `rejected`. Returns how many tags were
    /// known.
    pub(super) fn nack(
        &mut self,
        id: ConsumerId,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> usize {
        let settled = self.settle(id, tag, multiple);
        let known = settled.messages.len() + settled.timed_out;
        if requeue {
            self.requeue_front(settled.messages);
        } else {
            for message in settled.messages {
                self.dead_letter(message, DeathReason::Rejected);
            }
        }
        known
    }

    fn settle(&mut self, id: ConsumerId, tag: u64, multiple: bool) -> Settled {
        match self.consumers.iter_mut().find(|c| c.id == id) {
            Some(consumer) => consumer.settle(tag, multiple),
            None => Settled::default(),
        }
    }

    /// Consumers not cancelled by their clients (getters are not consumers).
    fn active_consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.consumers
            .iter()
            .filter(|c| !c.cancelled && !c.spec.getter)
    }

    /// Whether a consumer, `exclusive` or not, may subscribe now.
    pub(super) fn may_subscribe(&self, exclusive: bool) -> Result<(), SubscribeRefusal> {
        if self.active_consumers().any(|c| c.spec.exclusive) {
            return Err(SubscribeRefusal::HeldExclusively);
        }
        if exclusive && self.active_consumers().next().is_some() {
            return Err(SubscribeRefusal::HasConsumers);
        }
        Ok(())
    }

    /// Marks a consumer cancelled (see [`super::Queue::cancel`]).
    pub(super) fn cancel_consumer(&mut self, id: ConsumerId, now: Instant) {
        if let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) {
            consumer.cancelled = true;
            self.touch(now);
        }
    }

    pub(super) fn add_consumer(
        &mut self,
        id: ConsumerId,
        spec: ConsumerSpec,
        events: DeliverySender,
    ) {
        self.consumers.push(Consumer::new(id, spec, events));
    }

    pub(super) fn set_prefetch(&mut self, id: ConsumerId, prefetch: u32) {
        if let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) {
            consumer.spec.prefetch = prefetch;
        }
    }

    /// Removes a consumer; its unacked messages go back to the queue.
    pub(super) fn remove_consumer(&mut self, id: ConsumerId, now: Instant) {
        let Some(index) = self.consumers.iter().position(|c| c.id == id) else {
            return;
        };
        let mut consumer = self.consumers.remove(index);
        if self.cursor > index {
            self.cursor -= 1;
        }
        self.requeue_front(consumer.take_unacked());
        self.touch(now);
    }

    /// Marks the queue used now (for `x-expires`).
    pub(super) fn touch(&mut self, now: Instant) {
        self.last_used = now;
    }

    /// Drops every ready and delayed message; returns how many.
    pub(super) fn purge(&mut self) -> u64 {
        let all = self.ready.take_all();
        self.remove_for_good(&all, Removal::Purged);
        let on_disk = self.durable.as_mut().map_or(0, Durability::purge_tail);
        all.len() as u64 + on_disk
    }

    /// Marks the queue deleted, cancels every consumer and lets go of every message.
    pub(super) fn delete(&mut self) {
        self.deleted = true;
        let mut held = self.ready.take_all();
        held.extend(self.retrying.drain(..).map(|(message, _)| message));
        for mut consumer in self.consumers.drain(..) {
            consumer.cancel(Cancellation::QueueDeleted);
            held.extend(consumer.take_unacked());
        }
        self.remove_for_good(&held, Removal::Deleted);
    }

    pub(super) fn peek_ready(&self, max: usize) -> Vec<QueuedMessage> {
        self.ready.iter().take(max).cloned().collect()
    }

    /// Does what is due at `now`: delayed messages become ready, expired ones leave, timed-out
    /// deliveries come back. Returns whether the queue has been unused for `x-expires`.
    pub(super) fn run_due(&mut self, now: Instant) -> bool {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.dead_letters.append(&mut self.retrying);
        }
        for message in self.ready.take_due(now) {
            self.make_ready(message, now, Arrival::CameDue);
        }
        self.expire(now);
        if let Some(timeout) = self.policy.consumer_timeout {
            let mut returned = Vec::new();
            for consumer in &mut self.consumers {
                returned.extend(consumer.take_timed_out(now, timeout));
            }
            returned.sort_by_key(|m| m.seq);
            self.requeue_front(returned);
        }
        let unused = self.unused_until().is_some_and(|until| until <= now);
        if unused {
            // The host deletes the queue; should it not (a consumer came meanwhile), the
            // clock starts again rather than waking the timer in a loop.
            self.touch(now);
        }
        unused
    }

    fn unused_until(&self) -> Option<Instant> {
        let expires = self.policy.expires?;
        self.active_consumers()
            .next()
            .is_none()
            .then(|| self.last_used + expires)
    }

    fn expire(&mut self, now: Instant) {
        for message in self.ready.take_expired(now) {
            self.dead_letter(message, DeathReason::Expired);
        }
    }

    /// When the timer should next wake this queue.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.ready.next_due();
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        consider(self.ready.next_expiry());
        consider(self.retry_at);
        if let Some(timeout) = self.policy.consumer_timeout {
            for consumer in &self.consumers {
                consider(consumer.oldest_delivery().map(|at| at + timeout));
            }
        }
        consider(self.unused_until());
        next
    }

    /// Whether this queue can have deadlines at all (so the hot path can skip asking).
    pub(super) fn may_have_deadlines(&self) -> bool {
        self.policy.has_deadlines()
            || self.retry_at.is_some()
            || self.ready.delayed_len() > 0
            || self.ready.next_expiry().is_some()
    }

    /// Delivers ready messages to consumers with credit, round-robin, until one runs out.
    /// Expired messages met on the way are removed, never delivered.
    /// A durable queue records the deliveries (written out, not fsynced) before they leave.
    pub(super) fn dispatch(&mut self, now: Instant) {
        self.expire(now);
        self.page_in(now);
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            if !self.deliver_one(now) {
                break;
            }
            if self.ready.is_empty() {
                self.page_in(now);
            }
        }
        if let Some(durable) = &mut self.durable {
            durable.flush_delivered();
        }
        for consumer in &mut self.consumers {
            consumer.send_outbox();
        }
    }

    /// Hands the next ready message to the getter `id` (AMQP's `basic.get`), acknowledged at
    /// once when `no_ack`; with it, how many ready messages are left. Expired messages met on
    /// the way are removed, as dispatch removes them. `None` when nothing is ready (or `id` is
    /// not a consumer of this queue).
    pub(super) fn get(
        &mut self,
        id: ConsumerId,
        no_ack: bool,
        now: Instant,
    ) -> Option<(Delivery, u64)> {
        let index = self.consumers.iter().position(|c| c.id == id)?;
        self.expire(now);
        self.touch(now);
        let message = loop {
            self.page_in(now);
            let message = self.ready.remove(0)?;
            if message.is_expired(now) {
                self.dead_letter(message, DeathReason::Expired);
                continue;
            }
            break message;
        };
        if no_ack {
            self.remove_for_good(std::slice::from_ref(&message), Removal::Acked);
        } else if let Some(durable) = &mut self.durable {
            durable.delivered(&message);
            durable.flush_delivered();
        }
        self.consumers[index].deliver_as(message, now, no_ack);
        let delivery = self.consumers[index].take_outbox().pop()?;
        self.page_in(now);
        let on_disk = self.durable.as_ref().map_or(0, Durability::on_disk);
        Some((delivery, self.ready.len() as u64 + on_disk))
    }

    /// Finds the next consumer (from the cursor) with credit that accepts one of the first
    /// messages, and delivers it. Returns false when nobody can take anything.
    fn deliver_one(&mut self, now: Instant) -> bool {
        let count = self.consumers.len();
        // With a single active consumer, only the oldest subscriber that is still consuming
        // may receive; the others wait their turn.
        let active = self
            .policy
            .single_active_consumer
            .then(|| {
                self.consumers
                    .iter()
                    .position(|c| !c.cancelled && !c.spec.getter)
            })
            .flatten();
        for offset in 0..count {
            let index = (self.cursor + offset) % count;
            if active.is_some_and(|active| active != index) {
                continue;
            }
            let consumer = &mut self.consumers[index];
            if !consumer.has_credit() {
                continue;
            }
            let window = self.ready.len().min(FILTER_LOOKAHEAD);
            let Some(position) = self
                .ready
                .iter()
                .take(window)
                .position(|message| consumer.accepts(message))
            else {
                continue;
            };
            let message = self.ready.remove(position).expect("position within ready");
            if message.is_expired(now) {
                // A per-message TTL shorter than the head's: caught here instead.
                self.dead_letter(message, DeathReason::Expired);
                return true;
            }
            if self.consumers[index].spec.no_ack {
                self.remove_for_good(std::slice::from_ref(&message), Removal::Acked);
            } else if let Some(durable) = &mut self.durable {
                durable.delivered(&message);
            }
            self.consumers[index].deliver(message, now);
            self.cursor = (index + 1) % count;
            return true;
        }
        false
    }
}

/// The monotonic instant of a wall-clock time (ms since the epoch), given both clocks now.
fn instant_of(at_ms: u64, now: Instant, now_ms: u64) -> Instant {
    let age = Duration::from_millis(now_ms.saturating_sub(at_ms));
    now.checked_sub(age).unwrap_or(now)
}
