//! The plain Rust types a plugin works with: messages, headers, bindings and the plugin's
//! description. They mirror the WIT records of `switchyard:plugin/types` but belong to this
//! crate, so plugin logic can be built and unit-tested natively without any generated code.

use switchyard_value::{Table, Value};

/// A message id or correlation id: text, or bytes where the publisher's protocol has binary
/// ids (MQTT 5's correlation data).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    Text(String),
    Binary(Vec<u8>),
}

impl From<&str> for Id {
    fn from(text: &str) -> Self {
        Id::Text(text.to_owned())
    }
}

impl From<String> for Id {
    fn from(text: String) -> Self {
        Id::Text(text)
    }
}

impl Id {
    /// The id as text, when it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Id::Text(text) => Some(text),
            Id::Binary(_) => None,
        }
    }
}

/// The standard message properties, as RabbitMQ users know them from AMQP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    pub message_id: Option<Id>,
    pub correlation_id: Option<Id>,
    pub reply_to: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// The application's message type (AMQP's `type`).
    pub message_type: Option<String>,
    /// The publishing user, checked by the broker against the authenticated user.
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub cluster_id: Option<String>,
    /// Milliseconds since the Unix epoch, as set by the publisher.
    pub timestamp: Option<u64>,
    /// Per-message time to live in milliseconds.
    pub expiration: Option<u64>,
    /// 0 (lowest) to 255.
    pub priority: u8,
    pub persistent: bool,
}

/// A message as a plugin sees it. Only the parts the plugin declared in [`Reads`] are filled
/// in by the broker; the others are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub routing_key: String,
    /// Typed header values (see [`Value`]); look one up with `headers.get("name")`,
    /// `headers.get_str("name")`, `headers.get_i64("name")`.
    pub headers: Table,
    pub properties: Properties,
    pub body: Option<Vec<u8>>,
}

impl Message {
    /// A message with this routing key and nothing else; handy in tests.
    pub fn with_key(routing_key: impl Into<String>) -> Self {
        Message {
            routing_key: routing_key.into(),
            ..Message::default()
        }
    }

    /// Adds a header of any value type; handy in tests.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the body; handy in tests.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The value of the first header named `name`.
    pub fn header_value(&self, name: &str) -> Option<&Value> {
        self.headers.get(name)
    }
}

/// The broker's handle for a bound destination (a queue or an exchange). Unique within one
/// exchange; `route` answers with these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination(pub u32);

/// A binding of a destination to an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    pub destination: Destination,
    /// The binding key; its meaning is the plugin's (a routing key, a pattern, …).
    pub key: String,
    /// The binding's arguments, typed.
    pub arguments: Table,
}

impl Binding {
    pub fn new(destination: u32, key: impl Into<String>) -> Self {
        Binding {
            destination: Destination(destination),
            key: key.into(),
            arguments: Table::new(),
        }
    }

    /// Adds an argument of any value type; handy in tests.
    pub fn argument(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.push(name, value);
        self
    }
}

/// What a plugin reads besides the routing key (which it always gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reads {
    pub headers: bool,
    pub properties: bool,
    /// Costly: the body is copied into the plugin for every message.
    pub body: bool,
}

impl Reads {
    /// The routing key only: the broker may cache this plugin's decisions per key.
    pub const KEY_ONLY: Reads = Reads {
        headers: false,
        properties: false,
        body: false,
    };
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The exchange type or filter name users refer to: lowercase letters, digits, `-`, `_`
    /// and `.`, at most 64 bytes.
    pub name: String,
    pub version: String,
    pub description: String,
    pub reads: Reads,
}

impl PluginInfo {
    /// A description that reads only the routing key; add what it reads with the builders.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            reads: Reads::KEY_ONLY,
        }
    }

    pub fn reads_headers(mut self) -> Self {
        self.reads.headers = true;
        self
    }

    pub fn reads_properties(mut self) -> Self {
        self.reads.properties = true;
        self
    }

    pub fn reads_body(mut self) -> Self {
        self.reads.body = true;
        self
    }
}
