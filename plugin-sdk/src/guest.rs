//! The edge between the WIT bindings and the SDK's own types. `wit_bindgen::generate!` runs
//! here, once per world, and the generic exports below turn a [`Router`] or [`Filter`] impl into
//! the component's exports. Plugin authors never see this module: they call
//! [`export_router!`](crate::export_router) or [`export_filter!`](crate::export_filter).
//!
//! A component instance is single-threaded, so the exchange and filter tables live in
//! `thread_local!` cells; a re-entrant call cannot happen because the host never calls into a
//! plugin from inside one of its own imports.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::marker::PhantomData;

use rustc_hash::FxHasher;

use switchyard_value::{Decimal, Table, Value};

use crate::message::{Binding, Destination, Id, Message, Properties, Reads};
use crate::plugin::{Filter, Router};

/// Generated bindings for the `router` world.
pub mod router {
    wit_bindgen::generate!({
        path: "../wit",
        world: "switchyard:plugin/router@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_router_world",
        default_bindings_module: "switchyard_plugin::__private::router",
        runtime_path: "switchyard_plugin::__private::wit_bindgen_rt",
        type_section_suffix: "switchyard_router",
    });
}

/// Generated bindings for the `filter` world.
pub mod filter {
    wit_bindgen::generate!({
        path: "../wit",
        world: "switchyard:plugin/filter@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "switchyard_plugin::__private::filter",
        runtime_path: "switchyard_plugin::__private::wit_bindgen_rt",
        type_section_suffix: "switchyard_filter",
    });
}

use router::exports::switchyard::plugin::exchange as wit_exchange;
use router::switchyard::plugin::types as router_types;

use filter::exports::switchyard::plugin::message_filter as wit_filter;
use filter::switchyard::plugin::types as filter_types;

/// Handles are the broker's small integers: a fast hasher is enough and SipHash would be a
/// measurable part of every call.
type HandleMap = HashMap<u32, Box<dyn Any>, BuildHasherDefault<FxHasher>>;

thread_local! {
    /// Exchange handle → the author's exchange value (always the one `Router` type).
    static EXCHANGES: RefCell<HandleMap> = RefCell::new(HandleMap::default());
    /// Filter handle → the author's compiled filter; `NEXT_FILTER` hands out handles.
    static FILTERS: RefCell<HandleMap> = RefCell::new(HandleMap::default());
    static NEXT_FILTER: RefCell<u32> = const { RefCell::new(0) };
}

/// The `exchange` export for any [`Router`]; `export_router!` names it for a concrete type.
#[derive(Debug)]
pub struct RouterExport<T>(PhantomData<T>);

impl<T: Router> wit_exchange::Guest for RouterExport<T> {
    fn info() -> router_types::PluginInfo {
        report_panics();
        let info = T::info();
        router_types::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            reads: router_reads(info.reads),
        }
    }

    fn create(exchange: u32, arguments: Vec<router_types::Field>) -> Result<(), String> {
        report_panics();
        let arguments = table_from_router(arguments);
        let value = T::create(&arguments)?;
        EXCHANGES.with_borrow_mut(|exchanges| exchanges.insert(exchange, Box::new(value)));
        Ok(())
    }

    fn destroy(exchange: u32) {
        report_panics();
        EXCHANGES.with_borrow_mut(|exchanges| exchanges.remove(&exchange));
    }

    fn validate_binding(exchange: u32, binding: router_types::Binding) -> Result<(), String> {
        report_panics();
        let binding = binding_from_wit(binding);
        with_exchange::<T, _>(exchange, |e| e.validate_binding(&binding))
            .unwrap_or_else(|| Err(format!("exchange handle {exchange} is not known")))
    }

    fn bind(exchange: u32, binding: router_types::Binding) {
        report_panics();
        let binding = binding_from_wit(binding);
        with_exchange_mut::<T, _>(exchange, |e| e.bind(binding));
    }

    fn unbind(exchange: u32, binding: router_types::Binding) {
        report_panics();
        let binding = binding_from_wit(binding);
        with_exchange_mut::<T, _>(exchange, |e| e.unbind(&binding));
    }

    fn route(exchange: u32, message: router_types::Message) -> Vec<u32> {
        report_panics();
        let message = message_from_router(message);
        with_exchange::<T, _>(exchange, |e| destination_handles(e.route(&message)))
            .unwrap_or_default()
    }

    fn route_batch(exchange: u32, messages: Vec<router_types::Message>) -> Vec<Vec<u32>> {
        report_panics();
        let count = messages.len();
        with_exchange::<T, _>(exchange, |e| {
            messages
                .into_iter()
                .map(|m| destination_handles(e.route(&message_from_router(m))))
                .collect()
        })
        .unwrap_or_else(|| vec![Vec::new(); count])
    }
}

