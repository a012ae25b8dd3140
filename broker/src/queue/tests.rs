//! Queue behaviour without any network: dispatch, credit, acks and redelivery.

use std::sync::Arc;

use super::*;

/// Records dead letters instead of routing them.
#[derive(Debug, Default)]
struct RecordingHost {
    letters: parking_lot::Mutex<Vec<(String, Message)>>,
}

impl QueueHost for RecordingHost {
    fn dead_letter(
        &self,
        exchange: &str,
        message: Message,
    ) -> Result<Vec<(Arc<QueueLog>, u64)>, ()> {
        self.letters.lock().push((exchange.to_owned(), message));
        Ok(Vec::new())
    }

    fn wait_durable(&self, _logs: &[(Arc<QueueLog>, u64)]) -> bool {
        true
    }

    fn queue_unused(&self, _queue: &Queue) {}
}

fn queue_with(arguments: &[(&str, &str)], host: &Arc<RecordingHost>) -> Arc<Queue> {
    let arguments: Table = arguments.iter().copied().collect();
    let policy = QueuePolicy::parse(&arguments).unwrap();
    let host: Arc<dyn QueueHost> = host.clone();
    Queue::new(
        "q".into(),
        1,
        QueueProperties {
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments,
        },
        policy,
        Arc::new(QueueContext::new(Arc::downgrade(&host))),
    )
}

fn queue() -> Arc<Queue> {
    queue_with(&[], &Arc::default())
}

fn reasons(host: &RecordingHost) -> Vec<(String, String)> {
    host.letters
        .lock()
        .iter()
        .map(|(_, m)| {
            let reason = m
                .headers
                .get_str("x-last-death-reason")
                .unwrap_or_default()
                .to_owned();
            (String::from_utf8_lossy(&m.body).into_owned(), reason)
        })
        .collect()
}

fn message(key: &str) -> QueuedMessage {
    QueuedMessage::new(Arc::from("ex"), Arc::new(Message::new(key, key.to_owned())))
}

/// A getter (AMQP's basic.get) of the queue.
fn getter(queue: &Queue) -> (ConsumerId, DeliveryReceiver) {
    let (tx, rx) = delivery_channel(3);
    let spec = ConsumerSpec {
        tag: "g".into(),
        prefetch: 0,
        no_ack: false,
        exclusive: false,
        filter: None,
        getter: true,
    };
    (queue.subscribe(spec, tx).unwrap(), rx)
}

fn got(queue: &Queue, getter: ConsumerId, no_ack: bool) -> Option<(u64, String, u64)> {
    queue.get(getter, no_ack).map(|(delivery, remaining)| {
        (
            delivery.tag,
            delivery.queued.message.routing_key.clone(),
            remaining,
        )
    })
}

fn consumer(queue: &Queue, prefetch: u32, no_ack: bool) -> (ConsumerId, DeliveryReceiver) {
    let (tx, rx) = delivery_channel(63);
    let spec = ConsumerSpec {
        tag: "c".into(),
        prefetch,
        no_ack,
        exclusive: false,
        filter: None,
        getter: false,
    };
    (queue.subscribe(spec, tx).unwrap(), rx)
}

fn delivered(rx: &mut DeliveryReceiver) -> Vec<(u64, String, bool, u32)> {
    let mut out = Vec::new();
    while let Some(event) = rx.try_recv() {
        if let DeliveryEvent::Deliver(batch) = event {
            out.extend(batch.into_iter().map(|d| {
                (
                    d.tag,
                    d.queued.message.routing_key.clone(),
                    d.queued.redelivered,
                    d.queued.delivery_count,
                )
            }));
        }
    }
    out
}

fn keys(deliveries: &[(u64, String, bool, u32)]) -> Vec<&str> {
    deliveries.iter().map(|d| d.1.as_str()).collect()
}

#[test]
fn consumers_share_messages_round_robin() {
    let q = queue();
    let (_, mut a) = consumer(&q, 0, false);
    let (_, mut b) = consumer(&q, 0, false);
    q.enqueue(["1", "2", "3", "4"].map(message));
    assert_eq!(keys(&delivered(&mut a)), ["1", "3"]);
    assert_eq!(keys(&delivered(&mut b)), ["2", "4"]);
}

