//! `cargo xtask e2e`: end-to-end scenarios through the real `bk` binary
//! against an FTP server started on loopback by bk-testkit.
//!
//! 1. local dataset → FTP repository (backup, mutate, backup; restore by
//!    `--id` and `--before`; `check --read-data`);
//! 2. FTP dataset → local repository (pull; incremental reads; no-change run);
//! 3. restore to an FTP directory (with and without symlinks, `--overwrite`);
//! 4. faults: a TCP proxy in front of the server cuts control and data
//!    connections (passive replies are rewritten to relay data through it);
//!    a backup either commits or fails cleanly, and the repository stays valid;
//! 5. secrets: the FTP password appears in no output, repository or restore.
//!
//! Every bk invocation's stdout/stderr is kept under `target/e2e/<server>/logs/`
//! (with the command lines in `logs/commands.txt`); the summary goes to stdout,
//! `target/e2e/results-<server>.md` and `target/e2e/results.md` (all servers).

// tidy: long file: the e2e scenarios 1 to 6 and their shared context; one file per scenario is left until scenario 4's fault assertions (changed on another branch for issue 10) have landed

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bk_testkit::{ServerKind, ServerOptions, TestServer};
use serde_json::Value;

use xtask::util;
use xtask::util::build::{Profile, build_bk};
use xtask::util::dataset;
use xtask::util::files::{claim_work_dir, read_full};
use xtask::util::machine::date_utc;
use xtask::util::process::show;

use crate::proxy::{ConnRecord, FaultPlan, FaultProxy};

const HELP: &str = "\
usage: cargo xtask e2e [--server KIND] [--seeds N] [--scale F] [options]

Builds bk (dev profile), starts an FTP server on 127.0.0.1 with bk-testkit and runs
end-to-end scenarios through the bk binary: (1) local dataset -> FTP repository,
(2) FTP dataset -> local repository, (3) restore to an FTP directory, (4) a
connection-cutting proxy in front of the server (control and data connections),
(5) a password leak scan, (6) the web UI in headless Chromium (`bk web`; needs
chromium and chromium-driver; screenshots in the work directory).
Prints PASS/FAIL per scenario and a summary table (also written to
target/e2e/results.md); exits non-zero when a scenario fails.

options:
  --server KIND      embedded (default, in process), pure-ftpd, vsftpd or proftpd
                     (external daemons: need root; set BK_FTP_SERVERS_ROOT to the
                     directory filled by crates/bk-testkit/install-ftp-servers.sh
                     unless they are installed in /usr/sbin)
  --seeds N          fault-injection seeds for scenario 4 (default 20)
  --scale F          dataset scale for scenarios 1-3 (default 0.01, ~30 MB)
  --fault-scale F    dataset scale for scenario 4 (default 0.003)
  --seed N           dataset generator seed (default 1)
  --timeout SECS     limit per bk invocation (default 600)
  --cut-max BYTES    scenario 4: cut points are uniform in 200..BYTES (default 6000;
                     bk's control connections carry ~500-6000 bytes per backup)
  --cut-percent P    scenario 4: chance that a control connection is cut (default 50)
  --data-cut-max B   scenario 4: data connections are cut after 100..B bytes, drawn
                     log-uniformly (default 8388608, half a pack)
  --data-cut-percent P
                     scenario 4: chance that a data connection is cut (default 40)
                     Scenario 4 fails unless at least as many cuts land as there
                     are seeds (with both percentages 0 there is nothing to count).
  --only LIST        comma list of scenario numbers to run (default 1,2,3,4,5,6;
                     3 needs 1)
  --keep             keep datasets, repositories and restores after a passing run
                     (default: keep only logs/; everything is kept on failure)
";

const DATASET: &str = "ds";
const WORK_TAG: &str = ".xtask-e2e";
/// The fault proxy: cut point range start, hard time limit.
const CUT_MIN: u64 = 200;
/// The fault proxy: data connections' cut points start here (log-uniform).
const DATA_CUT_MIN: u64 = 100;
const PROXY_MAX_RUN: Duration = Duration::from_secs(30 * 60);
/// Scenario 2: the second backup may read at most this much more than changed.
const READ_SLACK: f64 = 1.2;

#[derive(Debug, Clone)]
struct Opts {
    server: ServerKind,
    seeds: u64,
    scale: f64,
    fault_scale: f64,
    seed: u64,
    timeout: Duration,
    /// Upper end (exclusive) of the proxy's cut point range.
    cut_max: u64,
    /// Probability (percent) that the proxy cuts a connection.
    cut_percent: u64,
    /// Upper end (exclusive) of a data connection's cut point range.
    data_cut_max: u64,
    /// Probability (percent) that the proxy cuts a data connection.
    data_cut_percent: u64,
    only: Vec<u32>,
    keep: bool,
}

fn parse_args(args: Vec<String>) -> Result<Option<Opts>> {
    let mut o = Opts {
        server: ServerKind::Embedded,
        seeds: 20,
        scale: 0.01,
        fault_scale: 0.003,
        seed: 1,
        timeout: Duration::from_secs(600),
        cut_max: 6_000,
        cut_percent: 50,
        data_cut_max: 8 << 20,
        data_cut_percent: 40,
        only: vec![1, 2, 3, 4, 5, 6],
        keep: false,
    };
    let positive = |flag: &str, v: &str| -> Result<f64> {
        let x: f64 = v
            .parse()
            .with_context(|| format!("{flag} {v:?}: not a number"))?;
        if !(x.is_finite() && x > 0.0) {
            bail!("{flag} must be positive");
        }
        Ok(x)
    };
    let mut a = util::flags::Flags::new(args);
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--server" => {
                let v = a.value()?;
                o.server = v.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            }
            "--seeds" => {
                let v = a.value()?;
                o.seeds = v
                    .parse()
                    .with_context(|| format!("--seeds {v:?}: not a non-negative integer"))?;
            }
            "--scale" => o.scale = positive("--scale", &a.value()?)?,
            "--fault-scale" => o.fault_scale = positive("--fault-scale", &a.value()?)?,
            "--seed" => {
                let v = a.value()?;
                o.seed = v
                    .parse()
                    .with_context(|| format!("--seed {v:?}: not a non-negative integer"))?;
            }
            "--timeout" => {
                o.timeout = Duration::from_secs_f64(positive("--timeout", &a.value()?)?);
            }
            "--cut-max" => {
                let v = a.value()?;
                o.cut_max =
                    v.parse().ok().filter(|&n| n > CUT_MIN).with_context(|| {
                        format!("--cut-max {v:?}: not an integer above {CUT_MIN}")
                    })?;
            }
            "--cut-percent" => {
                let v = a.value()?;
                o.cut_percent =
                    v.parse().ok().filter(|&n| n <= 100).with_context(|| {
                        format!("--cut-percent {v:?}: not an integer in 0..=100")
                    })?;
            }
            "--data-cut-max" => {
                let v = a.value()?;
                o.data_cut_max =
                    v.parse()
                        .ok()
                        .filter(|&n| n > DATA_CUT_MIN)
                        .with_context(|| {
                            format!("--data-cut-max {v:?}: not an integer above {DATA_CUT_MIN}")
                        })?;
            }
            "--data-cut-percent" => {
                let v = a.value()?;
                o.data_cut_percent = v.parse().ok().filter(|&n| n <= 100).with_context(|| {
                    format!("--data-cut-percent {v:?}: not an integer in 0..=100")
                })?;
            }
            "--only" => {
                o.only.clear();
                for s in a
                    .value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    match s.parse::<u32>() {
                        Ok(n @ 1..=6) => o.only.push(n),
                        _ => bail!("--only: {s:?} is not a scenario number (1-6)"),
                    }
                }
            }
            "--keep" if a.bare() => o.keep = true,
            _ => bail!("unknown argument {:?}\n\n{HELP}", a.arg()),
        }
    }
    Ok(Some(o))
}

