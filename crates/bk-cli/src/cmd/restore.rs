//! `bk restore`: write a snapshot (or one path of it) to a directory or an
//! FTP server.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use bk_core::location::Role;
use bk_core::{RestoreOptions, RestoreReport, Select};
use clap::Args as ClapArgs;

use crate::connect::{Global, print_notes};
use crate::exit;
use crate::progress::Bar;
use crate::render::{first_few, human};
use crate::signals::cancel_on_signals;

/// Restore a snapshot (the latest unless --id or --before).
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The dataset.
    dataset: String,
    /// Output: a directory (absent or empty unless --overwrite), or
    /// ftp://user@host[:port]/path or ftps://….
    #[arg(long, value_name = "OUT")]
    to: PathBuf,
    /// Snapshot number.
    #[arg(long, conflicts_with = "before")]
    id: Option<u64>,
    /// The newest snapshot strictly before this time: YYYY-MM-DD (local
    /// midnight), "YYYY-MM-DD HH:MM[:SS]" (local) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    /// Only this file or directory (relative to the dataset root). Give it
    /// several times to restore several; each keeps its place under OUT.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    path: Vec<OsString>,
    /// Restore into a non-empty directory: entries the snapshot has are
    /// replaced, others are kept (and listed); a directory where the
    /// snapshot has a file is kept and reported unless --delete.
    #[arg(long)]
    overwrite: bool,
    /// Make the output an exact copy of the snapshot: like --overwrite,
    /// and remove everything the snapshot does not have (each removed
    /// path is listed). Local output directories only.
    #[arg(long)]
    delete: bool,
}

/// Restore, then report what was written and what was not.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let cancel = cancel_on_signals()?;
    let select = match (a.id, &a.before) {
        (Some(n), _) => Select::Id(n),
        (None, Some(t)) => Select::Before(bk_core::parse_time(t)?),
        (None, None) => Select::Latest,
    };
    let to = g.location(&a.to, Role::Target)?;
    let repo = g.open()?;
    let bar = Bar::new(g.quiet);
    let mut opts = RestoreOptions::new(select)
        .overwrite(a.overwrite)
        .delete(a.delete)
        .progress(bar.clone())
        .cancel(cancel);
    opts = opts.paths(a.path.iter().map(|p| p.as_bytes().to_vec()));
    let report = bk_core::ops::restore::restore_to(&repo, &a.dataset, &to, &opts);
    bar.finish();
    print_notes(&repo);
    let report = report.map_err(|e| {
        exit::interrupted(e, || {
            let (done, total) = bar.files();
            format!(
                "{done} of {total} files were restored to {to}, each complete; no file is partially written; \
                 run the same restore with --overwrite to finish it"
            )
        })
    })?;
    Ok(print_restore(&report, &to.to_string()))
}

/// Report a restore on stderr; the exit code.
fn print_restore(report: &RestoreReport, to: &str) -> ExitCode {
    let o = &report.outcome;
    let c = &report.changes;
    for e in &o.errors {
        eprintln!("bk: error: {}: {}", e.path, e.message);
    }
    for p in &c.removed {
        eprintln!("removed {p}");
    }
    if !c.replaced.is_empty() {
        eprintln!(
            "replaced {} existing entries: {}",
            c.replaced.len(),
            first_few(&c.replaced)
        );
    }
    if !c.kept.is_empty() {
        eprintln!(
            "kept {} entries not in the snapshot (use --delete to remove them): {}",
            c.kept.len(),
            first_few(&c.kept)
        );
    }
    if !c.leftovers.is_empty() {
        eprintln!(
            "removed {} temporary file(s) left by an interrupted restore",
            c.leftovers.len()
        );
    }
    let s = &report.snapshot;
    eprintln!(
        "restored snapshot {} of {:?} ({}) to {}: {} files, {}",
        s.id,
        s.dataset,
        s.time.format("%Y-%m-%d %H:%M:%S %:z"),
        to,
        o.files,
        human(o.bytes)
    );
    if !report.not_backed_up.is_empty() {
        eprintln!(
            "bk: warning: snapshot {} of {:?} is partial; the backup could not read these, so they are not restored:",
            s.id, s.dataset
        );
        for w in &report.not_backed_up {
            eprintln!("bk: warning: {}: {}", w.path, w.message);
        }
    }
    if !o.errors.is_empty() {
        eprintln!(
            "bk: {} entries could not be restored (named above)",
            o.errors.len()
        );
    }
    if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    }
}
