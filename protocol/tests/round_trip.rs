//! Every frame variant of every stream survives encode → decode unchanged.
//!
//! Each `*_samples` function builds one value per variant, and each test checks with an
//! exhaustive match that the samples cover every variant: adding a variant fails to compile
//! here until it has a sample.

use std::collections::BTreeSet;
use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_protocol::{
    Auth, Binding, CancelReason, ConsumeDown, ConsumeDownFrames, ConsumeDownView, ConsumeUp,
    ControlDown, ControlOk, ControlOp, ControlReply, ControlRequest, ControlUp, Decimal,
    DeliverRef, Delivery, DestinationKind, Divergence, ErrorCode, ExchangeInfo, FilterSpec,
    FrameDecoder, Hello, Identifier, PROTOCOL_VERSION, PluginInfo, PluginKind, PluginSource,
    PluginStatus, Properties, Publish, PublishDown, PublishUp, QueueInfo, SHARE_BODIES_FROM,
    ShadowReport, Subscribe, Table, Value, Welcome, WireError, encode,
};

fn assert_round_trips<F>(frame: &F)
where
    F: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut buf = BytesMut::new();
    encode(frame, &mut buf).unwrap();
    let decoded: F = FrameDecoder::default()
        .decode(&mut buf)
        .unwrap()
        .expect("a whole frame");
    assert_eq!(&decoded, frame);
    assert!(buf.is_empty(), "decoding left {} bytes", buf.len());
}

fn all_properties() -> Properties {
    Properties {
        message_id: Some("m-1".into()),
        correlation_id: Some(Identifier::Binary(Bytes::from_static(&[0, 0xFF, 7]))),
        reply_to: Some("amq.rabbitmq.reply-to".into()),
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        message_type: Some("order.created".into()),
        user_id: Some("guest".into()),
        app_id: Some("billing".into()),
        cluster_id: Some("eu-1".into()),
        timestamp: Some(1_700_000_000_000),
        expiration: Some(60_000),
        priority: 9,
        persistent: true,
        delay_ms: Some(1_500),
    }
}

/// One header of every value type, nested ones included, and a repeated name.
fn headers() -> Table {
    let every_scalar = vec![
        Value::Void,
        Value::Bool(true),
        Value::I8(-8),
        Value::U8(8),
        Value::I16(-16),
        Value::U16(16),
        Value::I32(-32),
        Value::U32(32),
        Value::I64(i64::MIN),
        Value::U64(u64::MAX),
        Value::F32(1.5),
        Value::F64(f64::NAN),
        Value::Decimal(Decimal {
            scale: 2,
            value: 12345,
        }),
        Value::String("✓".into()),
        Value::Bytes(vec![0, 0xFF, 0x80]),
        Value::Timestamp(1_700_000_000),
    ];
    Table::new()
        .with("x-tenant", "acme")
        .with("x-tenant", "repeated names are kept")
        .with("ünïcode", "✓")
        .with("scalars", Value::Array(every_scalar.clone()))
        .with(
            "nested",
            Table::new().with("empty array", Value::Array(vec![])).with(
                "inner",
                Table::new().with("deep", Value::Array(every_scalar)),
            ),
        )
}

fn error(code: ErrorCode) -> WireError {
    WireError::new(code, format!("because {code}"))
}

fn queue_info() -> QueueInfo {
    QueueInfo {
        name: "orders".into(),
        durable: true,
        exclusive: false,
        auto_delete: true,
        ready: u64::MAX,
        unacked: 3,
        consumers: 2,
        arguments: Table::new().with("x-max-length", "1000"),
    }
}

fn binding() -> Binding {
    Binding {
        source: "amq.topic".into(),
        destination: "orders".into(),
        destination_kind: DestinationKind::Queue,
        key: "orders.*.eu".into(),
        arguments: Table::new().with("x-match", "all"),
    }
}

fn control_up_samples() -> Vec<ControlUp> {
    let hello = |auth| {
        ControlUp::Hello(Hello {
            versions: vec![PROTOCOL_VERSION, 7],
            client_name: "billing-worker".into(),
            auth,
        })
    };
    let mut samples = vec![
        hello(Auth::Anonymous),
        hello(Auth::Password {
            user: "guest".into(),
            password: "guest".into(),
        }),
        hello(Auth::Token("eyJhbGciOi".into())),
    ];
    samples.extend(
        control_op_samples()
            .into_iter()
            .enumerate()
            .map(|(id, op)| ControlUp::Request(ControlRequest { id: id as u64, op })),
    );
    samples
}

