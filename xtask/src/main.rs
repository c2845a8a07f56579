//! Project automation: `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! This package is light (anyhow, serde_json, libc): it runs `demo` itself
//! and hands the heavy tasks to the `xtask-heavy` package with the same
//! arguments, so that the README's first command compiles little besides bk.

use std::process::ExitCode;

use xtask::util;

mod demo;

/// The tasks of the `xtask-heavy` package (xtask/heavy).
const HEAVY: [&str; 4] = ["bench", "bench-ftp", "e2e", "e2e-web"];

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  demo     build bk, back up a sample dataset twice into a local repository,
           restore both snapshots and compare them (no server needed)
  bench    benchmark bk against restic and borg on a generated dataset;
           with --ftp, bk's FTP repository and pull mode against restic
           (rclone), duplicity, rclone sync and lftp on a local pure-ftpd
           (`cargo xtask bench --help`, `cargo xtask bench --ftp --help`)
  bench-ftp
           benchmark bk-ftp against curl and lftp on a local pure-ftpd
           (`cargo xtask bench-ftp --help` for its options)
  e2e      end-to-end scenarios through the bk binary against an FTP server
           started on 127.0.0.1 (`cargo xtask e2e --help` for its options)
  e2e-web  the web UI in headless Chromium against `bk web` and an FTP server,
           with a screenshot of each screen (`cargo xtask e2e-web --help`)
  help     print this message
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let rest: Vec<String> = args.collect();
    let result = match cmd.as_deref() {
        Some(c) if HEAVY.contains(&c) => return run_heavy(c, &rest),
        Some("demo") => demo::run(rest),
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
    util::exit_code(result)
}

/// `cargo run -p xtask-heavy -- CMD ARGS` (from the caller's directory, so
/// that relative paths in ARGS keep their meaning), with its exit code.
fn run_heavy(cmd: &str, args: &[String]) -> ExitCode {
    let manifest = util::workspace_root().join("Cargo.toml");
    let mut c = util::cargo_command();
    c.arg("run")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "xtask-heavy", "--", cmd])
        .args(args);
    match c.status() {
        Ok(st) => match st.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => {
                eprintln!("xtask: {cmd} ended by {st}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("xtask: error: running cargo run -p xtask-heavy: {e}");
            ExitCode::FAILURE
        }
    }
}