pub fn run(args: Vec<String>) -> Result<()> {
    let Some(opts) = parse_args(args)? else {
        return Ok(());
    };
    let root = util::workspace_root();
    if !opts.server.is_installed() {
        bail!(bk_testkit::StartError::NotInstalled(opts.server));
    }
    let bk = build_bk(&root, Profile::Debug)?;
    let bk_version = Command::new(&bk)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let out_dir = util::target_dir(&root).join("e2e");
    let work = out_dir.join(opts.server.name());
    prepare_work(&work)?;
    let logs = work.join("logs");
    fs::create_dir_all(&logs)?;

    let password = make_password()?;
    let server_opts = ServerOptions {
        user: "e2e".to_owned(),
        password: password.clone(),
        ..ServerOptions::default()
    };
    let t_server = Instant::now();
    let server = TestServer::start(opts.server, server_opts)
        .with_context(|| format!("starting {}", opts.server))?;
    println!(
        "e2e: {} at ftp://{}@{}{} (started in {:.1} s), bk {}, work dir {}",
        opts.server,
        server.user(),
        server.addr(),
        server.remote_base(),
        t_server.elapsed().as_secs_f64(),
        bk.display(),
        work.display()
    );
    println!(
        "e2e: FTP password: a random {}-character string (not shown), passed to bk only via BK_FTP_PASSWORD",
        password.len()
    );

    let mut ctx = Ctx {
        root: root.clone(),
        bk: bk.clone(),
        work: work.clone(),
        logs,
        n_log: 0,
        password,
        server,
        opts: opts.clone(),
        bk_runs: 0,
        scans: Vec::new(),
        fault_rows: Vec::new(),
    };

    type ScenarioFn = fn(&mut Ctx, &mut Scenario) -> Result<()>;
    let all: [(u32, &str, ScenarioFn); 6] = [
        (1, "local dataset → FTP repository", scenario_1),
        (2, "FTP dataset → local repository (pull)", scenario_2),
        (3, "restore to an FTP directory", scenario_3),
        (4, "fault injection: connection-cutting proxy", scenario_4),
        (5, "secrets: password never written", scenario_5),
        (6, "web UI in headless Chromium", scenario_6),
    ];
    let t_all = Instant::now();
    let mut scenarios = Vec::new();
    for (n, title, f) in all {
        if !opts.only.contains(&n) {
            continue;
        }
        println!("\n== scenario {n}: {title} [{}]", opts.server);
        let mut sc = Scenario::new(n, title);
        let t = Instant::now();
        if let Err(e) = f(&mut ctx, &mut sc) {
            sc.check(
                "scenario ran to completion",
                false,
                format!("aborted: {e:#}"),
            );
        }
        sc.secs = t.elapsed().as_secs_f64();
        println!(
            "{} scenario {n}: {title} [{}] ({}/{} checks, {:.1} s)",
            if sc.passed() { "PASS" } else { "FAIL" },
            opts.server,
            sc.checks.iter().filter(|c| c.ok).count(),
            sc.checks.len(),
            sc.secs
        );
        scenarios.push(sc);
    }
    let total_secs = t_all.elapsed().as_secs_f64();

    let info = Info {
        server: opts.server,
        bk_version,
        commit: git_commit(&root),
        date: date_utc(),
        bk_runs: ctx.bk_runs,
        total_secs,
        password_len: ctx.password.len(),
    };
    let md = report(&opts, &info, &scenarios, &ctx.fault_rows);
    fs::write(
        out_dir.join(format!("results-{}.md", opts.server.name())),
        &md,
    )?;
    write_combined(&out_dir)?;
    println!("\n{}", summary_table(&info, &scenarios));
    println!(
        "results: {} (this server: {})",
        out_dir.join("results.md").display(),
        out_dir
            .join(format!("results-{}.md", opts.server.name()))
            .display()
    );

    let failed: Vec<String> = scenarios
        .iter()
        .filter(|s| !s.passed())
        .map(|s| s.n.to_string())
        .collect();
    if failed.is_empty() {
        if !opts.keep {
            for d in ["s1", "s2", "s3", "s4", "refs", "repos", "restores"] {
                let p = ctx.work.join(d);
                if p.exists() {
                    fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
                }
            }
        }
        Ok(())
    } else {
        bail!(
            "{} scenario(s) failed: {} (logs and data kept in {})",
            failed.len(),
            failed.join(", "),
            ctx.work.display()
        )
    }
}

// ---------------------------------------------------------------- context

#[derive(Debug)]
struct Ctx {
    root: PathBuf,
    bk: PathBuf,
    work: PathBuf,
    logs: PathBuf,
    n_log: usize,
    password: String,
    server: TestServer,
    opts: Opts,
    bk_runs: usize,
    /// Secret scans done along the way (trees deleted before scenario 5).
    scans: Vec<ScanResult>,
    fault_rows: Vec<FaultRow>,
}

/// One finished child process.
#[derive(Debug)]
struct Run {
    cmd: String,
    code: Option<i32>,
    timed_out: bool,
    secs: f64,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code_str(&self) -> String {
        match self.code {
            Some(c) => c.to_string(),
            None if self.timed_out => "timeout".to_string(),
            None => "signal".to_string(),
        }
    }

    fn summary(&self) -> String {
        format!("exit {} in {:.1} s", self.code_str(), self.secs)
    }

    /// The command, its exit and the end of its stderr.
    fn failure(&self) -> String {
        let err = self.stderr.trim();
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "`{}` exited {} after {:.1} s{}",
            self.cmd,
            self.code_str(),
            self.secs,
            if tail.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", tail.join(" | "))
            }
        )
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout of `{}` is not JSON", self.cmd))
    }
}

impl Ctx {
    /// `/rel` below the server's writable base.
    fn remote(&self, rel: &str) -> String {
        let base = self.server.remote_base().trim_end_matches('/');
        format!("{base}/{}", rel.trim_start_matches('/'))
    }

    fn url(&self, port: u16, rel: &str) -> String {
        format!(
            "ftp://{}@{}:{port}{}",
            self.server.user(),
            self.server.host(),
            self.remote(rel)
        )
    }

    /// URL of `rel` on the server, not through the proxy.
    fn direct(&self, rel: &str) -> String {
        self.url(self.server.port(), rel)
    }

    /// The local file behind the FTP path `rel`.
    fn server_path(&self, rel: &str) -> PathBuf {
        self.server.local_path(&self.remote(rel))
    }

    fn refs(&self, name: &str) -> PathBuf {
        self.work.join("refs").join(name)
    }

    fn restore_dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.work.join("restores");
        fs::create_dir_all(&d)?;
        Ok(d.join(name))
    }

    /// Runs `cmd` with stdout/stderr captured under `logs/NNN-label.{out,err}`.
    fn exec(&mut self, label: &str, mut cmd: Command, timeout: Duration) -> Result<Run> {
        self.n_log += 1;
        let prefix = self.logs.join(format!("{:03}-{label}", self.n_log));
        let out_path = prefix.with_extension("out");
        let err_path = prefix.with_extension("err");
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out_path).with_context(|| format!("{}", out_path.display()))?)
            .stderr(File::create(&err_path).with_context(|| format!("{}", err_path.display()))?);
        let shown = show(&cmd);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        let mut timed_out = false;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if start.elapsed() > timeout {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let secs = start.elapsed().as_secs_f64();
        let run = Run {
            cmd: shown,
            code: status.and_then(|s| s.code()),
            timed_out,
            secs,
            stdout: String::from_utf8_lossy(&fs::read(&out_path)?).into_owned(),
            stderr: String::from_utf8_lossy(&fs::read(&err_path)?).into_owned(),
        };
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join("commands.txt"))?;
        writeln!(
            f,
            "{:03} [{}] exit {} {:.2}s: {}",
            self.n_log,
            label,
            run.code_str(),
            run.secs,
            run.cmd
        )?;
        Ok(run)
    }

    /// Runs bk with the FTP password in its environment.
    fn bk(&mut self, label: &str, args: impl FnOnce(&mut Command)) -> Result<Run> {
        self.bk_timeout(label, self.opts.timeout, args)
    }

    fn bk_timeout(
        &mut self,
        label: &str,
        timeout: Duration,
        args: impl FnOnce(&mut Command),
    ) -> Result<Run> {
        let mut c = Command::new(&self.bk);
        c.env_remove("BK_REPO")
            .env("BK_FTP_PASSWORD", &self.password)
            .env("RUST_BACKTRACE", "1");
        args(&mut c);
        self.bk_runs += 1;
        self.exec(label, c, timeout)
    }

    fn python(
        &mut self,
        label: &str,
        script: &str,
        args: impl FnOnce(&mut Command),
    ) -> Result<Run> {
        let mut c = dataset::script(&self.root, script);
        args(&mut c);
        self.exec(label, c, Duration::from_secs(1800))
    }

    fn generate(&mut self, seed: u64, out: &Path, scale: f64) -> Result<()> {
        if let Some(p) = out.parent() {
            fs::create_dir_all(p)?;
        }
        let r = self.python("gen", "gen_dataset.py", |c| {
            c.args(["gen", "--seed", &seed.to_string(), "--out"])
                .arg(out)
                .args(["--scale", &scale.to_string()]);
        })?;
        if r.code != Some(0) {
            bail!("{}", r.failure());
        }
        println!("  {} ({})", r.stdout.trim(), out.display());
        Ok(())
    }

    fn mutate(&mut self, seed: u64, version: u32, dir: &Path) -> Result<()> {
        let r = self.python("mutate", "gen_dataset.py", |c| {
            c.args([
                "mutate",
                "--seed",
                &seed.to_string(),
                "--version",
                &version.to_string(),
            ])
            .arg(dir);
        })?;
        if r.code != Some(0) {
            bail!("{}", r.failure());
        }
        println!("  {}", r.stdout.trim());
        Ok(())
    }

    /// `cp -a FROM TO` (TO must not exist).
    fn cp_a(&mut self, from: &Path, to: &Path) -> Result<()> {
        if let Some(p) = to.parent() {
            fs::create_dir_all(p)?;
        }
        let mut c = Command::new("cp");
        c.arg("-a").arg(from).arg(to);
        let r = self.exec("cp", c, Duration::from_secs(600))?;
        if r.code != Some(0) {
            bail!("{}", r.failure());
        }
        Ok(())
    }

    /// Compares with tests/bench/verify_tree.py and records the checks:
    /// content always; mode and mtime when `strict_meta`, else as a note.
    fn compare(
        &mut self,
        sc: &mut Scenario,
        name: &str,
        reference: &Path,
        got: &Path,
        strict_meta: bool,
    ) -> Result<bool> {
        let r = self.python("verify", "verify_tree.py", |c| {
            c.arg(reference).arg(got);
        })?;
        let line = r.stdout.trim().to_string();
        let count = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX)
        };
        let (mode, mtime) = (count("mode_diff"), count("mtime_diff"));
        let content_ok = r.code == Some(0) && line.starts_with("content=OK");
        let detail = if line.is_empty() { r.failure() } else { line };
        let mut ok = sc.check(format!("{name}: content identical"), content_ok, detail);
        if strict_meta {
            ok &= sc.check(
                format!("{name}: modes and mtimes identical"),
                mode == 0 && mtime == 0,
                format!("mode_diff={mode} mtime_diff={mtime}"),
            );
        } else if content_ok && (mode != 0 || mtime != 0) {
            sc.note(format!(
                "{name}: mode_diff={mode} mtime_diff={mtime} (metadata through FTP is best effort; not a failure)"
            ));
        }
        Ok(ok)
    }

    /// Scans a tree for the password (before deleting it).
    fn scan(&mut self, what: &str, dir: &Path) -> Result<()> {
        let r = scan_tree(what, dir, self.password.as_bytes())?;
        self.scans.push(r);
        Ok(())
    }
}

