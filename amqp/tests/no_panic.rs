//! A cheap stand-in for the fuzz target (which CI does not build): valid traffic with bytes
//! flipped at pseudo-random places, fed through the frame decoder and content assembler under
//! several small `frame_max`es. Nothing may panic.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use switchyard_amqp::method::{BasicPublish, ExchangeDeclare, QueueDeclare};
use switchyard_amqp::{
    BasicProperties, ContentAssembler, FrameDecoder, Method, encode_content, encode_heartbeat,
    encode_method,
};
use switchyard_value::{Table, Value};

/// xorshift64: deterministic, no dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn traffic(frame_max: u32) -> BytesMut {
    let nested = Table::new().with(
        "deep",
        Value::Array(vec![
            Value::Table(Table::new().with("x", 1.5f64)),
            Value::Void,
        ]),
    );
    let mut wire = BytesMut::new();
    let declare: Method = QueueDeclare {
        queue: "q".into(),
        durable: true,
        arguments: nested.clone(),
        ..Default::default()
    }
    .into();
    encode_method(1, &declare, &mut wire).unwrap();
    let exchange: Method = ExchangeDeclare {
        exchange: "x".into(),
        exchange_type: "topic".into(),
        ..Default::default()
    }
    .into();
    encode_method(2, &exchange, &mut wire).unwrap();
    encode_heartbeat(&mut wire);
    let publish: Method = BasicPublish {
        routing_key: "k".into(),
        ..Default::default()
    }
    .into();
    for channel in [1, 2] {
        encode_method(channel, &publish, &mut wire).unwrap();
        let properties = BasicProperties {
            headers: Some(nested.clone()),
            message_id: Some("m".into()),
            ..Default::default()
        };
        let body = Bytes::from(vec![b'b'; 300]);
        encode_content(channel, 60, &properties, &body, frame_max, &mut wire).unwrap();
    }
    wire
}

#[test]
fn corrupted_traffic_never_panics() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for frame_max in [120, 160, 256, 4096] {
        let clean = traffic(frame_max);
        for _ in 0..2000 {
            let mut wire = clean.clone();
            for _ in 0..(noise.next() % 4 + 1) {
                let at = (noise.next() % wire.len() as u64) as usize;
                wire[at] = noise.next() as u8;
            }
            let cut = (noise.next() % (wire.len() as u64 + 1)) as usize;
            wire.truncate(cut);

            let decoder = FrameDecoder::new(frame_max);
            let mut assemblers: HashMap<u16, ContentAssembler> = HashMap::new();
            while let Ok(Some(frame)) = decoder.decode(&mut wire) {
                let channel = frame.channel();
                let _ = assemblers
                    .entry(channel)
                    .or_insert_with(|| ContentAssembler::new(channel, 64))
                    .push(frame);
            }
        }
    }
}
