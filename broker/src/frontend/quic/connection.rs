//! One client connection: the handshake on the control stream, then accepting the client's
//! other streams and handing each to its handler, under a stream limit that grows as the
//! client opens more (`stream_limit`). Until its Hello is authenticated a connection may
//! buffer little (a small receive window) and has `hello_timeout_ms` to send it; its place
//! under the connection limits is held for its whole life (`session::admission`). When the connection ends, its exclusive
//! queues go with it (its consumers' unacked messages are requeued by their stream tasks).

use std::sync::Arc;
use std::time::Duration;

use switchyard_client::framed::{FramedRecv, FramedSend};
use switchyard_protocol::{
    Auth, ControlDown, ControlUp, ErrorCode, StreamKind, Welcome, WireError, negotiate,
};
use tracing::Instrument;

use super::stream_limit::{BidiStreamLimit, INITIAL_BIDI_STREAMS, MAX_BIDI_STREAMS};
use super::{Shared, consume, control, publish};
use crate::session::{Credentials, Session};

/// Closes the connection's session when the connection ends, however it ends: its exclusive
/// queues go with it.
struct SessionGuard(Arc<Session>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let session = &self.0;
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| session.close()),
            Err(_) => session.close(),
        }
    }
}

/// The connection-level receive window before the client has authenticated.
pub(crate) const PRE_AUTH_RECEIVE_WINDOW: u32 = 256 << 10;

/// The largest Hello frame accepted (names, credentials): 64 KiB.
const MAX_HELLO_BYTES: u32 = 64 << 10;

/// The connection-level receive window after it has.
const RECEIVE_WINDOW: u32 = 16 << 20;

pub(crate) async fn serve(incoming: quinn::Incoming, id: u64, shared: Arc<Shared>) {
    let remote = incoming.remote_address();
    let span = tracing::info_span!("connection", id, %remote);
    async move {
        let slot = shared.sessions.admission().admit(remote.ip());
        let connection = match incoming.await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::debug!(%error, "handshake failed");
                return;
            }
        };
        let _slot = match slot {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = super::wire_error::wire_error(&refusal);
                tracing::warn!(reason = %reason.message, "connection refused");
                connection.close(reason.code.as_u16().into(), reason.message.as_bytes());
                return;
            }
        };
        tracing::debug!("connected");
        if let Err(reason) = run(&connection, id, &shared).await {
            tracing::debug!(code = reason.code.as_u16(), reason = %reason.message, "closing connection");
            // The code and reason travel in the close itself, so the client learns why even if
            // it has not read a `Closing` frame yet.
            connection.close(reason.code.as_u16().into(), reason.message.as_bytes());
        }
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

fn violation(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::ProtocolViolation, message)
}

