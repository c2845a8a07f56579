//! `cargo xtask bench`: time bk against restic and borg on one generated dataset.
//!
//! Every tool sees the same dataset states in one run: v0 backup, a no-change
//! backup, two mutate + backup rounds, then restore of the latest and of the
//! oldest snapshot. Each measured command's wall time and peak RSS (from
//! `wait4`) are recorded; the report goes to stdout and to
//! `WORK/results.md` / `WORK/results.json`.

// tidy: long file: one benchmark, read top to bottom: options, the runner of each tool's commands per step, the report; the shared parts are in xtask::util

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xtask::util;
use xtask::util::build::{Profile, build_bk};
use xtask::util::dataset::{Ctx, DATASET, DATASET_DIR, MARKER, generate, prepare_work};
use xtask::util::docs;
use xtask::util::files::{dir_bytes, remove_path, warm};
use xtask::util::machine::{bk_commit, date_utc, machine_info, mb, unix_time};
use xtask::util::process::{find_on_path, shell_quote, show, version_line};

const HELP: &str = "\
usage: cargo xtask bench [--scale F] [--seed N] [--work DIR] [--tools LIST] [--keep]
       cargo xtask bench --ftp [options]   (`cargo xtask bench --ftp --help`)

Builds bk in release mode, generates a dataset with tests/bench/gen_dataset.py and
times bk, restic and borg on the same sequence: v0 backup, no-change backup,
mutate 1 + backup, mutate 2 + backup, restore latest, restore oldest (v0).
bk's restore of the latest snapshot is checked with tests/bench/verify_tree.py.

options:
  --scale F      dataset scale (default 1.0: ~20,200 files, ~1.65 GB)
  --seed N       dataset seed (default 42)
  --work DIR     work directory (default target/bench); wiped at the start, except
                 that a dataset generated with the same seed and scale and not yet
                 mutated is reused
  --tools LIST   comma-separated subset of bk,restic,borg (default: all); bk always
                 runs, restic and borg are skipped when not on PATH
  --keep         keep the dataset, repositories and restored trees afterwards
                 (default: remove them, keep logs/ and results.*)
  --ftp          the same dataset over FTP instead: bk with its repository on a local
                 pure-ftpd next to restic (rclone backend), duplicity, rclone sync and
                 lftp mirror, and bk's pull mode (see `cargo xtask bench --ftp --help`)
";

/// Row labels of the timed steps, in order.
const STEPS: [&str; 6] = [
    "initial backup (v0)",
    "no-change backup",
    "backup after mutate 1",
    "backup after mutate 2",
    "restore latest",
    "restore oldest (v0)",
];
const RESTORE_LATEST: usize = 4;
const RESTORE_OLDEST: usize = 5;
/// restic tags / borg archive names of the four backups.
const LABELS: [&str; 4] = ["v0", "v0-again", "v1", "v2"];

