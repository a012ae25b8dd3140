//! Messaging through a real broker over QUIC on 127.0.0.1: declare, bind, publish with
//! confirms, consume with acks, redelivery.

use std::time::Duration;

use switchyard_client::{
    ClientError, Confirmed, ConsumeOptions, Consumer, Delivery, ErrorCode, ExchangeOptions,
    OutgoingMessage, QueueOptions,
};
use switchyard_tests::TestBroker;

/// The next delivery, failing the test after a generous timeout instead of hanging.
async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the subscription is open")
        .expect("a delivery, not an error")
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_to_a_topic_exchange_reaches_the_bound_queue() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_exchange("market", "topic", ExchangeOptions::default())
        .await
        .unwrap();
    c.declare_queue("trades", QueueOptions::default())
        .await
        .unwrap();
    c.bind_queue("market", "trades", "stock.*.nyse", Vec::new())
        .await
        .unwrap();

    let mut publisher = c.publisher().await.unwrap();
    let routed = publisher
        .publish_confirmed(OutgoingMessage::new("market", "stock.ibm.nyse", "buy 100"))
        .await
        .unwrap();
    assert_eq!(routed, Confirmed::Routed);
    let unroutable = publisher
        .publish_confirmed(OutgoingMessage::new("market", "fx.eur", "ignored").mandatory())
        .await
        .unwrap();
    assert_eq!(unroutable, Confirmed::Returned);

    let mut consumer = c.consume(ConsumeOptions::new("trades")).await.unwrap();
    let delivery = next(&mut consumer).await;
    assert_eq!(text(&delivery), "buy 100");
    assert_eq!(delivery.exchange, "market");
    assert_eq!(delivery.routing_key, "stock.ibm.nyse");
    assert!(!delivery.redelivered);
    delivery.ack().unwrap();

    let queues = c.list_queues().await.unwrap();
    let trades = queues.iter().find(|q| q.name == "trades").unwrap();
    assert_eq!(trades.consumers, 1);
    t.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_message_is_redelivered_with_its_count() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("work", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    publisher
        .publish_confirmed(OutgoingMessage::new("", "work", "job"))
        .await
        .unwrap();
    let mut consumer = c.consume(ConsumeOptions::new("work")).await.unwrap();
    let first = next(&mut consumer).await;
    first.nack(false, true).unwrap();
    let second = next(&mut consumer).await;
    assert_eq!(text(&second), "job");
    assert!(second.redelivered);
    assert_eq!(second.delivery_count, 1);
    second.ack().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_exchanges_and_queues_are_clear_errors() {
    let t = TestBroker::start().await;
    let c = &t.client;
    let mut publisher = c.publisher().await.unwrap();
    let error = publisher
        .publish_confirmed(OutgoingMessage::new("nope", "k", "x"))
        .await
        .unwrap_err();
    match error {
        ClientError::Rejected { error, .. } => assert_eq!(error.code, ErrorCode::NotFound),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let error = c.consume(ConsumeOptions::new("missing")).await.unwrap_err();
    match error {
        ClientError::Refused(error) => {
            assert_eq!(error.code, ErrorCode::NotFound);
            assert!(error.message.contains("missing"), "{}", error.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let error = c
        .declare_exchange("x", "no-such-type", ExchangeOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Refused(ref e) if e.code == ErrorCode::InvalidArgument),
        "{error:?}"
    );
}
