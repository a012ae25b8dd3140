//! AMQP topic matching, exactly as RabbitMQ does it, built as a trie at bind time.
//!
//! A routing key and a pattern are words separated by `.`; empty words are words (`a..b` has
//! three), but the empty key and the empty pattern have no words at all, as in RabbitMQ. In a
//! pattern `*` matches exactly one word and `#` matches zero or more words, so `#` alone
//! matches every key, the empty one included, while `*`, `*.#` and `#.*` do not match the
//! empty key.
//!
//! Matching walks the trie as a set of active nodes, one routing-key word at a time (a
//! Thompson-style simulation), so its cost is bounded by `words × active nodes` whatever the
//! patterns — no backtracking, however many `#` a pattern has. A destination bound by several
//! matching patterns is reported once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use smallvec::SmallVec;

/// An index of topic patterns to destinations of type `D`.
#[derive(Debug, Clone)]
pub struct TopicTrie<D> {
    root: Node<D>,
    patterns: usize,
}

#[derive(Debug, Clone)]
struct Node<D> {
    words: HashMap<String, Node<D>, BuildHasherDefault<FnvHasher>>,
    star: Option<Box<Node<D>>>,
    hash: Option<Box<Node<D>>>,
    /// Destinations whose pattern ends here, with how many bindings put each one here.
    destinations: Vec<(D, u32)>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Node {
            words: HashMap::default(),
            star: None,
            hash: None,
            destinations: Vec::new(),
        }
    }
}

impl<D> Node<D> {
    fn is_empty(&self) -> bool {
        self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
            && self.destinations.is_empty()
    }
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
            patterns: 0,
        }
    }
}

impl<D: Copy + Eq + Ord> TopicTrie<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many (pattern, destination) bindings the trie holds.
    pub fn len(&self) -> usize {
        self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// Adds `destination` under `pattern`. Binding the same pair twice needs two removals.
    pub fn insert(&mut self, pattern: &str, destination: D) {
        let mut node = &mut self.root;
        for word in words(pattern) {
            node = match word {
                "*" => node.star.get_or_insert_with(Box::default),
                "#" => node.hash.get_or_insert_with(Box::default),
                _ => node.words.entry(word.to_owned()).or_default(),
            };
        }
        match node
            .destinations
            .iter_mut()
            .find(|(d, _)| *d == destination)
        {
            Some((_, count)) => *count += 1,
            None => node.destinations.push((destination, 1)),
        }
        self.patterns += 1;
    }

    /// Removes one binding of `destination` under `pattern`; returns whether there was one.
    /// Branches left empty are pruned.
    pub fn remove(&mut self, pattern: &str, destination: D) -> bool {
        let words: Vec<&str> = words(pattern).collect();
        let removed = remove_at(&mut self.root, &words, destination);
        if removed {
            self.patterns -= 1;
        }
        removed
    }

    /// Every destination whose pattern matches `routing_key`, each once, in ascending order.
    pub fn matches(&self, routing_key: &str) -> Vec<D> {
        let mut out = Vec::new();
        self.matches_into(routing_key, &mut out);
        out
    }

    /// Like [`matches`](Self::matches), appending to `out` (cleared first) to reuse its buffer.
    pub fn matches_into(&self, routing_key: &str, out: &mut Vec<D>) {
        out.clear();
        let mut active: ActiveSet<'_, D> = SmallVec::new();
        let mut next: ActiveSet<'_, D> = SmallVec::new();
        push_with_closure(&mut active, &self.root, false);
        for word in words(routing_key) {
            next.clear();
            for &(node, through_hash) in &active {
                if let Some(child) = node.words.get(word) {
                    push_with_closure(&mut next, child, false);
                }
                if let Some(star) = &node.star {
                    push_with_closure(&mut next, star, false);
                }
                // A node reached through `#` consumes any word and stays active.
                if through_hash {
                    push_with_closure(&mut next, node, true);
                }
            }
            std::mem::swap(&mut active, &mut next);
            if active.is_empty() {
                return;
            }
        }
        for (node, _) in active {
            out.extend(node.destinations.iter().map(|(d, _)| *d));
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// The words of a routing key or pattern: none for the empty string, else split at `.`.
fn words(text: &str) -> std::str::Split<'_, char> {
    let mut split = text.split('.');
    if text.is_empty() {
        // `"".split('.')` yields one empty word; the empty key has none.
        split.next();
    }
    split
}

/// An active trie node, and whether it was reached through a `#` edge.
type Active<'a, D> = (&'a Node<D>, bool);

/// Active nodes; almost always a handful, so they live on the stack.
type ActiveSet<'a, D> = SmallVec<[Active<'a, D>; 16]>;

