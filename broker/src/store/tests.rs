//! The store on its own: appends become durable, recovery brings back exactly the live
//! messages with their delivery counts, damage is cut off, drained segments go, a long queue
//! is read back from its tail.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::message::Message;

fn open_store(dir: &std::path::Path, segment_bytes: u64) -> Store {
    Store::open(StoreConfig {
        dir: dir.to_owned(),
        fsync: FsyncPolicy::Always,
        segment_bytes,
        disk_free_low_watermark_bytes: 0,
    })
    .unwrap()
}

fn message(n: u64, persistent: bool) -> Message {
    let mut message = Message::new(format!("key.{n}"), format!("body {n}"));
    message.properties.persistent = persistent;
    message
}

fn append(log: &Arc<QueueLog>, seq: u64, persistent: bool) -> u64 {
    let message = message(seq, persistent);
    log.append_message(&StoredMessageRef {
        seq,
        enqueued_at_ms: 1,
        persistent,
        exchange: "ex",
        message: &message,
    })
    .1
}

fn wait(store: &Store, log: &Arc<QueueLog>, lsn: u64) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            wait_durable(store.progress(), &[(Arc::clone(log), lsn)]),
        )
        .await
        .expect("durable within 10 s")
    })
}

fn seqs(recovered: &Recovered) -> Vec<u64> {
    recovered.messages.iter().map(|m| m.stored.seq).collect()
}

#[test]
fn durable_messages_come_back_without_removed_or_transient_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path(), 1 << 20);
        let (log, recovered) = store.open_queue("orders", 100, None).unwrap();
        assert!(recovered.messages.is_empty());
        for seq in 0..10 {
            append(&log, seq, seq != 3);
        }
        log.delivered(&[4, 5]);
        log.delivered(&[5]);
        let lsn = log.removed(&[0, 1, 2]);
        assert!(wait(&store, &log, lsn));
    }
    let store = open_store(dir.path(), 1 << 20);
    let (_log, recovered) = store.open_queue("orders", 100, None).unwrap();
    assert_eq!(seqs(&recovered), vec![4, 5, 6, 7, 8, 9]);
    assert_eq!(recovered.next_seq, 10);
    let counts: Vec<u32> = recovered
        .messages
        .iter()
        .map(|m| m.delivery_count)
        .collect();
    assert_eq!(counts, vec![1, 2, 0, 0, 0, 0]);
    assert_eq!(recovered.messages[0].stored.message, message(4, true));
    assert!(recovered.tail.is_none());
}

#[test]
fn a_torn_and_garbled_tail_is_cut_off_and_everything_before_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let queue_dir;
    {
        let store = open_store(dir.path(), 1 << 20);
        let (log, _) = store.open_queue("q", 100, None).unwrap();
        let mut lsn = 0;
        for seq in 0..20 {
            lsn = append(&log, seq, true);
        }
        assert!(wait(&store, &log, lsn));
        queue_dir = store.queue_dir("q");
    }
    let segment = segment::segment_path(&queue_dir, 0);
    let len = std::fs::metadata(&segment).unwrap().len();
    // Garble a byte inside the 16th record and tear the last one.
    let mut bytes = std::fs::read(&segment).unwrap();
    let record_len = (len - segment::SEGMENT_HEADER_BYTES) / 20;
    let garbled = (segment::SEGMENT_HEADER_BYTES + record_len * 15 + 20) as usize;
    bytes[garbled] ^= 0xff;
    bytes.truncate(len as usize - 3);
    std::fs::write(&segment, bytes).unwrap();

    let store = open_store(dir.path(), 1 << 20);
    let (log, recovered) = store.open_queue("q", 100, None).unwrap();
    assert_eq!(seqs(&recovered), (0..15).collect::<Vec<_>>());
    assert_eq!(recovered.repairs.len(), 1, "{:?}", recovered.repairs);
    assert!(recovered.repairs[0].contains("checksum"));
    // The log goes on after the damage: new appends recover too.
    let lsn = append(&log, recovered.next_seq, true);
    assert!(wait(&store, &log, lsn));
    drop((log, store));
    let store = open_store(dir.path(), 1 << 20);
    let (_, recovered) = store.open_queue("q", 100, None).unwrap();
    assert_eq!(seqs(&recovered), (0..16).collect::<Vec<_>>());
}

