//! `bk diff`: what changed between two snapshots.

use std::process::ExitCode;

use anyhow::Result;
use bk_core::tree::{NodeKind, display_path};
use bk_core::{Change, Select};
use clap::Args as ClapArgs;

use crate::connect::{Global, print_notes};

/// Show what was added, modified and deleted between two snapshots.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The dataset.
    dataset: String,
    /// Older snapshot number.
    a: u64,
    /// Newer snapshot number.
    b: u64,
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Print one line per change (`+`, `M`, `-`), or JSON.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let repo = g.open()?;
    let sa = repo.find_snapshot(&a.dataset, Select::Id(a.a))?;
    let sb = repo.find_snapshot(&a.dataset, Select::Id(a.b))?;
    let changes = bk_core::diff_snapshots(&repo, &sa, &sb)?;
    print_notes(&repo);
    let mut out = serde_json::json!({"added": [], "modified": [], "deleted": []});
    for (c, p, n) in &changes {
        let mut name = display_path(p);
        if n.kind == NodeKind::Dir {
            name.push('/');
        }
        let (key, sign) = match c {
            Change::Added => ("added", '+'),
            Change::Modified => ("modified", 'M'),
            Change::Deleted => ("deleted", '-'),
        };
        if a.json {
            out[key].as_array_mut().expect("array").push(name.into());
        } else {
            println!("{sign} {name}");
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(ExitCode::SUCCESS)
}
