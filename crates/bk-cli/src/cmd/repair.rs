//! `bk repair index` and `bk repair snapshots`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::connect::{Global, print_notes};
use crate::exit;

/// Repair a damaged repository (see the README, "When a repository is
/// damaged").
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Rebuild the index from the packs, verifying every blob; blobs that no
    /// sound pack holds are left out (the next backup stores them again
    /// from the source where it still has them).
    Index,
    /// Name, per snapshot, the files that can no longer be restored.
    Snapshots {
        /// Rewrite those snapshots (same numbers) without the lost files;
        /// what was removed is recorded in their warnings.
        #[arg(long)]
        forget_damaged: bool,
    },
}

/// Run the repair asked for.
pub fn run(g: &Global, c: &Command) -> Result<ExitCode> {
    match c {
        Command::Index => index(g),
        Command::Snapshots { forget_damaged } => snapshots(g, *forget_damaged),
    }
}

fn index(g: &Global) -> Result<ExitCode> {
    let repo = g.open()?;
    let r = bk_core::ops::repair::repair_index(&repo);
    print_notes(&repo);
    let r = r?;
    for p in &r.packs_lost {
        eprintln!("bk: warning: nothing could be used from {p}");
    }
    for p in &r.packs_rewritten {
        eprintln!("{p} had lost its header: its sound blobs were copied into a new pack");
    }
    eprintln!(
        "rebuilt the index from {} packs: {} blobs indexed, {} blobs lost, {} old index files replaced",
        r.packs_read, r.blobs, r.blobs_lost, r.old_index_files
    );
    if r.blobs_lost > 0 {
        eprintln!(
            "next: `bk repair snapshots` names the files that lost data; a backup of each dataset stores again what its source still has"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshots(g: &Global, forget_damaged: bool) -> Result<ExitCode> {
    let repo = g.open()?;
    let r = bk_core::ops::repair::repair_snapshots(&repo, forget_damaged);
    print_notes(&repo);
    let r = r?;
    for s in &r {
        for (path, why) in &s.lost {
            println!("{}\t{}\t{}\t{}", s.dataset, s.id, path, why);
        }
        eprintln!(
            "snapshot {} of {:?}: {} entries cannot be restored{}",
            s.id,
            s.dataset,
            s.lost.len(),
            if s.rewritten {
                "; rewritten without them"
            } else {
                ""
            }
        );
    }
    if r.is_empty() {
        eprintln!("every snapshot restores in full");
        Ok(ExitCode::SUCCESS)
    } else if forget_damaged {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "bk: {} snapshot(s) refer to lost data; `bk repair snapshots --forget-damaged` rewrites them without it",
            r.len()
        );
        Ok(ExitCode::from(exit::PARTIAL))
    }
}