#[test]
fn segments_are_deleted_once_drained_from_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 256);
    let (log, _) = store.open_queue("q", 100, None).unwrap();
    let mut lsn = 0;
    for seq in 0..30 {
        lsn = append(&log, seq, true);
    }
    assert!(wait(&store, &log, lsn));
    let before = log.segment_ids();
    assert!(before.len() > 3, "{before:?}");
    // Removing later messages first deletes nothing: the oldest segment still holds seq 0.
    log.removed(&(10..30).collect::<Vec<_>>());
    assert_eq!(log.segment_ids()[0], before[0]);
    let lsn = log.removed(&(0..10).collect::<Vec<_>>());
    assert!(wait(&store, &log, lsn));
    let after = log.segment_ids();
    assert!(after.len() <= 2, "{after:?}");
    let files = segment::list_segments(&store.queue_dir("q")).unwrap();
    assert_eq!(files.len(), after.len(), "{files:?} vs {after:?}");
}

/// Review finding 3: once every segment holding messages was drained and deleted, recovery
/// numbered new messages from 0 again while the surviving "removed" records still named those
/// numbers, so the messages confirmed in that run vanished at the next restart.
#[test]
fn sequence_numbers_continue_past_a_drained_log_and_its_next_messages_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path(), 256);
        let (log, _) = store.open_queue("q", 100, None).unwrap();
        let mut lsn = 0;
        for seq in 0..30 {
            lsn = append(&log, seq, true);
        }
        assert!(wait(&store, &log, lsn));
        // Deliveries roll the log into segments that hold no message record.
        let first = log.segment_ids();
        for _ in 0..100 {
            if log.segment_ids().last() != first.last() {
                break;
            }
            log.delivered(&(0..30).collect::<Vec<_>>());
        }
        assert_ne!(log.segment_ids().last(), first.last(), "the log rolled");
        let lsn = log.removed(&(0..30).collect::<Vec<_>>());
        assert!(wait(&store, &log, lsn));
    }
    {
        let store = open_store(dir.path(), 256);
        let (log, recovered) = store.open_queue("q", 100, None).unwrap();
        assert!(recovered.messages.is_empty());
        assert_eq!(
            recovered.next_seq, 30,
            "numbering continues past every seq named"
        );
        let lsn = append(&log, recovered.next_seq, true);
        assert!(wait(&store, &log, lsn));
    }
    let store = open_store(dir.path(), 256);
    let (_log, recovered) = store.open_queue("q", 100, None).unwrap();
    assert_eq!(
        seqs(&recovered),
        vec![30],
        "the message confirmed after the drain is back"
    );
}

#[test]
fn a_queue_longer_than_its_window_is_read_back_from_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path(), 4096);
        let (log, _) = store.open_queue("long", 10, None).unwrap();
        let mut lsn = 0;
        for seq in 0..500 {
            lsn = append(&log, seq, true);
        }
        let lsn2 = log.removed(&[0, 1]);
        assert!(wait(&store, &log, lsn.max(lsn2)));
    }
    let store = open_store(dir.path(), 4096);
    let (log, recovered) = store.open_queue("long", 10, None).unwrap();
    assert_eq!(seqs(&recovered), (2..12).collect::<Vec<_>>());
    let (position, remaining) = recovered.tail.unwrap();
    assert_eq!(remaining, 488);
    let mut tail = DiskTail::new(
        Arc::clone(&log),
        position,
        remaining,
        Arc::new(recovered.skip),
    );
    // Messages appended in this run join the tail.
    for seq in 500..505 {
        append(&log, seq, false);
        tail.push();
    }
    let mut read = Vec::new();
    loop {
        let batch = tail.read(64, u64::MAX).unwrap();
        if batch.is_empty() {
            break;
        }
        read.extend(batch.into_iter().map(|m| m.stored.seq));
    }
    assert_eq!(read, (12..505).collect::<Vec<_>>());
    assert_eq!(tail.remaining(), 0);
}

