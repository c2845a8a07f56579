//! `cargo xtask bench --ftp`: bk with its repository on an FTP server, next to
//! restic (rclone backend), duplicity, `rclone sync` and `lftp mirror -R`, and
//! bk's pull mode next to `lftp mirror --parallel=8`, all against one
//! pure-ftpd on 127.0.0.1 (started through bk-testkit) in one run.
//!
//! The dataset is `cargo xtask bench`'s (same generator, seed and scale, same
//! work-directory rules). Sequence: initial backup of v0, a no-change backup,
//! `mutate --version 1` and a backup, restore of the latest snapshot into a
//! local directory (checked with `verify_tree.py`); then the mutated tree is
//! put on the server and backed up from there (pull) and downloaded by lftp.
//! Between the timed steps, bk's same step runs once more, untimed, through a
//! proxy on the control connection that counts logins, commands and data
//! connections.
//!
//! Passwords never appear in process arguments: `BK_FTP_PASSWORD` for bk,
//! `FTP_PASSWORD` for duplicity, an rclone.conf (obscured password, mode 600,
//! `RCLONE_CONFIG`) for rclone and restic, an `lftp -f` script (mode 600) for
//! lftp.

// tidy: long file: one benchmark against five peer tools: each tool's command for each step stands in one match, so that they compare side by side

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use bk_testkit::{ServerKind, ServerOptions, TestServer};
use serde_json::{Value, json};

use xtask::util;
use xtask::util::build::{Profile, build_bk};
use xtask::util::dataset::{Ctx, DATASET, DATASET_DIR, MARKER, generate, prepare_work};
use xtask::util::docs;
use xtask::util::files::{dir_bytes, remove_path, warm, write_secret};
use xtask::util::machine::{bk_commit, date_utc, load1, loadavg, machine_info, mb, unix_time};
use xtask::util::process::{find_on_path, tail, version_line};

use crate::counting_proxy::{CountingProxy, Counts};

const HELP: &str = "\
usage: cargo xtask bench --ftp [--scale F] [--seed N] [--work DIR] [--tools LIST]
                         [--passive-ports LO-HI] [--no-count] [--no-docs] [--keep]

Starts pure-ftpd on 127.0.0.1 (through bk-testkit), builds bk in release mode,
generates the dataset of `cargo xtask bench` and times against that one server:
  push:  bk with --repo ftp://USER@127.0.0.1:PORT/bk-repo, restic with
         -r rclone:REMOTE:restic-repo (an rclone remote of type ftp), duplicity
         with an ftp:// target (--no-encryption): initial backup, no-change
         backup, backup after `mutate --version 1`, restore of the latest
         snapshot into a local directory (checked with verify_tree.py);
         `rclone sync --links --create-empty-src-dirs` and lftp's
         `mirror -R --delete --parallel=8` as baselines that keep no history;
  pull:  the mutated tree is put on the server (untimed), then
         `bk backup ftp://USER@127.0.0.1:PORT/datasets/ds --repo LOCAL` and
         `lftp mirror --parallel=8` downloading it, each twice (initial, no change).
Unless --no-count, each of bk's steps runs once more, untimed, through a proxy on
the control connection that counts logins, commands and data connections.
Passwords reach the tools only through the environment and mode-600 files.

options:
  --scale F      dataset scale (default 1.0: ~20,200 files, ~1.65 GB)
  --seed N       dataset seed (default 42)
  --work DIR     work directory (default target/bench-over-ftp); wiped at the start,
                 except that an unmutated dataset of the same seed and scale is reused
  --tools LIST   comma-separated subset of bk,restic,duplicity,rclone,lftp,pull
                 (default: all); bk's push steps always run; a tool that is not
                 installed is skipped and named in the report
  --passive-ports LO-HI
                 pure-ftpd's passive port range (default 19500-19999, outside the
                 blocks bk-testkit hands out from 20000 up)
  --no-count     skip the counting passes
  --no-docs      do not write the section into docs/BENCHMARKS.md
  --keep         keep the dataset and the restored trees afterwards (the server's
                 files go with the server unless BK_TESTKIT_KEEP_TMP=1)

Writes WORK/results.md and WORK/results.json and puts the section
\"## Over FTP (pure-ftpd on loopback)\" into docs/BENCHMARKS.md (replacing that
section from an earlier run). Needs root (pure-ftpd chroots) and pure-ftpd; the
peers come from apt-get install -y restic rclone duplicity lftp.
";

/// Heading of the section in docs/BENCHMARKS.md (and of results.md).
const SECTION: &str = "## Over FTP (pure-ftpd on loopback)";
/// The rclone remote's name.
const REMOTE: &str = "bkbench";
/// Server paths (below the login directory).
const R_BK: &str = "bk-repo";
const R_BK_COUNT: &str = "bk-repo-count";
const R_RESTIC: &str = "restic-repo";
const R_DUPLICITY: &str = "duplicity";
const R_RCLONE: &str = "rclone-mirror";
const R_LFTP: &str = "lftp-mirror";
const R_DATASETS: &str = "datasets";
/// Limit of each duplicity step (through coreutils' `timeout`).
const DUPLICITY_LIMIT_SECS: u64 = 900;
/// Targets: bk's time ÷ the peer's time must be at most this.
const T_INITIAL_RESTIC: f64 = 0.5;
const T_NOCHANGE_RESTIC: f64 = 0.25;
const T_MUTATE_RESTIC: f64 = 0.6;
const T_RESTORE_RESTIC: f64 = 0.7;
const T_INITIAL_RCLONE: f64 = 0.3;
const T_PULL_LFTP: f64 = 1.0;
/// bk's initial backup must open fewer data connections than this.
const T_DATA_CONNECTIONS: u64 = 1000;

#[derive(Debug)]
struct Opts {
    scale: f64,
    seed: u64,
    work: Option<PathBuf>,
    tools: Vec<Tool>,
    passive: RangeInclusive<u16>,
    count: bool,
    docs: bool,
    keep: bool,
}

/// A column of the report: one tool doing one kind of job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Bk,
    Restic,
    Duplicity,
    Rclone,
    Lftp,
    BkPull,
    LftpPull,
}

