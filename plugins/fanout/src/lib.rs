//! The `fanout` exchange type: every bound destination gets a copy, whatever the routing key.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

/// One fanout exchange: its destinations, each with how many bindings put it there.
#[derive(Debug, Default)]
pub struct FanoutExchange {
    destinations: Vec<(Destination, u32)>,
}

impl Router for FanoutExchange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "fanout",
            env!("CARGO_PKG_VERSION"),
            "routes every message to every bound destination",
        )
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(FanoutExchange::default())
    }

    fn bind(&mut self, binding: Binding) {
        match self
            .destinations
            .iter_mut()
            .find(|(d, _)| *d == binding.destination)
        {
            Some((_, count)) => *count += 1,
            None => self.destinations.push((binding.destination, 1)),
        }
    }

    fn unbind(&mut self, binding: &Binding) {
        if let Some(i) = self
            .destinations
            .iter()
            .position(|(d, _)| *d == binding.destination)
        {
            self.destinations[i].1 -= 1;
            if self.destinations[i].1 == 0 {
                self.destinations.swap_remove(i);
            }
        }
    }

    fn route(&self, _message: &Message) -> Vec<Destination> {
        self.destinations.iter().map(|(d, _)| *d).collect()
    }
}

switchyard_plugin::export_router!(FanoutExchange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_destination_gets_one_copy_whatever_the_key() {
        let mut exchange = FanoutExchange::create(&Table::new()).unwrap();
        exchange.bind(Binding::new(1, "ignored"));
        exchange.bind(Binding::new(2, ""));
        exchange.bind(Binding::new(2, "again"));
        let mut routed = exchange.route(&Message::with_key("anything"));
        routed.sort();
        assert_eq!(routed, vec![Destination(1), Destination(2)]);
        exchange.unbind(&Binding::new(2, ""));
        exchange.unbind(&Binding::new(2, "again"));
        assert_eq!(exchange.route(&Message::default()), vec![Destination(1)]);
    }
}
