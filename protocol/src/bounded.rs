//! Serde adapters that keep the sequences inside a frame from costing more memory than the
//! frame's bytes justify.
//!
//! A sequence announces its length before its elements, and serde's stock `Vec` visitor
//! reserves up to 1 MiB for whatever length is announced, even inside a 20-byte frame. Every
//! `Vec` field of a frame goes through [`seq`] or [`pairs`] instead: they reserve at most
//! [`PREALLOC_BYTES`] up front and grow only as elements actually decode, and each element
//! takes at least one byte of the frame. [`pairs`] (headers and arguments) also refuses more
//! than [`MAX_HEADERS`] entries, on encode and on decode, because an empty pair is 2 wire bytes
//! but 48 bytes of memory: unbounded, one 16 MiB frame would become ~400 MiB.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error as _, SeqAccess, Visitor};
use serde::ser::{Error as _, Serialize, Serializer};

use crate::limits::MAX_HEADERS;

/// The most a sequence may reserve before its elements arrive.
pub(crate) const PREALLOC_BYTES: usize = 4096;

/// How many `T`s to reserve for a sequence announcing `announced` elements.
pub(crate) fn initial_capacity<T>(announced: Option<usize>) -> usize {
    let per_element = size_of::<T>().max(1);
    announced.unwrap_or(0).min(PREALLOC_BYTES / per_element)
}

struct BoundedVecVisitor<T> {
    max_len: Option<usize>,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVecVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_len {
            Some(max) => write!(f, "a sequence of at most {max} elements"),
            None => f.write_str("a sequence"),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        if let (Some(max), Some(announced)) = (self.max_len, seq.size_hint())
            && announced > max
        {
            return Err(A::Error::invalid_length(announced, &self));
        }
        let mut elements = Vec::with_capacity(initial_capacity::<T>(seq.size_hint()));
        while let Some(element) = seq.next_element()? {
            if self.max_len.is_some_and(|max| elements.len() >= max) {
                return Err(A::Error::invalid_length(elements.len() + 1, &self));
            }
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
        max_len: None,
        element: PhantomData,
    })
}

/// Headers and arguments (`Vec<(String, String)>`), at most [`MAX_HEADERS`] of them:
/// `#[serde(with = "crate::bounded::pairs")]`.
pub(crate) mod pairs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        pairs: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if pairs.len() > MAX_HEADERS {
            return Err(S::Error::custom(format_args!(
                "{} headers or arguments, at most {MAX_HEADERS} are allowed",
                pairs.len()
            )));
        }
        pairs.serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        deserializer.deserialize_seq(BoundedVecVisitor {
            max_len: Some(MAX_HEADERS),
            element: PhantomData,
        })
    }
}