async fn run(
    connection: &quinn::Connection,
    id: u64,
    shared: &Arc<Shared>,
) -> Result<(), WireError> {
    let max_frame = shared.config.max_frame_bytes;
    let mut streams = BidiStreamLimit::new(INITIAL_BIDI_STREAMS, MAX_BIDI_STREAMS);
    let hello_timeout = Duration::from_millis(shared.config.limits.hello_timeout_ms);
    let opening = async {
        let (send, recv) = connection
            .accept_bi()
            .await
            .map_err(|e| violation(format!("no control stream: {e}")))?;
        let send = FramedSend::new(send, max_frame);
        // A Hello is small: before authentication nobody gets to send megabytes.
        let mut recv = FramedRecv::new(recv, MAX_HELLO_BYTES);
        match recv.stream_kind().await {
            Ok(Some(StreamKind::Control)) => {}
            _ => return Err(violation("the first stream must be the control stream")),
        }
        match recv.next::<ControlUp>().await {
            Ok(Some(ControlUp::Hello(hello))) => Ok((send, recv, hello)),
            Ok(_) => Err(violation("the control stream must begin with Hello")),
            Err(e) => Err(WireError::new(e.error_code(), e.to_string())),
        }
    };
    let (mut send, mut recv, hello) = tokio::time::timeout(hello_timeout, opening)
        .await
        .map_err(|_| violation(format!("no Hello within {hello_timeout:?}")))??;
    // Counted until the connection ends; the limit cannot need raising for one stream.
    let (_control_stream, _) = streams.accepted();
    let Some(version) = negotiate(&hello.versions) else {
        return refuse(
            &mut send,
            WireError::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this broker speaks protocol versions {:?}, the client offered {:?}",
                    switchyard_protocol::SUPPORTED_VERSIONS,
                    hello.versions
                ),
            ),
        )
        .await;
    };
    let client = loggable(&hello.client_name);
    let authenticated = {
        // Password checks are costly on purpose: a few at a time (see `admission.rs`).
        let _turn = match hello.auth {
            Auth::Password { .. } => Some(shared.sessions.admission().password_check().await),
            _ => None,
        };
        let credentials = match &hello.auth {
            Auth::Anonymous => Credentials::Anonymous,
            Auth::Password { user, password } => Credentials::Password {
                user: user.clone(),
                password: password.clone(),
            },
            Auth::Token(token) => Credentials::Token(token.clone()),
        };
        tokio::task::block_in_place(|| shared.sessions.authenticate(&credentials))
    };
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(client = client.as_str(), %error, "authentication refused");
            return refuse(
                &mut send,
                WireError::new(ErrorCode::AccessRefused, error.to_string()),
            )
            .await;
        }
    };
    tracing::debug!(client = client.as_str(), version, ?principal, "hello");
    // Closed (its exclusive queues deleted) however the connection ends from here on.
    let session = SessionGuard(Arc::new(shared.sessions.open(principal, id)));
    connection.set_receive_window(RECEIVE_WINDOW.into());
    recv.set_max_frame(max_frame);
    send.send(&ControlDown::Welcome(Welcome {
        version,
        server_name: format!("switchyard/{}", env!("CARGO_PKG_VERSION")),
        max_frame,
        connection_id: id,
    }))
    .await
    .map_err(|e| violation(e.to_string()))?;

    let control_task = tokio::spawn(
        control::serve(send, recv, Arc::clone(&session.0)).instrument(tracing::Span::current()),
    );
    // Publish answers this connection owes its client, over all its publish streams.
    let unread_answers = Arc::new(tokio::sync::Semaphore::new(
        shared
            .config
            .limits
            .max_unread_answers_per_connection
            .max(1) as usize,
    ));
    let mut shutdown = shared.shutdown.clone();
    let outcome = loop {
        tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let (open, raised) = streams.accepted();
                    if let Some(limit) = raised {
                        tracing::debug!(limit, "raising the stream limit");
                        connection.set_max_concurrent_bi_streams(limit.into());
                    }
                    let shared = Arc::clone(shared);
                    let session = Arc::clone(&session.0);
                    let quic = connection.clone();
                    let unread_answers = Arc::clone(&unread_answers);
                    tokio::spawn(
                        async move {
                            serve_stream(send, recv, session, quic, shared, unread_answers).await;
                            drop(open);
                        }
                        .instrument(tracing::Span::current()),
                    );
                }
                Err(_) => break Ok(()),
            },
            _ = shutdown.changed() => {
                break Err(WireError::new(ErrorCode::ConnectionForced, "the broker is shutting down"));
            }
        }
    };
    control_task.abort();
    outcome
}

/// A client-chosen name as it may appear in the log: at most 128 characters, control
/// characters escaped.
fn loggable(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(128)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().nth(128).is_some() {
        shown.push('…');
    }
    shown
}

/// Tells the client why before the connection is closed with `error`.
async fn refuse(send: &mut FramedSend, error: WireError) -> Result<(), WireError> {
    let _ = send
        .send(&ControlDown::Closing {
            reason: error.clone(),
        })
        .await;
    Err(error)
}

async fn serve_stream(
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    session: Arc<Session>,
    quic: quinn::Connection,
    shared: Arc<Shared>,
    unread_answers: Arc<tokio::sync::Semaphore>,
) {
    let max_frame = shared.config.max_frame_bytes;
    let send = FramedSend::new(send, max_frame);
    let mut recv = FramedRecv::new(recv, max_frame);
    match recv.stream_kind().await {
        Ok(Some(StreamKind::Publish)) => {
            publish::serve(send, recv, quic, &session, &shared, unread_answers).await
        }
        Ok(Some(StreamKind::Consume)) => consume::serve(send, recv, quic, &session, &shared).await,
        Ok(Some(StreamKind::Control)) => {
            tracing::debug!("a second control stream; ignoring it");
        }
        Ok(None) => {}
        Err(error) => {
            tracing::debug!(%error, "bad stream header");
            quic.close(
                ErrorCode::ProtocolViolation.as_u16().into(),
                b"unknown stream kind",
            );
        }
    }
}
