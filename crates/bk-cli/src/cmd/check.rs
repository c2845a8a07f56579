//! `bk check`: verify the repository.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;

use bk_core::CheckOptions;

use crate::connect::{Global, print_notes};
use crate::exit;
use crate::progress::Bar;
use crate::signals::cancel_on_signals;

/// Verify the repository; with --read-data, every stored byte.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Read all packs and verify every blob.
    #[arg(long)]
    read_data: bool,
}

/// Check under the repository lock; exit 1 when anything is wrong.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let cancel = cancel_on_signals()?;
    let repo = g.open()?;
    let lock = repo.lock("check")?;
    // The structural check is quick: a bar only for reading the packs.
    let bar = Bar::new(g.quiet || !a.read_data);
    let opts = CheckOptions::new()
        .read_data(a.read_data)
        .progress(bar.clone())
        .cancel(cancel);
    let r = bk_core::check_with(&repo, &opts);
    bar.finish();
    drop(lock);
    print_notes(&repo);
    let r = r.map_err(|e| {
        exit::interrupted(e, || {
            "the check stopped before it finished; run it again for a verdict".into()
        })
    })?;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    for e in &r.errors {
        eprintln!("bk: error: {e}");
    }
    eprintln!(
        "checked {} snapshots, {} packs, {} blobs{}",
        r.snapshots,
        r.packs,
        r.blobs,
        if a.read_data {
            format!(", read {} packs", r.packs_read)
        } else {
            String::new()
        }
    );
    if r.ok() {
        eprintln!("no errors found");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("bk: check found {} error(s)", r.errors.len());
        Ok(ExitCode::from(1))
    }
}
