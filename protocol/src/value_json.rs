//! Typed values as JSON, for people and files: the CLI's `--json` output and typed `--header`
//! and `--arg` values, and the definitions file.
//!
//! The natural mapping where JSON has the type: void ↔ `null`, booleans, integers and floats ↔
//! numbers, strings, arrays, tables ↔ objects. The types JSON lacks are objects with one
//! `$`-key:
//!
//! | value | JSON |
//! |---|---|
//! | byte array | `{"$bytes": "<base64>"}` |
//! | decimal | `{"$decimal": "12.34"}` |
//! | timestamp | `{"$timestamp": 1700000000}` (seconds) |
//! | an integer of a given width | `{"$i32": 5}` (`$i8`, `$u8`, `$i16`, `$u16`, `$i32`, `$u32`, `$i64`, `$u64`) |
//! | a float of a given width | `{"$f32": 1.5}`, `{"$f64": 1.5}` |
//!
//! Reading, a JSON integer becomes an `I64` (a `U64` above `i64::MAX`) and any other number an
//! `F64`, as most AMQP clients encode them. Writing ([`to_json`]) uses the natural form for
//! `I64`, `F64`, strings, booleans, void, arrays and tables, and the tagged form for every
//! other type, so `from_json(to_json(v)) == v` for every value, except that a table comes back
//! with its entries sorted by name (and a repeated name once). A float that JSON cannot hold
//! (NaN, infinities) is written as the string `"NaN"`, `"inf"` or `"-inf"` under its tag.

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json, json};

use crate::value::{Decimal, MAX_TABLE_ITEMS, MAX_VALUE_DEPTH, Table, Value};

/// `value` as JSON (see the module docs).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Void => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(n) => json!(n),
        Value::F64(x) if x.is_finite() => json!(x),
        Value::String(text) => Json::String(text.clone()),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Table(table) => table_to_json(table),
        Value::I8(n) => tagged("$i8", json!(n)),
        Value::U8(n) => tagged("$u8", json!(n)),
        Value::I16(n) => tagged("$i16", json!(n)),
        Value::U16(n) => tagged("$u16", json!(n)),
        Value::I32(n) => tagged("$i32", json!(n)),
        Value::U32(n) => tagged("$u32", json!(n)),
        Value::U64(n) => tagged("$u64", json!(n)),
        Value::F32(x) => tagged("$f32", float_json(f64::from(*x))),
        Value::F64(x) => tagged("$f64", float_json(*x)),
        Value::Decimal(d) => tagged("$decimal", Json::String(d.to_string())),
        Value::Bytes(bytes) => tagged(
            "$bytes",
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
        Value::Timestamp(t) => tagged("$timestamp", json!(t)),
    }
}

/// `table` as a JSON object. A repeated name keeps its first value (JSON objects cannot repeat
/// keys).
pub fn table_to_json(table: &Table) -> Json {
    let mut object = Map::new();
    for (name, value) in table.iter() {
        object
            .entry(name.to_owned())
            .or_insert_with(|| to_json(value));
    }
    Json::Object(object)
}

fn tagged(tag: &str, inner: Json) -> Json {
    let mut object = Map::new();
    object.insert(tag.to_owned(), inner);
    Json::Object(object)
}

fn float_json(x: f64) -> Json {
    if x.is_nan() {
        Json::String("NaN".into())
    } else if x.is_infinite() {
        Json::String(if x > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        Number::from_f64(x).map_or(Json::Null, Json::Number)
    }
}

/// A value from JSON (see the module docs); the error says what was wrong and where.
pub fn from_json(json: &Json) -> Result<Value, String> {
    let mut items = 0;
    value_from_json(json, 0, &mut items)
}

/// A table from a JSON object.
pub fn table_from_json(json: &Json) -> Result<Table, String> {
    let mut items = 0;
    match json {
        Json::Object(object) if !is_tagged(object) => object_to_table(object, 1, &mut items),
        other => Err(format!("expected a JSON object, got {other}")),
    }
}

fn is_tagged(object: &Map<String, Json>) -> bool {
    object.len() == 1 && object.keys().all(|k| TAGS.contains(&k.as_str()))
}

const TAGS: &[&str] = &[
    "$bytes",
    "$decimal",
    "$timestamp",
    "$i8",
    "$u8",
    "$i16",
    "$u16",
    "$i32",
    "$u32",
    "$i64",
    "$u64",
    "$f32",
    "$f64",
];

fn object_to_table(
    object: &Map<String, Json>,
    depth: usize,
    items: &mut usize,
) -> Result<Table, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("values nest deeper than {MAX_VALUE_DEPTH} levels"));
    }
    object
        .iter()
        .map(|(name, json)| {
            value_from_json(json, depth, items)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect()
}

fn value_from_json(json: &Json, depth: usize, items: &mut usize) -> Result<Value, String> {
    *items += 1;
    if *items > MAX_TABLE_ITEMS {
        return Err(format!("more than {MAX_TABLE_ITEMS} values"));
    }
    Ok(match json {
        Json::Null => Value::Void,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::I64(i)
            } else if let Some(u) = n.as_u64() {
                Value::U64(u)
            } else {
                Value::F64(n.as_f64().ok_or_else(|| format!("bad number {n}"))?)
            }
        }
        Json::String(text) => Value::String(text.clone()),
        Json::Array(array) => {
            if depth + 1 > MAX_VALUE_DEPTH {
                return Err(format!("values nest deeper than {MAX_VALUE_DEPTH} levels"));
            }
            Value::Array(
                array
                    .iter()
                    .map(|item| value_from_json(item, depth + 1, items))
                    .collect::<Result<_, _>>()?,
            )
        }
        Json::Object(object) if is_tagged(object) => {
            let (tag, inner) = object.iter().next().expect("one entry");
            tagged_from_json(tag, inner)?
        }
        Json::Object(object) => Value::Table(object_to_table(object, depth + 1, items)?),
    })
}

