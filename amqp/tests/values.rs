//! Field values and tables: every type both ways, the two documented asymmetries, and the
//! limits every decoded table keeps.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_amqp::values::{
    decode_field_table, decode_field_value, encode_field_table, encode_field_value,
};
use switchyard_amqp::{EncodeError, SyntaxError};
use switchyard_value::{Decimal, MAX_TABLE_ITEMS, MAX_VALUE_DEPTH, Table, Value};

fn encode_value(value: &Value) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_field_value(value, &mut buf).unwrap();
    buf.to_vec()
}

fn decode_value(bytes: &[u8]) -> Result<Value, SyntaxError> {
    let mut input = Bytes::copy_from_slice(bytes);
    let value = decode_field_value(&mut input)?;
    assert!(input.is_empty(), "the value is all of it");
    Ok(value)
}

fn table_bytes(table: &Table) -> Bytes {
    let mut buf = BytesMut::new();
    encode_field_table(table, &mut buf).unwrap();
    buf.freeze()
}

/// Each value with the exact bytes RabbitMQ's table says it is.
fn every_type() -> Vec<(Value, Vec<u8>)> {
    vec![
        (Value::Bool(true), vec![b't', 1]),
        (Value::Bool(false), vec![b't', 0]),
        (Value::I8(-2), vec![b'b', 0xfe]),
        (Value::U8(200), vec![b'B', 200]),
        (Value::I16(-2), vec![b's', 0xff, 0xfe]),
        (Value::U16(0xabcd), vec![b'u', 0xab, 0xcd]),
        (Value::I32(-2), vec![b'I', 0xff, 0xff, 0xff, 0xfe]),
        (Value::U32(0xdead_beef), vec![b'i', 0xde, 0xad, 0xbe, 0xef]),
        (
            Value::I64(-2),
            vec![b'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
        ),
        (Value::F32(1.5), vec![b'f', 0x3f, 0xc0, 0, 0]),
        (Value::F64(-0.5), vec![b'd', 0xbf, 0xe0, 0, 0, 0, 0, 0, 0]),
        (
            Value::Decimal(Decimal {
                scale: 2,
                value: 12345,
            }),
            vec![b'D', 2, 0, 0, 0x30, 0x39],
        ),
        (
            Value::String("hé".into()),
            vec![b'S', 0, 0, 0, 3, b'h', 0xc3, 0xa9],
        ),
        (Value::Bytes(vec![0, 0xff]), vec![b'x', 0, 0, 0, 2, 0, 0xff]),
        (
            Value::Timestamp(1_700_000_000),
            vec![b'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00],
        ),
        (Value::Void, vec![b'V']),
        (
            Value::Array(vec![Value::I32(1), Value::Void]),
            vec![b'A', 0, 0, 0, 6, b'I', 0, 0, 0, 1, b'V'],
        ),
        (
            Value::Table(Table::new().with("k", true)),
            vec![b'F', 0, 0, 0, 4, 1, b'k', b't', 1],
        ),
    ]
}

#[test]
fn every_type_encodes_to_rabbitmqs_letters_and_decodes_back() {
    for (value, bytes) in every_type() {
        assert_eq!(encode_value(&value), bytes, "{value:?}");
        assert_eq!(decode_value(&bytes).unwrap(), value, "{bytes:02x?}");
    }
}

#[test]
fn a_table_keeps_order_and_repeated_names() {
    let table = Table::new()
        .with("b", 1i32)
        .with("a", 2i32)
        .with("b", "again");
    let mut bytes = table_bytes(&table);
    assert_eq!(decode_field_table(&mut bytes).unwrap(), table);
    assert!(bytes.is_empty());
}

#[test]
fn a_table_of_every_type_round_trips() {
    let table: Table = every_type()
        .into_iter()
        .enumerate()
        .map(|(i, (value, _))| (format!("field-{i}"), value))
        .collect();
    let mut bytes = table_bytes(&table);
    assert_eq!(decode_field_table(&mut bytes).unwrap(), table);
}

#[test]
fn nan_floats_keep_their_bits() {
    let nan = f64::from_bits(0x7ff8_0000_0000_0001);
    let Value::F64(back) = decode_value(&encode_value(&Value::F64(nan))).unwrap() else {
        panic!("not a double");
    };
    assert_eq!(back.to_bits(), nan.to_bits());
}

#[test]
fn a_long_string_that_is_not_utf8_becomes_bytes_instead_of_failing() {
    let bytes = [b'S', 0, 0, 0, 2, 0xff, 0xfe];
    assert_eq!(
        decode_value(&bytes).unwrap(),
        Value::Bytes(vec![0xff, 0xfe])
    );
    // In a header table it does not fail the table either.
    let mut table = BytesMut::new();
    table.put_u32(9);
    table.put_slice(&[1, b'h']);
    table.put_slice(&bytes);
    let mut table = table.freeze();
    assert_eq!(
        decode_field_table(&mut table).unwrap(),
        Table::new().with("h", vec![0xffu8, 0xfe])
    );
}

#[test]
fn u64_goes_out_as_a_signed_long_when_it_fits_and_as_l_otherwise() {
    assert_eq!(encode_value(&Value::U64(5)), [b'l', 0, 0, 0, 0, 0, 0, 0, 5]);
    assert_eq!(
        decode_value(&encode_value(&Value::U64(5))).unwrap(),
        Value::I64(5)
    );
    let big = encode_value(&Value::U64(u64::MAX));
    assert_eq!(big[0], b'L');
    assert_eq!(decode_value(&big).unwrap(), Value::U64(u64::MAX));
}

#[test]
fn any_nonzero_boolean_octet_is_true() {
    assert_eq!(decode_value(&[b't', 7]).unwrap(), Value::Bool(true));
}

/// A table whose one field holds `levels - 1` nested tables: `levels` levels in all.
fn nested_tables(levels: usize) -> Table {
    let mut table = Table::new().with("leaf", 1i32);
    for _ in 1..levels {
        table = Table::new().with("t", table);
    }
    table
}

/// A table whose one field holds `levels - 1` nested arrays.
fn nested_arrays(levels: usize) -> Table {
    let mut value = Value::I32(1);
    for _ in 1..levels {
        value = Value::Array(vec![value]);
    }
    Table::new().with("a", value)
}

#[test]
fn tables_nest_sixteen_levels_and_no_more() {
    for nested in [nested_tables, nested_arrays] {
        let mut ok = table_bytes(&nested(MAX_VALUE_DEPTH));
        assert_eq!(
            decode_field_table(&mut ok).unwrap(),
            nested(MAX_VALUE_DEPTH)
        );
        let mut too_deep = table_bytes(&nested(MAX_VALUE_DEPTH + 1));
        assert_eq!(decode_field_table(&mut too_deep), Err(SyntaxError::TooDeep));
    }
}

#[test]
fn a_hostile_nesting_fails_cleanly_instead_of_exhausting_the_stack() {
    // 20 000 arrays, each holding the next: far past the limit, cut off at level 17.
    let levels = 20_000;
    let mut bytes = BytesMut::new();
    bytes.put_u32(0); // patched below
    bytes.put_slice(&[1, b'a']);
    for level in 0..levels {
        let inner = (levels - level - 1) * 5;
        bytes.put_u8(b'A');
        bytes.put_u32(inner as u32);
    }
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    let mut bytes = bytes.freeze();
    assert_eq!(decode_field_table(&mut bytes), Err(SyntaxError::TooDeep));
}

#[test]
fn one_table_holds_at_most_4096_values_counting_nested_ones() {
    let wide: Table = (0..MAX_TABLE_ITEMS)
        .map(|i| (format!("k{i}"), Value::Void))
        .collect();
    let mut ok = table_bytes(&wide);
    assert_eq!(decode_field_table(&mut ok).unwrap(), wide);

    let too_wide: Table = (0..=MAX_TABLE_ITEMS)
        .map(|i| (format!("k{i}"), Value::Void))
        .collect();
    let mut bytes = table_bytes(&too_wide);
    assert_eq!(
        decode_field_table(&mut bytes),
        Err(SyntaxError::TooManyItems)
    );

    // An array counts itself and each of its values.
    let array = Value::Array(vec![Value::Void; MAX_TABLE_ITEMS]);
    let mut bytes = table_bytes(&Table::new().with("a", array));
    assert_eq!(
        decode_field_table(&mut bytes),
        Err(SyntaxError::TooManyItems)
    );
}

#[test]
fn a_table_announcing_more_bytes_than_there_are_is_refused_before_allocating() {
    let mut bytes = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1, b'k', b'V']);
    assert!(matches!(
        decode_field_table(&mut bytes),
        Err(SyntaxError::Truncated {
            need: 0xffff_ffff,
            have: 3,
            ..
        })
    ));
    // A long string or byte array inside announcing 4 GiB: the same.
    for letter in [b'S', b'x', b'A', b'F'] {
        assert!(matches!(
            decode_value(&[letter, 0xff, 0xff, 0xff, 0xff, 0]),
            Err(SyntaxError::Truncated { .. })
        ));
    }
}

