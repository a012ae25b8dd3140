//! A validating, single-pass JSON reader (RFC 8259) that returns the one value a
//! [`FieldPath`](crate::FieldPath) names, without building a document tree.
//!
//! The whole body is checked, not just the part before the field: a body that is not JSON
//! routes nowhere even if the field came first. Nesting deeper than [`MAX_DEPTH`] is treated as
//! not JSON, which bounds the reader's recursion whatever a publisher sends. Where an object
//! repeats a member name the last one wins, as in JavaScript.

use std::borrow::Cow;

use crate::path::Segment;

/// The deepest nesting of objects and arrays a body may have.
pub const MAX_DEPTH: usize = 128;

/// The value found at a field path, as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldValue {
    /// A scalar as its binding key: a string's decoded text, or a number, `true`, `false` or
    /// `null` exactly as written in the body.
    Scalar(String),
    /// An object or an array: it exists, but only `*` matches it.
    Container,
}

/// The value at `path` in `body`, or `None` when the body is not JSON or has no such field.
pub(crate) fn extract(body: &[u8], path: &[Segment]) -> Option<FieldValue> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let found = reader.value(Some(path)).ok()?;
    reader.skip_whitespace();
    if reader.pos != reader.bytes.len() {
        return None;
    }
    found
}

/// The body is not JSON; where and why does not matter to routing.
#[derive(Debug)]
struct Invalid;

type Read<T> = Result<T, Invalid>;

