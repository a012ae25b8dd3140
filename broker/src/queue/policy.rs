//! A queue's policy: its `x-` arguments parsed and checked once, at declare time, into
//! [`QueuePolicy`]. Nothing else reads the raw argument strings.
//!
//! Names follow RabbitMQ where RabbitMQ has the feature (`x-message-ttl`, `x-max-length`, …);
//! `x-deduplication-window` is Switchyard's own. Values are typed: a number is an integer of
//! any width, or a string holding one (as RabbitMQ reads numbers typed on a command line), and
//! [`QueuePolicy::canonicalize`] stores every number as a 64-bit integer so that declares
//! differing only in integer width (pika picks the width from the value) are equivalent. An argument whose name starts with `x-` but is not in [`KNOWN_ARGUMENTS`]
//! is refused: RabbitMQ ignores unknown ones, which turns a typo (`x-message-tll`) into a queue
//! silently without the policy. Arguments without the `x-` prefix are the user's own and kept
//! as they are.

use std::time::Duration;

use crate::error::BrokerError;
use crate::message::{Table, Value};

/// Every `x-` queue argument Switchyard knows; `docs/queues.md` documents each.
pub const KNOWN_ARGUMENTS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-delivery-limit",
    "x-single-active-consumer",
    "x-consumer-timeout",
    "x-max-priority",
    "x-deduplication-window",
];

/// What a queue at its length limit does with one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter, reason `maxlen`) the oldest ready message to make room.
    #[default]
    DropHead,
    /// Refuse the new message: the publisher gets a negative confirm.
    RejectPublish,
    /// Refuse the new message and dead-letter it (reason `maxlen`); the publisher still gets a
    /// negative confirm.
    RejectPublishDlx,
}