/// The push columns, in report order.
const PUSH: [Tool; 5] = [
    Tool::Bk,
    Tool::Restic,
    Tool::Duplicity,
    Tool::Rclone,
    Tool::Lftp,
];

impl Tool {
    fn slug(self) -> &'static str {
        match self {
            Tool::Bk => "bk",
            Tool::Restic => "restic",
            Tool::Duplicity => "duplicity",
            Tool::Rclone => "rclone",
            Tool::Lftp => "lftp",
            Tool::BkPull => "bk-pull",
            Tool::LftpPull => "lftp-pull",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tool::Bk => "bk",
            Tool::Restic => "restic (rclone)",
            Tool::Duplicity => "duplicity",
            Tool::Rclone => "rclone sync",
            Tool::Lftp => "lftp mirror -R",
            Tool::BkPull => "bk backup ftp://…",
            Tool::LftpPull => "lftp mirror --parallel=8",
        }
    }

    /// Whether it keeps versions (and is restored by the bench).
    fn versioned(self) -> bool {
        matches!(self, Tool::Bk | Tool::Restic | Tool::Duplicity)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Initial,
    NoChange,
    AfterMutate,
    Restore,
}

const STEPS: [Step; 4] = [
    Step::Initial,
    Step::NoChange,
    Step::AfterMutate,
    Step::Restore,
];

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::Initial => "initial backup (v0)",
            Step::NoChange => "no-change backup",
            Step::AfterMutate => "backup after mutate 1",
            Step::Restore => "restore latest",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Step::Initial => "initial",
            Step::NoChange => "no-change",
            Step::AfterMutate => "after-mutate",
            Step::Restore => "restore",
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Option<Opts>> {
    let mut o = Opts {
        scale: 1.0,
        seed: 42,
        work: None,
        tools: vec![
            Tool::Restic,
            Tool::Duplicity,
            Tool::Rclone,
            Tool::Lftp,
            Tool::BkPull,
        ],
        passive: 19500..=19999,
        count: true,
        docs: true,
        keep: false,
    };
    let mut a = util::flags::Flags::new(args);
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--scale" => o.scale = a.positive_f64()?,
            "--seed" => o.seed = a.u64()?,
            "--work" => o.work = Some(PathBuf::from(a.value()?)),
            "--tools" => {
                o.tools.clear();
                for name in a.list()? {
                    let t = match name.as_str() {
                        "bk" => continue,
                        "restic" => Tool::Restic,
                        "duplicity" => Tool::Duplicity,
                        "rclone" => Tool::Rclone,
                        "lftp" => Tool::Lftp,
                        "pull" => Tool::BkPull,
                        _ => bail!(
                            "--tools: unknown tool {name:?} \
                             (known: bk, restic, duplicity, rclone, lftp, pull)"
                        ),
                    };
                    if !o.tools.contains(&t) {
                        o.tools.push(t);
                    }
                }
            }
            "--passive-ports" => {
                let v = a.value()?;
                o.passive = util::flags::port_range(&v)
                    .with_context(|| format!("--passive-ports {v:?}: expected LO-HI"))?;
            }
            "--no-count" if a.bare() => o.count = false,
            "--no-docs" if a.bare() => o.docs = false,
            "--keep" if a.bare() => o.keep = true,
            _ => bail!("unknown argument {:?}\n\n{HELP}", a.arg()),
        }
    }
    Ok(Some(o))
}

/// One timed command.
#[derive(Debug, Clone)]
struct Meas {
    secs: f64,
    max_rss_kib: u64,
    /// `/proc/loadavg`'s 1-minute value just before the command.
    load1: f64,
    cmd: String,
}

/// Peer executables and their versions.
#[derive(Debug, Default)]
struct Exes {
    restic: Option<PathBuf>,
    duplicity: Option<PathBuf>,
    rclone: Option<PathBuf>,
    lftp: Option<PathBuf>,
    timeout: Option<PathBuf>,
    versions: Vec<String>,
}

/// What the untimed counting pass saw for one of bk's steps.
#[derive(Debug)]
struct Counted {
    label: String,
    counts: Counts,
    secs: f64,
}

#[derive(Debug)]
struct Bench {
    ctx: Ctx,
    server: TestServer,
    bk: PathBuf,
    exes: Exes,
    secrets: PathBuf,
    /// Tools selected and installed.
    tools: Vec<Tool>,
    results: BTreeMap<(Tool, Step), Meas>,
    /// Tools that stopped (failed or timed out), with the reason.
    stopped: BTreeMap<Tool, String>,
    /// verify_tree.py's line for each restored or downloaded tree.
    verify: BTreeMap<Tool, (bool, String)>,
    counted: Vec<Counted>,
    proxy: Option<CountingProxy>,
    notes: Vec<String>,
    stats_v0: String,
    stats_v1: String,
    mutation: String,
    stored: BTreeMap<Tool, u64>,
}

