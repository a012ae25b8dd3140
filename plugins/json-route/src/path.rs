//! The `field` argument: a dotted path into a JSON document, parsed once at exchange creation.
//!
//! Segments are separated by `.` and none may be empty. A segment of decimal digits (`0`, `12`,
//! not `01`) also indexes an array; against an object every segment is a member name, so `m.0`
//! finds `{"m": {"0": …}}` as well as `{"m": [...]}`. A member name containing `.` cannot be
//! addressed.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The member name this step takes in an object.
    pub(crate) name: String,
    /// The element this step takes in an array, when the segment is an index.
    pub(crate) index: Option<usize>,
}

/// A parsed `field` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    /// Parses `order.region` or `items.0.sku`; the error says which segment is empty.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        if text.is_empty() {
            return Err("the field path is empty; name a JSON field such as order.region".into());
        }
        let mut segments = Vec::new();
        let mut start = 0;
        for name in text.split('.') {
            if name.is_empty() {
                return Err(format!(
                    "the field path {text:?} has an empty segment at byte {start}; separate \
                     member names with single dots, as in order.region"
                ));
            }
            segments.push(Segment {
                name: name.to_owned(),
                index: parse_index(name),
            });
            start += name.len() + 1;
        }
        Ok(FieldPath { segments })
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&segment.name)?;
        }
        Ok(())
    }
}

/// A canonical decimal array index: digits only, no leading zero unless it is `0`.
fn parse_index(name: &str) -> Option<usize> {
    let canonical =
        name.bytes().all(|b| b.is_ascii_digit()) && (name == "0" || !name.starts_with('0'));
    if canonical { name.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Vec<(String, Option<usize>)> {
        FieldPath::parse(text)
            .unwrap()
            .segments()
            .iter()
            .map(|s| (s.name.clone(), s.index))
            .collect()
    }

    #[test]
    fn parses_names_and_indexes() {
        assert_eq!(
            shape("order.region"),
            vec![("order".into(), None), ("region".into(), None)]
        );
        assert_eq!(
            shape("items.0.sku"),
            vec![
                ("items".into(), None),
                ("0".into(), Some(0)),
                ("sku".into(), None)
            ]
        );
        assert_eq!(
            shape("a.12"),
            vec![("a".into(), None), ("12".into(), Some(12))]
        );
        assert_eq!(shape("a.01"), vec![("a".into(), None), ("01".into(), None)]);
        assert_eq!(shape("a.-1"), vec![("a".into(), None), ("-1".into(), None)]);
        assert_eq!(shape("with space"), vec![("with space".into(), None)]);
    }

    #[test]
    fn empty_paths_and_segments_are_refused_with_their_place() {
        for (text, at) in [(".a", 0), ("a.", 2), ("a..b", 2), ("order.region.", 13)] {
            let err = FieldPath::parse(text).unwrap_err();
            assert!(err.contains(&format!("at byte {at}")), "{text:?}: {err}");
        }
        assert!(FieldPath::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(
            FieldPath::parse("items.0.sku").unwrap().to_string(),
            "items.0.sku"
        );
    }
}
