//! Framing: partial input, several frames per buffer, the size limits, and payloads that are
//! truncated, garbage or too long for their value.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_protocol::{
    ControlUp, DEFAULT_MAX_FRAME, DecodeError, EncodeError, ErrorCode, FrameDecoder, FrameEncoder,
    LENGTH_PREFIX_BYTES, MAX_TABLE_ITEMS, Properties, Publish, PublishDown, PublishUp, Table,
    Value, encode,
};

fn publish(seq: u64, body: impl Into<Bytes>) -> PublishUp {
    PublishUp::Publish(Publish {
        seq,
        exchange: "events".into(),
        routing_key: "orders.created".into(),
        mandatory: false,
        headers: Table::new().with("x-tenant", "acme"),
        properties: Properties {
            persistent: true,
            ..Properties::default()
        },
        body: body.into(),
    })
}

/// A frame with this payload, prefix included.
fn frame_with_payload(payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32(payload.len() as u32);
    buf.extend_from_slice(payload);
    buf
}

fn encoded<F: serde::Serialize>(frame: &F) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(frame, &mut buf).unwrap();
    buf
}

#[test]
fn the_length_prefix_is_big_endian_payload_length() {
    let buf = encoded(&PublishDown::Unblocked);
    let payload_len = buf.len() - LENGTH_PREFIX_BYTES;
    assert_eq!(&buf[..4], &(payload_len as u32).to_be_bytes());
    // Unblocked is PublishDown's variant 4, one varint byte.
    assert_eq!(&buf[4..], &[4]);
}

#[test]
fn a_frame_fed_byte_by_byte_decodes_only_when_complete() {
    let frame = publish(1, &b"payload"[..]);
    let bytes = encoded(&frame);
    let decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    for (fed, byte) in bytes.iter().enumerate() {
        let before = buf.len();
        assert!(
            decoder.decode::<PublishUp>(&mut buf).unwrap().is_none(),
            "decoded after only {fed} of {} bytes",
            bytes.len()
        );
        assert_eq!(
            buf.len(),
            before,
            "an incomplete frame must be left untouched"
        );
        buf.put_u8(*byte);
    }
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(frame));
    assert!(buf.is_empty());
}

#[test]
fn several_frames_in_one_buffer_decode_in_order() {
    let frames: Vec<PublishUp> = (1..=5)
        .map(|seq| publish(seq, vec![seq as u8; seq as usize * 100]))
        .collect();
    let mut buf = BytesMut::new();
    for frame in &frames {
        encode(frame, &mut buf).unwrap();
    }
    // Half of a sixth frame after them.
    let sixth = encoded(&publish(6, &b"six"[..]));
    buf.extend_from_slice(&sixth[..sixth.len() / 2]);

    let decoder = FrameDecoder::default();
    let mut decoded = Vec::new();
    while let Some(frame) = decoder.decode::<PublishUp>(&mut buf).unwrap() {
        decoded.push(frame);
    }
    assert_eq!(decoded, frames);
    assert_eq!(&buf[..], &sixth[..sixth.len() / 2]);
}

#[test]
fn an_announced_length_above_the_maximum_is_refused_from_the_prefix_alone() {
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    let error = FrameDecoder::default()
        .decode::<PublishUp>(&mut buf)
        .unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::FrameTooLarge {
                announced: u32::MAX,
                max: DEFAULT_MAX_FRAME
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.error_code(), ErrorCode::FrameTooLarge);
}

#[test]
fn a_configured_maximum_applies_to_both_directions() {
    let frame = publish(1, vec![0; 1000]);
    let size = encoded(&frame).len() - LENGTH_PREFIX_BYTES;

    let mut out = BytesMut::from(&b"earlier frames"[..]);
    let error = FrameEncoder::new(100).encode(&frame, &mut out).unwrap_err();
    assert!(
        matches!(error, EncodeError::FrameTooLarge { size: s, max: 100 } if s == size),
        "{error:?}"
    );
    assert_eq!(
        &out[..],
        b"earlier frames",
        "a refused frame leaves no trace"
    );

    let mut buf = encoded(&frame);
    let error = FrameDecoder::new(100)
        .decode::<PublishUp>(&mut buf)
        .unwrap_err();
    assert!(matches!(error, DecodeError::FrameTooLarge { max: 100, .. }));

    let mut buf = encoded(&frame);
    let exact = FrameDecoder::new(size as u32).decode(&mut buf).unwrap();
    assert_eq!(exact, Some(frame));
}

