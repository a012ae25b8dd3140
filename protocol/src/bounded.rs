//! Serde adapters that keep the sequences inside a frame from costing more memory than the
//! frame's bytes justify.
//!
//! A sequence announces its length before its elements, and serde's stock `Vec` visitor
//! reserves up to 1 MiB for whatever length is announced, even inside a 20-byte frame. Every
//! `Vec` field of a frame goes through [`seq`] instead: it reserves at most
//! [`PREALLOC_BYTES`] up front and grows only as elements actually decode, and each element
//! takes at least one byte of the frame. Headers and arguments are [`Table`](crate::Table)s,
//! which bound their own decoding (see [`value`](crate::value)).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// The most a sequence may reserve before its elements arrive.
pub(crate) const PREALLOC_BYTES: usize = 4096;

/// How many `T`s to reserve for a sequence announcing `announced` elements.
pub(crate) fn initial_capacity<T>(announced: Option<usize>) -> usize {
    let per_element = size_of::<T>().max(1);
    announced.unwrap_or(0).min(PREALLOC_BYTES / per_element)
}

struct BoundedVecVisitor<T> {
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVecVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut elements = Vec::with_capacity(initial_capacity::<T>(seq.size_hint()));
        while let Some(element) = seq.next_element()? {
            elements.push(element);
        }
        Ok(elements)
    }
}

/// Any `Vec` field: `#[serde(deserialize_with = "crate::bounded::seq")]`.
pub(crate) fn seq<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(BoundedVecVisitor {
        element: PhantomData,
    })
}
