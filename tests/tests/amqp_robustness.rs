//! Bad AMQP input, byte by byte over a raw TCP socket: each gets a clear AMQP error (or the
//! protocol header back), and the broker keeps serving a well-behaved client next to it.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use switchyard::config::AmqpSettings;
use switchyard_amqp::method::{
    BasicPublish, ChannelOpen, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, QueueDeclare,
};
use switchyard_amqp::{
    BASIC_CLASS_ID, BasicProperties, Frame, FrameDecoder, Method, PROTOCOL_HEADER, encode_content,
    encode_method,
};
use switchyard_client::Table;
use switchyard_tests::TestBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn broker(adjust: impl FnOnce(&mut AmqpSettings)) -> TestBroker {
    TestBroker::start_with(|config| {
        let mut amqp = AmqpSettings {
            listen_tls: None,
            ..AmqpSettings::on_any_port()
        };
        adjust(&mut amqp);
        config.amqp = amqp;
    })
    .await
}

/// A client that writes whatever it is told to.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Raw {
    async fn connect(broker: &TestBroker) -> Raw {
        let addr = broker.broker.amqp_addr().expect("AMQP is on");
        Raw {
            stream: TcpStream::connect(addr).await.expect("connects"),
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(131_072),
        }
    }

    /// Connects and opens the connection with `guest`/`guest` and the given frame_max.
    async fn open(broker: &TestBroker, frame_max: u32) -> Raw {
        let mut raw = Raw::connect(broker).await;
        raw.write(&PROTOCOL_HEADER).await;
        assert!(matches!(raw.method().await, Method::ConnectionStart(_)));
        raw.send(
            0,
            ConnectionStartOk {
                client_properties: Table::new().with("product", "raw test client"),
                mechanism: "PLAIN".into(),
                response: Bytes::from_static(b"\0guest\0guest"),
                locale: "en_US".into(),
            },
        )
        .await;
        assert!(matches!(raw.method().await, Method::ConnectionTune(_)));
        raw.send(
            0,
            ConnectionTuneOk {
                channel_max: 0,
                frame_max,
                heartbeat: 0,
            },
        )
        .await;
        raw.send(
            0,
            ConnectionOpen {
                virtual_host: "/".into(),
                ..ConnectionOpen::default()
            },
        )
        .await;
        assert!(matches!(raw.method().await, Method::ConnectionOpenOk(_)));
        raw
    }

    async fn open_channel(&mut self, channel: u16) {
        self.send(channel, ChannelOpen::default()).await;
        assert!(matches!(self.method().await, Method::ChannelOpenOk(_)));
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    async fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let mut out = BytesMut::new();
        encode_method(channel, &method.into(), &mut out).unwrap();
        self.write(&out).await;
    }

    /// The next frame, or `None` once the broker has closed the socket.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.buf)
                .expect("the broker's frames decode")
            {
                return Some(frame);
            }
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("the broker answers within 10 s");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn method(&mut self) -> Method {
        loop {
            match self.frame().await.expect("a frame, not the end") {
                Frame::Method { method, .. } => return method,
                Frame::Heartbeat => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    /// Waits for `connection.close` (or `channel.close`); returns its code and text.
    async fn close_code(&mut self) -> (u16, String) {
        loop {
            match self.method().await {
                Method::ConnectionClose(close) => return (close.reply_code, close.reply_text),
                Method::ChannelClose(close) => return (close.reply_code, close.reply_text),
                _ => continue,
            }
        }
    }

    /// Whether the broker closed the socket (reading to the end within 10 s).
    async fn closed(&mut self) -> bool {
        while let Some(_frame) = self.frame().await {}
        true
    }
}

/// The content header and body frames of `body` on channel 1, with no properties.
fn content(body: &'static [u8]) -> BytesMut {
    let mut frames = BytesMut::new();
    encode_content(
        1,
        BASIC_CLASS_ID,
        &BasicProperties::default(),
        &Bytes::from_static(body),
        131_072,
        &mut frames,
    )
    .unwrap();
    frames
}

/// A well-behaved client opens a channel and declares a queue: the broker still serves.
async fn still_serves(broker: &TestBroker) {
    let mut good = Raw::open(broker, 131_072).await;
    good.open_channel(1).await;
    good.send(
        1,
        QueueDeclare {
            queue: "still-here".into(),
            ..QueueDeclare::default()
        },
    )
    .await;
    assert!(matches!(good.method().await, Method::QueueDeclareOk(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_protocol_header_is_answered_with_ours_and_closed() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::connect(&broker).await;
    raw.write(b"GET / HTTP/1.1\r\n\r\n").await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, PROTOCOL_HEADER);
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_protocol_header_closes_that_connection_only() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::connect(&broker).await;
    raw.write(&PROTOCOL_HEADER).await;
    assert!(matches!(raw.method().await, Method::ConnectionStart(_)));
    raw.write(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 4, 1, 2, 3, 4, 0xce])
        .await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 501, "{text}");
    assert!(raw.closed().await);
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_frame_max_is_a_frame_error_before_its_bytes_arrive() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::open(&broker, 8192).await;
    // A method frame header announcing 1 MiB on channel 1; nothing of it follows.
    let mut header = BytesMut::new();
    header.put_u8(1);
    header.put_u16(1);
    header.put_u32(1 << 20);
    raw.write(&header).await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 501, "{text}");
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_its_header_says_is_a_frame_error() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::open(&broker, 131_072).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicPublish {
            routing_key: "anywhere".into(),
            ..BasicPublish::default()
        },
    )
    .await;
    // A header announcing 4 bytes, then a body frame of 10.
    let mut content = content(b"0123456789");
    // The header frame's payload starts after 7 bytes: class (2), weight (2), body size (8).
    let size_at = 7 + 4;
    content[size_at..size_at + 8].copy_from_slice(&4u64.to_be_bytes());
    raw.write(&content).await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 501, "{text}");
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_on_a_channel_never_opened_is_a_channel_error_of_the_connection() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::open(&broker, 131_072).await;
    raw.send(
        7,
        QueueDeclare {
            queue: "q".into(),
            ..QueueDeclare::default()
        },
    )
    .await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 504, "{text}");
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_limited_to_channel_max_and_65535_is_refused() {
    let broker = broker(|amqp| amqp.channel_max = 64).await;
    let mut raw = Raw::open(&broker, 131_072).await;
    for channel in 1..=64 {
        raw.send(channel, ChannelOpen::default()).await;
    }
    for _ in 1..=64 {
        assert!(matches!(raw.method().await, Method::ChannelOpenOk(_)));
    }
    raw.send(u16::MAX, ChannelOpen::default()).await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 530, "{text}");
    assert!(text.contains("channel_max"), "{text}");
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_the_handshake_is_closed_at_the_deadline() {
    let broker = broker(|amqp| amqp.handshake_timeout_ms = 300).await;
    let mut raw = Raw::connect(&broker).await;
    raw.write(&PROTOCOL_HEADER).await;
    assert!(matches!(raw.method().await, Method::ConnectionStart(_)));
    // Says nothing more.
    assert!(raw.closed().await);
    still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_missing_exchange_closes_the_channel_with_404() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::open(&broker, 131_072).await;
    raw.open_channel(1).await;
    raw.send(
        1,
        BasicPublish {
            exchange: "nowhere".into(),
            routing_key: "k".into(),
            ..BasicPublish::default()
        },
    )
    .await;
    raw.write(&content(b"x")).await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 404, "{text}");
    // Only the channel: the connection opens another.
    raw.open_channel(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_with_403_and_the_connection_closed() {
    let broker = broker(|_| {}).await;
    let mut raw = Raw::connect(&broker).await;
    raw.write(&PROTOCOL_HEADER).await;
    assert!(matches!(raw.method().await, Method::ConnectionStart(_)));
    raw.send(
        0,
        ConnectionStartOk {
            client_properties: Table::new(),
            mechanism: "PLAIN".into(),
            response: Bytes::from_static(b"\0someone\0secret"),
            locale: "en_US".into(),
        },
    )
    .await;
    let (code, text) = raw.close_code().await;
    assert_eq!(code, 403, "{text}");
    assert!(raw.closed().await);
    still_serves(&broker).await;
}
