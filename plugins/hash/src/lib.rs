//! The `consistent-hash` exchange type: each message goes to exactly one bound destination,
//! chosen by hashing its routing key onto a ring, so the same key always lands on the same
//! destination and adding or removing one moves only the keys it gains or loses. It plays the
//! part of RabbitMQ's separate `x-consistent-hash` plugin.
//!
//! # Using it
//!
//! * **Binding key:** the destination's weight, a whole number from 1 to 1000 written in
//!   decimal (`"1"`, `"10"`). A destination with weight 2 receives about twice the keys of one
//!   with weight 1. Binding the same destination twice adds the weights; unbinding takes one
//!   binding's weight back off.
//! * **`hash-header`** (exchange argument, optional): hash the value of this message header
//!   instead of the routing key. A message without that header is unroutable.
//!
//! With no bindings every message is unroutable.
//!
//! # How it works
//!
//! Every unit of weight puts [`POINTS_PER_WEIGHT`] points on a 64-bit ring, each placed by a
//! stable hash of the destination id and the point's index. A message goes to the owner of the
//! first point at or after the hash of its key, wrapping past the top. The ring is rebuilt
//! lazily on the first message after a binding change, so replaying many bindings into a fresh
//! instance costs one build. Because the ring depends on destination ids, keys keep their
//! destination only as long as the broker keeps those ids.
//!
//! Because `PluginInfo` is per plugin rather than per exchange, the plugin declares that it
//! reads headers even for exchanges that hash the routing key.

mod ring;
mod stable_hash;

use std::cell::OnceCell;
use std::collections::BTreeMap;

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table, Value};

pub use ring::POINTS_PER_WEIGHT;
use ring::Ring;

/// The largest weight a binding may carry.
pub const MAX_WEIGHT: u32 = 1000;

/// The most points one exchange's ring may hold (16 bytes each, so 8 MB); a binding that
/// would grow it past this is refused.
pub const MAX_RING_POINTS: u64 = 500_000;

/// The exchange argument naming a header to hash instead of the routing key.
pub const HASH_HEADER_ARGUMENT: &str = "hash-header";

/// What part of a message is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    RoutingKey,
    /// The value of the first header with this name.
    Header(String),
}

/// One consistent-hash exchange.
#[derive(Debug)]
pub struct ConsistentHashExchange {
    source: HashSource,
    /// Each destination's binding weights, one entry per binding; the ring uses their sums.
    weights: BTreeMap<Destination, Vec<u32>>,
    /// Built from `weights` on the first route after a change.
    ring: OnceCell<Ring>,
}

impl ConsistentHashExchange {
    /// What this exchange hashes.
    pub fn source(&self) -> &HashSource {
        &self.source
    }

    fn total_points(&self) -> u64 {
        self.weights
            .values()
            .flatten()
            .map(|&w| u64::from(w) * u64::from(POINTS_PER_WEIGHT))
            .sum()
    }

    fn ring(&self) -> &Ring {
        self.ring.get_or_init(|| {
            Ring::build(
                self.weights
                    .iter()
                    .map(|(&d, weights)| (d, weights.iter().sum())),
            )
        })
    }
}

