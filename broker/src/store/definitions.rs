//! Durable definitions: the exchanges, queues and bindings that survive a restart, kept in one
//! JSON file replaced atomically (write a temporary file, fsync it, rename it over the old one,
//! fsync the directory), so a crash leaves either the old or the new definitions, never a mix.
//!
//! The same JSON is what `switchyard definitions export` prints and `import` reads. Its shape
//! follows RabbitMQ's definitions export (`exchanges`, `queues`, `bindings`, with `arguments`
//! objects), so RabbitMQ users recognise it and its exports import as they are.
//!
//! Argument values are typed, written as JSON the natural way (numbers, strings, booleans,
//! arrays, objects) and, for the types JSON lacks, in the tagged form of
//! [`value_json`](switchyard_protocol::value_json) (`{"$bytes": "…"}`, `{"$i32": 5}`, …).
//!
//! Formats: 2 (typed arguments) is written. 1 (every argument a string) is read: its strings
//! stay strings, and the queue arguments that are numbers are read from them at declare, as
//! a number typed on a command line is.

use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::message::Table;

/// The current definitions format.
pub const DEFINITIONS_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default = "current_version")]
    pub switchyard_definitions: u32,
    #[serde(default)]
    pub exchanges: Vec<ExchangeDefinition>,
    #[serde(default)]
    pub queues: Vec<QueueDefinition>,
    #[serde(default)]
    pub bindings: Vec<BindingDefinition>,
}

/// No definitions, in the current format.
impl Default for Definitions {
    fn default() -> Self {
        Definitions {
            switchyard_definitions: DEFINITIONS_VERSION,
            exchanges: Vec::new(),
            queues: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

fn current_version() -> u32 {
    DEFINITIONS_VERSION
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeDefinition {
    pub name: String,
    /// The routing plugin: `direct`, `topic`, `fanout`, `headers`, or any installed plugin.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default, with = "arguments")]
    pub arguments: Table,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDefinition {
    pub name: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default, with = "arguments")]
    pub arguments: Table,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingDefinition {
    pub source: String,
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default, with = "arguments")]
    pub arguments: Table,
}

/// Arguments as a JSON object of typed values (see the module docs).
mod arguments {
    use serde::de::Error as _;
    use serde::{Deserializer, Serialize, Serializer};
    use switchyard_protocol::value_json;

    use crate::message::Table;

    pub fn serialize<S: Serializer>(arguments: &Table, serializer: S) -> Result<S::Ok, S::Error> {
        value_json::table_to_json(arguments).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Table, D::Error> {
        let json: serde_json::Value = serde::Deserialize::deserialize(deserializer)?;
        value_json::table_from_json(&json).map_err(D::Error::custom)
    }
}

impl Definitions {
    /// Reads definitions JSON. A file written by a newer Switchyard, in a format this one does
    /// not know, is refused with the versions named, rather than misread.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let definitions: Definitions = serde_json::from_str(text)?;
        if definitions.switchyard_definitions > DEFINITIONS_VERSION {
            return Err(serde::de::Error::custom(format_args!(
                "these definitions are in format {} (\"switchyard_definitions\"), written by a newer Switchyard; this one reads formats up to {DEFINITIONS_VERSION}",
                definitions.switchyard_definitions
            )));
        }
        Ok(definitions)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("definitions always serialize")
    }

    /// Reads the file; a missing file means no definitions.
    pub fn load(path: &Path) -> io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {error}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Definitions::default()),
            Err(error) => Err(error),
        }
    }

    /// Replaces the file atomically and durably.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let temporary = path.with_extension("json.tmp");
        {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(self.to_json().as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, path)?;
        super::segment::sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Value;

    #[test]
    fn rabbitmq_style_definitions_parse_with_numeric_arguments() {
        let text = r#"{
            "exchanges": [{"name": "prices", "type": "topic", "durable": true, "auto_delete": false, "arguments": {}}],
            "queues": [{"name": "orders", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 1000, "x-overflow": "reject-publish"}}],
            "bindings": [{"source": "prices", "destination": "orders", "destination_type": "queue", "routing_key": "stock.#", "arguments": {}}]
        }"#;
        let definitions = Definitions::parse(text).unwrap();
        assert_eq!(
            definitions.queues[0].arguments,
            Table::new()
                .with("x-max-length", 1000_i64)
                .with("x-overflow", "reject-publish")
        );
        let again = Definitions::parse(&definitions.to_json()).unwrap();
        assert_eq!(again, definitions);
    }

    #[test]
    fn typed_arguments_survive_a_write_and_a_read() {
        let arguments = Table::new()
            .with("bytes", vec![0_u8, 255])
            .with(
                "list",
                Value::Array(vec![1_i64.into(), Value::Void, "x".into()]),
            )
            .with("narrow", Value::I8(-3))
            .with("nested", Table::new().with("flag", true))
            .with("x-match", "all");
        let definitions = Definitions {
            bindings: vec![BindingDefinition {
                source: "h".into(),
                destination: "q".into(),
                destination_type: "queue".into(),
                routing_key: String::new(),
                arguments: arguments.clone(),
            }],
            ..Definitions::default()
        };
        let again = Definitions::parse(&definitions.to_json()).unwrap();
        assert_eq!(again.bindings[0].arguments, arguments);
        assert_eq!(again.switchyard_definitions, 2);
    }

    #[test]
    fn format_1_with_string_arguments_is_read() {
        let text = r#"{"switchyard_definitions": 1, "queues": [{"name": "q", "durable": true,
            "auto_delete": false, "arguments": {"x-max-length": "10", "owner": "team-a"}}]}"#;
        let definitions = Definitions::parse(text).unwrap();
        assert_eq!(
            definitions.queues[0].arguments,
            Table::new()
                .with("owner", "team-a")
                .with("x-max-length", "10")
        );
    }

    #[test]
    fn definitions_from_a_newer_format_are_refused_with_the_versions_named() {
        let error = Definitions::parse(r#"{"switchyard_definitions": 9, "queues": []}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("format 9"), "{error}");
        assert!(error.contains("up to 2"), "{error}");
        assert!(Definitions::parse(r#"{"switchyard_definitions": 1}"#).is_ok());
    }

    #[test]
    fn save_replaces_the_file_and_load_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("definitions.json");
        assert_eq!(Definitions::load(&path).unwrap(), Definitions::default());
        let definitions = Definitions {
            queues: vec![QueueDefinition {
                name: "q".into(),
                durable: true,
                auto_delete: false,
                arguments: Table::new(),
            }],
            ..Definitions::default()
        };
        definitions.save(&path).unwrap();
        assert_eq!(Definitions::load(&path).unwrap(), definitions);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
