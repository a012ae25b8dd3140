//! Typed values: AMQP 0-9-1's field-value set (with RabbitMQ's integer widths), the one value
//! type of message headers and of exchange, queue, binding and consumer arguments.
//!
//! A [`Table`] is what AMQP calls a field table: named values in the order given. Headers keep
//! that order and may repeat a name (a publisher's choice, passed on as is); arguments are
//! normalised by the broker (sorted by name, a repeated name refused), so they compare as maps.
//!
//! Values compare as data: two floats are equal when their bits are (so `NaN` equals itself and
//! every value has a total order, which bindings need to sit in ordered sets), and values of
//! different types are never equal (`1` as an `I32` is not `1` as an `I64`, nor `"1"`). Where
//! RabbitMQ reads a number from an argument given as a string (`x-max-length="10"` from a
//! command line), [`Value::coerce_i64`] does the same.
//!
//! This crate has no dependencies, so plugins (built for WebAssembly with the guest SDK) and the
//! broker share the one type. With the `serde` feature (the broker's wire protocol and store):
//! on the wire (bincode through serde) a value is its variant index and payload. Decoding is
//! bounded before anything is allocated: tables and arrays nest at most [`MAX_VALUE_DEPTH`]
//! deep, and one table, with everything nested in it, holds at most [`MAX_TABLE_ITEMS`]
//! values, so a frame cannot cost more memory than its bytes justify, nor recurse deeper than
//! the stack allows.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

#[cfg(feature = "serde")]
mod wire;

/// How deep arrays and tables may nest in one value (a table of a table of … is `depth`
/// levels). Celery's deepest header nests three.
pub const MAX_VALUE_DEPTH: usize = 16;

/// The most values one table may hold, counting everything nested in it.
pub const MAX_TABLE_ITEMS: usize = 4096;

/// AMQP's decimal: `value` × 10^-`scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Decimal {
    pub scale: u8,
    pub value: u32,
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.value.to_string();
        let scale = usize::from(self.scale);
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{whole}.{fraction}")
    }
}

/// One typed value.
#[derive(Debug, Clone)]
pub enum Value {
    /// AMQP's `V`: no value.
    Void,
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Decimal(Decimal),
    /// AMQP's long string (`S`), as UTF-8 text.
    String(String),
    /// AMQP's byte array (`x`): binary data.
    Bytes(Vec<u8>),
    /// Seconds since the Unix epoch (AMQP's `T`).
    Timestamp(u64),
    Array(Vec<Value>),
    Table(Table),
}

/// Named values in the order given (AMQP's field table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table(Vec<(String, Value)>);

impl Value {
    /// The type's name, for error messages ("an integer", "a string", …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Void => "void",
            Value::Bool(_) => "a boolean",
            Value::I8(_)
            | Value::U8(_)
            | Value::I16(_)
            | Value::U16(_)
            | Value::I32(_)
            | Value::U32(_)
            | Value::I64(_)
            | Value::U64(_) => "an integer",
            Value::F32(_) | Value::F64(_) => "a float",
            Value::Decimal(_) => "a decimal",
            Value::String(_) => "a string",
            Value::Bytes(_) => "a byte array",
            Value::Timestamp(_) => "a timestamp",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }

    /// Whether it is an integer, of any width.
    pub fn is_integer(&self) -> bool {
        self.type_name() == "an integer"
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An integer of any width that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(n) => Some(n.into()),
            Value::U8(n) => Some(n.into()),
            Value::I16(n) => Some(n.into()),
            Value::U16(n) => Some(n.into()),
            Value::I32(n) => Some(n.into()),
            Value::U32(n) => Some(n.into()),
            Value::I64(n) => Some(n),
            Value::U64(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// A non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(n) => Some(n),
            _ => self.as_i64().and_then(|n| u64::try_from(n).ok()),
        }
    }

    /// Any number (integer, float or decimal) as an `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(x) => Some(x.into()),
            Value::F64(x) => Some(x),
            Value::Decimal(d) => Some(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
            Value::U64(n) => Some(n as f64),
            _ => self.as_i64().map(|n| n as f64),
        }
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(table) => Some(table),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// An integer, or a string holding one, as RabbitMQ reads numeric arguments.
    pub fn coerce_i64(&self) -> Option<i64> {
        match self {
            Value::String(text) => text.trim().parse().ok(),
            other => other.as_i64(),
        }
    }

    /// A boolean, or the string `true` or `false`.
    pub fn coerce_bool(&self) -> Option<bool> {
        match self {
            Value::String(text) => text.trim().parse().ok(),
            other => other.as_bool(),
        }
    }

    /// How many values this is, counting everything nested in it.
    pub fn items(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::items).sum::<usize>(),
            Value::Table(table) => 1 + table.items(),
            _ => 1,
        }
    }

    /// How deep arrays and tables nest in it (a scalar is 0).
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Table(table) => 1 + table.depth(),
            _ => 0,
        }
    }

    /// Bytes of text and binary data this holds (names included), for size limits.
    pub fn data_bytes(&self) -> usize {
        match self {
            Value::String(text) => text.len(),
            Value::Bytes(bytes) => bytes.len(),
            Value::Array(items) => items.iter().map(Value::data_bytes).sum(),
            Value::Table(table) => table.data_bytes(),
            _ => 8,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Void => 0,
            Value::Bool(_) => 1,
            Value::I8(_) => 2,
            Value::U8(_) => 3,
            Value::I16(_) => 4,
            Value::U16(_) => 5,
            Value::I32(_) => 6,
            Value::U32(_) => 7,
            Value::I64(_) => 8,
            Value::U64(_) => 9,
            Value::F32(_) => 10,
            Value::F64(_) => 11,
            Value::Decimal(_) => 12,
            Value::String(_) => 13,
            Value::Bytes(_) => 14,
            Value::Timestamp(_) => 15,
            Value::Array(_) => 16,
            Value::Table(_) => 17,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// By type first, then by value; floats by their bits' total order.
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Void, Void) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (I8(a), I8(b)) => a.cmp(b),
            (U8(a), U8(b)) => a.cmp(b),
            (I16(a), I16(b)) => a.cmp(b),
            (U16(a), U16(b)) => a.cmp(b),
            (I32(a), I32(b)) => a.cmp(b),
            (U32(a), U32(b)) => a.cmp(b),
            (I64(a), I64(b)) => a.cmp(b),
            (U64(a), U64(b)) => a.cmp(b),
            (F32(a), F32(b)) => a.total_cmp(b),
            (F64(a), F64(b)) => a.total_cmp(b),
            (Decimal(a), Decimal(b)) => a.cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Array(a), Array(b)) => a.cmp(b),
            (Table(a), Table(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Value::Void => {}
            Value::Bool(b) => b.hash(state),
            Value::I8(n) => n.hash(state),
            Value::U8(n) => n.hash(state),
            Value::I16(n) => n.hash(state),
            Value::U16(n) => n.hash(state),
            Value::I32(n) => n.hash(state),
            Value::U32(n) => n.hash(state),
            Value::I64(n) => n.hash(state),
            Value::U64(n) => n.hash(state),
            Value::F32(x) => x.to_bits().hash(state),
            Value::F64(x) => x.to_bits().hash(state),
            Value::Decimal(d) => d.hash(state),
            Value::String(text) => text.hash(state),
            Value::Bytes(bytes) => bytes.hash(state),
            Value::Timestamp(t) => t.hash(state),
            Value::Array(items) => items.hash(state),
            Value::Table(table) => table.hash(state),
        }
    }
}

