//! The binding index: binding key → destinations, plus the destinations bound with `*`, so a
//! message costs one hash lookup however many bindings the exchange has.

use std::collections::HashMap;

use switchyard_plugin::Destination;

use crate::json::FieldValue;

/// The binding key that matches every message in which the field exists.
pub const ANY_VALUE: &str = "*";

/// Destinations, each with how many bindings put it there.
#[derive(Debug, Default)]
struct CountedDestinations(Vec<(Destination, u32)>);

impl CountedDestinations {
    fn add(&mut self, destination: Destination) {
        match self.0.iter_mut().find(|(d, _)| *d == destination) {
            Some((_, count)) => *count += 1,
            None => self.0.push((destination, 1)),
        }
    }

    fn remove(&mut self, destination: Destination) {
        if let Some(i) = self.0.iter().position(|(d, _)| *d == destination) {
            self.0[i].1 -= 1;
            if self.0[i].1 == 0 {
                self.0.swap_remove(i);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn destinations(&self) -> impl Iterator<Item = Destination> + '_ {
        self.0.iter().map(|(d, _)| *d)
    }
}

/// Every binding of one exchange, indexed by the value it matches.
#[derive(Debug, Default)]
pub(crate) struct BindingIndex {
    by_value: HashMap<String, CountedDestinations>,
    any: CountedDestinations,
}

impl BindingIndex {
    pub(crate) fn insert(&mut self, key: String, destination: Destination) {
        if key == ANY_VALUE {
            self.any.add(destination);
        } else {
            self.by_value.entry(key).or_default().add(destination);
        }
    }

    /// Removes one binding added by `insert`; one that was never added changes nothing.
    pub(crate) fn remove(&mut self, key: &str, destination: Destination) {
        if key == ANY_VALUE {
            self.any.remove(destination);
            return;
        }
        if let Some(destinations) = self.by_value.get_mut(key) {
            destinations.remove(destination);
            if destinations.is_empty() {
                self.by_value.remove(key);
            }
        }
    }

    /// The destinations for a message whose field holds `value` (`None`: no field, or not
    /// JSON), each once, in ascending order.
    pub(crate) fn route(&self, value: Option<&FieldValue>) -> Vec<Destination> {
        let Some(value) = value else {
            return Vec::new();
        };
        let exact = match value {
            FieldValue::Scalar(text) => self.by_value.get(text.as_str()),
            FieldValue::Container => None,
        };
        let mut out: Vec<Destination> = self
            .any
            .destinations()
            .chain(
                exact
                    .into_iter()
                    .flat_map(CountedDestinations::destinations),
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}