pub fn run(args: Vec<String>) -> Result<()> {
    let Some(opts) = parse_args(args)? else {
        return Ok(());
    };
    let started = unix_time();
    let load_start = loadavg();
    let root = util::workspace_root();
    if !ServerKind::PureFtpd.is_installed() {
        bail!("pure-ftpd is not installed (apt-get install -y pure-ftpd)");
    }
    let mut notes = Vec::new();
    let exes = find_peers(&opts, &mut notes)?;
    let mut tools = vec![Tool::Bk];
    for &t in &opts.tools {
        let ok = match t {
            Tool::Restic => exes.restic.is_some() && exes.rclone.is_some(),
            Tool::Duplicity => exes.duplicity.is_some(),
            Tool::Rclone => exes.rclone.is_some(),
            Tool::Lftp => exes.lftp.is_some(),
            Tool::BkPull => true,
            _ => false,
        };
        if ok {
            tools.push(t);
            if t == Tool::BkPull && exes.lftp.is_some() {
                tools.push(Tool::LftpPull);
            }
        }
    }

    let work = match &opts.work {
        Some(w) => std::env::current_dir()?.join(w),
        None => root.join("target").join("bench-over-ftp"),
    };
    let reuse = prepare_work(&work, opts.seed, opts.scale)?;
    let work = work
        .canonicalize()
        .with_context(|| format!("{}", work.display()))?;
    let bk = build_bk(&root, Profile::Release)?;
    let bk_version = version_line(&bk, "--version")?;
    let logs = work.join("logs");
    fs::create_dir_all(&logs)?;
    let mut ctx = Ctx {
        src: work.join(DATASET_DIR).join(DATASET),
        root,
        work,
        logs,
        n_log: 0,
        seed: opts.seed,
        scale: opts.scale,
    };
    generate(&mut ctx, reuse)?;
    let stats_v0 = ctx.stats("stats-v0")?;
    eprintln!("dataset: {stats_v0}");

    let server = TestServer::start(
        ServerKind::PureFtpd,
        ServerOptions {
            passive_ports: Some(opts.passive.clone()),
            ..ServerOptions::default()
        },
    )
    .context("starting pure-ftpd")?;
    eprintln!(
        "pure-ftpd on {} (root {})",
        server.addr(),
        server.root().display()
    );
    let secrets = ctx.work.join("secrets");
    fs::create_dir_all(&secrets)?;
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))?;
    let proxy = if opts.count {
        Some(CountingProxy::start(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            server.port(),
        )))?)
    } else {
        None
    };
    let mut b = Bench {
        ctx,
        server,
        bk,
        exes,
        secrets,
        tools,
        results: BTreeMap::new(),
        stopped: BTreeMap::new(),
        verify: BTreeMap::new(),
        counted: Vec::new(),
        proxy,
        notes,
        stats_v0,
        stats_v1: String::new(),
        mutation: String::new(),
        stored: BTreeMap::new(),
    };
    let result = b.bench();
    // The credentials go in any case.
    let _ = remove_path(&b.secrets);
    if let Err(e) = result {
        eprintln!("server log:\n{}", tail(&b.server.log(), 4000));
        eprintln!(
            "bench failed; work directory kept for inspection: {}",
            b.ctx.work.display()
        );
        return Err(e);
    }
    let info = Info {
        started,
        load_start,
        load_end: loadavg(),
        bk_version,
        passive: opts.passive.clone(),
    };
    let (md, js) = report(&b, &info);
    docs::write_results(&b.ctx.work, &md, &js)?;
    if opts.docs {
        let docs = b.ctx.root.join("docs").join("BENCHMARKS.md");
        write_docs_section(&docs, &md)?;
        eprintln!("updated {}", docs.display());
    }
    if !opts.keep {
        for d in [DATASET_DIR, "repos", "restore", "home"] {
            remove_path(&b.ctx.work.join(d))?;
        }
        remove_path(&b.ctx.work.join(MARKER))?;
    }
    Ok(())
}

fn find_peers(opts: &Opts, notes: &mut Vec<String>) -> Result<Exes> {
    let mut e = Exes::default();
    let wanted = |t: Tool| opts.tools.contains(&t);
    let mut look = |name: &str, needed: bool, args: &[&str]| -> Result<Option<PathBuf>> {
        if !needed {
            return Ok(None);
        }
        match find_on_path(name) {
            Some(p) => {
                e.versions.push(first_line(&p, args)?);
                Ok(Some(p))
            }
            None => {
                let n = format!("{name} not installed (apt-get install -y {name}): skipped");
                eprintln!("{n}");
                notes.push(n);
                Ok(None)
            }
        }
    };
    let restic = look("restic", wanted(Tool::Restic), &["version"])?;
    let rclone = look(
        "rclone",
        wanted(Tool::Restic) || wanted(Tool::Rclone),
        &["version"],
    )?;
    let duplicity = look("duplicity", wanted(Tool::Duplicity), &["--version"])?;
    let lftp = look(
        "lftp",
        wanted(Tool::Lftp) || wanted(Tool::BkPull),
        &["--version"],
    )?;
    e.restic = restic;
    e.rclone = rclone;
    e.duplicity = duplicity;
    e.lftp = lftp;
    e.timeout = find_on_path("timeout");
    Ok(e)
}

