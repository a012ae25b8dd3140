//! The commands that talk to a running broker through the client SDK.

use std::io::Read as _;

use anyhow::{Context, bail};
use base64::Engine as _;
use switchyard_client::{
    Auth, Confirmed, ConnectOptions, Connection, ConsumeOptions, ExchangeOptions, Identifier,
    OutgoingMessage, Properties, QueueOptions, Table, Trust, Value, value_json,
};

use super::args::{
    BindArgs, ClientArgs, ConsumeArgs, DefinitionsCommand, ExchangeCommand, PluginsCommand,
    PublishArgs, QueueCommand,
};
use super::table::print_table;

pub async fn connect(args: &ClientArgs) -> anyhow::Result<Connection> {
    let trust = if let Some(ca) = &args.ca {
        Trust::CaFile(ca.clone())
    } else if let Some(pin) = &args.pin {
        Trust::Pinned(pin.clone())
    } else if args.insecure {
        Trust::InsecureAnyCertificate
    } else {
        let cert = args.trust_data_dir.join("tls").join("cert.pem");
        let pem = std::fs::read_to_string(&cert).with_context(|| {
            format!(
                "no --ca, --pin or --insecure given, and no development certificate at {}",
                cert.display()
            )
        })?;
        let fingerprint = switchyard::tls::fingerprint_of_pem(&pem)
            .map_err(|reason| anyhow::anyhow!("{}: {reason}", cert.display()))?;
        Trust::Pinned(fingerprint)
    };
    let mut options = ConnectOptions::new(args.server, trust);
    if let (Some(user), Some(password)) = (&args.user, &args.password) {
        options.auth = Auth::Password {
            user: user.clone(),
            password: password.clone(),
        };
    }
    Ok(Connection::connect(options).await?)
}

pub async fn exchange(connection: &Connection, command: ExchangeCommand) -> anyhow::Result<()> {
    match command {
        ExchangeCommand::Declare {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
        } => {
            let options = ExchangeOptions {
                durable,
                auto_delete,
                internal,
                arguments: arguments.into_iter().collect(),
            };
            connection.declare_exchange(&name, &kind, options).await?;
            println!("exchange {name:?} declared (type {kind})");
        }
        ExchangeCommand::Delete { name, if_unused } => {
            connection.delete_exchange(&name, if_unused).await?;
            println!("exchange {name:?} deleted");
        }
        ExchangeCommand::List { json } => {
            let exchanges = connection.list_exchanges().await?;
            if json {
                for e in &exchanges {
                    println!(
                        "{}",
                        serde_json::json!({
                            "name": e.name, "type": e.kind, "durable": e.durable,
                            "auto_delete": e.auto_delete, "internal": e.internal,
                            "arguments": value_json::table_to_json(&e.arguments),
                        })
                    );
                }
            } else {
                let rows = exchanges
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.kind.clone(),
                            e.durable.to_string(),
                            e.auto_delete.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "TYPE", "DURABLE", "AUTO-DELETE"], rows);
            }
        }
    }
    Ok(())
}

pub async fn queue(connection: &Connection, command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Declare {
            name,
            durable,
            exclusive,
            auto_delete,
            arguments,
        } => {
            let options = QueueOptions {
                durable,
                exclusive,
                auto_delete,
                arguments: arguments.into_iter().collect(),
            };
            let name = connection.declare_queue(&name, options).await?;
            println!("queue {name:?} declared");
        }
        QueueCommand::Delete {
            name,
            if_unused,
            if_empty,
        } => {
            let messages = connection.delete_queue(&name, if_unused, if_empty).await?;
            println!("queue {name:?} deleted with {messages} messages");
        }
        QueueCommand::Purge { name } => {
            let messages = connection.purge_queue(&name).await?;
            println!("queue {name:?} purged of {messages} messages");
        }
        QueueCommand::List { json } => {
            let queues = connection.list_queues().await?;
            if json {
                for q in &queues {
                    println!(
                        "{}",
                        serde_json::json!({
                            "name": q.name, "ready": q.ready, "unacked": q.unacked,
                            "consumers": q.consumers, "durable": q.durable,
                            "exclusive": q.exclusive, "auto_delete": q.auto_delete,
                            "arguments": value_json::table_to_json(&q.arguments),
                        })
                    );
                }
            } else {
                let rows = queues
                    .iter()
                    .map(|q| {
                        vec![
                            q.name.clone(),
                            q.ready.to_string(),
                            q.unacked.to_string(),
                            q.consumers.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "READY", "UNACKED", "CONSUMERS"], rows);
            }
        }
    }
    Ok(())
}