/// Adds `node` to `set` unless present, then the `#` children reachable through it without
/// consuming a word (`#` matches zero words).
fn push_with_closure<'a, D>(set: &mut ActiveSet<'a, D>, node: &'a Node<D>, through_hash: bool) {
    let (mut node, mut through_hash) = (node, through_hash);
    loop {
        if set.iter().any(|(n, _)| std::ptr::eq(*n, node)) {
            return;
        }
        set.push((node, through_hash));
        match &node.hash {
            Some(hash) => (node, through_hash) = (hash, true),
            None => return,
        }
    }
}

fn remove_at<D: Copy + Eq>(node: &mut Node<D>, words: &[&str], destination: D) -> bool {
    let Some((word, rest)) = words.split_first() else {
        let Some(i) = node
            .destinations
            .iter()
            .position(|(d, _)| *d == destination)
        else {
            return false;
        };
        node.destinations[i].1 -= 1;
        if node.destinations[i].1 == 0 {
            node.destinations.swap_remove(i);
        }
        return true;
    };
    match *word {
        "*" | "#" => {
            let slot = if *word == "*" {
                &mut node.star
            } else {
                &mut node.hash
            };
            let Some(child) = slot else { return false };
            let removed = remove_at(child, rest, destination);
            if child.is_empty() {
                *slot = None;
            }
            removed
        }
        _ => {
            let Some(child) = node.words.get_mut(*word) else {
                return false;
            };
            let removed = remove_at(child, rest, destination);
            if child.is_empty() {
                node.words.remove(*word);
            }
            removed
        }
    }
}

