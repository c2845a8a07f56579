//! `cargo xtask bench-ftp`: bk-ftp's throughput and memory next to curl and
//! lftp, all against one pure-ftpd on 127.0.0.1 started through bk-testkit.
//!
//! Single file: `put_get put` (`FtpClient::put_file`) vs `curl -T`, then
//! `put_get get` (`FtpClient::get_file`) vs `curl -o`. Tree of small files:
//! the `upload` example (`upload_tree`, 4 connections) vs `lftp mirror -R`.
//! Each client is a child process: wall time from spawn to reap, peak RSS from
//! `wait4`. Every copy is compared byte for byte with its source. Passwords
//! never appear in process arguments: `FTP_PASSWORD` for the examples, a
//! `--netrc-file` for curl, an `lftp -f` script for lftp (both mode 600).
//!
//! An optional untimed pass runs every client once more through a proxy on
//! the control connection that counts logins and commands.

// tidy: long file: one benchmark: its setup, timed runs, byte-for-byte checks and report share one context; the shared parts are in xtask::util

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bk_testkit::{ServerKind, ServerOptions, TestServer};
use serde_json::{Value, json};

use xtask::util;
use xtask::util::docs;
use xtask::util::files::{claim_work_dir, read_full, remove_path, warm, write_secret};
use xtask::util::machine::{bk_commit, date_utc, loadavg, machine_info, unix_time};
use xtask::util::process::{ChildGuard, Outcome, exec, find_on_path, show, tail};

use crate::counting_proxy::{CountingProxy, Counts};

const HELP: &str = "\
usage: cargo xtask bench-ftp [--file-mib N] [--files N] [--dirs N] [--runs N] [--work DIR]
                             [--passive-ports LO-HI|testkit] [--no-count] [--no-docs]

Starts pure-ftpd on 127.0.0.1 (through bk-testkit), builds the bk-ftp examples
put_get and upload in release mode, and measures against that one server:
  1. one file (1 GiB by default, pseudo-random, generated once): upload with
     `put_get put` (FtpClient::put_file) and `curl -T`; download with
     `put_get get` (FtpClient::get_file) and `curl -o`;
  2. a tree of small files (2,000 files of 1-16 KiB in 20 directories by default):
     `upload` (upload_tree, 4 connections) and lftp's `mirror -R` (lftp defaults).
Every copy is compared byte for byte with its source. Each client's wall time and
peak RSS (wait4) are recorded; the table shows the median of the runs, with the
tools alternating. Then, unless --no-count, every client runs once more, untimed,
through a proxy on the control connection that counts logins and commands.

options:
  --file-mib N   size of the single file in MiB (default 1024)
  --files N      files in the tree (default 2000)
  --dirs N       directories in the tree (default 20)
  --runs N       timed runs of each measurement (default 5)
  --work DIR     work directory (default target/bench-ftp); the generated inputs stay
                 in WORK/input and are reused while the parameters are the same
  --passive-ports LO-HI|testkit
                 pure-ftpd's passive port range (default 19000-19499, outside the
                 blocks of 25 ports that bk-testkit hands out from 20000 up; `testkit`
                 takes such a block, with which pure-ftpd now and then answers EPSV
                 with 425 when 4 connections open data connections quickly)
  --no-count     skip the counting pass
  --no-docs      do not write the section into docs/BENCHMARKS.md

Writes WORK/results.md and WORK/results.json and puts the section
\"## bk-ftp over loopback FTP (pure-ftpd)\" at the end of docs/BENCHMARKS.md
(replacing that section from an earlier run). Needs root (pure-ftpd chroots),
pure-ftpd, curl and lftp (apt-get install -y pure-ftpd curl lftp).
";

/// Heading of the section in docs/BENCHMARKS.md (and of results.md).
const SECTION: &str = "## bk-ftp over loopback FTP (pure-ftpd)";
/// Marks a work directory as ours.
const WORK_TAG: &str = ".xtask-bench-ftp";
const INPUT_DIR: &str = "input";
const MARKER: &str = "input.json";
const BIG: &str = "big.bin";
const TREE: &str = "tree";
const SEED: u64 = 42;
/// Server paths.
const R_PUT_BK: &str = "/big-bk.bin";
const R_PUT_CURL: &str = "/big-curl.bin";
const R_SOURCE: &str = "/big.bin";
const R_TREE_BK: &str = "/tree-bk";
const R_TREE_LFTP: &str = "/tree-lftp";
const MIB: u64 = 1024 * 1024;
/// The RSS target of put_get.
const RSS_TARGET_MIB: f64 = 64.0;
/// bk-ftp's upload may take at most this multiple of curl's time.
const UPLOAD_TARGET: f64 = 1.25;
/// lftp's tree upload must take at least this multiple of bk-ftp's time.
const TREE_TARGET: f64 = 2.0;

