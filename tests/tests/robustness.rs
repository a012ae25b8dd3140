//! Bad input and failures over the wire: malformed frames, oversized messages, deleted queues,
//! plugin faults, slow consumers and lost connections. The broker keeps serving everyone else.

use std::path::Path;
use std::time::Duration;

use switchyard_client::{
    ClientError, ConsumeOptions, ErrorCode, ExchangeOptions, OutgoingMessage, QueueOptions,
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
    c.bind_queue("fragile", "kept", "ok", Vec::new())
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
            assert!(error.message.contains("trapped"), "{}", error.message);
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
