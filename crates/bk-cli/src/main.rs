//! `bk`: versioned, deduplicated backups of datasets.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bk_core::archiver::default_threads;
use bk_core::location::RepoLocation;
use bk_core::tree::{NodeKind, display_path};
use bk_core::{BackupOptions, LocalSource, Repository, RestoreOptions, Select, Snapshot};
use clap::{Parser, Subcommand};

/// Exit code: the snapshot was committed, but some files could not be read
/// (or, for restore, some files could not be restored).
const EXIT_PARTIAL: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "bk",
    version,
    about = "Versioned, deduplicated backups of datasets"
)]
struct Cli {
    /// Repository: a local directory, or ftp://user@host[:port]/path or
    /// ftps://… (password from BK_FTP_PASSWORD or --password-file).
    #[arg(long, short = 'r', env = "BK_REPO", global = true, value_name = "REPO")]
    repo: Option<PathBuf>,
    /// File holding the FTP password (must not be readable by others).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// FTPS: trust this CA or server certificate (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    ftp_ca: Option<PathBuf>,
    /// FTPS: accept any server certificate (self-signed servers; the server
    /// is then not authenticated).
    #[arg(long, global = true)]
    ftp_insecure: bool,
    /// FTPS: offer TLS 1.2 only (vsftpd with require_ssl_reuse=YES).
    #[arg(long, global = true)]
    ftp_tls12: bool,
    /// Parallel FTP connections.
    #[arg(long, global = true, default_value_t = 4)]
    ftp_connections: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a repository.
    Init,
    /// Back up a directory as a new snapshot of its dataset.
    Backup {
        /// The directory to back up.
        path: PathBuf,
        /// Dataset name (default: the directory's last component).
        #[arg(long)]
        dataset: Option<String>,
        /// Re-read and re-hash every file instead of trusting size, mtime, ctime and inode.
        #[arg(long)]
        full: bool,
        /// Trust size, mtime and inode alone, for file systems whose ctime
        /// means nothing (a change that puts the mtime back is then missed).
        #[arg(long)]
        ignore_ctime: bool,
        /// Leave out paths matching this gitignore-style pattern (repeatable).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Print the new snapshot as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Worker threads (default: one per CPU).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// List snapshots.
    Snapshots {
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot (the latest unless --id or --before).
    Restore {
        /// The dataset.
        dataset: String,
        /// Output directory (absent or empty unless --overwrite).
        #[arg(long, value_name = "OUT")]
        to: PathBuf,
        /// Snapshot number.
        #[arg(long, conflicts_with = "before")]
        id: Option<u64>,
        /// The newest snapshot strictly before this time: YYYY-MM-DD (local
        /// midnight), "YYYY-MM-DD HH:MM[:SS]" (local) or RFC 3339.
        #[arg(long, value_name = "TIME")]
        before: Option<String>,
        /// Only this file or directory (relative to the dataset root).
        #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
        path: Option<OsString>,
        /// Restore into a non-empty directory: entries the snapshot has are
        /// replaced, others are kept (and listed); a directory where the
        /// snapshot has a file is kept and reported unless --delete.
        #[arg(long)]
        overwrite: bool,
        /// Make the output an exact copy of the snapshot: like --overwrite,
        /// and remove everything the snapshot does not have (each removed
        /// path is listed). Local output directories only.
        #[arg(long)]
        delete: bool,
    },
    /// Show what was added, modified and deleted between two snapshots.
    Diff {
        /// The dataset.
        dataset: String,
        /// Older snapshot number.
        a: u64,
        /// Newer snapshot number.
        b: u64,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the entries of a snapshot (the latest unless ID).
    Ls {
        /// The dataset.
        dataset: String,
        /// Snapshot number.
        id: Option<u64>,
        /// Only under this path.
        path: Option<OsString>,
    },
    /// Verify the repository; with --read-data, every stored byte.
    Check {
        /// Read all packs and verify every blob.
        #[arg(long)]
        read_data: bool,
    },
    /// Remove the repository lock left by a process that is gone (a lock of
    /// a process still running on this machine needs --force).
    Unlock {
        /// Remove the lock even if its process is still running here.
        #[arg(long)]
        force: bool,
    },
    /// Repair a damaged repository (see the README, "When a repository is
    /// damaged").
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Serve the web UI: back up and recover datasets from a browser.
    Web {
        /// Address to listen on. Anything but a loopback address needs
        /// --ui-password-file.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// A local directory whose subdirectories may be backed up and
        /// recovered into (repeatable).
        #[arg(long = "allow-root", value_name = "DIR")]
        allow_root: Vec<PathBuf>,
        /// File holding the UI's access password (must not be readable by others).
        #[arg(long, value_name = "FILE")]
        ui_password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum RepairCommand {
    /// Rebuild the index from the packs, verifying every blob; blobs that no
    /// sound pack holds are left out (the next backup stores them again
    /// from the source where it still has them).
    Index,
    /// Name, per snapshot, the files that can no longer be restored.
    Snapshots {
        /// Rewrite those snapshots (same numbers) without the lost files;
        /// what was removed is recorded in their warnings.
        #[arg(long)]
        forget_damaged: bool,
    },
}

fn main() -> ExitCode {
    // Packs and chunk buffers are megabytes each. With glibc's adaptive
    // threshold, freed ones stay in the heap and inflate the RSS; a fixed
    // threshold keeps every large buffer in its own mapping, returned on free.
    // SAFETY: mallopt only changes allocator tuning; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bk: error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    // Context layers add the action; the root cause adds the detail.
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn repo_location(cli: &Cli) -> Result<RepoLocation> {
    let Some(p) = cli.repo.as_deref() else {
        bail!("no repository given: pass --repo REPO or set BK_REPO");
    };
    let s = p.to_string_lossy();
    if is_ftp(&s) {
        return Ok(RepoLocation::Ftp {
            url: ftp_url(cli, &s)?,
            config: ftp_config(cli),
        });
    }
    if s.contains("://") {
        // Let the engine word the refusal.
        RepoLocation::parse(&s, ftp_config(cli))?;
    }
    Ok(RepoLocation::Local(p.to_path_buf()))
}

fn is_ftp(s: &str) -> bool {
    bk_core::location::is_ftp(s)
}

/// Parse an FTP URL and attach the password.
fn ftp_url(cli: &Cli, s: &str) -> Result<bk_core::bk_ftp::FtpUrl> {
    let mut url = bk_core::bk_ftp::FtpUrl::parse(s)?;
    if let Some(pw) = ftp_password(cli)? {
        url.set_password(pw);
    } else if url.password.is_some() {
        eprintln!(
            "bk: warning: the FTP password was given inside the URL, where other users can see it in the process list; use BK_FTP_PASSWORD or --password-file"
        );
    } else if url.user != "anonymous" {
        match prompt_password(&url)? {
            Some(pw) => url.set_password(pw),
            None => bail!(
                "no password for {url}: set BK_FTP_PASSWORD, pass --password-file FILE, or run bk \
                 on a terminal to be asked for it"
            ),
        }
    }
    Ok(url)
}

/// Asks for the password of `url` on the terminal, without echo, when
/// standard input is one; `None` otherwise. Asked once per user and server.
fn prompt_password(url: &bk_core::bk_ftp::FtpUrl) -> Result<Option<String>> {
    use std::io::{BufRead, IsTerminal};
    static ASKED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let key = format!("{}@{}:{}", url.user, url.host, url.port);
    if let Some((_, pw)) = ASKED
        .lock()
        .ok()
        .and_then(|a| a.iter().find(|(k, _)| *k == key).cloned())
    {
        return Ok(Some(pw));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0, a terminal.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &raw mut old) } != 0 {
        return Ok(None);
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // Echo off before the prompt shows, so nothing typed after it echoes.
    // SAFETY: fd 0 is a terminal; `quiet` is a valid termios from tcgetattr.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw const quiet) };
    eprint!("FTP password for {key}: ");
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // SAFETY: as above; echo is restored whatever the read returned.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw const old) };
    read.context("reading the password from the terminal")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("no password entered for {key}");
    }
    if let Ok(mut a) = ASKED.lock() {
        a.push((key, pw.clone()));
    }
    Ok(Some(pw))
}

fn ftp_config(cli: &Cli) -> bk_core::bk_ftp::FtpConfig {
    let mut cfg = bk_core::bk_ftp::FtpConfig::default()
        .connections(cli.ftp_connections)
        .accept_invalid_certs(cli.ftp_insecure)
        .tls12_only(cli.ftp_tls12);
    // Undocumented on purpose: lets the tests see a port that never greets
    // fail without waiting the default 15 s.
    if let Some(ms) = std::env::var("BK_FTP_GREETING_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg = cfg.greeting_timeout(std::time::Duration::from_millis(ms));
    }
    if let Some(ca) = &cli.ftp_ca {
        cfg = cfg.ca_file(ca);
    }
    cfg
}

/// The FTP password: BK_FTP_PASSWORD, or --password-file (refused when
/// others can read it).
fn ftp_password(cli: &Cli) -> Result<Option<String>> {
    if let Some(f) = &cli.password_file {
        return Ok(Some(read_password_file(f)?));
    }
    Ok(std::env::var("BK_FTP_PASSWORD").ok())
}

/// A password from a file that others cannot read; a final newline is dropped.
fn read_password_file(f: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(f).with_context(|| format!("reading password file {}", f.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "password file {} is readable by others (mode {:o}); run chmod 600 on it",
            f.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("reading password file {}", f.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Print each transfer the backend retried, then what the repository
/// noted (files skipped, a stale lock broken …). Returns how many failures
/// were retried.
fn print_notes(repo: &Repository) -> usize {
    let retries = repo.take_retries();
    for r in &retries {
        eprintln!("bk: retried {r}");
    }
    for n in repo.take_notes() {
        eprintln!("bk: note: {n}");
    }
    retries.len()
}

/// The backup's JSON summary, with the number of retried transfers.
fn backup_json(snap: &Snapshot, retries: usize) -> Result<String> {
    let mut v = serde_json::to_value(snap.summary())?;
    v["retries"] = retries.into();
    Ok(serde_json::to_string_pretty(&v)?)
}

fn open(cli: &Cli) -> Result<Repository> {
    Ok(repo_location(cli)?.open()?)
}

fn open_or_init(cli: &Cli) -> Result<Repository> {
    Ok(repo_location(cli)?.open_or_init()?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Init => {
            let repo = repo_location(&cli)?.init()?;
            eprintln!("created repository at {}", repo.backend().location());
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            path,
            dataset,
            full,
            ignore_ctime,
            exclude,
            json,
            threads,
        } => {
            let path_str = path.to_string_lossy();
            let src: Box<dyn bk_core::Source> = if is_ftp(&path_str) {
                if !exclude.is_empty() {
                    bail!("--exclude applies to local datasets only");
                }
                Box::new(bk_core::FtpSource::new(
                    ftp_url(&cli, &path_str)?,
                    ftp_config(&cli),
                ))
            } else {
                Box::new(LocalSource::new(path, exclude)?)
            };
            src.root()?;
            let name = match dataset {
                Some(d) => {
                    bk_core::snapshot::check_dataset_name(d).context("--dataset")?;
                    d.clone()
                }
                None if is_ftp(&path_str) => bk_core::bk_ftp::url::file_name(
                    &bk_core::bk_ftp::FtpUrl::parse(&path_str)?.path,
                )
                .to_string(),
                None => bk_core::source::default_dataset_name(path).with_context(|| {
                    format!(
                        "cannot derive a dataset name from {}; pass --dataset",
                        path.display()
                    )
                })?,
            };
            if name.is_empty() || name == "/" {
                bail!("cannot derive a dataset name from {path_str:?}; pass --dataset");
            }
            let repo = open_or_init(&cli)?;
            let opts = BackupOptions::new(name)
                .full(*full)
                .dataset_given(dataset.is_some())
                .ignore_ctime(*ignore_ctime)
                .threads(threads.unwrap_or_else(default_threads));
            let res = bk_core::backup(&repo, &*src, &opts);
            let retries = print_notes(&repo);
            let snap = res?;
            for w in &snap.warnings {
                eprintln!("bk: warning: {}: {}", w.path, w.message);
            }
            let s = &snap.stats;
            eprintln!(
                "snapshot {} of {:?} saved: {} files, {}, +{} ~{} -{}, {} new in {:.1}s{}",
                snap.id,
                snap.dataset,
                s.files,
                human(s.bytes),
                s.added,
                s.modified,
                s.deleted,
                human(s.stored_bytes),
                s.duration_ms as f64 / 1000.0,
                match retries {
                    0 => String::new(),
                    n => format!(", {n} transfer(s) retried"),
                }
            );
            if *json {
                println!("{}", backup_json(&snap, retries)?);
            }
            if snap.warnings.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "bk: {} problem(s): the snapshot was saved without the entries named above",
                    snap.warnings.len()
                );
                Ok(ExitCode::from(EXIT_PARTIAL))
            }
        }
        Command::Snapshots { dataset, json } => {
            let repo = open(&cli)?;
            let snaps = repo.snapshots(dataset.as_deref())?;
            print_notes(&repo);
            if *json {
                let v: Vec<_> = snaps.iter().map(Snapshot::summary).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<20} {:>5}  {:<19}  {:<5} {:>8} {:>10} {:>7} {:>7} {:>7} {:>10}",
                    "dataset",
                    "id",
                    "time",
                    "type",
                    "files",
                    "size",
                    "added",
                    "modif",
                    "deleted",
                    "stored"
                );
                for s in &snaps {
                    // A `!` marks a partial snapshot (footnote below).
                    let id = if s.warnings.is_empty() {
                        format!("{} ", s.id)
                    } else {
                        format!("{}!", s.id)
                    };
                    println!(
                        "{:<20} {:>5}  {:<19}  {:<5} {:>8} {:>10} {:>7} {:>7} {:>7} {:>10}",
                        s.dataset,
                        id,
                        s.time
                            .with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S"),
                        if s.full { "full" } else { "incr" },
                        s.stats.files,
                        human(s.stats.bytes),
                        s.stats.added,
                        s.stats.modified,
                        s.stats.deleted,
                        human(s.stats.stored_bytes)
                    );
                }
                let partial: Vec<_> = snaps.iter().filter(|s| !s.warnings.is_empty()).collect();
                if !partial.is_empty() {
                    println!(
                        "! partial: {} snapshot(s) lack entries the backup could not read \
                         (`bk snapshots --json` lists them; `bk restore` names them)",
                        partial.len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            dataset,
            to,
            id,
            before,
            path,
            overwrite,
            delete,
        } => {
            let select = match (id, before) {
                (Some(n), _) => Select::Id(*n),
                (None, Some(t)) => Select::Before(bk_core::parse_time(t)?),
                (None, None) => Select::Latest,
            };
            let repo = open(&cli)?;
            let mut opts = RestoreOptions::new(select)
                .overwrite(*overwrite)
                .delete(*delete);
            if let Some(p) = path {
                opts = opts.path(p.as_bytes().to_vec());
            }
            let to_str = to.to_string_lossy();
            if *delete && is_ftp(&to_str) {
                bail!(
                    "--delete applies to local output directories only; restore to {} with --overwrite",
                    to_str
                );
            }
            let report = if is_ftp(&to_str) {
                let url = ftp_url(&cli, &to_str)?;
                let cfg = ftp_config(&cli);
                let overwrite = *overwrite;
                bk_core::restore::restore_with(&repo, dataset, &opts, move || {
                    Ok(Box::new(bk_core::FtpTarget::new(url, cfg, overwrite)?)
                        as Box<dyn bk_core::restore::Target>)
                })?
            } else {
                bk_core::restore(&repo, dataset, to, &opts)?
            };
            print_notes(&repo);
            Ok(print_restore(&report, to))
        }
        Command::Diff {
            dataset,
            a,
            b,
            json,
        } => {
            let repo = open(&cli)?;
            let snaps = repo.snapshots(Some(dataset))?;
            let sa = bk_core::snapshot::select(dataset, &snaps, Select::Id(*a))?;
            let sb = bk_core::snapshot::select(dataset, &snaps, Select::Id(*b))?;
            let changes = bk_core::diff_snapshots(&repo, sa, sb)?;
            print_notes(&repo);
            let mut out = serde_json::json!({"added": [], "modified": [], "deleted": []});
            for (c, p, n) in &changes {
                let mut name = display_path(p);
                if n.kind == NodeKind::Dir {
                    name.push('/');
                }
                let key = match c {
                    bk_core::Change::Added => "added",
                    bk_core::Change::Modified => "modified",
                    bk_core::Change::Deleted => "deleted",
                };
                if *json {
                    out[key].as_array_mut().expect("array").push(name.into());
                } else {
                    let sign = match c {
                        bk_core::Change::Added => '+',
                        bk_core::Change::Modified => 'M',
                        bk_core::Change::Deleted => '-',
                    };
                    println!("{sign} {name}");
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls { dataset, id, path } => {
            let repo = open(&cli)?;
            let snaps = repo.snapshots(Some(dataset))?;
            let sel = id.map_or(Select::Latest, Select::Id);
            let snap = bk_core::snapshot::select(dataset, &snaps, sel)?;
            let (entries, unreadable) =
                bk_core::list_snapshot_partial(&repo, snap, path.as_ref().map(|p| p.as_bytes()))?;
            print_notes(&repo);
            for e in entries {
                let n = &e.node;
                let t = chrono::DateTime::from_timestamp(n.mtime, n.mtime_nsec)
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_default();
                let mut line = format!(
                    "{} {:>12} {} {}",
                    mode_string(n),
                    n.size,
                    t,
                    display_path(&e.path)
                );
                if n.kind == NodeKind::Symlink {
                    line.push_str(" -> ");
                    line.push_str(&display_path(&n.target));
                }
                println!("{line}");
            }
            for u in &unreadable {
                let dir = if u.path.is_empty() {
                    ".".to_string()
                } else {
                    display_path(&u.path)
                };
                eprintln!(
                    "bk: error: {dir}: directory contents not listed: {}",
                    u.reason
                );
            }
            if unreadable.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(EXIT_PARTIAL))
            }
        }
        Command::Check { read_data } => {
            let repo = open(&cli)?;
            let lock = repo.lock("check")?;
            let r = bk_core::check(&repo, *read_data);
            drop(lock);
            print_notes(&repo);
            let r = r?;
            for n in &r.notes {
                eprintln!("note: {n}");
            }
            for e in &r.errors {
                eprintln!("bk: error: {e}");
            }
            eprintln!(
                "checked {} snapshots, {} packs, {} blobs{}",
                r.snapshots,
                r.packs,
                r.blobs,
                if *read_data {
                    format!(", read {} packs", r.packs_read)
                } else {
                    String::new()
                }
            );
            if r.ok() {
                eprintln!("no errors found");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("bk: check found {} error(s)", r.errors.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Web {
            listen,
            allow_root,
            ui_password_file,
        } => {
            let mut opts = bk_web::WebOptions::new()
                .listen(*listen)
                .ftp_config(ftp_config(&cli));
            if let Some(f) = ui_password_file {
                let pw = read_password_file(f)?;
                if pw.is_empty() {
                    bail!("the UI password file {} is empty", f.display());
                }
                opts = opts.ui_password(bk_core::bk_ftp::Secret::new(pw));
            } else if !listen.ip().is_loopback() {
                bail!(
                    "refusing to listen on {listen} without a UI password: anyone who can reach that address could read and overwrite your backups; pass --ui-password-file FILE, or listen on 127.0.0.1"
                );
            }
            if cli.repo.is_some() {
                opts = opts.repo(repo_location(&cli)?);
            }
            for r in allow_root {
                opts = opts.allow_root(r);
            }
            bk_web::run(opts)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Unlock { force } => {
            let repo = open(&cli)?;
            match repo.unlock(*force)? {
                Some(h) => eprintln!("removed the lock held by {}", h.describe()),
                None => eprintln!("the repository was not locked"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Repair(RepairCommand::Index) => {
            let repo = open(&cli)?;
            let r = bk_core::repair::repair_index(&repo);
            print_notes(&repo);
            let r = r?;
            for p in &r.packs_lost {
                eprintln!("bk: warning: nothing could be used from {p}");
            }
            for p in &r.packs_rewritten {
                eprintln!("{p} had lost its header: its sound blobs were copied into a new pack");
            }
            eprintln!(
                "rebuilt the index from {} packs: {} blobs indexed, {} blobs lost, {} old index files replaced",
                r.packs_read, r.blobs, r.blobs_lost, r.old_index_files
            );
            if r.blobs_lost > 0 {
                eprintln!(
                    "next: `bk repair snapshots` names the files that lost data; a backup of each dataset stores again what its source still has"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Repair(RepairCommand::Snapshots { forget_damaged }) => {
            let repo = open(&cli)?;
            let r = bk_core::repair::repair_snapshots(&repo, *forget_damaged);
            print_notes(&repo);
            let r = r?;
            for s in &r {
                for (path, why) in &s.lost {
                    println!("{}\t{}\t{}\t{}", s.dataset, s.id, path, why);
                }
                eprintln!(
                    "snapshot {} of {:?}: {} entries cannot be restored{}",
                    s.id,
                    s.dataset,
                    s.lost.len(),
                    if s.rewritten {
                        "; rewritten without them"
                    } else {
                        ""
                    }
                );
            }
            if r.is_empty() {
                eprintln!("every snapshot restores in full");
                Ok(ExitCode::SUCCESS)
            } else if *forget_damaged {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "bk: {} snapshot(s) refer to lost data; `bk repair snapshots --forget-damaged` rewrites them without it",
                    r.len()
                );
                Ok(ExitCode::from(EXIT_PARTIAL))
            }
        }
    }
}

/// Report a restore on stderr; the exit code.
fn print_restore(report: &bk_core::RestoreReport, to: &std::path::Path) -> ExitCode {
    let o = &report.outcome;
    let c = &report.changes;
    for e in &o.errors {
        eprintln!("bk: error: {}: {}", e.path, e.message);
    }
    for p in &c.removed {
        eprintln!("removed {p}");
    }
    if !c.replaced.is_empty() {
        eprintln!(
            "replaced {} existing entries: {}",
            c.replaced.len(),
            first_few(&c.replaced)
        );
    }
    if !c.kept.is_empty() {
        eprintln!(
            "kept {} entries not in the snapshot (use --delete to remove them): {}",
            c.kept.len(),
            first_few(&c.kept)
        );
    }
    if !c.leftovers.is_empty() {
        eprintln!(
            "removed {} temporary file(s) left by an interrupted restore",
            c.leftovers.len()
        );
    }
    let s = &report.snapshot;
    eprintln!(
        "restored snapshot {} of {:?} ({}) to {}: {} files, {}",
        s.id,
        s.dataset,
        s.time.format("%Y-%m-%d %H:%M:%S %:z"),
        to.display(),
        o.files,
        human(o.bytes)
    );
    if !report.not_backed_up.is_empty() {
        eprintln!(
            "bk: warning: snapshot {} of {:?} is partial; the backup could not read these, so they are not restored:",
            s.id, s.dataset
        );
        for w in &report.not_backed_up {
            eprintln!("bk: warning: {}: {}", w.path, w.message);
        }
    }
    if !o.errors.is_empty() {
        eprintln!(
            "bk: {} entries could not be restored (named above)",
            o.errors.len()
        );
    }
    if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    }
}

/// Up to ten names, then how many more.
fn first_few(names: &[String]) -> String {
    const N: usize = 10;
    let mut s = names[..names.len().min(N)].join(", ");
    if names.len() > N {
        s.push_str(&format!(" and {} more", names.len() - N));
    }
    s
}

fn mode_string(n: &bk_core::tree::Node) -> String {
    let k = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::File => '-',
    };
    let mut s = String::from(k);
    for shift in [6, 3, 0] {
        let b = (n.mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