#[derive(Debug)]
struct Opts {
    file_mib: u64,
    files: usize,
    dirs: usize,
    runs: usize,
    work: Option<PathBuf>,
    count: bool,
    docs: bool,
    /// `None`: bk-testkit's own block.
    passive: Option<RangeInclusive<u16>>,
}

fn parse_args(args: Vec<String>) -> Result<Option<Opts>> {
    let mut o = Opts {
        file_mib: 1024,
        files: 2000,
        dirs: 20,
        runs: 5,
        work: None,
        count: true,
        docs: true,
        passive: Some(19000..=19499),
    };
    let mut a = util::flags::Flags::new(args);
    while let Some(flag) = a.next_flag() {
        let positive = |v: String| -> Result<u64> {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{flag} {v:?}: not a positive integer"),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--file-mib" => o.file_mib = positive(a.value()?)?,
            "--files" => o.files = usize::try_from(positive(a.value()?)?)?,
            "--dirs" => o.dirs = usize::try_from(positive(a.value()?)?)?,
            "--runs" => o.runs = usize::try_from(positive(a.value()?)?)?,
            "--work" => o.work = Some(PathBuf::from(a.value()?)),
            "--passive-ports" => {
                let v = a.value()?;
                o.passive = if v == "testkit" {
                    None
                } else {
                    let r = util::flags::port_range(&v).with_context(|| {
                        format!("--passive-ports {v:?}: expected LO-HI or testkit")
                    })?;
                    Some(r)
                };
            }
            "--no-count" if a.bare() => o.count = false,
            "--no-docs" if a.bare() => o.docs = false,
            _ => bail!("unknown argument {:?}\n\n{HELP}", a.arg()),
        }
    }
    Ok(Some(o))
}

/// One measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    BkPut,
    CurlPut,
    BkGet,
    CurlGet,
    BkTree,
    LftpTree,
}

const OPS: [Op; 6] = [
    Op::BkPut,
    Op::CurlPut,
    Op::BkGet,
    Op::CurlGet,
    Op::BkTree,
    Op::LftpTree,
];

impl Op {
    fn tool(self) -> &'static str {
        match self {
            Op::BkPut => "bk-ftp `put_get put` (put_file)",
            Op::BkGet => "bk-ftp `put_get get` (get_file)",
            Op::BkTree => "bk-ftp `upload` (upload_tree, 4 connections)",
            Op::CurlPut => "curl -T",
            Op::CurlGet => "curl -o",
            Op::LftpTree => "lftp mirror -R",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Op::BkPut => "bk-put",
            Op::CurlPut => "curl-put",
            Op::BkGet => "bk-get",
            Op::CurlGet => "curl-get",
            Op::BkTree => "bk-tree",
            Op::LftpTree => "lftp-tree",
        }
    }

    /// The other tool doing the same operation.
    fn peer(self) -> Op {
        match self {
            Op::BkPut => Op::CurlPut,
            Op::CurlPut => Op::BkPut,
            Op::BkGet => Op::CurlGet,
            Op::CurlGet => Op::BkGet,
            Op::BkTree => Op::LftpTree,
            Op::LftpTree => Op::BkTree,
        }
    }

    fn is_tree(self) -> bool {
        matches!(self, Op::BkTree | Op::LftpTree)
    }
}

/// One run of one operation.
#[derive(Debug, Clone)]
struct Run {
    secs: f64,
    max_rss_kib: u64,
    /// Time of a `sync` right after the client exited (its dirty pages).
    sync_after: f64,
    cmd: String,
}

#[derive(Debug)]
struct Ctx {
    root: PathBuf,
    work: PathBuf,
    logs: PathBuf,
    n_log: usize,
    big: PathBuf,
    tree: PathBuf,
    down: PathBuf,
    secrets: PathBuf,
    put_get: PathBuf,
    upload: PathBuf,
    curl: PathBuf,
    lftp: PathBuf,
    server: TestServer,
    big_bytes: u64,
    tree_files: u64,
    tree_bytes: u64,
}

