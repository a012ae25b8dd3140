//! `switchyard plugin new`: writes a plugin crate that builds anywhere. The guest SDK, the WIT
//! contract and the versions they were tested with come out of this binary (bundled by
//! `build/sdk_bundle.rs`), so the crate needs no Switchyard checkout and no guessed path.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

include!(concat!(env!("OUT_DIR"), "/sdk_bundle.rs"));

/// The directory, inside a plugin crate, that holds the bundled SDK.
pub const SDK_DIR: &str = "switchyard-sdk";

/// What a new plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewKind {
    /// An exchange type: decides which queues get each message.
    Router,
    /// A consumer filter: decides which messages a consumer sees.
    Filter,
}

/// Writes the crate for plugin `name` into `parent/<name>`; returns that directory.
pub fn new_plugin(name: &str, kind: NewKind, parent: &Path) -> anyhow::Result<PathBuf> {
    check_plugin_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or directory (--dir)",
            dir.display()
        );
    }
    let names = Names::of(name);
    let (lib, samples) = match kind {
        NewKind::Router => (
            include_str!("templates/router_lib.rs.tmpl"),
            include_str!("templates/router_samples.json"),
        ),
        NewKind::Filter => (
            include_str!("templates/filter_lib.rs.tmpl"),
            include_str!("templates/filter_samples.json"),
        ),
    };
    let kind_word = match kind {
        NewKind::Router => "router",
        NewKind::Filter => "filter",
    };
    let files: [(&str, String); 6] = [
        (
            "Cargo.toml",
            names.fill(include_str!("templates/Cargo.toml.tmpl")),
        ),
        ("src/lib.rs", names.fill(lib)),
        ("samples.json", samples.to_owned()),
        (
            "README.md",
            names
                .fill(include_str!("templates/README.md.tmpl"))
                .replace("{{kind}}", kind_word),
        ),
        (
            ".gitignore",
            include_str!("templates/gitignore.tmpl").to_owned(),
        ),
        ("Cargo.lock", SDK_LOCK.to_owned()),
    ];
    for (path, contents) in &files {
        write_new(&dir.join(path), contents)?;
    }
    if kind == NewKind::Router {
        // An exchange of the new type with a queue for each binding key, for
        // `switchyard definitions import`.
        let definitions = names.fill(include_str!("templates/router_definitions.json.tmpl"));
        write_new(&dir.join("definitions.json"), &definitions)?;
    }
    write_sdk(&dir)?;
    Ok(dir)
}

/// Writes (or overwrites) the bundled SDK into the plugin crate at `dir`.
pub fn write_sdk(dir: &Path) -> anyhow::Result<()> {
    let sdk = dir.join(SDK_DIR);
    for (path, contents) in SDK_FILES {
        write_new(&sdk.join(path), contents)?;
    }
    Ok(())
}

fn write_new(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// The broker's rule for plugin names (`plugin/info.rs`), narrowed to what also makes a crate
/// and a directory name: lowercase ASCII letters, digits, `-` and `_`, starting with a letter.
fn check_plugin_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?} cannot name a plugin: use lowercase letters, digits, `-` and `_`, starting with a letter, at most 64 bytes (say `priority-router`)"
        );
    }
    Ok(())
}

/// The spellings of a plugin's name a template needs.
struct Names {
    /// The exchange type or filter name: as given.
    plugin: String,
    /// The Rust type implementing the trait: `priority-router` → `PriorityRouter`.
    type_name: String,
}

impl Names {
    fn of(name: &str) -> Names {
        let type_name = name
            .split(['-', '_'])
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase());
                first.into_iter().chain(chars).collect::<String>()
            })
            .collect();
        Names {
            plugin: name.to_owned(),
            type_name,
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{{crate}}", &self.plugin)
            .replace("{{name}}", &self.plugin)
            .replace("{{type}}", &self.type_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_name_is_the_plugin_name_in_camel_case() {
        assert_eq!(Names::of("priority-router").type_name, "PriorityRouter");
        assert_eq!(Names::of("geo_fence2").type_name, "GeoFence2");
    }

    #[test]
    fn names_that_cannot_be_a_crate_are_refused_with_the_rule() {
        for bad in [
            "",
            "Upper",
            "9lives",
            "has space",
            "dot.ted",
            &"x".repeat(65),
        ] {
            let error = check_plugin_name(bad).unwrap_err().to_string();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
        check_plugin_name("priority-router").unwrap();
    }

    #[test]
    fn the_bundle_carries_the_sdk_the_contract_and_pinned_manifests() {
        let paths: Vec<&str> = SDK_FILES.iter().map(|(path, _)| *path).collect();
        for expected in [
            "wit/switchyard-plugin.wit",
            "switchyard-plugin/Cargo.toml",
            "switchyard-plugin/src/lib.rs",
            "switchyard-value/Cargo.toml",
            "switchyard-value/src/lib.rs",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
        let manifest = SDK_FILES
            .iter()
            .find(|(path, _)| *path == "switchyard-plugin/Cargo.toml")
            .unwrap()
            .1;
        assert!(!manifest.contains("workspace"), "{manifest}");
        assert!(manifest.contains("version = \"=0."), "{manifest}");
        assert!(SDK_LOCK.contains("name = \"wit-bindgen\""), "{SDK_LOCK}");
    }
}
