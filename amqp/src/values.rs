//! AMQP field tables and field values ↔ [`switchyard_value`]'s [`Table`] and [`Value`].
//!
//! Type letters are RabbitMQ's (its errata to the 0-9-1 spec, which every mainstream client
//! follows), not the spec's own table:
//!
//! | letter | AMQP type | [`Value`] |
//! |---|---|---|
//! | `t` | boolean | `Bool` |
//! | `b` / `B` | signed / unsigned 8-bit | `I8` / `U8` |
//! | `s` / `u` | signed / unsigned 16-bit | `I16` / `U16` |
//! | `I` / `i` | signed / unsigned 32-bit | `I32` / `U32` |
//! | `l` | signed 64-bit | `I64` |
//! | `f` / `d` | float / double | `F32` / `F64` |
//! | `D` | decimal | `Decimal` |
//! | `S` | long string | `String` (UTF-8) or `Bytes` (not UTF-8) |
//! | `x` | byte array | `Bytes` |
//! | `T` | timestamp | `Timestamp` |
//! | `A` | array | `Array` |
//! | `F` | table | `Table` |
//! | `V` | void | `Void` |
//!
//! Lossless both ways, with two exceptions that [`Value`]'s shape forces:
//! - **`S` that is not UTF-8** decodes to `Value::Bytes` (RabbitMQ treats long strings as
//!   binary and some publishers put binary in them; refusing the frame would drop the
//!   message). It re-encodes as `x`, the same bytes under the byte-array letter.
//! - **`Value::U64`** has no RabbitMQ letter. One that fits an `i64` encodes as `l` (every
//!   client reads it; it comes back as `I64`); a larger one as `L`, the 0-9-1 spec's unsigned
//!   64-bit letter, which we decode back to `U64` and amq-protocol/lapin read (as signed), but
//!   clients that only know RabbitMQ's letters refuse. Nothing in AMQP produces such a value.
//!
//! Decoding is bounded as `switchyard_value`'s own decoder is: tables and arrays nest at most
//! [`MAX_VALUE_DEPTH`] levels (the outermost table is level 1) and one table holds at most
//! [`MAX_TABLE_ITEMS`] values counting nested ones, checked as values are read, so a table
//! that decodes here can always be stored and forwarded.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_value::{Decimal, MAX_TABLE_ITEMS, MAX_VALUE_DEPTH, Table, Value};

use crate::reader::{Reader, SyntaxError};
use crate::writer::{self, EncodeError};

/// Decodes one field table (its `u32` length, then its entries) from the front of `input`.
pub fn decode_field_table(input: &mut Bytes) -> Result<Table, SyntaxError> {
    let mut reader = Reader::new(input.clone());
    let table = read_table(&mut reader)?;
    *input = input.split_off(reader.offset());
    Ok(table)
}

/// Decodes one field value (its type letter, then the value) from the front of `input`. An
/// array or table in it is bounded as a table's values are.
pub fn decode_field_value(input: &mut Bytes) -> Result<Value, SyntaxError> {
    let mut reader = Reader::new(input.clone());
    let mut budget = ItemBudget::new();
    // A standalone value is held by nothing: a table or array in it is the outermost level.
    let value = read_value(&mut reader, 0, &mut budget)?;
    *input = input.split_off(reader.offset());
    Ok(value)
}