fn first_line(exe: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

impl Bench {
    fn has(&self, t: Tool) -> bool {
        self.tools.contains(&t)
    }

    fn password(&self) -> &str {
        self.server.password()
    }

    /// A path below the server's writable base, without the leading `/`
    /// when the base is the login directory (rclone's paths are relative).
    fn rpath(&self, name: &str) -> String {
        let base = self.server.remote_base().trim_matches('/');
        if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}/{name}")
        }
    }

    fn url(&self, port: u16, name: &str) -> String {
        format!(
            "ftp://{}@{}:{port}/{}",
            self.server.user(),
            self.server.host(),
            self.rpath(name)
        )
    }

    fn bk_command(&self) -> Command {
        let mut c = Command::new(&self.bk);
        c.env_remove("BK_REPO")
            .env_remove("BK_FTP_PASSWORD")
            .env("BK_FTP_PASSWORD", self.password());
        c
    }

    fn bk_backup(&self, port: u16, repo: &str) -> Command {
        let mut c = self.bk_command();
        c.arg("backup")
            .arg(&self.ctx.src)
            .arg("--repo")
            .arg(self.url(port, repo))
            .args(["--dataset", DATASET]);
        c
    }

    fn bk_restore(&self, port: u16, repo: &str, out: &Path) -> Command {
        let mut c = self.bk_command();
        c.args(["restore", DATASET, "--repo"])
            .arg(self.url(port, repo))
            .arg("--to")
            .arg(out);
        c
    }

    fn bk_pull(&self, port: u16, repo: &Path) -> Command {
        let mut c = self.bk_command();
        c.arg("backup")
            .arg(self.url(port, &format!("{R_DATASETS}/{DATASET}")))
            .arg("--repo")
            .arg(repo)
            .args(["--dataset", DATASET]);
        c
    }

    fn rclone_conf(&self) -> PathBuf {
        self.secrets.join("rclone.conf")
    }

    fn restic(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.exes.restic.as_ref().expect("restic"));
        c.env("RESTIC_PASSWORD", "bench")
            .env(
                "RESTIC_CACHE_DIR",
                self.ctx.work.join("home").join("restic-cache"),
            )
            .env("RCLONE_CONFIG", self.rclone_conf())
            .arg("-r")
            .arg(format!("rclone:{REMOTE}:{}", self.rpath(R_RESTIC)))
            .arg("-q")
            .args(args);
        c
    }

    fn duplicity(&self, args: &[&str]) -> Command {
        let exe = self.exes.duplicity.as_ref().expect("duplicity");
        let mut c = match &self.exes.timeout {
            Some(t) => {
                let mut c = Command::new(t);
                c.args(["-k", "10", &DUPLICITY_LIMIT_SECS.to_string()])
                    .arg(exe);
                c
            }
            None => Command::new(exe),
        };
        c.env("FTP_PASSWORD", self.password())
            .args(args)
            .args(["--no-encryption", "--num-retries", "2", "--name", "bench"])
            .arg("--archive-dir")
            .arg(self.ctx.work.join("home").join("duplicity"));
        c
    }

    fn duplicity_url(&self) -> String {
        self.url(self.server.port(), R_DUPLICITY)
    }

    fn rclone_sync(&self) -> Command {
        let mut c = Command::new(self.exes.rclone.as_ref().expect("rclone"));
        c.env("RCLONE_CONFIG", self.rclone_conf())
            .args(["sync", "--links", "--create-empty-src-dirs"])
            .arg(&self.ctx.src)
            .arg(format!("{REMOTE}:{}", self.rpath(R_RCLONE)));
        c
    }

    /// `lftp -f SCRIPT`, the script (mode 600) holding the login and `line`.
    fn lftp(&self, name: &str, line: &str) -> Result<Command> {
        let path = self.secrets.join(format!("{name}.lftp"));
        let text = format!(
            "set cmd:fail-exit yes\n\
             set net:max-retries 3\n\
             set net:reconnect-interval-base 2\n\
             open -u {} ftp://{}:{}\n\
             {line}\n\
             quit\n",
            lftp_quote(&format!("{},{}", self.server.user(), self.password())),
            self.server.host(),
            self.server.port(),
        );
        write_secret(&path, &text)?;
        let mut c = Command::new(self.exes.lftp.as_ref().expect("lftp"));
        c.arg("-f").arg(path);
        Ok(c)
    }

    fn lftp_push(&self) -> Result<Command> {
        let line = format!(
            "mirror -R --delete --no-symlinks --parallel=8 {} /{}",
            lftp_quote(&self.ctx.src.to_string_lossy()),
            self.rpath(R_LFTP)
        );
        self.lftp("push", &line)
    }

    fn lftp_pull(&self) -> Result<Command> {
        let line = format!(
            "mirror --parallel=8 /{} {}",
            self.rpath(&format!("{R_DATASETS}/{DATASET}")),
            lftp_quote(&self.out(Tool::LftpPull).to_string_lossy())
        );
        self.lftp("pull", &line)
    }

    fn out(&self, t: Tool) -> PathBuf {
        self.ctx.work.join("restore").join(t.slug())
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        self.ctx.work.join("repos").join(name)
    }

    // ------------------------------------------------------------ running

    /// Runs one timed command. A failing bk stops the bench; a failing peer
    /// (or bk's pull mode) is recorded and left out of the later steps.
    fn timed(&mut self, tool: Tool, step: Step, mut cmd: Command) -> Result<bool> {
        if !self.has(tool) || self.stopped.contains_key(&tool) {
            return Ok(false);
        }
        let load1 = load1();
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let o = self
            .ctx
            .exec(&mut cmd, &format!("{}-{}", tool.slug(), step.slug()))?;
        if !o.status.success() {
            if tool == Tool::Bk {
                o.check()?;
            }
            let why = if o.status.code() == Some(124) && tool == Tool::Duplicity {
                format!("timed out after {DUPLICITY_LIMIT_SECS} s")
            } else {
                format!("failed ({})", o.status)
            };
            let reason = format!(
                "{}: {} {why}: {}",
                tool.label(),
                step.label(),
                last_lines(&o.stderr_tail, 3)
            );
            eprintln!("  {reason}; left out from here on");
            self.stopped.insert(tool, reason);
            return Ok(false);
        }
        eprintln!(
            "  {:<26} {:<22} {:>8.2} s  {:>8.1} MB peak RSS  (load {load1:.2})",
            tool.label(),
            step.label(),
            o.secs,
            mb(o.max_rss_kib * 1024)
        );
        self.results.insert(
            (tool, step),
            Meas {
                secs: o.secs,
                max_rss_kib: o.max_rss_kib,
                load1,
                cmd: o.cmd,
            },
        );
        Ok(true)
    }

    /// Runs one of bk's commands once more, untimed, with `make(proxy_port)`.
    fn count(&mut self, label: &str, make: impl Fn(&Self, u16) -> Command) -> Result<()> {
        let Some(port) = self.proxy.as_ref().map(CountingProxy::port) else {
            return Ok(());
        };
        if let Some(p) = &self.proxy {
            p.take();
        }
        let mut cmd = make(self, port);
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let o = self
            .ctx
            .exec(&mut cmd, &format!("count-{}", slugify(label)))?;
        let counts = self
            .proxy
            .as_ref()
            .map(CountingProxy::take)
            .unwrap_or_default();
        o.check()?;
        eprintln!(
            "  count {label:<32} {} logins, {} data connections, {} commands, {:.1} MB \
             downloaded; {}; 4xx/5xx: {}",
            counts.logins(),
            counts.data_connections(),
            counts.commands(),
            counts.retr_kbytes * 1024.0 / 1e6,
            counts.repeats_text(),
            counts.errors_text()
        );
        self.counted.push(Counted {
            label: label.to_string(),
            counts,
            secs: o.secs,
        });
        Ok(())
    }

    fn verify(&mut self, tool: Tool, restored: &Path) -> Result<()> {
        let mut c = self.ctx.python("verify_tree.py");
        c.arg(&self.ctx.src).arg(restored);
        let o = self.ctx.exec(&mut c, &format!("{}-verify", tool.slug()))?;
        let line = o.stdout.trim().to_string();
        eprintln!("  {:<26} verify: {line}", tool.label());
        let ok = o.status.success();
        if !ok && !line.starts_with("content=") {
            bail!(
                "verify_tree.py failed for {} ({}):\n{}",
                tool.label(),
                o.status,
                o.stderr_tail
            );
        }
        if !ok && tool == Tool::Bk {
            bail!(
                "bk: the restored tree differs from the dataset: {line}\n{}",
                o.stderr_tail
            );
        }
        self.verify.insert(tool, (ok, line));
        Ok(())
    }

    fn setup(&mut self) -> Result<()> {
        // Directories that must exist before a tool writes into them
        // (duplicity stalls 30 s on a missing one).
        for d in [R_DUPLICITY, R_DATASETS] {
            fs::create_dir_all(self.server.local_path(&self.rpath(d)))?;
        }
        self.server.hand_over()?;
        fs::create_dir_all(self.ctx.work.join("repos"))?;
        fs::create_dir_all(self.ctx.work.join("restore"))?;
        fs::create_dir_all(self.ctx.work.join("home"))?;
        if let Some(rclone) = self.exes.rclone.clone() {
            // `rclone obscure -` reads the password from stdin.
            let mut child = Command::new(rclone)
                .args(["obscure", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("rclone obscure")?;
            child
                .stdin
                .take()
                .context("stdin")?
                .write_all(self.password().as_bytes())?;
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "rclone obscure failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let obscured = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let conf = format!(
                "[{REMOTE}]\ntype = ftp\nhost = {}\nport = {}\nuser = {}\npass = {obscured}\n",
                self.server.host(),
                self.server.port(),
                self.server.user()
            );
            write_secret(&self.rclone_conf(), &conf)?;
        }
        let port = self.server.port();
        let mut c = self.bk_command();
        c.arg("init").arg("--repo").arg(self.url(port, R_BK));
        self.ctx.exec_ok(&mut c, "bk-init")?;
        if self.proxy.is_some() {
            let mut c = self.bk_command();
            c.arg("init").arg("--repo").arg(self.url(port, R_BK_COUNT));
            self.ctx.exec_ok(&mut c, "bk-init-count")?;
        }
        if self.has(Tool::Restic) {
            let mut c = self.restic(&["init"]);
            let o = self.ctx.exec(&mut c, "restic-init")?;
            if !o.status.success() {
                let r = format!(
                    "restic (rclone): init failed ({}): {}",
                    o.status,
                    last_lines(&o.stderr_tail, 3)
                );
                eprintln!("  {r}");
                self.stopped.insert(Tool::Restic, r);
            }
        }
        Ok(())
    }

    fn bench(&mut self) -> Result<()> {
        self.setup()?;
        let port = self.server.port();
        let src = self.ctx.src.clone();

        // Push: three backups.
        for step in [Step::Initial, Step::NoChange, Step::AfterMutate] {
            if step == Step::AfterMutate {
                self.ctx.set_marker("mutated")?;
                self.mutation = self.ctx.mutate(1)?;
                self.stats_v1 = self.ctx.stats("stats-v1")?;
            }
            eprintln!("{}:", step.label());
            warm(&src)?;
            let cmd = self.bk_backup(port, R_BK);
            self.timed(Tool::Bk, step, cmd)?;
            if self.has(Tool::Restic) {
                let tag = ["v0", "v0-again", "v1"][step as usize];
                let cmd = self.restic(&["backup", "--tag", tag, &src.to_string_lossy()]);
                self.timed(Tool::Restic, step, cmd)?;
            }
            if self.has(Tool::Duplicity) {
                let kind = if step == Step::Initial {
                    "full"
                } else {
                    "incremental"
                };
                let mut cmd = self.duplicity(&[kind]);
                cmd.arg(&src).arg(self.duplicity_url());
                self.timed(Tool::Duplicity, step, cmd)?;
            }
            if self.has(Tool::Rclone) {
                let cmd = self.rclone_sync();
                self.timed(Tool::Rclone, step, cmd)?;
            }
            if self.has(Tool::Lftp) {
                let cmd = self.lftp_push()?;
                self.timed(Tool::Lftp, step, cmd)?;
            }
            self.count(&format!("bk {}", step.label()), |b, p| {
                b.bk_backup(p, R_BK_COUNT)
            })?;
        }
        for t in PUSH {
            let dir = match t {
                Tool::Bk => R_BK,
                Tool::Restic => R_RESTIC,
                Tool::Duplicity => R_DUPLICITY,
                Tool::Rclone => R_RCLONE,
                _ => R_LFTP,
            };
            if self.has(t) && !self.stopped.contains_key(&t) {
                let local = self.server.local_path(&self.rpath(dir));
                if local.exists() {
                    self.stored.insert(t, dir_bytes(&local)?);
                }
            }
        }

        // Push: restore the latest snapshot.
        eprintln!("{}:", Step::Restore.label());
        for t in [Tool::Bk, Tool::Restic, Tool::Duplicity] {
            if !self.has(t) || self.stopped.contains_key(&t) {
                continue;
            }
            let out = self.out(t);
            remove_path(&out)?;
            let cmd = match t {
                Tool::Bk => self.bk_restore(port, R_BK, &out),
                Tool::Restic => {
                    let mut c = self.restic(&["restore", "latest", "--target"]);
                    c.arg(&out);
                    c
                }
                _ => {
                    let mut c = self.duplicity(&["restore"]);
                    c.arg(self.duplicity_url()).arg(&out);
                    c
                }
            };
            if self.timed(t, Step::Restore, cmd)? {
                // restic keeps the absolute source path below the target.
                let restored = if t == Tool::Restic {
                    out.join(src.strip_prefix("/").unwrap_or(&src))
                } else {
                    out.clone()
                };
                self.verify(t, &restored)?;
            }
            remove_path(&out)?;
        }
        let count_out = self.ctx.work.join("restore").join("bk-count");
        remove_path(&count_out)?;
        self.count("bk restore latest", |b, p| {
            b.bk_restore(p, R_BK_COUNT, &count_out)
        })?;
        remove_path(&count_out)?;

        if self.has(Tool::BkPull) {
            self.pull()?;
        }
        Ok(())
    }

    /// Pull mode: the mutated tree on the server, backed up by bk into a
    /// local repository and downloaded by lftp.
    fn pull(&mut self) -> Result<()> {
        let port = self.server.port();
        let remote = self
            .server
            .local_path(&self.rpath(&format!("{R_DATASETS}/{DATASET}")));
        remove_path(&remote)?;
        // Hard links: instant, and the same bytes (the dataset changes no more).
        let mut c = Command::new("cp");
        c.arg("-al").arg(&self.ctx.src).arg(&remote);
        self.ctx.exec_ok(&mut c, "pull-put-tree")?;
        let repo = self.repo_dir("bk-pull");
        let mut c = self.bk_command();
        c.arg("init").arg("--repo").arg(&repo);
        self.ctx.exec_ok(&mut c, "bk-pull-init")?;
        let down = self.out(Tool::LftpPull);
        remove_path(&down)?;
        for step in [Step::Initial, Step::NoChange] {
            eprintln!("pull, {}:", step.label());
            warm(&remote)?;
            let cmd = self.bk_pull(port, &repo);
            self.timed(Tool::BkPull, step, cmd)?;
            if self.has(Tool::LftpPull) {
                let cmd = self.lftp_pull()?;
                self.timed(Tool::LftpPull, step, cmd)?;
            }
        }
        if self.has(Tool::LftpPull) && !self.stopped.contains_key(&Tool::LftpPull) {
            self.verify(Tool::LftpPull, &down)?;
        }
        remove_path(&down)?;
        if !self.stopped.contains_key(&Tool::BkPull) {
            // Untimed: restore the pulled snapshot and compare it.
            let out = self.out(Tool::BkPull);
            remove_path(&out)?;
            let mut c = self.bk_command();
            c.args(["restore", DATASET, "--repo"])
                .arg(&repo)
                .arg("--to")
                .arg(&out);
            self.ctx.exec_ok(&mut c, "bk-pull-restore")?;
            let line = self.verify_line(&out)?;
            eprintln!("  {:<26} verify: {}", Tool::BkPull.label(), line.1);
            self.verify.insert(Tool::BkPull, line);
            remove_path(&out)?;
        }
        if self.proxy.is_some() {
            let repo = self.repo_dir("bk-pull-count");
            let mut c = self.bk_command();
            c.arg("init").arg("--repo").arg(&repo);
            self.ctx.exec_ok(&mut c, "bk-pull-count-init")?;
            for step in [Step::Initial, Step::NoChange] {
                self.count(&format!("bk pull {}", step.label()), |b, p| {
                    b.bk_pull(p, &repo)
                })?;
            }
        }
        Ok(())
    }

    fn verify_line(&mut self, restored: &Path) -> Result<(bool, String)> {
        let mut c = self.ctx.python("verify_tree.py");
        c.arg(&self.ctx.src).arg(restored);
        let o = self.ctx.exec(&mut c, "verify")?;
        Ok((o.status.success(), o.stdout.trim().to_string()))
    }

    fn secs(&self, t: Tool, s: Step) -> Option<f64> {
        self.results.get(&(t, s)).map(|m| m.secs)
    }
}

