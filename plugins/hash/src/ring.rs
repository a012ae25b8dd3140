//! The hash ring: every destination's points, sorted by position, and the lookup that sends a
//! key to the first point at or after its own position.
//!
//! A ring is a pure function of the destinations' total weights, so bind order never changes
//! where a key goes, and the same bindings replayed into a fresh instance build the same ring.

use switchyard_plugin::Destination;

use crate::stable_hash::{key_position, point_position};

/// How many ring points one unit of weight buys.
pub const POINTS_PER_WEIGHT: u32 = 100;

/// A built ring; rebuilt whenever the weights change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    /// (position, destination), sorted; ties are broken by destination so the order is total.
    points: Vec<(u64, Destination)>,
}

impl Ring {
    /// Builds the ring for destinations with these total weights.
    pub(crate) fn build(weights: impl IntoIterator<Item = (Destination, u32)>) -> Ring {
        let mut points = Vec::new();
        for (destination, weight) in weights {
            let count = weight.saturating_mul(POINTS_PER_WEIGHT);
            points.extend((0..count).map(|i| (point_position(destination.0, i), destination)));
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The destination owning `key`: the first point at or after the key's position, wrapping
    /// to the first point of the ring. `None` only for an empty ring.
    pub(crate) fn locate(&self, key: &[u8]) -> Option<Destination> {
        let position = key_position(key);
        let i = self.points.partition_point(|&(p, _)| p < position);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map(|&(_, d)| d)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_of_weight_is_a_hundred_points() {
        let ring = Ring::build([(Destination(1), 2), (Destination(2), 3)]);
        assert_eq!(ring.len(), 500);
    }

    #[test]
    fn an_empty_ring_locates_nothing() {
        assert_eq!(Ring::build([]).locate(b"k"), None);
    }

    #[test]
    fn a_key_past_the_last_point_wraps_to_the_first() {
        let ring = Ring::build([(Destination(1), 1), (Destination(2), 1)]);
        let first = ring.points[0].1;
        let last = ring.points.last().unwrap().0;
        // Find a key whose position lies beyond the last point.
        let key = (0u32..)
            .map(|n| n.to_string())
            .find(|k| key_position(k.as_bytes()) > last)
            .unwrap();
        assert_eq!(ring.locate(key.as_bytes()), Some(first));
    }

    #[test]
    fn build_order_does_not_matter() {
        let a = Ring::build([
            (Destination(1), 1),
            (Destination(2), 5),
            (Destination(3), 2),
        ]);
        let b = Ring::build([
            (Destination(3), 2),
            (Destination(1), 1),
            (Destination(2), 5),
        ]);
        assert_eq!(a.points, b.points);
    }
}
