//! Bundles the guest SDK into the broker binary, for `switchyard plugin new`: the sources of
//! `switchyard-plugin` and `switchyard-value`, the WIT contract, standalone manifests for both
//! crates (the workspace's inherited fields and dependency specs resolved, registry versions
//! pinned to the ones this workspace builds with) and a lock file holding exactly the registry
//! packages they need, so a scaffolded plugin resolves the versions the broker was tested with
//! and builds from a warm cargo cache without fetching anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The files copied into a plugin crate's `switchyard-sdk/`, relative to the workspace root
/// (source) and to `switchyard-sdk/` (destination).
const BUNDLED_FILES: &[(&str, &str)] = &[
    ("wit/switchyard-plugin.wit", "wit/switchyard-plugin.wit"),
    ("plugin-sdk/README.md", "switchyard-plugin/README.md"),
    ("plugin-sdk/src/lib.rs", "switchyard-plugin/src/lib.rs"),
    ("plugin-sdk/src/guest.rs", "switchyard-plugin/src/guest.rs"),
    (
        "plugin-sdk/src/headers.rs",
        "switchyard-plugin/src/headers.rs",
    ),
    (
        "plugin-sdk/src/message.rs",
        "switchyard-plugin/src/message.rs",
    ),
    (
        "plugin-sdk/src/plugin.rs",
        "switchyard-plugin/src/plugin.rs",
    ),
    ("plugin-sdk/src/topic.rs", "switchyard-plugin/src/topic.rs"),
    ("value/src/lib.rs", "switchyard-value/src/lib.rs"),
];