fn control_op_samples() -> Vec<ControlOp> {
    vec![
        ControlOp::DeclareExchange {
            name: "events".into(),
            kind: "topic".into(),
            durable: true,
            auto_delete: false,
            internal: true,
            arguments: Table::new().with("alternate-exchange", "unrouted"),
            passive: false,
        },
        ControlOp::DeleteExchange {
            name: "events".into(),
            if_unused: true,
        },
        ControlOp::DeclareQueue {
            name: String::new(),
            durable: false,
            exclusive: true,
            auto_delete: true,
            arguments: Table::new().with("x-message-ttl", "60000"),
            passive: true,
        },
        ControlOp::DeleteQueue {
            name: "orders".into(),
            if_unused: true,
            if_empty: false,
        },
        ControlOp::PurgeQueue {
            name: "orders".into(),
        },
        ControlOp::Bind(binding()),
        ControlOp::Unbind(Binding {
            destination_kind: DestinationKind::Exchange,
            ..binding()
        }),
        ControlOp::ListExchanges,
        ControlOp::ListQueues,
        ControlOp::ListPlugins,
        ControlOp::QueueInfo {
            name: "orders".into(),
        },
        ControlOp::ExportDefinitions,
        ControlOp::ImportDefinitions {
            json: r#"{"queues": [{"name": "orders"}]}"#.into(),
        },
        ControlOp::InstallPlugin {
            wasm: Bytes::from_static(b"\0asm\x0d\0\x01\0"),
        },
        ControlOp::StartShadow {
            name: "priority".into(),
            wasm: Bytes::from(vec![9; 3000]),
            sample_percent: 10,
        },
        ControlOp::ShadowReport {
            name: "priority".into(),
        },
        ControlOp::PromoteShadow {
            name: "priority".into(),
        },
        ControlOp::DiscardShadow {
            name: "priority".into(),
        },
    ]
}

fn control_ok_samples() -> Vec<ControlOk> {
    vec![
        ControlOk::Done,
        ControlOk::ExchangeDeclared,
        ControlOk::QueueDeclared {
            name: "sy.gen-4f2a".into(),
            messages: 12,
            consumers: 1,
        },
        ControlOk::Deleted { messages: 5 },
        ControlOk::Purged { messages: 0 },
        ControlOk::Exchanges(vec![
            ExchangeInfo {
                name: String::new(),
                kind: "direct".into(),
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: Table::new(),
            },
            ExchangeInfo {
                name: "events".into(),
                kind: "json-field".into(),
                durable: false,
                auto_delete: true,
                internal: true,
                arguments: Table::new().with("field", "/region"),
            },
        ]),
        ControlOk::Queues(vec![queue_info(), queue_info()]),
        ControlOk::Plugins(vec![
            PluginInfo {
                name: "topic".into(),
                kind: Some(PluginKind::Router),
                version: Some("1.0.0".into()),
                description: Some("AMQP topic routing".into()),
                source: PluginSource::Embedded,
                status: PluginStatus::Serving,
                last_error: None,
                faults: 0,
            },
            PluginInfo {
                name: "broken".into(),
                kind: None,
                version: None,
                description: None,
                source: PluginSource::File("/var/lib/switchyard/plugins/broken.wasm".into()),
                status: PluginStatus::Failed,
                last_error: Some("not a component".into()),
                faults: 3,
            },
            PluginInfo {
                name: "sql".into(),
                kind: Some(PluginKind::Filter),
                version: Some("0.2.0".into()),
                description: Some(String::new()),
                source: PluginSource::File("sql.wasm".into()),
                status: PluginStatus::Quarantined,
                last_error: Some("deadline".into()),
                faults: 10,
            },
            PluginInfo {
                name: "old".into(),
                kind: Some(PluginKind::Router),
                version: Some("0.1.0".into()),
                description: None,
                source: PluginSource::File("old.wasm".into()),
                status: PluginStatus::Orphaned,
                last_error: None,
                faults: 0,
            },
        ]),
        ControlOk::Queue(queue_info()),
        ControlOk::Definitions("{}".into()),
        ControlOk::Imported {
            exchanges: 1,
            queues: 2,
            bindings: 3,
            failures: vec!["exchange \"x\": no router plugin named \"nope\"".into()],
        },
        ControlOk::PluginInstalled(PluginInfo {
            name: "priority".into(),
            kind: Some(PluginKind::Router),
            version: Some("0.2.0".into()),
            description: Some("urgent or normal".into()),
            source: PluginSource::File("/var/lib/switchyard/plugins/priority.wasm".into()),
            status: PluginStatus::Serving,
            last_error: None,
            faults: 0,
        }),
        ControlOk::ShadowStarted {
            name: "priority".into(),
            version: "0.3.0".into(),
        },
        ControlOk::Shadow(ShadowReport {
            plugin: "priority".into(),
            serving_version: "0.2.0".into(),
            shadow_version: "0.3.0".into(),
            sample_percent: 10,
            seen: 1000,
            sampled: 100,
            agreed: 98,
            diverged: 1,
            failed: 1,
            divergences: vec![Divergence {
                exchange: "orders".into(),
                routing_key: "order.created".into(),
                message_id: Some("m-4".into()),
                serving: vec!["normal".into()],
                shadow: vec!["normal".into(), "urgent".into()],
            }],
            last_error: Some("plugin \"priority\": route trapped".into()),
        }),
    ]
}