fn message_from_router(message: router_types::Message) -> Message {
    Message {
        routing_key: message.routing_key,
        headers: table_from_router(message.headers),
        properties: properties_from_router(message.properties),
        body: message.body,
    }
}

/// Collected in place: `Destination` is a `u32` newtype, so no new allocation is made.
fn destination_handles(destinations: Vec<Destination>) -> Vec<u32> {
    destinations.into_iter().map(|d| d.0).collect()
}

fn with_exchange<T: Router, R>(exchange: u32, f: impl FnOnce(&T) -> R) -> Option<R> {
    EXCHANGES.with_borrow(|exchanges| {
        exchanges
            .get(&exchange)
            .and_then(|e| e.downcast_ref::<T>())
            .map(f)
    })
}

fn with_exchange_mut<T: Router, R>(exchange: u32, f: impl FnOnce(&mut T) -> R) -> Option<R> {
    EXCHANGES.with_borrow_mut(|exchanges| {
        exchanges
            .get_mut(&exchange)
            .and_then(|e| e.downcast_mut::<T>())
            .map(f)
    })
}

/// The `message-filter` export for any [`Filter`]; `export_filter!` names it for a concrete type.
#[derive(Debug)]
pub struct FilterExport<T>(PhantomData<T>);

impl<T: Filter> wit_filter::Guest for FilterExport<T> {
    fn info() -> filter_types::PluginInfo {
        report_panics();
        let info = T::info();
        filter_types::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            reads: filter_reads(info.reads),
        }
    }

    fn compile(expression: String) -> Result<u32, String> {
        report_panics();
        let compiled = T::compile(&expression)?;
        let handle = NEXT_FILTER.with_borrow_mut(|next| {
            let handle = *next;
            *next = next.wrapping_add(1);
            handle
        });
        FILTERS.with_borrow_mut(|filters| filters.insert(handle, Box::new(compiled)));
        Ok(handle)
    }

    fn matches(filter: u32, message: filter_types::Message) -> bool {
        report_panics();
        let message = Message {
            routing_key: message.routing_key,
            headers: table_from_filter(message.headers),
            properties: properties_from_filter(message.properties),
            body: message.body,
        };
        FILTERS.with_borrow(|filters| {
            filters
                .get(&filter)
                .and_then(|f| f.downcast_ref::<T>())
                .is_some_and(|f| f.matches(&message))
        })
    }

    fn release(filter: u32) {
        report_panics();
        FILTERS.with_borrow_mut(|filters| filters.remove(&filter));
    }
}

fn binding_from_wit(binding: router_types::Binding) -> Binding {
    Binding {
        destination: Destination(binding.destination),
        key: binding.key,
        arguments: table_from_router(binding.arguments),
    }
}

macro_rules! reads_converter {
    ($name:ident, $types:ident) => {
        fn $name(reads: Reads) -> $types::Reads {
            let bits = u8::from(reads.headers)
                | (u8::from(reads.properties) << 1)
                | (u8::from(reads.body) << 2);
            $types::Reads::from_bits_truncate(bits)
        }
    };
}

reads_converter!(router_reads, router_types);
reads_converter!(filter_reads, filter_types);

// The two worlds generate distinct Rust types for the same WIT records, hence two small
// converters each; they differ only in the source type.

/// How deep the broker nests values (it never sends deeper ones; a deeper one would read as
/// void rather than recurse without bound).
const MAX_DEPTH: usize = 16;