#[test]
fn a_deleted_queue_leaves_nothing_and_unknown_logs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 1 << 20);
    let (log, _) = store.open_queue("gone", 10, None).unwrap();
    let lsn = append(&log, 0, true);
    assert!(wait(&store, &log, lsn));
    let (_kept, _) = store.open_queue("kept", 10, None).unwrap();
    log.delete().unwrap();
    assert!(!store.queue_dir("gone").exists());
    let (_, _) = store.open_queue("stale", 10, None).unwrap();
    store.remove_queues_except(&["kept"]).unwrap();
    assert!(store.queue_dir("kept").exists());
    assert!(!store.queue_dir("stale").exists());
}

#[test]
fn queue_directory_names_are_safe_and_distinct() {
    let a = queue_dir_name("orders/eu");
    let b = queue_dir_name("orders_eu");
    assert!(a.starts_with("orders_eu-") && b.starts_with("orders_eu-"));
    assert_ne!(a, b);
    assert!(queue_dir_name(&"é".repeat(120)).len() < 100);
}

/// Review finding 14: a queue whose definition never reached the file (a failed save) had its
/// log deleted at the next start, confirmed messages and all.
#[test]
fn a_log_with_messages_but_no_definition_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), 1 << 20);
    let (log, _) = store.open_queue("audit", 100, None).unwrap();
    let lsn = append(&log, 0, true);
    assert!(wait(&store, &log, lsn));
    let (_, _) = store.open_queue("empty", 100, None).unwrap();
    store.remove_queues_except(&[]).unwrap();
    let left: Vec<String> = std::fs::read_dir(dir.path().join("queues"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(".set-aside-"), "{left:?}");
    let aside = dir.path().join("queues").join(&left[0]);
    assert_eq!(
        std::fs::read_to_string(aside.join("name"))
            .unwrap()
            .trim_end(),
        "audit"
    );
    assert!(!segment::list_segments(&aside).unwrap().is_empty());
    // A later start leaves it where it is.
    store.remove_queues_except(&[]).unwrap();
    assert!(aside.is_dir());
}

/// A persistent format-1 message without headers or other properties.
fn bare_v1(exchange: &str, routing_key: &str) -> super::record_v1::StoredMeta {
    super::record_v1::StoredMeta {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        headers: Vec::new(),
        properties: super::record_v1::PropertiesV1 {
            persistent: true,
            ..Default::default()
        },
    }
}

