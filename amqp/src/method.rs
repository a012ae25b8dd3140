//! Every method of AMQP 0-9-1 (with RabbitMQ's extensions: `basic.nack`, `confirm`,
//! `connection.blocked`/`unblocked`, `connection.update-secret`, `exchange.bind`/`unbind`)
//! in both directions, as one table from which a macro generates each method's struct, its
//! decoder and its encoder, and the [`Method`] enum over them all.
//!
//! Fields the spec reserves (the old access `ticket`, `connection.open`'s `capabilities` and
//! `insist`, `channel.open`'s `out_of_band`, …) are kept under their 0-8 names rather than
//! dropped, so that any method re-encodes to exactly the bytes it was decoded from; a frontend
//! ignores them and builds methods with `..Default::default()`. Short strings are `String`
//! (a name that is not UTF-8 is a syntax error); long strings are zero-copy `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_value::Table;

use crate::reader::{Reader, SyntaxError};
use crate::writer::{EncodeError, Writer};

/// The Rust type of each AMQP field domain in the table below.
macro_rules! field_type {
    (octet) => {
        u8
    };
    (short) => {
        u16
    };
    (long) => {
        u32
    };
    (longlong) => {
        u64
    };
    (bit) => {
        bool
    };
    (shortstr) => {
        String
    };
    (longstr) => {
        Bytes
    };
    (table) => {
        Table
    };
}

macro_rules! methods {
    ($(
        $(#[$doc:meta])*
        $variant:ident = ($class_id:literal, $method_id:literal, $name:literal) {
            $($field:ident: $kind:ident),* $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Default)]
            pub struct $variant {
                $(pub $field: field_type!($kind),)*
            }

            impl $variant {
                pub const CLASS_ID: u16 = $class_id;
                pub const METHOD_ID: u16 = $method_id;

                // Fields are read in the order written: a struct expression evaluates its
                // fields in source order.
                #[allow(unused_variables)]
                fn read_fields(reader: &mut Reader) -> Result<Self, SyntaxError> {
                    Ok(Self { $($field: reader.$kind()?,)* })
                }

                #[allow(unused_variables)]
                fn write_fields(&self, writer: &mut Writer<'_>) -> Result<(), EncodeError> {
                    $(writer.$kind(&self.$field)?;)*
                    Ok(())
                }
            }

            impl From<$variant> for Method {
                fn from(method: $variant) -> Method {
                    Method::$variant(method)
                }
            }
        )*

        /// One AMQP method with its arguments.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Method {
            $($(#[$doc])* $variant($variant),)*
        }

        impl Method {
            pub fn class_id(&self) -> u16 {
                match self {
                    $(Method::$variant(_) => $class_id,)*
                }
            }

            pub fn method_id(&self) -> u16 {
                match self {
                    $(Method::$variant(_) => $method_id,)*
                }
            }

            /// The spec's name, `class.method` (`"basic.publish"`), for logs and errors.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Method::$variant(_) => $name,)*
                }
            }

            /// The spec's name of a method by its ids, if AMQP 0-9-1 has one.
            pub fn name_of(class_id: u16, method_id: u16) -> Option<&'static str> {
                match (class_id, method_id) {
                    $(($class_id, $method_id) => Some($name),)*
                    _ => None,
                }
            }

            /// Decodes a method frame's whole payload: class id, method id, arguments.
            pub fn decode(payload: Bytes) -> Result<Method, SyntaxError> {
                let mut reader = Reader::new(payload);
                let class_id = reader.short()?;
                let method_id = reader.short()?;
                let method = match (class_id, method_id) {
                    $(($class_id, $method_id) => Method::$variant($variant::read_fields(&mut reader)?),)*
                    _ => return Err(SyntaxError::UnknownMethod { class_id, method_id }),
                };
                reader.finish("a method")?;
                Ok(method)
            }

            /// Appends the method frame's payload; on failure `buf` is as it was.
            pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                let start = buf.len();
                buf.put_u16(self.class_id());
                buf.put_u16(self.method_id());
                let mut writer = Writer::new(buf);
                let result = match self {
                    $(Method::$variant(method) => method.write_fields(&mut writer),)*
                };
                if result.is_err() {
                    buf.truncate(start);
                }
                result
            }
        }
    };
}

impl Method {
    /// Whether a content header and body frames follow this method (publish, and the three
    /// ways a message comes back: deliver, get-ok, return).
    pub fn carries_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_)
                | Method::BasicReturn(_)
                | Method::BasicDeliver(_)
                | Method::BasicGetOk(_)
        )
    }
}

