//! A backup killed with SIGKILL midway leaves a sound repository, and the
//! rerun reuses what the killed run stored.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const MIB: usize = 1024 * 1024;

#[test]
fn sigkill_midway_then_check_restore_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");

    // An earlier snapshot that must survive.
    let small = tmp.path().join("small");
    fs::create_dir(&small).unwrap();
    for i in 0..20 {
        fs::write(small.join(format!("s{i}")), random_bytes(500 + i, 5000)).unwrap();
    }
    backup(&repo, &small, &[], 0);
    let small_manifest = manifest(&small);

    // A big dataset of incompressible data.
    let big = tmp.path().join("big");
    fs::create_dir(&big).unwrap();
    let files = 32;
    for i in 0..files {
        fs::write(
            big.join(format!("part{i:02}")),
            random_bytes(9000 + i as u64, 8 * MIB),
        )
        .unwrap();
    }
    let total = (files * 8 * MIB) as u64;
    let before = pack_bytes(&repo);

    let mut child = Command::new(assert_cmd::cargo::cargo_bin("bk"))
        .arg("backup")
        .arg(&big)
        .arg("--repo")
        .arg(&repo)
        .args(["--threads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if pack_bytes(&repo) >= before + 48 * MIB as u64 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "backup made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_bytes = pack_bytes(&repo) - before;
    assert!(killed_bytes < total, "the killed run was not midway");

    // No snapshot of the killed run; the repository checks clean.
    let o = bk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    for args in [&["check"][..], &["check", "--read-data"][..]] {
        let o = bk().args(args).arg("--repo").arg(&repo).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "bk {args:?}: {}", stderr(&o));
    }

    // The earlier snapshot restores byte-identical.
    let out = tmp.path().join("out-small");
    let o = restore(&repo, "small", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(
        &small_manifest,
        &manifest(&out),
        "earlier snapshot after a crash",
    );

    // The rerun succeeds (the dead process's lock is cleared) and stores
    // only what the killed run had not.
    let s = backup(&repo, &big, &[], 0);
    let stored = s["stored_bytes"].as_u64().unwrap();
    assert!(stored < total, "{s}");
    assert!(
        stored + killed_bytes <= total + 2 * MIB as u64,
        "rerun stored {stored} although the killed run had written {killed_bytes} of {total}"
    );
    let out = tmp.path().join("out-big");
    let o = restore(&repo, "big", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(&manifest(&big), &manifest(&out), "resumed backup");
    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn concurrent_backup_is_refused_naming_the_holder_and_unlock_clears() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    let repo_path = tmp.path().join("repo");
    backup(&repo_path, &src, &[], 0);
    let repo = bk_core::Repository::open_local(&repo_path).unwrap();
    let lock = repo.lock("test holder").unwrap();
    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo_path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(11), "locked: exit 11");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("pid {}", std::process::id())) && err.contains("test holder"),
        "{err}"
    );
    // The holder is alive, so only an explicit `unlock --force` clears it.
    let o = bk()
        .arg("unlock")
        .arg("--repo")
        .arg(&repo_path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = bk()
        .args(["unlock", "--force", "--repo"])
        .arg(&repo_path)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stderr(&o).contains("test holder"));
    std::mem::forget(lock);
    backup(&repo_path, &src, &[], 0);
}
