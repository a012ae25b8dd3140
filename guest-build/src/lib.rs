//! Compiles plugin crates of this workspace to `wasm32-wasip2` components from a build script,
//! so no built `.wasm` is ever committed.
//!
//! [`build_plugins`] runs a nested `cargo build --release --target wasm32-wasip2` with its own
//! target directory (so it never waits on the outer build's lock), strips the environment the
//! outer cargo set for build scripts (rustc wrappers such as clippy-driver, encoded flags,
//! jobserver), and tells the outer cargo which sources to watch.
//!
//! rustup installs the targets named in `rust-toolchain.toml` only when it installs the
//! toolchain itself, never into a toolchain that is already there. So before building,
//! [`build_plugins`] checks the sysroot for `wasm32-wasip2` and, where it is missing, runs
//! `rustup target add` once (under a file lock, since the broker's and the tests' build scripts
//! run at the same time). A machine with only rustup and stable Rust can then build as the
//! README says.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A plugin crate to build: its package name and its directory relative to the workspace root.
#[derive(Debug, Clone, Copy)]
pub struct PluginCrate {
    pub package: &'static str,
    pub dir: &'static str,
}

/// A built component: the package it came from and the path of its `.wasm`.
#[derive(Debug, Clone)]
pub struct BuiltPlugin {
    pub package: &'static str,
    pub wasm: PathBuf,
}

/// The workspace root, found from the calling build script's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run from build.rs"));
    manifest
        .ancestors()
        .find(|dir| dir.join("wit").is_dir() && dir.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no workspace root above {}", manifest.display()))
}

/// Builds `plugins` and returns their components. Panics with cargo's output on failure,
/// which is what a build script should do.
pub fn build_plugins(plugins: &[PluginCrate]) -> Vec<BuiltPlugin> {
    let root = workspace_root();
    let target_dir = root.join("target").join("guest-wasm");
    for watched in [
        "wit",
        "plugin-sdk/src",
        "plugin-sdk/Cargo.toml",
        "value/src",
        "value/Cargo.toml",
        "tests/wit-0.1.0",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for plugin in plugins {
        println!("cargo:rerun-if-changed={}", root.join(plugin.dir).display());
    }

    ensure_wasm_target(&root);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for plugin in plugins {
        command.args(["-p", plugin.package]);
    }
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    // Plugins ship without debug info (line tables only bloat the embedded components), and
    // are small enough that whole-program optimisation is cheap and pays off on every call.
    command
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");

    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run cargo to build the plugins: {e}"));
    if !output.status.success() {
        panic!(
            "building plugins for {WASM_TARGET} failed\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    plugins
        .iter()
        .map(|plugin| {
            let file = format!("{}.wasm", plugin.package.replace('-', "_"));
            let wasm = target_dir.join(WASM_TARGET).join("release").join(file);
            assert!(wasm.is_file(), "cargo built no {}", wasm.display());
            BuiltPlugin {
                package: plugin.package,
                wasm,
            }
        })
        .collect()
}

const WASM_TARGET: &str = "wasm32-wasip2";

/// Installs the `wasm32-wasip2` standard library into the toolchain that runs this build, if it
/// is not there yet. Panics with rustup's output when that fails.
fn ensure_wasm_target(root: &Path) {
    if wasm_target_installed() {
        return;
    }
    let lock_dir = root.join("target");
    std::fs::create_dir_all(&lock_dir)
        .unwrap_or_else(|e| panic!("could not create {}: {e}", lock_dir.display()));
    let lock_path = lock_dir.join(".wasm-target.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("could not create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("could not lock {}: {e}", lock_path.display()));
    // Another build script may have installed it while this one waited for the lock.
    if wasm_target_installed() {
        return;
    }
    println!("cargo:warning=installing the {WASM_TARGET} target with rustup (once per toolchain)");
    let mut command = Command::new("rustup");
    command.args(["target", "add", WASM_TARGET]);
    // The toolchain this build runs on, so the target lands where rustc will look for it.
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        command.args(["--toolchain", &toolchain]);
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "the {WASM_TARGET} target is not installed and rustup could not be run ({e}); \
             install it with `rustup target add {WASM_TARGET}`"
        )
    });
    if !output.status.success() {
        panic!(
            "`rustup target add {WASM_TARGET}` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Whether the sysroot of the `rustc` cargo uses holds the target's standard library.
fn wasm_target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    sysroot
        .join("lib")
        .join("rustlib")
        .join(WASM_TARGET)
        .join("lib")
        .is_dir()
}