fn control_down_samples() -> Vec<ControlDown> {
    let mut samples = vec![
        ControlDown::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            server_name: "switchyard@eu-1".into(),
            max_frame: 1 << 20,
            connection_id: u64::MAX,
        }),
        ControlDown::Closing {
            reason: error(ErrorCode::ConnectionForced),
        },
        ControlDown::Reply(ControlReply {
            id: 99,
            result: Err(error(ErrorCode::PreconditionFailed)),
        }),
    ];
    samples.extend(
        control_ok_samples()
            .into_iter()
            .enumerate()
            .map(|(id, ok)| {
                ControlDown::Reply(ControlReply {
                    id: id as u64,
                    result: Ok(ok),
                })
            }),
    );
    samples
}

fn publish(body: Bytes) -> Publish {
    Publish {
        seq: 1,
        exchange: "events".into(),
        routing_key: "orders.created.eu".into(),
        mandatory: true,
        headers: headers(),
        properties: all_properties(),
        body,
    }
}

fn delivery(body: Bytes) -> Delivery {
    Delivery {
        delivery_tag: 42,
        exchange: String::new(),
        routing_key: "orders".into(),
        redelivered: true,
        delivery_count: 2,
        headers: headers(),
        properties: Box::new(all_properties()),
        body,
    }
}

fn publish_up_samples() -> Vec<PublishUp> {
    vec![
        PublishUp::Publish(publish(Bytes::from_static(b"{\"id\":1}"))),
        PublishUp::Publish(Publish {
            seq: u64::MAX,
            exchange: String::new(),
            routing_key: String::new(),
            mandatory: false,
            headers: Table::new(),
            properties: Properties::default(),
            body: Bytes::new(),
        }),
        PublishUp::Publish(publish(Bytes::from(vec![0xA5; SHARE_BODIES_FROM * 3]))),
    ]
}

fn publish_down_samples() -> Vec<PublishDown> {
    vec![
        PublishDown::Confirm { first: 1, last: 64 },
        PublishDown::Reject {
            seq: 65,
            error: error(ErrorCode::RoutingFault),
        },
        PublishDown::Returned {
            seq: 66,
            reason: error(ErrorCode::NoRoute),
        },
        PublishDown::Blocked {
            reason: error(ErrorCode::Overloaded),
        },
        PublishDown::Unblocked,
    ]
}

fn consume_up_samples() -> Vec<ConsumeUp> {
    vec![
        ConsumeUp::Subscribe(Subscribe {
            queue: "orders".into(),
            consumer_tag: String::new(),
            prefetch: 100,
            no_ack: false,
            exclusive: true,
            filter: Some(FilterSpec {
                plugin: "sql".into(),
                expression: "region = 'eu' AND amount > 100".into(),
            }),
        }),
        ConsumeUp::Subscribe(Subscribe {
            queue: "logs".into(),
            consumer_tag: "tailer".into(),
            prefetch: 0,
            no_ack: true,
            exclusive: false,
            filter: None,
        }),
        ConsumeUp::Ack {
            delivery_tag: 7,
            multiple: true,
        },
        ConsumeUp::Nack {
            delivery_tag: 8,
            multiple: false,
            requeue: true,
        },
        ConsumeUp::Reject {
            delivery_tag: 9,
            requeue: false,
        },
        ConsumeUp::Credit { prefetch: 1 },
        ConsumeUp::Cancel,
        ConsumeUp::Sync { id: 7 },
    ]
}

