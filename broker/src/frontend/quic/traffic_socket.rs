//! The endpoint's UDP socket, reporting every datagram it sends or receives to the
//! [`BusyWait`]: the one place all of the broker's network traffic passes through. Everything
//! else is the runtime's own socket, unchanged.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use super::busy_wait::BusyWait;

pub(crate) struct TrafficSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    busy_wait: Arc<BusyWait>,
}

impl TrafficSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, busy_wait: Arc<BusyWait>) -> Self {
        TrafficSocket { inner, busy_wait }
    }
}

impl fmt::Debug for TrafficSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrafficSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for TrafficSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let sent = self.inner.try_send(transmit);
        if sent.is_ok() {
            self.busy_wait.saw_traffic();
        }
        sent
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let received = self.inner.poll_recv(cx, bufs, meta);
        if matches!(received, Poll::Ready(Ok(_))) {
            self.busy_wait.saw_traffic();
        }
        received
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