/// Rebuilds a table from the contract's flattened fields (see `value` in the WIT): an array or
/// table head takes the next `n` fields as its children.
macro_rules! table_converter {
    ($table:ident, $value:ident, $types:ident) => {
        fn $table(fields: Vec<$types::Field>) -> Table {
            let mut rest = fields.into_iter();
            let mut table = Table::new();
            while let Some(field) = rest.next() {
                let value = $value(field.value, &mut rest, 1);
                table.push(field.name, value);
            }
            table
        }

        fn $value(
            value: $types::Value,
            rest: &mut std::vec::IntoIter<$types::Field>,
            depth: usize,
        ) -> Value {
            use $types::Value as W;
            match value {
                W::Void => Value::Void,
                W::Boolean(b) => Value::Bool(b),
                W::Int8(n) => Value::I8(n),
                W::Uint8(n) => Value::U8(n),
                W::Int16(n) => Value::I16(n),
                W::Uint16(n) => Value::U16(n),
                W::Int32(n) => Value::I32(n),
                W::Uint32(n) => Value::U32(n),
                W::Int64(n) => Value::I64(n),
                W::Uint64(n) => Value::U64(n),
                W::Float32(x) => Value::F32(x),
                W::Float64(x) => Value::F64(x),
                W::Decimal(d) => Value::Decimal(Decimal {
                    scale: d.scale,
                    value: d.value,
                }),
                W::Text(text) => Value::String(text),
                W::Bytes(bytes) => Value::Bytes(bytes),
                W::Timestamp(t) => Value::Timestamp(t),
                W::Array(n) | W::Table(n) if depth > MAX_DEPTH => {
                    // Still take its children, so the fields after it stay in place.
                    for _ in 0..n {
                        let Some(child) = rest.next() else { break };
                        $value(child.value, rest, depth + 1);
                    }
                    Value::Void
                }
                W::Array(n) => {
                    let mut items = Vec::new();
                    for _ in 0..n {
                        let Some(item) = rest.next() else { break };
                        items.push($value(item.value, rest, depth + 1));
                    }
                    Value::Array(items)
                }
                W::Table(n) => {
                    let mut table = Table::new();
                    for _ in 0..n {
                        let Some(field) = rest.next() else { break };
                        let value = $value(field.value, rest, depth + 1);
                        table.push(field.name, value);
                    }
                    Value::Table(table)
                }
            }
        }
    };
}

table_converter!(table_from_router, value_from_router, router_types);
table_converter!(table_from_filter, value_from_filter, filter_types);

macro_rules! id_converter {
    ($name:ident, $types:ident) => {
        fn $name(id: $types::Id) -> Id {
            match id {
                $types::Id::Text(text) => Id::Text(text),
                $types::Id::Binary(bytes) => Id::Binary(bytes),
            }
        }
    };
}

id_converter!(id_from_router, router_types);
id_converter!(id_from_filter, filter_types);

macro_rules! properties_converter {
    ($name:ident, $types:ident, $id:ident) => {
        fn $name(list: Vec<$types::Property>) -> Properties {
            use $types::Property as P;
            let mut p = Properties::default();
            for property in list {
                match property {
                    P::MessageId(v) => p.message_id = Some($id(v)),
                    P::CorrelationId(v) => p.correlation_id = Some($id(v)),
                    P::ReplyTo(v) => p.reply_to = Some(v),
                    P::ContentType(v) => p.content_type = Some(v),
                    P::ContentEncoding(v) => p.content_encoding = Some(v),
                    P::MessageType(v) => p.message_type = Some(v),
                    P::UserId(v) => p.user_id = Some(v),
                    P::AppId(v) => p.app_id = Some(v),
                    P::ClusterId(v) => p.cluster_id = Some(v),
                    P::Timestamp(v) => p.timestamp = Some(v),
                    P::Expiration(v) => p.expiration = Some(v),
                    P::Priority(v) => p.priority = v,
                    P::Persistent(v) => p.persistent = v,
                }
            }
            p
        }
    };
}

properties_converter!(properties_from_router, router_types, id_from_router);
properties_converter!(properties_from_filter, filter_types, id_from_filter);

/// Installs, once per instance, a panic hook that tells the broker the panic's message and
/// `file:line:column` just before the trap, so the broker's error says what went wrong and
/// where in one line. Every export calls it first (a fresh instance after a trap installs it
/// again).
fn report_panics() {
    #[cfg(target_arch = "wasm32")]
    {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                let location = info.location().map_or_else(String::new, |at| {
                    format!("{}:{}:{}", at.file(), at.line(), at.column())
                });
                router::switchyard::plugin::host::panicked(&message, &location);
            }));
        });
    }
}

/// Writes a line to the broker's log under the plugin's name. Natively (in unit tests) it
/// goes to standard error instead.
pub fn log(level: crate::Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use router::switchyard::plugin::host::{Level as WitLevel, log as host_log};
        let level = match level {
            crate::Level::Trace => WitLevel::Trace,
            crate::Level::Debug => WitLevel::Debug,
            crate::Level::Info => WitLevel::Info,
            crate::Level::Warn => WitLevel::Warn,
            crate::Level::Error => WitLevel::Error,
        };
        host_log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}
