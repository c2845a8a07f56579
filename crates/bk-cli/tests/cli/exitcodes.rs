//! Exit codes beyond 0, 1 and 3: 10 when the repository does not exist,
//! 11 when a live process holds its lock (130, interrupted, is in
//! `interrupt.rs`).

use std::fs;

use crate::common::*;

#[test]
fn a_missing_repository_exits_10_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("absent");
    let out = tmp.path().join("out");
    let runs: [&[&std::ffi::OsStr]; 3] = [
        &[os("snapshots")],
        &[os("restore"), os("ds"), os("--to"), out.as_os_str()],
        &[os("check")],
    ];
    for args in runs {
        let o = bk().args(args).arg("--repo").arg(&absent).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(10), "{args:?}: {err}");
        assert_eq!(
            err,
            format!(
                "bk: error: no bk repository at {} (create one with `bk init`, or run `bk backup`)\n",
                absent.display()
            ),
            "{args:?}"
        );
        assert!(
            !absent.exists() && !out.exists(),
            "{args:?} created something"
        );
    }
}

#[test]
fn a_repository_locked_by_a_live_process_exits_11_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    let repo_path = tmp.path().join("repo");
    backup(&repo_path, &src, &[], 0);
    // This test process is the live holder.
    let repo = bk_core::Repository::open_local(&repo_path).unwrap();
    let lock = repo.lock("backup other").unwrap();
    let holder = repo.lock_holder().unwrap().unwrap();
    for args in [&["backup", src.to_str().unwrap()][..], &["check"][..]] {
        let o = bk()
            .args(args)
            .arg("--repo")
            .arg(&repo_path)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(11), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for part in [
            format!("pid {}", std::process::id()),
            format!("host {}", holder.host),
            "`backup other`".to_string(),
            format!("since {}", holder.time),
        ] {
            assert!(err.contains(&part), "{part:?} missing from {err:?}");
        }
    }
    lock.release().unwrap();
    backup(&repo_path, &src, &[], 0);
}
