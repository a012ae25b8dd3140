//! The frame splitter: whole frames only, every framing error with its reply code, and the
//! protocol header.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_amqp::method::{BasicAck, QueueDeclare};
use switchyard_amqp::{
    BasicProperties, FRAME_MIN_SIZE, Frame, FrameDecoder, FrameError, Method, PROTOCOL_HEADER,
    ReplyCode, SyntaxError, decode_protocol_header, encode_content, encode_heartbeat,
    encode_method,
};

fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![frame_type];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xce);
    out
}

fn decoder() -> FrameDecoder {
    FrameDecoder::new(FRAME_MIN_SIZE)
}

#[test]
fn the_protocol_header_is_taken_once_whole() {
    let mut buf = BytesMut::from(&b"AMQP\x00\x00"[..]);
    assert_eq!(decode_protocol_header(&mut buf), Ok(None));
    assert_eq!(buf.len(), 6, "nothing taken while incomplete");
    buf.put_slice(b"\x09\x01\x01");
    assert_eq!(decode_protocol_header(&mut buf), Ok(Some(())));
    assert_eq!(&buf[..], b"\x01", "what follows stays");
}

#[test]
fn another_protocol_is_refused_as_soon_as_it_differs() {
    let mut http = BytesMut::from(&b"GET"[..]);
    let error = decode_protocol_header(&mut http).unwrap_err();
    assert_eq!(error.received, Bytes::from_static(b"GET"));
    // AMQP 1.0's header differs only in its last four bytes.
    let mut amqp10 = BytesMut::from(&b"AMQP\x00\x01\x00\x00"[..]);
    assert!(decode_protocol_header(&mut amqp10).is_err());
    assert_eq!(PROTOCOL_HEADER, *b"AMQP\x00\x00\x09\x01");
}

#[test]
fn a_frame_is_not_returned_until_its_last_byte_has_come() {
    let ack: Method = BasicAck {
        delivery_tag: 7,
        multiple: true,
    }
    .into();
    let mut wire = BytesMut::new();
    encode_method(3, &ack, &mut wire).unwrap();
    let mut buf = BytesMut::new();
    for (i, byte) in wire.iter().enumerate() {
        assert_eq!(decoder().decode(&mut buf), Ok(None), "after {i} bytes");
        assert_eq!(buf.len(), i, "nothing taken while incomplete");
        buf.put_u8(*byte);
    }
    assert_eq!(
        decoder().decode(&mut buf),
        Ok(Some(Frame::Method {
            channel: 3,
            method: ack
        }))
    );
    assert!(buf.is_empty());
}

#[test]
fn an_incomplete_frame_reserves_room_for_the_rest_only() {
    let mut buf = BytesMut::new();
    buf.put_slice(&[3, 0, 1, 0, 0, 0x0f, 0xf8]); // body frame, 4088 bytes announced
    assert_eq!(decoder().decode(&mut buf), Ok(None));
    let whole_frame = 7 + 4088 + 1;
    assert!(buf.capacity() >= whole_frame);
}

#[test]
fn several_frames_in_one_read_come_out_one_by_one() {
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    buf.put_slice(&frame(3, 1, b"abc"));
    encode_heartbeat(&mut buf);
    assert_eq!(decoder().decode(&mut buf), Ok(Some(Frame::Heartbeat)));
    assert_eq!(
        decoder().decode(&mut buf),
        Ok(Some(Frame::Body {
            channel: 1,
            payload: Bytes::from_static(b"abc")
        }))
    );
    assert_eq!(decoder().decode(&mut buf), Ok(Some(Frame::Heartbeat)));
    assert_eq!(decoder().decode(&mut buf), Ok(None));
}