methods! {
    /// Server → client: the first method; versions, server properties, SASL mechanisms.
    ConnectionStart = (10, 10, "connection.start") {
        version_major: octet,
        version_minor: octet,
        server_properties: table,
        mechanisms: longstr,
        locales: longstr,
    }
    /// Client → server: client properties, the chosen mechanism and its response.
    ConnectionStartOk = (10, 11, "connection.start-ok") {
        client_properties: table,
        mechanism: shortstr,
        response: longstr,
        locale: shortstr,
    }
    /// Server → client: a SASL challenge.
    ConnectionSecure = (10, 20, "connection.secure") { challenge: longstr }
    /// Client → server: the answer to a SASL challenge.
    ConnectionSecureOk = (10, 21, "connection.secure-ok") { response: longstr }
    /// Server → client: the server's limits.
    ConnectionTune = (10, 30, "connection.tune") { channel_max: short, frame_max: long, heartbeat: short }
    /// Client → server: the limits the connection will use.
    ConnectionTuneOk = (10, 31, "connection.tune-ok") { channel_max: short, frame_max: long, heartbeat: short }
    /// Client → server: open a virtual host.
    ConnectionOpen = (10, 40, "connection.open") { virtual_host: shortstr, capabilities: shortstr, insist: bit }
    ConnectionOpenOk = (10, 41, "connection.open-ok") { known_hosts: shortstr }
    /// Either way: close the connection, naming the method that failed (0, 0 for none).
    ConnectionClose = (10, 50, "connection.close") { reply_code: short, reply_text: shortstr, class_id: short, method_id: short }
    ConnectionCloseOk = (10, 51, "connection.close-ok") {}
    /// Server → client: publishing is paused (a resource alarm).
    ConnectionBlocked = (10, 60, "connection.blocked") { reason: shortstr }
    ConnectionUnblocked = (10, 61, "connection.unblocked") {}
    /// Client → server: a renewed credential (an OAuth token, say).
    ConnectionUpdateSecret = (10, 70, "connection.update-secret") { new_secret: longstr, reason: shortstr }
    ConnectionUpdateSecretOk = (10, 71, "connection.update-secret-ok") {}

    ChannelOpen = (20, 10, "channel.open") { out_of_band: shortstr }
    ChannelOpenOk = (20, 11, "channel.open-ok") { channel_id: longstr }
    /// Either way: stop or restart the flow of content.
    ChannelFlow = (20, 20, "channel.flow") { active: bit }
    ChannelFlowOk = (20, 21, "channel.flow-ok") { active: bit }
    /// Either way: close the channel, naming the method that failed.
    ChannelClose = (20, 40, "channel.close") { reply_code: short, reply_text: shortstr, class_id: short, method_id: short }
    ChannelCloseOk = (20, 41, "channel.close-ok") {}

    /// Obsolete since 0-9-1 but still sent by old clients; RabbitMQ answers request-ok.
    AccessRequest = (30, 10, "access.request") { realm: shortstr, exclusive: bit, passive: bit, active: bit, write: bit, read: bit }
    AccessRequestOk = (30, 11, "access.request-ok") { ticket: short }

    ExchangeDeclare = (40, 10, "exchange.declare") {
        ticket: short,
        exchange: shortstr,
        exchange_type: shortstr,
        passive: bit,
        durable: bit,
        auto_delete: bit,
        internal: bit,
        no_wait: bit,
        arguments: table,
    }
    ExchangeDeclareOk = (40, 11, "exchange.declare-ok") {}
    ExchangeDelete = (40, 20, "exchange.delete") { ticket: short, exchange: shortstr, if_unused: bit, no_wait: bit }
    ExchangeDeleteOk = (40, 21, "exchange.delete-ok") {}
    /// RabbitMQ's exchange-to-exchange binding.
    ExchangeBind = (40, 30, "exchange.bind") {
        ticket: short,
        destination: shortstr,
        source: shortstr,
        routing_key: shortstr,
        no_wait: bit,
        arguments: table,
    }
    ExchangeBindOk = (40, 31, "exchange.bind-ok") {}
    ExchangeUnbind = (40, 40, "exchange.unbind") {
        ticket: short,
        destination: shortstr,
        source: shortstr,
        routing_key: shortstr,
        no_wait: bit,
        arguments: table,
    }
    /// Method id 51, not 41: so RabbitMQ numbers it.
    ExchangeUnbindOk = (40, 51, "exchange.unbind-ok") {}

    QueueDeclare = (50, 10, "queue.declare") {
        ticket: short,
        queue: shortstr,
        passive: bit,
        durable: bit,
        exclusive: bit,
        auto_delete: bit,
        no_wait: bit,
        arguments: table,
    }
    QueueDeclareOk = (50, 11, "queue.declare-ok") { queue: shortstr, message_count: long, consumer_count: long }
    QueueBind = (50, 20, "queue.bind") {
        ticket: short,
        queue: shortstr,
        exchange: shortstr,
        routing_key: shortstr,
        no_wait: bit,
        arguments: table,
    }
    QueueBindOk = (50, 21, "queue.bind-ok") {}
    QueuePurge = (50, 30, "queue.purge") { ticket: short, queue: shortstr, no_wait: bit }
    QueuePurgeOk = (50, 31, "queue.purge-ok") { message_count: long }
    QueueDelete = (50, 40, "queue.delete") { ticket: short, queue: shortstr, if_unused: bit, if_empty: bit, no_wait: bit }
    QueueDeleteOk = (50, 41, "queue.delete-ok") { message_count: long }
    /// Has no `no_wait`: unbind is always answered.
    QueueUnbind = (50, 50, "queue.unbind") {
        ticket: short,
        queue: shortstr,
        exchange: shortstr,
        routing_key: shortstr,
        arguments: table,
    }
    QueueUnbindOk = (50, 51, "queue.unbind-ok") {}

    BasicQos = (60, 10, "basic.qos") { prefetch_size: long, prefetch_count: short, global: bit }
    BasicQosOk = (60, 11, "basic.qos-ok") {}
    BasicConsume = (60, 20, "basic.consume") {
        ticket: short,
        queue: shortstr,
        consumer_tag: shortstr,
        no_local: bit,
        no_ack: bit,
        exclusive: bit,
        no_wait: bit,
        arguments: table,
    }
    BasicConsumeOk = (60, 21, "basic.consume-ok") { consumer_tag: shortstr }
    /// Either way: the server sends it when a consumer's queue goes away.
    BasicCancel = (60, 30, "basic.cancel") { consumer_tag: shortstr, no_wait: bit }
    BasicCancelOk = (60, 31, "basic.cancel-ok") { consumer_tag: shortstr }
    /// Client → server, with content.
    BasicPublish = (60, 40, "basic.publish") { ticket: short, exchange: shortstr, routing_key: shortstr, mandatory: bit, immediate: bit }
    /// Server → client, with content: an unroutable mandatory message.
    BasicReturn = (60, 50, "basic.return") { reply_code: short, reply_text: shortstr, exchange: shortstr, routing_key: shortstr }
    /// Server → client, with content: a message for a consumer.
    BasicDeliver = (60, 60, "basic.deliver") {
        consumer_tag: shortstr,
        delivery_tag: longlong,
        redelivered: bit,
        exchange: shortstr,
        routing_key: shortstr,
    }
    BasicGet = (60, 70, "basic.get") { ticket: short, queue: shortstr, no_ack: bit }
    /// Server → client, with content.
    BasicGetOk = (60, 71, "basic.get-ok") {
        delivery_tag: longlong,
        redelivered: bit,
        exchange: shortstr,
        routing_key: shortstr,
        message_count: long,
    }
    BasicGetEmpty = (60, 72, "basic.get-empty") { cluster_id: shortstr }
    /// Either way: a consumer's acknowledgement, or a publisher confirm.
    BasicAck = (60, 80, "basic.ack") { delivery_tag: longlong, multiple: bit }
    BasicReject = (60, 90, "basic.reject") { delivery_tag: longlong, requeue: bit }
    BasicRecoverAsync = (60, 100, "basic.recover-async") { requeue: bit }
    BasicRecover = (60, 110, "basic.recover") { requeue: bit }
    BasicRecoverOk = (60, 111, "basic.recover-ok") {}
    /// Either way: RabbitMQ's negative acknowledgement, or a refused publish under confirms.
    BasicNack = (60, 120, "basic.nack") { delivery_tag: longlong, multiple: bit, requeue: bit }

    TxSelect = (90, 10, "tx.select") {}
    TxSelectOk = (90, 11, "tx.select-ok") {}
    TxCommit = (90, 20, "tx.commit") {}
    TxCommitOk = (90, 21, "tx.commit-ok") {}
    TxRollback = (90, 30, "tx.rollback") {}
    TxRollbackOk = (90, 31, "tx.rollback-ok") {}

    /// RabbitMQ's publisher confirms.
    ConfirmSelect = (85, 10, "confirm.select") { no_wait: bit }
    ConfirmSelectOk = (85, 11, "confirm.select-ok") {}
}
