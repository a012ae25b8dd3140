//! Feeds arbitrary bytes to the frame decoder as every frame type of every stream, with an
//! arbitrary `max_frame`. Decoding must never panic; whatever decodes must encode again and
//! decode to the same value.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_protocol::{
    ConsumeDown, ConsumeUp, ControlDown, ControlUp, FrameDecoder, FrameEncoder, PublishDown,
    PublishUp, StreamKind,
};

/// Decodes every frame `data` holds as `F`, then checks each against a re-encoding.
fn decode_all<F>(decoder: FrameDecoder, data: &[u8])
where
    F: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut buf = BytesMut::from(data);
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
    }
}

fuzz_target!(|data: &[u8]| {
    // The first four bytes choose the decoder's maximum frame size.
    let Some((max_frame, data)) = data.split_first_chunk::<4>() else {
        return;
    };
    let decoder = FrameDecoder::new(u32::from_le_bytes(*max_frame));

    decode_all::<ControlUp>(decoder, data);
    decode_all::<ControlDown>(decoder, data);
    decode_all::<PublishUp>(decoder, data);
    decode_all::<PublishDown>(decoder, data);
    decode_all::<ConsumeUp>(decoder, data);
    decode_all::<ConsumeDown>(decoder, data);

    let mut buf = BytesMut::from(data);
    let _ = StreamKind::decode(&mut buf);
});
