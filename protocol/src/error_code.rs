//! The one table of wire error codes, and [`WireError`], the code-plus-message every refusal
//! travels as.
//!
//! Numbers never change once released. Below 600 they are AMQP 0-9-1's reply codes with the
//! same meaning, so a RabbitMQ user reading `404` or `406` in a log knows what happened;
//! 600 and up are Switchyard's own. A code this version does not know (sent by a newer broker)
//! decodes as [`ErrorCode::Unknown`] with its number kept, instead of failing the whole frame.
//!
//! The same number is the QUIC application close code when a peer closes the connection
//! because of it; a normal close uses 0.

use std::fmt;

/// Declares [`ErrorCode`] from one table: each row is a variant, its stable number and its
/// label. A macro rather than `#[repr(u16)]` discriminants because `Unknown(u16)` carries data,
/// and `as` cannot cast an enum that has a data variant.
macro_rules! error_code_table {
    ($( $(#[doc = $doc:literal])* $code:ident = $number:literal, $label:literal; )+) => {
        /// A stable wire error code. Equality and hashing go by number.
        #[derive(Debug, Clone, Copy)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $code, )+
            /// A number this version does not know, kept as received. [`ErrorCode::from_u16`]
            /// returns it only for numbers outside the table.
            Unknown(u16),
        }

        impl ErrorCode {
            /// Every code in the table, in table order.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$code),+];

            /// The code's stable number.
            pub const fn as_u16(self) -> u16 {
                match self {
                    $(ErrorCode::$code => $number,)+
                    ErrorCode::Unknown(number) => number,
                }
            }

            /// The code with this number; numbers outside the table become
            /// [`ErrorCode::Unknown`].
            pub const fn from_u16(number: u16) -> ErrorCode {
                match number {
                    $($number => ErrorCode::$code,)+
                    other => ErrorCode::Unknown(other),
                }
            }

            /// The code's name as logs and CLIs print it (`NOT_FOUND`).
            pub const fn label(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $label,)+
                    ErrorCode::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}

error_code_table! {
    /// Sent as a publish `Reject` when a message (body, headers and properties) is larger than
    /// the broker's configured message size limit. (AMQP `CONTENT_TOO_LARGE`.)
    MessageTooLarge = 311, "MESSAGE_TOO_LARGE";
    /// Sent as a publish `Returned` reason when a `mandatory` message reached no queue.
    /// (AMQP `NO_ROUTE`.)
    NoRoute = 312, "NO_ROUTE";
    /// Sent when a connection is closed on purpose with no fault of the client: the broker is
    /// shutting down or an operator closed it. (AMQP `CONNECTION_FORCED`.)
    ConnectionForced = 320, "CONNECTION_FORCED";
    /// Sent when authentication in the `Hello` fails, or when the user lacks the configure,
    /// write or read permission on the named resource. (AMQP `ACCESS_REFUSED`.)
    AccessRefused = 403, "ACCESS_REFUSED";
    /// Sent when a named exchange, queue, binding or plugin does not exist, including a passive
    /// declare of something absent. (AMQP `NOT_FOUND`.)
    NotFound = 404, "NOT_FOUND";
    /// Sent when a queue is exclusive to another connection. (AMQP `RESOURCE_LOCKED`.)
    ResourceLocked = 405, "RESOURCE_LOCKED";
    /// Sent when a request conflicts with the current state: redeclaring an exchange or queue
    /// with different properties or arguments, `if_unused` on something in use, `if_empty` on a
    /// queue holding messages, or acking an unknown delivery tag. (AMQP `PRECONDITION_FAILED`.)
    PreconditionFailed = 406, "PRECONDITION_FAILED";
    /// Sent before closing a stream whose peer announced a frame larger than the negotiated
    /// `max_frame`. (AMQP `FRAME_ERROR`.)
    FrameTooLarge = 501, "FRAME_TOO_LARGE";
    /// Sent when a field's value is unacceptable: a name too long or with control characters,
    /// a malformed argument, an unknown argument value, a bad filter expression the plugin did
    /// not get to judge. (AMQP `SYNTAX_ERROR`.)
    InvalidArgument = 502, "INVALID_ARGUMENT";
    /// Sent before closing a stream or connection whose peer broke the protocol: an undecodable
    /// frame, a frame that is not allowed on this stream or at this point (a second `Hello`, an
    /// `Ack` before `Subscribe`). (AMQP `UNEXPECTED_FRAME`.)
    ProtocolViolation = 505, "PROTOCOL_VIOLATION";
    /// Sent as `Blocked` reason or publish `Reject` while the broker is above its memory or disk
    /// watermark. Retrying later may succeed. (AMQP `RESOURCE_ERROR`.)
    Overloaded = 506, "OVERLOADED";
    /// Sent when a request is valid but forbidden by the broker's rules: declaring a reserved
    /// name, deleting the default exchange, publishing to an internal exchange.
    /// (AMQP `NOT_ALLOWED`.)
    NotAllowed = 530, "NOT_ALLOWED";
    /// Sent when the broker failed for a reason that is not the client's: a storage error, a
    /// bug. The message says what; the request may or may not have taken effect.
    /// (AMQP `INTERNAL_ERROR`.)
    InternalError = 541, "INTERNAL_ERROR";
    /// Sent as `Closing` reason when the `Hello` offers no protocol version the broker speaks.
    UnsupportedVersion = 600, "UNSUPPORTED_VERSION";
    /// Sent as publish `Reject` when the exchange's routing plugin failed on this message (a
    /// trap, an overrun deadline, the memory cap, an invalid answer, quarantine). The message
    /// was not enqueued anywhere.
    RoutingFault = 601, "ROUTING_FAULT";
    /// Sent when a plugin refused a request on purpose: an exchange's arguments (`create`), a
    /// binding (`validate-binding`), a consumer's filter expression (`compile`). The message is
    /// the plugin's own.
    PluginRefused = 602, "PLUGIN_REFUSED";
    /// Sent as publish `Reject` when a destination queue is at its max-length or max-bytes and
    /// its overflow policy is `reject-publish` or `reject-publish-dlx`. Queues that accepted the
    /// message keep it.
    QueueFull = 603, "QUEUE_FULL";
    /// Sent as publish `Reject` when a persistent message for a durable queue could not be made
    /// durable: free disk space is below the broker's low watermark, or a write or fsync
    /// failed. Sent for a declare when the queue's log could not be created. Nothing the broker
    /// confirmed before is affected.
    StorageFailed = 604, "STORAGE_FAILED";
    /// Sent when a request would pass one of the broker's configured limits: queues,
    /// exchanges, bindings, connections (in all or from one address). The message names the
    /// limit and its value. Retrying after something was deleted or closed may succeed.
    LimitReached = 605, "LIMIT_REACHED";
}

impl PartialEq for ErrorCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_u16() == other.as_u16()
    }
}

impl Eq for ErrorCode {}

impl std::hash::Hash for ErrorCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_u16().hash(state);
    }
}

impl From<u16> for ErrorCode {
    fn from(number: u16) -> Self {
        ErrorCode::from_u16(number)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.as_u16()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label(), self.as_u16())
    }
}

// On the wire a code is its bare number, so unknown numbers survive decoding.
impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u16::deserialize(deserializer).map(ErrorCode::from_u16)
    }
}

/// A refusal as it travels: a stable code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}
