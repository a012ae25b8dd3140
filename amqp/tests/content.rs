//! Content: splitting a body into frames at frame_max, and assembling a channel's frames back
//! into commands, with every out-of-order case refused.

use bytes::{Bytes, BytesMut};
use switchyard_amqp::method::{BasicAck, BasicDeliver, BasicPublish};
use switchyard_amqp::{
    BasicProperties, Command, Content, ContentAssembler, ContentError, EncodeError, Frame,
    FrameDecoder, Method, ReplyCode, encode_content, encode_method,
};
use switchyard_value::Table;

const MAX_MESSAGE: u64 = 1 << 20;

fn publish() -> Method {
    BasicPublish {
        exchange: "logs".into(),
        routing_key: "error".into(),
        ..Default::default()
    }
    .into()
}

fn properties() -> BasicProperties {
    BasicProperties {
        content_type: Some("text/plain".into()),
        headers: Some(Table::new().with("attempt", 1i32)),
        ..Default::default()
    }
}

/// Every frame in `wire`, decoded under `frame_max`.
fn frames(wire: &[u8], frame_max: u32) -> Vec<Frame> {
    let mut buf = BytesMut::from(wire);
    let decoder = FrameDecoder::new(frame_max);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        out.push(frame);
    }
    assert!(buf.is_empty());
    out
}

fn body_sizes(frames: &[Frame]) -> Vec<usize> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body { payload, .. } => Some(payload.len()),
            _ => None,
        })
        .collect()
}

fn encode_message(body: &Bytes, frame_max: u32) -> BytesMut {
    let mut wire = BytesMut::new();
    encode_method(1, &publish(), &mut wire).unwrap();
    encode_content(1, 60, &properties(), body, frame_max, &mut wire).unwrap();
    wire
}

fn assemble(frames: Vec<Frame>) -> Vec<Command> {
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    let mut commands = Vec::new();
    for frame in frames {
        if let Some(command) = assembler.push(frame).unwrap() {
            commands.push(command);
        }
    }
    assert!(!assembler.is_mid_content());
    commands
}

#[test]
fn a_body_of_exactly_frame_max_minus_8_is_one_frame_and_one_more_byte_is_two() {
    let frame_max = 4096;
    for (len, expected) in [
        (4088, vec![4088]),
        (4089, vec![4088, 1]),
        (3 * 4088, vec![4088; 3]),
        (1, vec![1]),
    ] {
        let body = Bytes::from(vec![7u8; len]);
        let decoded = frames(&encode_message(&body, frame_max), frame_max);
        assert_eq!(body_sizes(&decoded), expected, "body of {len}");
        let commands = assemble(decoded);
        assert_eq!(
            commands,
            [Command {
                channel: 1,
                method: publish(),
                content: Some(Content {
                    properties: properties(),
                    body
                })
            }]
        );
    }
}

#[test]
fn an_empty_body_sends_no_body_frame_and_completes_on_the_header() {
    let decoded = frames(&encode_message(&Bytes::new(), 4096), 4096);
    assert_eq!(decoded.len(), 2, "method and header only");
    let commands = assemble(decoded);
    assert_eq!(commands[0].content.as_ref().unwrap().body, Bytes::new());
}

#[test]
fn a_frame_max_with_no_room_for_a_body_byte_is_refused() {
    let mut buf = BytesMut::from(&b"kept"[..]);
    assert_eq!(
        encode_content(
            1,
            60,
            &BasicProperties::default(),
            &Bytes::from_static(b"x"),
            8,
            &mut buf
        ),
        Err(EncodeError::FrameMaxTooSmall { frame_max: 8 })
    );
    assert_eq!(&buf[..], b"kept");
}

