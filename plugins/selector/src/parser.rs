//! Turns tokens into an [`Expr`]: recursive descent, with precedence climbing for `OR` (lowest)
//! and `AND`.
//!
//! ```text
//! selector  := condition                      (conditions joined by AND / OR)
//! condition := NOT condition | predicate
//! predicate := operand ( compare operand
//!                      | [NOT] BETWEEN operand AND operand
//!                      | [NOT] IN ( literal {, literal} )
//!                      | [NOT] LIKE string [ESCAPE string]
//!                      | IS [NOT] NULL )?
//! operand   := identifier | literal | - number | ( selector )
//! ```
//!
//! Every `(` and `NOT` is one level of nesting; more than [`MAX_NESTING`] is refused before the
//! recursion that would follow it, so no selector can exhaust the stack, here or in the
//! evaluator.

use crate::MAX_NESTING;
use crate::ast::{Expr, Literal, Operand};
use crate::error::SelectorError;
use crate::lexer::{Keyword, Token, TokenKind, tokenize};
use crate::like::LikePattern;

/// Parses a whole selector (the length limit is checked by the caller).
pub(crate) fn parse(source: &str) -> Result<Expr, SelectorError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        source,
        tokens,
        next: 0,
        depth: 0,
    };
    if parser.tokens.is_empty() {
        return Err(SelectorError::syntax(
            source.len(),
            "the selector is empty; expected a condition",
        ));
    }
    let expr = parser.expression(0)?;
    if let Some(token) = parser.peek() {
        if token.kind == TokenKind::RightParen {
            return Err(SelectorError::syntax(token.start, "unmatched ')'"));
        }
        return Err(parser.unexpected("expected AND, OR or the end of the selector"));
    }
    Ok(expr)
}

/// How tightly a logical operator binds: `a OR b AND c` is `a OR (b AND c)`.
fn precedence(keyword: Keyword) -> Option<u8> {
    match keyword {
        Keyword::Or => Some(1),
        Keyword::And => Some(2),
        _ => None,
    }
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    /// Index of the next unread token.
    next: usize,
    /// Open parentheses and `NOT`s around the current point.
    depth: usize,
}

