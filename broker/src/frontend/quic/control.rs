//! The control stream after the handshake: one request, one reply, in order. Each request is
//! checked against this protocol's limits (names, argument sizes), translated into a call on
//! the connection's [`Session`], and its answer into a reply. Requests run in
//! `block_in_place`: declares and binds may call plugins, and deletes touch the disk.

use std::sync::Arc;

use switchyard_client::framed::{FramedRecv, FramedSend};
use switchyard_protocol::{
    ControlDown, ControlOk, ControlOp, ControlReply, ControlUp, DestinationKind,
    Divergence as WireDivergence, ErrorCode, ExchangeInfo, NameKind, PluginInfo as WirePlugin,
    PluginKind as WirePluginKind, PluginSource as WireSource, PluginStatus as WireStatus,
    QueueInfo, ShadowReport as WireShadowReport, Table, WireError, validate_headers, validate_name,
};

use super::wire_error::wire_error;
use crate::session::{
    Binding, BindingDestination, BrokerError, ExchangeSpec, PluginHealth, PluginKind, PluginSource,
    PluginStatus, Queue, QueueSpec, Session,
};

pub(crate) async fn serve(mut send: FramedSend, mut recv: FramedRecv, session: Arc<Session>) {
    loop {
        let request = match recv.next::<ControlUp>().await {
            Ok(Some(ControlUp::Request(request))) => request,
            Ok(Some(ControlUp::Hello(_))) => {
                let _ = send
                    .send(&ControlDown::Closing {
                        reason: WireError::new(
                            ErrorCode::ProtocolViolation,
                            "Hello was already sent",
                        ),
                    })
                    .await;
                return;
            }
            Ok(None) => return,
            Err(error) => {
                let _ = send
                    .send(&ControlDown::Closing {
                        reason: WireError::new(error.error_code(), error.to_string()),
                    })
                    .await;
                return;
            }
        };
        let op_name = request.op.name();
        let result = tokio::task::block_in_place(|| handle(request.op, &session));
        if let Err(error) = &result {
            tracing::debug!(op = op_name, code = error.code.as_u16(), error = %error.message, "request refused");
        }
        let reply = ControlDown::Reply(ControlReply {
            id: request.id,
            result,
        });
        // A reply too large for a frame (a listing of very many queues, say) is answered with
        // an error instead: the control stream stays usable (review finding 23).
        let reply = match send.push(&reply) {
            Ok(()) => None,
            Err(error) => Some(ControlDown::Reply(ControlReply {
                id: request.id,
                result: Err(WireError::new(
                    ErrorCode::LimitReached,
                    format!("the answer to {op_name} does not fit a frame: {error}"),
                )),
            })),
        };
        let sent = match reply {
            None => send.flush().await,
            Some(error_reply) => send.send(&error_reply).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The longest value of an exchange, queue or binding argument. Arguments are kept, listed
/// and exported with their object, so they stay small.
const MAX_ARGUMENT_VALUE_BYTES: usize = 4096;

/// Checks declare and bind arguments: count and names as for headers, and each value's size
/// (its strings and byte arrays, 8 bytes for any other scalar).
fn validate_arguments(arguments: &Table) -> Result<(), WireError> {
    validate_headers(arguments)?;
    match arguments
        .iter()
        .find(|(_, value)| value.data_bytes() > MAX_ARGUMENT_VALUE_BYTES)
    {
        Some((name, value)) => Err(WireError::new(
            ErrorCode::InvalidArgument,
            format!(
                "argument {name} is {} bytes; at most {MAX_ARGUMENT_VALUE_BYTES} are allowed",
                value.data_bytes()
            ),
        )),
        None => Ok(()),
    }
}

/// Translates one request into session calls, and their answer into a reply.
fn handle(op: ControlOp, session: &Session) -> Result<ControlOk, WireError> {
    let refused = |e: BrokerError| wire_error(&e);
    match op {
        ControlOp::DeclareExchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            passive,
        } => {
            validate_name(NameKind::Exchange, &name)?;
            validate_arguments(&arguments)?;
            let spec = ExchangeSpec {
                name,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            };
            session.declare_exchange(spec, passive).map_err(refused)?;
            Ok(ControlOk::ExchangeDeclared)
        }
        ControlOp::DeleteExchange { name, if_unused } => {
            session.delete_exchange(&name, if_unused).map_err(refused)?;
            Ok(ControlOk::Done)
        }
        ControlOp::DeclareQueue {
            name,
            durable,
            exclusive,
            auto_delete,
            arguments,
            passive,
        } => {
            validate_name(NameKind::Queue, &name)?;
            validate_arguments(&arguments)?;
            let spec = QueueSpec {
                name,
                durable,
                exclusive,
                auto_delete,
                arguments,
            };
            let queue = session.declare_queue(spec, passive).map_err(refused)?;
            let counts = queue.counts();
            Ok(ControlOk::QueueDeclared {
                name: queue.name().to_owned(),
                messages: counts.ready + counts.unacked,
                consumers: counts.consumers,
            })
        }
        ControlOp::DeleteQueue {
            name,
            if_unused,
            if_empty,
        } => {
            let messages = session
                .delete_queue(&name, if_unused, if_empty)
                .map_err(refused)?;
            Ok(ControlOk::Deleted { messages })
        }
        ControlOp::PurgeQueue { name } => Ok(ControlOk::Purged {
            messages: session.purge_queue(&name).map_err(refused)?,
        }),
        ControlOp::Bind(binding) => {
            validate_name(NameKind::RoutingKey, &binding.key)?;
            validate_arguments(&binding.arguments)?;
            session.bind(to_binding(binding)).map_err(refused)?;
            Ok(ControlOk::Done)
        }
        ControlOp::Unbind(binding) => {
            session.unbind(&to_binding(binding)).map_err(refused)?;
            Ok(ControlOk::Done)
        }
        ControlOp::ListExchanges => Ok(ControlOk::Exchanges(
            session
                .exchanges()
                .iter()
                .map(|e| ExchangeInfo {
                    name: e.spec.name.clone(),
                    kind: e.spec.kind.clone(),
                    durable: e.spec.durable,
                    auto_delete: e.spec.auto_delete,
                    internal: e.spec.internal,
                    arguments: e.spec.arguments.clone(),
                })
                .collect(),
        )),
        ControlOp::ListQueues => Ok(ControlOk::Queues(
            session.queues().iter().map(|q| queue_info(q)).collect(),
        )),
        ControlOp::QueueInfo { name } => {
            let queue = session.queue(&name).map_err(refused)?;
            Ok(ControlOk::Queue(queue_info(&queue)))
        }
        ControlOp::ExportDefinitions => Ok(ControlOk::Definitions(
            session.export_definitions().to_json(),
        )),
        ControlOp::ImportDefinitions { json } => {
            let definitions = crate::store::Definitions::parse(&json).map_err(|e| {
                WireError::new(
                    ErrorCode::InvalidArgument,
                    format!("not valid definitions JSON: {e}"),
                )
            })?;
            let report = session.import_definitions(&definitions).map_err(refused)?;
            Ok(ControlOk::Imported {
                exchanges: report.exchanges as u32,
                queues: report.queues as u32,
                bindings: report.bindings as u32,
                failures: report.failures,
            })
        }
        ControlOp::ListPlugins => Ok(ControlOk::Plugins(
            session.plugins().into_iter().map(wire_plugin).collect(),
        )),
        ControlOp::InstallPlugin { wasm } => {
            let info = session.install_plugin(&wasm).map_err(refused)?;
            Ok(ControlOk::PluginInstalled(plugin_row(session, &info.name)?))
        }
        ControlOp::StartShadow {
            name,
            wasm,
            sample_percent,
        } => {
            let info = session
                .start_shadow(&name, Arc::from(&wasm[..]), sample_percent)
                .map_err(refused)?;
            Ok(ControlOk::ShadowStarted {
                name: info.name,
                version: info.version,
            })
        }
        ControlOp::ShadowReport { name } => {
            let findings = session.shadow_report(&name).map_err(refused)?;
            let report = findings.report;
            Ok(ControlOk::Shadow(WireShadowReport {
                plugin: report.plugin,
                serving_version: report.serving_version,
                shadow_version: report.shadow_version,
                sample_percent: report.sample_percent,
                seen: report.seen,
                sampled: report.sampled,
                agreed: report.agreed,
                diverged: report.diverged,
                failed: report.failed,
                divergences: findings
                    .divergences
                    .into_iter()
                    .map(|d| WireDivergence {
                        exchange: d.exchange,
                        routing_key: d.routing_key,
                        message_id: d.message_id,
                        serving: d.serving,
                        shadow: d.shadow,
                    })
                    .collect(),
                last_error: report.last_error,
            }))
        }
        ControlOp::PromoteShadow { name } => {
            let info = session.promote_shadow(&name).map_err(refused)?;
            Ok(ControlOk::PluginInstalled(plugin_row(session, &info.name)?))
        }
        ControlOp::DiscardShadow { name } => {
            session.discard_shadow(&name).map_err(refused)?;
            Ok(ControlOk::Done)
        }
    }
}

/// The plugin list's row for `name`, as the wire has it.
fn plugin_row(session: &Session, name: &str) -> Result<WirePlugin, WireError> {
    session
        .plugins()
        .into_iter()
        .find(|row| row.name == name && row.kind.is_some())
        .map(wire_plugin)
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::NotFound,
                format!("plugin {name:?} is no longer loaded"),
            )
        })
}

