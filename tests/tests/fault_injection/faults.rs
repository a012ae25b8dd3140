//! Faults that come over the wire: malformed and oversized frames, each on a raw stream of a
//! QUIC connection of its own (the client's, pinned to the broker's certificate). The broker
//! should close that connection and keep serving everyone else; the runner checks the latter.
//! Faults to the process (`kill -9`, `SIGTERM`, `prlimit --fsize`) are
//! [`BrokerProcess`](switchyard_tests::broker_process::BrokerProcess)'s.

use std::net::SocketAddr;
use std::time::Duration;

use fastrand::Rng;
use switchyard_client::{ConnectOptions, Connection, Trust};

/// The stream-kind bytes a client stream must open with (control, publish, consume), and the
/// largest frame a broker accepts (`switchyard_protocol`'s, which this crate does not depend
/// on).
const STREAM_KINDS: [u8; 3] = [1, 2, 3];
const MAX_FRAME: u32 = 16 << 20;

/// What a hostile client managed.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostileReport {
    /// Streams of bad bytes written.
    pub sent: u64,
    /// Connections the broker closed in answer.
    pub closed: u64,
}

/// One bad stream's bytes: a stream-kind byte, then a frame that is oversized, undecodable
/// or cut short.
fn hostile_stream(rng: &mut Rng) -> Vec<u8> {
    let kind = *rng.choice(&STREAM_KINDS).expect("kinds");
    let mut bytes = vec![kind];
    match rng.u32(0..6) {
        // A length prefix far past any frame limit.
        0 => bytes.extend_from_slice(&u32::MAX.to_be_bytes()),
        // Just past the largest frame.
        1 => {
            bytes.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
            bytes.extend(std::iter::repeat_n(0u8, rng.usize(0..4096)));
        }
        // A frame of 0xff bytes.
        2 => {
            let len = rng.u32(1..64);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend(std::iter::repeat_n(0xffu8, len as usize));
        }
        // A frame of random bytes.
        3 => {
            let len = rng.u32(0..512);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend(std::iter::repeat_with(|| rng.u8(..)).take(len as usize));
        }
        // A frame announced longer than what follows, then the stream ends.
        4 => {
            bytes.extend_from_slice(&1000u32.to_be_bytes());
            let len = rng.usize(0..100);
            bytes.extend(std::iter::repeat_with(|| rng.u8(..)).take(len));
        }
        // No stream kind: an unknown first byte and noise.
        _ => {
            bytes[0] = rng.u8(4..);
            let len = rng.usize(0..256);
            bytes.extend(std::iter::repeat_with(|| rng.u8(..)).take(len));
        }
    }
    bytes
}

/// Opens `streams` connections to the broker and writes one hostile stream on each.
pub async fn send_hostile_frames(
    addr: SocketAddr,
    fingerprint: String,
    streams: usize,
    seed: u64,
) -> HostileReport {
    let mut rng = Rng::with_seed(seed);
    let mut report = HostileReport::default();
    for _ in 0..streams {
        let options = ConnectOptions::new(addr, Trust::Pinned(fingerprint.clone()));
        let Ok(Ok(connection)) =
            tokio::time::timeout(Duration::from_secs(10), Connection::connect(options)).await
        else {
            continue;
        };
        if let Some(quic) = connection.quic()
            && let Ok((mut send, _recv)) = quic.open_bi().await
        {
            let bytes = hostile_stream(&mut rng);
            if send.write_all(&bytes).await.is_ok() {
                report.sent += 1;
                let _ = send.finish();
                if tokio::time::timeout(Duration::from_secs(5), quic.closed())
                    .await
                    .is_ok()
                {
                    report.closed += 1;
                }
            }
        }
        connection.close().await;
    }
    report
}