/// Parses a binding key as a weight.
pub fn parse_weight(key: &str) -> Result<u32, String> {
    let refuse = || {
        format!(
            "a consistent-hash binding key is the destination's weight, a whole number from 1 \
             to {MAX_WEIGHT}; {key:?} is not"
        )
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    match key.parse::<u32>() {
        Ok(weight) if (1..=MAX_WEIGHT).contains(&weight) => Ok(weight),
        _ => Err(refuse()),
    }
}

impl Router for ConsistentHashExchange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "consistent-hash",
            env!("CARGO_PKG_VERSION"),
            "sends each message to one destination by consistent hashing of its routing key \
             (or the `hash-header` header); binding key = weight 1..1000",
        )
        .reads_headers()
    }

    fn create(arguments: &Table) -> Result<Self, String> {
        let source = match arguments.get(HASH_HEADER_ARGUMENT).map(Value::as_str) {
            None => HashSource::RoutingKey,
            Some(None) => {
                return Err(format!(
                    "`{HASH_HEADER_ARGUMENT}` names the header to hash: it must be a string"
                ));
            }
            Some(Some("")) => {
                return Err(format!(
                    "`{HASH_HEADER_ARGUMENT}` names the header to hash and cannot be empty; \
                     leave it out to hash the routing key"
                ));
            }
            Some(Some(name)) => HashSource::Header(name.to_owned()),
        };
        Ok(ConsistentHashExchange {
            source,
            weights: BTreeMap::new(),
            ring: OnceCell::new(),
        })
    }

    fn validate_binding(&self, binding: &Binding) -> Result<(), String> {
        let weight = parse_weight(&binding.key)?;
        let after = self.total_points() + u64::from(weight) * u64::from(POINTS_PER_WEIGHT);
        if after > MAX_RING_POINTS {
            return Err(format!(
                "this binding would grow the ring to {after} points, more than the \
                 {MAX_RING_POINTS} allowed ({POINTS_PER_WEIGHT} per unit of weight); use \
                 smaller weights"
            ));
        }
        Ok(())
    }

    fn bind(&mut self, binding: Binding) {
        // validate_binding ran first; a key that still is not a weight gives no points.
        let Ok(weight) = parse_weight(&binding.key) else {
            return;
        };
        self.weights
            .entry(binding.destination)
            .or_default()
            .push(weight);
        self.ring = OnceCell::new();
    }

    fn unbind(&mut self, binding: &Binding) {
        let Ok(weight) = parse_weight(&binding.key) else {
            return;
        };
        let Some(weights) = self.weights.get_mut(&binding.destination) else {
            return;
        };
        let Some(i) = weights.iter().position(|&w| w == weight) else {
            return;
        };
        weights.swap_remove(i);
        if weights.is_empty() {
            self.weights.remove(&binding.destination);
        }
        self.ring = OnceCell::new();
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        let key: std::borrow::Cow<'_, str> = match &self.source {
            HashSource::RoutingKey => message.routing_key.as_str().into(),
            // A string hashes as its text, any other value as its display form.
            HashSource::Header(name) => match message.header_value(name) {
                Some(Value::String(text)) => text.as_str().into(),
                Some(other) => other.to_string().into(),
                None => return Vec::new(),
            },
        };
        self.ring().locate(key.as_bytes()).into_iter().collect()
    }
}