#[test]
fn a_body_is_a_zero_copy_slice_of_the_read_buffer() {
    let mut buf = BytesMut::from(&frame(3, 1, b"payload")[..]);
    let start = buf.as_ptr() as usize;
    let Some(Frame::Body { payload, .. }) = decoder().decode(&mut buf).unwrap() else {
        panic!("not a body");
    };
    assert_eq!(payload.as_ptr() as usize, start + 7);
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let frame_max = 4096;
    // Only the 7 header bytes: announcing one byte more than frame_max - 8 allows.
    let mut buf = BytesMut::new();
    buf.put_u8(3);
    buf.put_u16(1);
    buf.put_u32(frame_max - 8 + 1);
    let error = FrameDecoder::new(frame_max).decode(&mut buf).unwrap_err();
    assert_eq!(
        error,
        FrameError::TooLarge {
            frame_type: 3,
            channel: 1,
            size: frame_max - 7,
            frame_max
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::FrameError);
    assert!(buf.capacity() < 4096, "nothing reserved for it");

    // Exactly frame_max - 8 is fine.
    let mut buf = BytesMut::from(&frame(3, 1, &vec![0; (frame_max - 8) as usize])[..]);
    assert!(matches!(
        FrameDecoder::new(frame_max).decode(&mut buf),
        Ok(Some(Frame::Body { .. }))
    ));
}

#[test]
fn a_huge_announced_size_fails_at_once() {
    let mut buf = BytesMut::from(&[1u8, 0, 0, 0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        decoder().decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn a_bad_end_octet_is_a_frame_error() {
    let mut bytes = frame(3, 1, b"abc");
    *bytes.last_mut().unwrap() = 0xcd;
    let error = decoder()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap_err();
    assert_eq!(
        error,
        FrameError::BadFrameEnd {
            channel: 1,
            found: 0xcd
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::FrameError);
}

#[test]
fn an_unknown_frame_type_is_a_frame_error_from_its_header() {
    let mut buf = BytesMut::from(&[4u8, 0, 1, 0, 0, 0, 9][..]);
    let error = decoder().decode(&mut buf).unwrap_err();
    assert_eq!(
        error,
        FrameError::UnknownType {
            frame_type: 4,
            channel: 1
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::FrameError);
}

#[test]
fn a_heartbeat_on_a_channel_or_with_a_payload_is_a_frame_error() {
    let on_channel = decoder()
        .decode(&mut BytesMut::from(&frame(8, 5, b"")[..]))
        .unwrap_err();
    assert_eq!(on_channel, FrameError::HeartbeatOnChannel { channel: 5 });
    assert_eq!(on_channel.reply_code(), ReplyCode::FrameError);
    let with_payload = decoder()
        .decode(&mut BytesMut::from(&frame(8, 0, b"x")[..]))
        .unwrap_err();
    assert_eq!(with_payload, FrameError::HeartbeatWithPayload { size: 1 });
}

#[test]
fn a_content_header_for_another_class_is_an_unexpected_frame() {
    let mut payload = vec![0, 50, 0, 0];
    payload.extend_from_slice(&0u64.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    let error = decoder()
        .decode(&mut BytesMut::from(&frame(2, 1, &payload)[..]))
        .unwrap_err();
    assert_eq!(
        error,
        FrameError::ContentClass {
            channel: 1,
            class_id: 50
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::UnexpectedFrame);
}

#[test]
fn an_unknown_method_is_not_implemented() {
    let error = decoder()
        .decode(&mut BytesMut::from(&frame(1, 1, &[0, 60, 0, 99])[..]))
        .unwrap_err();
    assert!(matches!(
        error,
        FrameError::Malformed {
            cause: SyntaxError::UnknownMethod {
                class_id: 60,
                method_id: 99
            },
            ..
        }
    ));
    assert_eq!(error.reply_code(), ReplyCode::NotImplemented);
}

#[test]
fn a_method_with_bytes_left_over_or_missing_is_a_frame_error() {
    // basic.ack is a long long and an octet of bits.
    let mut long = vec![0, 60, 0, 80];
    long.extend_from_slice(&[0; 9]);
    long.push(0);
    let error = decoder()
        .decode(&mut BytesMut::from(&frame(1, 1, &long)[..]))
        .unwrap_err();
    assert!(matches!(
        error,
        FrameError::Malformed {
            cause: SyntaxError::TrailingBytes { count: 1, .. },
            ..
        }
    ));
    assert_eq!(error.reply_code(), ReplyCode::FrameError);

    let short = [0, 60, 0, 80, 0, 0, 0];
    let error = decoder()
        .decode(&mut BytesMut::from(&frame(1, 1, &short)[..]))
        .unwrap_err();
    assert!(matches!(
        error,
        FrameError::Malformed {
            cause: SyntaxError::Truncated { .. },
            ..
        }
    ));
}

#[test]
fn a_table_announcing_more_bytes_than_its_frame_has_is_a_frame_error() {
    let method: Method = QueueDeclare {
        queue: "q".into(),
        ..Default::default()
    }
    .into();
    let mut payload = BytesMut::new();
    method.encode(&mut payload).unwrap();
    // The arguments table is the last four bytes (empty); make it announce 1000 bytes.
    let at = payload.len() - 4;
    payload[at..].copy_from_slice(&1000u32.to_be_bytes());
    let error = decoder()
        .decode(&mut BytesMut::from(&frame(1, 1, &payload)[..]))
        .unwrap_err();
    assert!(matches!(
        error,
        FrameError::Malformed {
            cause: SyntaxError::Truncated {
                need: 1000,
                have: 0,
                ..
            },
            ..
        }
    ));
    assert_eq!(error.reply_code(), ReplyCode::FrameError);
}

#[test]
fn a_short_string_that_is_not_utf8_is_a_frame_error() {
    let payload = [0, 60, 0, 30, 1, 0xff, 0]; // basic.cancel, consumer tag 0xff
    let error = decoder()
        .decode(&mut BytesMut::from(&frame(1, 1, &payload)[..]))
        .unwrap_err();
    assert!(matches!(
        error,
        FrameError::Malformed {
            cause: SyntaxError::InvalidUtf8 { .. },
            ..
        }
    ));
}

/// A content header for a 2-byte body with content-type and delivery-mode, and its body.
#[test]
fn golden_content_header_and_body() {
    #[rustfmt::skip]
    let wire: &[u8] = &[
        0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1a, // header frame, channel 1, 26 bytes
        0x00, 0x3c, 0x00, 0x00, // class basic, weight 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // body size 2
        0x90, 0x00, // content-type and delivery-mode
        0x0a, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n',
        0x02,
        0xce,
        0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, b'h', b'i', 0xce, // body frame
    ];
    let properties = BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        ..Default::default()
    };
    let mut encoded = BytesMut::new();
    encode_content(
        1,
        60,
        &properties,
        &Bytes::from_static(b"hi"),
        FRAME_MIN_SIZE,
        &mut encoded,
    )
    .unwrap();
    assert_eq!(&encoded[..], wire);
    let mut buf = BytesMut::from(wire);
    assert_eq!(
        decoder().decode(&mut buf),
        Ok(Some(Frame::Header {
            channel: 1,
            class_id: 60,
            body_size: 2,
            properties
        }))
    );
}

#[test]
fn golden_heartbeat() {
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    assert_eq!(&buf[..], [8, 0, 0, 0, 0, 0, 0, 0xce]);
}