// ---------------------------------------------------------------- checks

#[derive(Debug)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Debug)]
struct Scenario {
    n: u32,
    title: String,
    checks: Vec<Check>,
    notes: Vec<String>,
    secs: f64,
}

impl Scenario {
    fn new(n: u32, title: &str) -> Self {
        Scenario {
            n,
            title: title.to_string(),
            checks: Vec::new(),
            notes: Vec::new(),
            secs: 0.0,
        }
    }

    fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        let (name, detail) = (name.into(), detail.into());
        println!(
            "  [{}] {name}{}{detail}",
            if ok { "ok" } else { "FAIL" },
            if detail.is_empty() { "" } else { ": " }
        );
        self.checks.push(Check { name, ok, detail });
        ok
    }

    /// Checks that `run` exited with one of `codes`.
    fn exit(&mut self, name: &str, run: &Run, codes: &[i32]) -> bool {
        let ok = run.code.is_some_and(|c| codes.contains(&c));
        let detail = if ok { run.summary() } else { run.failure() };
        self.check(name, ok, detail)
    }

    fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        println!("  note: {s}");
        self.notes.push(s);
    }

    fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
}

/// `Some(3)` → `3`, `None` → `?`.
fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// Reads `field` of a backup's `--json` summary.
fn stat(v: &Value, field: &str) -> Option<u64> {
    v.get(field).and_then(Value::as_u64)
}

// ---------------------------------------------------------------- scenario 6

/// The web UI in a real browser (see `e2e_web.rs`): connect, browse, back up
/// twice, recover the state before a time onto the server, compare bytes.
fn scenario_6(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    let work = ctx.work.join("web");
    let shots = work.join("screenshots");
    fs::create_dir_all(&work)?;
    let checks =
        crate::browser::browser_scenario(&ctx.bk, &ctx.server, &ctx.password, &work, &shots)?;
    for (name, ok) in checks {
        sc.check(name, ok, "");
    }
    sc.notes
        .push(format!("screenshots of each screen in {}", shots.display()));
    Ok(())
}

// ---------------------------------------------------------------- scenario 1

