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
//! On the wire (bincode through serde) a value is its variant index and payload. Decoding is
//! bounded before anything is allocated: tables and arrays nest at most [`MAX_VALUE_DEPTH`]
//! deep, and one table, with everything nested in it, holds at most [`MAX_TABLE_ITEMS`]
//! values, so a frame cannot cost more memory than its bytes justify, nor recurse deeper than
//! the stack allows.

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{self, SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bounded::initial_capacity;

/// How deep arrays and tables may nest in one value (a table of a table of … is `depth`
/// levels). Celery's deepest header nests three.
pub const MAX_VALUE_DEPTH: usize = 16;

/// The most values one table may hold, counting everything nested in it.
pub const MAX_TABLE_ITEMS: usize = 4096;

/// AMQP's decimal: `value` × 10^-`scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

// ---- wire form -------------------------------------------------------------------------------

const VARIANTS: &[&str] = &[
    "Void",
    "Bool",
    "I8",
    "U8",
    "I16",
    "U16",
    "I32",
    "U32",
    "I64",
    "U64",
    "F32",
    "F64",
    "Decimal",
    "String",
    "Bytes",
    "Timestamp",
    "Array",
    "Table",
];

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = u32::from(self.rank());
        let name = VARIANTS[usize::from(self.rank())];
        match self {
            Value::Void => serializer.serialize_unit_variant("Value", index, name),
            Value::Bool(b) => serializer.serialize_newtype_variant("Value", index, name, b),
            Value::I8(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::U8(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::I16(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::U16(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::I32(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::U32(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::I64(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::U64(n) => serializer.serialize_newtype_variant("Value", index, name, n),
            Value::F32(x) => serializer.serialize_newtype_variant("Value", index, name, x),
            Value::F64(x) => serializer.serialize_newtype_variant("Value", index, name, x),
            Value::Decimal(d) => serializer.serialize_newtype_variant("Value", index, name, d),
            Value::String(text) => serializer.serialize_newtype_variant("Value", index, name, text),
            Value::Bytes(bytes) => {
                serializer.serialize_newtype_variant("Value", index, name, &BytesRef(bytes))
            }
            Value::Timestamp(t) => serializer.serialize_newtype_variant("Value", index, name, t),
            Value::Array(items) => {
                serializer.serialize_newtype_variant("Value", index, name, &ArrayRef(items))
            }
            Value::Table(table) => {
                serializer.serialize_newtype_variant("Value", index, name, table)
            }
        }
    }
}

/// Byte arrays go out as one length-prefixed run, not a sequence of numbers.
struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

struct ArrayRef<'a>(&'a [Value]);

impl Serialize for ArrayRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

impl Serialize for Table {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.depth() >= MAX_VALUE_DEPTH {
            return Err(ser::Error::custom(format_args!(
                "a table nests {} deep, at most {MAX_VALUE_DEPTH} is allowed",
                self.depth() + 1
            )));
        }
        if self.items() > MAX_TABLE_ITEMS {
            return Err(ser::Error::custom(format_args!(
                "a table holds {} values, at most {MAX_TABLE_ITEMS} are allowed",
                self.items()
            )));
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for entry in &self.0 {
            seq.serialize_element(&EntryRef(&entry.0, &entry.1))?;
        }
        seq.end()
    }
}

struct EntryRef<'a>(&'a str, &'a Value);

impl Serialize for EntryRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(self.0)?;
        tuple.serialize_element(self.1)?;
        tuple.end()
    }
}

/// What decoding one table may still spend, shared by everything nested in it.
struct Budget {
    items_left: Cell<usize>,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            items_left: Cell::new(MAX_TABLE_ITEMS),
        }
    }

    /// Refuses a table or array announcing more values than are left, before anything is
    /// reserved for them.
    fn check_announced<E: de::Error>(&self, announced: Option<usize>) -> Result<(), E> {
        match announced {
            Some(announced) if announced > self.items_left.get() => Err(E::custom(format_args!(
                "a table holds more than {MAX_TABLE_ITEMS} values"
            ))),
            _ => Ok(()),
        }
    }

    fn take<E: de::Error>(&self) -> Result<(), E> {
        let left = self.items_left.get();
        if left == 0 {
            return Err(E::custom(format_args!(
                "a table holds more than {MAX_TABLE_ITEMS} values"
            )));
        }
        self.items_left.set(left - 1);
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Table, D::Error> {
        let budget = Budget::new();
        TableSeed {
            depth: 1,
            budget: &budget,
        }
        .deserialize(deserializer)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let budget = Budget::new();
        ValueSeed {
            depth: 0,
            budget: &budget,
        }
        .deserialize(deserializer)
    }
}

fn check_depth<E: de::Error>(depth: usize) -> Result<(), E> {
    if depth > MAX_VALUE_DEPTH {
        return Err(E::custom(format_args!(
            "values nest deeper than {MAX_VALUE_DEPTH} levels"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct TableSeed<'b> {
    depth: usize,
    budget: &'b Budget,
}

impl<'de> DeserializeSeed<'de> for TableSeed<'_> {
    type Value = Table;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Table, D::Error> {
        check_depth(self.depth)?;
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TableSeed<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of named values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table, A::Error> {
        self.budget.check_announced(seq.size_hint())?;
        let mut entries = Vec::with_capacity(initial_capacity::<(String, Value)>(seq.size_hint()));
        while let Some(entry) = seq.next_element_seed(EntrySeed {
            depth: self.depth,
            budget: self.budget,
        })? {
            entries.push(entry);
        }
        Ok(Table(entries))
    }
}

struct EntrySeed<'b> {
    depth: usize,
    budget: &'b Budget,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = (String, Value);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = (String, Value);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name and a value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let name: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value = seq
            .next_element_seed(ValueSeed {
                depth: self.depth,
                budget: self.budget,
            })?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((name, value))
    }
}

#[derive(Clone, Copy)]
struct ValueSeed<'b> {
    depth: usize,
    budget: &'b Budget,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.budget.take()?;
        deserializer.deserialize_enum("Value", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a typed value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (index, variant): (u32, _) = data.variant()?;
        Ok(match index {
            0 => {
                variant.unit_variant()?;
                Value::Void
            }
            1 => Value::Bool(variant.newtype_variant()?),
            2 => Value::I8(variant.newtype_variant()?),
            3 => Value::U8(variant.newtype_variant()?),
            4 => Value::I16(variant.newtype_variant()?),
            5 => Value::U16(variant.newtype_variant()?),
            6 => Value::I32(variant.newtype_variant()?),
            7 => Value::U32(variant.newtype_variant()?),
            8 => Value::I64(variant.newtype_variant()?),
            9 => Value::U64(variant.newtype_variant()?),
            10 => Value::F32(variant.newtype_variant()?),
            11 => Value::F64(variant.newtype_variant()?),
            12 => Value::Decimal(variant.newtype_variant()?),
            13 => Value::String(variant.newtype_variant()?),
            14 => Value::Bytes(variant.newtype_variant_seed(BytesSeed)?),
            15 => Value::Timestamp(variant.newtype_variant()?),
            16 => Value::Array(variant.newtype_variant_seed(ArraySeed {
                depth: self.depth + 1,
                budget: self.budget,
            })?),
            17 => Value::Table(variant.newtype_variant_seed(TableSeed {
                depth: self.depth + 1,
                budget: self.budget,
            })?),
            other => {
                return Err(de::Error::invalid_value(
                    de::Unexpected::Unsigned(other.into()),
                    &"a value type from 0 to 17",
                ));
            }
        })
    }
}

struct BytesSeed;

impl<'de> DeserializeSeed<'de> for BytesSeed {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(self)
    }
}

impl<'de> Visitor<'de> for BytesSeed {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte array")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }
}

#[derive(Clone, Copy)]
struct ArraySeed<'b> {
    depth: usize,
    budget: &'b Budget,
}

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Value>, D::Error> {
        check_depth(self.depth)?;
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        self.budget.check_announced(seq.size_hint())?;
        let mut items = Vec::with_capacity(initial_capacity::<Value>(seq.size_hint()));
        while let Some(item) = seq.next_element_seed(ValueSeed {
            depth: self.depth,
            budget: self.budget,
        })? {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(table: &Table) -> Table {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(table, config).unwrap();
        let (decoded, used): (Table, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(used, bytes.len());
        decoded
    }

    fn every_type() -> Table {
        Table::new()
            .with("void", Value::Void)
            .with("bool", true)
            .with("i8", -8i8)
            .with("u8", 8u8)
            .with("i16", -16i16)
            .with("u16", 16u16)
            .with("i32", -32i32)
            .with("u32", 32u32)
            .with("i64", i64::MIN)
            .with("u64", u64::MAX)
            .with("f32", 1.5f32)
            .with("f64", f64::NAN)
            .with(
                "decimal",
                Decimal {
                    scale: 2,
                    value: 1234,
                },
            )
            .with("string", "héllo")
            .with("bytes", vec![0u8, 255, 7])
            .with("timestamp", Value::Timestamp(1_700_000_000))
            .with(
                "array",
                vec![Value::Void, Value::from(1i32), Value::from("x")],
            )
            .with(
                "table",
                Table::new().with("nested", Table::new().with("deeper", false)),
            )
            .with("bool", false)
    }

    #[test]
    fn every_type_round_trips_and_repeated_names_stay() {
        let table = every_type();
        let back = round_trip(&table);
        assert_eq!(back, table);
        assert_eq!(back.len(), 19);
        assert!(matches!(back.get("f64"), Some(Value::F64(x)) if x.is_nan()));
        assert_eq!(
            back.get_bool("bool"),
            Some(true),
            "the first of a repeated name"
        );
    }

    #[test]
    fn types_differ_even_when_the_numbers_do_not() {
        assert_ne!(Value::I32(1), Value::I64(1));
        assert_ne!(Value::I64(1), Value::from("1"));
        assert_eq!(Value::I32(1).as_i64(), Value::I64(1).as_i64());
        assert_eq!(Value::from(" 10 ").coerce_i64(), Some(10));
        assert_eq!(Value::from("ten").coerce_i64(), None);
        assert_eq!(Value::U64(u64::MAX).as_i64(), None);
        assert_eq!(Value::F64(0.0).cmp(&Value::F64(-0.0)), Ordering::Greater);
    }

    #[test]
    fn decimals_print_with_their_scale() {
        assert_eq!(
            Decimal {
                scale: 2,
                value: 1234
            }
            .to_string(),
            "12.34"
        );
        assert_eq!(Decimal { scale: 3, value: 5 }.to_string(), "0.005");
        assert_eq!(Decimal { scale: 0, value: 7 }.to_string(), "7");
    }

    #[test]
    fn insert_replaces_and_remove_takes_every_copy() {
        let mut table = Table::new().with("a", 1i32).with("b", 2i32).with("a", 3i32);
        table.insert("a", 4i32);
        assert_eq!(table.entries().len(), 2);
        assert_eq!(table.get_i64("a"), Some(4));
        assert_eq!(table.remove("a"), Some(Value::I32(4)));
        assert!(!table.contains("a"));
    }

    fn nested(depth: usize) -> Table {
        let mut value = Value::from(1i32);
        for _ in 1..depth {
            value = Value::Array(vec![value]);
        }
        Table::new().with("deep", value)
    }

    #[test]
    fn nesting_is_bounded_on_encode_and_decode() {
        round_trip(&nested(MAX_VALUE_DEPTH));
        let config = bincode::config::standard();
        assert!(bincode::serde::encode_to_vec(nested(MAX_VALUE_DEPTH + 1), config).is_err());
        // A hostile encoder: a thousand nested arrays, written by hand (variant 16 is Array,
        // then a length of 1), must fail cleanly instead of exhausting the stack.
        let mut bytes = vec![1u8, 1, b'x'];
        for _ in 0..1000 {
            bytes.extend([16u8, 1]);
        }
        bytes.extend([0u8]);
        let decoded: Result<(Table, usize), _> = bincode::serde::decode_from_slice(&bytes, config);
        assert!(decoded.is_err());
    }

    #[test]
    fn one_table_holds_a_bounded_number_of_values() {
        let wide: Table = (0..MAX_TABLE_ITEMS)
            .map(|i| (format!("k{i}"), Value::Void))
            .collect();
        round_trip(&wide);
        let config = bincode::config::standard();
        let mut bytes = bincode::serde::encode_to_vec(&wide, config).unwrap();
        // Announce one entry more and append it: the decoder refuses the table.
        let too_many: Table = (0..=MAX_TABLE_ITEMS)
            .map(|i| (format!("k{i}"), Value::Void))
            .collect();
        assert!(bincode::serde::encode_to_vec(&too_many, config).is_err());
        bytes.clear();
        bytes.extend(bincode::serde::encode_to_vec((MAX_TABLE_ITEMS + 1) as u64, config).unwrap());
        for i in 0..=MAX_TABLE_ITEMS {
            bytes.extend(bincode::serde::encode_to_vec(format!("k{i}"), config).unwrap());
            bytes.push(0);
        }
        let decoded: Result<(Table, usize), _> = bincode::serde::decode_from_slice(&bytes, config);
        assert!(decoded.is_err());
    }
}