pub fn run(args: Vec<String>) -> Result<()> {
    let Some(opts) = parse_args(args)? else {
        return Ok(());
    };
    let started = unix_time();
    let root = util::workspace_root();
    let load_start = loadavg();

    // Everything that can be missing, before the long parts.
    if !ServerKind::PureFtpd.is_installed() {
        bail!("pure-ftpd is not installed (apt-get install -y pure-ftpd)");
    }
    let curl = find_on_path("curl").context("curl is not installed (apt-get install -y curl)")?;
    let lftp = find_on_path("lftp").context("lftp is not installed (apt-get install -y lftp)")?;
    let versions = Versions {
        curl: first_line(&curl, &["--version"])?,
        lftp: first_line(&lftp, &["--version"])?,
        pure_ftpd: find_on_path("pure-ftpd")
            .or_else(|| Some(PathBuf::from("/usr/sbin/pure-ftpd")))
            .and_then(|p| first_line(&p, &["--help"]).ok())
            .unwrap_or_else(|| "pure-ftpd (version unknown)".into()),
    };

    let work = match &opts.work {
        Some(w) => std::env::current_dir()?.join(w),
        None => root.join("target").join("bench-ftp"),
    };
    prepare_work(&work)?;
    let work = work.canonicalize()?;
    let input = work.join(INPUT_DIR);
    let (big_bytes, tree_files, tree_bytes) = prepare_inputs(&input, &opts)?;

    let (put_get, upload) = build_examples(&root)?;

    let server = TestServer::start(
        ServerKind::PureFtpd,
        ServerOptions {
            passive_ports: opts.passive.clone(),
            ..ServerOptions::default()
        },
    )
    .context("starting pure-ftpd")?;
    eprintln!(
        "pure-ftpd on {} (root {})",
        server.addr(),
        server.root().display()
    );
    let secrets = work.join("secrets");
    fs::create_dir_all(&secrets)?;
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))?;
    let mut ctx = Ctx {
        logs: work.join("logs"),
        n_log: 0,
        big: input.join(BIG),
        tree: input.join(TREE),
        down: work.join("down"),
        secrets,
        put_get,
        upload,
        curl,
        lftp,
        server,
        big_bytes,
        tree_files,
        tree_bytes,
        root,
        work,
    };
    fs::create_dir_all(&ctx.logs)?;
    fs::create_dir_all(&ctx.down)?;
    ctx.write_netrc()?;

    let result = bench(&mut ctx, &opts);
    // The credentials and the downloaded copies go in any case.
    let _ = remove_path(&ctx.secrets);
    let _ = remove_path(&ctx.down);
    let (runs, counts) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("server log:\n{}", tail(&ctx.server.log(), 4000));
            return Err(e);
        }
    };
    let info = Info {
        started,
        load_start,
        load_end: loadavg(),
        versions,
        runs: opts.runs,
        passive: match &opts.passive {
            Some(r) => format!(
                "passive ports {}–{} ({})",
                r.start(),
                r.end(),
                u32::from(*r.end()) - u32::from(*r.start()) + 1
            ),
            None => "bk-testkit's block of 25 passive ports".to_string(),
        },
    };
    let (md, js) = report(&ctx, &runs, &counts, &info);
    docs::write_results(&ctx.work, &md, &js)?;
    if opts.docs {
        let docs = ctx.root.join("docs").join("BENCHMARKS.md");
        write_docs_section(&docs, &md)?;
        eprintln!("updated {}", docs.display());
    }
    Ok(())
}

type Runs = BTreeMap<Op, Vec<Run>>;
type CountsByOp = BTreeMap<Op, (Counts, f64)>;

fn bench(ctx: &mut Ctx, opts: &Opts) -> Result<(Runs, CountsByOp)> {
    let port = ctx.server.port();
    let mut runs: Runs = BTreeMap::new();
    let mut measure = |ctx: &mut Ctx, pair: [Op; 2]| -> Result<()> {
        for r in 0..opts.runs {
            // Alternate which tool goes first.
            let order = if r % 2 == 0 { pair } else { [pair[1], pair[0]] };
            for op in order {
                let run = ctx.run_once(op, port, &format!("r{}", r + 1))?;
                eprintln!(
                    "  run {}  {:<46} {:>7.2} s  {:>9}  {:>7.1} MiB peak RSS",
                    r + 1,
                    op.tool(),
                    run.secs,
                    ctx.throughput(op, run.secs),
                    run.max_rss_kib as f64 / 1024.0
                );
                runs.entry(op).or_default().push(run);
            }
        }
        Ok(())
    };

    eprintln!(
        "single file: {} upload ({} runs each)",
        size_label(ctx.big_bytes),
        opts.runs
    );
    warm_file(&ctx.big)?;
    measure(ctx, [Op::BkPut, Op::CurlPut])?;
    // The last verified upload becomes the download source.
    fs::rename(
        ctx.server.local_path(R_PUT_CURL),
        ctx.server.local_path(R_SOURCE),
    )?;
    remove_path(&ctx.server.local_path(R_PUT_BK))?;

    eprintln!("single file: download");
    measure(ctx, [Op::BkGet, Op::CurlGet])?;

    eprintln!(
        "tree: {} files, {} bytes, upload",
        ctx.tree_files, ctx.tree_bytes
    );
    warm(&ctx.tree)?;
    measure(ctx, [Op::BkTree, Op::LftpTree])?;

    let mut counts = BTreeMap::new();
    if opts.count {
        eprintln!("counting pass (untimed, through a proxy on the control connection)");
        let proxy = CountingProxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        for op in OPS {
            proxy.take();
            let run = ctx.run_once(op, proxy.port(), "count")?;
            let c = proxy.take();
            eprintln!(
                "  {:<46} {} logins, {} data connections, {} commands, 4xx/5xx replies: {}",
                op.tool(),
                c.logins(),
                c.data_connections(),
                c.commands(),
                c.errors_text()
            );
            counts.insert(op, (c, run.secs));
        }
        for p in [R_PUT_BK, R_PUT_CURL] {
            remove_path(&ctx.server.local_path(p))?;
        }
    }
    remove_path(&ctx.server.local_path(R_SOURCE))?;
    Ok((runs, counts))
}