#[test]
fn prefetch_bounds_unacked_and_acks_release_more() {
    let q = queue();
    let (id, mut rx) = consumer(&q, 2, false);
    q.enqueue(["1", "2", "3", "4", "5"].map(message));
    let first = delivered(&mut rx);
    assert_eq!(keys(&first), ["1", "2"]);
    assert_eq!(q.counts().ready, 3);
    assert_eq!(q.ack(id, first[1].0, true), 2, "multiple acks both");
    assert_eq!(keys(&delivered(&mut rx)), ["3", "4"]);
    assert_eq!(q.ack(id, 999, false), 0, "unknown tag");
    assert_eq!(q.counts().unacked, 2);
}

#[test]
fn nack_with_requeue_redelivers_first_in_order_and_counts_deliveries() {
    let q = queue();
    let (id, mut rx) = consumer(&q, 2, false);
    q.enqueue(["1", "2", "3"].map(message));
    assert_eq!(delivered(&mut rx).len(), 2, "prefetch 2");
    q.set_prefetch(id, 0);
    let third = delivered(&mut rx);
    assert_eq!(keys(&third), ["3"]);
    assert_eq!(
        q.nack(id, third[0].0, true, true),
        3,
        "multiple settles every earlier tag"
    );
    let again = delivered(&mut rx);
    assert_eq!(keys(&again), ["1", "2", "3"]);
    assert!(again[..2].iter().all(|d| d.2 && d.3 == 1), "{again:?}");
}

#[test]
fn nack_without_requeue_drops_and_cancel_requeues_unacked() {
    let q = queue();
    let (id, mut rx) = consumer(&q, 0, false);
    q.enqueue(["1", "2"].map(message));
    let got = delivered(&mut rx);
    assert_eq!(q.nack(id, got[0].0, false, false), 1);
    q.unsubscribe(id);
    let counts = q.counts();
    assert_eq!((counts.ready, counts.unacked, counts.consumers), (1, 0, 0));
    let (_, mut other) = consumer(&q, 0, false);
    let again = delivered(&mut other);
    assert_eq!(keys(&again), ["2"]);
    assert!(again[0].2, "redelivered");
}

#[test]
fn no_ack_consumers_take_messages_for_good() {
    let q = queue();
    let (_, mut rx) = consumer(&q, 0, true);
    q.enqueue(["1", "2"].map(message));
    assert_eq!(delivered(&mut rx).len(), 2);
    assert_eq!(q.counts(), QueueCounts::default().with_consumers(1));
}

#[test]
fn deleting_a_queue_cancels_its_consumers() {
    let q = queue();
    let (_, mut rx) = consumer(&q, 0, false);
    q.enqueue([message("1")]);
    assert_eq!(q.delete(), 1);
    let events: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
    assert!(matches!(
        events.last(),
        Some(DeliveryEvent::Cancelled(Cancellation::QueueDeleted))
    ));
    let (tx, _rx) = delivery_channel(3);
    let spec = ConsumerSpec {
        tag: "late".into(),
        prefetch: 0,
        no_ack: false,
        exclusive: false,
        filter: None,
        getter: false,
    };
    assert_eq!(
        q.subscribe(spec, tx).unwrap_err(),
        SubscribeRefusal::QueueDeleted
    );
}

#[test]
fn a_full_channel_holds_messages_in_the_queue() {
    let q = queue();
    let (tx, mut rx) = delivery_channel(3);
    let spec = ConsumerSpec {
        tag: "slow".into(),
        prefetch: 0,
        no_ack: true,
        exclusive: false,
        filter: None,
        getter: false,
    };
    q.subscribe(spec, tx).unwrap();
    q.enqueue((0..10).map(|i| message(&i.to_string())));
    assert_eq!(
        delivered(&mut rx).len(),
        3,
        "the channel holds three deliveries"
    );
    assert_eq!(q.counts().ready, 7);
}

#[test]
fn rejected_and_delivery_limited_messages_are_dead_lettered_and_leave() {
    let host = Arc::new(RecordingHost::default());
    let q = queue_with(
        &[("x-dead-letter-exchange", "dlx"), ("x-delivery-limit", "2")],
        &host,
    );
    let (id, mut rx) = consumer(&q, 0, false);
    q.enqueue(["a", "b"].map(message));
    let first = delivered(&mut rx);
    assert_eq!(q.nack(id, first[0].0, false, false), 1);
    assert_eq!(q.nack(id, first[1].0, false, true), 1);
    let second = delivered(&mut rx);
    assert_eq!(keys(&second), ["b"]);
    assert_eq!(q.nack(id, second[0].0, false, true), 1);
    assert!(delivered(&mut rx).is_empty(), "delivered twice: the limit");
    assert_eq!(
        reasons(&host),
        [
            ("a".into(), "rejected".into()),
            ("b".into(), "delivery-limit".into())
        ]
    );
    assert_eq!(q.counts(), QueueCounts::default().with_consumers(1));
    assert_eq!(
        q.context.memory().bytes(),
        0,
        "dead letters left the source"
    );
}

