//! `LIKE` patterns: `%` matches any run of characters (none included), `_` exactly one, and an
//! optional escape character makes the next `%`, `_` or itself literal.
//!
//! Matching works on characters, not bytes, and backtracks only to the last `%`, so it takes
//! at most `text × pattern` steps whatever the pattern.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Char(char),
    AnyOne,
    AnyRun,
}

impl LikePattern {
    /// Compiles `pattern`; the error says what is wrong with its escapes.
    pub(crate) fn compile(pattern: &str, escape: Option<char>) -> Result<LikePattern, String> {
        let mut parts = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let part = if Some(c) == escape {
                match chars.next() {
                    Some(next) if next == c || next == '%' || next == '_' => Part::Char(next),
                    _ => {
                        return Err(format!(
                            "in a LIKE pattern the escape character {c:?} must be followed by \
                             %, _ or itself"
                        ));
                    }
                }
            } else {
                match c {
                    '%' => Part::AnyRun,
                    '_' => Part::AnyOne,
                    c => Part::Char(c),
                }
            };
            // `%%` matches what `%` does; one is cheaper to match.
            if !(part == Part::AnyRun && parts.last() == Some(&Part::AnyRun)) {
                parts.push(part);
            }
        }
        Ok(LikePattern { parts })
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let (mut t, mut p) = (0, 0);
        // After a `%`: the pattern index just past it, and the text index it is tried from.
        let mut resume: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.parts.get(p) {
                Some(Part::AnyRun) => {
                    p += 1;
                    resume = Some((p, t));
                }
                Some(Part::AnyOne) => {
                    p += 1;
                    t += 1;
                }
                Some(&Part::Char(c)) if c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match resume {
                    // Let the last `%` swallow one more character and try again.
                    Some((after, from)) => {
                        p = after;
                        t = from + 1;
                        resume = Some((after, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.parts[p..].iter().all(|&part| part == Part::AnyRun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, escape, text, matches)
    const CASES: &[(&str, Option<char>, &str, bool)] = &[
        ("ord%", None, "orders", true),
        ("ord%", None, "ord", true),
        ("ord%", None, "or", false),
        ("%ers", None, "orders", true),
        ("%ers", None, "ordersx", false),
        ("o_d%", None, "orders", true),
        ("o_d", None, "od", false),
        ("%", None, "", true),
        ("", None, "", true),
        ("", None, "a", false),
        ("_", None, "é", true),
        ("_", None, "", false),
        ("a%b%c", None, "aXbYc", true),
        ("a%b%c", None, "aXcYb", false),
        ("%a%a%a%b", None, "aaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("%%x", None, "abx", true),
        ("100\\%", Some('\\'), "100%", true),
        ("100\\%", Some('\\'), "1000", false),
        ("a\\_b", Some('\\'), "a_b", true),
        ("a\\_b", Some('\\'), "axb", false),
        ("a\\\\b", Some('\\'), "a\\b", true),
        ("a!%%", Some('!'), "a%anything", true),
        ("ORD%", None, "orders", false),
    ];

    #[test]
    fn matches_as_sql_does() {
        for &(pattern, escape, text, expected) in CASES {
            let compiled = LikePattern::compile(pattern, escape).unwrap();
            assert_eq!(
                compiled.matches(text),
                expected,
                "{text:?} LIKE {pattern:?}"
            );
        }
    }

    #[test]
    fn a_dangling_escape_is_an_error() {
        for pattern in ["a\\", "a\\b"] {
            let err = LikePattern::compile(pattern, Some('\\')).unwrap_err();
            assert!(err.contains("escape character"), "{pattern}: {err}");
        }
    }
}