/// A queue's behaviour as its arguments set it. `Default` is a queue without arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueuePolicy {
    /// `x-message-ttl`: a ready message older than this expires.
    pub message_ttl: Option<Duration>,
    /// `x-expires`: the queue is deleted after being unused (no consumers, no redeclare) this
    /// long.
    pub expires: Option<Duration>,
    /// `x-dead-letter-exchange`: where dead messages are republished (`""` is the default
    /// exchange).
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`: replaces the message's routing key when dead-lettered.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-length`: ready messages at most.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: body bytes of ready messages at most.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-delivery-limit`: a message is delivered at most this many times.
    pub delivery_limit: Option<u32>,
    /// `x-consumer-timeout`: an unacked delivery older than this is returned to the queue.
    pub consumer_timeout: Option<Duration>,
    /// `x-max-priority`: the highest message priority honoured (higher ones count as this).
    pub max_priority: Option<u8>,
    /// `x-deduplication-window`: a publish whose message-id was enqueued within this window is
    /// confirmed but not enqueued again.
    pub deduplication_window: Option<Duration>,
    /// `x-single-active-consumer`: only the oldest consumer receives; the next takes over when
    /// it goes.
    pub single_active_consumer: bool,
}

impl QueuePolicy {
    /// Parses a queue's arguments. Refuses a value of the wrong type or range, an unknown
    /// `x-overflow`, an unknown `x-` argument and an argument given twice.
    pub fn parse(arguments: &Table) -> Result<QueuePolicy, BrokerError> {
        let mut policy = QueuePolicy::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in arguments {
            if !name.starts_with("x-") {
                continue;
            }
            if seen.contains(&name.as_str()) {
                return Err(BrokerError::invalid(format!(
                    "queue argument {name} is given twice"
                )));
            }
            seen.push(name);
            match name.as_str() {
                "x-message-ttl" => policy.message_ttl = Some(millis(name, value, 0)?),
                "x-expires" => policy.expires = Some(millis(name, value, 1)?),
                "x-dead-letter-exchange" => {
                    policy.dead_letter_exchange = Some(text(name, value)?.to_owned());
                }
                "x-dead-letter-routing-key" => {
                    policy.dead_letter_routing_key = Some(text(name, value)?.to_owned());
                }
                "x-max-length" => policy.max_length = Some(number(name, value, 0, u64::MAX)?),
                "x-max-length-bytes" => {
                    policy.max_length_bytes = Some(number(name, value, 0, u64::MAX)?);
                }
                "x-overflow" => {
                    policy.overflow = match text(name, value)? {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        other => {
                            return Err(BrokerError::invalid(format!(
                                "x-overflow is {other:?}; it must be drop-head, reject-publish or reject-publish-dlx"
                            )));
                        }
                    }
                }
                "x-delivery-limit" => {
                    policy.delivery_limit = Some(number(name, value, 1, u32::MAX.into())? as u32);
                }
                "x-consumer-timeout" => policy.consumer_timeout = Some(millis(name, value, 1)?),
                "x-max-priority" => policy.max_priority = Some(number(name, value, 1, 255)? as u8),
                "x-deduplication-window" => {
                    policy.deduplication_window = Some(millis(name, value, 1)?);
                }
                "x-single-active-consumer" => {
                    policy.single_active_consumer = match value {
                        Value::Bool(on) => *on,
                        Value::String(text) if text == "true" || text == "false" => text == "true",
                        other => {
                            return Err(BrokerError::invalid(format!(
                                "x-single-active-consumer must be a boolean, not {}",
                                other.type_name()
                            )));
                        }
                    };
                }
                unknown => {
                    return Err(BrokerError::invalid(format!(
                        "unknown queue argument {unknown}; the x- arguments are {}",
                        KNOWN_ARGUMENTS.join(", ")
                    )));
                }
            }
        }
        if policy.dead_letter_routing_key.is_some() && policy.dead_letter_exchange.is_none() {
            return Err(BrokerError::invalid(
                "x-dead-letter-routing-key needs x-dead-letter-exchange",
            ));
        }
        if policy.overflow == Overflow::RejectPublishDlx && policy.dead_letter_exchange.is_none() {
            return Err(BrokerError::invalid(
                "x-overflow reject-publish-dlx needs x-dead-letter-exchange",
            ));
        }
        Ok(policy)
    }

    /// Whether anything in this policy needs the timer (the delayed set needs it regardless).
    pub(super) fn has_deadlines(&self) -> bool {
        self.message_ttl.is_some() || self.expires.is_some() || self.consumer_timeout.is_some()
    }

    /// Whether a queue holding `ready` messages of `ready_bytes` is over a limit.
    pub(super) fn is_over(&self, ready: u64, ready_bytes: u64) -> bool {
        self.max_length.is_some_and(|max| ready > max)
            || self.max_length_bytes.is_some_and(|max| ready_bytes > max)
    }

    /// Stores the numbers among `arguments` (already [parsed](Self::parse)) as 64-bit
    /// integers, whatever width or string they were given as; everything else is kept as is.
    pub fn canonicalize(arguments: &mut Table) {
        for (name, value) in arguments.iter_mut() {
            if NUMERIC_ARGUMENTS.contains(&name)
                && let Some(number) = whole_number(value)
            {
                *value = i64::try_from(number).map_or(Value::U64(number), Value::I64);
            }
        }
    }
}

/// The queue arguments whose values are numbers.
const NUMERIC_ARGUMENTS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-delivery-limit",
    "x-consumer-timeout",
    "x-max-priority",
    "x-deduplication-window",
];

/// An integer of any width, or a string holding one.
fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::U64(n) => Some(*n),
        Value::String(text) => text.trim().parse().ok(),
        other => other.as_i64().and_then(|n| u64::try_from(n).ok()),
    }
}

/// A string argument.
fn text<'v>(name: &str, value: &'v Value) -> Result<&'v str, BrokerError> {
    value.as_str().ok_or_else(|| {
        BrokerError::invalid(format!(
            "queue argument {name} is {}; it must be a string",
            value.type_name()
        ))
    })
}

/// A whole number in `min..=max`.
fn number(name: &str, value: &Value, min: u64, max: u64) -> Result<u64, BrokerError> {
    let parsed = whole_number(value).ok_or_else(|| {
        BrokerError::invalid(format!(
            "queue argument {name} is {value} ({}); it must be a whole number from {min} to {max}",
            value.type_name()
        ))
    })?;
    if parsed < min || parsed > max {
        return Err(BrokerError::invalid(format!(
            "queue argument {name} is {parsed}; it must be from {min} to {max}"
        )));
    }
    Ok(parsed)
}

/// A duration in whole milliseconds, at least `min`.
fn millis(name: &str, value: &Value, min: u64) -> Result<Duration, BrokerError> {
    number(name, value, min, u64::MAX).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[(&str, &str)]) -> Result<QueuePolicy, String> {
        let table: Table = arguments.iter().copied().collect();
        QueuePolicy::parse(&table).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_may_be_integers_of_any_width_or_strings_and_are_stored_as_64_bit() {
        let mut arguments = Table::new()
            .with("x-max-length", Value::U8(10))
            .with("x-message-ttl", "60000")
            .with("x-max-priority", Value::I16(9))
            .with("x-max-length-bytes", u64::MAX)
            .with("x-dead-letter-exchange", "dlx")
            .with("owner", Value::I8(1));
        let policy = QueuePolicy::parse(&arguments).unwrap();
        assert_eq!(policy.max_length, Some(10));
        assert_eq!(policy.message_ttl, Some(Duration::from_secs(60)));
        assert_eq!(policy.max_priority, Some(9));
        assert_eq!(policy.max_length_bytes, Some(u64::MAX));
        QueuePolicy::canonicalize(&mut arguments);
        let expected = Table::new()
            .with("x-max-length", 10_i64)
            .with("x-message-ttl", 60_000_i64)
            .with("x-max-priority", 9_i64)
            .with("x-max-length-bytes", u64::MAX)
            .with("x-dead-letter-exchange", "dlx")
            .with("owner", Value::I8(1));
        assert_eq!(arguments, expected);
        assert_eq!(QueuePolicy::parse(&arguments).unwrap(), policy);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_with_its_type_named() {
        let error = |arguments: Table| QueuePolicy::parse(&arguments).unwrap_err().to_string();
        let wrong = error(Table::new().with("x-max-length", true));
        assert!(
            wrong.contains("x-max-length is true (a boolean)"),
            "{wrong}"
        );
        let wrong = error(Table::new().with("x-max-length", 1.5_f64));
        assert!(wrong.contains("a float"), "{wrong}");
        let wrong = error(Table::new().with("x-dead-letter-exchange", 5_i32));
        assert!(
            wrong.contains("x-dead-letter-exchange is an integer"),
            "{wrong}"
        );
    }

    #[test]
    fn every_argument_parses_into_its_field() {
        let policy = parse(&[
            ("x-message-ttl", "100"),
            ("x-expires", "2000"),
            ("x-dead-letter-exchange", "dlx"),
            ("x-dead-letter-routing-key", "dead"),
            ("x-max-length", "10"),
            ("x-max-length-bytes", "4096"),
            ("x-overflow", "reject-publish-dlx"),
            ("x-delivery-limit", "3"),
            ("x-consumer-timeout", "30000"),
            ("x-max-priority", "255"),
            ("x-deduplication-window", "60000"),
            ("x-single-active-consumer", "true"),
            ("owner", "team-a"),
        ])
        .unwrap();
        assert_eq!(
            policy,
            QueuePolicy {
                message_ttl: Some(Duration::from_millis(100)),
                expires: Some(Duration::from_secs(2)),
                dead_letter_exchange: Some("dlx".into()),
                dead_letter_routing_key: Some("dead".into()),
                max_length: Some(10),
                max_length_bytes: Some(4096),
                overflow: Overflow::RejectPublishDlx,
                delivery_limit: Some(3),
                consumer_timeout: Some(Duration::from_secs(30)),
                max_priority: Some(255),
                deduplication_window: Some(Duration::from_secs(60)),
                single_active_consumer: true,
            }
        );
        assert_eq!(parse(&[]).unwrap(), QueuePolicy::default());
    }

    #[test]
    fn bad_values_are_refused_with_the_argument_named() {
        for (arguments, expected) in [
            (vec![("x-message-ttl", "-1")], "x-message-ttl"),
            (vec![("x-message-ttl", "soon")], "whole number"),
            (vec![("x-expires", "0")], "from 1"),
            (vec![("x-max-priority", "256")], "from 1 to 255"),
            (vec![("x-max-priority", "0")], "from 1 to 255"),
            (vec![("x-overflow", "drop-tail")], "drop-tail"),
            (vec![("x-delivery-limit", "0")], "x-delivery-limit"),
            (
                vec![("x-message-tll", "5")],
                "unknown queue argument x-message-tll",
            ),
            (
                vec![("x-max-length", "1"), ("x-max-length", "2")],
                "given twice",
            ),
            (
                vec![("x-dead-letter-routing-key", "k")],
                "needs x-dead-letter-exchange",
            ),
            (
                vec![("x-overflow", "reject-publish-dlx")],
                "needs x-dead-letter-exchange",
            ),
        ] {
            let error = parse(&arguments).unwrap_err();
            assert!(error.contains(expected), "{arguments:?}: {error}");
        }
    }
}
