//! Every method round-trips through a frame, and a few frames match bytes written out by hand
//! from the spec, so the codec is not only tested against itself.

use bytes::{Bytes, BytesMut};
use switchyard_amqp::method::*;
use switchyard_amqp::{Frame, FrameDecoder, Method, encode_method};
use switchyard_value::{Table, Value};

fn args() -> Table {
    Table::new()
        .with("x-message-ttl", 60_000i32)
        .with("x-queue-type", "quorum")
}

fn text(s: &str) -> String {
    s.to_owned()
}

/// One of each method, with every field away from its default so a field that is skipped or
/// misplaced shows up.
fn every_method() -> Vec<Method> {
    vec![
        ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: Table::new().with("product", "Switchyard").with(
                "capabilities",
                Table::new().with("publisher_confirms", true),
            ),
            mechanisms: Bytes::from_static(b"PLAIN AMQPLAIN"),
            locales: Bytes::from_static(b"en_US"),
        }
        .into(),
        ConnectionStartOk {
            client_properties: Table::new().with("product", "pika"),
            mechanism: text("PLAIN"),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: text("en_US"),
        }
        .into(),
        ConnectionSecure {
            challenge: Bytes::from_static(b"challenge"),
        }
        .into(),
        ConnectionSecureOk {
            response: Bytes::from_static(b"answer"),
        }
        .into(),
        ConnectionTune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        }
        .into(),
        ConnectionTuneOk {
            channel_max: 1024,
            frame_max: 65_536,
            heartbeat: 30,
        }
        .into(),
        ConnectionOpen {
            virtual_host: text("/"),
            capabilities: text("old"),
            insist: true,
        }
        .into(),
        ConnectionOpenOk {
            known_hosts: text("somewhere"),
        }
        .into(),
        ConnectionClose {
            reply_code: 320,
            reply_text: text("CONNECTION_FORCED - bye"),
            class_id: 60,
            method_id: 40,
        }
        .into(),
        ConnectionCloseOk {}.into(),
        ConnectionBlocked {
            reason: text("low on memory"),
        }
        .into(),
        ConnectionUnblocked {}.into(),
        ConnectionUpdateSecret {
            new_secret: Bytes::from_static(b"token"),
            reason: text("refresh"),
        }
        .into(),
        ConnectionUpdateSecretOk {}.into(),
        ChannelOpen {
            out_of_band: text("oob"),
        }
        .into(),
        ChannelOpenOk {
            channel_id: Bytes::from_static(b"id"),
        }
        .into(),
        ChannelFlow { active: true }.into(),
        ChannelFlowOk { active: true }.into(),
        ChannelClose {
            reply_code: 404,
            reply_text: text("NOT_FOUND - no queue 'q'"),
            class_id: 50,
            method_id: 10,
        }
        .into(),
        ChannelCloseOk {}.into(),
        AccessRequest {
            realm: text("/data"),
            exclusive: true,
            passive: false,
            active: true,
            write: false,
            read: true,
        }
        .into(),
        AccessRequestOk { ticket: 1 }.into(),
        ExchangeDeclare {
            ticket: 7,
            exchange: text("logs"),
            exchange_type: text("topic"),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: true,
            no_wait: true,
            arguments: args(),
        }
        .into(),
        ExchangeDeclareOk {}.into(),
        ExchangeDelete {
            ticket: 7,
            exchange: text("logs"),
            if_unused: true,
            no_wait: false,
        }
        .into(),
        ExchangeDeleteOk {}.into(),
        ExchangeBind {
            ticket: 7,
            destination: text("dst"),
            source: text("src"),
            routing_key: text("a.#"),
            no_wait: true,
            arguments: args(),
        }
        .into(),
        ExchangeBindOk {}.into(),
        ExchangeUnbind {
            ticket: 7,
            destination: text("dst"),
            source: text("src"),
            routing_key: text("a.#"),
            no_wait: true,
            arguments: args(),
        }
        .into(),
        ExchangeUnbindOk {}.into(),
        QueueDeclare {
            ticket: 7,
            queue: text("tasks"),
            passive: true,
            durable: false,
            exclusive: true,
            auto_delete: false,
            no_wait: true,
            arguments: args(),
        }
        .into(),
        QueueDeclareOk {
            queue: text("tasks"),
            message_count: 12,
            consumer_count: 3,
        }
        .into(),
        QueueBind {
            ticket: 7,
            queue: text("tasks"),
            exchange: text("logs"),
            routing_key: text("error"),
            no_wait: true,
            arguments: args(),
        }
        .into(),
        QueueBindOk {}.into(),
        QueuePurge {
            ticket: 7,
            queue: text("tasks"),
            no_wait: true,
        }
        .into(),
        QueuePurgeOk { message_count: 5 }.into(),
        QueueDelete {
            ticket: 7,
            queue: text("tasks"),
            if_unused: false,
            if_empty: true,
            no_wait: true,
        }
        .into(),
        QueueDeleteOk { message_count: 9 }.into(),
        QueueUnbind {
            ticket: 7,
            queue: text("tasks"),
            exchange: text("logs"),
            routing_key: text("error"),
            arguments: args(),
        }
        .into(),
        QueueUnbindOk {}.into(),
        BasicQos {
            prefetch_size: 0,
            prefetch_count: 250,
            global: true,
        }
        .into(),
        BasicQosOk {}.into(),
        BasicConsume {
            ticket: 7,
            queue: text("tasks"),
            consumer_tag: text("ctag-1"),
            no_local: false,
            no_ack: true,
            exclusive: false,
            no_wait: true,
            arguments: Table::new().with("x-priority", 10i32),
        }
        .into(),
        BasicConsumeOk {
            consumer_tag: text("ctag-1"),
        }
        .into(),
        BasicCancel {
            consumer_tag: text("ctag-1"),
            no_wait: true,
        }
        .into(),
        BasicCancelOk {
            consumer_tag: text("ctag-1"),
        }
        .into(),
        BasicPublish {
            ticket: 7,
            exchange: text("logs"),
            routing_key: text("error"),
            mandatory: false,
            immediate: true,
        }
        .into(),
        BasicReturn {
            reply_code: 312,
            reply_text: text("NO_ROUTE"),
            exchange: text("logs"),
            routing_key: text("nowhere"),
        }
        .into(),
        BasicDeliver {
            consumer_tag: text("ctag-1"),
            delivery_tag: u64::MAX - 1,
            redelivered: true,
            exchange: text("logs"),
            routing_key: text("error"),
        }
        .into(),
        BasicGet {
            ticket: 7,
            queue: text("tasks"),
            no_ack: true,
        }
        .into(),
        BasicGetOk {
            delivery_tag: 42,
            redelivered: true,
            exchange: text("logs"),
            routing_key: text("error"),
            message_count: 8,
        }
        .into(),
        BasicGetEmpty {
            cluster_id: text("c"),
        }
        .into(),
        BasicAck {
            delivery_tag: 42,
            multiple: true,
        }
        .into(),
        BasicReject {
            delivery_tag: 42,
            requeue: true,
        }
        .into(),
        BasicRecoverAsync { requeue: true }.into(),
        BasicRecover { requeue: true }.into(),
        BasicRecoverOk {}.into(),
        BasicNack {
            delivery_tag: 42,
            multiple: false,
            requeue: true,
        }
        .into(),
        TxSelect {}.into(),
        TxSelectOk {}.into(),
        TxCommit {}.into(),
        TxCommitOk {}.into(),
        TxRollback {}.into(),
        TxRollbackOk {}.into(),
        ConfirmSelect { no_wait: true }.into(),
        ConfirmSelectOk {}.into(),
    ]
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameDecoder::new(131_072)
        .decode(&mut buf)
        .expect("decodes")
        .expect("whole");
    assert!(buf.is_empty(), "the frame is all of it");
    frame
}

