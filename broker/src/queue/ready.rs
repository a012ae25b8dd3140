//! [`ReadyList`]: the messages a queue holds that are not out with a consumer — the ready ones,
//! one FIFO per priority level, and the delayed ones, ordered by due time.
//!
//! Delivery order: the highest non-empty priority level first, FIFO within a level. A queue
//! without `x-max-priority` has one level. Delayed messages are invisible (not delivered, not
//! counted as ready, not subject to length limits) until [`ReadyList::take_due`] moves them in;
//! the queue's owner asks [`ReadyList::next_due`] when to wake, so millions of delayed messages
//! cost one timer entry per queue, not one each.
//!
//! Expiry is checked at the head of each level (as RabbitMQ does): a message with a shorter
//! per-message TTL behind a longer-lived one is removed when it reaches the head or when
//! dispatch picks it, whichever comes first — never delivered either way.
//!
//! This type only stores; deciding what leaves the queue for good is `QueueState`'s job.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::QueuedMessage;

#[derive(Debug)]
pub(super) struct ReadyList {
    /// Index = priority level; the highest index is delivered first.
    levels: Vec<VecDeque<QueuedMessage>>,
    len: usize,
    bytes: u64,
    /// Delayed messages by (due time, sequence number).
    delayed: BTreeMap<(Instant, u64), QueuedMessage>,
}

impl ReadyList {
    /// A list with levels `0..=max_priority` (one level without priorities).
    pub(super) fn new(max_priority: Option<u8>) -> Self {
        let levels = usize::from(max_priority.unwrap_or(0)) + 1;
        ReadyList {
            levels: (0..levels).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
            delayed: BTreeMap::new(),
        }
    }

    fn level(&self, message: &QueuedMessage) -> usize {
        usize::from(message.message.properties.priority).min(self.levels.len() - 1)
    }

    /// Ready messages.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of ready messages.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Delayed messages, not yet visible.
    pub(super) fn delayed_len(&self) -> usize {
        self.delayed.len()
    }

    /// Appends a ready message at the tail of its level.
    pub(super) fn push_back(&mut self, message: QueuedMessage) {
        let level = self.level(&message);
        self.len += 1;
        self.bytes += message.body_len();
        self.levels[level].push_back(message);
    }

    /// Puts a returned message at the head of its level, to be delivered next within it.
    pub(super) fn push_front(&mut self, message: QueuedMessage) {
        let level = self.level(&message);
        self.len += 1;
        self.bytes += message.body_len();
        self.levels[level].push_front(message);
    }

    /// Holds a message until `due`.
    pub(super) fn push_delayed(&mut self, due: Instant, message: QueuedMessage) {
        self.delayed.insert((due, message.seq), message);
    }

    /// When the earliest delayed message is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.delayed.keys().next().map(|(due, _)| *due)
    }

    /// Removes the delayed messages due at `now`, earliest first.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<QueuedMessage> {
        let mut due = Vec::new();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }

    /// The ready messages in delivery order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.levels.iter().rev().flatten()
    }

    /// Removes the message at `position` in delivery order.
    pub(super) fn remove(&mut self, mut position: usize) -> Option<QueuedMessage> {
        for level in self.levels.iter_mut().rev() {
            if position < level.len() {
                let message = level.remove(position)?;
                self.len -= 1;
                self.bytes -= message.body_len();
                return Some(message);
            }
            position -= level.len();
        }
        None
    }

    /// Removes the message overflow drops first: the oldest of the lowest non-empty level,
    /// the one furthest from delivery.
    pub(super) fn pop_head_for_overflow(&mut self) -> Option<QueuedMessage> {
        let level = self.levels.iter_mut().find(|l| !l.is_empty())?;
        let message = level.pop_front()?;
        self.len -= 1;
        self.bytes -= message.body_len();
        Some(message)
    }

    /// Removes the expired messages at the head of every level.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<QueuedMessage> {
        let mut expired = Vec::new();
        for level in &mut self.levels {
            while level.front().is_some_and(|m| m.is_expired(now)) {
                let message = level.pop_front().expect("front exists");
                self.len -= 1;
                self.bytes -= message.body_len();
                expired.push(message);
            }
        }
        expired
    }

    /// When the earliest head of a level expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|l| l.front().and_then(|m| m.expires_at))
            .min()
    }

    /// Removes every message, ready and delayed.
    pub(super) fn take_all(&mut self) -> Vec<QueuedMessage> {
        let mut all: Vec<QueuedMessage> =
            self.levels.iter_mut().flat_map(|l| l.drain(..)).collect();
        all.extend(std::mem::take(&mut self.delayed).into_values());
        self.len = 0;
        self.bytes = 0;
        all
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::message::Message;

    fn message(seq: u64, priority: u8) -> QueuedMessage {
        let mut inner = Message::new(seq.to_string(), "b");
        inner.properties.priority = priority;
        let mut queued = QueuedMessage::new(Arc::from(""), Arc::new(inner));
        queued.seq = seq;
        queued
    }

    fn order(list: &ReadyList) -> Vec<u64> {
        list.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn higher_priorities_come_first_fifo_within_a_level() {
        let mut list = ReadyList::new(Some(5));
        for (seq, priority) in [(1, 0), (2, 5), (3, 9), (4, 2), (5, 5)] {
            list.push_back(message(seq, priority));
        }
        assert_eq!(order(&list), [2, 3, 5, 4, 1], "9 counts as the maximum, 5");
        list.push_front(message(6, 2));
        assert_eq!(order(&list), [2, 3, 5, 6, 4, 1]);
        assert_eq!(list.remove(3).unwrap().seq, 6);
        assert_eq!(list.pop_head_for_overflow().unwrap().seq, 1);
        assert_eq!((list.len(), list.bytes()), (4, 4));
    }

    #[test]
    fn without_max_priority_everything_is_one_fifo() {
        let mut list = ReadyList::new(None);
        for (seq, priority) in [(1, 0), (2, 5), (3, 1)] {
            list.push_back(message(seq, priority));
        }
        assert_eq!(order(&list), [1, 2, 3]);
    }

    #[test]
    fn delayed_messages_surface_in_due_order_and_only_when_due() {
        let mut list = ReadyList::new(None);
        let now = Instant::now();
        for seq in 0..100_000u64 {
            let due = now + Duration::from_millis(100_000 - seq);
            list.push_delayed(due, message(seq, 0));
        }
        assert_eq!(list.len(), 0);
        assert_eq!(list.next_due(), Some(now + Duration::from_millis(1)));
        let due = list.take_due(now + Duration::from_millis(3));
        assert_eq!(
            due.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [99_999, 99_998, 99_997]
        );
        assert_eq!(list.delayed_len(), 99_997);
    }

    #[test]
    fn only_expired_heads_are_taken() {
        let mut list = ReadyList::new(None);
        let now = Instant::now();
        let mut first = message(1, 0);
        first.expires_at = Some(now);
        let mut second = message(2, 0);
        second.expires_at = Some(now + Duration::from_secs(60));
        let mut third = message(3, 0);
        third.expires_at = Some(now);
        for m in [first, second, third] {
            list.push_back(m);
        }
        let expired = list.take_expired(now);
        assert_eq!(expired.iter().map(|m| m.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(list.next_expiry(), Some(now + Duration::from_secs(60)));
    }
}