#[test]
fn a_value_cut_short_is_truncated_not_a_panic() {
    for (_, bytes) in every_type() {
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    decode_value(&bytes[..cut]),
                    Err(SyntaxError::Truncated { .. })
                ),
                "{bytes:02x?} cut at {cut}"
            );
        }
    }
}

#[test]
fn an_unknown_type_letter_is_a_syntax_error() {
    assert_eq!(
        decode_value(&[b'Q', 0]),
        Err(SyntaxError::UnknownFieldType {
            letter: b'Q',
            offset: 0
        })
    );
}

#[test]
fn a_field_name_that_is_not_utf8_is_a_syntax_error() {
    let mut bytes = Bytes::from_static(&[0, 0, 0, 3, 1, 0xff, b'V']);
    assert!(matches!(
        decode_field_table(&mut bytes),
        Err(SyntaxError::InvalidUtf8 { .. })
    ));
}

#[test]
fn a_field_name_over_255_bytes_does_not_encode_and_leaves_the_buffer_alone() {
    let table = Table::new().with("n".repeat(256), 1i32);
    let mut buf = BytesMut::from(&b"kept"[..]);
    assert_eq!(
        encode_field_table(&table, &mut buf),
        Err(EncodeError::ShortStringTooLong { len: 256 })
    );
    assert_eq!(&buf[..], b"kept");
}
