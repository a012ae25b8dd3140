//! Splits a selector into tokens, each with the byte range it came from.
//!
//! Keywords are case-insensitive; identifiers are case-sensitive and are either bare (a
//! letter, `_` or `$`, then letters, digits, `_`, `$` or `.`) or double-quoted for any other
//! name (`"x-region"`, with `""` for a quote). Strings are single-quoted with `''` for a quote.
//! Numbers are unsigned here; the parser applies a leading `-`.

use crate::ast::{CompareOp, Number};
use crate::error::SelectorError;

/// A word with a meaning of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    Between,
    In,
    Like,
    Escape,
    Is,
    Null,
    True,
    False,
}

impl Keyword {
    const ALL: [(&'static str, Keyword); 11] = [
        ("AND", Keyword::And),
        ("OR", Keyword::Or),
        ("NOT", Keyword::Not),
        ("BETWEEN", Keyword::Between),
        ("IN", Keyword::In),
        ("LIKE", Keyword::Like),
        ("ESCAPE", Keyword::Escape),
        ("IS", Keyword::Is),
        ("NULL", Keyword::Null),
        ("TRUE", Keyword::True),
        ("FALSE", Keyword::False),
    ];

    fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, k)| k)
    }

    pub(crate) fn name(self) -> &'static str {
        Keyword::ALL
            .iter()
            .find(|&&(_, k)| k == self)
            .map_or("?", |&(name, _)| name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Identifier(String),
    String(String),
    Number(Number),
    Keyword(Keyword),
    Compare(CompareOp),
    Minus,
    LeftParen,
    RightParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// Byte offset of the token's first character.
    pub(crate) start: usize,
    /// Byte offset just past the token.
    pub(crate) end: usize,
}

impl Token {
    /// How an error message names this token: its kind and the text the consumer wrote.
    pub(crate) fn describe(&self, source: &str) -> String {
        let text = &source[self.start..self.end];
        match &self.kind {
            TokenKind::Identifier(_) => format!("identifier {text}"),
            TokenKind::String(_) => format!("string {text}"),
            TokenKind::Number(_) => format!("number {text}"),
            TokenKind::Keyword(k) => k.name().to_owned(),
            _ => format!("'{text}'"),
        }
    }
}

/// Splits `source` into tokens.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, SelectorError> {
    let mut lexer = Lexer {
        source,
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self) -> Result<(), SelectorError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            let kind = match c {
                c if c.is_whitespace() => {
                    self.pos += c.len_utf8();
                    continue;
                }
                '\'' => TokenKind::String(self.quoted('\'', "string")?),
                '"' => {
                    let name = self.quoted('"', "quoted identifier")?;
                    if name.is_empty() {
                        return Err(SelectorError::syntax(start, "empty quoted identifier"));
                    }
                    TokenKind::Identifier(name)
                }
                c if c.is_ascii_digit() => TokenKind::Number(self.number()?),
                c if starts_identifier(c) => {
                    let word = self.take_while(continues_identifier);
                    match Keyword::from_word(word) {
                        Some(k) => TokenKind::Keyword(k),
                        None => TokenKind::Identifier(word.to_owned()),
                    }
                }
                _ => self.punctuation(c)?,
            };
            self.tokens.push(Token {
                kind,
                start,
                end: self.pos,
            });
        }
        Ok(())
    }

    fn punctuation(&mut self, c: char) -> Result<TokenKind, SelectorError> {
        use CompareOp::*;
        let (kind, len) = match (c, self.peek_second()) {
            ('(', _) => (TokenKind::LeftParen, 1),
            (')', _) => (TokenKind::RightParen, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('=', _) => (TokenKind::Compare(Eq), 1),
            ('<', Some('=')) => (TokenKind::Compare(Le), 2),
            ('<', Some('>')) => (TokenKind::Compare(Ne), 2),
            ('<', _) => (TokenKind::Compare(Lt), 1),
            ('>', Some('=')) => (TokenKind::Compare(Ge), 2),
            ('>', _) => (TokenKind::Compare(Gt), 1),
            ('!', Some('=')) => (TokenKind::Compare(Ne), 2),
            ('!', _) => return Err(SelectorError::syntax(self.pos, "expected '=' after '!'")),
            (other, _) => {
                return Err(SelectorError::syntax(
                    self.pos,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        self.pos += len;
        Ok(kind)
    }

    /// Reads a `quote`-delimited run where a doubled quote stands for one.
    fn quoted(&mut self, quote: char, what: &str) -> Result<String, SelectorError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(SelectorError::syntax(
                    start,
                    format!("unterminated {what} starting"),
                ));
            };
            self.pos += c.len_utf8();
            if c == quote {
                if self.peek() != Some(quote) {
                    return Ok(text);
                }
                self.pos += 1;
            }
            text.push(c);
        }
    }

    /// `digits [. digits] [e [+-] digits]`, not run into a following word.
    fn number(&mut self) -> Result<Number, SelectorError> {
        let start = self.pos;
        self.take_while(|c| c.is_ascii_digit());
        let mut decimal = false;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            decimal = true;
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let exponent_digits = match self.peek_second() {
                Some('+' | '-') => {
                    self.source[self.pos + 2..].starts_with(|c: char| c.is_ascii_digit())
                }
                Some(c) => c.is_ascii_digit(),
                None => false,
            };
            if exponent_digits {
                decimal = true;
                self.pos += 2;
                self.take_while(|c| c.is_ascii_digit());
            }
        }
        if self.peek().is_some_and(continues_identifier) {
            self.take_while(continues_identifier);
            let text = &self.source[start..self.pos];
            return Err(SelectorError::syntax(
                start,
                format!("invalid number {text}"),
            ));
        }
        let text = &self.source[start..self.pos];
        let out_of_range =
            || SelectorError::syntax(start, format!("number {text} is out of range"));
        if decimal {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(Number::Decimal(value)),
                _ => Err(out_of_range()),
            }
        } else {
            text.parse::<i64>()
                .map(Number::Integer)
                .map_err(|_| out_of_range())
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| keep(c)) {
            self.pos += c.len_utf8();
        }
        &self.source[start..self.pos]
    }

    fn peek(&self) -> Option<char> {
        self.source[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.source[self.pos..].chars().nth(1)
    }
}

