//! Connection-level backpressure as an event: whether publishers are held back now, and a wait
//! for the change. Each frontend tells its clients in its own way (QUIC's `Blocked` and
//! `Unblocked` frames; AMQP's `connection.blocked` and `connection.unblocked`) and stops
//! reading their publishes meanwhile.
//!
//! Publishers are held back while the bytes of queued messages are above the memory
//! watermark (`memory_high_watermark_bytes`); the queues' memory gauge signals each crossing,
//! so nothing polls.

use tokio::sync::watch;

/// The state of the backpressure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pressure {
    /// Publish freely.
    Clear,
    /// Stop publishing until [`Pressure::Clear`]; `reason` says why, for the client.
    Blocked { reason: String },
}

/// One frontend connection's view of the backpressure.
#[derive(Debug, Clone)]
pub struct Backpressure {
    above: watch::Receiver<bool>,
    watermark: u64,
}

impl Backpressure {
    pub(super) fn new(above: watch::Receiver<bool>, watermark: u64) -> Backpressure {
        Backpressure { above, watermark }
    }

    /// The state now.
    pub fn now(&self) -> Pressure {
        self.pressure(*self.above.borrow())
    }

    /// Waits for the next change of state and answers the new one. Pending for ever once the
    /// broker is gone.
    pub async fn changed(&mut self) -> Pressure {
        if self.above.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        let above = *self.above.borrow_and_update();
        self.pressure(above)
    }

    /// Returns once publishers are no longer held back (at once if they are not).
    pub async fn cleared(&mut self) {
        // An error means the broker is gone: nothing will block anyone any more.
        let _ = self.above.wait_for(|above| !above).await;
    }

    fn pressure(&self, above: bool) -> Pressure {
        if above {
            Pressure::Blocked {
                reason: format!(
                    "queued messages exceed the memory watermark of {} bytes",
                    self.watermark
                ),
            }
        } else {
            Pressure::Clear
        }
    }
}
