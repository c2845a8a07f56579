//! `bk backup`: a new snapshot of a dataset.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bk_core::location::Role;
use bk_core::ops::backup::default_threads;
use bk_core::{BackupOptions, Snapshot};
use clap::Args as ClapArgs;

use crate::connect::{Global, print_notes};
use crate::exit;
use crate::progress::Bar;
use crate::render::human;
use crate::signals::cancel_on_signals;

/// Back up a directory as a new snapshot of its dataset.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The dataset: a local directory, or ftp://user@host[:port]/path or
    /// ftps://… (pulled from the server).
    path: PathBuf,
    /// Dataset name (default: the directory's last component).
    #[arg(long)]
    dataset: Option<String>,
    /// Re-read and re-hash every file instead of trusting size, mtime, ctime and inode.
    #[arg(long)]
    full: bool,
    /// Trust size, mtime and inode alone, for file systems whose ctime
    /// means nothing (a change that puts the mtime back is then missed).
    #[arg(long)]
    ignore_ctime: bool,
    /// Leave out paths matching this gitignore-style pattern (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Stay on the dataset's file system: a mount point inside it is
    /// recorded as an empty directory (each named once on stderr).
    #[arg(long)]
    one_file_system: bool,
    /// Print the new snapshot as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

/// Back up `a.path` into the repository (created if absent).
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let cancel = cancel_on_signals()?;
    let loc = g.location(&a.path, Role::Dataset)?;
    let src = loc.source(&a.exclude)?;
    let name = match &a.dataset {
        Some(d) => loc.dataset_name(Some(d)).context("--dataset")?,
        None => loc.dataset_name(None)?,
    };
    let repo = g.open_or_init()?;
    let opts = BackupOptions::new(name)
        .full(a.full)
        .dataset_given(a.dataset.is_some())
        .ignore_ctime(a.ignore_ctime)
        .one_file_system(a.one_file_system)
        .threads(a.threads.unwrap_or_else(default_threads))
        .cancel(cancel);
    let bar = Bar::new(g.quiet);
    let res = bk_core::backup(&repo, &*src, &opts.progress(bar.clone()));
    bar.finish();
    let retries = print_notes(&repo);
    let snap = res.map_err(|e| exit::interrupted(e, || "nothing was committed".into()))?;
    for w in &snap.warnings {
        eprintln!("bk: warning: {}: {}", w.path, w.message);
    }
    let s = &snap.stats;
    eprintln!(
        "snapshot {} of {:?} saved: {} files, {}, +{} ~{} -{}, {} new in {:.1}s{}",
        snap.id,
        snap.dataset,
        s.files,
        human(s.bytes),
        s.added,
        s.modified,
        s.deleted,
        human(s.stored_bytes),
        s.duration_ms as f64 / 1000.0,
        match retries {
            0 => String::new(),
            n => format!(", {n} transfer(s) retried"),
        }
    );
    if a.json {
        println!("{}", backup_json(&snap, retries)?);
    }
    if snap.warnings.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "bk: {} problem(s): the snapshot was saved without the entries named above",
            snap.warnings.len()
        );
        Ok(ExitCode::from(exit::PARTIAL))
    }
}

/// The backup's JSON summary, with the number of retried transfers.
fn backup_json(snap: &Snapshot, retries: usize) -> Result<String> {
    let mut v = serde_json::to_value(snap.summary())?;
    v["retries"] = retries.into();
    Ok(serde_json::to_string_pretty(&v)?)
}
