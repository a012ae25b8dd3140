//! Bad input and failures over the wire: malformed frames, oversized messages, deleted queues,
//! plugin faults, slow consumers and lost connections. The broker keeps serving everyone else.

use std::path::Path;
use std::time::Duration;

use switchyard_client::{
    ClientError, ConsumeOptions, ErrorCode, ExchangeOptions, OutgoingMessage, QueueOptions, Table,
    Trust, quic_client_config,
};
use switchyard_tests::{TestBroker, next_delivery, wasm};

/// Sends raw bytes on a new stream of a fresh QUIC connection, as a broken client would.
async fn send_raw(t: &TestBroker, bytes: &[u8]) -> quinn::ConnectionError {
    let connection = t.connect().await;
    let quic = connection.quic().expect("connected");
    let (mut send, _recv) = quic.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), quic.closed())
        .await
        .expect("the broker closes the connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_that_connection_and_others_carry_on() {
    let t = TestBroker::start().await;
    t.client
        .declare_queue("q", QueueOptions::default())
        .await
        .unwrap();

    // A publish stream whose first frame announces 4 GiB.
    let mut oversized = vec![2u8];
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    let closed = send_raw(&t, &oversized).await;
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == ErrorCode::FrameTooLarge.as_u16().into()),
        "{closed:?}"
    );
    // A publish stream whose frame is garbage.
    let mut garbage = vec![2u8];
    garbage.extend_from_slice(&8u32.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 8]);
    let closed = send_raw(&t, &garbage).await;
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
        "{closed:?}"
    );

    let mut publisher = t.client.publisher().await.unwrap();
    publisher
        .publish_confirmed(OutgoingMessage::new("", "q", "still serving"))
        .await
        .unwrap();
    assert_eq!(t.client.queue_info("q").await.unwrap().ready, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_rejected_with_a_clear_error() {
    let t = TestBroker::start_with(|config| config.max_message_bytes = 1024).await;
    t.client
        .declare_queue("q", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = t.client.publisher().await.unwrap();
    let error = publisher
        .publish_confirmed(OutgoingMessage::new("", "q", vec![0u8; 4096]))
        .await
        .unwrap_err();
    match error {
        ClientError::Rejected { error, .. } => {
            assert_eq!(error.code, ErrorCode::MessageTooLarge);
            assert!(error.message.contains("1024"), "{}", error.message);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    publisher
        .publish_confirmed(OutgoingMessage::new("", "q", "small"))
        .await
        .unwrap();
}

/// Review findings 6 and 7: only the body counted against `max_message_bytes`, so a publish
/// padded with headers up to the frame limit was confirmed, and its delivery (a few bytes
/// larger) could not be encoded: the consume stream ended, the message went back to the head,
/// and every consumer of the queue hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_count_towards_the_message_limit_and_every_accepted_message_can_be_delivered() {
    let t = TestBroker::start_with(|config| {
        config.max_frame_bytes = 1 << 20;
        config.max_message_bytes = 512 << 10;
    })
    .await;
    t.client
        .declare_queue("q", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = t.client.publisher().await.unwrap();
    let body = vec![1u8; 256 << 10];
    // The largest publish frame the client can send: padding shrinks until it encodes.
    let mut padding = (1 << 20) - body.len();
    let outcome = loop {
        let message =
            OutgoingMessage::new("", "q", body.clone()).header("pad", "p".repeat(padding));
        match publisher.publish(message).await {
            Ok(confirmation) => break confirmation.wait().await,
            Err(ClientError::Protocol(_)) => padding -= 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    };
    match outcome {
        Err(ClientError::Rejected { error, .. }) => {
            assert_eq!(error.code, ErrorCode::MessageTooLarge, "{}", error.message);
        }
        other => panic!("a message of {padding} header bytes was not refused: {other:?}"),
    }
    // Exactly at the limit, headers included: accepted and delivered.
    let header = (512 << 10) - body.len() - "q".len() - "pad".len();
    publisher
        .publish_confirmed(
            OutgoingMessage::new("", "q", body.clone()).header("pad", "p".repeat(header)),
        )
        .await
        .unwrap();
    let mut consumer = t.client.consume(ConsumeOptions::new("q")).await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.body.len(), body.len());
}

/// Review finding 7: the memory watermark counted bodies only, so messages with large headers
/// and empty bodies never held a publisher back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_count_towards_the_memory_watermark() {
    let t = TestBroker::start_with(|config| config.memory_high_watermark_bytes = 1 << 20).await;
    t.client
        .declare_queue("q", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = t.client.publisher().await.unwrap();
    let big = || OutgoingMessage::new("", "q", "").header("big", "h".repeat(100 << 10));
    for _ in 0..8 {
        publisher.publish_confirmed(big()).await.unwrap();
    }
    let counted = t.broker.topology().memory().bytes();
    assert!(counted >= 8 * (100 << 10), "{counted} bytes counted");
    // A few more cross the watermark of 1 MiB: then a publish is held back.
    let mut held = false;
    for _ in 0..5 {
        let publish = publisher.publish_confirmed(big());
        if tokio::time::timeout(Duration::from_secs(2), publish)
            .await
            .is_err()
        {
            held = true;
            break;
        }
    }
    assert!(held, "publishes with 100 KiB headers were never held back");
    assert!(publisher.is_blocked());
    // Emptying the queue ends the pressure: the broker says Unblocked (an event, not a poll)
    // and reads the stream again.
    t.client.purge_queue("q").await.unwrap();
    let confirmed = tokio::time::timeout(
        Duration::from_secs(10),
        publisher.publish_confirmed(OutgoingMessage::new("", "q", "after")),
    )
    .await
    .expect("unblocked once the queue is empty");
    confirmed.unwrap();
    assert!(!publisher.is_blocked());
}

/// A raw QUIC connection to the broker that has not said Hello.
async fn raw_connection(t: &TestBroker) -> (quinn::Endpoint, quinn::Connection) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let trust = Trust::Pinned(t.broker.fingerprint().to_owned());
    endpoint.set_default_client_config(quic_client_config(&trust).unwrap());
    let connection = endpoint
        .connect(t.broker.local_addr(), "localhost")
        .unwrap()
        .await
        .unwrap();
    (endpoint, connection)
}

fn closed_with(error: &quinn::ConnectionError, code: ErrorCode) -> bool {
    matches!(error, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == code.as_u16().into())
}

/// Review finding 17: a connection that never sent its Hello was kept for ever, with megabytes
/// of buffers, and the accept loop took any number of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_says_hello_is_closed_at_the_deadline() {
    let t = TestBroker::start_with(|config| config.limits.hello_timeout_ms = 300).await;
    let (_endpoint, silent) = raw_connection(&t).await;
    // It opens the control stream and starts a Hello frame that never ends.
    let (mut send, _recv) = silent.open_bi().await.unwrap();
    let mut start = vec![1u8];
    start.extend_from_slice(&(60u32 << 10).to_be_bytes());
    start.extend_from_slice(&[0u8; 1000]);
    send.write_all(&start).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), silent.closed())
        .await
        .expect("the broker closes a connection without Hello");
    assert!(
        closed_with(&closed, ErrorCode::ProtocolViolation),
        "{closed:?}"
    );
    // One that announces a Hello of megabytes is refused at once, having sent little.
    let (_endpoint, greedy) = raw_connection(&t).await;
    let (mut send, _recv) = greedy.open_bi().await.unwrap();
    let mut start = vec![1u8];
    start.extend_from_slice(&(15u32 << 20).to_be_bytes());
    send.write_all(&start).await.unwrap();
    let flood = tokio::spawn(async move {
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0usize;
        while send.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let closed = tokio::time::timeout(Duration::from_secs(10), greedy.closed())
        .await
        .expect("the broker closes a connection with a huge Hello");
    assert!(closed_with(&closed, ErrorCode::FrameTooLarge), "{closed:?}");
    let sent = flood.await.unwrap();
    assert!(sent <= 1 << 20, "{sent} bytes were taken before any Hello");
    // Everyone else is served.
    t.client
        .declare_queue("still-here", QueueOptions::default())
        .await
        .unwrap();
}

/// A client that speaks only protocol versions this broker does not gets a clear refusal
/// naming both sides' versions, not a frame it cannot decode: one from the future, and one of
/// version 1 (before typed headers), whose ALPN is still accepted so that it hears why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_protocol_version_is_refused_with_both_versions_named() {
    use switchyard_client::framed::{FramedRecv, FramedSend};
    use switchyard_protocol::{Auth, ControlDown, ControlUp, DEFAULT_MAX_FRAME, Hello, StreamKind};
    let t = TestBroker::start().await;
    for offered in [vec![99], vec![1]] {
        let (_endpoint, connection) = raw_connection(&t).await;
        let (send, recv) = connection.open_bi().await.unwrap();
        let mut send = FramedSend::new(send, DEFAULT_MAX_FRAME);
        let mut recv = FramedRecv::new(recv, DEFAULT_MAX_FRAME);
        send.push_stream_kind(StreamKind::Control);
        send.send(&ControlUp::Hello(Hello {
            versions: offered.clone(),
            client_name: "another version".into(),
            auth: Auth::Anonymous,
        }))
        .await
        .unwrap();
        let offered = format!("{offered:?}");
        // The reason comes as a `Closing` frame, or in the connection's close if that
        // overtook it.
        if let Ok(Some(ControlDown::Closing { reason })) = recv.next::<ControlDown>().await {
            assert_eq!(reason.code, ErrorCode::UnsupportedVersion);
            assert!(reason.message.contains(&offered), "{}", reason.message);
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.closed())
            .await
            .unwrap();
        let quinn::ConnectionError::ApplicationClosed(close) = &closed else {
            panic!("expected the broker to close the connection, got {closed:?}");
        };
        assert_eq!(
            close.error_code,
            ErrorCode::UnsupportedVersion.as_u16().into()
        );
        let reason = String::from_utf8_lossy(&close.reason);
        assert!(
            reason.contains(&format!("the client offered {offered}"))
                && reason.contains("speaks protocol versions [2]"),
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_address_limit_are_refused_clearly() {
    let t = TestBroker::start_with(|config| config.limits.max_connections_per_address = 3).await;
    // The test's own client holds one.
    let _second = t.connect().await;
    let _third = t.connect().await;
    let (_endpoint, fourth) = raw_connection(&t).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), fourth.closed())
        .await
        .expect("the fourth connection is closed");
    assert!(closed_with(&closed, ErrorCode::LimitReached), "{closed:?}");
    t.client
        .declare_queue("still-here", QueueOptions::default())
        .await
        .unwrap();
    drop(_third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_exchanges_and_bindings_are_limited_with_a_clear_error() {
    let t = TestBroker::start_with(|config| {
        config.limits.max_queues = 2;
        config.limits.max_exchanges = 1;
        config.limits.max_bindings = 1;
    })
    .await;
    let c = &t.client;
    let refused = |result: Result<(), ClientError>, what: &str| match result {
        Err(ClientError::Refused(error)) => {
            assert_eq!(error.code, ErrorCode::LimitReached, "{}", error.message);
            assert!(error.message.contains(what), "{}", error.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    c.declare_queue("q1", QueueOptions::default())
        .await
        .unwrap();
    c.declare_queue("q2", QueueOptions::default())
        .await
        .unwrap();
    refused(
        c.declare_queue("q3", QueueOptions::default())
            .await
            .map(drop),
        "queues",
    );
    // Redeclaring an existing one is not a new queue.
    c.declare_queue("q1", QueueOptions::default())
        .await
        .unwrap();
    c.declare_exchange("x1", "direct", ExchangeOptions::default())
        .await
        .unwrap();
    refused(
        c.declare_exchange("x2", "direct", ExchangeOptions::default())
            .await,
        "exchanges",
    );
    c.bind_queue("x1", "q1", "a", Table::new()).await.unwrap();
    refused(
        c.bind_queue("x1", "q2", "b", Table::new()).await,
        "bindings",
    );
    // Deleting makes room again.
    c.delete_queue("q2", false, false).await.unwrap();
    c.declare_queue("q3", QueueOptions::default())
        .await
        .unwrap();
}

/// Review finding 20: a client that publishes but never reads its answers made the broker keep
/// up to about a million outcomes per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_never_reads_its_answers_is_no_longer_read_from() {
    let t = TestBroker::start_with(|config| {
        config.limits.max_unread_answers_per_connection = 1000;
    })
    .await;
    let connection = t.connect().await;
    let quic = connection.quic().unwrap();
    let (mut send, _recv_never_read) = quic.open_bi().await.unwrap();
    let mut frames = bytes::BytesMut::new();
    frames.extend_from_slice(&[2u8]); // a publish stream
    let publish = switchyard_protocol::PublishUp::Publish(switchyard_protocol::Publish {
        seq: 1,
        exchange: "no-such-exchange".into(),
        routing_key: "k".into(),
        mandatory: false,
        headers: Table::new(),
        properties: Default::default(),
        body: bytes::Bytes::from_static(b"x"),
    });
    let mut one = bytes::BytesMut::new();
    switchyard_protocol::encode(&publish, &mut one).unwrap();
    // 200,000 confirmed publishes whose answers (rejects) are never read.
    let writer = tokio::spawn(async move {
        send.write_all(&frames).await.unwrap();
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        let mut written = 0;
        for _ in 0..200 {
            if send.write_all(&batch).await.is_err() {
                break;
            }
            written += 1000;
        }
        written
    });
    let stalled = tokio::time::timeout(Duration::from_secs(5), writer).await;
    assert!(
        stalled.is_err(),
        "all 200,000 publishes were read though no answer was: {stalled:?}"
    );
    // The broker serves the others meanwhile.
    t.client
        .declare_queue("still-here", QueueOptions::default())
        .await
        .unwrap();
}

/// Review finding 23: argument values were unbounded, and a listing larger than a frame ended
/// the control stream without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_larger_than_a_frame_is_an_error_and_the_control_stream_lives_on() {
    let t = TestBroker::start_with(|config| {
        config.max_frame_bytes = 128 << 10;
        config.max_message_bytes = 64 << 10;
    })
    .await;
    let c = &t.client;
    let huge = QueueOptions {
        arguments: Table::new().with("note", "n".repeat(5000)),
        ..QueueOptions::default()
    };
    match c.declare_queue("huge-argument", huge).await {
        Err(ClientError::Refused(error)) => {
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{}", error.message)
        }
        other => panic!("a 5000-byte argument was accepted: {other:?}"),
    }
    for n in 0..600 {
        let name = format!("{n:04}-{}", "q".repeat(240));
        c.declare_queue(&name, QueueOptions::default())
            .await
            .unwrap();
    }
    match c.list_queues().await {
        Err(ClientError::Refused(error)) => {
            assert_eq!(error.code, ErrorCode::LimitReached, "{}", error.message)
        }
        other => panic!("expected a refusal, got {:?}", other.map(|q| q.len())),
    }
    // The same connection goes on working.
    c.declare_queue("after", QueueOptions::default())
        .await
        .unwrap();
    assert_eq!(c.queue_info("after").await.unwrap().ready, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_queue_is_deleted_is_cancelled_cleanly() {
    let t = TestBroker::start().await;
    t.client
        .declare_queue("doomed", QueueOptions::default())
        .await
        .unwrap();
    let mut consumer = t
        .client
        .consume(ConsumeOptions::new("doomed"))
        .await
        .unwrap();
    t.client.delete_queue("doomed", false, false).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the consumer hears of it");
    match end {
        Some(Err(ClientError::Closed { reason })) => {
            assert!(reason.contains("QueueDeleted"), "{reason}")
        }
        other => panic!("expected the subscription to end, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_trap_during_routing_rejects_that_message_and_loses_nothing_confirmed() {
    let t = TestBroker::start().await;
    t.broker
        .plugins()
        .load_file(Path::new(wasm::TRAPPER))
        .unwrap();
    let c = &t.client;
    c.declare_exchange("fragile", "trapper", ExchangeOptions::default())
        .await
        .unwrap();
    c.declare_queue("kept", QueueOptions::default())
        .await
        .unwrap();
    c.bind_queue("fragile", "kept", "ok", Table::new())
        .await
        .unwrap();

    let mut publisher = c.publisher().await.unwrap();
    let first = publisher
        .publish(OutgoingMessage::new("fragile", "ok", "1"))
        .await
        .unwrap();
    let poison = publisher
        .publish(OutgoingMessage::new("fragile", "boom", "2"))
        .await
        .unwrap();
    let last = publisher
        .publish(OutgoingMessage::new("fragile", "ok", "3"))
        .await
        .unwrap();
    first.wait().await.unwrap();
    match poison.wait().await.unwrap_err() {
        ClientError::Rejected { error, .. } => {
            assert_eq!(error.code, ErrorCode::RoutingFault);
            // One line naming the key, the exchange, the plugin, and the panic's message and place.
            let message = &error.message;
            assert!(
                message.contains(r#"routing key "boom" at exchange "fragile""#)
                    && message.contains(r#"plugin "trapper" 0.1.0: route trapped: panicked at "#)
                    && message.contains("src/lib.rs:")
                    && message.ends_with(": asked to trap")
                    && !message.contains('\n'),
                "{message}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    last.wait().await.unwrap();
    let mut consumer = c.consume(ConsumeOptions::new("kept")).await.unwrap();
    let bodies = [
        next_delivery(&mut consumer).await.body,
        next_delivery(&mut consumer).await.body,
    ];
    assert_eq!(bodies, [&b"1"[..], &b"3"[..]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_does_not_stall_another_on_the_same_connection() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("slow", QueueOptions::default())
        .await
        .unwrap();
    c.declare_queue("fast", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    // 6 MB for the slow consumer: more than its stream's flow-control window and its
    // client-side buffer hold, so its stream really stalls.
    for i in 0..6000 {
        publisher
            .publish(OutgoingMessage::new("", "slow", vec![b's'; 1024]))
            .await
            .unwrap();
        if i % 30 == 0 {
            publisher
                .publish(OutgoingMessage::new("", "fast", format!("{i}")))
                .await
                .unwrap();
        }
    }
    publisher
        .publish_confirmed(OutgoingMessage::new("", "fast", "end"))
        .await
        .unwrap();
    // The slow consumer never reads: its stream's flow-control window fills.
    let _stalled = c
        .consume(ConsumeOptions {
            prefetch: 0,
            no_ack: true,
            ..ConsumeOptions::new("slow")
        })
        .await
        .unwrap();
    let mut fast = c.consume(ConsumeOptions::new("fast")).await.unwrap();
    let mut seen = 0;
    tokio::time::sleep(Duration::from_millis(200)).await; // let the slow stream fill up
    loop {
        let delivery = next_delivery(&mut fast).await;
        delivery.ack().unwrap();
        seen += 1;
        if &delivery.body[..] == b"end" {
            break;
        }
    }
    assert_eq!(seen, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_of_a_lost_connection_go_to_another_consumer() {
    let t = TestBroker::start().await;
    t.client
        .declare_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = t.client.publisher().await.unwrap();
    for i in 0..3 {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "jobs", format!("job {i}")))
            .await
            .unwrap();
    }
    let doomed = t.connect().await;
    let mut first = doomed.consume(ConsumeOptions::new("jobs")).await.unwrap();
    let taken = next_delivery(&mut first).await;
    assert!(!taken.redelivered);
    // The client goes away without acking.
    doomed.close().await;

    let mut second = t.client.consume(ConsumeOptions::new("jobs")).await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let delivery = next_delivery(&mut second).await;
        bodies.push((
            String::from_utf8_lossy(&delivery.body).into_owned(),
            delivery.redelivered,
        ));
        delivery.ack().unwrap();
    }
    bodies.sort();
    assert_eq!(bodies[0], ("job 0".to_owned(), true), "{bodies:?}");
    assert_eq!(bodies.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_filter_delivers_only_matching_messages_and_bad_expressions_fail_at_subscribe() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("orders", QueueOptions::default())
        .await
        .unwrap();
    let error = c
        .consume(ConsumeOptions {
            filter: Some(("selector".into(), "region = ".into())),
            ..ConsumeOptions::new("orders")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(e) if e.code == ErrorCode::PluginRefused && e.message.contains("position")),
        "{error:?}"
    );

    let mut eu = c
        .consume(ConsumeOptions {
            filter: Some(("selector".into(), "region = 'eu'".into())),
            ..ConsumeOptions::new("orders")
        })
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    for region in ["us", "eu", "apac", "eu"] {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "orders", region).header("region", region))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let delivery = next_delivery(&mut eu).await;
        assert_eq!(&delivery.body[..], b"eu");
        delivery.ack().unwrap();
    }
    let info = c.queue_info("orders").await.unwrap();
    assert_eq!(
        info.ready, 2,
        "the others wait for a consumer that wants them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_memory_watermark_publishers_are_held_back_and_nothing_is_dropped() {
    let t = TestBroker::start_with(|config| config.memory_high_watermark_bytes = 64 * 1024).await;
    let c = &t.client;
    c.declare_queue("backlog", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher_with(10_000).await.unwrap();
    let mut confirmations = Vec::new();
    for _ in 0..2000 {
        confirmations.push(
            publisher
                .publish(OutgoingMessage::new("", "backlog", vec![7u8; 1024]))
                .await
                .unwrap(),
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !publisher.is_blocked() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never pushed back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = c.queue_info("backlog").await.unwrap().ready;
    assert!(
        held < 2000,
        "the broker stopped taking messages ({held} queued)"
    );

    let mut consumer = c
        .consume(ConsumeOptions {
            prefetch: 500,
            ..ConsumeOptions::new("backlog")
        })
        .await
        .unwrap();
    let drain = tokio::spawn(async move {
        for _ in 0..2000 {
            next_delivery(&mut consumer).await.ack().unwrap();
        }
    });
    for confirmation in confirmations {
        confirmation.wait().await.unwrap();
    }
    drain.await.unwrap();
}