/// Appends `table` as a field table: its `u32` length, then its entries in order.
pub fn encode_field_table(table: &Table, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let start = buf.len();
    let result = put_table(table, buf);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Appends `value` as a field value: its type letter, then the value.
pub fn encode_field_value(value: &Value, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let start = buf.len();
    let result = put_value(value, buf);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// How many more values the outermost table may hold.
struct ItemBudget(usize);

impl ItemBudget {
    fn new() -> ItemBudget {
        ItemBudget(MAX_TABLE_ITEMS)
    }

    fn spend(&mut self) -> Result<(), SyntaxError> {
        self.0 = self.0.checked_sub(1).ok_or(SyntaxError::TooManyItems)?;
        Ok(())
    }
}

/// Reads a field table as the outermost one of its value.
pub(crate) fn read_table(reader: &mut Reader) -> Result<Table, SyntaxError> {
    read_nested_table(reader, 1, &mut ItemBudget::new())
}

/// Reads a field table at nesting `level` (the outermost is 1).
fn read_nested_table(
    reader: &mut Reader,
    level: usize,
    budget: &mut ItemBudget,
) -> Result<Table, SyntaxError> {
    if level > MAX_VALUE_DEPTH {
        return Err(SyntaxError::TooDeep);
    }
    let len = reader.long()? as usize;
    let mut entries = reader.sub_reader("a field table", len)?;
    let mut table = Table::new();
    while entries.remaining() > 0 {
        let offset = entries.offset();
        let name_len = entries.octet()?;
        let name = entries.take("a field name", name_len.into())?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| SyntaxError::InvalidUtf8 {
            what: "a field name",
            offset,
        })?;
        let value = read_value(&mut entries, level, budget)?;
        table.push(name, value);
    }
    Ok(table)
}

/// Reads one value held by a container at nesting `level`.
fn read_value(
    reader: &mut Reader,
    level: usize,
    budget: &mut ItemBudget,
) -> Result<Value, SyntaxError> {
    budget.spend()?;
    let offset = reader.offset();
    let letter = reader.octet()?;
    let value = match letter {
        b't' => Value::Bool(reader.octet()? != 0),
        b'b' => Value::I8(reader.octet()? as i8),
        b'B' => Value::U8(reader.octet()?),
        b's' => Value::I16(reader.short()? as i16),
        b'u' => Value::U16(reader.short()?),
        b'I' => Value::I32(reader.long()? as i32),
        b'i' => Value::U32(reader.long()?),
        b'l' => Value::I64(reader.longlong()? as i64),
        b'L' => Value::U64(reader.longlong()?),
        b'f' => Value::F32(f32::from_bits(reader.long()?)),
        b'd' => Value::F64(f64::from_bits(reader.longlong()?)),
        b'D' => {
            let scale = reader.octet()?;
            let value = reader.long()?;
            Value::Decimal(Decimal { scale, value })
        }
        b'S' => {
            let bytes = reader.take_long_prefixed("a long string")?;
            match String::from_utf8(bytes.to_vec()) {
                Ok(text) => Value::String(text),
                Err(not_utf8) => Value::Bytes(not_utf8.into_bytes()),
            }
        }
        b'x' => Value::Bytes(reader.take_long_prefixed("a byte array")?.to_vec()),
        b'T' => Value::Timestamp(reader.longlong()?),
        b'V' => Value::Void,
        b'F' => Value::Table(read_nested_table(reader, level + 1, budget)?),
        b'A' => Value::Array(read_array(reader, level + 1, budget)?),
        letter => return Err(SyntaxError::UnknownFieldType { letter, offset }),
    };
    Ok(value)
}

fn read_array(
    reader: &mut Reader,
    level: usize,
    budget: &mut ItemBudget,
) -> Result<Vec<Value>, SyntaxError> {
    if level > MAX_VALUE_DEPTH {
        return Err(SyntaxError::TooDeep);
    }
    let len = reader.long()? as usize;
    let mut items_reader = reader.sub_reader("an array", len)?;
    let mut items = Vec::new();
    while items_reader.remaining() > 0 {
        items.push(read_value(&mut items_reader, level, budget)?);
    }
    Ok(items)
}

fn put_table(table: &Table, buf: &mut BytesMut) -> Result<(), EncodeError> {
    writer::with_long_length(buf, "a field table", |buf| {
        for (name, value) in table.iter() {
            writer::put_shortstr(buf, name)?;
            put_value(value, buf)?;
        }
        Ok(())
    })
}

fn put_value(value: &Value, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match value {
        Value::Void => buf.put_u8(b'V'),
        Value::Bool(b) => {
            buf.put_u8(b't');
            buf.put_u8(u8::from(*b));
        }
        Value::I8(n) => {
            buf.put_u8(b'b');
            buf.put_i8(*n);
        }
        Value::U8(n) => {
            buf.put_u8(b'B');
            buf.put_u8(*n);
        }
        Value::I16(n) => {
            buf.put_u8(b's');
            buf.put_i16(*n);
        }
        Value::U16(n) => {
            buf.put_u8(b'u');
            buf.put_u16(*n);
        }
        Value::I32(n) => {
            buf.put_u8(b'I');
            buf.put_i32(*n);
        }
        Value::U32(n) => {
            buf.put_u8(b'i');
            buf.put_u32(*n);
        }
        Value::I64(n) => {
            buf.put_u8(b'l');
            buf.put_i64(*n);
        }
        Value::U64(n) => match i64::try_from(*n) {
            Ok(signed) => {
                buf.put_u8(b'l');
                buf.put_i64(signed);
            }
            Err(_) => {
                buf.put_u8(b'L');
                buf.put_u64(*n);
            }
        },
        Value::F32(x) => {
            buf.put_u8(b'f');
            buf.put_u32(x.to_bits());
        }
        Value::F64(x) => {
            buf.put_u8(b'd');
            buf.put_u64(x.to_bits());
        }
        Value::Decimal(d) => {
            buf.put_u8(b'D');
            buf.put_u8(d.scale);
            buf.put_u32(d.value);
        }
        Value::String(text) => {
            buf.put_u8(b'S');
            writer::put_long_prefixed(buf, "a long string", text.as_bytes())?;
        }
        Value::Bytes(bytes) => {
            buf.put_u8(b'x');
            writer::put_long_prefixed(buf, "a byte array", bytes)?;
        }
        Value::Timestamp(t) => {
            buf.put_u8(b'T');
            buf.put_u64(*t);
        }
        Value::Array(items) => {
            buf.put_u8(b'A');
            writer::with_long_length(buf, "an array", |buf| {
                items.iter().try_for_each(|item| put_value(item, buf))
            })?;
        }
        Value::Table(table) => {
            buf.put_u8(b'F');
            put_table(table, buf)?;
        }
    }
    Ok(())
}