fn consume_down_samples() -> Vec<ConsumeDown> {
    vec![
        ConsumeDown::Subscribed {
            consumer_tag: "sy.ctag-1".into(),
        },
        ConsumeDown::Deliver(delivery(Bytes::from_static(b"hello"))),
        ConsumeDown::Deliver(delivery(Bytes::from(vec![7; SHARE_BODIES_FROM]))),
        ConsumeDown::Cancelled {
            reason: CancelReason::ClientRequest,
        },
        ConsumeDown::Cancelled {
            reason: CancelReason::QueueDeleted,
        },
        ConsumeDown::Cancelled {
            reason: CancelReason::ServerShutdown,
        },
        ConsumeDown::Cancelled {
            reason: CancelReason::Error(error(ErrorCode::RoutingFault)),
        },
        ConsumeDown::Error(error(ErrorCode::ResourceLocked)),
        ConsumeDown::Synced { id: 7 },
    ]
}

/// Checks that `samples` hit all `expected` variant names, named by an exhaustive match.
fn assert_covers<T>(samples: &[T], variant: impl Fn(&T) -> &'static str, expected: usize) {
    let covered: BTreeSet<_> = samples.iter().map(variant).collect();
    assert_eq!(covered.len(), expected, "covered only {covered:?}");
}

#[test]
fn every_control_up_frame_round_trips() {
    let samples = control_up_samples();
    assert_covers(
        &samples,
        |frame| match frame {
            ControlUp::Hello(Hello { auth, .. }) => match auth {
                Auth::Anonymous => "hello/anonymous",
                Auth::Password { .. } => "hello/password",
                Auth::Token(_) => "hello/token",
            },
            ControlUp::Request(request) => match &request.op {
                ControlOp::DeclareExchange { .. } => "declare-exchange",
                ControlOp::DeleteExchange { .. } => "delete-exchange",
                ControlOp::DeclareQueue { .. } => "declare-queue",
                ControlOp::DeleteQueue { .. } => "delete-queue",
                ControlOp::PurgeQueue { .. } => "purge-queue",
                ControlOp::Bind(_) => "bind",
                ControlOp::Unbind(_) => "unbind",
                ControlOp::ListExchanges => "list-exchanges",
                ControlOp::ListQueues => "list-queues",
                ControlOp::ListPlugins => "list-plugins",
                ControlOp::QueueInfo { .. } => "queue-info",
                ControlOp::ExportDefinitions => "export-definitions",
                ControlOp::ImportDefinitions { .. } => "import-definitions",
                ControlOp::InstallPlugin { .. } => "install-plugin",
                ControlOp::StartShadow { .. } => "start-shadow",
                ControlOp::ShadowReport { .. } => "shadow-report",
                ControlOp::PromoteShadow { .. } => "promote-shadow",
                ControlOp::DiscardShadow { .. } => "discard-shadow",
            },
        },
        3 + 18,
    );
    samples.iter().for_each(assert_round_trips);
}

#[test]
fn every_control_down_frame_round_trips() {
    let samples = control_down_samples();
    assert_covers(
        &samples,
        |frame| match frame {
            ControlDown::Welcome(_) => "welcome",
            ControlDown::Closing { .. } => "closing",
            ControlDown::Reply(ControlReply { result, .. }) => match result {
                Err(_) => "reply/err",
                Ok(ControlOk::Done) => "done",
                Ok(ControlOk::ExchangeDeclared) => "exchange-declared",
                Ok(ControlOk::QueueDeclared { .. }) => "queue-declared",
                Ok(ControlOk::Deleted { .. }) => "deleted",
                Ok(ControlOk::Purged { .. }) => "purged",
                Ok(ControlOk::Exchanges(_)) => "exchanges",
                Ok(ControlOk::Queues(_)) => "queues",
                Ok(ControlOk::Plugins(_)) => "plugins",
                Ok(ControlOk::Queue(_)) => "queue",
                Ok(ControlOk::Definitions(_)) => "definitions",
                Ok(ControlOk::Imported { .. }) => "imported",
                Ok(ControlOk::PluginInstalled(_)) => "plugin-installed",
                Ok(ControlOk::ShadowStarted { .. }) => "shadow-started",
                Ok(ControlOk::Shadow(_)) => "shadow",
            },
        },
        3 + 14,
    );
    samples.iter().for_each(assert_round_trips);
}

