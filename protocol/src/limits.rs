//! The size limits of the protocol, and the checks the broker runs on names and headers before
//! acting on a request.
//!
//! Limits come in two kinds. Those that bound memory are enforced while decoding, and a frame
//! breaking them is undecodable (the stream is closed with
//! [`ErrorCode::ProtocolViolation`] or [`ErrorCode::FrameTooLarge`]):
//! - a frame's payload is at most the negotiated `max_frame`, never more than
//!   [`DEFAULT_MAX_FRAME`](crate::DEFAULT_MAX_FRAME) (16 MiB);
//! - a message's headers, and a declaration's or binding's arguments, are a [`Table`] of at most
//!   [`MAX_TABLE_ITEMS`](crate::MAX_TABLE_ITEMS) values nested at most
//!   [`MAX_VALUE_DEPTH`](crate::MAX_VALUE_DEPTH) deep.
//!
//! Those that are policy are checked by the broker with [`validate_name`] and
//! [`validate_headers`], which answer a [`WireError`] to send back for the one request, as
//! RabbitMQ does:
//! - a message carries at most [`MAX_HEADERS`] headers, and a declaration or binding at most
//!   [`MAX_HEADERS`] arguments (top-level names);
//! - exchange and queue names, routing keys, binding keys, consumer tags and header names are at
//!   most [`MAX_NAME_BYTES`] bytes of UTF-8 (AMQP's short-string limit);
//! - exchange and queue names, consumer tags and header names contain no control characters
//!   (they end up in logs, metrics labels and the admin UI). Routing keys may hold anything.
//!
//! The empty name is valid here: it is the default exchange, a server-named queue on declare or
//! a server-chosen consumer tag. Whether it is allowed in a given request is the broker's call.
//! Message size is the broker's configuration, bounded by the frame size.

use crate::error_code::{ErrorCode, WireError};
use crate::value::Table;

/// The longest exchange name, queue name, routing or binding key, consumer tag or header name,
/// in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The most headers one message, or arguments one declaration or binding, may carry.
pub const MAX_HEADERS: usize = 256;

/// What a name names, for [`validate_name`]'s rules and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Exchange,
    Queue,
    /// A publish's routing key or a binding's key.
    RoutingKey,
    ConsumerTag,
    HeaderName,
}

impl NameKind {
    fn describe(self) -> &'static str {
        match self {
            NameKind::Exchange => "exchange name",
            NameKind::Queue => "queue name",
            NameKind::RoutingKey => "routing key",
            NameKind::ConsumerTag => "consumer tag",
            NameKind::HeaderName => "header name",
        }
    }

    fn allows_control_characters(self) -> bool {
        matches!(self, NameKind::RoutingKey)
    }
}

/// Checks a name against the protocol's limits; the error is an
/// [`ErrorCode::InvalidArgument`] ready to send.
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), WireError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(WireError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} is {} bytes long, at most {MAX_NAME_BYTES} are allowed",
                kind.describe(),
                name.len()
            ),
        ));
    }
    if !kind.allows_control_characters()
        && let Some(bad) = name.chars().find(|c| c.is_control())
    {
        return Err(WireError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} {name:?} contains the control character {bad:?}",
                kind.describe()
            ),
        ));
    }
    Ok(())
}

/// Checks a message's headers, or a declaration's arguments: their count and every name.
/// Values may be anything [`Table`] decodes (its own bounds hold them).
pub fn validate_headers(headers: &Table) -> Result<(), WireError> {
    if headers.len() > MAX_HEADERS {
        return Err(WireError::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} headers, at most {MAX_HEADERS} are allowed",
                headers.len()
            ),
        ));
    }
    headers
        .iter()
        .try_for_each(|(name, _)| validate_name(NameKind::HeaderName, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_up_to_the_limit_pass() {
        let longest = "q".repeat(MAX_NAME_BYTES);
        for kind in [
            NameKind::Exchange,
            NameKind::Queue,
            NameKind::RoutingKey,
            NameKind::ConsumerTag,
            NameKind::HeaderName,
        ] {
            assert_eq!(validate_name(kind, ""), Ok(()));
            assert_eq!(validate_name(kind, "orders.eu-west_1:v2"), Ok(()));
            assert_eq!(validate_name(kind, &longest), Ok(()));
        }
    }

    #[test]
    fn a_name_one_byte_too_long_is_an_invalid_argument() {
        // 254 ASCII bytes plus a two-byte character: the limit counts bytes, not characters.
        let name = format!("{}é", "q".repeat(MAX_NAME_BYTES - 1));
        let error = validate_name(NameKind::Queue, &name).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert!(error.message.contains("256 bytes"), "{error}");
    }

    #[test]
    fn control_characters_are_refused_except_in_routing_keys() {
        let error = validate_name(NameKind::Exchange, "logs\n").unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert_eq!(validate_name(NameKind::RoutingKey, "a\tb"), Ok(()));
    }

    #[test]
    fn headers_are_counted_and_their_names_checked() {
        let ok = Table::new()
            .with("x-tenant", "anything\ngoes")
            .with("n", 1_i64);
        assert_eq!(validate_headers(&ok), Ok(()));
        let too_many: Table = (0..=MAX_HEADERS).map(|i| (i.to_string(), "")).collect();
        assert_eq!(
            validate_headers(&too_many).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let bad_name = Table::new().with("x\u{7}", "");
        assert!(validate_headers(&bad_name).is_err());
    }
}
