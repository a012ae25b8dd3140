//! `switchyard plugin build`: compiles a plugin crate into the component the broker loads, with
//! the toolchain the crate's directory selects, then checks it as the broker would.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const WASM_TARGET: &str = "wasm32-wasip2";

/// A built component.
#[derive(Debug)]
pub struct Built {
    pub wasm: PathBuf,
    pub bytes: u64,
}

/// Builds the crate in `dir` for `wasm32-wasip2` in release, adding the target first if the
/// toolchain lacks it. Cargo's progress goes to stderr as usual.
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: run this in a plugin crate (`switchyard plugin new NAME` makes one) or pass --path",
            dir.display()
        );
    }
    ensure_wasm_target(dir)?;
    let status = Command::new(cargo())
        .current_dir(dir)
        .args(["build", "--release", "--target", WASM_TARGET])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let wasm = artifact(dir)?;
    let bytes = std::fs::metadata(&wasm)
        .with_context(|| format!("cargo built no {}", wasm.display()))?
        .len();
    Ok(Built { wasm, bytes })
}

/// Where cargo puts the component of the crate in `dir`.
pub fn artifact(dir: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new(cargo())
        .current_dir(dir)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading cargo metadata")?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml"))?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| std::fs::canonicalize(m).ok())
                == Some(manifest.clone())
        })
        .context("cargo metadata does not list this crate")?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|k| k == "cdylib"))
        })
        .context("the crate has no `cdylib` library: add `crate-type = [\"cdylib\", \"rlib\"]` under [lib]")?;
    let name = lib["name"].as_str().unwrap_or_default().replace('-', "_");
    Ok(Path::new(target_dir)
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{name}.wasm")))
}

fn ensure_wasm_target(dir: &Path) -> anyhow::Result<()> {
    if wasm_target_installed(dir) {
        return Ok(());
    }
    eprintln!("adding the {WASM_TARGET} target with rustup (once per toolchain)");
    let status = Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", WASM_TARGET])
        .status()
        .with_context(|| {
            format!("the {WASM_TARGET} target is missing and rustup could not be run; install it with `rustup target add {WASM_TARGET}`")
        })?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed ({status})");
    }
    Ok(())
}

/// Whether the sysroot of the `rustc` the directory selects has the target's standard library.
fn wasm_target_installed(dir: &Path) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
    else {
        return false;
    };
    Path::new(String::from_utf8_lossy(&output.stdout).trim())
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .join("lib")
        .is_dir()
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
