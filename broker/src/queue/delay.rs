//! When a published message becomes visible in its queues: [`visible_at`].
//!
//! A publisher delays a message with any of:
//! - the property `delay_ms` (milliseconds from publish);
//! - the header `x-delay` (milliseconds from publish, as RabbitMQ's delayed-message plugin);
//! - the header `x-deliver-at` (an absolute time, milliseconds since the Unix epoch).
//!
//! With several, the latest time wins (the message is never visible before any of them). A
//! time in the past means now. The delay is computed once, at publish: a message that is
//! dead-lettered later is not delayed again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::BrokerError;
use crate::message::{Message, Value};

/// The longest delay accepted, so a typo cannot park a message for centuries (~10 years).
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// When `message`, published at `now` (`wall` on the system clock), becomes visible; `None`
/// for at once. Refuses a header that is not a whole number of milliseconds, or a delay
/// beyond [`MAX_DELAY`].
pub fn visible_at(
    message: &Message,
    now: Instant,
    wall: SystemTime,
) -> Result<Option<Instant>, BrokerError> {
    let mut delay: Option<Duration> = message.properties.delay_ms.map(Duration::from_millis);
    let mut later = |candidate: Duration| {
        delay = Some(delay.map_or(candidate, |d| d.max(candidate)));
    };
    for (name, value) in message.headers.iter() {
        match name {
            "x-delay" => later(Duration::from_millis(milliseconds(name, value)?)),
            "x-deliver-at" => {
                let at = UNIX_EPOCH + Duration::from_millis(milliseconds(name, value)?);
                later(at.duration_since(wall).unwrap_or(Duration::ZERO));
            }
            _ => {}
        }
    }
    match delay {
        None => Ok(None),
        Some(delay) if delay.is_zero() => Ok(None),
        Some(delay) if delay > MAX_DELAY => Err(BrokerError::invalid(format!(
            "a delay of {} ms is longer than the most allowed, {} ms",
            delay.as_millis(),
            MAX_DELAY.as_millis()
        ))),
        Some(delay) => Ok(Some(now + delay)),
    }
}

/// A whole number of milliseconds: an integer of any width or a string holding one; a
/// timestamp (AMQP's, in seconds) counts as its milliseconds.
fn milliseconds(name: &str, value: &Value) -> Result<u64, BrokerError> {
    let millis = match value {
        Value::Timestamp(seconds) => seconds.checked_mul(1000),
        Value::U64(n) => Some(*n),
        other => other.coerce_i64().and_then(|n| u64::try_from(n).ok()),
    };
    millis.ok_or_else(|| {
        BrokerError::invalid(format!(
            "header {name} is {value} ({}); it must be a whole number of milliseconds",
            value.type_name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_of_property_relative_and_absolute_delays_wins() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut message = Message::new("k", "b");
        assert_eq!(visible_at(&message, now, wall).unwrap(), None);
        message.properties.delay_ms = Some(50);
        assert_eq!(
            visible_at(&message, now, wall).unwrap(),
            Some(now + Duration::from_millis(50))
        );
        let message = message.with_header("x-delay", 80_i32);
        assert_eq!(
            visible_at(&message, now, wall).unwrap(),
            Some(now + Duration::from_millis(80))
        );
        let message = message.with_header("x-deliver-at", "1000500");
        assert_eq!(
            visible_at(&message, now, wall).unwrap(),
            Some(now + Duration::from_millis(500))
        );
        let past = Message::new("k", "b").with_header("x-deliver-at", "5");
        assert_eq!(visible_at(&past, now, wall).unwrap(), None);
        let at_second = Message::new("k", "b").with_header("x-deliver-at", Value::Timestamp(1_002));
        assert_eq!(
            visible_at(&at_second, now, wall).unwrap(),
            Some(now + Duration::from_secs(2))
        );
    }

    #[test]
    fn malformed_or_huge_delays_are_refused() {
        let now = Instant::now();
        let wall = SystemTime::now();
        for (name, value) in [
            ("x-delay", "-1"),
            ("x-delay", "soon"),
            ("x-deliver-at", "1.5"),
        ] {
            let message = Message::new("k", "b").with_header(name, value);
            let error = visible_at(&message, now, wall).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
        for (name, value) in [
            ("x-delay", Value::I8(-1)),
            ("x-delay", Value::Bool(true)),
            ("x-deliver-at", Value::F64(1.0)),
        ] {
            let message = Message::new("k", "b").with_header(name, value);
            let error = visible_at(&message, now, wall).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
        let far = Message::new("k", "b").with_header("x-delay", u64::MAX.to_string());
        assert!(visible_at(&far, now, wall).is_err());
    }
}