#[test]
fn drop_head_dead_letters_the_oldest_and_reject_publish_refuses() {
    let host = Arc::new(RecordingHost::default());
    let q = queue_with(
        &[("x-max-length", "2"), ("x-dead-letter-exchange", "dlx")],
        &host,
    );
    q.enqueue(["1", "2", "3"].map(message));
    assert_eq!(reasons(&host), [("1".into(), "maxlen".into())]);
    assert_eq!(
        q.peek_ready(9)
            .iter()
            .map(|m| m.message.routing_key.as_str())
            .collect::<Vec<_>>(),
        ["2", "3"]
    );
    let strict = queue_with(
        &[
            ("x-max-length-bytes", "2"),
            ("x-overflow", "reject-publish"),
        ],
        &Arc::default(),
    );
    let outcome = strict.enqueue(["1", "2", "3"].map(message));
    assert_eq!((outcome.accepted, outcome.refused), (2, vec![2]));
}

#[test]
fn priorities_deliver_highest_first_and_duplicates_are_not_enqueued() {
    let q = queue_with(
        &[
            ("x-max-priority", "10"),
            ("x-deduplication-window", "60000"),
        ],
        &Arc::default(),
    );
    let with = |key: &str, priority: u8, id: &str| {
        let mut inner = Message::new(key, key.to_owned());
        inner.properties.priority = priority;
        inner.properties.message_id = Some(id.into());
        QueuedMessage::new(Arc::from("ex"), Arc::new(inner))
    };
    let outcome = q.enqueue([
        with("low", 1, "1"),
        with("high", 9, "2"),
        with("high-again", 9, "2"),
        with("mid", 5, "3"),
    ]);
    assert_eq!((outcome.accepted, outcome.duplicates), (3, 1));
    let (_, mut rx) = consumer(&q, 0, false);
    assert_eq!(keys(&delivered(&mut rx)), ["high", "mid", "low"]);
}

#[test]
fn a_hundred_thousand_delayed_messages_need_one_timer_entry() {
    let q = queue();
    let later = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    for i in 0..100_000u64 {
        let due = later + std::time::Duration::from_millis(i);
        q.enqueue([message(&i.to_string()).visible_at(Some(due))]);
    }
    let counts = q.counts();
    assert_eq!((counts.ready, counts.delayed), (0, 100_000));
    assert_eq!(q.context.timer().pending(), 1);
}