/// Writes `sdk_bundle.rs` into `out`: `SDK_FILES` (destination path, contents) and the lock
/// file's text as `SDK_LOCK`.
pub fn write(root: &Path, out: &Path) {
    let workspace: toml::Table = read_toml(&root.join("Cargo.toml"));
    let lock: toml::Table = read_toml(&root.join("Cargo.lock"));
    let locked = locked_versions(&lock);
    let workspace_package = &workspace["workspace"]["package"];
    let workspace_deps = workspace["workspace"]["dependencies"]
        .as_table()
        .expect("[workspace.dependencies]");

    let sdk_source = check_sources(root);
    let plugin_manifest = standalone_manifest(
        &read_toml(&root.join("plugin-sdk/Cargo.toml")),
        workspace_package,
        workspace_deps,
        &locked,
    );
    let value_manifest = standalone_manifest(
        &read_toml(&root.join("value/Cargo.toml")),
        workspace_package,
        workspace_deps,
        &locked,
    );
    let registry_roots: Vec<String> = direct_registry_deps(&root.join("plugin-sdk/Cargo.toml"));
    let lock_text = lock_subset(&lock, &registry_roots);

    let mut code = String::from(
        "/// The guest SDK as `switchyard plugin new` writes it: (path under `switchyard-sdk/`, contents).\n\
         pub(crate) static SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for (from, to) in BUNDLED_FILES {
        let path = root.join(from);
        writeln!(
            code,
            "    ({to:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    writeln!(
        code,
        "    (\"switchyard-plugin/Cargo.toml\", {plugin_manifest:?}),"
    )
    .unwrap();
    writeln!(
        code,
        "    (\"switchyard-value/Cargo.toml\", {value_manifest:?}),"
    )
    .unwrap();
    code.push_str("];\n\n");
    writeln!(
        code,
        "/// The registry packages the SDK needs, at the versions this broker was built with.\n\
         pub(crate) static SDK_LOCK: &str = {lock_text:?};"
    )
    .unwrap();
    std::fs::write(out.join("sdk_bundle.rs"), code).unwrap();
    for path in sdk_source {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "plugin-sdk/Cargo.toml",
        "value/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
}

/// Every source file of the bundled crates must be in `BUNDLED_FILES` (a new module left out
/// would scaffold crates that do not build). Returns them.
fn check_sources(root: &Path) -> Vec<PathBuf> {
    let bundled: BTreeSet<&str> = BUNDLED_FILES.iter().map(|(from, _)| *from).collect();
    let mut found = Vec::new();
    for dir in ["plugin-sdk/src", "value/src"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let relative = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            // `wire.rs` is the serde encoding, behind a feature plugins never enable.
            if relative == "value/src/wire.rs" {
                continue;
            }
            assert!(
                bundled.contains(relative.as_str()),
                "{relative} is not in BUNDLED_FILES (broker/build/sdk_bundle.rs): scaffolded plugins would not build"
            );
            found.push(path);
        }
    }
    found.extend(BUNDLED_FILES.iter().map(|(from, _)| root.join(from)));
    found
}

fn read_toml(path: &Path) -> toml::Table {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn locked_versions(lock: &toml::Table) -> BTreeMap<String, Vec<String>> {
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in lock["package"].as_array().expect("[[package]]") {
        let name = package["name"].as_str().unwrap().to_owned();
        let version = package["version"].as_str().unwrap().to_owned();
        versions.entry(name).or_default().push(version);
    }
    versions
}

/// A crate's manifest with `workspace = true` fields and dependencies spelled out, path
/// dependencies pointing at their bundled sibling, registry ones pinned with `=`.
fn standalone_manifest(
    manifest: &toml::Table,
    workspace_package: &toml::Value,
    workspace_deps: &toml::Table,
    locked: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut package = manifest["package"].as_table().unwrap().clone();
    for (key, value) in package.iter_mut() {
        if value.get("workspace").and_then(toml::Value::as_bool) == Some(true) {
            *value = workspace_package[key.as_str()].clone();
        }
    }
    package.remove("build");
    let mut out = toml::Table::new();
    out.insert("package".into(), toml::Value::Table(package));
    let mut deps = toml::Table::new();
    if let Some(own) = manifest.get("dependencies").and_then(toml::Value::as_table) {
        for (name, spec) in own {
            let mut spec = match spec.get("workspace") {
                Some(_) => workspace_deps[name.as_str()].clone(),
                None => spec.clone(),
            };
            if let Some(extra) = own[name.as_str()].get("features") {
                set(&mut spec, "features", extra.clone());
            }
            if let Some(optional) = own[name.as_str()].get("optional") {
                set(&mut spec, "optional", optional.clone());
            }
            if spec.get("path").is_some() {
                let mut local = toml::Table::new();
                local.insert("path".into(), format!("../{name}").into());
                spec = toml::Value::Table(local);
            } else {
                let version = &locked[name.as_str()];
                assert_eq!(version.len(), 1, "{name} is locked at several versions");
                set(&mut spec, "version", format!("={}", version[0]).into());
            }
            deps.insert(name.clone(), spec);
        }
    }
    // The value crate's only dependency is serde, behind a feature plugins never enable; the
    // bundle leaves both out, and says so to the compiler's cfg check.
    deps.remove("serde");
    if !deps.is_empty() {
        out.insert("dependencies".into(), toml::Value::Table(deps));
    }
    let mut text = String::from(
        "# Written by `switchyard plugin new`: the Switchyard guest SDK this broker was built with.\n\
         # To upgrade, replace this directory with the one a newer `switchyard plugin new` writes.\n",
    );
    text.push_str(&toml::to_string(&out).unwrap());
    text.push_str(
        "\n[lints.rust]\nunexpected_cfgs = { level = \"warn\", check-cfg = ['cfg(feature, values(\"serde\"))'] }\n",
    );
    text
}

fn set(spec: &mut toml::Value, key: &str, value: toml::Value) {
    if let toml::Value::String(version) = spec {
        let mut table = toml::Table::new();
        table.insert("version".into(), version.clone().into());
        *spec = toml::Value::Table(table);
    }
    spec.as_table_mut().unwrap().insert(key.into(), value);
}

fn direct_registry_deps(manifest: &Path) -> Vec<String> {
    let manifest = read_toml(manifest);
    manifest["dependencies"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(name, _)| !name.starts_with("switchyard-"))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The packages of `lock` reachable from `roots`, as a lock file cargo accepts as the starting
/// point of a plugin crate's own.
fn lock_subset(lock: &toml::Table, roots: &[String]) -> String {
    let packages = lock["package"].as_array().unwrap();
    let key = |p: &toml::Value| {
        (
            p["name"].as_str().unwrap().to_owned(),
            p["version"].as_str().unwrap().to_owned(),
        )
    };
    let find = |dependency: &str| -> &toml::Value {
        let mut parts = dependency.split(' ');
        let name = parts.next().unwrap();
        let version = parts.next();
        packages
            .iter()
            .find(|p| {
                p["name"].as_str() == Some(name)
                    && version.is_none_or(|v| p["version"].as_str() == Some(v))
            })
            .unwrap_or_else(|| panic!("{dependency} is not in Cargo.lock"))
    };
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&toml::Value> = roots.iter().map(|r| find(r)).collect();
    while let Some(package) = todo.pop() {
        if !seen.insert(key(package)) {
            continue;
        }
        if let Some(deps) = package.get("dependencies").and_then(toml::Value::as_array) {
            todo.extend(deps.iter().map(|d| find(d.as_str().unwrap())));
        }
    }
    let chosen: Vec<toml::Value> = packages
        .iter()
        .filter(|p| seen.contains(&key(p)))
        .cloned()
        .collect();
    let mut out = toml::Table::new();
    out.insert("version".into(), lock["version"].clone());
    out.insert("package".into(), toml::Value::Array(chosen));
    let mut text = String::from(
        "# Written by `switchyard plugin new`: the versions the Switchyard SDK was tested with.\n",
    );
    text.push_str(&toml::to_string(&out).unwrap());
    text
}
