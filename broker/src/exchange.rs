//! Exchanges: a name, the routing plugin that serves its type, and its declared properties.
//! The plugin holds the exchange's derived index under the exchange's handle; the broker's
//! authoritative bindings live in the topology.
//!
//! Exchange arguments belong to the exchange's plugin, except the two the broker reads itself:
//! `x-routing-fault` (`reject`, the default, or `dead-letter`) and `x-routing-fault-exchange`
//! (where `dead-letter` sends the message). Unknown arguments are the plugin's business and
//! are passed to it unchecked.

use std::sync::Arc;

use crate::error::BrokerError;
use crate::message::Table;
use crate::plugin::RouterPlugin;

/// What a client declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub name: String,
    /// The routing plugin's name: `direct`, `topic`, …
    pub kind: String,
    pub durable: bool,
    /// Deleted when its last binding (as a source) is removed.
    pub auto_delete: bool,
    /// Cannot be published to directly, only through exchange-to-exchange bindings.
    pub internal: bool,
    pub arguments: Table,
}

/// What a routing-plugin fault (a trap, an overrun deadline, …) does to the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoutingFaultPolicy {
    /// The publisher gets a negative confirm (`ROUTING_FAULT`).
    #[default]
    Reject,
    /// The message is dead-lettered (reason `routing-fault`) to this exchange and the publish
    /// is confirmed; if that exchange routes it nowhere, the publish is rejected as above.
    DeadLetter { exchange: String },
}

impl RoutingFaultPolicy {
    /// Reads `x-routing-fault` and `x-routing-fault-exchange` from an exchange's arguments.
    pub fn parse(arguments: &Table) -> Result<Self, BrokerError> {
        let text = |name: &str| match arguments.get(name) {
            None => Ok(None),
            Some(value) => value.as_str().map(Some).ok_or_else(|| {
                BrokerError::invalid(format!(
                    "{name} is {}; it must be a string",
                    value.type_name()
                ))
            }),
        };
        let exchange = text("x-routing-fault-exchange")?;
        match (text("x-routing-fault")?, exchange) {
            (None | Some("reject"), None) => Ok(RoutingFaultPolicy::Reject),
            (None | Some("reject"), Some(_)) => Err(BrokerError::invalid(
                "x-routing-fault-exchange needs x-routing-fault = dead-letter",
            )),
            (Some("dead-letter"), Some(exchange)) => Ok(RoutingFaultPolicy::DeadLetter {
                exchange: exchange.to_owned(),
            }),
            (Some("dead-letter"), None) => Err(BrokerError::invalid(
                "x-routing-fault = dead-letter needs x-routing-fault-exchange",
            )),
            (Some(other), _) => Err(BrokerError::invalid(format!(
                "x-routing-fault is {other:?}; it must be reject or dead-letter"
            ))),
        }
    }
}

#[derive(Debug)]
pub struct Exchange {
    pub spec: ExchangeSpec,
    /// The handle the plugin knows this exchange by; also its destination handle when it is
    /// bound to another exchange.
    pub id: u32,
    pub router: Arc<RouterPlugin>,
    /// From the spec's `x-routing-fault` arguments.
    pub on_routing_fault: RoutingFaultPolicy,
}

impl Exchange {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[(&str, &str)]) -> Result<RoutingFaultPolicy, String> {
        let table: Table = arguments.iter().copied().collect();
        RoutingFaultPolicy::parse(&table).map_err(|e| e.to_string())
    }

    #[test]
    fn routing_fault_arguments_parse_or_say_what_is_wrong() {
        assert_eq!(parse(&[("field", "x")]), Ok(RoutingFaultPolicy::Reject));
        assert_eq!(
            parse(&[("x-routing-fault", "reject")]),
            Ok(RoutingFaultPolicy::Reject)
        );
        assert_eq!(
            parse(&[
                ("x-routing-fault", "dead-letter"),
                ("x-routing-fault-exchange", "faults")
            ]),
            Ok(RoutingFaultPolicy::DeadLetter {
                exchange: "faults".into()
            })
        );
        for (arguments, expected) in [
            (
                vec![("x-routing-fault", "dead-letter")],
                "needs x-routing-fault-exchange",
            ),
            (
                vec![("x-routing-fault-exchange", "f")],
                "needs x-routing-fault = dead-letter",
            ),
            (vec![("x-routing-fault", "retry")], "\"retry\""),
        ] {
            let error = parse(&arguments).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let typed = Table::new().with("x-routing-fault", true);
        let error = RoutingFaultPolicy::parse(&typed).unwrap_err().to_string();
        assert!(error.contains("x-routing-fault is a boolean"), "{error}");
    }
}
