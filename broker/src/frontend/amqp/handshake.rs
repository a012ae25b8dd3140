//! Opening an AMQP connection: the protocol header, `connection.start` with the server's
//! properties and SASL mechanisms, authentication, `tune` (channel_max, frame_max, heartbeat)
//! and `connection.open` of the virtual host. Everything before `open-ok` runs under the
//! handshake deadline, reads at most one frame of [`FRAME_MIN_SIZE`] bytes at a time, and ends
//! the connection on anything unexpected, so a client that never finishes costs one small
//! buffer until the deadline.
//!
//! What the broker says it is (`product`, `version`) is chosen deliberately: kombu (and so
//! Celery) reads them to decide what `basic.qos global` means. See `docs/amqp.md`.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use switchyard_amqp::method::{
    ConnectionClose, ConnectionOpen, ConnectionOpenOk, ConnectionStart, ConnectionStartOk,
    ConnectionTune, ConnectionTuneOk,
};
use switchyard_amqp::{
    FRAME_MIN_SIZE, Frame, FrameDecoder, Method, PROTOCOL_HEADER, ReplyCode,
    decode_protocol_header, encode_method, values::decode_field_table,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::translate::reply_text;
use crate::auth::Principal;
use crate::config::AmqpSettings;
use crate::session::{Credentials, Sessions, Table, Value};

/// The product name sent in `connection.start` (see `docs/amqp.md` for why not "RabbitMQ").
pub(super) const PRODUCT: &str = "Switchyard";

/// What the connection agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tuning {
    pub channel_max: u16,
    pub frame_max: u32,
    /// Seconds; 0 for none.
    pub heartbeat: u16,
}

/// What the client said it can do (its `capabilities` table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ClientCapabilities {
    pub connection_blocked: bool,
    pub consumer_cancel_notify: bool,
    pub authentication_failure_close: bool,
}

/// An open connection, ready for channels.
#[derive(Debug)]
pub(super) struct Opened {
    pub principal: Principal,
    pub tuning: Tuning,
    pub capabilities: ClientCapabilities,
    /// The client's `product` property, for the log.
    pub client: String,
    /// Bytes read past `connection.open`.
    pub leftover: BytesMut,
}

/// Why a handshake ended without a connection.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("the client sent no AMQP 0-9-1 protocol header ({0})")]
    ProtocolHeader(String),
    #[error("connection lost during the handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

/// A stream during the handshake: whole frames in, methods out.
struct HandshakeStream<'a, S> {
    stream: &'a mut S,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> HandshakeStream<'_, S> {
    async fn read_more(&mut self) -> Result<(), HandshakeError> {
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// The next method on channel 0; heartbeats are skipped, anything else refused.
    async fn read_method(&mut self) -> Result<Method, HandshakeError> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Frame::Method { channel: 0, method })) => return Ok(method),
                Ok(Some(Frame::Heartbeat)) => continue,
                Ok(Some(other)) => {
                    return Err(self
                        .refuse(
                            ReplyCode::UnexpectedFrame,
                            format!("expected a connection method on channel 0, got {other:?}"),
                        )
                        .await);
                }
                Ok(None) => self.read_more().await?,
                Err(error) => {
                    return Err(self.refuse(error.reply_code(), error.to_string()).await);
                }
            }
        }
    }

    async fn write(&mut self, method: Method) -> Result<(), HandshakeError> {
        let mut out = BytesMut::new();
        encode_method(0, &method, &mut out)
            .map_err(|e| HandshakeError::Refused(format!("encoding {}: {e}", method.name())))?;
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends `connection.close` with `code` and returns the error to end with (the socket is
    /// closed by the caller dropping it).
    async fn refuse(&mut self, code: ReplyCode, message: String) -> HandshakeError {
        let close = ConnectionClose {
            reply_code: code.code(),
            reply_text: reply_text(code, &message),
            ..ConnectionClose::default()
        };
        let _ = self.write(close.into()).await;
        HandshakeError::Refused(message)
    }
}

/// Runs the handshake on `stream` from a client at `peer`.
pub(super) async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: IpAddr,
    sessions: &Arc<Sessions>,
    settings: &AmqpSettings,
) -> Result<Opened, HandshakeError> {
    let mut io = HandshakeStream {
        stream,
        buf: BytesMut::with_capacity(512),
        // Until tune-ok, frames are as small as the spec allows.
        decoder: FrameDecoder::new(FRAME_MIN_SIZE),
    };
    loop {
        match decode_protocol_header(&mut io.buf) {
            Ok(Some(())) => break,
            Ok(None) => io.read_more().await?,
            Err(error) => {
                let _ = io.stream.write_all(&PROTOCOL_HEADER).await;
                let _ = io.stream.flush().await;
                return Err(HandshakeError::ProtocolHeader(error.to_string()));
            }
        }
    }
    let anonymous_allowed = sessions.anonymous_allowed();
    io.write(start(anonymous_allowed).into()).await?;
    let start_ok = match io.read_method().await? {
        Method::ConnectionStartOk(start_ok) => start_ok,
        other => {
            return Err(io
                .refuse(
                    ReplyCode::CommandInvalid,
                    format!("expected connection.start-ok, got {}", other.name()),
                )
                .await);
        }
    };
    let capabilities = client_capabilities(&start_ok.client_properties);
    let client = start_ok
        .client_properties
        .get_str("product")
        .unwrap_or("unknown client")
        .chars()
        .take(64)
        .collect();
    let principal = match authenticate(&start_ok, peer, anonymous_allowed, sessions).await {
        Ok(principal) => principal,
        Err(reason) => {
            tracing::warn!(%peer, mechanism = start_ok.mechanism.as_str(), %reason, "AMQP login refused");
            let message = format!(
                "Login was refused using authentication mechanism {}: {reason}",
                start_ok.mechanism
            );
            return Err(io.refuse(ReplyCode::AccessRefused, message).await);
        }
    };
    io.write(
        ConnectionTune {
            channel_max: settings.channel_max,
            frame_max: settings.frame_max,
            heartbeat: settings.heartbeat_s,
        }
        .into(),
    )
    .await?;
    let tune_ok = match io.read_method().await? {
        Method::ConnectionTuneOk(tune_ok) => tune_ok,
        other => {
            return Err(io
                .refuse(
                    ReplyCode::CommandInvalid,
                    format!("expected connection.tune-ok, got {}", other.name()),
                )
                .await);
        }
    };
    let tuning = match negotiate(&tune_ok, settings) {
        Ok(tuning) => tuning,
        Err(message) => return Err(io.refuse(ReplyCode::NotAllowed, message).await),
    };
    io.decoder = FrameDecoder::new(tuning.frame_max);
    let open = match io.read_method().await? {
        Method::ConnectionOpen(open) => open,
        other => {
            return Err(io
                .refuse(
                    ReplyCode::CommandInvalid,
                    format!("expected connection.open, got {}", other.name()),
                )
                .await);
        }
    };
    if let Err(message) = check_virtual_host(&open) {
        return Err(io.refuse(ReplyCode::NotAllowed, message).await);
    }
    io.write(ConnectionOpenOk::default().into()).await?;
    Ok(Opened {
        principal,
        tuning,
        capabilities,
        client,
        leftover: io.buf,
    })
}

