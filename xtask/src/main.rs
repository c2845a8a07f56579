//! Project automation: `cargo xtask <command>` (alias in `.cargo/config.toml`).

use std::process::ExitCode;

mod bench;
mod demo;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  demo     build bk, back up a sample dataset twice into a local repository,
           restore both snapshots and compare them (no server needed)
  bench    benchmark bk against restic and borg on a generated dataset
           (`cargo xtask bench --help` for its options)
  help     print this message
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let rest: Vec<String> = args.collect();
    let result = match cmd.as_deref() {
        Some("bench") => bench::run(rest),
        Some("demo") => demo::run(rest),
        Some("e2e") => Err(anyhow::anyhow!("`e2e` is not implemented yet")),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprint!("xtask: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