impl Ctx {
    fn url(&self, port: u16, path: &str) -> String {
        format!(
            "ftp://{}@{}:{port}{path}",
            self.server.user(),
            self.server.host()
        )
    }

    /// A URL without user: curl takes the login from its netrc file.
    fn curl_url(&self, port: u16, path: &str) -> String {
        format!("ftp://{}:{port}{path}", self.server.host())
    }

    fn write_netrc(&self) -> Result<()> {
        let text = format!(
            "machine {} login {} password {}\n",
            self.server.host(),
            self.server.user(),
            self.server.password()
        );
        write_secret(&self.netrc(), &text)
    }

    fn netrc(&self) -> PathBuf {
        self.secrets.join("netrc")
    }

    /// The lftp script for a mirror through `port`: settings, login, mirror.
    fn lftp_script(&self, port: u16) -> Result<PathBuf> {
        let path = self.secrets.join(format!("mirror-{port}.lftp"));
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let text = format!(
            "set cmd:fail-exit yes\n\
             open -u {} ftp://{}:{port}\n\
             mirror -R {} {R_TREE_LFTP}\n\
             quit\n",
            quote(&format!(
                "{},{}",
                self.server.user(),
                self.server.password()
            )),
            self.server.host(),
            quote(&self.tree.to_string_lossy()),
        );
        write_secret(&path, &text)?;
        Ok(path)
    }

    fn command(&self, op: Op, port: u16) -> Result<Command> {
        let mut c;
        match op {
            Op::BkPut => {
                c = Command::new(&self.put_get);
                c.arg("put")
                    .arg(&self.big)
                    .arg(self.url(port, R_PUT_BK))
                    .env("FTP_PASSWORD", self.server.password());
            }
            Op::BkGet => {
                c = Command::new(&self.put_get);
                c.arg("get")
                    .arg(self.url(port, R_SOURCE))
                    .arg(self.down.join("big-bk.bin"))
                    .env("FTP_PASSWORD", self.server.password());
            }
            Op::BkTree => {
                c = Command::new(&self.upload);
                c.arg(&self.tree)
                    .arg(self.url(port, R_TREE_BK))
                    .env("FTP_PASSWORD", self.server.password());
            }
            Op::CurlPut => {
                c = Command::new(&self.curl);
                c.arg("-sS")
                    .arg("--netrc-file")
                    .arg(self.netrc())
                    .arg("-T")
                    .arg(&self.big)
                    .arg(self.curl_url(port, R_PUT_CURL));
            }
            Op::CurlGet => {
                c = Command::new(&self.curl);
                c.arg("-sS")
                    .arg("--netrc-file")
                    .arg(self.netrc())
                    .arg("-o")
                    .arg(self.down.join("big-curl.bin"))
                    .arg(self.curl_url(port, R_SOURCE));
            }
            Op::LftpTree => {
                c = Command::new(&self.lftp);
                c.arg("-f").arg(self.lftp_script(port)?);
            }
        }
        Ok(c)
    }

    /// Where `op` puts its copy.
    fn destination(&self, op: Op) -> PathBuf {
        match op {
            Op::BkPut => self.server.local_path(R_PUT_BK),
            Op::CurlPut => self.server.local_path(R_PUT_CURL),
            Op::BkGet => self.down.join("big-bk.bin"),
            Op::CurlGet => self.down.join("big-curl.bin"),
            Op::BkTree => self.server.local_path(R_TREE_BK),
            Op::LftpTree => self.server.local_path(R_TREE_LFTP),
        }
    }