#[test]
fn every_method_round_trips_through_a_frame_byte_for_byte() {
    for (i, method) in every_method().into_iter().enumerate() {
        let channel = i as u16;
        let mut wire = BytesMut::new();
        encode_method(channel, &method, &mut wire).unwrap();
        let frame = decode_one(&wire);
        assert_eq!(
            frame,
            Frame::Method {
                channel,
                method: method.clone()
            },
            "{}",
            method.name()
        );
        // Re-encoding what was decoded gives the same bytes (reserved fields are kept).
        let Frame::Method {
            method: decoded, ..
        } = frame
        else {
            unreachable!()
        };
        let mut again = BytesMut::new();
        encode_method(channel, &decoded, &mut again).unwrap();
        assert_eq!(again, wire, "{}", method.name());
    }
}

#[test]
fn the_sample_list_covers_every_method_the_codec_knows() {
    let sampled: Vec<(u16, u16)> = every_method()
        .iter()
        .map(|m| (m.class_id(), m.method_id()))
        .collect();
    let mut known = Vec::new();
    for class_id in 0..=100 {
        for method_id in 0..=200 {
            if let Some(name) = Method::name_of(class_id, method_id) {
                known.push((class_id, method_id));
                assert!(
                    sampled.contains(&(class_id, method_id)),
                    "{name} has no sample"
                );
            }
        }
    }
    assert_eq!(known.len(), sampled.len());
    // 14 connection, 6 channel, 2 access, 8 exchange, 10 queue, 18 basic, 6 tx, 2 confirm.
    assert_eq!(known.len(), 66);
}

#[test]
fn only_publish_and_the_three_deliveries_carry_content() {
    let carrying: Vec<&str> = every_method()
        .iter()
        .filter(|m| m.carries_content())
        .map(Method::name)
        .collect();
    assert_eq!(
        carrying,
        [
            "basic.publish",
            "basic.return",
            "basic.deliver",
            "basic.get-ok"
        ]
    );
}