#[test]
fn a_maximum_above_the_protocol_ceiling_is_clamped() {
    let mut buf = BytesMut::new();
    buf.put_u32(DEFAULT_MAX_FRAME + 1);
    let error = FrameDecoder::new(u32::MAX)
        .decode::<PublishUp>(&mut buf)
        .unwrap_err();
    assert!(matches!(
        error,
        DecodeError::FrameTooLarge {
            max: DEFAULT_MAX_FRAME,
            ..
        }
    ));
}

#[test]
fn a_frame_of_exactly_the_maximum_size_round_trips() {
    // The payload of a publish is its fixed fields, a 5-byte varint for a long body's length,
    // then the body: size the body so the payload is exactly DEFAULT_MAX_FRAME.
    let empty_body_payload = encoded(&publish(1, Bytes::new())).len() - LENGTH_PREFIX_BYTES;
    let overhead = empty_body_payload - 1 + 5;
    let body_len = DEFAULT_MAX_FRAME as usize - overhead;

    let largest = publish(1, vec![0x5A; body_len]);
    let mut buf = encoded(&largest);
    assert_eq!(buf.len() - LENGTH_PREFIX_BYTES, DEFAULT_MAX_FRAME as usize);
    assert_eq!(
        FrameDecoder::default().decode(&mut buf).unwrap(),
        Some(largest)
    );

    let one_too_many = publish(1, vec![0x5A; body_len + 1]);
    let error = encode(&one_too_many, &mut BytesMut::new()).unwrap_err();
    assert!(matches!(
        error,
        EncodeError::FrameTooLarge { size, max: DEFAULT_MAX_FRAME } if size == DEFAULT_MAX_FRAME as usize + 1
    ));
}

#[test]
fn a_truncated_payload_is_malformed() {
    let whole = encoded(&publish(1, &b"body"[..]));
    let payload = &whole[LENGTH_PREFIX_BYTES..];
    for cut in 0..payload.len() {
        let mut buf = frame_with_payload(&payload[..cut]);
        let error = FrameDecoder::default()
            .decode::<PublishUp>(&mut buf)
            .unwrap_err();
        assert!(
            matches!(error, DecodeError::Malformed { frame_len, .. } if frame_len == cut),
            "cut at {cut}: {error:?}"
        );
        assert_eq!(error.error_code(), ErrorCode::ProtocolViolation);
    }
}

#[test]
fn garbage_payloads_are_errors_not_panics() {
    let garbage: &[&[u8]] = &[
        &[0xFF; 16],                     // variant index far out of range
        &[7],                            // PublishUp has one variant
        &[0, 0xFB, 0xFF],                // a varint cut short
        &[0, 1, 2, 0xC3, 0x28, 0, 0],    // invalid UTF-8 in the exchange name
        &[0, 1, 0, 0, 2],                // 2 is not a bool
        &[0, 1, 0, 0, 0, 0, 9, 9, 9, 9], // 9 is not an Option tag
    ];
    for payload in garbage {
        let mut buf = frame_with_payload(payload);
        let result = FrameDecoder::default().decode::<PublishUp>(&mut buf);
        assert!(
            matches!(result, Err(DecodeError::Malformed { .. })),
            "{payload:?} gave {result:?}"
        );
    }
}

#[test]
fn an_empty_payload_is_malformed() {
    let mut buf = frame_with_payload(&[]);
    let result = FrameDecoder::default().decode::<ControlUp>(&mut buf);
    assert!(matches!(
        result,
        Err(DecodeError::Malformed { frame_len: 0, .. })
    ));
}

#[test]
fn bytes_after_the_value_inside_a_frame_are_refused() {
    let whole = encoded(&PublishDown::Confirm { first: 1, last: 9 });
    let mut payload = whole[LENGTH_PREFIX_BYTES..].to_vec();
    let used = payload.len();
    payload.extend_from_slice(b"junk");
    let mut buf = frame_with_payload(&payload);
    let error = FrameDecoder::default()
        .decode::<PublishDown>(&mut buf)
        .unwrap_err();
    assert!(
        matches!(error, DecodeError::TrailingBytes { frame_len, used: u } if frame_len == used + 4 && u == used),
        "{error:?}"
    );
}

