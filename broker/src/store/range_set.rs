//! A set of `u64` kept as disjoint ranges: the sequence numbers of removed messages, which in a
//! queue acked in order collapse into a handful of ranges however many there are.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    /// start → end (exclusive); ranges neither overlap nor touch.
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub fn insert_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        // Merge with a range that starts before and reaches `start`.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.ranges.remove(&s);
        }
        // Absorb ranges that start inside or right after [start, end].
        while let Some((&s, &e)) = self.ranges.range(start..=end).next() {
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }

    pub fn contains(&self, value: u64) -> bool {
        self.ranges
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| value < end)
    }

    /// How many ranges (a measure of its memory).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        let mut set = RangeSet::default();
        set.insert_range(10, 20);
        set.insert_range(20, 25);
        set.insert_range(5, 11);
        set.insert_range(40, 41);
        assert_eq!(set.range_count(), 2);
        assert!(set.contains(5) && set.contains(24) && set.contains(40));
        assert!(!set.contains(4) && !set.contains(25) && !set.contains(41));
        set.insert_range(0, 100);
        assert_eq!(set.range_count(), 1);
    }
}