fn scenario_1(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    let seed = ctx.opts.seed;
    let ds = ctx.work.join("s1").join(DATASET);
    ctx.generate(seed, &ds, ctx.opts.scale)?;
    let (ref0, ref1) = (ctx.refs("s1-v0"), ctx.refs("s1-v1"));
    ctx.cp_a(&ds, &ref0)?;
    let repo = ctx.direct("repos/s1");

    let b0 = ctx.bk("s1-backup-v0", |c| {
        c.arg("backup").arg(&ds).args(["--repo", &repo, "--json"]);
    })?;
    if !sc.exit("backup v0 into the FTP repository", &b0, &[0]) {
        return Ok(());
    }
    let id0 = stat(&b0.json()?, "id");
    sc.check(
        "backup v0 is snapshot 0",
        id0 == Some(0),
        format!("id {}", opt(id0)),
    );

    ctx.mutate(seed, 1, &ds)?;
    ctx.cp_a(&ds, &ref1)?;
    let b1 = ctx.bk("s1-backup-v1", |c| {
        c.arg("backup").arg(&ds).args(["--repo", &repo, "--json"]);
    })?;
    if !sc.exit("backup v1 into the FTP repository", &b1, &[0]) {
        return Ok(());
    }
    let j1 = b1.json()?;
    sc.check(
        "backup v1 is snapshot 1",
        stat(&j1, "id") == Some(1),
        format!(
            "id {}, +{} ~{} -{}, read {} files / {} bytes, stored {} bytes",
            opt(stat(&j1, "id")),
            stat(&j1, "added").unwrap_or(0),
            stat(&j1, "modified").unwrap_or(0),
            stat(&j1, "deleted").unwrap_or(0),
            stat(&j1, "files_read").unwrap_or(0),
            stat(&j1, "bytes_read").unwrap_or(0),
            stat(&j1, "stored_bytes").unwrap_or(0)
        ),
    );
    let t1 = j1
        .get("time")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let ls = ctx.bk("s1-snapshots", |c| {
        c.args(["snapshots", "--repo", &repo, "--dataset", DATASET, "--json"]);
    })?;
    if sc.exit("snapshots --json", &ls, &[0]) {
        let v = ls.json()?;
        let ids: Vec<u64> = v
            .as_array()
            .map(|a| a.iter().filter_map(|s| stat(s, "id")).collect())
            .unwrap_or_default();
        let t1_listed = v
            .as_array()
            .and_then(|a| a.iter().find(|s| stat(s, "id") == Some(1)))
            .and_then(|s| s.get("time"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        sc.check(
            "snapshots lists 0 and 1 with the backup's time",
            ids == [0, 1] && t1_listed == t1,
            format!("ids {ids:?}, time of 1: {t1_listed}"),
        );
    }

    for (id, reference) in [(0u64, &ref0), (1, &ref1)] {
        let out = ctx.restore_dir(&format!("s1-id{id}"))?;
        let r = ctx.bk(&format!("s1-restore-id{id}"), |c| {
            c.args(["restore", DATASET, "--repo", &repo, "--to"])
                .arg(&out)
                .args(["--id", &id.to_string()]);
        })?;
        if sc.exit(&format!("restore --id {id} to a local dir"), &r, &[0]) {
            ctx.compare(sc, &format!("restore --id {id}"), reference, &out, true)?;
        }
    }

    let out = ctx.restore_dir("s1-before")?;
    let r = ctx.bk("s1-restore-before", |c| {
        c.args(["restore", DATASET, "--repo", &repo, "--to"])
            .arg(&out)
            .args(["--before", &t1]);
    })?;
    if sc.exit(&format!("restore --before {t1}"), &r, &[0]) {
        let picked0 = r.stderr.contains("restored snapshot 0 ");
        sc.check(
            "--before the time of snapshot 1 picks snapshot 0",
            picked0,
            r.stderr.lines().last().unwrap_or("").to_string(),
        );
        ctx.compare(sc, "restore --before", &ref0, &out, true)?;
    }

    let ck = ctx.bk("s1-check", |c| {
        c.args(["check", "--repo", &repo, "--read-data"]);
    })?;
    sc.exit("check --read-data", &ck, &[0]);
    Ok(())
}

// ---------------------------------------------------------------- scenario 2

fn scenario_2(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    let seed = ctx.opts.seed + 1;
    let (ref0, ref1) = (ctx.refs("s2-v0"), ctx.refs("s2-v1"));
    ctx.generate(seed, &ref0, ctx.opts.scale)?;
    // FTP listings do not show symlinks consistently (libunftp's MLSD says
    // type=file with the link's own size while RETR follows it; pure-ftpd
    // follows it in listings): the dataset goes on the server without its
    // symlink, and a separate probe at the end records what bk makes of one.
    let symlinks = list_symlinks(&ref0)?;
    remove_symlinks(&ref0)?;
    sc.note(format!(
        "the generator's symlink(s) {symlinks:?} are removed from the pull dataset; see the symlink probe below"
    ));
    let remote_ds = format!("datasets/{DATASET}");
    let srv_ds = ctx.server_path(&remote_ds);
    ctx.cp_a(&ref0, &srv_ds)?;
    ctx.server.hand_over().context("hand_over")?;
    let src = ctx.direct(&remote_ds);
    let repo = ctx.work.join("repos").join("s2-local");
    fs::create_dir_all(repo.parent().expect("parent"))?;
    sc.note(
        "the pull backups go through the e2e proxy without faults: it relays the data \
         connections and counts the bytes of those used by RETR, i.e. file content the \
         server actually sent",
    );

    // Each backup through its own counting proxy: (run, RETR bytes, RETR count).
    let upstream: SocketAddr = ctx.server.addr().parse()?;
    let backup = |ctx: &mut Ctx, label: &str| -> Result<(Run, u64, usize)> {
        let proxy = FaultProxy::start(upstream, FaultPlan::counting())?;
        let via = ctx.url(proxy.port(), &remote_ds);
        let r = ctx.bk(label, |c| {
            c.args(["backup", &via, "--repo"])
                .arg(&repo)
                .args(["--dataset", DATASET, "--json"]);
        })?;
        let recs = proxy.finish();
        let retr: Vec<&ConnRecord> = recs
            .iter()
            .filter(|r| r.verb.as_deref() == Some("RETR"))
            .collect();
        Ok((r, retr.iter().map(|r| r.bytes).sum(), retr.len()))
    };
    let (b0, retr0, _) = backup(ctx, "s2-backup-v0")?;
    if !sc.exit("pull backup v0 (FTP dataset → local repo)", &b0, &[0]) {
        return Ok(());
    }
    let j0 = b0.json()?;
    sc.check(
        "backup v0 is snapshot 0 of dataset \"ds\"",
        stat(&j0, "id") == Some(0) && j0.get("dataset").and_then(Value::as_str) == Some(DATASET),
        format!(
            "id {}, dataset {}, {} files, {} bytes read",
            opt(stat(&j0, "id")),
            j0.get("dataset").unwrap_or(&Value::Null),
            stat(&j0, "files").unwrap_or(0),
            stat(&j0, "bytes_read").unwrap_or(0)
        ),
    );
    let total0: u64 = tree_bytes(&ref0)?;
    sc.check(
        "backup v0 downloads the dataset once (RETR bytes at the proxy)",
        retr0 == total0,
        format!("{retr0} bytes in RETR data connections, dataset {total0} bytes"),
    );

    ctx.mutate(seed, 1, &srv_ds)?;
    ctx.server.hand_over().context("hand_over")?;
    ctx.cp_a(&srv_ds, &ref1)?;
    let ch = changed_files(&ref0, &ref1)?;
    let changed = ch.new_bytes + ch.modified_bytes;
    sc.note(format!(
        "mutation changed {} files / {} bytes: {} at new paths ({} bytes, incl. the renamed dir), {} modified in place ({} bytes)",
        ch.new_files + ch.modified_files,
        changed,
        ch.new_files,
        ch.new_bytes,
        ch.modified_files,
        ch.modified_bytes
    ));

    // FTP mtimes are whole seconds: a file changed in the second a backup
    // starts is read again by the next one (it may have changed again
    // unseen within that second). Let that second pass, so the no-change
    // backup below has nothing to read again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (b1, retr1, n1) = backup(ctx, "s2-backup-v1")?;
    if sc.exit("pull backup v1 after the mutation", &b1, &[0]) {
        let limit = (changed as f64 * READ_SLACK) as u64;
        sc.check(
            format!(
                "backup v1 downloads the changed bytes, ≤ {READ_SLACK}× (RETR bytes at the proxy)"
            ),
            retr1 >= changed && retr1 <= limit,
            format!(
                "{retr1} bytes in {n1} RETR data connections; changed {changed} bytes in {} files (limit {limit})",
                ch.new_files + ch.modified_files
            ),
        );
        let j1 = b1.json()?;
        let read = stat(&j1, "bytes_read").unwrap_or(u64::MAX);
        let limit = (changed as f64 * READ_SLACK) as u64;
        sc.check(
            format!("backup v1 reads ≤ {READ_SLACK}× the changed bytes"),
            stat(&j1, "id") == Some(1) && read <= limit,
            format!(
                "id {}: bytes_read {read} (limit {limit}), files_read {} (changed files {}), +{} ~{} -{}",
                opt(stat(&j1, "id")),
                stat(&j1, "files_read").unwrap_or(0),
                ch.new_files + ch.modified_files,
                stat(&j1, "added").unwrap_or(0),
                stat(&j1, "modified").unwrap_or(0),
                stat(&j1, "deleted").unwrap_or(0)
            ),
        );
    }

    let (b2, retr2, n2) = backup(ctx, "s2-backup-nochange")?;
    if sc.exit("pull backup without changes", &b2, &[0]) {
        sc.check(
            "no-change backup downloads no file content (RETR at the proxy)",
            retr2 == 0 && n2 == 0,
            format!("{n2} RETR data connections, {retr2} bytes"),
        );
        let j2 = b2.json()?;
        let read = stat(&j2, "bytes_read");
        sc.check(
            "no-change backup reads 0 bytes",
            stat(&j2, "id") == Some(2) && read == Some(0),
            format!(
                "id {}: bytes_read {}, files_read {}",
                opt(stat(&j2, "id")),
                opt(read),
                opt(stat(&j2, "files_read"))
            ),
        );
    }

    for (id, reference) in [(0u64, &ref0), (1, &ref1), (2, &ref1)] {
        let out = ctx.restore_dir(&format!("s2-id{id}"))?;
        let r = ctx.bk(&format!("s2-restore-id{id}"), |c| {
            c.args(["restore", DATASET, "--repo"])
                .arg(&repo)
                .arg("--to")
                .arg(&out)
                .args(["--id", &id.to_string()]);
        })?;
        if sc.exit(&format!("restore pulled snapshot {id} locally"), &r, &[0]) {
            ctx.compare(sc, &format!("pulled snapshot {id}"), reference, &out, false)?;
        }
    }
    let ck = ctx.bk("s2-check", |c| {
        c.args(["check", "--read-data", "--repo"]).arg(&repo);
    })?;
    sc.exit("check --read-data (local repo)", &ck, &[0]);
    symlink_probe(ctx, sc, &srv_ds, &src, &repo)
}

/// Adds a symlink to the server-side dataset and backs it up once more: bk
/// must not fail (exit 0, or 3 naming the link), and what it stored must
/// restore either as that symlink or as a file with the target's content.
fn symlink_probe(
    ctx: &mut Ctx,
    sc: &mut Scenario,
    srv_ds: &Path,
    src: &str,
    repo: &Path,
) -> Result<()> {
    let (name, target) = ("latest.pt", "checkpoints/model_epoch_003.pt");
    std::os::unix::fs::symlink(target, srv_ds.join(name))?;
    ctx.server.hand_over()?;
    // The earlier backups went through proxies on other ports: the same
    // dataset from another address needs naming it (issue 9 item 16).
    let b = ctx.bk("s2-backup-symlink", |c| {
        c.args(["backup", src, "--repo"])
            .arg(repo)
            .args(["--dataset", DATASET, "--json"]);
    })?;
    let warning = b
        .stderr
        .lines()
        .find(|l| l.starts_with("bk: warning:"))
        .unwrap_or("no warning")
        .to_string();
    let ok = match b.code {
        Some(0) => true,
        Some(3) => warning.contains(name),
        _ => false,
    };
    sc.check(
        format!(
            "symlink probe: pull backup with a server-side symlink {name} -> {target} exits 0, or 3 naming it"
        ),
        ok,
        if ok {
            format!("{} ({warning})", b.summary())
        } else {
            b.failure()
        },
    );
    if !matches!(b.code, Some(0 | 3)) {
        return Ok(());
    }
    let id = b.json().ok().and_then(|j| stat(&j, "id")).unwrap_or(3);
    let ls = ctx.bk("s2-ls-symlink", |c| {
        c.args(["ls", DATASET, &id.to_string(), name, "--repo"])
            .arg(repo);
    })?;
    let stored = ls.stdout.trim().to_string();
    if b.code == Some(3) && stored.is_empty() && warning.contains("not backed up") {
        sc.check(
            "symlink probe: the symlink is left out of the snapshot, and the warning says so",
            true,
            warning,
        );
        return Ok(());
    }
    let out = ctx.restore_dir("s2-symlink-probe")?;
    let r = ctx.bk("s2-restore-symlink", |c| {
        c.args(["restore", DATASET, "--repo"])
            .arg(repo)
            .arg("--to")
            .arg(&out)
            .args(["--id", &id.to_string(), "--path", name]);
    })?;
    let got = [out.join(name), out.clone()]
        .into_iter()
        .find(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()));
    let (ok, what) = match &got {
        _ if r.code != Some(0) => (false, r.failure()),
        None => (false, format!("nothing restored at {}", out.display())),
        Some(p) => {
            let m = fs::symlink_metadata(p)?;
            if m.file_type().is_symlink() {
                let t = fs::read_link(p)?;
                (
                    t == Path::new(target),
                    format!("restored as a symlink to {:?}", t.display().to_string()),
                )
            } else {
                let same = same_content(p, &srv_ds.join(target))?;
                (
                    same,
                    format!(
                        "restored as a regular file of {} bytes, {} the target's content",
                        m.len(),
                        if same { "equal to" } else { "NOT equal to" }
                    ),
                )
            }
        }
    };
    sc.check(
        "symlink probe: what was stored restores as the symlink or as the target's content",
        ok,
        format!("`bk ls`: {stored}; {what}"),
    );
    Ok(())
}

// ---------------------------------------------------------------- scenario 3

fn scenario_3(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    // (a) A snapshot with a symlink, from scenario 1's FTP repository.
    let ref1 = ctx.refs("s1-v1");
    if !ref1.is_dir() {
        bail!("needs the data of scenario 1 (run with --only 1,3)");
    }
    let symlinks = list_symlinks(&ref1)?;
    let nosym = ctx.refs("s1-v1-nosym");
    ctx.cp_a(&ref1, &nosym)?;
    remove_symlinks(&nosym)?;
    sc.note(format!(
        "reference for FTP restores: scenario 1's v1 without its {} symlink(s) ({}), since FTP cannot create symlinks",
        symlinks.len(),
        symlinks.join(", ")
    ));

    let repo1 = ctx.direct("repos/s1");
    let to = ctx.direct("restored/s1-v1");
    let r = ctx.bk("s3-restore-ftp-symlinks", |c| {
        c.args([
            "restore", DATASET, "--repo", &repo1, "--to", &to, "--id", "1",
        ]);
    })?;
    let expect = if symlinks.is_empty() { 0 } else { 3 };
    sc.exit(
        &format!("restore snapshot 1 (FTP repo) to {to}: exit {expect}"),
        &r,
        &[expect],
    );
    if !symlinks.is_empty() {
        let missing: Vec<&String> = symlinks
            .iter()
            .filter(|s| {
                !r.stderr
                    .lines()
                    .any(|l| l.starts_with("bk: error:") && l.contains(s.as_str()))
            })
            .collect();
        sc.check(
            "stderr names every symlink that could not be restored",
            missing.is_empty(),
            if missing.is_empty() {
                r.stderr
                    .lines()
                    .find(|l| l.contains(symlinks[0].as_str()))
                    .unwrap_or("")
                    .to_string()
            } else {
                format!("not named: {missing:?}; stderr: {}", r.stderr.trim())
            },
        );
    }
    let other: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("bk: error:") && !symlinks.iter().any(|s| l.contains(s.as_str())))
        .collect();
    sc.check(
        "no errors other than the symlinks",
        other.is_empty(),
        other.join(" | "),
    );
    let got = ctx.server_path("restored/s1-v1");
    ctx.compare(
        sc,
        "FTP restore of snapshot 1 (without symlinks)",
        &nosym,
        &got,
        false,
    )?;

    // (b) A snapshot without symlinks, from a local repository.
    let ds3 = ctx.work.join("s3").join("ds3");
    ctx.cp_a(&nosym, &ds3)?;
    let repo3 = ctx.work.join("repos").join("s3-local");
    let b = ctx.bk("s3-backup", |c| {
        c.arg("backup").arg(&ds3).arg("--repo").arg(&repo3);
    })?;
    if !sc.exit("backup of a symlink-free dataset (local repo)", &b, &[0]) {
        return Ok(());
    }
    let to3 = ctx.direct("restored/s3");
    let got3 = ctx.server_path("restored/s3");
    let restore3 = |ctx: &mut Ctx, label: &str, overwrite: bool| {
        ctx.bk(label, |c| {
            c.args(["restore", "ds3", "--repo"])
                .arg(&repo3)
                .args(["--to", &to3]);
            if overwrite {
                c.arg("--overwrite");
            }
        })
    };
    let r = restore3(ctx, "s3-restore-ftp", false)?;
    if sc.exit(
        &format!("restore without symlinks to {to3}: exit 0"),
        &r,
        &[0],
    ) {
        sc.check(
            "no errors on stderr",
            !r.stderr.contains("bk: error"),
            r.stderr.lines().last().unwrap_or("").to_string(),
        );
    }
    ctx.compare(sc, "FTP restore (no symlinks)", &nosym, &got3, false)?;

    // (c) Into the now non-empty directory without --overwrite: refused.
    let r = restore3(ctx, "s3-restore-ftp-again", false)?;
    let clear = r.stderr.lines().any(|l| l.starts_with("bk: error:"));
    sc.check(
        "restore into a non-empty FTP dir without --overwrite fails (exit 1, message)",
        r.code == Some(1) && clear,
        r.failure(),
    );
    ctx.compare(
        sc,
        "FTP dir untouched by the refused restore",
        &nosym,
        &got3,
        false,
    )?;

    // (d) Damage one file on the server, restore with --overwrite: repaired.
    let victim = first_file(&got3)?;
    if let Some(v) = &victim {
        fs::write(v, b"damaged by cargo xtask e2e\n")?;
        ctx.server.hand_over()?;
    }
    let r = restore3(ctx, "s3-restore-ftp-overwrite", true)?;
    if sc.exit("restore --overwrite into the FTP dir", &r, &[0]) {
        ctx.compare(
            sc,
            &format!(
                "FTP dir after --overwrite (damaged {})",
                victim
                    .as_deref()
                    .and_then(|v| v.strip_prefix(&got3).ok())
                    .map(|v| v.display().to_string())
                    .unwrap_or_default()
            ),
            &nosym,
            &got3,
            false,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------- scenario 4

#[derive(Debug)]
struct FaultRow {
    seed: u64,
    attempts: Vec<String>,
    /// `bk: retried` lines the backup printed.
    retries: usize,
    conns: usize,
    /// Bytes per control connection, `✂` marking a cut.
    bytes: Vec<String>,
    planned: usize,
    cuts: usize,
    data_conns: usize,
    data_planned: usize,
    data_cuts: usize,
    secs: f64,
    ok: bool,
    problems: Vec<String>,
}

fn scenario_4(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    let ds = ctx.work.join("s4").join(DATASET);
    ctx.generate(ctx.opts.seed + 2, &ds, ctx.opts.fault_scale)?;
    sc.note(format!(
        "proxy: 127.0.0.1 → control port {}; per control connection a {}% chance of a cut after \
         {}..{} bytes (both directions, uniform); passive replies rewritten so that every data \
         connection goes through the proxy too, each with a {}% chance of a cut after {}..{} bytes \
         (log-uniform); plans drawn in connection order from xorshift(seed).",
        ctx.server.port(),
        ctx.opts.cut_percent,
        CUT_MIN,
        ctx.opts.cut_max,
        ctx.opts.data_cut_percent,
        DATA_CUT_MIN,
        ctx.opts.data_cut_max
    ));
    let upstream: SocketAddr = ctx.server.addr().parse()?;
    let timeout = ctx.opts.timeout.min(Duration::from_secs(300));
    for seed in 0..ctx.opts.seeds {
        let t = Instant::now();
        let rel = format!("fault/seed-{seed:02}/repo");
        let durl = ctx.direct(&rel);
        let proxy = FaultProxy::start(
            upstream,
            FaultPlan {
                seed,
                cut_percent: ctx.opts.cut_percent,
                cut_range: CUT_MIN..ctx.opts.cut_max,
                data_cut_percent: ctx.opts.data_cut_percent,
                data_cut_range: DATA_CUT_MIN..ctx.opts.data_cut_max,
                blackout_after: None,
                max_run: PROXY_MAX_RUN,
            },
        )?;
        let purl = ctx.url(proxy.port(), &rel);
        let mut problems = Vec::new();
        // One run: bk retries what the cuts break; a backup that gives up
        // here is a failure, not something to run again.
        let r = ctx.bk_timeout(&format!("s4-seed{seed:02}-backup"), timeout, |c| {
            c.arg("backup").arg(&ds).args(["--repo", &purl, "--json"]);
        })?;
        let attempts = vec![r.code_str()];
        let retries = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("bk: retried "))
            .count();
        let succeeded = r.code == Some(0);
        match r.code {
            Some(0) => {
                let reported = stat(&r.json()?, "retries");
                if reported != Some(retries as u64) {
                    problems.push(format!(
                        "bk printed {retries} `bk: retried` line(s) but its JSON summary says \
                         \"retries\": {}",
                        opt(reported)
                    ));
                }
            }
            Some(1) => {
                problems.push(format!(
                    "the backup failed in its single run (after {retries} retries): {}",
                    r.failure()
                ));
                let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                let clear = lines.last().is_some_and(|l| l.starts_with("bk: error: "))
                    && !r.stderr.contains("panicked");
                if !clear {
                    problems.push(format!(
                        "exit 1 without a clear `bk: error:` message: {}",
                        r.failure()
                    ));
                }
                match count_snapshots(ctx, &rel, &durl, &format!("s4-seed{seed:02}-ls"))? {
                    Ok(0) => {}
                    Ok(n) => problems.push(format!(
                        "exit 1 (\"nothing committed\") but the repository has {n} snapshot(s)"
                    )),
                    Err(e) => {
                        problems.push(format!("cannot list snapshots after the failure: {e}"))
                    }
                }
            }
            _ => problems.push(r.failure()),
        }
        let records = proxy.finish();
        if succeeded || ctx.server_path(&rel).join("config").exists() {
            verify_fault_repo(ctx, seed, &rel, &durl, &ds, succeeded, &mut problems)?;
        }
        let row = fault_row(
            seed,
            attempts,
            retries,
            &records,
            t.elapsed().as_secs_f64(),
            problems,
        );
        sc.check(
            format!("seed {seed:02}"),
            row.ok,
            format!(
                "backup exits {} after {} retried transfer(s); {} control conns via proxy \
                 (bytes: {}), {} planned cuts, {} cut; {} data conns, {} planned cuts, {} cut; \
                 {:.1} s{}",
                row.attempts.join(","),
                row.retries,
                row.conns,
                row.bytes.join(" "),
                row.planned,
                row.cuts,
                row.data_conns,
                row.data_planned,
                row.data_cuts,
                row.secs,
                if row.problems.is_empty() {
                    String::new()
                } else {
                    format!("; PROBLEMS: {}", row.problems.join(" || "))
                }
            ),
        );
        ctx.fault_rows.push(row);
    }
    let rows = &ctx.fault_rows;
    let landed: usize = rows.iter().map(|r| r.cuts + r.data_cuts).sum();
    if ctx.opts.cut_percent + ctx.opts.data_cut_percent > 0 {
        sc.check(
            "at least one landed cut per seed (in total)",
            landed as u64 >= ctx.opts.seeds,
            format!("{landed} cuts landed over {} seeds", ctx.opts.seeds),
        );
    }
    blackout(ctx, sc)?;
    let rows = &ctx.fault_rows;
    let (conns, planned, cuts) = rows.iter().fold((0, 0, 0), |(a, b, c), r| {
        (a + r.conns, b + r.planned, c + r.cuts)
    });
    let (dconns, dplanned, dcuts) = rows.iter().fold((0, 0, 0), |(a, b, c), r| {
        (a + r.data_conns, b + r.data_planned, c + r.data_cuts)
    });
    let retries: usize = rows.iter().map(|r| r.retries).sum();
    let failed_runs = rows
        .iter()
        .flat_map(|r| &r.attempts)
        .filter(|a| *a != "0")
        .count();
    sc.note(format!(
        "{} seeds: {conns} control connections through the proxy, {planned} planned cuts, {cuts} \
         effective (a planned cut beyond the connection's traffic never happens); {dconns} data \
         connections, {dplanned} planned cuts, {dcuts} effective; one backup run per seed, \
         {failed_runs} failed; bk retried {retries} transfer(s) in all (`bk: retried` lines, \
         most {} in one run){}",
        rows.len(),
        rows.iter().map(|r| r.retries).max().unwrap_or(0),
        if cuts + dcuts < rows.len() {
            format!(
                ". Few cuts landed: bk's control connections carried {}..{} bytes here, so try \
                 --cut-max 5000 (or --cut-percent 90) for a harsher run",
                rows.iter()
                    .flat_map(|r| &r.bytes)
                    .filter_map(|b| b.trim_end_matches('✂').parse::<u64>().ok())
                    .min()
                    .unwrap_or(0),
                rows.iter()
                    .flat_map(|r| &r.bytes)
                    .filter_map(|b| b.trim_end_matches('✂').parse::<u64>().ok())
                    .max()
                    .unwrap_or(0)
            )
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// How long a backup may take to give up once the network is down.
const BLACKOUT_GIVE_UP: Duration = Duration::from_secs(45);

/// The network goes down for good in the middle of a backup: the backup
/// must give up within [`BLACKOUT_GIVE_UP`], exit 1 with one clear line and commit nothing; the next run (direct)
/// must complete without uploading again what the failed run's complete
/// packs hold; the snapshot must restore identical.
fn blackout(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    // Incompressible data, several packs' worth: 5 files of 10 MiB.
    let ds = ctx.work.join("s4-blackout").join(DATASET);
    fs::create_dir_all(&ds)?;
    let mut rng = crate::proxy::XorShift::new(ctx.opts.seed ^ 0xb1ac);
    let mut total = 0u64;
    for i in 0..5 {
        let mut buf = vec![0u8; 10 << 20];
        for c in buf.chunks_mut(8) {
            let x = rng.next_u64().to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
        fs::write(ds.join(format!("part-{i}.bin")), &buf)?;
        total += buf.len() as u64;
    }
    let budget = 36u64 << 20;
    let rel = "fault/blackout/repo";
    let durl = ctx.direct(rel);
    let upstream: SocketAddr = ctx.server.addr().parse()?;
    let proxy = FaultProxy::start(
        upstream,
        FaultPlan {
            blackout_after: Some(budget),
            ..FaultPlan::counting()
        },
    )?;
    let purl = ctx.url(proxy.port(), rel);
    let timeout = ctx.opts.timeout.min(Duration::from_secs(300));
    // One connection, so that packs go up one after the other and the
    // first two are complete when the network goes down (with several,
    // all could be in flight at once).
    let r = ctx.bk_timeout("s4-blackout-backup", timeout, |c| {
        c.arg("backup")
            .arg(&ds)
            .args(["--repo", &purl, "--json", "--ftp-connections", "1"]);
    })?;
    drop(proxy);
    let last = r
        .stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    let retried = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("bk: retried "))
        .count();
    sc.check(
        format!(
            "blackout after {} MiB: the backup gives up within {} s and exits 1 with one clear line",
            budget >> 20,
            BLACKOUT_GIVE_UP.as_secs()
        ),
        r.code == Some(1)
            && last.starts_with("bk: error: ")
            && !r.stderr.contains("panicked")
            && r.secs < BLACKOUT_GIVE_UP.as_secs_f64(),
        format!(
            "exit {} in {:.1} s after {retried} retried transfer(s); last line: {last}",
            r.code_str(),
            r.secs
        ),
    );
    let n = count_snapshots(ctx, rel, &durl, "s4-blackout-ls")?;
    sc.check(
        "blackout: nothing committed",
        matches!(n, Ok(0)),
        format!("{n:?} snapshot(s)"),
    );
    let packs_dir = ctx.server_path(rel).join("packs");
    let mut left = 0u64;
    let mut packs = 0usize;
    if packs_dir.exists() {
        walk(&packs_dir, &mut |p, m| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if m.file_type().is_file()
                && name.is_some_and(|n| !n.starts_with('.') && !n.ends_with(".bkftp-part"))
            {
                left += m.len();
                packs += 1;
            }
            Ok(())
        })?;
    }
    sc.check(
        "blackout: the failed run left complete packs on the server",
        packs >= 1 && left >= 8 << 20,
        format!("{packs} pack(s), {left} bytes of {total} (the test means nothing without them)"),
    );
    let r2 = ctx.bk_timeout("s4-blackout-rerun", timeout, |c| {
        c.arg("backup").arg(&ds).args(["--repo", &durl, "--json"]);
    })?;
    if sc.exit("blackout: the rerun (network back) completes", &r2, &[0]) {
        let stored = stat(&r2.json()?, "stored_bytes").unwrap_or(u64::MAX);
        let limit = total.saturating_sub(left) + (2 << 20);
        sc.check(
            "blackout: the rerun does not upload the failed run's packs again",
            stored <= limit,
            format!(
                "rerun stored {stored} bytes; dataset {total}, left by the failed run {left}, limit {limit}"
            ),
        );
        let out = ctx.restore_dir("s4-blackout")?;
        let rr = ctx.bk("s4-blackout-restore", |c| {
            c.args(["restore", DATASET, "--repo", &durl, "--to"])
                .arg(&out);
        })?;
        if sc.exit("blackout: restore", &rr, &[0]) {
            ctx.compare(sc, "blackout restore", &ds, &out, true)?;
            fs::remove_dir_all(&out)?;
        }
        let ck = ctx.bk("s4-blackout-check", |c| {
            c.args(["check", "--read-data", "--repo", &durl]);
        })?;
        sc.exit("blackout: check --read-data", &ck, &[0]);
    }
    fs::remove_dir_all(ds.parent().expect("parent"))?;
    Ok(())
}

fn fault_row(
    seed: u64,
    attempts: Vec<String>,
    retries: usize,
    records: &[ConnRecord],
    secs: f64,
    problems: Vec<String>,
) -> FaultRow {
    let (data, control): (Vec<&ConnRecord>, Vec<&ConnRecord>) =
        records.iter().partition(|r| r.data);
    FaultRow {
        seed,
        attempts,
        retries,
        conns: control.iter().filter(|r| !r.upstream_failed).count(),
        bytes: control
            .iter()
            .map(|r| format!("{}{}", r.bytes, if r.cut { "✂" } else { "" }))
            .collect(),
        planned: control.iter().filter(|r| r.cut_at.is_some()).count(),
        cuts: control.iter().filter(|r| r.cut).count(),
        data_conns: data.iter().filter(|r| !r.upstream_failed).count(),
        data_planned: data.iter().filter(|r| r.cut_at.is_some()).count(),
        data_cuts: data.iter().filter(|r| r.cut).count(),
        secs,
        ok: problems.is_empty(),
        problems,
    }
}

/// Snapshots in the repository at `rel`: the server's files, cross-checked
/// with `bk snapshots` over a direct connection once the repository exists.
fn count_snapshots(
    ctx: &mut Ctx,
    rel: &str,
    durl: &str,
    label: &str,
) -> Result<std::result::Result<usize, String>> {
    let local = ctx.server_path(rel);
    let on_disk = match fs::read_dir(local.join("snapshots").join(DATASET)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".json") && !n.starts_with('.')
            })
            .count(),
        Err(_) => 0,
    };
    if !local.join("config").exists() {
        return Ok(if on_disk == 0 {
            Ok(0)
        } else {
            Err(format!("{on_disk} snapshot file(s) but no config"))
        });
    }
    let r = ctx.bk(label, |c| {
        c.args(["snapshots", "--repo", durl, "--json"]);
    })?;
    if r.code != Some(0) {
        return Ok(Err(r.failure()));
    }
    let n = r.json()?.as_array().map_or(0, Vec::len);
    if n != on_disk {
        return Ok(Err(format!(
            "bk snapshots lists {n}, the server holds {on_disk} snapshot files"
        )));
    }
    Ok(Ok(n))
}

/// Direct connection: check --read-data, restore every snapshot and compare.
fn verify_fault_repo(
    ctx: &mut Ctx,
    seed: u64,
    rel: &str,
    durl: &str,
    ds: &Path,
    succeeded: bool,
    problems: &mut Vec<String>,
) -> Result<()> {
    let ck = ctx.bk(&format!("s4-seed{seed:02}-check"), |c| {
        c.args(["check", "--repo", durl, "--read-data"]);
    })?;
    if ck.code != Some(0) {
        problems.push(format!("check --read-data: {}", ck.failure()));
    }
    let ls = ctx.bk(&format!("s4-seed{seed:02}-snapshots"), |c| {
        c.args(["snapshots", "--repo", durl, "--json"]);
    })?;
    if ls.code != Some(0) {
        problems.push(format!("snapshots: {}", ls.failure()));
        return Ok(());
    }
    let ids: Vec<u64> = ls
        .json()?
        .as_array()
        .map(|a| a.iter().filter_map(|s| stat(s, "id")).collect())
        .unwrap_or_default();
    if succeeded && ids.len() != 1 {
        problems.push(format!(
            "expected exactly one snapshot after the successful backup, found ids {ids:?}"
        ));
    }
    for id in ids {
        let out = ctx.restore_dir(&format!("s4-seed{seed:02}-id{id}"))?;
        let r = ctx.bk(&format!("s4-seed{seed:02}-restore{id}"), |c| {
            c.args(["restore", DATASET, "--repo", durl, "--to"])
                .arg(&out)
                .args(["--id", &id.to_string()]);
        })?;
        if r.code != Some(0) {
            problems.push(format!("restore of snapshot {id}: {}", r.failure()));
        } else {
            let v = ctx.python("verify", "verify_tree.py", |c| {
                c.arg(ds).arg(&out);
            })?;
            if v.code != Some(0) {
                problems.push(format!(
                    "snapshot {id} restores different from the dataset: {}",
                    v.stdout.trim()
                ));
            }
        }
        if out.exists() {
            ctx.scan("fault-scenario restores (scanned, then deleted)", &out)?;
            fs::remove_dir_all(&out)?;
        }
    }
    if succeeded {
        let local = ctx.server_path(rel);
        let lock = local.join("locks").join("exclusive");
        if lock.exists() {
            problems.push("the lock file is left behind after the successful backup".into());
        }
        let tmps = find_names(&local, |n| {
            n.starts_with(".tmp-") || n.ends_with(".bkftp-part")
        })?;
        if !tmps.is_empty() {
            problems.push(format!(
                "{} temporary file(s) (.tmp-*, *.bkftp-part) left in the repository after the successful backup, e.g. {}",
                tmps.len(),
                tmps[0]
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- scenario 5

fn scenario_5(ctx: &mut Ctx, sc: &mut Scenario) -> Result<()> {
    let pw = ctx.password.clone();
    // Positive control: the scanner must find the password in a canary file.
    let canary = ctx.work.join("canary");
    fs::create_dir_all(&canary)?;
    fs::write(
        canary.join("canary.bin"),
        [b"\0prefix ".as_slice(), pw.as_bytes(), b" suffix"].concat(),
    )?;
    let control = scan_tree("canary", &canary, pw.as_bytes())?;
    fs::remove_dir_all(&canary)?;
    sc.check(
        "scanner self-test: finds the password in a canary file",
        control.hits.len() == 1,
        format!("{} hit(s) in {} file(s)", control.hits.len(), control.files),
    );
    let mut results = std::mem::take(&mut ctx.scans);
    let server_root = ctx.server.root().to_path_buf();
    for (what, dir) in [
        (
            "captured stdout/stderr of every bk run (logs/)",
            ctx.logs.clone(),
        ),
        ("local repositories", ctx.work.join("repos")),
        ("local restore outputs", ctx.work.join("restores")),
        (
            "FTP server root (FTP repositories, datasets, FTP restores)",
            server_root,
        ),
        ("datasets and reference copies", ctx.work.join("refs")),
    ] {
        if dir.exists() {
            results.push(scan_tree(what, &dir, pw.as_bytes())?);
        }
    }
    let captured = count_files(&ctx.logs, |n| n.ends_with(".out") || n.ends_with(".err"))?;
    sc.note(format!(
        "{} bk invocations, {captured} captured stdout/stderr files (python/cp runs included)",
        ctx.bk_runs
    ));
    // Merge scans of the same kind.
    let mut merged: BTreeMap<String, ScanResult> = BTreeMap::new();
    for r in results {
        let e = merged.entry(r.what.clone()).or_insert_with(|| ScanResult {
            what: r.what.clone(),
            ..ScanResult::default()
        });
        e.files += r.files;
        e.bytes += r.bytes;
        e.hits.extend(r.hits);
    }
    for r in merged.values() {
        sc.check(
            format!("password absent from {}", r.what),
            r.hits.is_empty(),
            format!(
                "{} files, {:.1} MB scanned{}",
                r.files,
                r.bytes as f64 / 1e6,
                if r.hits.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; FOUND in {} file(s): {}",
                        r.hits.len(),
                        r.hits
                            .iter()
                            .take(5)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        );
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
struct ScanResult {
    what: String,
    files: u64,
    bytes: u64,
    hits: Vec<String>,
}

/// Looks for `needle` in every regular file below `dir` (symlinks not followed).
fn scan_tree(what: &str, dir: &Path, needle: &[u8]) -> Result<ScanResult> {
    let mut r = ScanResult {
        what: what.to_string(),
        ..ScanResult::default()
    };
    let mut buf = vec![0u8; 8 << 20];
    walk(dir, &mut |p, m| {
        if !m.is_file() {
            return Ok(());
        }
        r.files += 1;
        r.bytes += m.len();
        if file_contains(p, needle, &mut buf)? {
            r.hits.push(p.display().to_string());
        }
        Ok(())
    })?;
    Ok(r)
}

/// Streams the file in chunks, keeping `needle.len() - 1` bytes of overlap.
fn file_contains(path: &Path, needle: &[u8], buf: &mut [u8]) -> Result<bool> {
    let mut f = File::open(path).with_context(|| format!("{}", path.display()))?;
    let keep = needle.len().saturating_sub(1);
    let mut have = 0usize;
    loop {
        let n = f.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(false);
        }
        have += n;
        if contains(&buf[..have], needle) {
            return Ok(true);
        }
        if have > keep {
            buf.copy_within(have - keep..have, 0);
            have = keep;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let mut i = 0;
    while let Some(p) = hay[i..].iter().position(|&b| b == first) {
        let s = i + p;
        if hay[s..].starts_with(needle) {
            return true;
        }
        i = s + 1;
    }
    false
}

// ---------------------------------------------------------------- trees

/// Calls `f` for every entry below `dir` (lstat), depth first.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<()>) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&d)
            .with_context(|| format!("{}", d.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        for p in entries {
            let m = fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
            f(&p, &m)?;
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    Ok(())
}

fn list_symlinks(root: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    walk(root, &mut |p, m| {
        if m.file_type().is_symlink() {
            v.push(p.strip_prefix(root)?.display().to_string());
        }
        Ok(())
    })?;
    Ok(v)
}

fn remove_symlinks(root: &Path) -> Result<()> {
    for s in list_symlinks(root)? {
        fs::remove_file(root.join(&s))?;
    }
    Ok(())
}

fn first_file(root: &Path) -> Result<Option<PathBuf>> {
    let mut first = None;
    walk(root, &mut |p, m| {
        if first.is_none() && m.is_file() && m.len() > 0 {
            first = Some(p.to_path_buf());
        }
        Ok(())
    })?;
    Ok(first)
}

/// Total size of the regular files below `root`.
fn tree_bytes(root: &Path) -> Result<u64> {
    let mut total = 0;
    walk(root, &mut |_, m| {
        if m.file_type().is_file() {
            total += m.len();
        }
        Ok(())
    })?;
    Ok(total)
}

fn find_names(root: &Path, pred: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut v = Vec::new();
    if root.exists() {
        walk(root, &mut |p, _| {
            if p.file_name().is_some_and(|n| pred(&n.to_string_lossy())) {
                v.push(p.strip_prefix(root)?.display().to_string());
            }
            Ok(())
        })?;
    }
    Ok(v)
}

fn count_files(root: &Path, pred: impl Fn(&str) -> bool) -> Result<usize> {
    let mut n = 0;
    walk(root, &mut |p, m| {
        if m.is_file() && pred(&p.to_string_lossy()) {
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
}

#[derive(Debug, Default)]
struct Changed {
    new_files: u64,
    new_bytes: u64,
    modified_files: u64,
    modified_bytes: u64,
}

/// Regular files of `new` that are absent from `old` at the same path (or
/// not a regular file there), or differ in size or content.
fn changed_files(old: &Path, new: &Path) -> Result<Changed> {
    let mut c = Changed::default();
    walk(new, &mut |p, m| {
        if !m.is_file() {
            return Ok(());
        }
        let rel = p.strip_prefix(new)?;
        let q = old.join(rel);
        match fs::symlink_metadata(&q) {
            Ok(mo) if mo.is_file() => {
                if mo.len() != m.len() || !same_content(p, &q)? {
                    c.modified_files += 1;
                    c.modified_bytes += m.len();
                }
            }
            _ => {
                c.new_files += 1;
                c.new_bytes += m.len();
            }
        }
        Ok(())
    })?;
    Ok(c)
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

// ---------------------------------------------------------------- report

#[derive(Debug)]
struct Info {
    server: ServerKind,
    bk_version: String,
    commit: String,
    date: String,
    bk_runs: usize,
    total_secs: f64,
    password_len: usize,
}

fn summary_table(info: &Info, scenarios: &[Scenario]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| # | scenario | server | result | checks | time |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for sc in scenarios {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}/{} | {:.1} s |",
            sc.n,
            sc.title,
            info.server,
            if sc.passed() { "PASS" } else { "**FAIL**" },
            sc.checks.iter().filter(|c| c.ok).count(),
            sc.checks.len(),
            sc.secs
        );
    }
    let all = !scenarios.is_empty() && scenarios.iter().all(Scenario::passed);
    let _ = writeln!(
        s,
        "| | **all** | {} | {} | {}/{} | {:.1} s |",
        info.server,
        if all { "PASS" } else { "**FAIL**" },
        scenarios.iter().filter(|s| s.passed()).count(),
        scenarios.len(),
        info.total_secs
    );
    s
}

fn report(opts: &Opts, info: &Info, scenarios: &[Scenario], faults: &[FaultRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## `cargo xtask e2e --server {}`\n", info.server);
    let _ = writeln!(
        s,
        "{} · {} · commit {} · {} bk invocations · dataset scale {} (scenario 4: {}, {} seeds, {}% of control connections cut after {}..{} bytes, {}% of data connections after {}..{}) · \
         generator seed {} · password: {} random characters (value not recorded)\n",
        info.date,
        info.bk_version,
        info.commit,
        info.bk_runs,
        opts.scale,
        opts.fault_scale,
        opts.seeds,
        opts.cut_percent,
        CUT_MIN,
        opts.cut_max,
        opts.data_cut_percent,
        DATA_CUT_MIN,
        opts.data_cut_max,
        opts.seed,
        info.password_len
    );
    s.push_str(&summary_table(info, scenarios));
    for sc in scenarios {
        let _ = writeln!(
            s,
            "\n### {}. {} — {}\n",
            sc.n,
            sc.title,
            if sc.passed() { "PASS" } else { "FAIL" }
        );
        for c in &sc.checks {
            if sc.n == 4 && c.ok && c.name.starts_with("seed ") {
                continue; // in the table below
            }
            let _ = writeln!(
                s,
                "- {} {}{}{}",
                if c.ok { "ok" } else { "**FAIL**" },
                c.name,
                if c.detail.is_empty() { "" } else { " — " },
                c.detail.replace('|', "\\|")
            );
        }
        for n in &sc.notes {
            let _ = writeln!(s, "- note: {n}");
        }
        if sc.n == 4 && !faults.is_empty() {
            let _ = writeln!(
                s,
                "\n| seed | backup exit code | retried transfers | control conns: bytes (✂ = cut) | planned cuts | cuts | data conns | planned data cuts | data cuts | time | result |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
            for r in faults {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {}: {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
                    r.seed,
                    r.attempts.join(", "),
                    r.retries,
                    r.conns,
                    r.bytes.join(" "),
                    r.planned,
                    r.cuts,
                    r.data_conns,
                    r.data_planned,
                    r.data_cuts,
                    r.secs,
                    if r.ok { "PASS" } else { "**FAIL**" }
                );
            }
        }
    }
    s
}

/// `results.md`: every `results-<server>.md` of this directory.
fn write_combined(out_dir: &Path) -> Result<()> {
    let mut parts: Vec<PathBuf> = fs::read_dir(out_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with("results-") && n.ends_with(".md"))
        })
        .collect();
    parts.sort();
    let mut s = String::from(
        "# bk end-to-end results (`cargo xtask e2e`)\n\n\
         One section per server, each from its latest run. Logs: `target/e2e/<server>/logs/`.\n",
    );
    for p in parts {
        s.push('\n');
        s.push_str(&fs::read_to_string(&p)?);
    }
    fs::write(out_dir.join("results.md"), s)?;
    Ok(())
}

// ---------------------------------------------------------------- setup

/// Wipes the work directory (only one made by this command).
fn prepare_work(work: &Path) -> Result<()> {
    claim_work_dir(work, WORK_TAG, "e2e", &[])
}

/// `e2e-s3cret-PW-` and 16 random hex digits.
fn make_password() -> Result<String> {
    let mut b = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    let mut s = String::from("e2e-s3cret-PW-");
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    Ok(s)
}

fn git_commit(root: &Path) -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = out(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = out(&["status", "--porcelain", "--", "crates"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} + uncommitted changes in crates/")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_needle_across_chunks() {
        let dir = std::env::temp_dir().join(format!("xtask-e2e-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let mut data = vec![b'a'; 100];
        data.extend_from_slice(b"needle");
        fs::write(&p, &data).unwrap();
        let mut buf = vec![0u8; 8]; // forces several chunks
        assert!(file_contains(&p, b"needle", &mut buf).unwrap());
        assert!(!file_contains(&p, b"needles", &mut buf).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_flags() {
        let o = parse_args(vec![
            "--server=pure-ftpd".into(),
            "--seeds".into(),
            "3".into(),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.server, ServerKind::PureFtpd);
        assert_eq!(o.seeds, 3);
        assert!(parse_args(vec!["--bogus".into()]).is_err());
    }
}
