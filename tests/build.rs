//! Builds the test plugins in `tests/plugins/` (and the standard ones the tests swap in as
//! files) from source and generates path constants for them.

use std::fmt::Write as _;

use switchyard_guest_build::{PluginCrate, build_plugins, workspace_root};

const TEST_PLUGINS: &[PluginCrate] = &[
    PluginCrate {
        package: "test-plugin-looper",
        dir: "tests/plugins/looper",
    },
    PluginCrate {
        package: "test-plugin-bomb",
        dir: "tests/plugins/bomb",
    },
    PluginCrate {
        package: "test-plugin-trapper",
        dir: "tests/plugins/trapper",
    },
    PluginCrate {
        package: "test-plugin-liar",
        dir: "tests/plugins/liar",
    },
    PluginCrate {
        package: "test-plugin-topic-v2",
        dir: "tests/plugins/topic-v2",
    },
    PluginCrate {
        package: "test-plugin-wrong-world",
        dir: "tests/plugins/wrong-world",
    },
    PluginCrate {
        package: "test-plugin-bad-name",
        dir: "tests/plugins/bad-name",
    },
    PluginCrate {
        package: "test-plugin-snoop",
        dir: "tests/plugins/snoop",
    },
    PluginCrate {
        package: "test-plugin-mirror",
        dir: "tests/plugins/mirror",
    },
    PluginCrate {
        package: "test-plugin-contract-0-1",
        dir: "tests/plugins/contract-0-1",
    },
    PluginCrate {
        package: "test-plugin-direct-v2",
        dir: "tests/plugins/direct-v2",
    },
    PluginCrate {
        package: "switchyard-topic",
        dir: "plugins/topic",
    },
];

fn main() {
    let mut constants = String::new();
    for plugin in build_plugins(TEST_PLUGINS) {
        let name = plugin
            .package
            .trim_start_matches("test-plugin-")
            .trim_start_matches("switchyard-")
            .replace('-', "_")
            .to_uppercase();
        writeln!(
            constants,
            "/// The built component of `{}`.\npub const {name}: &str = {:?};",
            plugin.package,
            plugin.wasm.display().to_string()
        )
        .unwrap();
    }
    let cache = workspace_root()
        .join("target")
        .join("test-plugin-artifacts");
    writeln!(
        constants,
        "/// Where tests cache compiled plugins.\npub const ARTIFACT_CACHE: &str = {:?};",
        cache.display().to_string()
    )
    .unwrap();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("test_plugins.rs"), constants).unwrap();
}
