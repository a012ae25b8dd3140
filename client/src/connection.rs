//! A connection to the broker: the QUIC connection, the handshake, and the control stream
//! with its request/reply bookkeeping. Publishers and consumers open their own streams on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_protocol::{
    Auth, Binding, ControlDown, ControlOk, ControlOp, ControlRequest, ControlUp, DEFAULT_MAX_FRAME,
    DestinationKind, ExchangeInfo, Hello, PluginInfo, QueueInfo, SUPPORTED_VERSIONS, StreamKind,
    Welcome,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;
use crate::framed::{FramedRecv, FramedSend};
use crate::tls::{Trust, client_config};

/// How to reach and authenticate to a broker.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub addr: SocketAddr,
    /// The name the certificate is checked against (with [`Trust::CaFile`]).
    pub server_name: String,
    pub trust: Trust,
    pub auth: Auth,
    /// Shown in the broker's logs.
    pub client_name: String,
}

impl ConnectOptions {
    /// Options for `addr`, trusting as `trust`, anonymous.
    pub fn new(addr: SocketAddr, trust: Trust) -> Self {
        ConnectOptions {
            addr,
            server_name: "localhost".into(),
            trust,
            auth: Auth::Anonymous,
            client_name: format!("switchyard-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

type Pending = HashMap<u64, oneshot::Sender<Result<ControlOk, ClientError>>>;

/// A live connection. Cheap to clone; all clones share the QUIC connection.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    quic: quinn::Connection,
    /// The connection's own endpoint (and socket), which lives as long as it does.
    endpoint: quinn::Endpoint,
    requests: mpsc::Sender<(ControlOp, oneshot::Sender<Result<ControlOk, ClientError>>)>,
    welcome: Welcome,
}

/// Options of `exchange declare`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeOptions {
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Vec<(String, String)>,
}

/// Options of `queue declare`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Vec<(String, String)>,
}

impl Connection {
    /// Connects, negotiates the protocol version and authenticates.
    pub async fn connect(options: ConnectOptions) -> Result<Connection, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            addr: options.addr.to_string(),
            reason,
        };
        let tls = client_config(&options.trust)?;
        let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic_tls));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(5)));
        config.transport_config(Arc::new(transport));
        let bind: SocketAddr = if options.addr.is_ipv6() {
            "[::]:0".parse().expect("literal address")
        } else {
            "0.0.0.0:0".parse().expect("literal address")
        };
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| connect_error(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let quic = endpoint
            .connect(options.addr, &options.server_name)
            .map_err(|e| connect_error(e.to_string()))?
            .await
            .map_err(|e| connect_error(e.to_string()))?;

        let (send, recv) = quic.open_bi().await.map_err(ClientError::closed)?;
        let mut send = FramedSend::new(send, DEFAULT_MAX_FRAME);
        let mut recv = FramedRecv::new(recv, DEFAULT_MAX_FRAME);
        send.push_stream_kind(StreamKind::Control);
        send.send(&ControlUp::Hello(Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client_name: options.client_name.clone(),
            auth: options.auth.clone(),
        }))
        .await?;
        let welcome = match recv.next::<ControlDown>().await? {
            Some(ControlDown::Welcome(welcome)) => welcome,
            Some(ControlDown::Closing { reason }) => return Err(ClientError::Refused(reason)),
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
            None => return Err(ClientError::closed("the broker closed the control stream")),
        };
        let (requests, queue) = mpsc::channel(256);
        tokio::spawn(run_control(send, recv, queue));
        Ok(Connection {
            inner: Arc::new(Inner {
                quic,
                endpoint,
                requests,
                welcome,
            }),
        })
    }

    /// The underlying QUIC connection (for tests and diagnostics).
    pub fn quic(&self) -> &quinn::Connection {
        &self.inner.quic
    }

    /// The broker's identifier for this connection.
    pub fn id(&self) -> u64 {
        self.inner.welcome.connection_id
    }

    pub fn server_name(&self) -> &str {
        &self.inner.welcome.server_name
    }

    pub(crate) fn max_frame(&self) -> u32 {
        self.inner.welcome.max_frame
    }

    pub(crate) async fn open_stream(
        &self,
        kind: StreamKind,
    ) -> Result<(FramedSend, FramedRecv), ClientError> {
        let (send, recv) = self
            .inner
            .quic
            .open_bi()
            .await
            .map_err(ClientError::closed)?;
        let mut send = FramedSend::new(send, self.max_frame());
        send.push_stream_kind(kind);
        Ok((send, FramedRecv::new(recv, self.max_frame())))
    }

    /// Closes the connection and waits (briefly) until the broker has been told, so it
    /// requeues this connection's unacked messages at once rather than after a timeout.
    /// Outstanding work fails with [`ClientError::Closed`].
    pub async fn close(&self) {
        self.inner.quic.close(0u32.into(), b"client closed");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.endpoint.wait_idle()).await;
    }

    /// Sends one control request and waits for its reply.
    pub async fn request(&self, op: ControlOp) -> Result<ControlOk, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send((op, reply))
            .await
            .map_err(|_| ClientError::closed("the control stream is gone"))?;
        answer
            .await
            .map_err(|_| ClientError::closed("the control stream is gone"))?
    }

    pub async fn declare_exchange(
        &self,
        name: &str,
        kind: &str,
        options: ExchangeOptions,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::DeclareExchange {
            name: name.into(),
            kind: kind.into(),
            durable: options.durable,
            auto_delete: options.auto_delete,
            internal: options.internal,
            arguments: options.arguments,
            passive: false,
        })
        .await
        .map(drop)
    }

    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), ClientError> {
        self.request(ControlOp::DeleteExchange {
            name: name.into(),
            if_unused,
        })
        .await
        .map(drop)
    }

    /// Declares a queue; returns its name (chosen by the broker when `name` is empty).
    pub async fn declare_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<String, ClientError> {
        let reply = self
            .request(ControlOp::DeclareQueue {
                name: name.into(),
                durable: options.durable,
                exclusive: options.exclusive,
                auto_delete: options.auto_delete,
                arguments: options.arguments,
                passive: false,
            })
            .await?;
        match reply {
            ControlOk::QueueDeclared { name, .. } => Ok(name),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, ClientError> {
        match self
            .request(ControlOp::DeleteQueue {
                name: name.into(),
                if_unused,
                if_empty,
            })
            .await?
        {
            ControlOk::Deleted { messages } => Ok(messages),
            other => Err(unexpected(other)),
        }
    }

    /// Drops a queue's ready messages; returns how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64, ClientError> {
        match self
            .request(ControlOp::PurgeQueue { name: name.into() })
            .await?
        {
            ControlOk::Purged { messages } => Ok(messages),
            other => Err(unexpected(other)),
        }
    }

    /// Binds queue `queue` to `exchange` with `key` (and arguments for e.g. `headers`).
    pub async fn bind_queue(
        &self,
        exchange: &str,
        queue: &str,
        key: &str,
        arguments: Vec<(String, String)>,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::Bind(binding(
            exchange,
            queue,
            DestinationKind::Queue,
            key,
            arguments,
        )))
        .await
        .map(drop)
    }

    pub async fn unbind_queue(
        &self,
        exchange: &str,
        queue: &str,
        key: &str,
        arguments: Vec<(String, String)>,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::Unbind(binding(
            exchange,
            queue,
            DestinationKind::Queue,
            key,
            arguments,
        )))
        .await
        .map(drop)
    }

    /// Binds exchange `destination` to exchange `source`.
    pub async fn bind_exchange(
        &self,
        source: &str,
        destination: &str,
        key: &str,
        arguments: Vec<(String, String)>,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::Bind(binding(
            source,
            destination,
            DestinationKind::Exchange,
            key,
            arguments,
        )))
        .await
        .map(drop)
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, ClientError> {
        match self.request(ControlOp::ListQueues).await? {
            ControlOk::Queues(queues) => Ok(queues),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_exchanges(&self) -> Result<Vec<ExchangeInfo>, ClientError> {
        match self.request(ControlOp::ListExchanges).await? {
            ControlOk::Exchanges(exchanges) => Ok(exchanges),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_plugins(&self) -> Result<Vec<PluginInfo>, ClientError> {
        match self.request(ControlOp::ListPlugins).await? {
            ControlOk::Plugins(plugins) => Ok(plugins),
            other => Err(unexpected(other)),
        }
    }

    pub async fn queue_info(&self, name: &str) -> Result<QueueInfo, ClientError> {
        match self
            .request(ControlOp::QueueInfo { name: name.into() })
            .await?
        {
            ControlOk::Queue(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }
}

fn binding(
    source: &str,
    destination: &str,
    destination_kind: DestinationKind,
    key: &str,
    arguments: Vec<(String, String)>,
) -> Binding {
    Binding {
        source: source.into(),
        destination: destination.into(),
        destination_kind,
        key: key.into(),
        arguments,
    }
}

fn unexpected(reply: ControlOk) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

/// Writes requests and matches replies to them by id, until either side goes away.
async fn run_control(
    mut send: FramedSend,
    mut recv: FramedRecv,
    mut requests: mpsc::Receiver<(ControlOp, oneshot::Sender<Result<ControlOk, ClientError>>)>,
) {
    let mut pending: Pending = HashMap::new();
    let mut next_id = 1u64;
    let failure = loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((op, reply)) = request else { break ClientError::closed("connection dropped") };
                let id = next_id;
                next_id += 1;
                pending.insert(id, reply);
                if let Err(e) = send.send(&ControlUp::Request(ControlRequest { id, op })).await {
                    break ClientError::from(e);
                }
            }
            frame = recv.next::<ControlDown>() => match frame {
                Ok(Some(ControlDown::Reply(reply))) => {
                    if let Some(waiter) = pending.remove(&reply.id) {
                        let _ = waiter.send(reply.result.map_err(ClientError::Refused));
                    }
                }
                Ok(Some(ControlDown::Closing { reason })) => break ClientError::Refused(reason),
                Ok(Some(other)) => break ClientError::Protocol(format!("unexpected control frame {other:?}")),
                Ok(None) => break ClientError::closed("the broker closed the control stream"),
                Err(e) => break ClientError::from(e),
            }
        }
    };
    for (_, waiter) in pending {
        let _ = waiter.send(Err(failure.clone()));
    }
}