/// FNV-1a: routing-key words are short, and SipHash's setup dominates hashing them.
/// Patterns come from bindings the broker accepted, so flooding is not a concern here.
#[derive(Debug, Clone, Copy)]
struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Whether a routing key matches a single pattern. Builds a one-pattern trie: for occasional
/// checks, not for routing many messages.
pub fn pattern_matches(pattern: &str, routing_key: &str) -> bool {
    let mut trie = TopicTrie::new();
    trie.insert(pattern, 0u8);
    !trie.matches(routing_key).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, routing key, matches) — RabbitMQ's behaviour.
    const CASES: &[(&str, &str, bool)] = &[
        ("a.b.c", "a.b.c", true),
        ("a.b.c", "a.b", false),
        ("a.b.c", "a.b.c.d", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("a.*.c", "a.b.b.c", false),
        ("*", "a", true),
        ("*", "", false),
        ("*", "a.b", false),
        ("*.*", "a.b", true),
        ("*.*", "a", false),
        ("#", "", true),
        ("#", "a", true),
        ("#", "a.b.c", true),
        ("a.#", "a", true),
        ("a.#", "a.b", true),
        ("a.#", "a.b.c", true),
        ("a.#", "b.a", false),
        ("#.a", "a", true),
        ("#.a", "b.a", true),
        ("#.a", "a.b", false),
        ("a.#.b", "a.b", true),
        ("a.#.b", "a.x.y.b", true),
        ("a.#.b", "a.x.y.c", false),
        ("#.#", "", true),
        ("#.#", "a.b.c", true),
        ("#.b.#", "b", true),
        ("#.b.#", "a.b.c", true),
        ("#.b.#", "a.c", false),
        ("*.#", "", false),
        ("*.#", "a", true),
        ("#.*", "", false),
        ("#.*.#", "", false),
        ("#.*", "a.b", true),
        ("*.*.#", "a", false),
        ("a..b", "a..b", true),
        ("a..b", "a.b", false),
        ("a.*.b", "a..b", true),
        ("", "", true),
        ("", "a", false),
        ("*.", "a.", true),
        ("#.", ".", true),
        ("stock.*.nyse", "stock.ibm.nyse", true),
        ("stock.#", "stock", true),
        ("a.*.#.c", "a.b.c", true),
        ("a.*.#.c", "a.c", false),
        ("#.#.#.#.z", "a.b.c.d.e.f.g.h.z", true),
        ("#.#.#.#.z", "a.b.c.d.e.f.g.h.y", false),
        ("A.b", "a.b", false),
    ];

    #[test]
    fn every_case_matches_as_rabbitmq_does() {
        for &(pattern, key, expected) in CASES {
            assert_eq!(
                pattern_matches(pattern, key),
                expected,
                "pattern {pattern:?} against key {key:?}"
            );
        }
    }

    /// RabbitMQ's own topic-exchange test: 26 bindings, and which of them each key reaches.
    #[test]
    fn rabbitmq_topic_exchange_vectors() {
        const BINDINGS: [&str; 26] = [
            "a.b.c",
            "a.*.c",
            "a.#.b",
            "a.b.b.c",
            "#",
            "#.#",
            "#.b",
            "*.*",
            "a.*",
            "*.b.c",
            "a.#",
            "a.#.#",
            "b.b.c",
            "a.b.b",
            "a.b",
            "b.c",
            "",
            "*.*.*",
            "vodka.martini",
            "a.b.c",
            "*.#",
            "#.*.#",
            "*.#.#",
            "#.#.#",
            "*",
            "#.b.#",
        ];
        const EXPECTED: &[(&str, &[u32])] = &[
            (
                "a.b.c",
                &[1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 24, 26],
            ),
            ("a.b", &[3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 24, 26]),
            ("a.b.b", &[3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 24, 26]),
            ("", &[5, 6, 17, 24]),
            ("b.c.c", &[5, 6, 18, 21, 22, 23, 24, 26]),
            ("a.a.a.a.a", &[5, 6, 11, 12, 21, 22, 23, 24]),
            ("vodka.gin", &[5, 6, 8, 21, 22, 23, 24]),
            ("vodka.martini", &[5, 6, 8, 19, 21, 22, 23, 24]),
            ("b.b.c", &[5, 6, 10, 13, 18, 21, 22, 23, 24, 26]),
            ("nothing.here.at.all", &[5, 6, 21, 22, 23, 24]),
            ("oneword", &[5, 6, 21, 22, 23, 24, 25]),
        ];
        let mut trie = TopicTrie::new();
        for (index, pattern) in BINDINGS.iter().enumerate() {
            trie.insert(pattern, index as u32 + 1);
        }
        for &(key, expected) in EXPECTED {
            assert_eq!(trie.matches(key), expected, "routing key {key:?}");
        }
    }

    #[test]
    fn destination_bound_by_several_matching_patterns_is_reported_once() {
        let mut trie = TopicTrie::new();
        trie.insert("a.*", 1u32);
        trie.insert("#", 1);
        trie.insert("a.b", 1);
        trie.insert("a.b", 2);
        assert_eq!(trie.matches("a.b"), vec![1, 2]);
    }

    #[test]
    fn removing_a_binding_keeps_the_others_and_prunes_empty_branches() {
        let mut trie = TopicTrie::new();
        trie.insert("a.#", 1u32);
        trie.insert("a.#", 1);
        trie.insert("a.b", 2);
        assert!(trie.remove("a.#", 1));
        assert_eq!(trie.matches("a.b"), vec![1, 2]);
        assert!(trie.remove("a.#", 1));
        assert_eq!(trie.matches("a.b"), vec![2]);
        assert!(!trie.remove("a.#", 1));
        assert!(trie.remove("a.b", 2));
        assert!(trie.is_empty());
        assert!(trie.root.is_empty());
    }

    #[test]
    fn many_hashes_against_a_long_key_do_not_blow_up() {
        let mut trie = TopicTrie::new();
        trie.insert(&["#"; 30].join("."), 7u32);
        let key = ["w"; 200].join(".");
        assert_eq!(trie.matches(&key), vec![7]);
    }
}
