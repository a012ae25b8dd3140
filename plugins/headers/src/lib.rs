//! The `headers` exchange type, as RabbitMQ's: a binding's arguments name headers the message
//! must carry, and `x-match` (`all`, `any`, `all-with-x`, `any-with-x`) says how many. The
//! routing key is ignored. Matching rules are in the SDK's [`HeaderMatcher`].

use switchyard_plugin::headers::HeaderMatcher;
use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

/// One headers exchange: every binding with its compiled condition.
#[derive(Debug, Default)]
pub struct HeadersExchange {
    bindings: Vec<(Binding, HeaderMatcher)>,
}

impl Router for HeadersExchange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "headers",
            env!("CARGO_PKG_VERSION"),
            "routes on message headers; x-match = all | any | all-with-x | any-with-x",
        )
        .reads_headers()
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(HeadersExchange::default())
    }

    fn validate_binding(&self, binding: &Binding) -> Result<(), String> {
        HeaderMatcher::from_arguments(&binding.arguments).map(|_| ())
    }

    fn bind(&mut self, binding: Binding) {
        // validate_binding ran first; a binding that still fails to parse cannot match.
        if let Ok(matcher) = HeaderMatcher::from_arguments(&binding.arguments) {
            self.bindings.push((binding, matcher));
        }
    }

    fn unbind(&mut self, binding: &Binding) {
        if let Some(i) = self.bindings.iter().position(|(b, _)| b == binding) {
            self.bindings.swap_remove(i);
        }
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        let mut out: Vec<Destination> = self
            .bindings
            .iter()
            .filter(|(_, matcher)| matcher.matches(&message.headers))
            .map(|(b, _)| b.destination)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

switchyard_plugin::export_router!(HeadersExchange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_binding_that_matches_routes_once() {
        let mut exchange = HeadersExchange::create(&Table::new()).unwrap();
        exchange.bind(
            Binding::new(1, "")
                .argument("x-match", "any")
                .argument("a", "1"),
        );
        exchange.bind(Binding::new(1, "").argument("b", "2"));
        exchange.bind(Binding::new(2, "").argument("b", "3"));
        let message = Message::with_key("ignored")
            .header("a", "1")
            .header("b", "2");
        assert_eq!(exchange.route(&message), vec![Destination(1)]);
    }
}
