//! `bk snapshots`: list snapshots.

use std::process::ExitCode;

use anyhow::Result;
use bk_core::Snapshot;
use clap::Args as ClapArgs;

use crate::connect::{Global, print_notes};
use crate::render::human;

/// List snapshots.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Only this dataset.
    #[arg(long)]
    dataset: Option<String>,
    /// JSON array on stdout.
    #[arg(long)]
    json: bool,
}

/// Print the snapshots, as a table or JSON.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let repo = g.open()?;
    let snaps = repo.snapshots(a.dataset.as_deref())?;
    print_notes(&repo);
    if a.json {
        let v: Vec<_> = snaps.iter().map(Snapshot::summary).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:>5}  {:<19}  {:<5} {:>8} {:>10} {:>7} {:>7} {:>7} {:>10}",
        "dataset", "id", "time", "type", "files", "size", "added", "modif", "deleted", "stored"
    );
    for s in &snaps {
        // A `!` marks a partial snapshot (footnote below).
        let id = if s.warnings.is_empty() {
            format!("{} ", s.id)
        } else {
            format!("{}!", s.id)
        };
        println!(
            "{:<20} {:>5}  {:<19}  {:<5} {:>8} {:>10} {:>7} {:>7} {:>7} {:>10}",
            s.dataset,
            id,
            s.time
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S"),
            if s.full { "full" } else { "incr" },
            s.stats.files,
            human(s.stats.bytes),
            s.stats.added,
            s.stats.modified,
            s.stats.deleted,
            human(s.stats.stored_bytes)
        );
    }
    let partial = snaps.iter().filter(|s| !s.warnings.is_empty()).count();
    if partial > 0 {
        println!(
            "! partial: {partial} snapshot(s) lack entries the backup could not read \
             (`bk snapshots --json` lists them; `bk restore` names them)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