fn starts_identifier(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn continues_identifier(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '$' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        tokenize(source)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn ident(name: &str) -> TokenKind {
        TokenKind::Identifier(name.to_owned())
    }

    #[test]
    fn splits_operators_keywords_and_literals() {
        use TokenKind as T;
        assert_eq!(
            kinds("a<>'x''y' and b>=-1.5e3 OR c!=2"),
            vec![
                ident("a"),
                T::Compare(CompareOp::Ne),
                T::String("x'y".into()),
                T::Keyword(Keyword::And),
                ident("b"),
                T::Compare(CompareOp::Ge),
                T::Minus,
                T::Number(Number::Decimal(1500.0)),
                T::Keyword(Keyword::Or),
                ident("c"),
                T::Compare(CompareOp::Ne),
                T::Number(Number::Integer(2)),
            ]
        );
        assert_eq!(
            kinds("(x.y,\"x-region\"\t<=<>)"),
            vec![
                T::LeftParen,
                ident("x.y"),
                T::Comma,
                ident("x-region"),
                T::Compare(CompareOp::Le),
                T::Compare(CompareOp::Ne),
                T::RightParen,
            ]
        );
        assert_eq!(
            kinds("\"AND\" nOt"),
            vec![ident("AND"), T::Keyword(Keyword::Not)]
        );
    }

    #[test]
    fn spans_cover_what_was_written() {
        let tokens = tokenize("ab <= 'c''d'").unwrap();
        let spans: Vec<(usize, usize)> = tokens.iter().map(|t| (t.start, t.end)).collect();
        assert_eq!(spans, vec![(0, 2), (3, 5), (6, 12)]);
    }

    #[test]
    fn errors_say_where() {
        for (source, message) in [
            ("a = 'eu", "unterminated string starting at position 4"),
            (
                "\"a = 1",
                "unterminated quoted identifier starting at position 0",
            ),
            ("\"\" = 1", "empty quoted identifier at position 0"),
            ("a # 1", "unexpected character '#' at position 2"),
            ("a ! 1", "expected '=' after '!' at position 2"),
            ("a = 1.2.3", "invalid number 1.2.3 at position 4"),
            ("a = 5abc", "invalid number 5abc at position 4"),
            (
                "a = 99999999999999999999",
                "number 99999999999999999999 is out of range at position 4",
            ),
            ("a = 1e999", "number 1e999 is out of range at position 4"),
        ] {
            assert_eq!(
                tokenize(source).unwrap_err().to_string(),
                message,
                "{source}"
            );
        }
    }
}
