//! The one mapping from the broker's errors to wire errors: every refusal a client sees goes
//! through [`wire_error`], so each error kind has exactly one stable code.

use switchyard_protocol::{ErrorCode, WireError};

use crate::session::BrokerError;

pub(crate) fn wire_error(error: &BrokerError) -> WireError {
    let code = match error {
        BrokerError::NotFound { .. } => ErrorCode::NotFound,
        BrokerError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
        BrokerError::ResourceLocked { .. } | BrokerError::ExclusiveConsumer { .. } => {
            ErrorCode::ResourceLocked
        }
        BrokerError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
        BrokerError::NotAllowed { .. } => ErrorCode::NotAllowed,
        BrokerError::PluginRefused(_) => ErrorCode::PluginRefused,
        BrokerError::RoutingFault { .. } => ErrorCode::RoutingFault,
        BrokerError::Overloaded { .. } => ErrorCode::Overloaded,
        BrokerError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        BrokerError::Storage { .. } => ErrorCode::StorageFailed,
        BrokerError::QueueFull { .. } => ErrorCode::QueueFull,
        BrokerError::LimitReached { .. } | BrokerError::TooManyConnections { .. } => {
            ErrorCode::LimitReached
        }
    };
    WireError::new(code, error.to_string())
}
