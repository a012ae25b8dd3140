//! The translation table between AMQP 0-9-1 and the session layer: message properties both
//! ways, and the one mapping from the broker's errors to AMQP reply codes.
//!
//! Properties map one to one, except where the models differ: AMQP's `delivery-mode` 2 is
//! `persistent`; `expiration` is milliseconds as decimal text (anything else is refused, as
//! RabbitMQ refuses it); an unset `priority` is 0 (and 0 is sent as unset); a binary message or
//! correlation id (which Switchyard's own protocol can carry and AMQP's short strings cannot)
//! is sent as its text when it is UTF-8, and otherwise as lowercase hex prefixed `0x`; the
//! `timestamp` is seconds in AMQP and milliseconds in the model (whole seconds cross over).

use switchyard_amqp::{BasicProperties, ReplyCode};

use crate::session::{BrokerError, Identifier, Message, Properties};

/// The longest reply text AMQP can carry (a short string).
const MAX_REPLY_TEXT: usize = 255;

/// A message published over AMQP, as the session takes it.
pub(super) fn message_from_amqp(
    routing_key: String,
    properties: BasicProperties,
    body: bytes::Bytes,
) -> Result<Message, BrokerError> {
    let expiration = match &properties.expiration {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            BrokerError::precondition(format!(
                "invalid expiration {text:?}: a message TTL is a number of milliseconds"
            ))
        })?),
    };
    let converted = Properties {
        message_id: properties.message_id.map(Identifier::Text),
        correlation_id: properties.correlation_id.map(Identifier::Text),
        reply_to: properties.reply_to,
        content_type: properties.content_type,
        content_encoding: properties.content_encoding,
        message_type: properties.message_type,
        user_id: properties.user_id,
        app_id: properties.app_id,
        cluster_id: properties.cluster_id,
        // AMQP counts seconds; the model, milliseconds.
        timestamp: properties
            .timestamp
            .map(|seconds| seconds.saturating_mul(1000)),
        expiration,
        priority: properties.priority.unwrap_or(0),
        persistent: properties.delivery_mode == Some(2),
        ..Properties::default()
    };
    let mut message = Message::new(routing_key, body);
    message.headers = properties.headers.unwrap_or_default();
    if converted != Properties::default() {
        message.properties = converted.into();
    }
    Ok(message)
}

/// A message's properties as AMQP sends them on a delivery, a get or a return.
pub(super) fn properties_to_amqp(message: &Message) -> BasicProperties {
    let p = &*message.properties;
    BasicProperties {
        content_type: p.content_type.clone(),
        content_encoding: p.content_encoding.clone(),
        headers: (!message.headers.is_empty()).then(|| message.headers.clone()),
        delivery_mode: Some(if p.persistent { 2 } else { 1 }),
        priority: (p.priority != 0).then_some(p.priority),
        correlation_id: p.correlation_id.as_ref().map(identifier_text),
        reply_to: p.reply_to.clone(),
        expiration: p.expiration.map(|ms| ms.to_string()),
        message_id: p.message_id.as_ref().map(identifier_text),
        timestamp: p.timestamp.map(|ms| ms / 1000),
        message_type: p.message_type.clone(),
        user_id: p.user_id.clone(),
        app_id: p.app_id.clone(),
        cluster_id: p.cluster_id.clone(),
    }
}

fn identifier_text(id: &Identifier) -> String {
    match id {
        Identifier::Text(text) => text.clone(),
        Identifier::Binary(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("0x{hex}")
            }
        },
    }
}

/// The reply code and text a refusal closes a channel (or the connection) with.
pub(super) fn reply_for(error: &BrokerError) -> (ReplyCode, String) {
    let code = match error {
        BrokerError::NotFound { .. } => ReplyCode::NotFound,
        BrokerError::ResourceLocked { .. } | BrokerError::ExclusiveConsumer { .. } => {
            ReplyCode::ResourceLocked
        }
        BrokerError::NotAllowed { .. } => ReplyCode::AccessRefused,
        BrokerError::TooManyConnections { .. } => ReplyCode::NotAllowed,
        BrokerError::Storage { .. } => ReplyCode::InternalError,
        BrokerError::PreconditionFailed { .. }
        | BrokerError::InvalidArgument { .. }
        | BrokerError::PluginRefused(_)
        | BrokerError::RoutingFault { .. }
        | BrokerError::Overloaded { .. }
        | BrokerError::MessageTooLarge { .. }
        | BrokerError::QueueFull { .. }
        | BrokerError::LimitReached { .. } => ReplyCode::PreconditionFailed,
    };
    (code, reply_text(code, &error.to_string()))
}

/// `NOT_FOUND - no exchange "x"`: RabbitMQ's form, cut to fit a short string.
pub(super) fn reply_text(code: ReplyCode, message: &str) -> String {
    let mut text = format!("{} - {message}", code.name());
    if text.len() > MAX_REPLY_TEXT {
        let mut end = MAX_REPLY_TEXT - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Table, Value};

    #[test]
    fn every_property_survives_the_round_trip() {
        let properties = BasicProperties {
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(Table::new().with("n", Value::I32(7))),
            delivery_mode: Some(2),
            priority: Some(5),
            correlation_id: Some("c-1".into()),
            reply_to: Some("amq.rabbitmq.reply-to".into()),
            expiration: Some("60000".into()),
            message_id: Some("m-1".into()),
            timestamp: Some(1_700_000_000),
            message_type: Some("order.created".into()),
            user_id: Some("app".into()),
            app_id: Some("billing".into()),
            cluster_id: Some("c".into()),
        };
        let message = message_from_amqp("k".into(), properties.clone(), "b".into()).unwrap();
        assert_eq!(properties_to_amqp(&message), properties);
    }

    #[test]
    fn an_expiration_that_is_not_milliseconds_is_refused() {
        let properties = BasicProperties {
            expiration: Some("soon".into()),
            ..BasicProperties::default()
        };
        let error = message_from_amqp("k".into(), properties, "".into()).unwrap_err();
        assert_eq!(reply_for(&error).0, ReplyCode::PreconditionFailed);
    }

    #[test]
    fn a_binary_id_goes_out_as_text_or_hex() {
        assert_eq!(
            identifier_text(&Identifier::Binary(b"ab".to_vec().into())),
            "ab"
        );
        assert_eq!(
            identifier_text(&Identifier::Binary(vec![0xff, 0x01].into())),
            "0xff01"
        );
    }

    #[test]
    fn a_reply_text_fits_a_short_string() {
        let text = reply_text(ReplyCode::NotFound, &"é".repeat(300));
        assert!(text.len() <= MAX_REPLY_TEXT && text.ends_with("..."));
    }
}
