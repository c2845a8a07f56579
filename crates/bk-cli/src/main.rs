//! `bk`: versioned, deduplicated backups of datasets.
//!
//! Each command is a module of `cmd/` with its flags and its `run`; the
//! global flags and the secrets they lead to are in `connect.rs`. Commands
//! parse input, call a bk-core operation and render its result; they never
//! pick a connector or assemble a pipeline themselves.

// Doc comments here are clap's --help text (`host[:port]` is not a link).
#![allow(rustdoc::broken_intra_doc_links)]

mod cmd;
mod connect;
mod exit;
mod progress;
mod render;
mod signals;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use cmd::{backup, check, diff, ls, repair, restore, snapshots, unlock, web};

#[derive(Parser, Debug)]
#[command(
    name = "bk",
    version,
    about = "Versioned, deduplicated backups of datasets"
)]
struct Cli {
    #[command(flatten)]
    global: connect::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a repository.
    Init,
    /// Back up a directory as a new snapshot of its dataset.
    Backup(backup::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// Restore a snapshot (the latest unless --id or --before).
    Restore(restore::Args),
    /// Show what was added, modified and deleted between two snapshots.
    Diff(diff::Args),
    /// List the entries of a snapshot (the latest unless ID).
    Ls(ls::Args),
    /// Verify the repository; with --read-data, every stored byte.
    Check(check::Args),
    /// Remove the repository lock left by a process that is gone (a lock of
    /// a process still running on this machine needs --force).
    Unlock(unlock::Args),
    /// Repair a damaged repository (see the README, "When a repository is
    /// damaged").
    #[command(subcommand)]
    Repair(repair::Command),
    /// Serve the web UI: back up and recover datasets from a browser.
    Web(web::Args),
}

fn main() -> ExitCode {
    // Packs and chunk buffers are megabytes each. With glibc's adaptive
    // threshold, freed ones stay in the heap and inflate the RSS; a fixed
    // threshold keeps every large buffer in its own mapping, returned on free.
    // SAFETY: mallopt only changes allocator tuning; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_of(&e);
            if code == exit::INTERRUPTED {
                match e.downcast_ref::<exit::Interrupted>() {
                    Some(what) => eprintln!("bk: interrupted: {what}"),
                    None => eprintln!("bk: interrupted"),
                }
            } else {
                eprintln!("bk: error: {}", one_line(&e));
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match &cli.command {
        Command::Init => cmd::init::run(g),
        Command::Backup(a) => backup::run(g, a),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Diff(a) => diff::run(g, a),
        Command::Ls(a) => ls::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Unlock(a) => unlock::run(g, a),
        Command::Repair(c) => repair::run(g, c),
        Command::Web(a) => web::run(g, a),
    }
}

/// The error and its causes on one line, each cause once.
fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    // Context layers add the action; the root cause adds the detail.
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}
