//! `bk init`: create a repository.

use std::process::ExitCode;

use anyhow::Result;

use crate::connect::Global;

/// Create the repository named by `--repo`.
pub fn run(g: &Global) -> Result<ExitCode> {
    let repo = g.repo_location()?.init()?;
    eprintln!("created repository at {}", repo.backend().location());
    Ok(ExitCode::SUCCESS)
}