impl fmt::Display for Value {
    /// Text for logs and for places that need a string: scalars plainly (a string as itself),
    /// byte arrays as hex, arrays and tables bracketed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Void => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I8(n) => write!(f, "{n}"),
            Value::U8(n) => write!(f, "{n}"),
            Value::I16(n) => write!(f, "{n}"),
            Value::U16(n) => write!(f, "{n}"),
            Value::I32(n) => write!(f, "{n}"),
            Value::U32(n) => write!(f, "{n}"),
            Value::I64(n) => write!(f, "{n}"),
            Value::U64(n) => write!(f, "{n}"),
            Value::F32(x) => write!(f, "{x}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(text) => f.write_str(text),
            Value::Bytes(bytes) => bytes.iter().try_for_each(|b| write!(f, "{b:02x}")),
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Table(table) => write!(f, "{table}"),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: {value}")?;
        }
        f.write_str("}")
    }
}

macro_rules! from_scalar {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for Value {
            fn from(value: $ty) -> Self {
                Value::$variant(value)
            }
        })*
    };
}

from_scalar!(
    bool => Bool, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, u64 => U64, f32 => F32, f64 => F64, Decimal => Decimal, String => String,
    Vec<u8> => Bytes, Vec<Value> => Array, Table => Table,
);

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::String(text.to_owned())
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::String(text.clone())
    }
}

impl Table {
    pub fn new() -> Table {
        Table(Vec::new())
    }

    /// Adds `name` at the end, even if the table has it already (headers may repeat names).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.0.push((name.into(), value.into()));
    }

    /// Builder form of [`push`](Self::push).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Table {
        self.push(name, value);
        self
    }

    /// Sets `name`: replaces its first entry (dropping any others) or adds it at the end.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter().position(|(n, _)| *n == name) {
            Some(at) => {
                self.0[at].1 = value;
                let mut index = 0;
                self.0.retain(|(n, _)| {
                    index += 1;
                    index - 1 == at || *n != name
                });
            }
            None => self.0.push((name, value)),
        }
    }

    /// Removes every entry called `name`; returns the first one's value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        let (_, value) = self.0.remove(at);
        self.0.retain(|(n, _)| n != name);
        Some(value)
    }

    /// The first value called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }

    pub fn get_u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(Value::as_u64)
    }

    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.0
            .iter_mut()
            .map(|(name, value)| (name.as_str(), value))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn entries(&self) -> &[(String, Value)] {
        &self.0
    }

    pub fn into_entries(self) -> Vec<(String, Value)> {
        self.0
    }

    /// Keeps the entries for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.0.retain(|(n, v)| keep(n, v));
    }

    /// Sorts the entries by name (stable: repeated names keep their order).
    pub fn sort_by_name(&mut self) {
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// The first name given twice, if any (after [`sort_by_name`](Self::sort_by_name)).
    pub fn repeated_name(&self) -> Option<&str> {
        self.0
            .windows(2)
            .find(|pair| pair[0].0 == pair[1].0)
            .map(|pair| pair[0].0.as_str())
    }

    /// How many values the table holds, counting everything nested.
    pub fn items(&self) -> usize {
        self.0.iter().map(|(_, v)| v.items()).sum()
    }

    /// How deep arrays and tables nest inside it.
    pub fn depth(&self) -> usize {
        self.0.iter().map(|(_, v)| v.depth()).max().unwrap_or(0)
    }

    /// Bytes of names, text and binary data, for size limits.
    pub fn data_bytes(&self) -> usize {
        self.0.iter().map(|(n, v)| n.len() + v.data_bytes()).sum()
    }
}

impl<N: Into<String>, V: Into<Value>> FromIterator<(N, V)> for Table {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(entries: I) -> Self {
        Table(
            entries
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Table {
    type Item = &'a (String, Value);
    type IntoIter = std::slice::Iter<'a, (String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