    /// Removes the old copy, runs `op` once (after `sync`), checks its copy.
    /// Uploaded single files stay on the server; everything else is removed.
    fn run_once(&mut self, op: Op, port: u16, label: &str) -> Result<Run> {
        let dst = self.destination(op);
        remove_path(&dst)?;
        let mut cmd = self.command(op, port)?;
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        self.n_log += 1;
        let prefix = self
            .logs
            .join(format!("{:03}-{label}-{}", self.n_log, op.slug()));
        let o: Outcome = exec(&mut cmd, &prefix)?;
        o.check()?;
        let t = Instant::now();
        // SAFETY: as above.
        unsafe { libc::sync() };
        let sync_after = t.elapsed().as_secs_f64();
        let what = format!("{} ({label})", op.tool());
        if op.is_tree() {
            let (files, bytes) =
                compare_trees(&self.tree, &dst).with_context(|| format!("checking {what}"))?;
            if (files, bytes) != (self.tree_files, self.tree_bytes) {
                bail!(
                    "{what}: {files} files / {bytes} bytes, expected {} / {}",
                    self.tree_files,
                    self.tree_bytes
                );
            }
            remove_path(&dst)?;
        } else {
            compare_files(&self.big, &dst).with_context(|| format!("checking {what}"))?;
            // No temporary file left beside the copy.
            let dir = dst.parent().context("no parent")?;
            for e in fs::read_dir(dir)? {
                let name = e?.file_name();
                if name.to_string_lossy().contains("bkftp-part") {
                    bail!("{what}: temporary file {name:?} left in {}", dir.display());
                }
            }
            if matches!(op, Op::BkGet | Op::CurlGet) {
                remove_path(&dst)?;
            }
        }
        Ok(Run {
            secs: o.secs,
            max_rss_kib: o.max_rss_kib,
            sync_after,
            cmd: o.cmd,
        })
    }

    fn throughput(&self, op: Op, secs: f64) -> String {
        let secs = secs.max(1e-9);
        if op.is_tree() {
            format!("{:.0} files/s", self.tree_files as f64 / secs)
        } else {
            format!("{:.0} MB/s", self.big_bytes as f64 / 1e6 / secs)
        }
    }

    fn operation(&self, op: Op) -> String {
        if op.is_tree() {
            format!(
                "upload tree ({} files, {:.1} MB)",
                group(self.tree_files),
                self.tree_bytes as f64 / 1e6
            )
        } else if matches!(op, Op::BkPut | Op::CurlPut) {
            format!("upload {} file", size_label(self.big_bytes))
        } else {
            format!("download {} file", size_label(self.big_bytes))
        }
    }
}

// ---------------------------------------------------------------- report

#[derive(Debug)]
struct Versions {
    curl: String,
    lftp: String,
    pure_ftpd: String,
}

