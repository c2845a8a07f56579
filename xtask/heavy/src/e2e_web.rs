//! `cargo xtask e2e-web`: the web UI's browser scenario ([`crate::browser`])
//! on its own: starts the embedded FTP server, builds bk, runs the scenario
//! (and with `--perf` the UI-vs-CLI timing) and prints each check.

use std::fs;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bk_testkit::{ServerKind, ServerOptions, TestServer};
use xtask::util;
use xtask::util::build::{Profile, build_bk};

use crate::browser::{browser_scenario, perf_scenario};

const HELP: &str = "\
usage: cargo xtask e2e-web [--screenshots DIR] [--perf SCALE] [--keep]

Runs the web UI in headless Chromium against `bk web` and an embedded FTP
server, and saves a screenshot of each screen (default directory
target/e2e-web/screenshots; pass --screenshots docs/screenshots to update the
committed ones). Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian:
apt-get install chromium chromium-driver).

  --screenshots DIR  where to write the PNGs
  --perf SCALE       also time a backup of the bench dataset (tests/bench/
                     gen_dataset.py at SCALE; 1.0 is its default, ~1.65 GB)
                     started from the UI against the same `bk backup`, and
                     check that the job page updates at least once a second
  --keep             keep the work directory (target/e2e-web/work)
";

pub fn run(args: Vec<String>) -> Result<()> {
    let mut shots: Option<PathBuf> = None;
    let mut keep = false;
    let mut perf: Option<f64> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--screenshots" => shots = Some(it.next().context("--screenshots DIR")?.into()),
            "--keep" => keep = true,
            "--perf" => {
                let v = it.next().context("--perf SCALE")?;
                perf = Some(
                    v.parse()
                        .with_context(|| format!("--perf {v:?}: not a number"))?,
                );
            }
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n\n{HELP}"),
        }
    }
    let root = util::workspace_root();
    let out = util::target_dir(&root).join("e2e-web");
    let shots = match shots {
        Some(p) if p.is_absolute() => p,
        Some(p) => std::env::current_dir()?.join(p),
        None => out.join("screenshots"),
    };
    let work = out.join("work");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let bk = build_bk(&root, Profile::Debug)?;
    let password = format!(
        "e2e-web-{:x}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
    );
    let server = TestServer::start(
        ServerKind::Embedded,
        ServerOptions {
            user: "e2e".into(),
            password: password.clone(),
            ..ServerOptions::default()
        },
    )
    .context("starting the embedded FTP server")?;
    let t = Instant::now();
    let mut checks = browser_scenario(&bk, &server, &password, &work, &shots)?;
    if let Some(scale) = perf {
        checks.extend(perf_scenario(&bk, &root, &work.join("perf"), scale)?);
    }
    for (name, ok) in &checks {
        println!("{} {name}", if *ok { "PASS" } else { "FAIL" });
    }
    let failed: Vec<_> = checks.iter().filter(|(_, ok)| !ok).collect();
    println!(
        "\ne2e-web: {} passed, {} failed ({:.1} s); screenshots in {}",
        checks.len() - failed.len(),
        failed.len(),
        t.elapsed().as_secs_f64(),
        shots.display()
    );
    if !keep {
        let _ = fs::remove_dir_all(&work);
    }
    if !failed.is_empty() {
        bail!("{} browser check(s) failed", failed.len());
    }
    Ok(())
}