switchyard_plugin::export_router!(ConsistentHashExchange);

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEYS: usize = 10_000;

    fn exchange_with(weights: &[(u32, &str)]) -> ConsistentHashExchange {
        let mut exchange = ConsistentHashExchange::create(&Table::new()).unwrap();
        for &(destination, weight) in weights {
            let binding = Binding::new(destination, weight);
            exchange.validate_binding(&binding).unwrap();
            exchange.bind(binding);
        }
        exchange
    }

    fn key(n: usize) -> String {
        format!("customer-{n}")
    }

    /// Where each of the test keys goes.
    fn placement(exchange: &ConsistentHashExchange) -> Vec<Destination> {
        (0..KEYS)
            .map(|n| {
                let routed = exchange.route(&Message::with_key(key(n)));
                assert_eq!(routed.len(), 1, "key {n} went to {routed:?}");
                routed[0]
            })
            .collect()
    }

    fn counts(placement: &[Destination]) -> HashMap<Destination, usize> {
        let mut counts = HashMap::new();
        for &d in placement {
            *counts.entry(d).or_default() += 1;
        }
        counts
    }

    #[test]
    fn weights_must_be_whole_numbers_from_1_to_1000() {
        for good in ["1", "7", "1000", "0100"] {
            assert!(parse_weight(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "0",
            "1001",
            "-1",
            "+5",
            " 5",
            "5 ",
            "1.5",
            "ten",
            "99999999999",
        ] {
            let err = parse_weight(bad).unwrap_err();
            assert!(err.contains("weight"), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
        let exchange = exchange_with(&[]);
        assert!(exchange.validate_binding(&Binding::new(1, "0")).is_err());
        assert!(exchange.validate_binding(&Binding::new(1, "3")).is_ok());
    }

    #[test]
    fn a_binding_that_would_overgrow_the_ring_is_refused() {
        let exchange = exchange_with(&[(1, "1000"), (2, "1000"), (3, "1000"), (4, "1000")]);
        assert!(exchange.validate_binding(&Binding::new(5, "1000")).is_ok());
        let mut exchange = exchange;
        exchange.bind(Binding::new(5, "1000"));
        let err = exchange
            .validate_binding(&Binding::new(6, "1"))
            .unwrap_err();
        assert!(err.contains("500100 points"), "{err}");
    }

    #[test]
    fn an_empty_hash_header_argument_is_refused() {
        let err =
            ConsistentHashExchange::create(&Table::new().with("hash-header", "")).unwrap_err();
        assert!(err.contains("hash-header"), "{err}");
    }

    #[test]
    fn with_no_bindings_nothing_is_routed() {
        let exchange = exchange_with(&[]);
        assert!(exchange.route(&Message::with_key("k")).is_empty());
    }

    #[test]
    fn the_same_key_always_goes_to_the_same_single_destination() {
        let exchange = exchange_with(&[(1, "1"), (2, "1"), (3, "1")]);
        let first = placement(&exchange);
        assert_eq!(placement(&exchange), first);
        // A fresh exchange with the same bindings in another order agrees.
        let replayed = exchange_with(&[(3, "1"), (1, "1"), (2, "1")]);
        assert_eq!(placement(&replayed), first);
    }

    #[test]
    fn keys_spread_in_proportion_to_weights() {
        let exchange = exchange_with(&[(1, "1"), (2, "2"), (3, "3"), (4, "4")]);
        let counts = counts(&placement(&exchange));
        for (destination, weight) in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)] {
            let expected = KEYS as f64 * weight / 10.0;
            let got = counts.get(&Destination(destination)).copied().unwrap_or(0) as f64;
            assert!(
                (got - expected).abs() <= expected * 0.25,
                "destination {destination} got {got} keys, expected about {expected}"
            );
        }
    }

    #[test]
    fn adding_a_fifth_destination_moves_only_the_keys_it_takes() {
        let mut exchange = exchange_with(&[(1, "1"), (2, "1"), (3, "1"), (4, "1")]);
        let before = placement(&exchange);
        exchange.bind(Binding::new(5, "1"));
        let after = placement(&exchange);
        let moved: Vec<usize> = (0..KEYS).filter(|&n| before[n] != after[n]).collect();
        assert!(
            moved.len() * 100 < KEYS * 40,
            "{} of {KEYS} keys moved",
            moved.len()
        );
        assert!(!moved.is_empty());
        assert!(
            moved.iter().all(|&n| after[n] == Destination(5)),
            "a key moved between two old destinations"
        );
    }

    #[test]
    fn unbinding_gives_the_keys_back() {
        let mut exchange = exchange_with(&[(1, "1"), (2, "1")]);
        let before = placement(&exchange);
        exchange.bind(Binding::new(3, "2"));
        exchange.unbind(&Binding::new(3, "2"));
        assert_eq!(placement(&exchange), before);
        exchange.unbind(&Binding::new(2, "1"));
        assert!(placement(&exchange).iter().all(|&d| d == Destination(1)));
        exchange.unbind(&Binding::new(1, "1"));
        assert!(exchange.route(&Message::with_key("k")).is_empty());
    }

    #[test]
    fn a_destination_bound_twice_weighs_the_sum_of_its_bindings() {
        let twice = exchange_with(&[(1, "1"), (1, "3"), (2, "2")]);
        let once = exchange_with(&[(1, "4"), (2, "2")]);
        assert_eq!(placement(&twice), placement(&once));

        let mut exchange = twice;
        exchange.unbind(&Binding::new(1, "3"));
        assert_eq!(
            placement(&exchange),
            placement(&exchange_with(&[(1, "1"), (2, "2")]))
        );
    }

    #[test]
    fn unbinding_what_was_never_bound_changes_nothing() {
        let mut exchange = exchange_with(&[(1, "2"), (2, "1")]);
        let before = placement(&exchange);
        exchange.unbind(&Binding::new(1, "5"));
        exchange.unbind(&Binding::new(9, "1"));
        exchange.unbind(&Binding::new(1, "not a weight"));
        assert_eq!(placement(&exchange), before);
    }

    #[test]
    fn hash_header_mode_hashes_the_header_and_ignores_the_routing_key() {
        let mut exchange =
            ConsistentHashExchange::create(&Table::new().with("hash-header", "user")).unwrap();
        assert_eq!(exchange.source(), &HashSource::Header("user".into()));
        for d in 1..=4 {
            exchange.bind(Binding::new(d, "1"));
        }
        let by_key = exchange_with(&[(1, "1"), (2, "1"), (3, "1"), (4, "1")]);
        for n in 0..200 {
            let user = key(n);
            let with_header = Message::with_key(format!("ignored-{n}")).header("user", &user);
            let routed = exchange.route(&with_header);
            assert_eq!(routed.len(), 1);
            // Hashing the header value puts the message where the same routing key would go.
            assert_eq!(routed, by_key.route(&Message::with_key(&user)));
        }
        assert!(exchange.route(&Message::with_key("k")).is_empty());
        assert!(
            !exchange
                .route(&Message::with_key("k").header("user", ""))
                .is_empty()
        );
    }

    #[test]
    fn info_names_the_exchange_type_and_reads_headers() {
        let info = ConsistentHashExchange::info();
        assert_eq!(info.name, "consistent-hash");
        assert!(info.reads.headers);
        assert!(!info.reads.body);
    }
}
