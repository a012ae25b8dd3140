//! Compiles the standard plugins from `plugins/` and generates the table that
//! `src/plugin/builtin.rs` includes, so the broker binary carries them.

use std::fmt::Write as _;

use switchyard_guest_build::{PluginCrate, build_plugins, workspace_root};

#[path = "build/sdk_bundle.rs"]
mod sdk_bundle;

const STANDARD_PLUGINS: &[PluginCrate] = &[
    PluginCrate {
        package: "switchyard-direct",
        dir: "plugins/direct",
    },
    PluginCrate {
        package: "switchyard-fanout",
        dir: "plugins/fanout",
    },
    PluginCrate {
        package: "switchyard-topic",
        dir: "plugins/topic",
    },
    PluginCrate {
        package: "switchyard-headers",
        dir: "plugins/headers",
    },
    PluginCrate {
        package: "switchyard-json-route",
        dir: "plugins/json-route",
    },
    PluginCrate {
        package: "switchyard-hash",
        dir: "plugins/hash",
    },
    PluginCrate {
        package: "switchyard-selector",
        dir: "plugins/selector",
    },
];

fn main() {
    let built = build_plugins(STANDARD_PLUGINS);
    let mut table = String::from(
        "/// The standard plugins: (crate name, component bytes).\n\
         pub(crate) static EMBEDDED_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for plugin in &built {
        let name = plugin.package.trim_start_matches("switchyard-");
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            plugin.wasm.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("embedded_plugins.rs"), table).unwrap();
    sdk_bundle::write(&workspace_root(), &out);
}
