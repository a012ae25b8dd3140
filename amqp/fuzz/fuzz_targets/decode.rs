//! Feeds arbitrary bytes to the frame decoder, under a small arbitrary `frame_max`, and every
//! frame it yields to its channel's content assembler with a small message limit. Nothing may
//! panic; whatever decodes must encode again, and its re-encoding must be a fixed point
//! (decoding and encoding it once more gives the same bytes).

#![no_main]

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchyard_amqp::{
    BasicProperties, ContentAssembler, Frame, FrameDecoder, Method, encode_content,
};

/// Encodes a decoded method, decodes and encodes it again: the two encodings agree.
fn check_method(method: &Method) {
    let mut first = BytesMut::new();
    method
        .encode(&mut first)
        .expect("a decoded method encodes");
    let again = Method::decode(first.clone().freeze()).expect("a re-encoded method decodes");
    let mut second = BytesMut::new();
    again.encode(&mut second).expect("it encodes again");
    assert_eq!(first, second);
}

fn check_properties(properties: &BasicProperties) {
    let mut first = BytesMut::new();
    properties
        .encode(&mut first)
        .expect("decoded properties encode");
    let again = BasicProperties::decode(&mut first.clone().freeze())
        .expect("re-encoded properties decode");
    let mut second = BytesMut::new();
    again.encode(&mut second).expect("they encode again");
    assert_eq!(first, second);
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose frame_max (8 to 1031: tiny frames split everything) and the
    // message limit (0 to 255 bytes).
    let Some((&[frame_byte, limit_byte], data)) = data.split_first_chunk::<2>() else {
        return;
    };
    let frame_max = 8 + u32::from(frame_byte) * 4;
    let decoder = FrameDecoder::new(frame_max);
    let mut assemblers: HashMap<u16, ContentAssembler> = HashMap::new();

    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        match &frame {
            Frame::Method { method, .. } => check_method(method),
            Frame::Header { properties, .. } => check_properties(properties),
            Frame::Body { .. } | Frame::Heartbeat => {}
        }
        let channel = frame.channel();
        let assembler = assemblers
            .entry(channel)
            .or_insert_with(|| ContentAssembler::new(channel, u64::from(limit_byte)));
        // A content error closes the channel or the connection; the assembler is reset either
        // way, so carry on to reach more states.
        if let Ok(Some(command)) = assembler.push(frame)
            && let Some(content) = command.content
        {
            assert!(content.body.len() <= usize::from(limit_byte));
            let body: Bytes = content.body;
            let mut out = BytesMut::new();
            let _ = encode_content(channel, 60, &content.properties, &body, frame_max, &mut out);
        }
    }
});
