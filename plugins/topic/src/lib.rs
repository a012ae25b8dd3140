//! The `topic` exchange type, with RabbitMQ's semantics: binding keys are patterns of
//! `.`-separated words where `*` matches one word and `#` zero or more. The index is the SDK's
//! [`TopicTrie`], so routing cost does not grow with the number of bindings.

use switchyard_plugin::topic::TopicTrie;
use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

/// The longest binding key accepted, in bytes (RabbitMQ's limit for routing keys).
pub const MAX_PATTERN_BYTES: usize = 255;

/// One topic exchange.
#[derive(Debug, Default)]
pub struct TopicExchange {
    trie: TopicTrie<Destination>,
}

impl Router for TopicExchange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "topic",
            env!("CARGO_PKG_VERSION"),
            "AMQP topic patterns: `*` matches one word, `#` zero or more",
        )
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(TopicExchange::default())
    }

    fn validate_binding(&self, binding: &Binding) -> Result<(), String> {
        if binding.key.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "a topic binding key is at most {MAX_PATTERN_BYTES} bytes, this one is {}",
                binding.key.len()
            ));
        }
        Ok(())
    }

    fn bind(&mut self, binding: Binding) {
        self.trie.insert(&binding.key, binding.destination);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.trie.remove(&binding.key, binding.destination);
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        self.trie.matches(&message.routing_key)
    }
}

switchyard_plugin::export_router!(TopicExchange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_pattern_and_refuses_overlong_keys() {
        let mut exchange = TopicExchange::create(&Table::new()).unwrap();
        exchange.bind(Binding::new(1, "stock.*.nyse"));
        exchange.bind(Binding::new(2, "#.nyse"));
        assert_eq!(
            exchange.route(&Message::with_key("stock.ibm.nyse")),
            vec![Destination(1), Destination(2)]
        );
        let long = Binding::new(3, "a".repeat(MAX_PATTERN_BYTES + 1));
        assert!(exchange.validate_binding(&long).is_err());
    }
}