// ---------------------------------------------------------------- report

#[derive(Debug)]
struct Info {
    started: u64,
    load_start: String,
    load_end: String,
    bk_version: String,
    passive: RangeInclusive<u16>,
}

/// `bk ÷ peer`, when both were measured.
fn ratio(b: &Bench, bk: Tool, peer: Tool, step: Step) -> Option<f64> {
    match (b.secs(bk, step), b.secs(peer, step)) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    }
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.prec$}"))
}

fn report(b: &Bench, info: &Info) -> (String, Value) {
    let machine = machine_info();
    let commit = bk_commit(&b.ctx.root);
    let date = date_utc();
    let pure_ftpd = find_on_path("pure-ftpd")
        .or_else(|| Some(PathBuf::from("/usr/sbin/pure-ftpd")))
        .and_then(|p| first_line(&p, &["--help"]).ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pure-ftpd".into());
    let max_load = b.results.values().map(|m| m.load1).fold(0.0_f64, f64::max);
    let mut md = String::new();
    let _ = writeln!(md, "{SECTION}\n");
    let _ = writeln!(
        md,
        "- date: {date}; commit {commit} (`git describe --always --dirty`); {}",
        info.bk_version
    );
    let _ = writeln!(
        md,
        "- machine: {} CPUs (nproc), {}, {:.1} GiB RAM; load average (1/5/15 min) {} at the \
         start, {} at the end, highest 1-min value before a timed step {max_load:.2}",
        machine.nproc,
        machine.cpu,
        machine.mem_kib as f64 / (1024.0 * 1024.0),
        info.load_start,
        info.load_end,
    );
    let _ = writeln!(
        md,
        "- server: {pure_ftpd} on 127.0.0.1 through bk-testkit (SHA-512 crypt password hash, \
         not pure-pw's argon2), plain FTP, passive ports {}–{}, its root on the same disk",
        info.passive.start(),
        info.passive.end()
    );
    for v in &b.exes.versions {
        let _ = writeln!(md, "- {v}");
    }
    let _ = writeln!(
        md,
        "- dataset: `gen_dataset.py gen --seed {} --scale {}`: {}; after `mutate --version 1`: {}",
        b.ctx.seed, b.ctx.scale, b.stats_v0, b.stats_v1
    );
    for n in &b.notes {
        let _ = writeln!(md, "- {n}");
    }
    for r in b.stopped.values() {
        let _ = writeln!(md, "- stopped: {r}");
    }
    let _ = writeln!(
        md,
        "- method: one run; page cache warm; `sync` before every timed command; wall time from \
         spawn to exit; peak RSS = `ru_maxrss` from `wait4`; all tools against the same server"
    );
    let _ = writeln!(md);

    // Push table.
    let cols: Vec<Tool> = PUSH.iter().copied().filter(|&t| b.has(t)).collect();
    let peers: Vec<Tool> = cols.iter().copied().filter(|&t| t != Tool::Bk).collect();
    let mut head = String::from("| step (wall seconds) |");
    let mut rule = String::from("|---|");
    for t in &cols {
        let _ = write!(head, " {} |", t.label());
        rule.push_str("---:|");
    }
    for t in &peers {
        let _ = write!(head, " bk ÷ {} |", t.label());
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for step in STEPS {
        let _ = write!(md, "| {} |", step.label());
        for &t in &cols {
            let v = b.secs(t, step);
            let cell = if v.is_none() && step == Step::Restore && !t.versioned() {
                "n/a".to_string()
            } else {
                fmt_opt(v, 2)
            };
            let _ = write!(md, " {cell} |");
        }
        for &t in &peers {
            let _ = write!(md, " {} |", fmt_opt(ratio(b, Tool::Bk, t, step), 2));
        }
        md.push('\n');
    }
    let _ = write!(md, "| stored on the server after mutate 1 (MB) |");
    for t in &cols {
        let _ = write!(md, " {} |", fmt_opt(b.stored.get(t).map(|&v| mb(v)), 1));
    }
    for _ in &peers {
        md.push_str(" |");
    }
    md.push('\n');
    let _ = write!(md, "| peak RSS (MB, max over the steps) |");
    for &t in &cols {
        let _ = write!(md, " {} |", fmt_opt(peak_rss_mb(b, t), 1));
    }
    for _ in &peers {
        md.push_str(" |");
    }
    md.push('\n');
    let _ = writeln!(md);

    if b.has(Tool::BkPull) {
        let _ = writeln!(
            md,
            "Pull mode: the tree after mutate 1 on the server (`/{R_DATASETS}/{DATASET}`), \
             backed up by bk into a local repository and downloaded by lftp into a local \
             directory:\n"
        );
        let _ = writeln!(
            md,
            "| step (wall seconds) | {} | {} | bk ÷ lftp |",
            Tool::BkPull.label(),
            Tool::LftpPull.label()
        );
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for step in [Step::Initial, Step::NoChange] {
            let label = if step == Step::Initial {
                "initial"
            } else {
                "again, nothing changed"
            };
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} |",
                fmt_opt(b.secs(Tool::BkPull, step), 2),
                fmt_opt(b.secs(Tool::LftpPull, step), 2),
                fmt_opt(ratio(b, Tool::BkPull, Tool::LftpPull, step), 2)
            );
        }
        let _ = writeln!(
            md,
            "| peak RSS (MB) | {} | {} | |",
            fmt_opt(peak_rss_mb(b, Tool::BkPull), 1),
            fmt_opt(peak_rss_mb(b, Tool::LftpPull), 1)
        );
        let _ = writeln!(md);
    }

    // Targets.
    let data_conns = b
        .counted
        .iter()
        .find(|c| c.label == format!("bk {}", Step::Initial.label()))
        .map(|c| c.counts.data_connections());
    let mut targets: Vec<(String, String, Option<bool>)> = Vec::new();
    let mut ratio_target = |what: &str, bk: Tool, peer: Tool, step: Step, limit: f64| {
        let r = ratio(b, bk, peer, step);
        targets.push((
            format!("{what} ≤ {limit}× {}'s", peer.label()),
            r.map_or_else(|| "not measured".to_string(), |r| format!("{r:.2}×")),
            r.map(|r| r <= limit),
        ));
    };
    let (ini, noc, mu, re) = (
        Step::Initial,
        Step::NoChange,
        Step::AfterMutate,
        Step::Restore,
    );
    ratio_target(
        "initial backup",
        Tool::Bk,
        Tool::Restic,
        ini,
        T_INITIAL_RESTIC,
    );
    ratio_target(
        "no-change backup",
        Tool::Bk,
        Tool::Restic,
        noc,
        T_NOCHANGE_RESTIC,
    );
    ratio_target(
        "backup after mutate",
        Tool::Bk,
        Tool::Restic,
        mu,
        T_MUTATE_RESTIC,
    );
    ratio_target("restore", Tool::Bk, Tool::Restic, re, T_RESTORE_RESTIC);
    ratio_target(
        "initial backup",
        Tool::Bk,
        Tool::Rclone,
        ini,
        T_INITIAL_RCLONE,
    );
    ratio_target(
        "pull, initial backup",
        Tool::BkPull,
        Tool::LftpPull,
        ini,
        T_PULL_LFTP,
    );
    targets.push((
        format!("data connections of bk's initial backup < {T_DATA_CONNECTIONS}"),
        data_conns.map_or_else(|| "not counted".to_string(), |n| n.to_string()),
        data_conns.map(|n| n < T_DATA_CONNECTIONS),
    ));
    let _ = writeln!(md, "| target | measured | |");
    let _ = writeln!(md, "|---|---:|---|");
    for (what, measured, ok) in &targets {
        let verdict = match ok {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "–",
        };
        let _ = writeln!(md, "| {what} | {measured} | {verdict} |");
    }
    let _ = writeln!(md);

    if !b.counted.is_empty() {
        let _ = writeln!(
            md,
            "bk's FTP traffic, each step run once more (untimed, after a `sync`, into a second \
             repository) through a proxy on the control connection; data connections = \
             STOR/RETR/APPE/LIST/NLST/MLSD commands; MB downloaded = the sizes pure-ftpd \
             announces in its `150 N kbytes to download` replies:\n"
        );
        let _ = writeln!(
            md,
            "| step | seconds through the proxy | logins | data connections | MB downloaded | data commands on distinct paths | commands | commands by verb | 4xx/5xx replies |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---:|---|---|");
        for c in &b.counted {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {} | {} | {:.1} | {} | {} | {} | {} |",
                c.label,
                c.secs,
                c.counts.logins(),
                c.counts.data_connections(),
                c.counts.retr_kbytes * 1024.0 / 1e6,
                c.counts.repeats_text(),
                c.counts.commands(),
                c.counts.verbs_text(),
                c.counts.errors_text()
            );
        }
        let _ = writeln!(md);
    }

    // What the counts say, in words.
    let mut seen = String::new();
    if let Some(c) = b
        .counted
        .iter()
        .find(|c| c.label == format!("bk {}", Step::Restore.label()))
        && let Some(repo) = b.stored.get(&Tool::Bk)
    {
        let retr = c.counts.paths.get("RETR");
        let _ = write!(
            seen,
            "- the restore downloaded {:.1} MB for a repository of {:.1} MB ({:.2}×)",
            c.counts.retr_kbytes * 1024.0 / 1e6,
            mb(*repo),
            c.counts.retr_kbytes * 1024.0 / *repo as f64
        );
        if let Some(p) = retr {
            let _ = write!(
                seen,
                "; RETR {} on {} distinct paths",
                p.values().sum::<u64>(),
                p.len()
            );
        }
        seen.push('\n');
    }
    for c in &b.counted {
        for (verb, p) in &c.counts.paths {
            let n: u64 = p.values().sum();
            let most = p.values().copied().max().unwrap_or(0);
            if n > p.len() as u64 {
                let _ = writeln!(
                    seen,
                    "- {}: {verb} {n} times on {} distinct paths (one path up to {most} times)",
                    c.label,
                    p.len()
                );
            }
        }
    }
    if !seen.is_empty() {
        let _ = writeln!(md, "Repeated transfers in these counts:\n\n{seen}");
    }

    if !b.verify.is_empty() {
        let _ = writeln!(
            md,
            "Restored (and, for lftp, downloaded) trees compared with the dataset by \
             `verify_tree.py` (bk's pull snapshot restored locally, untimed):\n"
        );
        for (t, (_, line)) in &b.verify {
            let _ = writeln!(md, "- {}: {line}", t.label());
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(
        md,
        "Commands of the initial backups and the restores (the port varies; bk reads the password from `BK_FTP_PASSWORD`, duplicity \
         from `FTP_PASSWORD`, rclone and restic from an rclone.conf (mode 600, \
         `RCLONE_CONFIG`: `type = ftp`, host, port, user, `pass` from `rclone obscure -`), \
         lftp from its `-f` script (mode 600: `set cmd:fail-exit yes`, `open -u USER,PASSWORD \
         ftp://127.0.0.1:PORT`, the mirror line, `quit`); `RESTIC_PASSWORD=bench`):\n"
    );
    let _ = writeln!(md, "```");
    for ((t, s), m) in &b.results {
        if matches!(s, Step::Initial | Step::Restore) {
            let _ = writeln!(md, "# {}, {}\n{}", t.label(), s.label(), m.cmd);
        }
    }
    let _ = writeln!(md, "```");
    if b.has(Tool::Lftp) || b.has(Tool::LftpPull) {
        let _ = writeln!(
            md,
            "\nlftp mirror lines: `mirror -R --delete --no-symlinks --parallel=8 SRC /{R_LFTP}` (push; pure-ftpd has no SITE SYMLINK), \
             `mirror --parallel=8 /{R_DATASETS}/{DATASET} OUT` (pull)."
        );
    }

    let results: Vec<Value> = b
        .results
        .iter()
        .map(|((t, s), m)| {
            json!({
                "tool": t.slug(),
                "step": s.slug(),
                "secs": m.secs,
                "max_rss_kib": m.max_rss_kib,
                "load1_before": m.load1,
                "cmd": m.cmd,
            })
        })
        .collect();
    let counted: Vec<Value> = b
        .counted
        .iter()
        .map(|c| {
            json!({
                "step": c.label,
                "secs": c.secs,
                "control_connections": c.counts.connections,
                "logins": c.counts.logins(),
                "data_connections": c.counts.data_connections(),
                "commands": c.counts.commands(),
                "verbs": c.counts.verbs,
                "retr_bytes_announced": c.counts.retr_kbytes * 1024.0,
                "data_command_paths": c.counts.paths.iter()
                    .map(|(verb, p)| (verb.clone(), json!({"commands": p.values().sum::<u64>(), "distinct_paths": p.len()})))
                    .collect::<serde_json::Map<_, _>>(),
                "replies": c.counts.replies.iter()
                    .map(|((verb, code), v)| (format!("{verb} {code}"), Value::from(*v)))
                    .collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let js = json!({
        "started_unix": info.started,
        "finished_unix": unix_time(),
        "date": date,
        "commit": commit,
        "bk_version": info.bk_version,
        "machine": {"nproc": machine.nproc, "cpu": machine.cpu, "mem_total_kib": machine.mem_kib,
                    "loadavg_start": info.load_start, "loadavg_end": info.load_end,
                    "max_load1_before_step": max_load},
        "server": pure_ftpd,
        "passive_ports": [info.passive.start(), info.passive.end()],
        "versions": b.exes.versions,
        "seed": b.ctx.seed,
        "scale": b.ctx.scale,
        "dataset": {"stats_v0": b.stats_v0, "stats_v1": b.stats_v1, "mutation": b.mutation},
        "notes": b.notes,
        "stopped": b.stopped.iter().map(|(t, r)| (t.slug().to_string(), Value::from(r.clone()))).collect::<serde_json::Map<_, _>>(),
        "results": results,
        "stored_bytes": b.stored.iter().map(|(t, v)| (t.slug().to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "verify": b.verify.iter().map(|(t, (ok, line))| (t.slug().to_string(), json!({"ok": ok, "report": line}))).collect::<serde_json::Map<_, _>>(),
        "targets": targets.iter().map(|(what, measured, ok)| json!({"target": what, "measured": measured, "met": ok})).collect::<Vec<_>>(),
        "bk_ftp_traffic": counted,
    });
    (md, js)
}

fn peak_rss_mb(b: &Bench, t: Tool) -> Option<f64> {
    b.results
        .iter()
        .filter(|((tool, _), _)| *tool == t)
        .map(|(_, m)| m.max_rss_kib)
        .max()
        .map(|k| mb(k * 1024))
}

/// Puts `md` (which starts with [`SECTION`]) into the file in place of an
/// earlier copy of that section, or at the end; the rest is kept as is.
fn write_docs_section(path: &Path, md: &str) -> Result<()> {
    let section = format!(
        "{}\n\nReproduce: `cargo xtask bench --ftp` (as root, with pure-ftpd; \
         `apt-get install -y restic rclone duplicity lftp`).\n",
        md.trim_end()
    );
    docs::write_section(path, SECTION, &section)
}

// ---------------------------------------------------------------- helpers

fn lftp_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn slugify(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The last `n` non-empty lines of `s`, joined with ` / `.
fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}
