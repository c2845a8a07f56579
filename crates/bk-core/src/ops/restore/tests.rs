use std::fs;
use std::os::unix::fs::MetadataExt;

use super::*;

/// Back up `files` (name, content) and plan the restore of the snapshot.
fn planned(dir: &Path, files: &[(&str, &str)]) -> (Repository, Index, RestorePlan) {
    let data = dir.join("ds");
    fs::create_dir(&data).unwrap();
    for (name, content) in files {
        fs::write(data.join(name), content).unwrap();
    }
    crate::make_backup(dir.join("repo"), &data, false).unwrap();
    let repo = Repository::open_local(&dir.join("repo")).unwrap();
    let idx = repo.load_index().unwrap();
    let snap = repo.snapshots(Some("ds")).unwrap().remove(0);
    let plan = plan(&repo, &idx, &snap, None).unwrap();
    (repo, idx, plan)
}

#[test]
fn one_link_group_with_different_contents_is_restored_as_separate_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, idx, mut plan) = planned(
        tmp.path(),
        &[
            ("a1", "first"),
            ("a2", "first"),
            ("b1", "second!"),
            ("b2", "second!"),
        ],
    );
    // A hand-made fault: all four share one group id, as two hard-linked
    // pairs on two file systems with equal inode numbers did when groups
    // were keyed by inode alone.
    for f in &mut plan.files {
        f.node.hardlink = Some(7);
    }
    let out = tmp.path().join("out");
    let target = LocalTarget::new(&out, false).unwrap();
    let o = execute(&repo, &idx, &plan, &target, 2).unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    let read = |n: &str| fs::read_to_string(out.join(n)).unwrap();
    assert_eq!(
        [read("a1"), read("a2"), read("b1"), read("b2")],
        ["first", "first", "second!", "second!"]
    );
    let ino = |n: &str| fs::metadata(out.join(n)).unwrap().ino();
    assert_eq!(ino("a1"), ino("a2"));
    assert_eq!(ino("b1"), ino("b2"));
    assert_ne!(ino("a1"), ino("b1"));
}

/// A target with an order of its own, as a database target needs (a
/// table's schema before its rows, rows before its triggers): files
/// named `N-…` are in phase N. It writes through a real local target
/// and logs when each write starts and ends and when `finish` runs.
/// No ordered target ships yet: this test double stands in for those
/// the contract is for.
struct Ordered {
    inner: LocalTarget,
    log: Arc<Mutex<Vec<String>>>,
    finish_fails: bool,
}

