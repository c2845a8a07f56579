//! `bk unlock`: remove a stale repository lock.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::connect::Global;

/// Remove the repository lock left by a process that is gone (a lock of
/// a process still running on this machine needs --force).
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Remove the lock even if its process is still running here.
    #[arg(long)]
    force: bool,
}

/// Remove the lock, naming whose it was.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let repo = g.open()?;
    match repo.unlock(a.force)? {
        Some(h) => eprintln!("removed the lock held by {}", h.describe()),
        None => eprintln!("the repository was not locked"),
    }
    Ok(ExitCode::SUCCESS)
}