#[derive(Debug)]
struct Info {
    started: u64,
    load_start: String,
    load_end: String,
    versions: Versions,
    runs: usize,
    passive: String,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn secs_of(runs: &Runs, op: Op) -> f64 {
    median(
        &runs
            .get(&op)
            .map(|r| r.iter().map(|x| x.secs).collect::<Vec<_>>())
            .unwrap_or_default(),
    )
}

fn sync_after_of(runs: &Runs, op: Op) -> f64 {
    median(
        &runs
            .get(&op)
            .map(|r| r.iter().map(|x| x.sync_after).collect::<Vec<_>>())
            .unwrap_or_default(),
    )
}

fn rss_mib_of(runs: &Runs, op: Op) -> f64 {
    runs.get(&op)
        .and_then(|r| r.iter().map(|x| x.max_rss_kib).max())
        .map_or(f64::NAN, |k| k as f64 / 1024.0)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn report(ctx: &Ctx, runs: &Runs, counts: &CountsByOp, info: &Info) -> (String, Value) {
    let machine = machine_info();
    let commit = bk_commit(&ctx.root);
    let date = date_utc();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "{SECTION}\n");
    let _ = writeln!(
        md,
        "- date: {date}; commit {commit} (`git describe --always --dirty`)"
    );
    let _ = writeln!(
        md,
        "- machine: {} CPUs (nproc), {}, {:.1} GiB RAM, Linux {kernel}; load average \
         (1/5/15 min) {} at the start, {} at the end",
        machine.nproc,
        machine.cpu,
        machine.mem_kib as f64 / (1024.0 * 1024.0),
        info.load_start,
        info.load_end
    );
    let _ = writeln!(
        md,
        "- server: {} on 127.0.0.1 through bk-testkit, plain FTP, {}, its root on the same disk",
        info.versions.pure_ftpd, info.passive
    );
    let _ = writeln!(md, "- {}", info.versions.curl);
    let _ = writeln!(md, "- {}", info.versions.lftp);
    let _ = writeln!(
        md,
        "- bk-ftp: the examples `put_get` and `upload` of crates/bk-ftp, release build"
    );
    let _ = writeln!(
        md,
        "- inputs: one {} file ({} bytes, pseudo-random); a tree of {} files of 1–16 KiB in {} \
         directories, {} bytes",
        size_label(ctx.big_bytes),
        ctx.big_bytes,
        group(ctx.tree_files),
        tree_dirs(&ctx.tree),
        ctx.tree_bytes
    );
    let _ = writeln!(
        md,
        "- method: median of {} runs per row, the two tools alternating; page cache warm; `sync` \
         before every run; wall time from spawn to exit, peak RSS = `ru_maxrss` from `wait4`; \
         every copy compared byte for byte with its source (uploads: the files in the server's \
         root)",
        info.runs
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| tool | operation | seconds | throughput | peak RSS (MiB) | time ÷ peer's time |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    for op in OPS {
        let s = secs_of(runs, op);
        let ratio = s / secs_of(runs, op.peer());
        let _ = writeln!(
            md,
            "| {} | {} | {s:.2} | {} | {:.1} | {ratio:.2} |",
            op.tool(),
            ctx.operation(op),
            ctx.throughput(op, s),
            rss_mib_of(runs, op),
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "MB = 10^6 bytes. All runs (seconds):\n");
    for op in OPS {
        let v: Vec<String> = runs
            .get(&op)
            .map(|r| r.iter().map(|x| format!("{:.2}", x.secs)).collect())
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "- {}, {}: {}",
            op.tool(),
            ctx.operation(op),
            v.join(", ")
        );
    }
    let _ = writeln!(md);

    let up_ratio = secs_of(runs, Op::BkPut) / secs_of(runs, Op::CurlPut);
    let rss_up = rss_mib_of(runs, Op::BkPut);
    let rss_down = rss_mib_of(runs, Op::BkGet);
    let tree_speedup = secs_of(runs, Op::LftpTree) / secs_of(runs, Op::BkTree);
    let _ = writeln!(md, "| target | measured | |");
    let _ = writeln!(md, "|---|---:|---|");
    let _ = writeln!(
        md,
        "| bk-ftp upload time ≤ {UPLOAD_TARGET}× curl's | {up_ratio:.2}× | {} |",
        met(up_ratio <= UPLOAD_TARGET)
    );
    let _ = writeln!(
        md,
        "| put_get peak RSS < {RSS_TARGET_MIB} MiB, upload | {rss_up:.1} MiB | {} |",
        met(rss_up < RSS_TARGET_MIB)
    );
    let _ = writeln!(
        md,
        "| put_get peak RSS < {RSS_TARGET_MIB} MiB, download | {rss_down:.1} MiB | {} |",
        met(rss_down < RSS_TARGET_MIB)
    );
    let _ = writeln!(
        md,
        "| tree upload ≥ {TREE_TARGET}× faster than lftp | {tree_speedup:.2}× (lftp's time ÷ bk-ftp's) | {} |",
        met(tree_speedup >= TREE_TARGET)
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "`get_file` fsyncs the downloaded file before renaming it into place, inside its time; \
         curl does not. A `sync` right after the client exited took {:.2} s after `put_get get` \
         and {:.2} s after `curl -o` (medians; system-wide, so other writers add to both).",
        sync_after_of(runs, Op::BkGet),
        sync_after_of(runs, Op::CurlGet)
    );
    let _ = writeln!(md);

    if !counts.is_empty() {
        let _ = writeln!(
            md,
            "FTP traffic of one more, untimed, run of each client through a counting proxy on the \
             control connection (data connections = STOR/RETR/LIST/MLSD/NLST/APPE commands):\n"
        );
        let _ = writeln!(
            md,
            "| tool | operation | logins | data connections | commands | per file | commands by verb | 4xx/5xx replies |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|---|");
        for (op, (c, _)) in counts {
            let files = if op.is_tree() { ctx.tree_files } else { 1 };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.1} | {} | {} |",
                op.tool(),
                ctx.operation(*op),
                c.logins(),
                c.data_connections(),
                c.commands(),
                c.commands() as f64 / files.max(1) as f64,
                c.verbs_text(),
                c.errors_text()
            );
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(
        md,
        "Commands (ports vary; the examples read the password from `FTP_PASSWORD`, curl from a \
         `--netrc-file`, lftp from its `-f` script with `set cmd:fail-exit yes`, \
         `open -u USER,PASSWORD ftp://127.0.0.1:PORT`, the `mirror -R` line and `quit`; both \
         files mode 600):\n"
    );
    let _ = writeln!(md, "```");
    for op in OPS {
        if let Some(r) = runs.get(&op).and_then(|r| r.first()) {
            let _ = writeln!(md, "{}", r.cmd);
        }
    }
    let _ = writeln!(md, "```");

    let rows: serde_json::Map<String, Value> = OPS
        .iter()
        .map(|&op| {
            let rs = runs.get(&op).cloned().unwrap_or_default();
            let v = json!({
                "tool": op.tool(),
                "operation": ctx.operation(op),
                "median_secs": secs_of(runs, op),
                "peak_rss_kib": rs.iter().map(|r| r.max_rss_kib).max(),
                "ratio_to_peer": secs_of(runs, op) / secs_of(runs, op.peer()),
                "runs": rs.iter().map(|r| json!({
                    "secs": r.secs,
                    "max_rss_kib": r.max_rss_kib,
                    "sync_after_secs": r.sync_after,
                })).collect::<Vec<_>>(),
                "cmd": rs.first().map(|r| r.cmd.clone()),
                "counts": counts.get(&op).map(|(c, secs)| json!({
                    "control_connections": c.connections,
                    "logins": c.logins(),
                    "data_connections": c.data_connections(),
                    "commands": c.commands(),
                    "verbs": c.verbs,
                    "replies": c.replies.iter().map(|((verb, code), v)| (format!("{verb} {code}"), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
                    "secs_through_proxy": secs,
                })),
            });
            (op.slug().to_string(), v)
        })
        .collect();
    let js = json!({
        "started_unix": info.started,
        "finished_unix": unix_time(),
        "date": date,
        "commit": commit,
        "machine": {"nproc": machine.nproc, "cpu": machine.cpu, "mem_total_kib": machine.mem_kib,
                    "kernel": kernel, "loadavg_start": info.load_start, "loadavg_end": info.load_end},
        "passive_ports": info.passive,
        "versions": {"curl": info.versions.curl, "lftp": info.versions.lftp, "pure_ftpd": info.versions.pure_ftpd},
        "inputs": {"file_bytes": ctx.big_bytes, "tree_files": ctx.tree_files, "tree_bytes": ctx.tree_bytes},
        "runs_per_row": info.runs,
        "targets": {
            "upload_ratio_to_curl": up_ratio,
            "put_get_peak_rss_mib_upload": rss_up,
            "put_get_peak_rss_mib_download": rss_down,
            "tree_speedup_over_lftp": tree_speedup,
            "met": up_ratio <= UPLOAD_TARGET && rss_up < RSS_TARGET_MIB
                && rss_down < RSS_TARGET_MIB && tree_speedup >= TREE_TARGET,
        },
        "rows": rows,
    });
    (md, js)
}

/// Puts `md` (which starts with [`SECTION`]) into the file in place of an
/// earlier copy of that section, or at the end; the rest is kept as is.
fn write_docs_section(path: &Path, md: &str) -> Result<()> {
    let section = format!(
        "{}\n\nReproduce: `cargo xtask bench-ftp` (as root, with pure-ftpd; \
         `apt-get install -y curl lftp`).\n",
        md.trim_end()
    );
    docs::write_section(path, SECTION, &section)
}

// ---------------------------------------------------------------- setup

fn build_examples(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut c = util::cargo_command();
    c.args([
        "build",
        "--release",
        "-p",
        "bk-ftp",
        "--example",
        "put_get",
        "--example",
        "upload",
    ])
    .current_dir(root);
    eprintln!("$ {}", show(&c));
    let (status, _) = ChildGuard::spawn(&mut c)?.wait()?;
    if !status.success() {
        bail!("{} failed ({status})", show(&c));
    }
    let target = util::target_dir(root);
    let examples = target.join("release").join("examples");
    let (put_get, upload) = (examples.join("put_get"), examples.join("upload"));
    for p in [&put_get, &upload] {
        if !p.is_file() {
            bail!("{} missing after the build", p.display());
        }
    }
    Ok((put_get, upload))
}

fn first_line(exe: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// Creates the work directory (refusing a foreign non-empty one) and clears
/// everything in it but the inputs.
fn prepare_work(work: &Path) -> Result<()> {
    claim_work_dir(work, WORK_TAG, "bench-ftp", &[INPUT_DIR])
}

/// Generates the single file and the tree, or reuses them. Returns the
/// file's size, and the tree's file count and bytes.
fn prepare_inputs(input: &Path, opts: &Opts) -> Result<(u64, u64, u64)> {
    let want = json!({
        "version": 1,
        "seed": SEED,
        "file_bytes": opts.file_mib * MIB,
        "files": opts.files,
        "dirs": opts.dirs,
    });
    let big = input.join(BIG);
    let tree = input.join(TREE);
    let marker = input.join(MARKER);
    let have: Value = fs::read_to_string(&marker)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if have == want
        && fs::metadata(&big).is_ok_and(|m| m.len() == opts.file_mib * MIB)
        && let Ok((files, bytes)) = tree_stats(&tree)
        && files == opts.files as u64
    {
        eprintln!("reusing the inputs in {}", input.display());
        return Ok((opts.file_mib * MIB, files, bytes));
    }
    remove_path(input)?;
    fs::create_dir_all(input)?;
    let t = Instant::now();
    let mut rng = SEED;
    let mut buf = vec![0u8; MIB as usize];
    let part = input.join(format!("{BIG}.part"));
    let mut f = BufWriter::new(File::create(&part)?);
    for _ in 0..opts.file_mib {
        fill(&mut rng, &mut buf);
        f.write_all(&buf)?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&part, &big)?;
    let mut bytes = 0;
    for i in 0..opts.files {
        let dir = tree.join(format!("d{:02}", i % opts.dirs));
        if i < opts.dirs {
            fs::create_dir_all(&dir)?;
        }
        let size = 1024 + (splitmix(&mut rng) % (15 * 1024 + 1)) as usize;
        fill(&mut rng, &mut buf[..size]);
        fs::write(dir.join(format!("f{i:05}.bin")), &buf[..size])?;
        bytes += size as u64;
    }
    fs::write(&marker, serde_json::to_string_pretty(&want)? + "\n")?;
    eprintln!(
        "generated {} and {} files in {} ({:.1} s)",
        size_label(opts.file_mib * MIB),
        opts.files,
        input.display(),
        t.elapsed().as_secs_f64()
    );
    Ok((opts.file_mib * MIB, opts.files as u64, bytes))
}

/// Reads a file once, to have it in the page cache.
fn warm_file(path: &Path) -> Result<()> {
    let mut f = File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    while read_full(&mut f, &mut buf)? > 0 {}
    Ok(())
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let v = splitmix(state).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

// ---------------------------------------------------------------- checks

/// Regular files below `dir`, by relative path, with their sizes. Anything
/// but directories and regular files is an error.
fn files_below(dir: &Path) -> Result<BTreeMap<PathBuf, u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(dir)?.to_path_buf();
                out.insert(rel, e.metadata()?.len());
            } else {
                bail!("{}: not a regular file", e.path().display());
            }
        }
    }
    Ok(out)
}

fn tree_stats(dir: &Path) -> Result<(u64, u64)> {
    let files = files_below(dir)?;
    Ok((files.len() as u64, files.values().sum()))
}

fn tree_dirs(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.flatten().count())
}