pub async fn bind(connection: &Connection, args: BindArgs, bind: bool) -> anyhow::Result<()> {
    let arguments: Table = args.arguments.into_iter().collect();
    if bind {
        connection
            .bind_queue(&args.exchange, &args.queue, &args.key, arguments)
            .await?;
        println!(
            "bound {:?} to {:?} with key {:?}",
            args.queue, args.exchange, args.key
        );
    } else {
        connection
            .unbind_queue(&args.exchange, &args.queue, &args.key, arguments)
            .await?;
        println!(
            "unbound {:?} from {:?} with key {:?}",
            args.queue, args.exchange, args.key
        );
    }
    Ok(())
}

pub async fn publish(connection: &Connection, args: PublishArgs) -> anyhow::Result<()> {
    let body = match args.body {
        Some(body) => body.into_bytes(),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the body from stdin")?;
            body
        }
    };
    let template = OutgoingMessage {
        exchange: args.exchange,
        routing_key: args.key,
        mandatory: args.mandatory,
        headers: args.headers.into_iter().collect(),
        properties: Properties {
            message_id: args.message_id.map(Identifier::Text),
            correlation_id: args.correlation_id.map(Identifier::Text),
            reply_to: args.reply_to,
            content_type: args.content_type,
            content_encoding: args.content_encoding,
            message_type: args.message_type,
            user_id: args.user_id,
            app_id: args.app_id,
            timestamp: args.timestamp,
            delay_ms: args.delay,
            expiration: args.expiration,
            priority: args.priority,
            persistent: args.persistent,
            ..Properties::default()
        },
        body: body.into(),
    };
    let mut publisher = connection.publisher().await?;
    let mut confirmations = Vec::new();
    for _ in 0..args.count {
        confirmations.push(publisher.publish(template.clone()).await?);
    }
    let (mut routed, mut returned) = (0u64, 0u64);
    for confirmation in confirmations {
        match confirmation.wait().await? {
            Confirmed::Routed => routed += 1,
            Confirmed::Returned => returned += 1,
        }
    }
    println!(
        "published {routed} confirmed{}",
        if returned > 0 {
            format!(", {returned} returned unroutable")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `consume`. With `--count N` it takes exactly N messages and leaves the rest of the queue as
/// it was: a delivery beyond N would go back marked redelivered (spending an
/// `x-delivery-limit` attempt), or with no-ack be lost. The broker sends a consumer no more
/// than `acked + prefetch` messages, so with prefetch `p ≤ N` the first `N - p` are acked as
/// they are printed and the last `p` are held; once N have arrived the subscription is
/// cancelled, and only when the broker has confirmed that (no further delivery can come) are
/// the held ones acked and synced. No-ack becomes an ack of each message for the same reason.
pub async fn consume(connection: &Connection, args: ConsumeArgs) -> anyhow::Result<()> {
    if args.count == Some(0) {
        return Ok(());
    }
    let mut options = ConsumeOptions::new(&args.queue);
    options.no_ack = args.no_ack;
    options.prefetch = args.prefetch;
    options.filter = args.filter;
    // How many may be acked as they arrive (all, without a count).
    let mut ack_as_printed = u64::MAX;
    if let Some(count) = args.count {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        options.prefetch = match options.prefetch {
            0 => count,
            prefetch => prefetch.min(count),
        };
        options.no_ack = false;
        ack_as_printed = u64::from(count - options.prefetch);
    }
    let acks = !options.no_ack;
    let mut consumer = connection.consume(options).await?;
    let mut received = 0u64;
    let mut held = None;
    while args.count.is_none_or(|count| received < count) {
        let next = match args.timeout {
            Some(seconds) => match tokio::time::timeout(
                std::time::Duration::from_secs_f64(seconds),
                consumer.next(),
            )
            .await
            {
                Ok(next) => next,
                Err(_) => break,
            },
            None => consumer.next().await,
        };
        let Some(delivery) = next else { break };
        let delivery = delivery?;
        if args.json {
            println!("{}", delivery_json(&delivery));
        } else {
            println!("{}", String::from_utf8_lossy(&delivery.body));
        }
        received += 1;
        if !acks {
            continue;
        }
        if received <= ack_as_printed {
            delivery.ack()?;
        } else {
            // Acked with every earlier one once the subscription has ended.
            held = Some(delivery);
        }
    }
    if held.is_some() {
        consumer.cancel();
        // `None` once the broker has confirmed the cancel: nothing more can arrive.
        while consumer.next().await.is_some() {}
    }
    if let Some(last) = held {
        last.ack_multiple()?;
    }
    if acks && received > 0 {
        // The acks must reach the broker before the connection closes, or it puts the
        // messages back.
        consumer.sync().await?;
    }
    consumer.close().await;
    if let Some(count) = args.count
        && received < count
        && args.timeout.is_none()
    {
        bail!("the subscription ended after {received} of {count} messages");
    }
    Ok(())
}

pub async fn plugins(connection: &Connection, command: PluginsCommand) -> anyhow::Result<()> {
    let PluginsCommand::List { json } = command else {
        unreachable!("`plugins check` runs without a broker");
    };
    let plugins = connection.list_plugins().await?;
    if json {
        for p in &plugins {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "name": p.name,
                    "kind": p.kind.map(|k| format!("{k:?}").to_lowercase()),
                    "version": p.version, "description": p.description,
                    "source": format!("{:?}", p.source), "status": format!("{:?}", p.status).to_lowercase(),
                    "last_error": p.last_error, "faults": p.faults,
                }))?
            );
        }
    } else {
        let rows = plugins
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.kind
                        .map(|k| format!("{k:?}").to_lowercase())
                        .unwrap_or_else(|| "-".into()),
                    p.version.clone().unwrap_or_else(|| "-".into()),
                    match &p.source {
                        switchyard_protocol::PluginSource::Embedded => "embedded".into(),
                        switchyard_protocol::PluginSource::File(path) => path.clone(),
                    },
                    format!("{:?}", p.status).to_lowercase(),
                    p.last_error.as_deref().map(one_line).unwrap_or_default(),
                ]
            })
            .collect();
        print_table(
            &["NAME", "KIND", "VERSION", "SOURCE", "STATUS", "LAST ERROR"],
            rows,
        );
    }
    Ok(())
}