/// A log written before headers were typed (record kind 1, by a copy of that broker's
/// encoder) recovers every message with every property and header; a newer broker appends
/// records of the current kind to the same log, and both kinds come back.
#[test]
fn a_log_written_in_format_1_recovers_every_message_property_and_header() {
    use super::record_v1::{self, PropertiesV1};
    use crate::message::{Identifier, Properties, Table};

    let dir = tempfile::tempdir().unwrap();
    let old_messages = [
        record_v1::StoredMeta {
            exchange: "shop".into(),
            routing_key: "orders.eu".into(),
            headers: vec![
                ("tenant".into(), "acme".into()),
                ("tenant".into(), "names may repeat".into()),
                ("x-delay".into(), "0".into()),
                ("ünïcode".into(), "✓".into()),
            ],
            properties: PropertiesV1 {
                message_id: Some("m-1".into()),
                correlation_id: Some("c-1".into()),
                reply_to: Some("replies".into()),
                content_type: Some("application/json".into()),
                timestamp: Some(1_700_000_000_000),
                expiration: Some(60_000),
                priority: 7,
                persistent: true,
                delay_ms: Some(5),
            },
        },
        bare_v1("", "bare"),
        bare_v1("shop", "gone"),
    ];
    let bodies: [&[u8]; 3] = [b"{\"order\":1}", b"", b"acked before the upgrade"];
    {
        let store = open_store(dir.path(), 1 << 20);
        let (log, _) = store.open_queue("orders", 100, None).unwrap();
        let mut lsn = 0;
        for (seq, (meta, body)) in old_messages.iter().zip(bodies).enumerate() {
            let mut bytes = Vec::new();
            record_v1::encode_message(&mut bytes, seq as u64, 42, meta, body);
            lsn = log.append_message_record(seq as u64, 42, bytes).1;
        }
        log.delivered(&[0]);
        lsn = lsn.max(log.removed(&[2]));
        assert!(wait(&store, &log, lsn));
    }
    // The upgraded broker reads them and appends one of its own.
    let mut typed = Message::new("typed", "new").with_header("n", 5_i32);
    typed.properties.persistent = true;
    typed.properties.user_id = Some("app".into());
    {
        let store = open_store(dir.path(), 1 << 20);
        let (log, recovered) = store.open_queue("orders", 100, None).unwrap();
        assert_eq!(seqs(&recovered), [0, 1]);
        let lsn = log
            .append_message(&StoredMessageRef {
                seq: recovered.next_seq,
                enqueued_at_ms: 43,
                persistent: true,
                exchange: "shop",
                message: &typed,
            })
            .1;
        assert!(wait(&store, &log, lsn));
    }
    let store = open_store(dir.path(), 1 << 20);
    let (_log, recovered) = store.open_queue("orders", 100, None).unwrap();
    assert_eq!(seqs(&recovered), [0, 1, 3]);
    assert!(recovered.repairs.is_empty(), "{:?}", recovered.repairs);
    let first = &recovered.messages[0];
    assert_eq!(first.delivery_count, 1);
    assert_eq!(first.stored.exchange, "shop");
    assert_eq!(first.stored.enqueued_at_ms, 42);
    assert!(first.stored.persistent);
    let expected = Message {
        routing_key: "orders.eu".into(),
        headers: Table::new()
            .with("tenant", "acme")
            .with("tenant", "names may repeat")
            .with("x-delay", "0")
            .with("ünïcode", "✓"),
        properties: Properties {
            message_id: Some(Identifier::Text("m-1".into())),
            correlation_id: Some(Identifier::Text("c-1".into())),
            reply_to: Some("replies".into()),
            content_type: Some("application/json".into()),
            timestamp: Some(1_700_000_000_000),
            expiration: Some(60_000),
            priority: 7,
            persistent: true,
            delay_ms: Some(5),
            ..Properties::default()
        }
        .into(),
        body: bytes::Bytes::from_static(b"{\"order\":1}"),
    };
    assert_eq!(first.stored.message, expected);
    let bare = &recovered.messages[1].stored;
    assert_eq!(
        (bare.exchange.as_str(), bare.message.routing_key.as_str()),
        ("", "bare")
    );
    assert!(bare.message.headers.is_empty() && bare.message.body.is_empty());
    assert!(bare.message.properties.persistent);
    assert_eq!(recovered.messages[2].stored.message, typed);
}

/// A record whose checksum holds but whose metadata this broker cannot decode is reported
/// among the repairs (it used to vanish without a word), and the readable ones around it
/// come back.
#[test]
fn an_unreadable_message_record_is_reported_not_silently_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path(), 1 << 20);
        let (log, _) = store.open_queue("orders", 100, None).unwrap();
        append(&log, 0, true);
        let mut bytes = Vec::new();
        let start = super::record::begin_frame(&mut bytes);
        bytes.push(4); // a current message record…
        bytes.extend_from_slice(&1_u64.to_le_bytes());
        bytes.extend_from_slice(&1_u64.to_le_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&3_u32.to_le_bytes());
        bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF]); // …whose metadata is not bincode
        super::record::end_frame(&mut bytes, start);
        log.append_message_record(1, 1, bytes);
        let lsn = append(&log, 2, true);
        assert!(wait(&store, &log, lsn));
    }
    let store = open_store(dir.path(), 1 << 20);
    let (_log, recovered) = store.open_queue("orders", 100, None).unwrap();
    assert_eq!(seqs(&recovered), [0, 2]);
    assert_eq!(recovered.repairs.len(), 1, "{:?}", recovered.repairs);
    assert!(
        recovered.repairs[0].contains("message 1")
            && recovered.repairs[0].contains("cannot be read"),
        "{:?}",
        recovered.repairs
    );
}
