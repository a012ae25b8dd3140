//! lapin, the Rust AMQP 0-9-1 client (and the one the benchmark drives RabbitMQ and Switchyard
//! with): confirms, prefetch and acks, typed headers, get, nack with requeue, and a channel
//! error that leaves the connection open.

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use switchyard::config::AmqpSettings;
use switchyard_tests::TestBroker;

async fn lapin_connection() -> (TestBroker, Connection) {
    let broker = TestBroker::start_with(|config| {
        config.amqp = AmqpSettings {
            listen_tls: None,
            ..AmqpSettings::on_any_port()
        };
    })
    .await;
    let uri = format!(
        "amqp://guest:guest@{}/%2f",
        broker.broker.amqp_addr().expect("AMQP is on")
    );
    let connection = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("lapin connects");
    (broker, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapin_publishes_with_confirms_and_consumes_with_prefetch_and_acks() {
    let (_broker, connection) = lapin_connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            "market".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            "eu-prices".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            "eu-prices".into(),
            "market".into(),
            "prices.eu.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::new();
    for n in 0..200 {
        let key = if n % 2 == 0 {
            "prices.eu.fr"
        } else {
            "prices.us.ny"
        };
        let confirm = channel
            .basic_publish(
                "market".into(),
                key.into(),
                BasicPublishOptions::default(),
                format!("{n}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for confirm in confirms {
        assert!(confirm.await.unwrap().is_ack());
    }

    let consuming = connection.create_channel().await.unwrap();
    consuming
        .basic_qos(10, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consuming
        .basic_consume(
            "eu-prices".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    while received.len() < 100 {
        let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery within 10 s")
            .expect("the consumer is open")
            .unwrap();
        received.push(String::from_utf8(delivery.data.clone()).unwrap());
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let expected: Vec<String> = (0..200).step_by(2).map(|n| n.to_string()).collect();
    assert_eq!(received, expected);
    connection.close(200, "done".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapin_typed_headers_get_nack_requeue_and_a_channel_error() {
    let (_broker, connection) = lapin_connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            "typed".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("float"), AMQPValue::Float(2.5));
    headers.insert(ShortString::from("double"), AMQPValue::Double(-0.125));
    headers.insert(ShortString::from("short"), AMQPValue::ShortInt(-7));
    headers.insert(ShortString::from("flag"), AMQPValue::Boolean(true));
    headers.insert(ShortString::from("void"), AMQPValue::Void);
    channel
        .basic_publish(
            "".into(),
            "typed".into(),
            BasicPublishOptions::default(),
            b"typed",
            BasicProperties::default().with_headers(headers.clone()),
        )
        .await
        .unwrap();

    let got = loop {
        if let Some(message) = channel
            .basic_get("typed".into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            break message;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let came_back = got.delivery.properties.headers().clone().unwrap();
    for name in ["float", "double", "short", "flag", "void"] {
        assert_eq!(
            came_back.inner().get(name),
            headers.inner().get(name),
            "{name}"
        );
    }
    assert!(!got.delivery.redelivered);
    got.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .unwrap();
    let again = channel
        .basic_get("typed".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("requeued");
    assert!(again.delivery.redelivered);

    let failed = channel
        .queue_declare(
            "missing".into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(
        failed.to_string().contains("404") || failed.to_string().contains("NOT_FOUND"),
        "{failed}"
    );
    let other = connection.create_channel().await.unwrap();
    other
        .queue_declare(
            "typed".into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the connection survived the channel error");
    connection.close(200, "done".into()).await.unwrap();
}
