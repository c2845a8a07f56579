//! Building the bk binary: one `cargo build -p bk-cli` for every task.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::process::{ChildGuard, show};

/// Which cargo profile to build bk with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug/bk`: the demo, the e2e scenarios and the browser tests.
    Debug,
    /// `target/release/bk`: the benchmarks.
    Release,
}

/// Builds bk (`cargo build -p bk-cli`, `--release` for [`Profile::Release`])
/// in `root`'s workspace and returns the binary's path.
pub fn build_bk(root: &Path, profile: Profile) -> Result<PathBuf> {
    let mut c = super::cargo_command();
    c.arg("build");
    if profile == Profile::Release {
        c.arg("--release");
    }
    c.args(["-p", "bk-cli"]).current_dir(root);
    eprintln!("$ {}", show(&c));
    let (status, _) = ChildGuard::spawn(&mut c)?.wait()?;
    if !status.success() {
        bail!("{} failed ({status})", show(&c));
    }
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    let bk = super::target_dir(root).join(dir).join("bk");
    if !bk.is_file() {
        bail!("{} missing after the build", bk.display());
    }
    Ok(bk)
}
