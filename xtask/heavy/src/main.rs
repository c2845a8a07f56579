//! The heavy xtask tasks (FTP servers, a WebDriver client, tokio): `cargo
//! xtask e2e|e2e-web|bench|bench-ftp` runs this binary with the same
//! arguments (`cargo run -p xtask-heavy -- <command> …`). The helpers the
//! tasks share live in the light `xtask` package (`xtask::util`); the
//! modules here that are not tasks (`browser`, `counting_proxy`, `proxy`)
//! serve the tasks, and no task imports another.

use std::process::ExitCode;

use xtask::util;

mod bench;
mod bench_ftp;
mod bench_over_ftp;
mod browser;
mod counting_proxy;
mod e2e;
mod e2e_web;
mod proxy;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let rest: Vec<String> = args.collect();
    let result = match cmd.as_deref() {
        Some("bench") if rest.iter().any(|a| a == "--ftp") => {
            bench_over_ftp::run(rest.into_iter().filter(|a| a != "--ftp").collect())
        }
        Some("bench") => bench::run(rest),
        Some("bench-ftp") => bench_ftp::run(rest),
        Some("e2e") => e2e::run(rest),
        Some("e2e-web") => e2e_web::run(rest),
        other => {
            eprintln!("xtask-heavy: unknown command {other:?}; run `cargo xtask help`");
            return ExitCode::from(2);
        }
    };
    util::exit_code(result)
}
