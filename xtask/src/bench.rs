//! `cargo xtask bench`: time bk against restic and borg on one generated dataset.
//!
//! Every tool sees the same dataset states in one run: v0 backup, a no-change
//! backup, two mutate + backup rounds, then restore of the latest and of the
//! oldest snapshot. Each measured command's wall time and peak RSS (from
//! `wait4`) are recorded; the report goes to stdout and to
//! `WORK/results.md` / `WORK/results.json`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

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
/// bk's dataset name.
pub(crate) const DATASET: &str = "ds";
/// Marks a work directory as ours, so that it may be wiped.
const WORK_TAG: &str = ".xtask-bench";
/// Seed, scale and state of the generated dataset.
pub(crate) const MARKER: &str = "dataset.json";
pub(crate) const DATASET_DIR: &str = "dataset";

#[derive(Debug)]
struct Opts {
    scale: f64,
    seed: u64,
    work: Option<PathBuf>,
    peers: Vec<Tool>,
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tool {
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
    let mut a = crate::flags::Flags::new(args);
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--scale" => {
                let v = a.value()?;
                o.scale = v
                    .parse()
                    .with_context(|| format!("--scale {v:?}: not a number"))?;
                if !(o.scale.is_finite() && o.scale > 0.0) {
                    bail!("--scale must be positive");
                }
            }
            "--seed" => {
                let v = a.value()?;
                o.seed = v
                    .parse()
                    .with_context(|| format!("--seed {v:?}: not a non-negative integer"))?;
            }
            "--work" => o.work = Some(PathBuf::from(a.value()?)),
            "--tools" => {
                o.peers.clear();
                for name in a
                    .value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    let t = match name {
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
    if args.iter().any(|a| a == "--ftp") {
        return crate::bench_over_ftp::run(args.into_iter().filter(|a| a != "--ftp").collect());
    }
    let Some(opts) = parse_args(args)? else {
        return Ok(());
    };
    let root = crate::workspace_root();
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
    let bk = build_bk(&root)?;
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

#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) root: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) logs: PathBuf,
    pub(crate) n_log: usize,
    /// The dataset directory (absolute; the same path for every backup).
    pub(crate) src: PathBuf,
    pub(crate) seed: u64,
    pub(crate) scale: f64,
}

impl Ctx {
    pub(crate) fn python(&self, script: &str) -> Command {
        let mut c = Command::new("python3");
        c.arg(self.root.join("tests").join("bench").join(script));
        c
    }

    pub(crate) fn exec(&mut self, cmd: &mut Command, name: &str) -> Result<Outcome> {
        self.n_log += 1;
        let prefix = self.logs.join(format!("{:02}-{name}", self.n_log));
        exec(cmd, &prefix)
    }

    pub(crate) fn exec_ok(&mut self, cmd: &mut Command, name: &str) -> Result<Outcome> {
        let o = self.exec(cmd, name)?;
        o.check()?;
        Ok(o)
    }

    pub(crate) fn set_marker(&self, state: &str) -> Result<()> {
        let m = json!({"seed": self.seed, "scale": self.scale, "state": state});
        fs::write(self.work.join(MARKER), serde_json::to_string_pretty(&m)?)?;
        Ok(())
    }

    pub(crate) fn stats(&mut self, name: &str) -> Result<String> {
        let mut c = self.python("gen_dataset.py");
        c.arg("stats").arg(&self.src);
        Ok(self.exec_ok(&mut c, name)?.stdout.trim().to_string())
    }

    pub(crate) fn mutate(&mut self, version: u32) -> Result<String> {
        let mut c = self.python("gen_dataset.py");
        c.args([
            "mutate",
            "--seed",
            &self.seed.to_string(),
            "--version",
            &version.to_string(),
        ]);
        c.arg(&self.src);
        let o = self.exec_ok(&mut c, &format!("mutate-v{version}"))?;
        let line = o.stdout.trim().to_string();
        eprintln!("{line} ({:.1} s)", o.secs);
        Ok(line)
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
    print!("{md}");
    fs::write(ctx.work.join("results.md"), &md)?;
    fs::write(
        ctx.work.join("results.json"),
        serde_json::to_string_pretty(&js)? + "\n",
    )?;
    eprintln!(
        "wrote {} and {}",
        ctx.work.join("results.md").display(),
        ctx.work.join("results.json").display()
    );
    Ok(())
}

/// Generates the dataset into `ctx.src`, unless an unmutated one of the same
/// seed and scale is `reuse`d.
pub(crate) fn generate(ctx: &mut Ctx, reuse: bool) -> Result<()> {
    let scale_s = ctx.scale.to_string();
    if reuse {
        eprintln!(
            "reusing the dataset in {} (seed {}, scale {scale_s})",
            ctx.src.display(),
            ctx.seed
        );
    } else {
        eprintln!(
            "generating the dataset (seed {}, scale {scale_s}) in {}",
            ctx.seed,
            ctx.src.display()
        );
        let mut c = ctx.python("gen_dataset.py");
        c.args(["gen", "--seed", &ctx.seed.to_string(), "--out"]);
        c.arg(&ctx.src).args(["--scale", &scale_s]);
        let o = ctx.exec_ok(&mut c, "gen")?;
        eprintln!("{} ({:.1} s)", o.stdout.trim(), o.secs);
        ctx.set_marker("pristine")?;
    }
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

// ---------------------------------------------------------------- setup

pub(crate) fn build_bk(root: &Path) -> Result<PathBuf> {
    let mut c = crate::cargo_command();
    c.args(["build", "--release", "-p", "bk-cli"])
        .current_dir(root);
    eprintln!("$ {}", show(&c));
    let (status, _) = ChildGuard::spawn(&mut c)?.wait()?;
    if !status.success() {
        bail!("{} failed ({status})", show(&c));
    }
    let target = crate::target_dir(root);
    let bk = target.join("release").join("bk");
    if !bk.is_file() {
        bail!("{} missing after the build", bk.display());
    }
    Ok(bk)
}

pub(crate) fn tool_version(tool: Tool, exe: &Path) -> Result<String> {
    let arg = if tool == Tool::Restic {
        "version"
    } else {
        "--version"
    };
    let out = Command::new(exe)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!("{} {arg} failed ({})", exe.display(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Empties the work directory, keeping an unmutated dataset of the same seed
/// and scale. Returns whether that dataset is reused.
pub(crate) fn prepare_work(work: &Path, seed: u64, scale: f64) -> Result<bool> {
    let mut reuse = false;
    if work.exists() {
        let nonempty = fs::read_dir(work)
            .with_context(|| format!("{}", work.display()))?
            .next()
            .is_some();
        if nonempty && !work.join(WORK_TAG).exists() {
            bail!(
                "{} is not empty and was not made by `cargo xtask bench`; refusing to wipe it",
                work.display()
            );
        }
        if let Ok(text) = fs::read_to_string(work.join(MARKER)) {
            let m: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            reuse = m["seed"].as_u64() == Some(seed)
                && m["scale"].as_f64() == Some(scale)
                && m["state"] == "pristine"
                && work.join(DATASET_DIR).join(DATASET).is_dir();
        }
        if reuse {
            for e in fs::read_dir(work)? {
                let e = e?;
                let keep = [DATASET_DIR, MARKER, WORK_TAG]
                    .iter()
                    .any(|k| e.file_name() == *k);
                if !keep {
                    remove_path(&e.path())?;
                }
            }
        } else {
            eprintln!("wiping {}", work.display());
            fs::remove_dir_all(work)
                .with_context(|| format!("cannot remove {}", work.display()))?;
        }
    }
    fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    fs::write(
        work.join(WORK_TAG),
        "work directory of `cargo xtask bench`; wiped by it\n",
    )?;
    Ok(reuse)
}

// ---------------------------------------------------------------- processes

/// Kills and reaps the child when dropped before it was waited for.
#[derive(Debug)]
pub(crate) struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub(crate) fn spawn(cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", show(cmd)))?;
        Ok(ChildGuard(Some(child)))
    }

    /// Waits with `wait4`; returns the exit status and the child's peak RSS in KiB.
    pub(crate) fn wait(&mut self) -> Result<(ExitStatus, u64)> {
        let child = self.0.as_ref().context("child already reaped")?;
        let pid = libc::pid_t::try_from(child.id())?;
        let mut status: libc::c_int = 0;
        // SAFETY: `rusage` is a plain C struct; all-zero bytes are a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `pid` is our own child, not reaped yet; `status` and `ru`
            // are valid for writes for the duration of the call.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if r == pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            if r == -1 && err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(anyhow::Error::new(err).context("wait4"));
        }
        // Reaped: the pid may be reused from now on, so never signal it again.
        // (Dropping a `Child` neither waits nor kills.)
        self.0 = None;
        Ok((
            ExitStatus::from_raw(status),
            u64::try_from(ru.ru_maxrss).unwrap_or(0),
        ))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) cmd: String,
    pub(crate) status: ExitStatus,
    pub(crate) secs: f64,
    pub(crate) max_rss_kib: u64,
    pub(crate) stdout: String,
    pub(crate) stderr_tail: String,
}

impl Outcome {
    pub(crate) fn check(&self) -> Result<()> {
        if self.status.success() {
            return Ok(());
        }
        let mut msg = format!("{} failed ({})", self.cmd, self.status);
        if !self.stderr_tail.trim().is_empty() {
            msg.push_str(":\n");
            msg.push_str(self.stderr_tail.trim_end());
        } else if !self.stdout.trim().is_empty() {
            msg.push_str(":\n");
            msg.push_str(tail_str(&self.stdout, 4000).trim_end());
        }
        bail!(msg)
    }
}

/// Runs `cmd` with stdout and stderr going to `PREFIX.out` / `PREFIX.err`,
/// timing it from spawn to reap.
pub(crate) fn exec(cmd: &mut Command, prefix: &Path) -> Result<Outcome> {
    let with_ext = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (out_path, err_path) = (with_ext(".out"), with_ext(".err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).with_context(|| format!("{}", out_path.display()))?)
        .stderr(File::create(&err_path).with_context(|| format!("{}", err_path.display()))?);
    let start = Instant::now();
    let (status, max_rss_kib) = ChildGuard::spawn(cmd)?.wait()?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&fs::read(&out_path)?).into_owned();
    let stderr_tail = file_tail(&err_path, 4000)?;
    Ok(Outcome {
        cmd: show(cmd),
        status,
        secs,
        max_rss_kib,
        stdout,
        stderr_tail,
    })
}

fn file_tail(path: &Path, n: u64) -> Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn tail_str(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// A shell-like rendering of a command line (without its environment).
pub(crate) fn show(cmd: &Command) -> String {
    let mut s = String::new();
    if let Some(d) = cmd.get_current_dir() {
        let _ = write!(s, "cd {} && ", shell_quote(&d.to_string_lossy()));
    }
    s.push_str(&shell_quote(&cmd.get_program().to_string_lossy()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(&a.to_string_lossy()));
    }
    s
}

pub(crate) fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------- files

/// Reads every regular file below `dir` once, to warm the page cache.
pub(crate) fn warm(dir: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let mut f =
                    File::open(e.path()).with_context(|| format!("{}", e.path().display()))?;
                while f.read(&mut buf)? > 0 {}
            }
        }
    }
    Ok(())
}

/// Sum of the sizes of the regular files below `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                total += e.metadata()?.len();
            }
        }
    }
    Ok(total)
}

pub(crate) fn remove_path(p: &Path) -> Result<()> {
    let res = match fs::symlink_metadata(p) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    };
    res.with_context(|| format!("cannot remove {}", p.display()))
}

// ---------------------------------------------------------------- machine

#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) mem_kib: u64,
}

pub(crate) fn machine_info() -> Machine {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let field = |file: &str, key: &str| -> Option<String> {
        let text = fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let cpu = field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let mem_kib = field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Machine {
        nproc,
        cpu,
        mem_kib,
    }
}

/// `git describe --always --dirty` of the workspace, without taking the index lock.
pub(crate) fn bk_commit(root: &Path) -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .env("GIT_OPTIONAL_LOCKS", "0")
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
