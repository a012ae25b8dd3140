//! Real AMQP 0-9-1 clients nobody on the team wrote, against a broker in this process: pika
//! runs RabbitMQ's six tutorials and the features applications lean on (confirms and returns,
//! nack and requeue, dead letters, basic.get, exchange-to-exchange bindings, channel errors,
//! transactions, heartbeats, connection.blocked). The scripts are in `tests/clients/pika/`;
//! `.ci/run` installs pika. A message crosses between AMQP and Switchyard's own protocol with
//! every property and typed header.

use switchyard::config::AmqpSettings;
use switchyard_client::{ConsumeOptions, OutgoingMessage, QueueOptions, Value};
use switchyard_tests::client_scripts::{amqp_broker, python, python_with};
use switchyard_tests::{TestBroker, every_property, every_value_type, next_delivery};

macro_rules! pika_test {
    ($name:ident, $script:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let broker = amqp_broker(|_| {}).await;
            python(&broker, "pika", $script);
        }
    };
}

pika_test!(pika_tutorial_1_hello_world, "t1_hello_world.py");
pika_test!(
    pika_tutorial_2_work_queues_with_fair_dispatch,
    "t2_work_queues.py"
);
pika_test!(pika_tutorial_3_publish_subscribe, "t3_publish_subscribe.py");
pika_test!(pika_tutorial_4_routing, "t4_routing.py");
pika_test!(pika_tutorial_5_topics, "t5_topics.py");
pika_test!(
    pika_tutorial_6_rpc_with_and_without_direct_reply_to,
    "t6_rpc.py"
);
pika_test!(
    pika_publisher_confirms_returns_and_nacks,
    "confirms_and_returns.py"
);
pika_test!(
    pika_nack_requeue_reject_and_dead_letters,
    "nack_requeue_and_dead_letters.py"
);
pika_test!(pika_basic_get, "basic_get.py");
pika_test!(
    pika_exchange_to_exchange_bindings,
    "exchange_to_exchange.py"
);
pika_test!(
    pika_a_channel_error_closes_only_its_channel,
    "channel_errors.py"
);
pika_test!(pika_transactions, "transactions.py");
pika_test!(pika_heartbeats_and_a_silent_peer, "heartbeats.py");
pika_test!(
    pika_declares_a_plugin_exchange_type_and_consumes_through_a_filter,
    "beyond_rabbitmq.py"
);
pika_test!(
    pika_single_active_consumer_hands_over_on_cancel,
    "single_active_consumer.py"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_connects_over_tls_verifying_the_brokers_certificate() {
    let broker = TestBroker::start_with(|config| config.amqp = AmqpSettings::on_any_port()).await;
    let tls_port = broker.broker.amqps_addr().expect("AMQPS is on").port();
    let ca = broker.data_dir.path().join("tls").join("cert.pem");
    python_with(
        &broker,
        "pika",
        "amqps.py",
        &[
            ("AMQPS_PORT", tls_port.to_string()),
            ("CA_FILE", ca.display().to_string()),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_is_told_when_the_memory_watermark_blocks_publishers() {
    let broker = amqp_broker(|config| config.memory_high_watermark_bytes = 50_000).await;
    python(&broker, "pika", "connection_blocked.py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_over_amqp_arrives_over_quic_with_every_property_and_type() {
    let broker = amqp_broker(|_| {}).await;
    python(&broker, "pika", "interop_publish.py");
    let mut consumer = broker
        .client
        .consume(ConsumeOptions::new("from-amqp"))
        .await
        .unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(&delivery.body[..], b"\x00body\xff");
    let p = &delivery.properties;
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.content_encoding.as_deref(), Some("utf-8"));
    assert!(p.persistent);
    assert_eq!(p.priority, 4);
    assert_eq!(p.correlation_id, Some("c-7".to_owned().into()));
    assert_eq!(p.message_id, Some("m-7".to_owned().into()));
    assert_eq!(p.reply_to.as_deref(), Some("replies"));
    assert_eq!(p.expiration, Some(60_000));
    assert_eq!(
        p.timestamp,
        Some(1_764_650_000_000),
        "seconds became milliseconds"
    );
    assert_eq!(p.message_type.as_deref(), Some("order.created"));
    assert_eq!(p.user_id.as_deref(), Some("guest"));
    assert_eq!(p.app_id.as_deref(), Some("shop"));
    assert_eq!(p.cluster_id.as_deref(), Some("eu-1"));
    let h = &delivery.headers;
    assert_eq!(h.get("int"), Some(&Value::I32(7)), "{h:?}");
    assert_eq!(h.get("big"), Some(&Value::I64(1 << 40)));
    assert_eq!(h.get("negative"), Some(&Value::I32(-70_000)));
    assert_eq!(h.get("true"), Some(&Value::Bool(true)));
    assert_eq!(h.get("none"), Some(&Value::Void));
    assert_eq!(h.get("text"), Some(&Value::String("ünïcode ✓".into())));
    assert_eq!(h.get("bytes"), Some(&Value::Bytes(vec![0, 0xff])));
    assert_eq!(
        h.get("decimal"),
        Some(&Value::Decimal(switchyard_client::Decimal {
            scale: 2,
            value: 12_345
        }))
    );
    assert_eq!(h.get("when"), Some(&Value::Timestamp(1_764_650_000)));
    assert_eq!(
        h.get("list"),
        Some(&Value::Array(vec![
            Value::I32(1),
            Value::String("a".into()),
            Value::Void,
            Value::Array(vec![Value::I32(2)]),
        ]))
    );
    let Some(Value::Table(table)) = h.get("table") else {
        panic!("table header: {h:?}");
    };
    assert_eq!(table.get("callbacks"), Some(&Value::Void));
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_over_quic_arrives_over_amqp_with_every_property_and_type() {
    let broker = amqp_broker(|_| {}).await;
    broker
        .client
        .declare_queue("from-quic", QueueOptions::default())
        .await
        .unwrap();
    let mut publisher = broker.client.publisher().await.unwrap();
    let mut properties = every_property("guest");
    properties.user_id = None;
    let mut message = OutgoingMessage::new("", "from-quic", "payload");
    message.headers = every_value_type();
    message.properties = properties;
    publisher.publish_confirmed(message).await.unwrap();
    let output = python(&broker, "pika", "interop_consume.py");
    for expected in [
        "body b'payload'",
        "property content_type 'application/json'",
        "property content_encoding 'gzip'",
        "property delivery_mode 2",
        "property priority 3",
        // A binary correlation id that is not UTF-8 goes out as hex.
        "property correlation_id '0x0001fe'",
        "property reply_to 'replies'",
        "property expiration '3600000'",
        "property message_id 'm-1'",
        "property timestamp 1764650000",
        "property type 'order.created'",
        "property app_id 'shop'",
        "property cluster_id 'eu-1'",
        // A Python dict keeps the last of a repeated name.
        "tenant: str:'a name may repeat'",
        "int:-128",
        "int:255",
        "int:-300",
        "int:60000",
        "int:-70000",
        "int:4000000000",
        "-9223372036854775808",
        "Decimal:Decimal('123.45')",
        "str:'ünïcode ✓'",
        "bytes:b'\\x00\\xff\\x80\\x7f'",
        "datetime:datetime.datetime(2025, 12, 2, 4, 33, 20, tzinfo=datetime.timezone.utc)",
        "NoneType:None",
        "bool:False",
        "empty: {}",
    ] {
        assert!(
            output.contains(expected),
            "{expected:?} missing from:\n{output}"
        );
    }
}
