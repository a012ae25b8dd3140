//! Durable definitions: the exchanges, queues and bindings that survive a restart, kept in one
//! JSON file replaced atomically (write a temporary file, fsync it, rename it over the old one,
//! fsync the directory), so a crash leaves either the old or the new definitions, never a mix.
//!
//! The same JSON is what `switchyard definitions export` prints and `import` reads. Its shape
//! follows RabbitMQ's definitions export (`exchanges`, `queues`, `bindings`, with `arguments`
//! objects), so RabbitMQ users recognise it; argument values are strings in Switchyard, and an
//! import also accepts numbers and booleans (as RabbitMQ writes them) and turns them into text.

use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The current definitions format.
pub const DEFINITIONS_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub arguments: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDefinition {
    pub name: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default, with = "arguments")]
    pub arguments: Vec<(String, String)>,
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
    pub arguments: Vec<(String, String)>,
}

/// Arguments as a JSON object (written in declaration order, read back sorted by name); scalar
/// values of any JSON type are read as their text.
mod arguments {
    use serde::de::Error as _;
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        arguments: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(arguments.len()))?;
        for (name, value) in arguments {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde::Deserialize::deserialize(deserializer)?;
        map.into_iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Number(number) => number.to_string(),
                    serde_json::Value::Bool(flag) => flag.to_string(),
                    other => {
                        return Err(D::Error::custom(format!(
                            "argument {name:?} must be a string, number or boolean, not {other}"
                        )));
                    }
                };
                Ok((name, text))
            })
            .collect()
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
            vec![
                ("x-max-length".to_owned(), "1000".to_owned()),
                ("x-overflow".to_owned(), "reject-publish".to_owned())
            ]
        );
        let again = Definitions::parse(&definitions.to_json()).unwrap();
        assert_eq!(again, definitions);
    }

    #[test]
    fn definitions_from_a_newer_format_are_refused_with_the_versions_named() {
        let error = Definitions::parse(r#"{"switchyard_definitions": 9, "queues": []}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("format 9"), "{error}");
        assert!(error.contains("up to 1"), "{error}");
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
                arguments: vec![],
            }],
            ..Definitions::default()
        };
        definitions.save(&path).unwrap();
        assert_eq!(Definitions::load(&path).unwrap(), definitions);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
