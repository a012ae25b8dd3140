//! The 14 basic properties and their flag words.

use bytes::{Bytes, BytesMut};
use switchyard_amqp::{BasicProperties, SyntaxError};
use switchyard_value::Table;

fn all_set() -> BasicProperties {
    BasicProperties {
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        headers: Some(Table::new().with("x-retry", 3i32)),
        delivery_mode: Some(2),
        priority: Some(9),
        correlation_id: Some("corr".into()),
        reply_to: Some("amq.rabbitmq.reply-to".into()),
        expiration: Some("60000".into()),
        message_id: Some("m-1".into()),
        timestamp: Some(1_700_000_000),
        message_type: Some("order.created".into()),
        user_id: Some("guest".into()),
        app_id: Some("shop".into()),
        cluster_id: Some("c1".into()),
    }
}

fn round_trip(properties: &BasicProperties) -> Bytes {
    let mut buf = BytesMut::new();
    properties.encode(&mut buf).unwrap();
    let bytes = buf.freeze();
    let mut input = bytes.clone();
    assert_eq!(&BasicProperties::decode(&mut input).unwrap(), properties);
    assert!(input.is_empty());
    bytes
}

#[test]
fn all_fourteen_set_use_flag_bits_15_to_2() {
    let bytes = round_trip(&all_set());
    assert_eq!(&bytes[..2], [0xff, 0xfc]);
}

#[test]
fn none_set_is_one_zero_flag_word() {
    let bytes = round_trip(&BasicProperties::default());
    assert_eq!(&bytes[..], [0, 0]);
}

#[test]
fn some_set_are_written_in_flag_order() {
    let properties = BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        timestamp: Some(1),
        ..Default::default()
    };
    let bytes = round_trip(&properties);
    let mut expected = vec![0x90, 0x40]; // bits 15, 12 and 6
    expected.push(10);
    expected.extend_from_slice(b"text/plain");
    expected.push(2);
    expected.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(&bytes[..], expected);
}

#[test]
fn each_property_alone_round_trips() {
    let all = all_set();
    let singles = [
        BasicProperties {
            content_type: all.content_type.clone(),
            ..Default::default()
        },
        BasicProperties {
            content_encoding: all.content_encoding.clone(),
            ..Default::default()
        },
        BasicProperties {
            headers: all.headers.clone(),
            ..Default::default()
        },
        BasicProperties {
            delivery_mode: all.delivery_mode,
            ..Default::default()
        },
        BasicProperties {
            priority: all.priority,
            ..Default::default()
        },
        BasicProperties {
            correlation_id: all.correlation_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            reply_to: all.reply_to.clone(),
            ..Default::default()
        },
        BasicProperties {
            expiration: all.expiration.clone(),
            ..Default::default()
        },
        BasicProperties {
            message_id: all.message_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            timestamp: all.timestamp,
            ..Default::default()
        },
        BasicProperties {
            message_type: all.message_type.clone(),
            ..Default::default()
        },
        BasicProperties {
            user_id: all.user_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            app_id: all.app_id.clone(),
            ..Default::default()
        },
        BasicProperties {
            cluster_id: all.cluster_id.clone(),
            ..Default::default()
        },
    ];
    for (i, properties) in singles.iter().enumerate() {
        assert_eq!(properties.flags(), 1 << (15 - i), "property {i}");
        round_trip(properties);
    }
}

#[test]
fn an_empty_continuation_word_is_followed_and_accepted() {
    // content-type set, continuation bit set; the next word sets nothing and ends the chain.
    let mut input = Bytes::from_static(&[0x80, 0x01, 0x00, 0x00, 1, b'a']);
    let properties = BasicProperties::decode(&mut input).unwrap();
    assert_eq!(properties.content_type.as_deref(), Some("a"));
    assert!(input.is_empty());
}

#[test]
fn a_flag_the_basic_class_does_not_have_is_refused() {
    let mut bit_one = Bytes::from_static(&[0x00, 0x02]);
    assert_eq!(
        BasicProperties::decode(&mut bit_one),
        Err(SyntaxError::UnknownProperty { flags: 0x0002 })
    );
    let mut in_continuation = Bytes::from_static(&[0x00, 0x01, 0x80, 0x00]);
    assert_eq!(
        BasicProperties::decode(&mut in_continuation),
        Err(SyntaxError::UnknownProperty { flags: 0x8000 })
    );
}

#[test]
fn a_continuation_chain_that_runs_off_the_end_is_truncated() {
    let mut input = Bytes::from_static(&[0x00, 0x01, 0x00, 0x01, 0x00, 0x01]);
    assert!(matches!(
        BasicProperties::decode(&mut input),
        Err(SyntaxError::Truncated { .. })
    ));
}

#[test]
fn a_property_announced_but_missing_is_truncated() {
    let mut input = Bytes::from_static(&[0x80, 0x00, 5, b'a']);
    assert!(matches!(
        BasicProperties::decode(&mut input),
        Err(SyntaxError::Truncated { .. })
    ));
}