/// `connection.start`: version 0-9, what the broker is and can do, its SASL mechanisms.
fn start(anonymous_allowed: bool) -> ConnectionStart {
    let capabilities = [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ]
    .into_iter()
    .fold(Table::new(), |table, name| table.with(name, true));
    let server_properties = Table::new()
        .with("product", PRODUCT)
        .with("version", env!("CARGO_PKG_VERSION"))
        .with("platform", "Rust")
        .with("copyright", "the Switchyard authors")
        .with(
            "information",
            "Switchyard: a message broker whose exchanges route through WebAssembly plugins",
        )
        .with("cluster_name", "switchyard")
        .with("capabilities", Value::Table(capabilities));
    let mechanisms = if anonymous_allowed {
        "PLAIN AMQPLAIN ANONYMOUS"
    } else {
        "PLAIN AMQPLAIN"
    };
    ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties,
        mechanisms: Bytes::from_static(mechanisms.as_bytes()),
        locales: Bytes::from_static(b"en_US"),
    }
}

fn client_capabilities(properties: &Table) -> ClientCapabilities {
    let Some(Value::Table(capabilities)) = properties.get("capabilities") else {
        return ClientCapabilities::default();
    };
    let flag = |name: &str| capabilities.get_bool(name).unwrap_or(false);
    ClientCapabilities {
        connection_blocked: flag("connection.blocked"),
        consumer_cancel_notify: flag("consumer_cancel_notify"),
        authentication_failure_close: flag("authentication_failure_close"),
    }
}