fn wire_plugin(row: PluginStatus) -> WirePlugin {
    WirePlugin {
        name: row.name,
        kind: row.kind.map(|k| match k {
            PluginKind::Router => WirePluginKind::Router,
            PluginKind::Filter => WirePluginKind::Filter,
        }),
        version: row.version,
        description: row.description,
        source: match row.source {
            PluginSource::Embedded => WireSource::Embedded,
            PluginSource::File(path) => WireSource::File(path.display().to_string()),
            PluginSource::Uploaded => WireSource::File("uploaded".to_owned()),
        },
        status: match row.health {
            PluginHealth::Serving => WireStatus::Serving,
            PluginHealth::Quarantined => WireStatus::Quarantined,
            PluginHealth::Orphaned => WireStatus::Orphaned,
            PluginHealth::Failed => WireStatus::Failed,
        },
        last_error: row.last_error,
        faults: row.total_faults,
    }
}

fn to_binding(binding: switchyard_protocol::Binding) -> Binding {
    Binding {
        source: binding.source,
        destination: match binding.destination_kind {
            DestinationKind::Queue => BindingDestination::Queue(binding.destination),
            DestinationKind::Exchange => BindingDestination::Exchange(binding.destination),
        },
        key: binding.key,
        arguments: binding.arguments,
    }
}

fn queue_info(queue: &Queue) -> QueueInfo {
    let counts = queue.counts();
    let properties = queue.properties();
    QueueInfo {
        name: queue.name().to_owned(),
        durable: properties.durable,
        exclusive: properties.exclusive_owner.is_some(),
        auto_delete: properties.auto_delete,
        ready: counts.ready,
        unacked: counts.unacked,
        consumers: counts.consumers,
        arguments: properties.arguments.clone(),
    }
}