#[test]
fn a_content_header_larger_than_frame_max_is_refused() {
    let big = BasicProperties {
        headers: Some(Table::new().with("big", "x".repeat(5000))),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    assert!(matches!(
        encode_content(1, 60, &big, &Bytes::new(), 4096, &mut buf),
        Err(EncodeError::ContentHeaderTooLarge {
            frame_max: 4096,
            ..
        })
    ));
    assert!(buf.is_empty());
}

#[test]
fn a_method_without_content_is_a_command_at_once() {
    let ack: Method = BasicAck {
        delivery_tag: 1,
        multiple: false,
    }
    .into();
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    assert_eq!(
        assembler.push(Frame::Method {
            channel: 1,
            method: ack.clone()
        }),
        Ok(Some(Command {
            channel: 1,
            method: ack,
            content: None
        }))
    );
}

fn header(body_size: u64) -> Frame {
    Frame::Header {
        channel: 1,
        class_id: 60,
        body_size,
        properties: BasicProperties::default(),
    }
}

fn body(bytes: &'static [u8]) -> Frame {
    Frame::Body {
        channel: 1,
        payload: Bytes::from_static(bytes),
    }
}

fn method(method: Method) -> Frame {
    Frame::Method { channel: 1, method }
}

#[test]
fn a_one_frame_body_stays_the_frames_own_bytes() {
    let payload = Bytes::from(vec![1u8; 100]);
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    assembler.push(method(publish())).unwrap();
    assembler.push(header(100)).unwrap();
    let command = assembler
        .push(Frame::Body {
            channel: 1,
            payload: payload.clone(),
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        command.content.unwrap().body.as_ptr(),
        payload.as_ptr(),
        "zero-copy"
    );
}

#[test]
fn a_body_over_several_frames_is_gathered_in_order() {
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    assert_eq!(assembler.push(method(publish())), Ok(None));
    assert_eq!(assembler.push(header(6)), Ok(None));
    assert_eq!(assembler.push(body(b"ab")), Ok(None));
    assert_eq!(
        assembler.push(Frame::Heartbeat),
        Ok(None),
        "heartbeats pass"
    );
    assert_eq!(assembler.push(body(b"")), Ok(None));
    assert_eq!(assembler.push(body(b"cd")), Ok(None));
    let command = assembler.push(body(b"ef")).unwrap().unwrap();
    assert_eq!(command.content.unwrap().body, Bytes::from_static(b"abcdef"));
}

#[test]
fn deliveries_assemble_too_for_client_side_use() {
    let deliver: Method = BasicDeliver {
        consumer_tag: "c".into(),
        delivery_tag: 1,
        ..Default::default()
    }
    .into();
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    assembler.push(method(deliver.clone())).unwrap();
    assembler.push(header(1)).unwrap();
    let command = assembler.push(body(b"x")).unwrap().unwrap();
    assert_eq!(command.method, deliver);
}

fn unexpected(frames: Vec<Frame>) -> ContentError {
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    let last = frames.len() - 1;
    for (i, frame) in frames.into_iter().enumerate() {
        let result = assembler.push(frame);
        if i < last {
            assert!(result.is_ok(), "frame {i} is fine");
        } else {
            let error = result.unwrap_err();
            assert!(!assembler.is_mid_content(), "back to expecting a method");
            return error;
        }
    }
    unreachable!()
}

#[test]
fn out_of_order_frames_are_unexpected_frames() {
    let ack = || {
        method(
            BasicAck {
                delivery_tag: 1,
                multiple: false,
            }
            .into(),
        )
    };
    let cases = [
        (vec![header(1)], "header without a method"),
        (vec![body(b"x")], "body without a header"),
        (vec![method(publish()), ack()], "method instead of a header"),
        (
            vec![method(publish()), body(b"x")],
            "body instead of a header",
        ),
        (
            vec![method(publish()), header(2), body(b"x"), ack()],
            "method mid-body",
        ),
        (
            vec![method(publish()), header(2), header(2)],
            "second header",
        ),
        (
            vec![
                method(publish()),
                Frame::Header {
                    channel: 1,
                    class_id: 50,
                    body_size: 0,
                    properties: BasicProperties::default(),
                },
            ],
            "header of another class",
        ),
        (
            vec![Frame::Body {
                channel: 2,
                payload: Bytes::new(),
            }],
            "another channel's frame",
        ),
    ];
    for (frames, case) in cases {
        let error = unexpected(frames);
        assert_eq!(error.reply_code(), ReplyCode::UnexpectedFrame, "{case}");
        assert!(error.reply_code().closes_connection(), "{case}");
    }
}

#[test]
fn a_body_longer_than_announced_is_a_frame_error_saying_how_much_was_left() {
    let error = unexpected(vec![method(publish()), header(2), body(b"xyz")]);
    assert_eq!(
        error,
        ContentError::BodyTooLong {
            channel: 1,
            size: 3,
            remaining: 2
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::FrameError);
    let error = unexpected(vec![method(publish()), header(2), body(b"x"), body(b"yz")]);
    assert_eq!(
        error,
        ContentError::BodyTooLong {
            channel: 1,
            size: 2,
            remaining: 1
        }
    );
}

#[test]
fn a_message_over_the_limit_is_refused_from_its_header_as_a_channel_error() {
    let mut assembler = ContentAssembler::new(1, 10);
    assembler.push(method(publish())).unwrap();
    let error = assembler.push(header(11)).unwrap_err();
    assert_eq!(
        error,
        ContentError::MessageTooLarge {
            channel: 1,
            body_size: 11,
            max_message_bytes: 10
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::PreconditionFailed);
    assert!(!error.reply_code().closes_connection());
    assert!(!assembler.is_mid_content());
    // Exactly the limit is fine.
    assembler.push(method(publish())).unwrap();
    assert_eq!(assembler.push(header(10)), Ok(None));
}

#[test]
fn a_huge_announced_body_is_refused_before_anything_is_reserved() {
    let mut assembler = ContentAssembler::new(1, MAX_MESSAGE);
    assembler.push(method(publish())).unwrap();
    assert!(matches!(
        assembler.push(header(u64::MAX)),
        Err(ContentError::MessageTooLarge { .. })
    ));
}