/// The user name and password a SASL response carries, or `None` for ANONYMOUS.
fn sasl_credentials(mechanism: &str, response: &Bytes) -> Result<Option<(String, String)>, String> {
    match mechanism {
        "PLAIN" => {
            // authzid NUL authcid NUL password; the authorisation id is not used.
            let mut parts = response.split(|&b| b == 0);
            let (_authzid, user, password) = (parts.next(), parts.next(), parts.next());
            match (user, password, parts.next()) {
                (Some(user), Some(password), None) => Ok(Some((
                    String::from_utf8_lossy(user).into_owned(),
                    String::from_utf8_lossy(password).into_owned(),
                ))),
                _ => Err("a PLAIN response is `\\0user\\0password`".into()),
            }
        }
        "AMQPLAIN" => {
            // A field table without its length prefix: LOGIN and PASSWORD.
            let mut framed = BytesMut::with_capacity(4 + response.len());
            framed.extend_from_slice(
                &u32::try_from(response.len())
                    .unwrap_or(u32::MAX)
                    .to_be_bytes(),
            );
            framed.extend_from_slice(response);
            let table = decode_field_table(&mut framed.freeze())
                .map_err(|e| format!("an AMQPLAIN response is a field table: {e}"))?;
            let text = |name: &str| match table.get(name) {
                Some(Value::String(text)) => Some(text.to_string()),
                Some(Value::Bytes(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            };
            match (text("LOGIN"), text("PASSWORD")) {
                (Some(user), Some(password)) => Ok(Some((user, password))),
                _ => Err("an AMQPLAIN response needs LOGIN and PASSWORD".into()),
            }
        }
        "ANONYMOUS" => Ok(None),
        other => Err(format!(
            "unknown mechanism {other:?}: use PLAIN, AMQPLAIN or (where allowed) ANONYMOUS"
        )),
    }
}

async fn authenticate(
    start_ok: &ConnectionStartOk,
    peer: IpAddr,
    anonymous_allowed: bool,
    sessions: &Arc<Sessions>,
) -> Result<Principal, String> {
    let credentials = sasl_credentials(&start_ok.mechanism, &start_ok.response)?;
    if anonymous_allowed {
        // Development mode: RabbitMQ's default account works from this machine, as it does
        // on a fresh RabbitMQ, and so does ANONYMOUS; nothing else does.
        return match credentials {
            None => Ok(Principal::Anonymous),
            Some((user, password)) if user == "guest" && password == "guest" => {
                if peer.is_loopback() {
                    Ok(Principal::Anonymous)
                } else {
                    Err("user guest may connect only from localhost".into())
                }
            }
            Some(_) => Err(
                "this broker has no users configured: connect as guest/guest from localhost, or with ANONYMOUS"
                    .into(),
            ),
        };
    }
    let Some((user, password)) = credentials else {
        return Err("this broker requires a user name and password".into());
    };
    let _turn = sessions.admission().password_check().await;
    let credentials = Credentials::Password { user, password };
    let checked = {
        let sessions = Arc::clone(sessions);
        tokio::task::spawn_blocking(move || sessions.authenticate(&credentials)).await
    };
    match checked {
        Ok(Ok(principal)) => Ok(principal),
        Ok(Err(error)) => Err(error.to_string()),
        Err(error) => Err(format!("the password check failed: {error}")),
    }
}

fn negotiate(tune_ok: &ConnectionTuneOk, settings: &AmqpSettings) -> Result<Tuning, String> {
    let channel_max = match tune_ok.channel_max {
        0 => settings.channel_max,
        n if n > settings.channel_max => {
            return Err(format!(
                "channel_max {n} is more than the {} offered",
                settings.channel_max
            ));
        }
        n => n,
    };
    let frame_max = match tune_ok.frame_max {
        0 => settings.frame_max,
        n if n > settings.frame_max => {
            return Err(format!(
                "frame_max {n} is more than the {} offered",
                settings.frame_max
            ));
        }
        n if n < FRAME_MIN_SIZE => {
            return Err(format!(
                "frame_max {n} is less than AMQP's minimum, {FRAME_MIN_SIZE}"
            ));
        }
        n => n,
    };
    Ok(Tuning {
        channel_max,
        frame_max,
        heartbeat: tune_ok.heartbeat,
    })
}

fn check_virtual_host(open: &ConnectionOpen) -> Result<(), String> {
    match open.virtual_host.as_str() {
        "/" | "" => Ok(()),
        other => Err(format!(
            "virtual host {other:?} does not exist: this broker has only \"/\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_amqplain_responses_carry_the_user_and_password() {
        assert_eq!(
            sasl_credentials("PLAIN", &Bytes::from_static(b"\0guest\0guest")),
            Ok(Some(("guest".into(), "guest".into())))
        );
        assert!(sasl_credentials("PLAIN", &Bytes::from_static(b"guest")).is_err());
        let mut table = BytesMut::new();
        switchyard_amqp::values::encode_field_table(
            &Table::new().with("LOGIN", "app").with("PASSWORD", "pw"),
            &mut table,
        )
        .unwrap();
        let without_length = table.split_off(4).freeze();
        assert_eq!(
            sasl_credentials("AMQPLAIN", &without_length),
            Ok(Some(("app".into(), "pw".into())))
        );
        assert_eq!(sasl_credentials("ANONYMOUS", &Bytes::new()), Ok(None));
        assert!(sasl_credentials("EXTERNAL", &Bytes::new()).is_err());
    }

    #[test]
    fn the_client_may_lower_the_limits_but_not_raise_them() {
        let settings = AmqpSettings::default();
        let tune = |channel_max, frame_max, heartbeat| ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat,
        };
        assert_eq!(
            negotiate(&tune(0, 0, 0), &settings),
            Ok(Tuning {
                channel_max: settings.channel_max,
                frame_max: settings.frame_max,
                heartbeat: 0
            })
        );
        assert_eq!(
            negotiate(&tune(10, 8192, 5), &settings).unwrap().frame_max,
            8192
        );
        assert!(negotiate(&tune(0, settings.frame_max + 1, 0), &settings).is_err());
        assert!(negotiate(&tune(0, 1000, 0), &settings).is_err());
        assert!(negotiate(&tune(u16::MAX, 0, 0), &settings).is_err());
    }
}