impl Parser<'_> {
    /// Conditions joined by operators that bind at least as tightly as `min_precedence`.
    fn expression(&mut self, min_precedence: u8) -> Result<Expr, SelectorError> {
        let mut left = self.condition()?;
        while let Some(op) = self.peek_keyword() {
            let Some(precedence) = precedence(op).filter(|&p| p >= min_precedence) else {
                break;
            };
            self.next += 1;
            let right = self.expression(precedence + 1)?;
            left = Expr::join(op == Keyword::And, left, right);
        }
        Ok(left)
    }

    fn condition(&mut self) -> Result<Expr, SelectorError> {
        if self.peek_keyword() == Some(Keyword::Not) {
            let position = self.peek().map_or(0, |t| t.start);
            self.next += 1;
            self.enter(position)?;
            let inner = self.condition()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, SelectorError> {
        let operand = self.operand("a condition")?;
        let negated = self.peek_keyword() == Some(Keyword::Not);
        if negated {
            self.next += 1;
        }
        let kind = self.peek().map(|t| t.kind.clone());
        match kind {
            Some(TokenKind::Compare(op)) if !negated => {
                self.next += 1;
                let right = self.operand("a value")?;
                Ok(Expr::Compare {
                    op,
                    left: operand,
                    right,
                })
            }
            Some(TokenKind::Keyword(Keyword::Between)) => {
                self.next += 1;
                let low = self.operand("a lower bound")?;
                self.expect_keyword(Keyword::And, "expected AND between the bounds of BETWEEN")?;
                let high = self.operand("an upper bound")?;
                Ok(Expr::Between {
                    operand,
                    low,
                    high,
                    negated,
                })
            }
            Some(TokenKind::Keyword(Keyword::In)) => {
                self.next += 1;
                let list = self.in_list()?;
                Ok(Expr::In {
                    operand,
                    list,
                    negated,
                })
            }
            Some(TokenKind::Keyword(Keyword::Like)) => {
                self.next += 1;
                let pattern = self.like_pattern()?;
                Ok(Expr::Like {
                    operand,
                    pattern,
                    negated,
                })
            }
            Some(TokenKind::Keyword(Keyword::Is)) if !negated => {
                self.next += 1;
                let negated = self.peek_keyword() == Some(Keyword::Not);
                if negated {
                    self.next += 1;
                }
                if self.peek_keyword() != Some(Keyword::Null) {
                    return Err(self.expected("NULL"));
                }
                self.next += 1;
                Ok(Expr::IsNull { operand, negated })
            }
            _ if negated => Err(self.unexpected("expected BETWEEN, IN or LIKE after NOT")),
            _ => match operand {
                Operand::Group(inner) => Ok(*inner),
                Operand::Literal(Literal::String(_) | Literal::Number(_)) => {
                    let literal = &self.tokens[self.next - 1];
                    let reason = format!(
                        "expected a comparison after {}",
                        literal.describe(self.source)
                    );
                    Err(self.unexpected(&reason))
                }
                operand => Ok(Expr::Truth(operand)),
            },
        }
    }

    /// Reads an operand; `what` names it for the error if there is none.
    fn operand(&mut self, what: &str) -> Result<Operand, SelectorError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.expected(what));
        };
        match token.kind {
            TokenKind::Identifier(name) => {
                self.next += 1;
                Ok(Operand::Identifier(name))
            }
            TokenKind::LeftParen => {
                self.next += 1;
                self.enter(token.start)?;
                let inner = self.expression(0)?;
                if self.peek().map(|t| &t.kind) != Some(&TokenKind::RightParen) {
                    return Err(self.unexpected("expected AND, OR or ')'"));
                }
                self.next += 1;
                self.depth -= 1;
                Ok(Operand::Group(Box::new(inner)))
            }
            TokenKind::Keyword(Keyword::Null) => Err(SelectorError::syntax(
                token.start,
                "NULL is not a value to compare with; use IS NULL or IS NOT NULL",
            )),
            _ => match self.literal() {
                Some(literal) => Ok(Operand::Literal(literal?)),
                None => Err(self.expected(what)),
            },
        }
    }

    /// Reads a literal if the next token starts one: a string, a number (perhaps negative),
    /// `TRUE` or `FALSE`.
    fn literal(&mut self) -> Option<Result<Literal, SelectorError>> {
        let token = self.peek()?.clone();
        let literal = match token.kind {
            TokenKind::String(text) => Literal::String(text),
            TokenKind::Number(n) => Literal::Number(n),
            TokenKind::Keyword(Keyword::True) => Literal::Bool(true),
            TokenKind::Keyword(Keyword::False) => Literal::Bool(false),
            TokenKind::Minus => {
                self.next += 1;
                let Some(TokenKind::Number(n)) = self.peek().map(|t| t.kind.clone()) else {
                    return Some(Err(self.expected("a number")));
                };
                let Some(negated) = n.negate() else {
                    return Some(Err(SelectorError::syntax(
                        token.start,
                        "number is out of range",
                    )));
                };
                Literal::Number(negated)
            }
            _ => return None,
        };
        self.next += 1;
        Some(Ok(literal))
    }

    /// `( literal {, literal} )`, after IN.
    fn in_list(&mut self) -> Result<Vec<Literal>, SelectorError> {
        if self.peek().map(|t| &t.kind) != Some(&TokenKind::LeftParen) {
            return Err(self.expected("'('"));
        }
        self.next += 1;
        let mut list = Vec::new();
        loop {
            match self.literal() {
                Some(literal) => list.push(literal?),
                None => return Err(self.expected("a string or number")),
            }
            match self.peek().map(|t| &t.kind) {
                Some(TokenKind::Comma) => self.next += 1,
                Some(TokenKind::RightParen) => {
                    self.next += 1;
                    return Ok(list);
                }
                _ => return Err(self.unexpected("expected ',' or ')' in the IN list")),
            }
        }
    }

    /// `'pattern' [ESCAPE 'c']`, after LIKE.
    fn like_pattern(&mut self) -> Result<LikePattern, SelectorError> {
        let Some(TokenKind::String(pattern)) = self.peek().map(|t| t.kind.clone()) else {
            return Err(self.expected("a quoted pattern"));
        };
        let pattern_start = self.tokens[self.next].start;
        self.next += 1;
        let mut escape = None;
        if self.peek_keyword() == Some(Keyword::Escape) {
            self.next += 1;
            let Some(TokenKind::String(text)) = self.peek().map(|t| t.kind.clone()) else {
                return Err(self.expected("a quoted escape character"));
            };
            let mut chars = text.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(SelectorError::syntax(
                    self.tokens[self.next].start,
                    format!("the ESCAPE character must be exactly one character, not {text:?}"),
                ));
            };
            self.next += 1;
            escape = Some(c);
        }
        LikePattern::compile(&pattern, escape)
            .map_err(|reason| SelectorError::syntax(pattern_start, reason))
    }

    fn expect_keyword(&mut self, keyword: Keyword, reason: &str) -> Result<(), SelectorError> {
        if self.peek_keyword() == Some(keyword) {
            self.next += 1;
            Ok(())
        } else {
            Err(self.unexpected(reason))
        }
    }

    /// Opens one more level of nesting at `position`.
    fn enter(&mut self, position: usize) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(SelectorError::TooDeep { position });
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_keyword(&self) -> Option<Keyword> {
        match self.peek()?.kind {
            TokenKind::Keyword(k) => Some(k),
            _ => None,
        }
    }

    /// "expected {what} after {the previous token}", pointing at the next token.
    fn expected(&self, what: &str) -> SelectorError {
        let reason = match self.next.checked_sub(1).map(|i| &self.tokens[i]) {
            Some(previous) => format!("expected {what} after {}", previous.describe(self.source)),
            None => format!("expected {what}"),
        };
        self.unexpected(&reason)
    }

    /// An error at the next token (or the end), saying what was found there.
    fn unexpected(&self, reason: &str) -> SelectorError {
        match self.peek() {
            Some(token) => {
                SelectorError::unexpected(token.start, reason, token.describe(self.source))
            }
            None => SelectorError::unexpected(
                self.source.len(),
                reason,
                "the end of the selector".to_owned(),
            ),
        }
    }
}