/// connection.start-ok with PLAIN, written out from the spec's grammar.
#[test]
fn golden_connection_start_ok_with_plain() {
    #[rustfmt::skip]
    let wire: &[u8] = &[
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, // method frame, channel 0, 50 bytes
        0x00, 0x0a, 0x00, 0x0b, // connection (10) start-ok (11)
        0x00, 0x00, 0x00, 0x0e, // client-properties: a 14-byte table
        0x07, b'p', b'r', b'o', b'd', b'u', b'c', b't', // "product"
        b'S', 0x00, 0x00, 0x00, 0x01, b'x', // long string "x"
        0x05, b'P', b'L', b'A', b'I', b'N', // mechanism
        0x00, 0x00, 0x00, 0x0c, 0x00, b'g', b'u', b'e', b's', b't', 0x00, b'g', b'u', b'e', b's', b't',
        0x05, b'e', b'n', b'_', b'U', b'S', // locale
        0xce,
    ];
    let method: Method = ConnectionStartOk {
        client_properties: Table::new().with("product", "x"),
        mechanism: text("PLAIN"),
        response: Bytes::from_static(b"\0guest\0guest"),
        locale: text("en_US"),
    }
    .into();
    let mut encoded = BytesMut::new();
    encode_method(0, &method, &mut encoded).unwrap();
    assert_eq!(&encoded[..], wire);
    assert_eq!(decode_one(wire), Frame::Method { channel: 0, method });
}

/// basic.publish to the default exchange with mandatory set: the two bits share one octet,
/// mandatory in its lowest bit.
#[test]
fn golden_basic_publish() {
    #[rustfmt::skip]
    let wire: &[u8] = &[
        0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0e, // method frame, channel 1, 14 bytes
        0x00, 0x3c, 0x00, 0x28, // basic (60) publish (40)
        0x00, 0x00, // ticket
        0x00, // exchange ""
        0x05, b'h', b'e', b'l', b'l', b'o', // routing key
        0x01, // mandatory, not immediate
        0xce,
    ];
    let method: Method = BasicPublish {
        routing_key: text("hello"),
        mandatory: true,
        ..Default::default()
    }
    .into();
    let mut encoded = BytesMut::new();
    encode_method(1, &method, &mut encoded).unwrap();
    assert_eq!(&encoded[..], wire);
    assert_eq!(decode_one(wire), Frame::Method { channel: 1, method });
}

/// queue.declare's five bits: durable is bit 1 and auto-delete bit 3 of one octet.
#[test]
fn golden_queue_declare_packs_its_bits_low_bit_first() {
    #[rustfmt::skip]
    let payload: &[u8] = &[
        0x00, 0x32, 0x00, 0x0a, // queue (50) declare (10)
        0x00, 0x00, // ticket
        0x01, b'q', // queue "q"
        0b0000_1010, // passive 0, durable 1, exclusive 0, auto-delete 1, no-wait 0
        0x00, 0x00, 0x00, 0x00, // no arguments
    ];
    let method: Method = QueueDeclare {
        queue: text("q"),
        durable: true,
        auto_delete: true,
        ..Default::default()
    }
    .into();
    let mut encoded = BytesMut::new();
    method.encode(&mut encoded).unwrap();
    assert_eq!(&encoded[..], payload);
    assert_eq!(Method::decode(Bytes::from_static(payload)).unwrap(), method);
}

#[test]
fn golden_connection_tune() {
    let payload: &[u8] = &[
        0x00, 0x0a, 0x00, 0x1e, 0x07, 0xff, 0x00, 0x02, 0x00, 0x00, 0x00, 0x3c,
    ];
    let method: Method = ConnectionTune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    }
    .into();
    assert_eq!(Method::decode(Bytes::from_static(payload)).unwrap(), method);
}

#[test]
fn a_name_over_255_bytes_does_not_encode_and_leaves_the_buffer_alone() {
    let method: Method = QueueDeclare {
        queue: "q".repeat(256),
        ..Default::default()
    }
    .into();
    let mut buf = BytesMut::from(&b"earlier"[..]);
    let error = encode_method(1, &method, &mut buf).unwrap_err();
    assert_eq!(
        error,
        switchyard_amqp::EncodeError::ShortStringTooLong { len: 256 }
    );
    assert_eq!(&buf[..], b"earlier");
}

#[test]
fn method_arguments_keep_typed_values() {
    let method: Method = QueueDeclare {
        queue: text("q"),
        arguments: Table::new()
            .with("x-max-length", 10i64)
            .with("x-dead-letter-exchange", "dlx"),
        ..Default::default()
    }
    .into();
    let mut payload = BytesMut::new();
    method.encode(&mut payload).unwrap();
    let Method::QueueDeclare(decoded) = Method::decode(payload.freeze()).unwrap() else {
        panic!("not a queue.declare");
    };
    assert_eq!(decoded.arguments.get("x-max-length"), Some(&Value::I64(10)));
    assert_eq!(
        decoded.arguments.get_str("x-dead-letter-exchange"),
        Some("dlx")
    );
}