/// The longest error shown in a table cell; `--json` has the whole text.
const MAX_ERROR_CELL_CHARS: usize = 160;

/// An error as one table cell: its lines joined, cut at [`MAX_ERROR_CELL_CHARS`].
fn one_line(error: &str) -> String {
    let joined = error.lines().map(str::trim).collect::<Vec<_>>().join(" | ");
    if joined.chars().count() <= MAX_ERROR_CELL_CHARS {
        return joined;
    }
    let cut: String = joined.chars().take(MAX_ERROR_CELL_CHARS - 1).collect();
    format!("{cut}…")
}

/// A message or correlation id as JSON: text as a string, bytes tagged as `value_json` writes
/// byte arrays.
fn identifier_json(id: &Option<Identifier>) -> serde_json::Value {
    match id {
        None => serde_json::Value::Null,
        Some(Identifier::Text(text)) => serde_json::Value::String(text.clone()),
        Some(Identifier::Binary(bytes)) => value_json::to_json(&Value::Bytes(bytes.to_vec())),
    }
}

/// One delivery as `consume --json` prints it: headers as typed JSON (see `docs/values.md`).
fn delivery_json(delivery: &switchyard_client::Delivery) -> serde_json::Value {
    let p = &delivery.properties;
    let mut object = serde_json::json!({
        "exchange": delivery.exchange,
        "routing_key": delivery.routing_key,
        "headers": value_json::table_to_json(&delivery.headers),
        "properties": {
            "message_id": identifier_json(&p.message_id),
            "correlation_id": identifier_json(&p.correlation_id),
            "reply_to": p.reply_to, "content_type": p.content_type,
            "content_encoding": p.content_encoding, "type": p.message_type,
            "user_id": p.user_id, "app_id": p.app_id, "cluster_id": p.cluster_id,
            "timestamp": p.timestamp, "expiration": p.expiration,
            "priority": p.priority, "persistent": p.persistent, "delay_ms": p.delay_ms,
        },
        "redelivered": delivery.redelivered,
        "delivery_count": delivery.delivery_count,
    });
    match std::str::from_utf8(&delivery.body) {
        Ok(text) => object["body"] = serde_json::Value::String(text.to_owned()),
        Err(_) => {
            object["body_base64"] = serde_json::Value::String(
                base64::engine::general_purpose::STANDARD.encode(&delivery.body),
            )
        }
    }
    object
}

pub async fn definitions(
    connection: &Connection,
    command: DefinitionsCommand,
) -> anyhow::Result<()> {
    match command {
        DefinitionsCommand::Export => {
            println!("{}", connection.export_definitions().await?);
        }
        DefinitionsCommand::Import { file } => {
            let json = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let report = connection.import_definitions(&json).await?;
            println!(
                "imported {} exchanges, {} queues, {} bindings",
                report.exchanges, report.queues, report.bindings
            );
            for failure in &report.failures {
                eprintln!("failed: {failure}");
            }
            if !report.failures.is_empty() {
                bail!("{} definitions failed", report.failures.len());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_cell_is_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(one_line("a\n  b"), "a | b");
        let long = "x".repeat(500);
        let cell = one_line(&long);
        assert_eq!(cell.chars().count(), MAX_ERROR_CELL_CHARS);
        assert!(cell.ends_with('…'));
    }
}