/// A property test of one queue against a small model of what RabbitMQ's queues promise: a
/// FIFO of ready messages with an optional `x-max-length` (drop-head, no dead-letter exchange),
/// one consumer with a prefetch window, acks, nacks with and without requeue (a requeued
/// message goes back to the head, marked redelivered), and prefetch changes. After every step
/// the queue's ready list, its deliveries and its counts must equal the model's.
mod model {
    use std::collections::{BTreeMap, VecDeque};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Publish,
        /// Settles the outstanding delivery at this index (modulo how many there are).
        Ack(usize),
        Nack {
            index: usize,
            requeue: bool,
        },
        Prefetch(u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::Publish),
            3 => any::<usize>().prop_map(Step::Ack),
            2 => (any::<usize>(), any::<bool>())
                .prop_map(|(index, requeue)| Step::Nack { index, requeue }),
            1 => (1u32..=8).prop_map(Step::Prefetch),
        ]
    }

    #[derive(Debug, Default)]
    struct Model {
        /// Ready messages: (id, redelivered).
        ready: VecDeque<(u64, bool)>,
        /// Outstanding deliveries by tag.
        unacked: BTreeMap<u64, u64>,
        next_tag: u64,
        prefetch: u32,
        max_length: Option<usize>,
        /// Deliveries made by the last step: (tag, id, redelivered).
        delivered: Vec<(u64, u64, bool)>,
    }

    impl Model {
        fn dispatch(&mut self) {
            while self.unacked.len() < self.prefetch as usize {
                let Some((id, redelivered)) = self.ready.pop_front() else {
                    break;
                };
                self.next_tag += 1;
                self.unacked.insert(self.next_tag, id);
                self.delivered.push((self.next_tag, id, redelivered));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_queue_behaves_as_its_model(
            max_length in proptest::option::of(1usize..6),
            prefetch in 1u32..=8,
            steps in proptest::collection::vec(step(), 1..80),
        ) {
            let arguments = match max_length {
                Some(n) => vec![("x-max-length".to_owned(), n.to_string())],
                None => Vec::new(),
            };
            let pairs: Vec<(&str, &str)> =
                arguments.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let q = queue_with(&pairs, &Arc::default());
            let (consumer_id, mut rx) = consumer(&q, prefetch, false);
            let mut model = Model { prefetch, max_length, ..Model::default() };
            let mut next_id = 0u64;
            for step in steps {
                model.delivered.clear();
                match step {
                    Step::Publish => {
                        next_id += 1;
                        q.enqueue([message(&next_id.to_string())]);
                        model.ready.push_back((next_id, false));
                        if let Some(max) = model.max_length {
                            while model.ready.len() > max {
                                model.ready.pop_front();
                            }
                        }
                    }
                    Step::Ack(index) | Step::Nack { index, .. } if model.unacked.is_empty() => {
                        let _ = index;
                    }
                    Step::Ack(index) => {
                        let tag = *model.unacked.keys().nth(index % model.unacked.len()).unwrap();
                        prop_assert_eq!(q.ack(consumer_id, tag, false), 1);
                        model.unacked.remove(&tag);
                    }
                    Step::Nack { index, requeue } => {
                        let tag = *model.unacked.keys().nth(index % model.unacked.len()).unwrap();
                        prop_assert_eq!(q.nack(consumer_id, tag, false, requeue), 1);
                        let id = model.unacked.remove(&tag).unwrap();
                        if requeue {
                            model.ready.push_front((id, true));
                        }
                    }
                    Step::Prefetch(p) => {
                        q.set_prefetch(consumer_id, p);
                        model.prefetch = p;
                    }
                }
                model.dispatch();
                let got: Vec<(u64, u64, bool)> = delivered(&mut rx)
                    .into_iter()
                    .map(|(tag, key, redelivered, _)| (tag, key.parse().unwrap(), redelivered))
                    .collect();
                prop_assert_eq!(&got, &model.delivered);
                let ready: Vec<(u64, bool)> = q
                    .peek_ready(usize::MAX)
                    .iter()
                    .map(|m| (m.message.routing_key.parse().unwrap(), m.redelivered))
                    .collect();
                prop_assert_eq!(ready, model.ready.iter().copied().collect::<Vec<_>>());
                let counts = q.counts();
                prop_assert_eq!(counts.ready, model.ready.len() as u64);
                prop_assert_eq!(counts.unacked, model.unacked.len() as u64);
            }
        }
    }
}

#[test]
fn a_get_takes_one_message_in_order_and_settles_like_a_delivery() {
    let q = queue();
    let (g, _events) = getter(&q);
    q.enqueue(["1", "2", "3"].map(message));
    assert_eq!(got(&q, g, false), Some((1, "1".into(), 2)));
    assert_eq!(got(&q, g, true), Some((2, "2".into(), 1)));
    assert_eq!(q.counts().unacked, 1, "the no-ack get is settled already");
    assert_eq!(q.ack(g, 1, false), 1);
    assert_eq!(q.counts().unacked, 0);
    // Taken, not acked, and the getter closes: it is back at the head, redelivered.
    assert_eq!(got(&q, g, false), Some((3, "3".into(), 0)));
    assert_eq!(got(&q, g, false), None, "nothing ready");
    q.unsubscribe(g);
    let (g, _events) = getter(&q);
    let (delivery, remaining) = q.get(g, false).unwrap();
    assert_eq!(delivery.queued.message.routing_key, "3");
    assert!(delivery.queued.redelivered);
    assert_eq!(remaining, 0);
}

#[test]
fn a_getter_is_not_a_consumer() {
    let q = queue();
    let (g, _events) = getter(&q);
    assert_eq!(q.counts().consumers, 0);
    // An exclusive consumer is allowed beside a getter, and does not stop its gets.
    let (tx, mut rx) = delivery_channel(63);
    let spec = ConsumerSpec {
        tag: "only".into(),
        prefetch: 1,
        no_ack: false,
        exclusive: true,
        filter: None,
        getter: false,
    };
    q.subscribe(spec, tx).unwrap();
    q.enqueue(["a", "b"].map(message));
    assert_eq!(
        keys(&delivered(&mut rx)),
        ["a"],
        "dispatch never feeds the getter"
    );
    assert_eq!(got(&q, g, false).map(|g| g.1), Some("b".into()));
}