#[test]
fn more_header_values_than_allowed_are_refused_on_encode_and_on_decode() {
    let mut frame = publish(1, &b""[..]);
    let PublishUp::Publish(publish) = &mut frame;
    publish.headers = (0..=MAX_TABLE_ITEMS).map(|_| ("h", "v")).collect();
    let mut out = BytesMut::new();
    let error = encode(&frame, &mut out).unwrap_err();
    assert!(matches!(error, EncodeError::Unencodable(_)), "{error:?}");
    assert!(out.is_empty());

    // A peer that encodes them anyway: Publish { seq 1, "", "", false, 4097 headers named ""
    // holding void, … }.
    let mut payload = vec![0, 1, 0, 0, 0, 0xFB];
    payload.extend_from_slice(&(MAX_TABLE_ITEMS as u16 + 1).to_le_bytes());
    payload.extend(std::iter::repeat_n(0, 2 * (MAX_TABLE_ITEMS + 1)));
    payload.push(0); // default properties: one byte
    payload.push(0); // empty body
    let mut buf = frame_with_payload(&payload);
    let result = FrameDecoder::default().decode::<PublishUp>(&mut buf);
    assert!(
        matches!(result, Err(DecodeError::Malformed { .. })),
        "{result:?}"
    );

    // …and exactly MAX_TABLE_ITEMS is fine.
    payload[6..8].copy_from_slice(&(MAX_TABLE_ITEMS as u16).to_le_bytes());
    payload.drain(8..10);
    let mut buf = frame_with_payload(&payload);
    let Some(PublishUp::Publish(decoded)) = FrameDecoder::default().decode(&mut buf).unwrap()
    else {
        panic!("no frame");
    };
    assert_eq!(decoded.headers.len(), MAX_TABLE_ITEMS);
    assert_eq!(decoded.headers.get("").and_then(Value::as_str), None);
}

#[test]
fn error_codes_keep_their_numbers() {
    // The wire contract: these numbers never change. A new code gets a new number.
    let table = [
        (ErrorCode::MessageTooLarge, 311, "MESSAGE_TOO_LARGE"),
        (ErrorCode::NoRoute, 312, "NO_ROUTE"),
        (ErrorCode::ConnectionForced, 320, "CONNECTION_FORCED"),
        (ErrorCode::AccessRefused, 403, "ACCESS_REFUSED"),
        (ErrorCode::NotFound, 404, "NOT_FOUND"),
        (ErrorCode::ResourceLocked, 405, "RESOURCE_LOCKED"),
        (ErrorCode::PreconditionFailed, 406, "PRECONDITION_FAILED"),
        (ErrorCode::FrameTooLarge, 501, "FRAME_TOO_LARGE"),
        (ErrorCode::InvalidArgument, 502, "INVALID_ARGUMENT"),
        (ErrorCode::ProtocolViolation, 505, "PROTOCOL_VIOLATION"),
        (ErrorCode::Overloaded, 506, "OVERLOADED"),
        (ErrorCode::NotAllowed, 530, "NOT_ALLOWED"),
        (ErrorCode::InternalError, 541, "INTERNAL_ERROR"),
        (ErrorCode::UnsupportedVersion, 600, "UNSUPPORTED_VERSION"),
        (ErrorCode::RoutingFault, 601, "ROUTING_FAULT"),
        (ErrorCode::PluginRefused, 602, "PLUGIN_REFUSED"),
        (ErrorCode::QueueFull, 603, "QUEUE_FULL"),
        (ErrorCode::StorageFailed, 604, "STORAGE_FAILED"),
        (ErrorCode::LimitReached, 605, "LIMIT_REACHED"),
    ];
    assert_eq!(
        ErrorCode::KNOWN.len(),
        table.len(),
        "a code is missing here"
    );
    for (code, number, label) in table {
        assert_eq!(code.as_u16(), number, "{code:?}");
        assert_eq!(code.label(), label);
        assert!(!matches!(
            ErrorCode::from_u16(number),
            ErrorCode::Unknown(_)
        ));
        assert_eq!(ErrorCode::from_u16(number), code);
    }
    assert_eq!(ErrorCode::NotFound.to_string(), "NOT_FOUND (404)");
}

#[test]
fn every_number_round_trips_through_error_code() {
    for number in 0..=u16::MAX {
        let code = ErrorCode::from_u16(number);
        assert_eq!(code.as_u16(), number);
        let known = ErrorCode::KNOWN.contains(&code);
        assert_eq!(known, !matches!(code, ErrorCode::Unknown(_)), "{number}");
    }
    assert_eq!(
        ErrorCode::Unknown(404),
        ErrorCode::NotFound,
        "equality is by number"
    );
}

#[test]
fn unset_properties_take_one_byte_on_the_wire() {
    let frame_len = |properties: Properties| {
        let mut frame = publish(1, &b"body"[..]);
        let PublishUp::Publish(publish) = &mut frame;
        publish.properties = properties;
        let mut out = BytesMut::new();
        encode(&frame, &mut out).unwrap();
        out.len()
    };
    let unset = frame_len(Properties::default());
    let persistent = frame_len(Properties {
        persistent: true,
        ..Properties::default()
    });
    // One presence byte, then the 14 fields of one byte each (tags and the flag).
    assert_eq!(persistent - unset, 14);
}
