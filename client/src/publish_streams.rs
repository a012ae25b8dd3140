//! A session's publish streams, kept so that closing the connection loses nothing in flight.
//!
//! Closing a QUIC connection discards whatever its streams have not delivered yet, so a
//! publisher that sends unconfirmed publishes (or a responder its last reply) and then closes
//! would lose the tail silently. [`Connection::close`](crate::Connection::close) therefore
//! first calls [`PublishStreams::finish_all`]: every publish stream is flushed and finished,
//! and the close waits until the broker has finished its side of each, which it does only
//! after it has read the stream to its end and handled every publish on it (AMQP's
//! `connection.close` gives the same promise).
//!
//! A stream's send side is shared between its [`Publisher`](crate::Publisher), which writes
//! under the lock, and this registry, which takes it out to finish it; once taken, the
//! publisher's next write fails as closed.

use std::sync::{Arc, Weak};

use tokio::task::JoinHandle;

use crate::framed::FramedSend;

/// The send side of a publish stream; `None` once the stream was finished for a close.
pub(crate) type SharedSend = Arc<tokio::sync::Mutex<Option<FramedSend>>>;

#[derive(Debug, Default)]
pub(crate) struct PublishStreams {
    open: parking_lot::Mutex<Vec<OpenStream>>,
}

#[derive(Debug)]
struct OpenStream {
    /// Weak: a dropped publisher's stream is finished by quinn when its send side drops.
    send: Weak<tokio::sync::Mutex<Option<FramedSend>>>,
    /// Reads the broker's answers; ends when the broker finishes its side (or the stream fails).
    reader: JoinHandle<()>,
}

impl PublishStreams {
    /// Keeps a new stream (and forgets those whose reader has ended).
    pub(crate) fn register(&self, send: &SharedSend, reader: JoinHandle<()>) {
        let mut open = self.open.lock();
        open.retain(|stream| !stream.reader.is_finished());
        open.push(OpenStream {
            send: Arc::downgrade(send),
            reader,
        });
    }

    /// Flushes and finishes every stream, then waits until the broker has ended each.
    pub(crate) async fn finish_all(&self) {
        let streams = std::mem::take(&mut *self.open.lock());
        for stream in &streams {
            let Some(send) = stream.send.upgrade() else {
                continue;
            };
            // Waits for a publish being written by another task to complete.
            let taken = send.lock().await.take();
            if let Some(mut send) = taken {
                // A write cancelled earlier may have left bytes behind: they go first.
                let _ = send.flush().await;
                send.finish();
            }
        }
        for stream in streams {
            let _ = stream.reader.await;
        }
    }
}