#[test]
fn every_publish_frame_round_trips() {
    let up = publish_up_samples();
    assert_covers(
        &up,
        |frame| match frame {
            PublishUp::Publish(_) => "publish",
        },
        1,
    );
    up.iter().for_each(assert_round_trips);

    let down = publish_down_samples();
    assert_covers(
        &down,
        |frame| match frame {
            PublishDown::Confirm { .. } => "confirm",
            PublishDown::Reject { .. } => "reject",
            PublishDown::Returned { .. } => "returned",
            PublishDown::Blocked { .. } => "blocked",
            PublishDown::Unblocked => "unblocked",
        },
        5,
    );
    down.iter().for_each(assert_round_trips);
}

#[test]
fn every_consume_frame_round_trips() {
    let up = consume_up_samples();
    assert_covers(
        &up,
        |frame| match frame {
            ConsumeUp::Subscribe(_) => "subscribe",
            ConsumeUp::Ack { .. } => "ack",
            ConsumeUp::Nack { .. } => "nack",
            ConsumeUp::Reject { .. } => "reject",
            ConsumeUp::Credit { .. } => "credit",
            ConsumeUp::Cancel => "cancel",
            ConsumeUp::Sync { .. } => "sync",
        },
        7,
    );
    up.iter().for_each(assert_round_trips);

    let down = consume_down_samples();
    assert_covers(
        &down,
        |frame| match frame {
            ConsumeDown::Subscribed { .. } => "subscribed",
            ConsumeDown::Deliver(_) => "deliver",
            ConsumeDown::Cancelled { reason } => match reason {
                CancelReason::ClientRequest => "cancelled/client",
                CancelReason::QueueDeleted => "cancelled/queue-deleted",
                CancelReason::ServerShutdown => "cancelled/shutdown",
                CancelReason::Error(_) => "cancelled/error",
            },
            ConsumeDown::Error(_) => "error",
            ConsumeDown::Synced { .. } => "synced",
        },
        8,
    );
    down.iter().for_each(assert_round_trips);
}

#[test]
fn an_unknown_error_code_survives_a_round_trip() {
    let frame = PublishDown::Reject {
        seq: 1,
        error: WireError::new(ErrorCode::from_u16(9_999), "from a newer broker"),
    };
    assert_round_trips(&frame);
    let mut buf = BytesMut::new();
    encode(&frame, &mut buf).unwrap();
    let Some(PublishDown::Reject { error, .. }) = FrameDecoder::default().decode(&mut buf).unwrap()
    else {
        panic!("not a reject");
    };
    assert!(matches!(error.code, ErrorCode::Unknown(9_999)));
}

#[test]
fn the_body_is_one_byte_string_on_the_wire() {
    // `body` is the last field of `Publish`: a varint length, then the raw bytes. A sequence of
    // numbers would look the same for bytes below 251, so use bytes above it.
    let body: &[u8] = &[0xFF, 0xFE, 0xFD];
    let mut buf = BytesMut::new();
    encode(
        &PublishUp::Publish(publish(Bytes::from_static(body))),
        &mut buf,
    )
    .unwrap();
    assert!(buf.ends_with(&[3, 0xFF, 0xFE, 0xFD]), "{buf:?}");
}

