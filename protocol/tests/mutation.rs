//! A stable-toolchain stand-in for the fuzz target (`fuzz/fuzz_targets/decode.rs`): valid
//! frames with deterministic random corruption go to the decoder as every frame type. Nothing
//! may panic, and whatever decodes must re-encode and decode to the same value.

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_protocol::{
    Auth, ConsumeDown, ConsumeUp, ControlDown, ControlOk, ControlReply, ControlUp, Delivery,
    ErrorCode, FrameDecoder, FrameEncoder, Hello, Properties, Publish, PublishDown, PublishUp,
    Table, WireError, encode,
};

/// xorshift64: deterministic, so a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

fn decode_all<F>(decoder: FrameDecoder, data: &[u8]) -> usize
where
    F: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut buf = BytesMut::from(data);
    let mut decoded_frames = 0;
    while let Ok(Some(frame)) = decoder.decode::<F>(&mut buf) {
        let mut again = BytesMut::new();
        FrameEncoder::new(decoder.max_frame)
            .encode(&frame, &mut again)
            .expect("a decoded frame encodes within the limit it was decoded under");
        let decoded: F = decoder
            .decode(&mut again)
            .expect("a re-encoded frame decodes")
            .expect("a re-encoded frame is whole");
        assert_eq!(decoded, frame);
        assert!(again.is_empty());
        decoded_frames += 1;
    }
    decoded_frames
}

fn seed_frames() -> Vec<u8> {
    let mut buf = BytesMut::new();
    let properties = Properties {
        message_id: Some("m".into()),
        timestamp: Some(1_700_000_000_000),
        priority: 3,
        ..Properties::default()
    };
    encode(
        &ControlUp::Hello(Hello {
            versions: vec![1, 2],
            client_name: "fuzz".into(),
            auth: Auth::Password {
                user: "u".into(),
                password: "p".into(),
            },
        }),
        &mut buf,
    )
    .unwrap();
    encode(
        &ControlDown::Reply(ControlReply {
            id: 3,
            result: Ok(ControlOk::QueueDeclared {
                name: "q".into(),
                messages: 1,
                consumers: 2,
            }),
        }),
        &mut buf,
    )
    .unwrap();
    encode(
        &PublishUp::Publish(Publish {
            seq: 300,
            exchange: "x".into(),
            routing_key: "a.b".into(),
            mandatory: true,
            headers: Table::new().with("k", "v"),
            properties: properties.clone(),
            body: Bytes::from_static(b"body"),
        }),
        &mut buf,
    )
    .unwrap();
    encode(
        &PublishDown::Reject {
            seq: 4,
            error: WireError::new(ErrorCode::QueueFull, "full"),
        },
        &mut buf,
    )
    .unwrap();
    encode(
        &ConsumeUp::Nack {
            delivery_tag: 70_000,
            multiple: true,
            requeue: false,
        },
        &mut buf,
    )
    .unwrap();
    encode(
        &ConsumeDown::Deliver(Delivery {
            delivery_tag: 1,
            exchange: String::new(),
            routing_key: "q".into(),
            redelivered: true,
            delivery_count: 1,
            headers: Table::new(),
            properties: Box::new(properties),
            body: Bytes::from(vec![9; 1500]),
        }),
        &mut buf,
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn corrupted_frames_never_panic_and_what_decodes_round_trips() {
    let seed = seed_frames();
    let mut random = Random(0x5EED_F00D_CAFE_BEEF);
    let mut decoded_frames = 0;
    for _ in 0..20_000 {
        let mut data = seed.clone();
        for _ in 0..=random.below(4) {
            match random.below(3) {
                0 if !data.is_empty() => {
                    let at = random.below(data.len());
                    data[at] = random.next() as u8;
                }
                1 => data.truncate(random.below(data.len() + 1)),
                _ => {
                    let at = random.below(data.len() + 1);
                    data.insert(at, random.next() as u8);
                }
            }
        }
        let max_frame = [u32::MAX, 64, 1500, 2000][random.below(4)];
        let decoder = FrameDecoder::new(max_frame);
        decoded_frames += decode_all::<ControlUp>(decoder, &data)
            + decode_all::<ControlDown>(decoder, &data)
            + decode_all::<PublishUp>(decoder, &data)
            + decode_all::<PublishDown>(decoder, &data)
            + decode_all::<ConsumeUp>(decoder, &data)
            + decode_all::<ConsumeDown>(decoder, &data);
    }
    assert!(
        decoded_frames > 0,
        "the corruption should leave some frames decodable"
    );
}
