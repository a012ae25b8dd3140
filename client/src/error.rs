//! The client's one error type.

use switchyard_protocol::{DecodeError, EncodeError, ErrorCode, WireError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker could not be reached or the QUIC handshake failed.
    #[error("connecting to {addr}: {reason}")]
    Connect { addr: String, reason: String },

    /// The TLS configuration (trust settings) is unusable.
    #[error("TLS: {0}")]
    Tls(String),

    /// The broker refused the request; `code` says why, stably.
    #[error("{0}")]
    Refused(WireError),

    /// The broker rejected a published message (negative confirm).
    #[error("message {seq} rejected: {error}")]
    Rejected { seq: u64, error: WireError },

    /// The connection is gone (closed by either side, or lost).
    #[error("connection closed: {reason}")]
    Closed { reason: String },

    /// Nothing arrived in time.
    #[error("no {what} within {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },

    /// The broker broke the protocol, or sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    pub(crate) fn closed(reason: impl std::fmt::Display) -> Self {
        ClientError::Closed {
            reason: reason.to_string(),
        }
    }

    /// A lost connection; when the broker closed it with an error code, that refusal.
    pub(crate) fn from_connection(error: &quinn::ConnectionError) -> Self {
        match error {
            quinn::ConnectionError::ApplicationClosed(close)
                if close.error_code.into_inner() != 0 =>
            {
                let code = u16::try_from(close.error_code.into_inner()).unwrap_or(u16::MAX);
                ClientError::Refused(WireError::new(
                    ErrorCode::from_u16(code),
                    String::from_utf8_lossy(&close.reason).into_owned(),
                ))
            }
            other => ClientError::closed(other),
        }
    }
}

/// A failure reading or writing frames on one stream.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("reading the stream: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("writing the stream: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("the stream ended in the middle of a frame")]
    Truncated,
}

impl FrameError {
    /// The wire code that describes this failure to the peer.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            FrameError::Decode(e) => e.error_code(),
            FrameError::Encode(_) => ErrorCode::InternalError,
            FrameError::Truncated => ErrorCode::ProtocolViolation,
            FrameError::Read(_) | FrameError::Write(_) => ErrorCode::ConnectionForced,
        }
    }
}

impl From<FrameError> for ClientError {
    fn from(error: FrameError) -> Self {
        match error {
            FrameError::Decode(e) => ClientError::Protocol(e.to_string()),
            FrameError::Encode(e) => ClientError::Protocol(e.to_string()),
            FrameError::Truncated => ClientError::Protocol("stream ended mid-frame".into()),
            FrameError::Read(quinn::ReadError::ConnectionLost(e)) => {
                ClientError::from_connection(&e)
            }
            FrameError::Read(e) => ClientError::closed(e),
            FrameError::Write(e) => ClientError::closed(e),
        }
    }
}
