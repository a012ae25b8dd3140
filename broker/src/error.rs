//! The broker's one error type for client-visible failures. Every variant maps to exactly one
//! stable wire code in `frontend/quic/wire_error.rs`, the only place that mapping exists.

use crate::plugin::PluginError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The named exchange or queue does not exist.
    #[error("no {kind} named {name:?}")]
    NotFound { kind: &'static str, name: String },

    /// The request conflicts with the current state: redeclaring with different properties,
    /// deleting with if-unused/if-empty while in use, …
    #[error("{reason}")]
    PreconditionFailed { reason: String },

    /// An exclusive queue belongs to another connection.
    #[error("queue {queue:?} is exclusive to another connection")]
    ResourceLocked { queue: String },

    /// A subscription that exclusivity rules out.
    #[error("cannot consume from queue {queue:?}: {reason}")]
    ExclusiveConsumer { queue: String, reason: &'static str },

    /// A malformed name, argument or value.
    #[error("{reason}")]
    InvalidArgument { reason: String },

    /// The operation is never allowed (the default exchange cannot be bound or deleted, …).
    #[error("{reason}")]
    NotAllowed { reason: String },

    /// A plugin refused (an exchange's arguments, a binding, a filter expression).
    #[error("{0}")]
    PluginRefused(PluginError),

    /// A routing or filter plugin failed while handling a message. `place` names the
    /// exchange and routing key when a route failed (empty for other calls).
    #[error("routing failed{place}: {error}")]
    RoutingFault {
        error: Box<PluginError>,
        place: String,
    },

    /// The broker is above a resource watermark and refuses new work for now.
    #[error("{reason}")]
    Overloaded { reason: String },

    /// A queue the message was routed to is at its length limit and refuses more
    /// (`x-overflow` `reject-publish` or `reject-publish-dlx`).
    #[error("full queue refuses the message (x-overflow reject-publish): {}", .queues.join(", "))]
    QueueFull { queues: Vec<String> },

    /// A message larger than the broker accepts.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },

    /// A configured limit would be passed (see `config::LimitSettings`).
    #[error("{what} limit reached: at most {limit} (the broker's `[limits]` configuration)")]
    LimitReached { what: &'static str, limit: u64 },

    /// A new connection past the connection limits (see `session::admission`).
    #[error("{reason}")]
    TooManyConnections { reason: String },

    /// The store could not take or keep something durable (disk low, a failed write).
    #[error("{reason}")]
    Storage { reason: String },
}

impl BrokerError {
    pub(crate) fn not_found(kind: &'static str, name: &str) -> Self {
        BrokerError::NotFound {
            kind,
            name: name.to_owned(),
        }
    }

    pub(crate) fn precondition(reason: impl Into<String>) -> Self {
        BrokerError::PreconditionFailed {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        BrokerError::InvalidArgument {
            reason: reason.into(),
        }
    }

    pub(crate) fn storage(reason: impl Into<String>) -> Self {
        BrokerError::Storage {
            reason: reason.into(),
        }
    }

    pub(crate) fn not_allowed(reason: impl Into<String>) -> Self {
        BrokerError::NotAllowed {
            reason: reason.into(),
        }
    }

    /// Sorts a plugin error from an administrative call (declare, bind, subscribe).
    pub(crate) fn from_admin_plugin_error(error: PluginError) -> Self {
        match error {
            PluginError::Refused { .. } => BrokerError::PluginRefused(error),
            PluginError::NotFound { kind, name } => BrokerError::InvalidArgument {
                reason: format!("no {kind} plugin named {name:?} is loaded"),
            },
            other => BrokerError::RoutingFault {
                error: Box::new(other),
                place: String::new(),
            },
        }
    }
}