#[test]
fn large_bodies_share_the_receive_buffer_and_small_ones_are_copied() {
    let mut buf = BytesMut::new();
    let large = Bytes::from(vec![1; SHARE_BODIES_FROM]);
    let small = Bytes::from(vec![2; SHARE_BODIES_FROM - 1]);
    encode(&ConsumeDown::Deliver(delivery(large.clone())), &mut buf).unwrap();
    encode(&ConsumeDown::Deliver(delivery(small.clone())), &mut buf).unwrap();
    let received = buf.as_ptr_range();
    let inside = |body: &Bytes| received.contains(&body.as_ptr());

    let decoder = FrameDecoder::default();
    let Some(ConsumeDown::Deliver(first)) = decoder.decode(&mut buf).unwrap() else {
        panic!("not a delivery");
    };
    let Some(ConsumeDown::Deliver(second)) = decoder.decode(&mut buf).unwrap() else {
        panic!("not a delivery");
    };
    assert_eq!((&first.body, &second.body), (&large, &small));
    assert!(
        inside(&first.body),
        "a large body should be a slice of the buffer"
    );
    assert!(!inside(&second.body), "a small body should be copied");
}

#[test]
fn a_borrowed_deliver_encodes_exactly_as_the_owned_frame() {
    let headers = headers().with("region", "eu").with("x", "");
    for (properties, body) in [
        (Properties::default(), Bytes::from_static(b"")),
        (
            all_properties(),
            Bytes::from(vec![7u8; SHARE_BODIES_FROM + 3]),
        ),
    ] {
        let owned = ConsumeDown::Deliver(Delivery {
            delivery_tag: 300,
            exchange: "orders".into(),
            routing_key: "eu.new".into(),
            redelivered: true,
            delivery_count: 2,
            headers: headers.clone(),
            properties: Box::new(properties.clone()),
            body: body.clone(),
        });
        let borrowed = DeliverRef {
            delivery_tag: 300,
            exchange: "orders",
            routing_key: "eu.new",
            redelivered: true,
            delivery_count: 2,
            headers: &headers,
            properties: &properties,
            body: &body,
        };
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        encode(&owned, &mut a).unwrap();
        encode(&borrowed, &mut b).unwrap();
        assert_eq!(a, b);
        let decoded: ConsumeDown = FrameDecoder::default().decode(&mut b).unwrap().unwrap();
        assert_eq!(decoded, owned);
    }
}

#[test]
fn every_consume_down_frame_decodes_in_place_as_it_decodes_owned() {
    for frame in consume_down_samples() {
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf).unwrap();
        let viewed = FrameDecoder::default()
            .decode_view::<ConsumeDownFrames, _>(&mut buf, |view, payload| match view {
                ConsumeDownView::Subscribed { consumer_tag } => {
                    ConsumeDown::Subscribed { consumer_tag }
                }
                ConsumeDownView::Deliver(d) => {
                    let inside =
                        payload.as_ptr_range().contains(&d.body.as_ptr()) || d.body.is_empty();
                    assert!(inside, "the body is borrowed from the payload");
                    ConsumeDown::Deliver(Delivery {
                        delivery_tag: d.delivery_tag,
                        exchange: d.exchange.to_owned(),
                        routing_key: d.routing_key.to_owned(),
                        redelivered: d.redelivered,
                        delivery_count: d.delivery_count,
                        headers: d.headers,
                        properties: Box::new(d.properties),
                        body: Bytes::copy_from_slice(d.body),
                    })
                }
                ConsumeDownView::Cancelled { reason } => ConsumeDown::Cancelled { reason },
                ConsumeDownView::Error(error) => ConsumeDown::Error(error),
                ConsumeDownView::Synced { id } => ConsumeDown::Synced { id },
            })
            .unwrap()
            .expect("a whole frame");
        assert_eq!(viewed, frame);
        assert!(buf.is_empty(), "decoding left {} bytes", buf.len());
    }
}

#[test]
fn a_view_of_a_truncated_or_padded_frame_is_refused() {
    let mut buf = BytesMut::new();
    encode(&consume_down_samples()[1], &mut buf).unwrap();
    // Half a frame is not a frame yet.
    let mut half = buf.clone();
    half.truncate(buf.len() / 2);
    let decoder = FrameDecoder::default();
    assert!(
        decoder
            .decode_view::<ConsumeDownFrames, _>(&mut half, |_, _| ())
            .unwrap()
            .is_none()
    );
    // A frame whose length claims one byte more than its value uses.
    let mut padded = buf.clone();
    padded.extend_from_slice(&[0]);
    let len = u32::from_be_bytes(padded[..4].try_into().unwrap()) + 1;
    padded[..4].copy_from_slice(&len.to_be_bytes());
    assert!(
        decoder
            .decode_view::<ConsumeDownFrames, _>(&mut padded, |_, _| ())
            .is_err()
    );
}