#[derive(Debug)]
struct Opts {
    scale: f64,
    seed: u64,
    work: Option<PathBuf>,
    peers: Vec<Tool>,
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Bk,
    Restic,
    Borg,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Bk => "bk",
            Tool::Restic => "restic",
            Tool::Borg => "borg",
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Option<Opts>> {
    let mut o = Opts {
        scale: 1.0,
        seed: 42,
        work: None,
        peers: vec![Tool::Restic, Tool::Borg],
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
                o.peers.clear();
                for name in a.list()? {
                    let t = match name.as_str() {
                        "bk" => continue,
                        "restic" => Tool::Restic,
                        "borg" => Tool::Borg,
                        _ => bail!("--tools: unknown tool {name:?} (known: bk, restic, borg)"),
                    };
                    if !o.peers.contains(&t) {
                        o.peers.push(t);
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
    let mut notes = Vec::new();

    // Peers first: a missing tool should be reported before a long build.
    let mut peers = Vec::new();
    for &t in &opts.peers {
        let Some(exe) = find_on_path(t.name()) else {
            eprintln!("{} not installed, skipped", t.name());
            notes.push(format!("{} not installed, skipped", t.name()));
            continue;
        };
        let version = tool_version(t, &exe)?;
        if t == Tool::Borg && !version.starts_with("borg 1.") {
            eprintln!("{version}: only borg 1.x is supported, skipped");
            notes.push(format!("{version}: only borg 1.x is supported, skipped"));
            continue;
        }
        peers.push((t, exe, version));
    }

    let work = match &opts.work {
        Some(w) => std::env::current_dir()?.join(w),
        None => root.join("target").join("bench"),
    };
    let reuse = prepare_work(&work, opts.seed, opts.scale)?;
    let work = work
        .canonicalize()
        .with_context(|| format!("{}", work.display()))?;
    let bk = build_bk(&root, Profile::Release)?;
    let bk_version = tool_version(Tool::Bk, &bk)?;
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

    let mut runners = vec![Runner::new(Tool::Bk, bk, bk_version, &ctx)];
    for (t, exe, version) in peers {
        runners.push(Runner::new(t, exe, version, &ctx));
    }

    match bench(&mut ctx, &mut runners, reuse, notes) {
        Ok(()) => {
            if !opts.keep {
                for d in [DATASET_DIR, "repos", "restore", "home"] {
                    remove_path(&ctx.work.join(d))?;
                }
                remove_path(&ctx.work.join(MARKER))?;
            }
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "bench failed; work directory kept for inspection: {}",
                ctx.work.display()
            );
            Err(e)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Measurement {
    secs: f64,
    max_rss_kib: u64,
}

#[derive(Debug)]
struct Runner {
    tool: Tool,
    exe: PathBuf,
    version: String,
    repo: PathBuf,
    /// Restore target (deleted before each restore).
    out: PathBuf,
    env: Vec<(&'static str, OsString)>,
    steps: [Option<Measurement>; 6],
    /// Command line of each step, and of `init`.
    cmds: [String; 6],
    init_cmd: String,
    repo_bytes: u64,
    verify: Option<(bool, String)>,
}

impl Runner {
    fn new(tool: Tool, exe: PathBuf, version: String, ctx: &Ctx) -> Self {
        let home = ctx.work.join("home");
        let env: Vec<(&'static str, OsString)> = match tool {
            Tool::Bk => vec![],
            Tool::Restic => vec![
                ("RESTIC_PASSWORD", "bench".into()),
                ("RESTIC_CACHE_DIR", home.join("restic-cache").into()),
            ],
            Tool::Borg => vec![
                ("BORG_PASSPHRASE", "bench".into()),
                ("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes".into()),
                ("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes".into()),
                ("BORG_BASE_DIR", home.join("borg").into()),
            ],
        };
        Runner {
            tool,
            exe,
            version,
            repo: ctx.work.join("repos").join(tool.name()),
            out: ctx.work.join("restore").join(tool.name()),
            env,
            steps: [None; 6],
            cmds: Default::default(),
            init_cmd: String::new(),
            repo_bytes: 0,
            verify: None,
        }
    }

    fn name(&self) -> &'static str {
        self.tool.name()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.env_remove("BK_REPO");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn borg_archive(&self, label: &str) -> OsString {
        let mut s = self.repo.clone().into_os_string();
        s.push("::");
        s.push(label);
        s
    }

    fn init_command(&self) -> Command {
        let mut c = self.command();
        match self.tool {
            Tool::Bk => c.arg("init").arg("--repo").arg(&self.repo),
            Tool::Restic => c.arg("-r").arg(&self.repo).args(["-q", "init"]),
            Tool::Borg => c.args(["init", "--encryption", "repokey"]).arg(&self.repo),
        };
        c
    }

    /// The backup command of step `step` (0..4).
    fn backup_command(&self, step: usize, src: &Path) -> Command {
        let mut c = self.command();
        match self.tool {
            Tool::Bk => c
                .arg("backup")
                .arg(src)
                .arg("--repo")
                .arg(&self.repo)
                .args(["--dataset", DATASET]),
            Tool::Restic => c
                .arg("-r")
                .arg(&self.repo)
                .args(["-q", "backup", "--tag", LABELS[step]])
                .arg(src),
            Tool::Borg => c
                .args(["create", "--compression", "lz4"])
                .arg(self.borg_archive(LABELS[step]))
                .arg(src),
        };
        c
    }

    /// The restore command of the latest (v2) or the oldest (v0) snapshot.
    /// The output directory must not exist yet.
    fn restore_command(&self, ctx: &mut Ctx, latest: bool) -> Result<Command> {
        let mut c = self.command();
        match self.tool {
            Tool::Bk => {
                c.args(["restore", DATASET, "--repo"])
                    .arg(&self.repo)
                    .arg("--to")
                    .arg(&self.out);
                if !latest {
                    c.args(["--id", "0"]);
                }
            }
            Tool::Restic => {
                let id = if latest {
                    "latest".to_string()
                } else {
                    self.restic_snapshot_id(ctx, LABELS[0])?
                };
                c.arg("-r")
                    .arg(&self.repo)
                    .args(["-q", "restore", &id, "--target"])
                    .arg(&self.out);
            }
            Tool::Borg => {
                fs::create_dir_all(&self.out)?;
                let label = if latest { LABELS[3] } else { LABELS[0] };
                c.arg("extract")
                    .arg(self.borg_archive(label))
                    .current_dir(&self.out);
            }
        }
        Ok(c)
    }

    fn restic_snapshot_id(&self, ctx: &mut Ctx, tag: &str) -> Result<String> {
        let mut c = self.command();
        c.arg("-r").arg(&self.repo).args(["snapshots", "--json"]);
        let out = ctx.exec_ok(&mut c, "restic-snapshots")?.stdout;
        let snaps: Value =
            serde_json::from_str(&out).context("restic snapshots --json: bad JSON")?;
        let found = snaps.as_array().into_iter().flatten().find(|s| {
            s["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(tag)))
        });
        match found.and_then(|s| s["id"].as_str()) {
            Some(id) => Ok(id.to_string()),
            None => bail!("restic snapshots --json: no snapshot tagged {tag}"),
        }
    }

    /// Where the restored copy of `src` ends up below the output directory:
    /// restic and borg keep the absolute source path.
    fn restored_root(&self, src: &Path) -> PathBuf {
        match self.tool {
            Tool::Bk => self.out.clone(),
            Tool::Restic | Tool::Borg => self.out.join(src.strip_prefix("/").unwrap_or(src)),
        }
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        self.steps.iter().flatten().map(|m| m.max_rss_kib).max()
    }

    /// Runs one measured command (after flushing dirty pages, untimed).
    fn measure(&mut self, ctx: &mut Ctx, step: usize, mut cmd: Command) -> Result<()> {
        self.cmds[step] = show(&cmd);
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let slug = STEPS[step]
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let o = ctx.exec_ok(&mut cmd, &format!("{}-{slug}", self.name()))?;
        eprintln!(
            "  {:<7} {:<22} {:>8.2} s  {:>8.1} MB peak RSS",
            self.name(),
            STEPS[step],
            o.secs,
            mb(o.max_rss_kib * 1024)
        );
        self.steps[step] = Some(Measurement {
            secs: o.secs,
            max_rss_kib: o.max_rss_kib,
        });
        Ok(())
    }
}

fn bench(ctx: &mut Ctx, runners: &mut [Runner], reuse: bool, notes: Vec<String>) -> Result<()> {
    let started = unix_time();
    generate(ctx, reuse)?;
    let stats_v0 = ctx.stats("stats-v0")?;
    eprintln!("dataset: {stats_v0}");

    fs::create_dir_all(ctx.work.join("repos"))?;
    fs::create_dir_all(ctx.work.join("restore"))?;
    for r in runners.iter_mut() {
        let mut c = r.init_command();
        r.init_cmd = show(&c);
        ctx.exec_ok(&mut c, &format!("{}-init", r.name()))?;
    }

    let mut mutations = Vec::new();
    for step in 0..4 {
        if step >= 2 {
            ctx.set_marker("mutated")?;
            mutations.push(ctx.mutate(u32::try_from(step - 1)?)?);
        }
        warm(&ctx.src)?;
        for r in runners.iter_mut() {
            let cmd = r.backup_command(step, &ctx.src);
            r.measure(ctx, step, cmd)?;
        }
    }
    let stats_v2 = ctx.stats("stats-v2")?;
    for r in runners.iter_mut() {
        r.repo_bytes = dir_bytes(&r.repo)?;
    }

    for r in runners.iter_mut() {
        for step in [RESTORE_LATEST, RESTORE_OLDEST] {
            remove_path(&r.out)?;
            let cmd = r.restore_command(ctx, step == RESTORE_LATEST)?;
            r.measure(ctx, step, cmd)?;
            if step == RESTORE_LATEST {
                let mut c = ctx.python("verify_tree.py");
                c.arg(&ctx.src).arg(r.restored_root(&ctx.src));
                let o = ctx.exec(&mut c, &format!("{}-verify", r.name()))?;
                let line = o.stdout.trim().to_string();
                eprintln!("  {:<7} verify restore latest: {line}", r.name());
                let ok = o.status.success();
                if !ok && (r.tool == Tool::Bk || !line.starts_with("content=")) {
                    bail!(
                        "{}: the restored tree differs from the dataset ({}): {line}\n{}",
                        r.name(),
                        o.status,
                        o.stderr_tail
                    );
                }
                r.verify = Some((ok, line));
            }
        }
    }

    let info = Info {
        started,
        stats_v0,
        stats_v2,
        mutations,
        notes,
    };
    let (md, js) = report(ctx, runners, &info);
    docs::write_results(&ctx.work, &md, &js)?;
    Ok(())
}

#[derive(Debug)]
struct Info {
    started: u64,
    stats_v0: String,
    stats_v2: String,
    mutations: Vec<String>,
    notes: Vec<String>,
}

fn report(ctx: &Ctx, runners: &[Runner], info: &Info) -> (String, Value) {
    let machine = machine_info();
    let commit = bk_commit(&ctx.root);
    let mut md = String::new();
    let _ = writeln!(md, "## bk benchmark\n");
    let _ = writeln!(md, "- date: {}", date_utc());
    let _ = writeln!(
        md,
        "- machine: {} CPUs (nproc), {}, {:.1} GiB RAM",
        machine.nproc,
        machine.cpu,
        machine.mem_kib as f64 / (1024.0 * 1024.0)
    );
    for r in runners {
        if r.tool == Tool::Bk {
            let _ = writeln!(md, "- {} (commit {commit})", r.version);
        } else {
            let _ = writeln!(md, "- {}", r.version);
        }
    }
    for n in &info.notes {
        let _ = writeln!(md, "- {n}");
    }
    let _ = writeln!(md, "- dataset: seed {}, scale {}", ctx.seed, ctx.scale);
    let _ = writeln!(md, "  - v0: {}", info.stats_v0);
    let _ = writeln!(md, "  - after mutate 2: {}", info.stats_v2);
    let _ = writeln!(md);

    // The table.
    let bk = &runners[0];
    let peers = &runners[1..];
    let mut head = String::from("| step (wall seconds) |");
    let mut rule = String::from("|---|");
    for r in runners {
        let _ = write!(head, " {} |", r.name());
        rule.push_str("---:|");
    }
    for p in peers {
        let _ = write!(head, " bk/{} |", p.name());
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let row = |md: &mut String, label: &str, val: &dyn Fn(&Runner) -> Option<f64>, prec: usize| {
        let _ = write!(md, "| {label} |");
        for r in runners {
            match val(r) {
                Some(v) => {
                    let _ = write!(md, " {v:.prec$} |");
                }
                None => md.push_str(" – |"),
            }
        }
        for p in peers {
            match (val(bk), val(p)) {
                (Some(a), Some(b)) if b > 0.0 => {
                    let _ = write!(md, " {:.2} |", a / b);
                }
                _ => md.push_str(" – |"),
            }
        }
        md.push('\n');
    };
    for (i, label) in STEPS.iter().enumerate() {
        row(&mut md, label, &|r| r.steps[i].map(|m| m.secs), 2);
    }
    row(
        &mut md,
        "repository size after v2 (MB, 10^6)",
        &|r| Some(mb(r.repo_bytes)),
        1,
    );
    row(
        &mut md,
        "peak RSS (MB, max over the tool's commands)",
        &|r| r.peak_rss_kib().map(|k| mb(k * 1024)),
        1,
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "restore latest compared with the v2 tree by `verify_tree.py`:"
    );
    for r in runners {
        if let Some((_, line)) = &r.verify {
            let _ = writeln!(md, "- {}: {line}", r.name());
        }
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "commands (environment, then init, the v0 backup and the two restores):\n"
    );
    let _ = writeln!(md, "```");
    for r in runners {
        let env: Vec<String> = r
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(&v.to_string_lossy())))
            .collect();
        if !env.is_empty() {
            let _ = writeln!(md, "{}", env.join(" "));
        }
        for c in [
            &r.init_cmd,
            &r.cmds[0],
            &r.cmds[RESTORE_LATEST],
            &r.cmds[RESTORE_OLDEST],
        ] {
            let _ = writeln!(md, "{c}");
        }
    }
    let _ = writeln!(md, "```");

    let tools: serde_json::Map<String, Value> = runners
        .iter()
        .map(|r| {
            let steps: serde_json::Map<String, Value> = STEPS
                .iter()
                .enumerate()
                .filter_map(|(i, label)| {
                    let m = r.steps[i]?;
                    Some((
                        (*label).to_string(),
                        json!({"secs": m.secs, "max_rss_kib": m.max_rss_kib, "cmd": r.cmds[i]}),
                    ))
                })
                .collect();
            let v = json!({
                "version": r.version,
                "exe": r.exe,
                "env": r.env.iter().map(|(k, v)| (k.to_string(), Value::from(v.to_string_lossy()))).collect::<serde_json::Map<_, _>>(),
                "init_cmd": r.init_cmd,
                "steps": steps,
                "repo_bytes": r.repo_bytes,
                "peak_rss_kib": r.peak_rss_kib(),
                "verify_latest": r.verify.as_ref().map(|(ok, line)| json!({"ok": ok, "report": line})),
            });
            (r.name().to_string(), v)
        })
        .collect();
    let js = json!({
        "started_unix": info.started,
        "finished_unix": unix_time(),
        "seed": ctx.seed,
        "scale": ctx.scale,
        "machine": {"nproc": machine.nproc, "cpu": machine.cpu, "mem_total_kib": machine.mem_kib},
        "bk_commit": commit,
        "dataset": {"path": ctx.src, "stats_v0": info.stats_v0, "stats_v2": info.stats_v2, "mutations": info.mutations},
        "notes": info.notes,
        "tools": tools,
    });
    (md, js)
}

fn tool_version(tool: Tool, exe: &Path) -> Result<String> {
    let arg = if tool == Tool::Restic {
        "version"
    } else {
        "--version"
    };
    version_line(exe, arg)
}
