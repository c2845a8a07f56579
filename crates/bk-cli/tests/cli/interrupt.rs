//! SIGINT and SIGTERM stop a backup or a restore cleanly: exit 130 with one
//! line, nothing committed, the lock released, no temporary files, no
//! partially written file under its real name, and the repository checks
//! clean. Real signals to the real binary.
//!
//! "During" without timing guesses: the signal is sent once the first pack
//! (backup) or the first restored file (restore) shows up on disk, with
//! most of a dataset of incompressible data still to go.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const MIB: usize = 1024 * 1024;
const FILES: usize = 24;

/// `FILES` files of 8 MiB of incompressible data.
fn big_dataset(dir: &Path) -> PathBuf {
    let ds = dir.join("big");
    fs::create_dir(&ds).unwrap();
    for i in 0..FILES {
        let f = ds.join(format!("part{i:02}"));
        fs::write(f, random_bytes(7000 + i as u64, 8 * MIB)).unwrap();
    }
    ds
}

fn spawn(args: &[&std::ffi::OsStr]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("bk"))
        .env_remove("BK_REPO")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn is_temp(p: &Path) -> bool {
    let n = p.file_name().unwrap().to_string_lossy();
    n.starts_with(".tmp-") || n.starts_with(".bk-restore-") || n.ends_with(".bkftp-part")
}

/// Wait until `ready` holds, then send `sig`; the exit code, stderr and
/// how long the stop took.
fn signal_when(
    mut child: Child,
    sig: libc::c_int,
    ready: impl Fn() -> bool,
) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "bk finished before it could be interrupted"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "bk made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill with a valid pid (our child, not yet reaped) and signal.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("bk did not stop within 30 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = sent.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err, took)
}

fn snapshot_count(repo: &Path) -> usize {
    if !repo.exists() {
        return 0;
    }
    let o = bk()
        .args(["snapshots", "--json", "--repo"])
        .arg(repo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().len()
}

fn assert_checks_clean(repo: &Path) {
    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // No stale lock was found and broken: the interrupted run released it.
    assert!(!stderr(&o).contains("stale lock"), "{}", stderr(&o));
}

/// An interrupted backup: exit 130, one line, no snapshot, no lock, no
/// temporary file; the repository checks clean.
fn interrupted_backup(tmp: &Path, ds: &Path, repo: &Path, sig: libc::c_int) {
    let before = snapshot_count(repo);
    let packs = repo.join("packs");
    let packs_before = files_under(&packs).len();
    let child = spawn(&[
        os("backup"),
        ds.as_os_str(),
        os("--repo"),
        repo.as_os_str(),
        os("--threads"),
        os("1"),
    ]);
    let (code, err, took) = signal_when(child, sig, || files_under(&packs).len() > packs_before);
    assert_eq!(code, Some(130), "stderr: {err}");
    assert_eq!(err, "bk: interrupted: nothing was committed\n");
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    assert!(!repo.join("locks/exclusive").exists(), "the lock was left");
    let temps: Vec<_> = files_under(repo)
        .into_iter()
        .filter(|p| is_temp(p))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert_eq!(snapshot_count(repo), before, "a snapshot was committed");
    assert_checks_clean(repo);
    let _ = tmp;
}

/// An interrupted restore: exit 130, one line saying what is there, and
/// every file under its real name complete.
fn interrupted_restore(tmp: &Path, ds: &Path, repo: &Path, sig: libc::c_int) {
    let out = tmp.join(format!("out-{sig}"));
    let child = spawn(&[
        os("restore"),
        os("big"),
        os("--repo"),
        repo.as_os_str(),
        os("--to"),
        out.as_os_str(),
    ]);
    let (code, err, took) = signal_when(child, sig, || !files_under(&out).is_empty());
    assert_eq!(code, Some(130), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("bk: interrupted: ")
            && err.contains(&format!(
                "of {FILES} files were restored to {}",
                out.display()
            ))
            && err.contains("--overwrite"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    let left = files_under(&out);
    let temps: Vec<_> = left.iter().filter(|p| is_temp(p)).collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(left.len() < FILES, "the restore was not interrupted");
    for f in &left {
        let want = fs::read(ds.join(f.file_name().unwrap())).unwrap();
        assert!(fs::read(f).unwrap() == want, "{f:?} is partially written");
    }
    let said: usize = err["bk: interrupted: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(said, left.len(), "{err}");
    assert!(!repo.join("locks/exclusive").exists());
    assert_checks_clean(repo);
}

#[test]
fn sigint_stops_a_backup_and_sigterm_a_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = big_dataset(tmp.path());
    let repo = tmp.path().join("repo");
    interrupted_backup(tmp.path(), &ds, &repo, libc::SIGINT);
    backup(&repo, &ds, &[], 0);
    interrupted_restore(tmp.path(), &ds, &repo, libc::SIGTERM);
}

#[test]
fn sigterm_stops_a_backup_and_sigint_a_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = big_dataset(tmp.path());
    let repo = tmp.path().join("repo");
    // An earlier snapshot, so the interrupted one would be the second.
    let small = tmp.path().join("small");
    fs::create_dir(&small).unwrap();
    fs::write(small.join("a"), "a").unwrap();
    backup(&repo, &small, &[], 0);
    interrupted_backup(tmp.path(), &ds, &repo, libc::SIGTERM);
    // The next backup runs to the end and reuses the packs left.
    let s = backup(&repo, &ds, &[], 0);
    assert!(
        s["stored_bytes"].as_u64().unwrap() < (FILES * 8 * MIB) as u64,
        "{s}"
    );
    interrupted_restore(tmp.path(), &ds, &repo, libc::SIGINT);
}

/// The first signal asks for a clean stop, which waits for what is in
/// flight; a second one exits at once. Made deterministic with a "server"
/// that accepts the connection and never greets: bk waits in the FTP
/// greeting (15 s by default) when the signals arrive.
#[test]
fn a_second_signal_exits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("d");
    fs::create_dir(&ds).unwrap();
    fs::write(ds.join("a"), "a").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s); // accept, never write
            let _ = tx.send(());
        }
    });
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("bk"))
        .env_remove("BK_REPO")
        .env("BK_FTP_PASSWORD", "pw")
        .arg("backup")
        .arg(&ds)
        .arg("--repo")
        .arg(format!("ftp://u@127.0.0.1:{port}/r"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    rx.recv_timeout(Duration::from_secs(60))
        .expect("bk never connected");
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill with our child's pid (not yet reaped) and a valid signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal should wait for the connection in flight"
    );
    let sent = Instant::now();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the second signal did not end bk");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status:?}");
}