impl Ordered {
    fn log(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

impl Target for Ordered {
    fn create_dir(&self, path: &[u8]) -> std::io::Result<()> {
        self.inner.create_dir(path)
    }
    fn write_file(
        &self,
        path: &[u8],
        node: &Node,
        chunks: &mut crate::connector::target::ChunkFeed<'_>,
    ) -> Result<()> {
        self.log(format!("start {}", display_path(path)));
        // Give the other writers time to overtake, were they allowed to.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let r = self.inner.write_file(path, node, chunks);
        self.log(format!("end {}", display_path(path)));
        r
    }
    fn hard_link(&self, existing: &[u8], path: &[u8]) -> std::io::Result<()> {
        self.inner.hard_link(existing, path)
    }
    fn create_special(&self, path: &[u8], node: &Node) -> std::io::Result<()> {
        self.inner.create_special(path, node)
    }
    fn set_meta(&self, path: &[u8], node: &Node) -> std::io::Result<()> {
        self.log(format!("meta {}", shown(path)));
        self.inner.set_meta(path, node)
    }
    fn phase(&self, path: &[u8], _: &Node) -> u32 {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        u32::from(name[0] - b'0')
    }
    fn finish(&self) -> Result<()> {
        self.log("finish".into());
        if self.finish_fails {
            return Err(Error::Invalid("table t: 3 rows written, 4 expected".into()));
        }
        Ok(())
    }
}

fn ordered_restore(finish_fails: bool) -> (RestoreReport, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    let data = tmp.join("db");
    fs::create_dir_all(data.join("t")).unwrap();
    fs::write(data.join("t/0-schema.sql"), "create table t").unwrap();
    for i in 0..12 {
        fs::write(
            data.join(format!("t/1-rows-{i:02}.csv")),
            "x".repeat(100 * i),
        )
        .unwrap();
    }
    fs::write(data.join("t/2-triggers.sql"), "create trigger").unwrap();
    fs::write(data.join("1-other-rows.csv"), "y").unwrap();
    crate::make_backup(tmp.join("repo"), &data, false).unwrap();
    let repo = Repository::open_local(&tmp.join("repo")).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = tmp.join("out");
    let (out2, log2) = (out.clone(), log.clone());
    let opts = RestoreOptions {
        threads: 4,
        ..Default::default()
    };
    let report = restore_with(&repo, "db", &opts, move || {
        Ok(Box::new(Ordered {
            inner: LocalTarget::new(&out2, false)?,
            log: log2,
            finish_fails,
        }) as Box<dyn Target>)
    })
    .unwrap();
    let log = log.lock().unwrap().clone();
    (report, log, dir)
}

#[test]
fn a_target_phase_orders_the_writes_and_finish_runs_once_last() {
    let (report, log, dir) = ordered_restore(false);
    let out = dir.path().join("out");
    assert!(report.is_complete(), "{:?}", report.outcome.errors);
    assert_eq!(report.outcome.files, 15);
    let phase = |e: &str| {
        let name = e.rsplit('/').next().unwrap();
        name.split(' ').next_back().unwrap().as_bytes()[0]
    };
    let writes: Vec<&String> = log
        .iter()
        .filter(|e| e.starts_with("start ") || e.starts_with("end "))
        .collect();
    assert_eq!(writes.len(), 30, "{log:?}");
    // No write of a phase starts before every write of an earlier one ended.
    for (i, e) in writes.iter().enumerate() {
        if let Some(started) = e.strip_prefix("start ") {
            let p = phase(started);
            for later in &writes[i..] {
                if later.starts_with("end ") {
                    assert!(phase(later) >= p, "{later} after {e}: {log:?}");
                }
            }
        }
    }
    assert_eq!(log.iter().filter(|e| *e == "finish").count(), 1, "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("finish"), "{log:?}");
    assert!(log.iter().any(|e| e == "meta ."), "{log:?}");
    assert_eq!(
        fs::read_to_string(out.join("t/2-triggers.sql")).unwrap(),
        "create trigger"
    );
    assert_eq!(
        fs::read_to_string(out.join("t/1-rows-11.csv")).unwrap(),
        "x".repeat(1100)
    );
}

#[test]
fn a_failing_finish_makes_the_restore_incomplete_and_says_why() {
    let (report, log, dir) = ordered_restore(true);
    let out = dir.path().join("out");
    assert_eq!(log.iter().filter(|e| *e == "finish").count(), 1, "{log:?}");
    assert!(!report.is_complete());
    assert_eq!(
        report.outcome.errors,
        [RestoreError {
            path: ".".into(),
            message: "finishing the restore: table t: 3 rows written, 4 expected".into(),
        }]
    );
    // What was written stays.
    assert_eq!(report.outcome.files, 15);
    assert!(out.join("t/0-schema.sql").is_file());
}

#[test]
fn a_cancelled_restore_leaves_only_complete_files() {
    use crate::progress::testing::{CancelAfter, dataset, small_pack_repo, temp_files};
    const MIB: usize = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = dataset(tmp.path(), 24, MIB);
    let repo = small_pack_repo(&tmp.path().join("repo"));
    let src = crate::connector::local::LocalSource::new(&root, &[]).unwrap();
    crate::backup(&repo, &src, &crate::BackupOptions::new("ds")).unwrap();

    let out = tmp.path().join("out");
    let p = CancelAfter::new(5 * MIB as u64 + 12345);
    let mut opts = RestoreOptions::new(Select::Latest)
        .progress(p.clone())
        .cancel(p.cancel.clone());
    opts.threads = 3;
    let err = restore(&repo, "ds", &out, &opts).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    // Each writer finishes at most the chunk (here 1 MiB) it was at.
    assert!(p.seen() <= 9 * MIB as u64, "wrote {} bytes", p.seen());
    assert_eq!(temp_files(&out), Vec::<PathBuf>::new());
    // Whatever is there under a real name is complete.
    let mut restored = 0;
    for d in ["d0", "d1"] {
        let Ok(rd) = fs::read_dir(out.join(d)) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let want = fs::read(root.join(d).join(e.file_name())).unwrap();
            assert!(
                fs::read(e.path()).unwrap() == want,
                "{:?} is partial",
                e.path()
            );
            restored += 1;
        }
    }
    assert!(restored < 24, "the restore was not stopped");
    assert!(repo.lock_holder().unwrap().is_none());
    let r = crate::check(&repo, false).unwrap();
    assert!(r.ok(), "{:?}", r.errors);
}

#[test]
fn several_paths_restore_their_union_each_at_its_place_with_metadata() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    for d in ["a/b", "a/c", "d", "e"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    let files: &[(&str, &[u8])] = &[
        ("a/b/one.txt", b"one\n"),
        ("a/b/two.bin", &[0, 1, 2, 255]),
        ("a/c/three.txt", b"three"),
        ("a/top.txt", b"top"),
        ("d/four.txt", b"four"),
        ("e/five.txt", b"five"),
        ("root.txt", b"root"),
    ];
    for (n, c) in files {
        fs::write(data.join(n), c).unwrap();
    }
    fs::set_permissions(
        data.join("a/c/three.txt"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::set_permissions(data.join("a/c"), fs::Permissions::from_mode(0o750)).unwrap();
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(data.join("d/four.txt"), old).unwrap();
    filetime::set_file_mtime(data.join("a"), old).unwrap();
    crate::make_backup(tmp.path().join("repo"), &data, false).unwrap();
    let repo = Repository::open_local(&tmp.path().join("repo")).unwrap();
    let out = tmp.path().join("out");
    // Overlapping: `a/b` lies under `a/b` twice and `a/b/one.txt` under it;
    // `a/c/three.txt` alone; `d` whole.
    let opts = RestoreOptions::new(Select::Latest)
        .path(b"a/b/one.txt".to_vec())
        .paths([&b"a/b"[..], b"./a/b/", b"a/c/three.txt", b"d"]);
    let r = restore(&repo, "ds", &out, &opts).unwrap();
    assert!(r.is_complete(), "{:?}", r.outcome.errors);
    assert_eq!(r.outcome.files, 4);
    let mut got = Vec::new();
    for e in walkdir(&out) {
        got.push(e);
    }
    got.sort();
    assert_eq!(
        got,
        [
            "a/",
            "a/b/",
            "a/b/one.txt=one\n",
            "a/b/two.bin=\0\u{1}\u{2}\u{fffd}",
            "a/c/",
            "a/c/three.txt=three",
            "d/",
            "d/four.txt=four",
        ]
    );
    assert_eq!(fs::read(out.join("a/b/two.bin")).unwrap(), [0, 1, 2, 255]);
    let meta = |p: &str| fs::metadata(out.join(p)).unwrap();
    assert_eq!(meta("a/c/three.txt").permissions().mode() & 0o777, 0o640);
    assert_eq!(
        meta("a/c").permissions().mode() & 0o777,
        0o750,
        "a parent keeps its mode"
    );
    assert_eq!(meta("d/four.txt").mtime(), 1_600_000_000);
    assert_eq!(meta("a").mtime(), 1_600_000_000, "a parent keeps its mtime");
    // A path the backup lacks refuses the whole restore, and writes nothing.
    let out2 = tmp.path().join("out2");
    let opts = RestoreOptions::new(Select::Latest).paths([&b"d"[..], b"nope"]);
    assert!(matches!(
        restore(&repo, "ds", &out2, &opts),
        Err(Error::PathNotFound { .. })
    ));
    assert!(!out2.exists());
}

/// Every entry under `root`: directories as `p/`, files as `p=content`.
fn walkdir(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                v.push(format!("{rel}/"));
                stack.push(p);
            } else {
                v.push(format!(
                    "{rel}={}",
                    String::from_utf8_lossy(&fs::read(&p).unwrap())
                ));
            }
        }
    }
    v
}