/// Compares two trees file by file; returns the copy's file count and bytes.
fn compare_trees(src: &Path, dst: &Path) -> Result<(u64, u64)> {
    let a = files_below(src)?;
    let b = files_below(dst)?;
    let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "{} has {} files, {} has {}; missing (first 5) {missing:?}, extra (first 5) {extra:?}",
            src.display(),
            a.len(),
            dst.display(),
            b.len()
        );
    }
    for rel in a.keys() {
        compare_files(&src.join(rel), &dst.join(rel))?;
    }
    Ok((b.len() as u64, b.values().sum()))
}

fn compare_files(a: &Path, b: &Path) -> Result<()> {
    let la = fs::metadata(a)
        .with_context(|| format!("{}", a.display()))?
        .len();
    let lb = fs::metadata(b)
        .with_context(|| format!("{}", b.display()))?
        .len();
    if la != lb {
        bail!("{} has {la} bytes, {} has {lb}", a.display(), b.display());
    }
    let mut fa = File::open(a)?;
    let mut fb = File::open(b)?;
    let mut ba = vec![0u8; MIB as usize];
    let mut bb = vec![0u8; MIB as usize];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if ba[..n] != bb[..m] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..m])
                .position(|(x, y)| x != y)
                .unwrap_or(n.min(m));
            bail!(
                "{} and {} differ at byte {}",
                a.display(),
                b.display(),
                offset + i as u64
            );
        }
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
    }
}

// ---------------------------------------------------------------- formatting

fn size_label(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{:.0} MiB", bytes as f64 / MIB as f64)
    }
}

/// `2000` → `2,000`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
