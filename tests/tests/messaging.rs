//! Messaging through a real broker over QUIC on 127.0.0.1: declare, bind, publish with
//! confirms, consume with acks, redelivery.

use std::time::Duration;

use switchyard_client::{
    ClientError, Confirmed, ConsumeOptions, Delivery, ErrorCode, ExchangeOptions, OutgoingMessage,
    QueueOptions, Table,
};
use switchyard_tests::{TestBroker, next_delivery};

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
    c.bind_queue("market", "trades", "stock.*.nyse", Table::new())
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
    let delivery = next_delivery(&mut consumer).await;
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
    let first = next_delivery(&mut consumer).await;
    first.nack(false, true).unwrap();
    let second = next_delivery(&mut consumer).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_carries_reply_to_and_correlation_id() {
    let t = TestBroker::start().await;
    let server = t.connect().await;
    server
        .declare_queue("rpc", QueueOptions::default())
        .await
        .unwrap();
    let mut requests = server.consume(ConsumeOptions::new("rpc")).await.unwrap();
    let mut replies = server.publisher().await.unwrap();
    tokio::spawn(async move {
        while let Some(Ok(request)) = requests.next().await {
            let body = String::from_utf8_lossy(&request.body).to_uppercase();
            let reply = OutgoingMessage::reply_to(&request, body).expect("reply_to is set");
            replies.publish_confirmed(reply).await.unwrap();
            request.ack().unwrap();
        }
    });
    let rpc = switchyard_client::RpcClient::new(&t.client).await.unwrap();
    for word in ["ping", "pong"] {
        let reply = rpc
            .call(
                OutgoingMessage::new("", "rpc", word),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(text(&reply), word.to_uppercase());
        assert!(reply.properties.correlation_id.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_again_is_a_no_op_unless_properties_differ() {
    let t = TestBroker::start().await;
    let c = &t.client;
    let durable = QueueOptions {
        durable: true,
        ..QueueOptions::default()
    };
    c.declare_queue("q", durable.clone()).await.unwrap();
    c.declare_queue("q", durable).await.unwrap();
    let error = c
        .declare_queue("q", QueueOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(e) if e.code == ErrorCode::PreconditionFailed),
        "{error:?}"
    );
    c.declare_exchange("x", "direct", ExchangeOptions::default())
        .await
        .unwrap();
    let error = c
        .declare_exchange("x", "fanout", ExchangeOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(e) if e.code == ErrorCode::PreconditionFailed),
        "{error:?}"
    );
    let generated = c.declare_queue("", QueueOptions::default()).await.unwrap();
    assert!(generated.starts_with("amq.gen-"), "{generated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_respects_if_unused_and_if_empty_and_purge_empties() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("q", QueueOptions::default()).await.unwrap();
    let mut publisher = c.publisher().await.unwrap();
    for _ in 0..3 {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "q", "m"))
            .await
            .unwrap();
    }
    let error = c.delete_queue("q", false, true).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(e) if e.code == ErrorCode::PreconditionFailed),
        "{error:?}"
    );
    assert_eq!(c.purge_queue("q").await.unwrap(), 3);
    let consumer = c.consume(ConsumeOptions::new("q")).await.unwrap();
    let error = c.delete_queue("q", true, false).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(e) if e.code == ErrorCode::PreconditionFailed),
        "{error:?}"
    );
    consumer.close().await;
    assert_eq!(c.delete_queue("q", true, true).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queues_belong_to_their_connection_and_go_with_it() {
    let t = TestBroker::start().await;
    let owner = t.connect().await;
    let exclusive = QueueOptions {
        exclusive: true,
        ..QueueOptions::default()
    };
    owner.declare_queue("mine", exclusive).await.unwrap();
    let error = t
        .client
        .consume(ConsumeOptions::new("mine"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(e) if e.code == ErrorCode::ResourceLocked),
        "{error:?}"
    );
    owner.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t
        .client
        .list_queues()
        .await
        .unwrap()
        .iter()
        .any(|q| q.name == "mine")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the exclusive queue outlived its connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_bindings_route_through_both_plugins() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_exchange("front", "topic", ExchangeOptions::default())
        .await
        .unwrap();
    c.declare_exchange("back", "fanout", ExchangeOptions::default())
        .await
        .unwrap();
    c.declare_queue("a", QueueOptions::default()).await.unwrap();
    c.declare_queue("b", QueueOptions::default()).await.unwrap();
    c.bind_exchange("front", "back", "orders.#", Table::new())
        .await
        .unwrap();
    c.bind_queue("back", "a", "", Table::new()).await.unwrap();
    c.bind_queue("back", "b", "", Table::new()).await.unwrap();
    // A cycle must not loop.
    c.bind_exchange("back", "front", "", Table::new())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    publisher
        .publish_confirmed(OutgoingMessage::new("front", "orders.eu", "o"))
        .await
        .unwrap();
    publisher
        .publish_confirmed(OutgoingMessage::new("front", "payments", "p"))
        .await
        .unwrap();
    for queue in ["a", "b"] {
        assert_eq!(c.queue_info(queue).await.unwrap().ready, 1, "queue {queue}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_limits_deliveries_and_consumers_share_round_robin() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("q", QueueOptions::default()).await.unwrap();
    let options = ConsumeOptions {
        prefetch: 2,
        ..ConsumeOptions::new("q")
    };
    let mut one = c.consume(options.clone()).await.unwrap();
    let mut two = c.consume(options).await.unwrap();
    let mut publisher = c.publisher().await.unwrap();
    for i in 0..6 {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "q", format!("{i}")))
            .await
            .unwrap();
    }
    let a = [next_delivery(&mut one).await, next_delivery(&mut one).await];
    let b = [next_delivery(&mut two).await, next_delivery(&mut two).await];
    let info = c.queue_info("q").await.unwrap();
    assert_eq!(
        (info.ready, info.unacked),
        (2, 4),
        "two each, the rest waits"
    );
    let mut bodies: Vec<String> = a.iter().chain(&b).map(text).collect();
    bodies.sort();
    assert_eq!(bodies, ["0", "1", "2", "3"]);
    a[1].ack_multiple().unwrap();
    let more = next_delivery(&mut one).await;
    more.ack().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_the_client_redeclares_and_its_consumer_resumes() {
    let t = TestBroker::start().await;
    let c = t.client.clone();
    c.declare_exchange("events", "topic", ExchangeOptions::default())
        .await
        .unwrap();
    let queue = c.declare_queue("", QueueOptions::default()).await.unwrap();
    c.bind_queue("events", &queue, "user.#", Table::new())
        .await
        .unwrap();
    let mut consumer = c.consume(ConsumeOptions::new(&queue)).await.unwrap();
    let mut publisher = c.publisher().await.unwrap();
    publisher
        .publish_confirmed(OutgoingMessage::new("events", "user.signup", "before"))
        .await
        .unwrap();
    let before = next_delivery(&mut consumer).await;
    assert_eq!(text(&before), "before");
    before.ack().unwrap();

    // The broker restarts empty (nothing is durable yet): the client must rebuild its topology.
    let t = t.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while c.reconnects() == 0 || c.id().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed = publisher
        .publish_confirmed(OutgoingMessage::new("events", "user.login", "after"))
        .await
        .unwrap();
    assert_eq!(
        routed,
        Confirmed::Routed,
        "the exchange, queue and binding were declared again"
    );
    let after = next_delivery(&mut consumer).await;
    assert_eq!(text(&after), "after");
    after.ack().unwrap();
    assert!(
        t.client
            .list_queues()
            .await
            .unwrap()
            .iter()
            .any(|q| q.name == queue && q.consumers == 1)
    );
}

/// One user, `app` with password `s3cret`.
fn with_user_app(config: &mut switchyard::BrokerConfig) {
    config.users = vec![switchyard::config::UserConfig {
        name: "app".into(),
        password_hash: switchyard::auth::hash_password("s3cret"),
        tags: Vec::new(),
    }];
}

fn app_password() -> switchyard_client::Auth {
    switchyard_client::Auth::Password {
        user: "app".into(),
        password: "s3cret".into(),
    }
}

async fn connect_as(
    broker: &switchyard::Broker,
    auth: switchyard_client::Auth,
) -> Result<switchyard_client::Connection, ClientError> {
    let mut options = switchyard_client::ConnectOptions::new(
        broker.local_addr(),
        switchyard_client::Trust::Pinned(broker.fingerprint().to_owned()),
    );
    options.auth = auth;
    switchyard_client::Connection::connect(options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_configured_only_the_right_password_connects() {
    let (t, _data_dir, _) = switchyard_tests::start_broker(with_user_app).await;
    let connect = |auth| connect_as(&t, auth);
    for auth in [
        switchyard_client::Auth::Anonymous,
        switchyard_client::Auth::Password {
            user: "app".into(),
            password: "nope".into(),
        },
        switchyard_client::Auth::Password {
            user: "eve".into(),
            password: "s3cret".into(),
        },
    ] {
        match connect(auth).await.unwrap_err() {
            ClientError::Refused(error) => assert_eq!(error.code, ErrorCode::AccessRefused),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let app = connect(app_password()).await.unwrap();
    app.declare_queue("ok", QueueOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_delete_queue_goes_when_its_last_consumer_leaves() {
    let t = TestBroker::start().await;
    let c = &t.client;
    let options = QueueOptions {
        auto_delete: true,
        ..QueueOptions::default()
    };
    c.declare_queue("temp", options).await.unwrap();
    let first = c.consume(ConsumeOptions::new("temp")).await.unwrap();
    let second = c.consume(ConsumeOptions::new("temp")).await.unwrap();
    first.close().await;
    assert!(
        c.list_queues()
            .await
            .unwrap()
            .iter()
            .any(|q| q.name == "temp"),
        "one consumer is left"
    );
    second.close().await;
    assert!(
        !c.list_queues()
            .await
            .unwrap()
            .iter()
            .any(|q| q.name == "temp")
    );
}

/// Trustworthy-core item 6: closing a connection discarded what its publish streams had not
/// delivered yet, so the last unconfirmed publishes before a close vanished silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_delivers_everything_published_before_it() {
    let t = TestBroker::start().await;
    t.client
        .declare_queue("tail", QueueOptions::default())
        .await
        .unwrap();
    const COUNT: usize = 3000;
    let publishing = t.connect().await;
    let mut publisher = publishing.publisher().await.unwrap();
    let body = vec![b'x'; 1024];
    for _ in 0..COUNT {
        publisher
            .publish_unconfirmed(OutgoingMessage::new("", "tail", body.clone()))
            .await
            .unwrap();
    }
    // A second publisher, dropped before the close: its stream is finished by the drop.
    let mut dropped = publishing.publisher().await.unwrap();
    dropped
        .publish_unconfirmed(OutgoingMessage::new("", "tail", "last words"))
        .await
        .unwrap();
    drop(dropped);
    publishing.close().await;
    // Everything was enqueued before `close` returned.
    let info = t.client.queue_info("tail").await.unwrap();
    assert_eq!(info.ready, COUNT as u64 + 1);
    // And the publisher kept by the user now fails instead of publishing into the void.
    assert!(
        publisher
            .publish_unconfirmed(OutgoingMessage::new("", "tail", "after close"))
            .await
            .is_err()
    );
}

/// Review finding 11: the exclusive flag of a subscription was ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_consumer_is_the_queues_only_consumer() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("ordered", QueueOptions::default())
        .await
        .unwrap();
    let exclusive = || {
        let mut options = ConsumeOptions::new("ordered");
        options.exclusive = true;
        options
    };
    let holder = c.consume(exclusive()).await.unwrap();
    let other = t.connect().await;
    for options in [ConsumeOptions::new("ordered"), exclusive()] {
        match other.consume(options).await {
            Err(ClientError::Refused(error)) => {
                assert_eq!(error.code, ErrorCode::ResourceLocked, "{}", error.message);
            }
            Ok(_) => panic!("a second consumer of an exclusively consumed queue was accepted"),
            Err(error) => panic!("unexpected error {error}"),
        }
    }
    holder.close().await;
    let plain = other.consume(ConsumeOptions::new("ordered")).await.unwrap();
    let Err(ClientError::Refused(error)) = c.consume(exclusive()).await else {
        panic!("an exclusive consumer was accepted beside another consumer");
    };
    assert_eq!(error.code, ErrorCode::ResourceLocked);
    plain.close().await;
}

/// Review finding 10: a Cancel requeued every unacked delivery at once, so a worker that shut
/// down gracefully saw its in-flight work handed to another worker, and its acks failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_consumer_may_still_settle_what_it_holds() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    for n in 0..12 {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "jobs", format!("job {n}")))
            .await
            .unwrap();
    }
    let mut options = ConsumeOptions::new("jobs");
    options.prefetch = 10;
    let mut worker = c.consume(options).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next_delivery(&mut worker).await);
    }
    let other = t.connect().await;
    let mut successor = other.consume(ConsumeOptions::new("jobs")).await.unwrap();
    worker.cancel();
    // The subscription ends for new deliveries...
    let end = tokio::time::timeout(Duration::from_secs(10), worker.next()).await;
    assert!(matches!(end, Ok(None)), "the subscription ended");
    // ...while what the worker holds stays its own to finish.
    for delivery in &held[..9] {
        delivery.ack().unwrap();
    }
    worker.sync().await.unwrap();
    // The successor gets the two never delivered; the last held one comes back only when the
    // worker lets go of it, marked redelivered.
    let mut got: Vec<String> = Vec::new();
    for _ in 0..2 {
        let delivery = next_delivery(&mut successor).await;
        assert!(!delivery.redelivered, "{}", text(&delivery));
        got.push(text(&delivery));
        delivery.ack().unwrap();
    }
    got.sort();
    assert_eq!(got, ["job 10", "job 11"]);
    drop(held);
    drop(worker);
    let returned = next_delivery(&mut successor).await;
    assert_eq!(text(&returned), "job 9");
    assert!(returned.redelivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_consumers_on_one_connection_all_subscribe_and_receive() {
    // The broker starts a connection with a small stream limit and raises it as streams open;
    // opening many at once must wait for that credit, not fail.
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("crowd", QueueOptions::default())
        .await
        .unwrap();
    let mut consumers =
        futures::future::try_join_all((0..300).map(|_| c.consume(ConsumeOptions::new("crowd"))))
            .await
            .unwrap();
    let queues = c.list_queues().await.unwrap();
    let crowd = queues.iter().find(|q| q.name == "crowd").unwrap();
    assert_eq!(crowd.consumers, 300);

    let mut publisher = c.publisher().await.unwrap();
    for n in 0..consumers.len() {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "crowd", format!("m{n}")))
            .await
            .unwrap();
    }
    // Round robin: each consumer gets one.
    for consumer in &mut consumers {
        next_delivery(consumer).await.ack().unwrap();
    }
    t.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_publishes_are_delivered_and_a_refused_one_is_dropped_silently() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("fire", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    publisher
        .publish_unconfirmed(OutgoingMessage::new("", "fire", "one"))
        .await
        .unwrap();
    // Refused by the broker (no such exchange): no answer comes, and the stream goes on.
    publisher
        .publish_unconfirmed(OutgoingMessage::new("no-such-exchange", "fire", "lost"))
        .await
        .unwrap();
    // A confirmed publish on the same stream still gets its confirm, after the others.
    let confirmed = publisher
        .publish_confirmed(OutgoingMessage::new("", "fire", "two"))
        .await
        .unwrap();
    assert_eq!(confirmed, Confirmed::Routed);
    publisher
        .publish_unconfirmed(OutgoingMessage::new("", "fire", "three"))
        .await
        .unwrap();

    let mut consumer = c.consume(ConsumeOptions::new("fire")).await.unwrap();
    for expected in ["one", "two", "three"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(text(&delivery), expected);
        delivery.ack().unwrap();
    }
    consumer.sync().await.unwrap();
    let queues = c.list_queues().await.unwrap();
    let fire = queues.iter().find(|q| q.name == "fire").unwrap();
    assert_eq!(
        (fire.ready, fire.unacked),
        (0, 0),
        "the refused one never arrived"
    );
    t.broker.shutdown().await;
}

/// Headers of every value type (nested ones too) and every property come out of the broker
/// exactly as they went in, over QUIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_type_and_property_round_trips_through_the_broker() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("typed", QueueOptions::default())
        .await
        .unwrap();
    let mut message = OutgoingMessage::new("", "typed", "body");
    message.headers = switchyard_tests::every_value_type();
    // Nobody authenticates on this broker, so the user id is carried unchecked.
    message.properties = switchyard_tests::every_property("anyone");
    let mut publisher = c.publisher().await.unwrap();
    publisher.publish_confirmed(message.clone()).await.unwrap();
    let mut consumer = c.consume(ConsumeOptions::new("typed")).await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.headers, message.headers);
    assert_eq!(*delivery.properties, message.properties);
    assert_eq!(text(&delivery), "body");
}

/// As RabbitMQ: a publish whose user_id is not the authenticated user is refused
/// (PRECONDITION_FAILED), so a consumer can trust the property.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_other_than_the_authenticated_user_is_refused() {
    let (t, _data_dir, _) = switchyard_tests::start_broker(with_user_app).await;
    let c = connect_as(&t, app_password()).await.unwrap();
    c.declare_queue("audited", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    let honest = OutgoingMessage::new("", "audited", "mine").user_id("app");
    assert_eq!(
        publisher.publish_confirmed(honest).await.unwrap(),
        Confirmed::Routed
    );
    let forged = OutgoingMessage::new("", "audited", "theirs").user_id("admin");
    match publisher.publish_confirmed(forged).await {
        Err(ClientError::Rejected { error, .. }) => {
            assert_eq!(error.code, ErrorCode::PreconditionFailed);
            assert!(error.message.contains("admin"), "{}", error.message);
        }
        other => panic!("expected a negative confirm, got {other:?}"),
    }
    let mut consumer = c.consume(ConsumeOptions::new("audited")).await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(text(&delivery), "mine");
    assert_eq!(delivery.properties.user_id.as_deref(), Some("app"));
}

/// The session layer's get (AMQP's basic.get, for the frontends that have it): one message
/// at a time with how many remain, settled through the getter; one taken and not settled goes
/// back to the queue when the getter closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_gets_single_messages_and_settles_them() {
    use switchyard::session::Settlement;

    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("jobs", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = c.publisher().await.unwrap();
    for body in ["one", "two", "three"] {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "jobs", body))
            .await
            .unwrap();
    }
    let session = t
        .broker
        .sessions()
        .open(switchyard::auth::Principal::Anonymous, u64::MAX);
    let getter = session.getter("jobs").unwrap();
    let body = |got: &switchyard::session::Got| got.delivery.queued.message.body.clone();
    let first = getter.get(false).unwrap();
    assert_eq!((body(&first), first.remaining), ("one".into(), 2));
    let settled = getter.settle(&[Settlement::Ack {
        tag: first.delivery.tag,
        multiple: false,
    }]);
    assert_eq!(settled, [1]);
    let second = getter.get(true).unwrap();
    assert_eq!((body(&second), second.remaining), ("two".into(), 1));
    let third = getter.get(false).unwrap();
    assert_eq!(body(&third), "three");
    assert!(getter.get(false).is_none());
    getter.close();
    // "three" was taken but not settled: it is back, redelivered.
    let mut consumer = c.consume(ConsumeOptions::new("jobs")).await.unwrap();
    let back = next_delivery(&mut consumer).await;
    assert_eq!(text(&back), "three");
    assert!(back.redelivered);
    session.close();
}
