//! The `direct` exchange type: a message goes to every destination bound with a binding key
//! equal to its routing key.

use std::collections::HashMap;

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

/// One direct exchange: binding key → destinations, each with how many bindings put it there.
#[derive(Debug, Default)]
pub struct DirectExchange {
    by_key: HashMap<String, Vec<(Destination, u32)>>,
}

impl Router for DirectExchange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "direct",
            env!("CARGO_PKG_VERSION"),
            "routes to the destinations bound with the message's exact routing key",
        )
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(DirectExchange::default())
    }

    fn bind(&mut self, binding: Binding) {
        let destinations = self.by_key.entry(binding.key).or_default();
        match destinations
            .iter_mut()
            .find(|(d, _)| *d == binding.destination)
        {
            Some((_, count)) => *count += 1,
            None => destinations.push((binding.destination, 1)),
        }
    }

    fn unbind(&mut self, binding: &Binding) {
        let Some(destinations) = self.by_key.get_mut(&binding.key) else {
            return;
        };
        if let Some(i) = destinations
            .iter()
            .position(|(d, _)| *d == binding.destination)
        {
            destinations[i].1 -= 1;
            if destinations[i].1 == 0 {
                destinations.swap_remove(i);
            }
        }
        if destinations.is_empty() {
            self.by_key.remove(&binding.key);
        }
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        self.by_key
            .get(&message.routing_key)
            .map(|destinations| destinations.iter().map(|(d, _)| *d).collect())
            .unwrap_or_default()
    }
}

switchyard_plugin::export_router!(DirectExchange);

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(exchange: &DirectExchange, key: &str) -> Vec<u32> {
        let mut out: Vec<u32> = exchange
            .route(&Message::with_key(key))
            .iter()
            .map(|d| d.0)
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn routes_only_on_the_exact_key() {
        let mut exchange = DirectExchange::create(&Table::new()).unwrap();
        exchange.bind(Binding::new(1, "orders"));
        exchange.bind(Binding::new(2, "orders"));
        exchange.bind(Binding::new(3, "orders.eu"));
        exchange.bind(Binding::new(4, ""));
        assert_eq!(routed(&exchange, "orders"), vec![1, 2]);
        assert_eq!(routed(&exchange, "orders.eu"), vec![3]);
        assert_eq!(routed(&exchange, ""), vec![4]);
        assert_eq!(routed(&exchange, "Orders"), Vec::<u32>::new());
    }

    #[test]
    fn a_destination_bound_twice_stays_until_both_are_unbound() {
        let mut exchange = DirectExchange::create(&Table::new()).unwrap();
        let with_arg = Binding::new(1, "k").argument("note", "a");
        exchange.bind(Binding::new(1, "k"));
        exchange.bind(with_arg.clone());
        assert_eq!(routed(&exchange, "k"), vec![1]);
        exchange.unbind(&with_arg);
        assert_eq!(routed(&exchange, "k"), vec![1]);
        exchange.unbind(&Binding::new(1, "k"));
        assert_eq!(routed(&exchange, "k"), Vec::<u32>::new());
    }
}
