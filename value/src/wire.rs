//! The serde form of values (the `serde` feature): a value is its variant index and payload, a
//! table a sequence of (name, value) pairs, and decoding is bounded (see the crate docs).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{self, SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{MAX_TABLE_ITEMS, MAX_VALUE_DEPTH, Table, Value};

/// The most a sequence may reserve before its elements arrive.
const PREALLOC_BYTES: usize = 4096;

/// How many `T`s to reserve for a sequence announcing `announced` elements.
fn initial_capacity<T>(announced: Option<usize>) -> usize {
    let per_element = size_of::<T>().max(1);
    announced.unwrap_or(0).min(PREALLOC_BYTES / per_element)
}

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
    use crate::Decimal;
    use std::cmp::Ordering;

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
