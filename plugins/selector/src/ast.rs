//! The parsed form of a selector, built once by the parser and walked per message by the
//! evaluator.
//!
//! `AND` and `OR` hold all their operands in one node, so a long chain of conditions is a wide
//! tree rather than a deep one; the tree is only as deep as the selector's parentheses and
//! `NOT`s, which the parser bounds.

use std::cmp::Ordering;

use crate::like::LikePattern;

/// A condition: evaluates to true, false or unknown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        op: CompareOp,
        left: Operand,
        right: Operand,
    },
    /// `operand [NOT] BETWEEN low AND high`
    Between {
        operand: Operand,
        low: Operand,
        high: Operand,
        negated: bool,
    },
    /// `operand [NOT] IN (literal, …)`
    In {
        operand: Operand,
        list: Vec<Literal>,
        negated: bool,
    },
    /// `operand [NOT] LIKE 'pattern' [ESCAPE 'c']`
    Like {
        operand: Operand,
        pattern: LikePattern,
        negated: bool,
    },
    /// `operand IS [NOT] NULL`
    IsNull {
        operand: Operand,
        negated: bool,
    },
    /// An operand standing alone as a condition: `persistent`, `TRUE`, a boolean header.
    Truth(Operand),
}

impl Expr {
    /// `left AND right` (or `OR`), merged into `left` when it is already that operator.
    pub(crate) fn join(and: bool, left: Expr, right: Expr) -> Expr {
        match (and, left) {
            (true, Expr::And(mut all)) => {
                all.push(right);
                Expr::And(all)
            }
            (false, Expr::Or(mut any)) => {
                any.push(right);
                Expr::Or(any)
            }
            (true, left) => Expr::And(vec![left, right]),
            (false, left) => Expr::Or(vec![left, right]),
        }
    }
}

/// Something that has a value: a name looked up in the message, a literal, or a parenthesised
/// condition (whose value is true, false or null for unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Identifier(String),
    Literal(Literal),
    Group(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    String(String),
    Number(Number),
    Bool(bool),
}

/// An exact integer or a decimal; mixed comparisons convert the integer to `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Integer(i64),
    Decimal(f64),
}

impl Number {
    pub(crate) fn negate(self) -> Option<Number> {
        match self {
            Number::Integer(i) => i.checked_neg().map(Number::Integer),
            Number::Decimal(d) => Some(Number::Decimal(-d)),
        }
    }

    /// Numeric order; `None` only if a decimal is NaN, which literals and parsed headers
    /// never are.
    pub(crate) fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Integer(a), Number::Integer(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Integer(i) => i as f64,
            Number::Decimal(d) => d,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// Whether two values in this order satisfy the operator.
    pub(crate) fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
        }
    }
}
