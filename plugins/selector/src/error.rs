//! [`SelectorError`]: why a selector did not compile, and where.
//!
//! Written without `thiserror` because this crate has no dependencies besides the SDK, which
//! keeps the WebAssembly component small; the `Display` text is what the consumer sees.

use std::fmt;

use crate::{MAX_NESTING, MAX_SELECTOR_BYTES};

/// Why a selector was refused. Positions are byte offsets into the selector, from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorError {
    /// The selector is longer than [`MAX_SELECTOR_BYTES`]; `length` is its length in bytes.
    TooLong { length: usize },
    /// Parentheses and `NOT`s nest deeper than [`MAX_NESTING`]; `position` is where the
    /// level past the limit opens.
    TooDeep { position: usize },
    /// The selector is not well formed at `position`: `reason` says what was wrong or
    /// expected there, and `found` what was there instead, when that helps.
    Syntax {
        position: usize,
        reason: String,
        found: Option<String>,
    },
}

impl SelectorError {
    /// The byte offset the error points at, if it points anywhere.
    pub fn position(&self) -> Option<usize> {
        match self {
            SelectorError::TooLong { .. } => None,
            SelectorError::TooDeep { position } | SelectorError::Syntax { position, .. } => {
                Some(*position)
            }
        }
    }

    pub(crate) fn syntax(position: usize, reason: impl Into<String>) -> Self {
        SelectorError::Syntax {
            position,
            reason: reason.into(),
            found: None,
        }
    }

    pub(crate) fn unexpected(position: usize, reason: impl Into<String>, found: String) -> Self {
        SelectorError::Syntax {
            position,
            reason: reason.into(),
            found: Some(found),
        }
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectorError::TooLong { length } => write!(
                f,
                "the selector is {length} bytes long; at most {MAX_SELECTOR_BYTES} are allowed"
            ),
            SelectorError::TooDeep { position } => write!(
                f,
                "the selector nests parentheses and NOTs more than {MAX_NESTING} deep at \
                 position {position}"
            ),
            SelectorError::Syntax {
                position,
                reason,
                found,
            } => {
                write!(f, "{reason} at position {position}")?;
                if let Some(found) = found {
                    write!(f, ", found {found}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SelectorError {}
