//! Helpers shared by every xtask task (the light `xtask` package and the
//! heavy `xtask-heavy` one). Tasks depend on these modules, never on each
//! other.

pub mod build;
pub mod dataset;
pub mod docs;
pub mod files;
pub mod flags;
pub mod machine;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, relative to the root, or `target`).
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    }
}

/// `cargo` (the one running us, if any), without the variables `cargo run`
/// set for this binary: build scripts that watch them (ring's watches
/// `CARGO_PKG_NAME` and `CARGO_MANIFEST_DIR`) would otherwise rerun, and
/// their crates rebuild, every time the build switches between a plain
/// `cargo build` and one started from `cargo xtask`.
pub fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            c.env_remove(key);
        }
    }
    c
}

/// A task's result as the process's exit code (the error printed first).
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
