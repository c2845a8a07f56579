//! `bk ls`: the entries of a snapshot.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use anyhow::Result;
use bk_core::Select;
use bk_core::tree::{NodeKind, display_path};
use clap::Args as ClapArgs;

use crate::connect::{Global, print_notes};
use crate::exit;
use crate::render::mode_string;

/// List the entries of a snapshot (the latest unless ID).
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The dataset.
    dataset: String,
    /// Snapshot number.
    id: Option<u64>,
    /// Only under this path.
    path: Option<OsString>,
}

/// One line per entry; directories that cannot be read are named on
/// stderr and make the exit code partial.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let repo = g.open()?;
    let sel = a.id.map_or(Select::Latest, Select::Id);
    let snap = repo.find_snapshot(&a.dataset, sel)?;
    let (entries, unreadable) =
        bk_core::list_snapshot_partial(&repo, &snap, a.path.as_ref().map(|p| p.as_bytes()))?;
    print_notes(&repo);
    for e in entries {
        let n = &e.node;
        let t = chrono::DateTime::from_timestamp(n.mtime, n.mtime_nsec)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        let mut line = format!(
            "{} {:>12} {} {}",
            mode_string(n),
            n.size,
            t,
            display_path(&e.path)
        );
        if n.kind == NodeKind::Symlink {
            line.push_str(" -> ");
            line.push_str(&display_path(&n.target));
        }
        println!("{line}");
    }
    for u in &unreadable {
        let dir = if u.path.is_empty() {
            ".".to_string()
        } else {
            display_path(&u.path)
        };
        eprintln!(
            "bk: error: {dir}: directory contents not listed: {}",
            u.reason
        );
    }
    if unreadable.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(exit::PARTIAL))
    }
}