/// Reads from valid UTF-8, so slices between ASCII delimiters are valid `str`s.
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// Reads one value. `path` is `Some` while the value lies on the way to the field
    /// (`Some(&[])` when it is the field itself) and `None` when it is only being checked.
    fn value(&mut self, path: Option<&[Segment]>) -> Read<Option<FieldValue>> {
        self.skip_whitespace();
        let is_target = path.is_some_and(|p| p.is_empty());
        match self.peek() {
            Some(b'{') => {
                let found = self.object(path.filter(|p| !p.is_empty()))?;
                Ok(if is_target {
                    Some(FieldValue::Container)
                } else {
                    found
                })
            }
            Some(b'[') => {
                let found = self.array(path.filter(|p| !p.is_empty()))?;
                Ok(if is_target {
                    Some(FieldValue::Container)
                } else {
                    found
                })
            }
            Some(b'"') => {
                let text = self.string(is_target)?;
                Ok(text.map(|t| FieldValue::Scalar(t.into_owned())))
            }
            Some(b't') => self.literal("true", is_target),
            Some(b'f') => self.literal("false", is_target),
            Some(b'n') => self.literal("null", is_target),
            Some(b'-' | b'0'..=b'9') => {
                let text = self.number()?;
                Ok(is_target.then(|| FieldValue::Scalar(text.to_owned())))
            }
            _ => Err(Invalid),
        }
    }

    /// Reads an object; `path` is the rest of the way when the field lies inside it.
    fn object(&mut self, path: Option<&[Segment]>) -> Read<Option<FieldValue>> {
        self.enter()?;
        let mut found = None;
        if !self.empty_container(b'}') {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(Invalid);
                }
                let name = self.string(path.is_some())?;
                self.skip_whitespace();
                self.expect(b':')?;
                match (path, name) {
                    (Some([segment, rest @ ..]), Some(name)) if name == segment.name.as_str() => {
                        // A repeated name replaces what an earlier one found.
                        found = self.value(Some(rest))?;
                    }
                    _ => {
                        self.value(None)?;
                    }
                }
                if !self.next_member(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(found)
    }

    /// Reads an array; `path` is the rest of the way when the field lies inside it.
    fn array(&mut self, path: Option<&[Segment]>) -> Read<Option<FieldValue>> {
        self.enter()?;
        let mut found = None;
        if !self.empty_container(b']') {
            let mut index = 0usize;
            loop {
                match path {
                    Some([segment, rest @ ..]) if segment.index == Some(index) => {
                        found = self.value(Some(rest))?;
                    }
                    _ => {
                        self.value(None)?;
                    }
                }
                index += 1;
                if !self.next_member(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(found)
    }

    /// Steps over the opening bracket and counts the level.
    fn enter(&mut self) -> Read<()> {
        self.pos += 1;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid);
        }
        Ok(())
    }

    /// Consumes `close` if the container has no members.
    fn empty_container(&mut self, close: u8) -> bool {
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return true;
        }
        false
    }

    /// After a member: `true` on `,` (another follows), `false` on `close`.
    fn next_member(&mut self, close: u8) -> Read<bool> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Invalid),
        }
    }

    fn literal(&mut self, word: &'static str, is_target: bool) -> Read<Option<FieldValue>> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(Invalid);
        }
        self.pos += word.len();
        Ok(is_target.then(|| FieldValue::Scalar(word.to_owned())))
    }

    /// Reads a number and returns its text: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Read<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Invalid),
        }
        if self.eat(b'.') {
            self.some_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.some_digits()?;
        }
        Ok(self.slice(start, self.pos))
    }

    fn some_digits(&mut self) -> Read<()> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            return Err(Invalid);
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// Reads a string starting at its opening quote. With `keep` it returns the decoded text
    /// (borrowed when the string has no escapes); without, it only checks it.
    fn string(&mut self, keep: bool) -> Read<Option<Cow<'a, str>>> {
        self.pos += 1;
        let start = self.pos;
        let mut decoded: Option<String> = None;
        let mut run_start = start;
        loop {
            let Some(b) = self.peek() else {
                return Err(Invalid);
            };
            match b {
                b'"' => {
                    let tail = self.slice(run_start, self.pos);
                    self.pos += 1;
                    if !keep {
                        return Ok(None);
                    }
                    return Ok(Some(match decoded {
                        None => Cow::Borrowed(tail),
                        Some(mut text) => {
                            text.push_str(tail);
                            Cow::Owned(text)
                        }
                    }));
                }
                b'\\' => {
                    let run = self.slice(run_start, self.pos);
                    self.pos += 1;
                    let c = self.escape()?;
                    if keep {
                        let text = decoded.get_or_insert_with(String::new);
                        text.push_str(run);
                        text.push(c);
                    }
                    run_start = self.pos;
                }
                0x00..=0x1f => return Err(Invalid),
                _ => self.pos += 1,
            }
        }
    }

    /// Decodes the escape after a backslash, surrogate pairs included.
    fn escape(&mut self) -> Read<char> {
        let Some(b) = self.peek() else {
            return Err(Invalid);
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xd800..=0xdbff => {
                        if !(self.eat(b'\\') && self.eat(b'u')) {
                            return Err(Invalid);
                        }
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(Invalid);
                        }
                        0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(Invalid),
                    _ => unit,
                };
                char::from_u32(code).ok_or(Invalid)?
            }
            _ => return Err(Invalid),
        })
    }

    fn hex4(&mut self) -> Read<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Invalid)?;
        let mut value = 0;
        for &d in digits {
            value = value * 16 + char::from(d).to_digit(16).ok_or(Invalid)?;
        }
        self.pos += 4;
        Ok(value)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, b: u8) -> Read<()> {
        if self.eat(b) { Ok(()) } else { Err(Invalid) }
    }

    /// Text between two positions the reader reached; both are next to ASCII delimiters, so
    /// on character boundaries.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.text[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::FieldPath;

    fn at(body: &str, path: &str) -> Option<FieldValue> {
        extract(body.as_bytes(), FieldPath::parse(path).unwrap().segments())
    }

    fn scalar(text: &str) -> Option<FieldValue> {
        Some(FieldValue::Scalar(text.to_owned()))
    }

    /// (body, path, the scalar found; `None` when absent or not JSON).
    const SCALARS: &[(&str, &str, Option<&str>)] = &[
        (r#"{"order":{"region":"eu"}}"#, "order.region", Some("eu")),
        (r#"{"order":{"region":"eu"}}"#, "order.country", None),
        (r#"{"order":{"region":"eu"}}"#, "region", None),
        (r#"{"n":42}"#, "n", Some("42")),
        (r#"{"n":-1.5e+3}"#, "n", Some("-1.5e+3")),
        (r#"{"n":0.25}"#, "n", Some("0.25")),
        (r#"{"n":42.0}"#, "n", Some("42.0")),
        (r#"{"b":true,"c":false,"z":null}"#, "b", Some("true")),
        (r#"{"b":true,"c":false,"z":null}"#, "c", Some("false")),
        (r#"{"b":true,"c":false,"z":null}"#, "z", Some("null")),
        (r#"{"s":""}"#, "s", Some("")),
        (r#"{"r":"caf\u00e9"}"#, "r", Some("café")),
        (r#"{"r":"a\"b\\c\/d\n"}"#, "r", Some("a\"b\\c/d\n")),
        (r#"{"r":"\ud83d\ude00!"}"#, "r", Some("😀!")),
        (r#"{"re\u0067ion":"eu"}"#, "region", Some("eu")),
        (r#"{"region":"日本"}"#, "region", Some("日本")),
        (
            r#"{"items":[{"sku":"a"},{"sku":"b"}]}"#,
            "items.1.sku",
            Some("b"),
        ),
        (
            r#"{"items":[{"sku":"a"},{"sku":"b"}]}"#,
            "items.2.sku",
            None,
        ),
        (
            r#"{"items":[{"sku":"a"},{"sku":"b"}]}"#,
            "items.01.sku",
            None,
        ),
        (r#"{"items":[[1,2],[3,4]]}"#, "items.1.0", Some("3")),
        (r#"{"m":{"0":"by name"}}"#, "m.0", Some("by name")),
        (r#"[{"a":1}]"#, "0.a", Some("1")),
        (r#"{"order":5}"#, "order.region", None),
        (r#"{"a":"x","a":"y"}"#, "a", Some("y")),
        (r#"{"a":{"b":1},"a":{"c":2}}"#, "a.b", None),
        (r#"{"a":{"b":1},"x":{"a":2}}"#, "a.b", Some("1")),
        (
            " \n\t{ \"a\" : [ 1 , { \"b\" : \"deep\" } ] } \r\n",
            "a.1.b",
            Some("deep"),
        ),
        // Not JSON, even where the field is there.
        (r#"{"order":{"region":"eu"}"#, "order.region", None),
        (r#"{"a":"x"} trailing"#, "a", None),
        (r#"{"a":"x"}{"a":"y"}"#, "a", None),
        (r#"{'a':'x'}"#, "a", None),
        (r#"{"a":"x",}"#, "a", None),
        (r#"{"a":[1,],"b":"x"}"#, "b", None),
        (r#"{"a":01}"#, "a", None),
        (r#"{"a":1.}"#, "a", None),
        (r#"{"a":.5}"#, "a", None),
        (r#"{"a":+1}"#, "a", None),
        (r#"{"a":1e}"#, "a", None),
        (r#"{"a":tru}"#, "a", None),
        (r#"{"a":"x","b":"\ud83d"}"#, "a", None),
        (r#"{"a":"x","b":"\ude00"}"#, "a", None),
        (r#"{"a":"\x"}"#, "a", None),
        (r#"{"a":"\u12"}"#, "a", None),
        ("{\"a\":\"tab\there\"}", "a", None),
        (r#"{"a" "x"}"#, "a", None),
        (r#"{"a":"x" "b":"y"}"#, "a", None),
        ("", "a", None),
        ("   ", "a", None),
        ("eu", "a", None),
    ];

    #[test]
    fn finds_scalars_and_refuses_what_is_not_json() {
        for &(body, path, expected) in SCALARS {
            assert_eq!(
                at(body, path),
                expected.and_then(scalar),
                "{body:?} at {path}"
            );
        }
    }

    #[test]
    fn an_object_or_array_is_found_as_a_container() {
        assert_eq!(at(r#"{"a":{"b":1}}"#, "a"), Some(FieldValue::Container));
        assert_eq!(at(r#"{"a":[]}"#, "a"), Some(FieldValue::Container));
        assert_eq!(at(r#"{"a":{}}"#, "a"), Some(FieldValue::Container));
        assert_eq!(at(r#"{"a":{"b":}}"#, "a"), None);
    }

    #[test]
    fn a_body_that_is_not_utf8_is_not_json() {
        let mut body = br#"{"a":"x","b":""#.to_vec();
        body.extend_from_slice(&[0xff, b'"', b'}']);
        assert_eq!(
            extract(&body, FieldPath::parse("a").unwrap().segments()),
            None
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| {
            format!(
                r#"{{"a":"x","deep":{}{}}}"#,
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert_eq!(at(&nested(MAX_DEPTH), "a"), scalar("x"));
        assert_eq!(at(&nested(MAX_DEPTH + 1), "a"), None);
        // Far past the limit the reader stops early instead of overflowing its stack.
        assert_eq!(at(&nested(100_000), "a"), None);
    }
}