/// A JSON integer that fits `T`.
fn sized<T: TryFrom<i128>>(tag: &str, inner: &Json) -> Result<T, String> {
    let n = inner
        .as_i64()
        .map(i128::from)
        .or_else(|| inner.as_u64().map(i128::from))
        .ok_or_else(|| format!("{tag} needs an integer, got {inner}"))?;
    T::try_from(n).map_err(|_| format!("{n} does not fit {tag}"))
}

fn tagged_from_json(tag: &str, inner: &Json) -> Result<Value, String> {
    Ok(match tag {
        "$i8" => Value::I8(sized(tag, inner)?),
        "$u8" => Value::U8(sized(tag, inner)?),
        "$i16" => Value::I16(sized(tag, inner)?),
        "$u16" => Value::U16(sized(tag, inner)?),
        "$i32" => Value::I32(sized(tag, inner)?),
        "$u32" => Value::U32(sized(tag, inner)?),
        "$i64" => Value::I64(sized(tag, inner)?),
        "$u64" => Value::U64(sized(tag, inner)?),
        "$f32" => Value::F32(float_from_json(tag, inner)? as f32),
        "$f64" => Value::F64(float_from_json(tag, inner)?),
        "$timestamp" => Value::Timestamp(
            inner
                .as_u64()
                .ok_or_else(|| format!("$timestamp needs seconds since the epoch, got {inner}"))?,
        ),
        "$decimal" => {
            Value::Decimal(decimal_from_text(inner.as_str().ok_or_else(|| {
                format!("$decimal needs a string such as \"12.34\", got {inner}")
            })?)?)
        }
        "$bytes" => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(
                    inner
                        .as_str()
                        .ok_or_else(|| format!("$bytes needs a base64 string, got {inner}"))?,
                )
                .map_err(|e| format!("$bytes is not base64: {e}"))?,
        ),
        other => return Err(format!("unknown tag {other}")),
    })
}

fn float_from_json(tag: &str, inner: &Json) -> Result<f64, String> {
    match inner {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Json::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(format!(
                "{tag} needs a number, NaN, inf or -inf, got {inner}"
            )),
        },
        _ => Err(format!("{tag} needs a number, got {inner}")),
    }
}

/// `"12.34"` → scale 2, value 1234. At most 255 decimals and 4,294,967,295 as the digits.
pub fn decimal_from_text(text: &str) -> Result<Decimal, String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!("{text:?} is not a decimal such as 12.34"));
    }
    let scale =
        u8::try_from(fraction.len()).map_err(|_| format!("{text:?} has too many decimals"))?;
    let value = format!("{whole}{fraction}")
        .parse::<u32>()
        .map_err(|_| format!("{text:?} has too many digits for an AMQP decimal"))?;
    Ok(Decimal { scale, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_survives_json() {
        let table = Table::new()
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
            .with("f64", 2.25f64)
            .with("nan", f64::NAN)
            .with("decimal", Decimal { scale: 3, value: 5 })
            .with("string", "héllo")
            .with("bytes", vec![0u8, 255, 7])
            .with("timestamp", Value::Timestamp(1_700_000_000))
            .with(
                "array",
                vec![Value::Void, Value::from(1i64), Value::from("x")],
            )
            .with("table", Table::new().with("nested", false));
        let json = table_to_json(&table);
        // JSON objects come back sorted by name.
        let mut sorted = table.clone();
        sorted.sort_by_name();
        assert_eq!(table_from_json(&json).unwrap(), sorted);
        // The natural forms stay natural.
        assert_eq!(json["i64"], json!(i64::MIN));
        assert_eq!(json["string"], json!("héllo"));
        assert_eq!(json["table"], json!({"nested": false}));
        assert_eq!(json["bytes"], json!({"$bytes": "AP8H"}));
        assert_eq!(json["i32"], json!({"$i32": -32}));
    }

    #[test]
    fn plain_json_reads_as_most_clients_write_it() {
        let table = table_from_json(&json!({"n": 5, "big": u64::MAX, "x": 1.5, "s": "t"})).unwrap();
        assert_eq!(table.get("n"), Some(&Value::I64(5)));
        assert_eq!(table.get("big"), Some(&Value::U64(u64::MAX)));
        assert_eq!(table.get("x"), Some(&Value::F64(1.5)));
        assert_eq!(table.get_str("s"), Some("t"));
    }

    #[test]
    fn bad_tags_say_what_is_wrong() {
        let error = from_json(&json!({"$u8": 300})).unwrap_err();
        assert!(error.contains("does not fit $u8"), "{error}");
        let error = from_json(&json!({"$bytes": "***"})).unwrap_err();
        assert!(error.contains("base64"), "{error}");
        assert!(from_json(&json!({"$decimal": "1.2.3"})).is_err());
        // Two keys, or an unknown `$` key: an ordinary table.
        assert!(matches!(
            from_json(&json!({"$i8": 1, "other": 2})).unwrap(),
            Value::Table(_)
        ));
    }

    #[test]
    fn deep_json_is_refused() {
        let mut json = json!(1);
        for _ in 0..MAX_VALUE_DEPTH + 1 {
            json = json!([json]);
        }
        assert!(from_json(&json).is_err());
    }
}
