//! `switchyard plugin test`'s second half: every message of a samples file through the compiled
//! component, in the broker's own plugin host (the same limits, bindings replay and checks as a
//! running broker), compared with where the file says it must go.
//!
//! The file is JSON. For a router: the exchange's arguments, the bindings (queue name, key,
//! arguments) and the messages, each with the queues it must reach (`expect`, in any order; an
//! empty list means unroutable). For a filter: the expression and the messages, each with
//! whether it passes (`expect: true|false`). Headers and arguments are typed JSON
//! (`docs/values.md`): `5` is an integer, `{"$i8": 5}` a one-byte one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value as Json;
use switchyard::message::{Identifier, Message, Properties, Table};
use switchyard::plugin::{BindingSpec, PluginConfig, PluginKind, PluginRegistry};
use switchyard_client::value_json;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Samples {
    /// Routers: the exchange's declaration.
    #[serde(default)]
    exchange: Option<ExchangeSample>,
    /// Routers: the bindings, by queue name.
    #[serde(default)]
    bindings: Vec<BindingSample>,
    /// Filters: the consumer's expression.
    #[serde(default)]
    expression: Option<String>,
    messages: Vec<MessageSample>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSample {
    #[serde(default)]
    arguments: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingSample {
    queue: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    arguments: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageSample {
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    headers: Option<Json>,
    #[serde(default)]
    properties: PropertiesSample,
    #[serde(default)]
    body: String,
    expect: Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertiesSample {
    priority: Option<u8>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    user_id: Option<String>,
    app_id: Option<String>,
    message_id: Option<String>,
    correlation_id: Option<String>,
    reply_to: Option<String>,
    timestamp: Option<u64>,
    expiration: Option<u64>,
    persistent: Option<bool>,
}

/// What running the samples found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
    pub failed: usize,
}

/// Runs the samples in `file` through the component in `wasm`, printing one line per message.
pub fn run(wasm: &Path, file: &Path) -> anyhow::Result<Outcome> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let samples: Samples =
        serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    let registry = PluginRegistry::new(PluginConfig::default())?;
    let info = registry
        .load_file(wasm)?
        .context("the component did not load")?;
    let kind = registry
        .list()
        .into_iter()
        .find(|row| row.name == info.name)
        .and_then(|row| row.kind)
        .context("the loaded plugin is not listed")?;
    println!(
        "{}: {} messages through {} {} ({kind})",
        file.display(),
        samples.messages.len(),
        info.name,
        info.version
    );
    match kind {
        PluginKind::Router => run_router(&registry, &info.name, &samples),
        PluginKind::Filter => run_filter(&registry, &info.name, &samples),
    }
}

fn run_router(registry: &PluginRegistry, name: &str, samples: &Samples) -> anyhow::Result<Outcome> {
    const EXCHANGE: u32 = 1;
    let router = registry.router(name)?;
    let arguments = typed_table(
        samples.exchange.as_ref().and_then(|e| e.arguments.as_ref()),
        "the exchange's arguments",
    )?;
    router
        .create_exchange(EXCHANGE, arguments)
        .context("declaring the exchange")?;
    let mut queues: BTreeMap<String, u32> = BTreeMap::new();
    for binding in &samples.bindings {
        let next = u32::try_from(queues.len())? + 1;
        let destination = *queues.entry(binding.queue.clone()).or_insert(next);
        let spec = BindingSpec {
            destination,
            key: binding.key.clone(),
            arguments: typed_table(binding.arguments.as_ref(), "a binding's arguments")?,
        };
        router.bind(EXCHANGE, spec).with_context(|| {
            format!(
                "binding queue {:?} with key {:?}",
                binding.queue, binding.key
            )
        })?;
    }
    let names: BTreeMap<u32, &str> = queues.iter().map(|(n, h)| (*h, n.as_str())).collect();
    let mut outcome = Outcome::default();
    for (index, sample) in samples.messages.iter().enumerate() {
        let message = message(sample)?;
        let expected: BTreeSet<String> = serde_json::from_value(sample.expect.clone())
            .with_context(|| {
                format!(
                    "message #{}: `expect` must list queue names, say [\"orders\"]",
                    index + 1
                )
            })?;
        let routed = router.route(EXCHANGE, &message).map(|destinations| {
            destinations
                .iter()
                .map(|d| {
                    names
                        .get(d)
                        .map_or_else(|| format!("#{d}"), |n| (*n).to_owned())
                })
                .collect::<BTreeSet<String>>()
        });
        let label = describe(index, sample);
        match routed {
            Ok(routed) if routed == expected => {
                outcome.passed += 1;
                println!("  ok    {label} -> {}", list(&routed));
            }
            Ok(routed) => {
                outcome.failed += 1;
                println!(
                    "  FAIL  {label} -> {}; expected {}",
                    list(&routed),
                    list(&expected)
                );
            }
            Err(error) => {
                outcome.failed += 1;
                println!("  FAIL  {label} -> error: {error}");
            }
        }
    }
    Ok(outcome)
}

fn run_filter(registry: &PluginRegistry, name: &str, samples: &Samples) -> anyhow::Result<Outcome> {
    let Some(expression) = &samples.expression else {
        bail!("{name} is a filter: the samples file needs an `expression`");
    };
    let filter = registry.filter(name)?;
    let compiled = filter
        .compile(expression)
        .with_context(|| format!("compiling {expression:?}"))?;
    let mut outcome = Outcome::default();
    for (index, sample) in samples.messages.iter().enumerate() {
        let Some(expected) = sample.expect.as_bool() else {
            bail!(
                "message #{}: `expect` must be true or false for a filter",
                index + 1
            );
        };
        let label = describe(index, sample);
        match compiled.matches(&message(sample)?) {
            Ok(passed) if passed == expected => {
                outcome.passed += 1;
                println!("  ok    {label} -> {}", verdict(passed));
            }
            Ok(passed) => {
                outcome.failed += 1;
                println!(
                    "  FAIL  {label} -> {}; expected {}",
                    verdict(passed),
                    verdict(expected)
                );
            }
            Err(error) => {
                outcome.failed += 1;
                println!("  FAIL  {label} -> error: {error}");
            }
        }
    }
    Ok(outcome)
}

fn message(sample: &MessageSample) -> anyhow::Result<Message> {
    let mut message = Message::new(sample.routing_key.clone(), sample.body.clone().into_bytes());
    message.headers = typed_table(sample.headers.as_ref(), "a message's headers")?;
    let p = &sample.properties;
    let properties = Properties {
        priority: p.priority.unwrap_or(0),
        content_type: p.content_type.clone(),
        content_encoding: p.content_encoding.clone(),
        message_type: p.message_type.clone(),
        user_id: p.user_id.clone(),
        app_id: p.app_id.clone(),
        message_id: p.message_id.clone().map(Identifier::Text),
        correlation_id: p.correlation_id.clone().map(Identifier::Text),
        reply_to: p.reply_to.clone(),
        timestamp: p.timestamp,
        expiration: p.expiration,
        persistent: p.persistent.unwrap_or(false),
        ..Properties::default()
    };
    if properties != Properties::default() {
        message.properties = properties.into();
    }
    Ok(message)
}

fn typed_table(json: Option<&Json>, what: &str) -> anyhow::Result<Table> {
    match json {
        None => Ok(Table::new()),
        Some(json) => value_json::table_from_json(json).map_err(|e| anyhow::anyhow!("{what}: {e}")),
    }
}

/// `#2 order.created priority=9`: the message's number and what tells it apart.
fn describe(index: usize, sample: &MessageSample) -> String {
    let mut label = format!("#{} {:?}", index + 1, sample.routing_key);
    if let Some(priority) = sample.properties.priority {
        label.push_str(&format!(" priority={priority}"));
    }
    if let Some(headers) = sample.headers.as_ref().and_then(Json::as_object) {
        for (name, value) in headers {
            label.push_str(&format!(" {name}={value}"));
        }
    }
    label
}

fn list(queues: &BTreeSet<String>) -> String {
    if queues.is_empty() {
        "(unroutable)".to_owned()
    } else {
        queues.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn verdict(passed: bool) -> &'static str {
    if passed { "passes" } else { "filtered out" }
}
