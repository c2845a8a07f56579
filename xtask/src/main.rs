//! Project automation: `cargo xtask <command>` (alias in `.cargo/config.toml`).

use std::process::ExitCode;

mod bench;
mod bench_ftp;
mod bench_over_ftp;
mod demo;
mod e2e;
mod e2e_web;
mod flags;
mod proxy;

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
        Some("bench") => bench::run(rest),
        Some("bench-ftp") => bench_ftp::run(rest),
        Some("demo") => demo::run(rest),
        Some("e2e") => e2e::run(rest),
        Some("e2e-web") => e2e_web::run(rest),
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

/// `cargo` (the one running us, if any), without the variables `cargo run`
/// set for this binary: build scripts that watch them (ring's watches
/// `CARGO_PKG_NAME` and `CARGO_MANIFEST_DIR`) would otherwise rerun, and
/// their crates rebuild, every time the build switches between a plain
/// `cargo build` and one started from `cargo xtask`.
/// Cargo's target directory (`CARGO_TARGET_DIR`, relative to the root, or `target`).
pub(crate) fn target_dir(root: &std::path::Path) -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    }
}

pub(crate) fn cargo_command() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = std::process::Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            c.env_remove(key);
        }
    }
    c
}
