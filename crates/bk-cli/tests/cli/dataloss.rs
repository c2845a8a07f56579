// tidy: long file: issue 9's data-loss cases, one test each, local and FTP side by side
//! Issue 9: the ways an adversarial review lost data, each on a local
//! repository and, where the backend or the network is involved, on an FTP
//! one (the embedded server; its files are damaged through its directory on
//! disk, as a disk fault or a careless admin would).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bk_core::Repository;
use bk_core::repo::layout::pack_name;
use bk_testkit::{ServerKind, ServerOptions, TestServer};

use crate::common::*;

/// A repository under test: a local directory, or a directory of a running
/// FTP server.
enum Place {
    Local(PathBuf),
    Ftp(TestServer),
}

impl Place {
    fn all(tmp: &Path) -> Vec<Place> {
        vec![
            Place::Local(tmp.join("repo")),
            Place::Ftp(TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap()),
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Place::Local(_) => "local",
            Place::Ftp(_) => "ftp",
        }
    }

    /// The `--repo` value.
    fn url(&self) -> String {
        match self {
            Place::Local(p) => p.display().to_string(),
            Place::Ftp(s) => format!(
                "ftp://{}@{}:{}{}/repo",
                s.user(),
                s.host(),
                s.port(),
                s.remote_base().trim_end_matches('/')
            ),
        }
    }

    /// The repository's files on this machine's disk.
    fn dir(&self) -> PathBuf {
        match self {
            Place::Local(p) => p.clone(),
            Place::Ftp(s) => {
                s.local_path(&format!("{}/repo", s.remote_base().trim_end_matches('/')))
            }
        }
    }

    fn bk(&self, args: &[&std::ffi::OsStr]) -> Output {
        let mut c = bk();
        if let Place::Ftp(s) = self {
            c.env("BK_FTP_PASSWORD", s.password());
        }
        c.args(args).arg("--repo").arg(self.url()).output().unwrap()
    }

    fn backup(&self, src: &Path, extra: &[&str], code: i32) -> serde_json::Value {
        let mut args = vec![os("backup"), src.as_os_str(), os("--json")];
        args.extend(extra.iter().map(|a| os(a)));
        let o = self.bk(&args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{}: backup: {}",
            self.name(),
            stderr(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn restore(&self, ds: &str, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![os("restore"), os(ds), os("--to"), out.as_os_str()];
        args.extend(extra.iter().map(|a| os(a)));
        self.bk(&args)
    }

    /// Restore `ds` and compare with `expected`, byte for byte.
    fn restores_as(&self, ds: &str, out: &Path, extra: &[&str], expected: &Manifest) {
        let o = self.restore(ds, out, extra);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: restore {ds} {extra:?}: {}",
            self.name(),
            stderr(&o)
        );
        assert_same(expected, &manifest(out), self.name());
    }

    fn check(&self, read_data: bool) -> Output {
        if read_data {
            self.bk(&[os("check"), os("--read-data")])
        } else {
            self.bk(&[os("check")])
        }
    }
}

/// The pack holding the first blob of `file` in the latest snapshot of
/// `ds` (read through the repository's files on disk).
fn pack_of(dir: &Path, ds: &str, file: &[u8]) -> PathBuf {
    let repo = Repository::open_local(dir).unwrap();
    let idx = repo.load_index().unwrap();
    let snaps = repo.snapshots(Some(ds)).unwrap();
    let snap = snaps.last().unwrap();
    let root = repo.read_tree(&idx, &snap.tree).unwrap();
    let node = root.find(file).unwrap();
    let loc = idx.get(&node.content[0]).unwrap();
    dir.join(pack_name(&loc.pack))
}

fn truncate(p: &Path, by: u64) {
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by.min(len)).unwrap();
}

fn dataset(tmp: &Path, name: &str, seed: u64) -> PathBuf {
    let src = tmp.join(name);
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("big.bin"), random_bytes(seed, 3_000_000)).unwrap();
    fs::write(src.join("sub/small.txt"), format!("small {seed}")).unwrap();
    src
}

/// Item 1: a pack deleted or truncated after a backup is not trusted by
/// later backups (incremental, --full, another dataset): they store its
/// blobs again, and what they commit restores in full.
#[test]
fn issue9_dedup_checks_the_packs_it_trusts() {
    for damage in ["delete", "truncate"] {
        let tmp = tempfile::tempdir().unwrap();
        for place in Place::all(tmp.path()) {
            let work = tmp.path().join(format!("{}-{damage}", place.name()));
            let src = dataset(&work, "ds", 1);
            place.backup(&src, &[], 0);
            let pack = pack_of(&place.dir(), "ds", b"big.bin");
            match damage {
                "delete" => fs::remove_file(&pack).unwrap(),
                _ => truncate(&pack, 1_000_000),
            }
            let expected = manifest(&src);
            // Incremental: the unchanged file's blobs are gone, so it is read again.
            let v = place.backup(&src, &[], 0);
            assert!(
                v["stored_bytes"].as_u64().unwrap() > 2_000_000,
                "{}/{damage}: incremental stored {v}",
                place.name()
            );
            place.restores_as("ds", &work.join("out-incr"), &[], &expected);
            // --full and a second dataset of the same content dedup against
            // the new copy, and restore.
            place.backup(&src, &["--full"], 0);
            place.restores_as("ds", &work.join("out-full"), &[], &expected);
            place.backup(&src, &["--dataset", "second"], 0);
            place.restores_as("second", &work.join("out-second"), &[], &expected);
            // The lost blobs are stored again with the same content, so the
            // first snapshot is whole again too.
            place.restores_as("ds", &work.join("out-0"), &["--id", "0"], &expected);
            let o = place.check(true);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
    }
}

/// Item 1, second half: damage that only reading finds (a flipped byte)
/// is recorded by `check --read-data`, and the next backup stores the
/// damaged blob again from the source.
#[test]
fn issue9_check_records_damage_and_the_next_backup_heals_it() {
    let tmp = tempfile::tempdir().unwrap();
    for place in Place::all(tmp.path()) {
        let work = tmp.path().join(place.name());
        let src = dataset(&work, "ds", 2);
        place.backup(&src, &[], 0);
        let pack = pack_of(&place.dir(), "ds", b"big.bin");
        flip_byte(&pack, 1000);
        let o = place.check(true);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("big.bin"), "{}", stderr(&o));
        // Nothing changed in the source; the backup reads big.bin again and
        // stores the damaged chunk (about 1 MiB) anew.
        let v = place.backup(&src, &[], 0);
        assert!(v["stored_bytes"].as_u64().unwrap() > 500_000, "{v}");
        assert_eq!(v["files_read"], 1, "{v}");
        place.restores_as("ds", &work.join("out"), &[], &manifest(&src));
        // The first snapshot refers to the same blobs: it restores too.
        place.restores_as("ds", &work.join("out0"), &["--id", "0"], &manifest(&src));
        let o = place.check(true);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
}

fn flip_byte(p: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

/// Item 2: a pack left without an index is verified before its blobs are
/// reused, and a new pack whose name is taken by a damaged file replaces it.
#[test]
fn issue9_a_leftover_pack_is_verified_and_a_damaged_namesake_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    for place in Place::all(tmp.path()) {
        let work = tmp.path().join(place.name());
        let src = dataset(&work, "ds", 3);
        // One thread: the blobs go into the pack in the same order each
        // time, so the new pack has the damaged one's name.
        place.backup(&src, &["--threads", "1"], 0);
        let pack = pack_of(&place.dir(), "ds", b"big.bin");
        let good_len = fs::metadata(&pack).unwrap().len();
        truncate(&pack, 100_000);
        for f in fs::read_dir(place.dir().join("index")).unwrap() {
            fs::remove_file(f.unwrap().path()).unwrap();
        }
        let v = place.backup(&src, &["--full", "--threads", "1"], 0);
        assert!(v["stored_bytes"].as_u64().unwrap() > 2_000_000, "{v}");
        assert_eq!(
            fs::metadata(&pack).unwrap().len(),
            good_len,
            "{}: the damaged pack was not replaced",
            place.name()
        );
        place.restores_as("ds", &work.join("out"), &[], &manifest(&src));
        let o = place.check(true);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
}

/// Item 4: only bk's own temporary files in bk's own directories are ever
/// removed; `init` and a first backup refuse a directory that is not empty
/// and not a repository, even one holding only subdirectories.
#[test]
fn issue9_bk_never_deletes_or_adopts_user_files() {
    let tmp = tempfile::tempdir().unwrap();
    for place in Place::all(tmp.path()) {
        let work = tmp.path().join(place.name());
        let src = dataset(&work, "ds", 4);
        let dir = place.dir();
        // A directory holding only a subdirectory is not empty.
        fs::create_dir_all(dir.join("photos/2024")).unwrap();
        fs::write(dir.join("photos/2024/.tmp-1-1"), "mine").unwrap();
        let o = place.bk(&[os("backup"), src.as_os_str()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
        assert!(!dir.join("config").exists());
        let o = place.bk(&[os("init")]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(!dir.join("config").exists());
        fs::remove_dir_all(dir.join("photos")).unwrap();

        // In a real repository: user files named like temp files, in and
        // outside bk's directories, survive a backup; bk's own go.
        place.backup(&src, &[], 0);
        fs::create_dir_all(dir.join("notes")).unwrap();
        let user = [
            dir.join("notes/.tmp-1-2"),
            dir.join(".tmp-notes"),
            dir.join("index/.tmp-x-1"),
        ];
        for f in &user {
            fs::write(f, "user data").unwrap();
        }
        let ours = dir.join("index/.tmp-999999-7");
        fs::write(&ours, "leftover").unwrap();
        place.backup(&src, &[], 0);
        for f in &user {
            assert_eq!(fs::read_to_string(f).unwrap(), "user data", "{f:?}");
        }
        assert!(!ours.exists(), "{}: bk's leftover was kept", place.name());
    }
}

/// Item 7: one stray or bad file in `index/` or `snapshots/<dataset>/`
/// is skipped with a note; everything else works; check reports it.
#[test]
fn issue9_one_bad_file_does_not_take_the_rest_down() {
    let tmp = tempfile::tempdir().unwrap();
    for place in Place::all(tmp.path()) {
        let work = tmp.path().join(place.name());
        let src = dataset(&work, "ds", 5);
        place.backup(&src, &[], 0);
        place.backup(&src, &[], 0);
        let dir = place.dir();
        let snapdir = dir.join("snapshots/ds");
        fs::write(dir.join("index/README"), "notes").unwrap();
        fs::write(dir.join("index").join("0".repeat(64)), "").unwrap();
        fs::write(snapdir.join("0000000005.json"), "{}").unwrap();
        fs::copy(
            snapdir.join("0000000000.json"),
            snapdir.join("0000000000 (copy).json"),
        )
        .unwrap();
        fs::write(snapdir.join("0000000007.json"), "").unwrap();

        let o = place.bk(&[os("snapshots"), os("--json")]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
        assert!(stderr(&o).contains("(copy).json"), "{}", stderr(&o));

        place.restores_as("ds", &work.join("out"), &[], &manifest(&src));
        let o = place.bk(&[os("ls"), os("ds"), os("1")]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        // The next snapshot number skips nothing that exists; the stray
        // 0000000005.json is not a snapshot, but the name is taken.
        fs::write(src.join("new"), "new").unwrap();
        let v = place.backup(&src, &[], 0);
        assert_eq!(v["id"], 2);

        let o = place.check(false);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("index/README"), "{err}");
        assert!(err.contains("0000000005.json"), "{err}");
        assert!(err.contains("(copy).json"), "{err}");
        assert!(err.contains("checked 3 snapshots"), "{err}");
    }
}

/// Item 9: a bad config gives a clear error naming the value, and leaves
/// no lock.
#[test]
fn issue9_a_bad_config_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path(), "ds", 6);
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let cfg = repo.join("config");
    let good = fs::read_to_string(&cfg).unwrap();
    for (field, value) in [("min", "0"), ("avg", "0"), ("max", "100")] {
        let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
        c["chunker"][field] = value.parse::<u64>().unwrap().into();
        fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
        let o = bk()
            .arg("backup")
            .arg(&src)
            .arg("--repo")
            .arg(&repo)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("chunker.{field}")), "{err}");
        assert!(!repo.join("locks/exclusive").exists());
    }
    let mut c: serde_json::Value = serde_json::from_str(&good).unwrap();
    c["pack_size"] = 0.into();
    fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    let o = restore(&repo, "ds", &tmp.path().join("out"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pack_size"), "{}", stderr(&o));
}

fn write_lock(dir: &Path, host: &str, pid: u32, machine_id: &str) {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let lock = serde_json::json!({
        "host": host, "pid": pid, "command": "backup other", "time": "2026-01-01T00:00:00+00:00",
        "token": "feedface", "machine_id": machine_id, "boot_id": boot.trim(),
    });
    fs::write(dir.join("locks/exclusive"), lock.to_string()).unwrap();
}

/// Item 10: a lock is broken only when it is this machine's (machine id,
/// not just the host name) and its process is gone; `unlock` of a live
/// local lock needs --force.
#[test]
fn issue9_locks_know_their_machine() {
    let here = bk_core::repo::hostname();
    let machine = bk_core::repo::machine_id();
    if machine.is_empty() {
        skipped(
            "SKIPPED: issue9_locks_know_their_machine needs /etc/machine-id (package systemd or dbus)",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for place in Place::all(tmp.path()) {
        let work = tmp.path().join(place.name());
        let src = dataset(&work, "ds", 7);
        place.backup(&src, &[], 0);
        let dir = place.dir();
        let dead = i32::MAX as u32 - 11;
        // Same host name, another machine (a cloned VM): not broken.
        write_lock(&dir, &here, dead, "another-machine");
        let o = place.bk(&[os("backup"), src.as_os_str()]);
        // Locked (exit 11): another machine's holder is taken to be alive.
        assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
        assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
        assert!(dir.join("locks/exclusive").exists());
        // This machine, a dead pid: broken, with one line saying so.
        write_lock(&dir, &here, dead, &machine);
        let o = place.bk(&[os("backup"), src.as_os_str()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("stale lock"), "{}", stderr(&o));
        // This machine, a live pid (this test): unlock needs --force.
        write_lock(&dir, &here, std::process::id(), &machine);
        let o = place.bk(&[os("unlock")]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
        assert!(dir.join("locks/exclusive").exists());
        let o = place.bk(&[os("unlock"), os("--force")]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!dir.join("locks/exclusive").exists());
    }
}

/// Item 10, the release: a process removes only its own lock.
#[test]
fn issue9_a_lock_is_released_only_by_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let mine = repo.lock("mine").unwrap();
    // Someone broke it and took the lock.
    write_lock(&tmp.path().join("repo"), "elsewhere", 1, "m");
    drop(mine);
    let h = repo.lock_holder().unwrap().expect("the other lock stays");
    assert_eq!(h.host, "elsewhere");
}

/// Item 15: a repository inside the dataset is left out, with a note.
#[test]
fn issue9_a_repository_inside_the_dataset_is_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path(), "ds", 8);
    let repo = src.join("sub/backups");
    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("inside the dataset"), "{}", stderr(&o));
    let mut expected = manifest(&src);
    expected
        .entries
        .retain(|p, _| !p.starts_with(b"sub/backups"));
    let v = backup(&repo, &src, &[], 0);
    assert_eq!(v["files"], 2, "{v}");
    let out = tmp.path().join("out");
    let o = restore(&repo, "ds", &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The restored tree has sub/ but not the repository in it.
    assert!(!out.join("sub/backups").exists());
    assert_same(&expected, &manifest(&out), "restore");
    // The repository as the dataset itself is refused.
    let o = bk()
        .arg("backup")
        .arg(&repo)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// Item 16: two directories with the same last name do not share a
/// dataset by accident.
#[test]
fn issue9_same_name_other_source_needs_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let a = dataset(&tmp.path().join("alice"), "data", 9);
    let b = dataset(&tmp.path().join("srv"), "data", 10);
    let repo = tmp.path().join("repo");
    backup(&repo, &a, &[], 0);
    let o = bk()
        .arg("backup")
        .arg(&b)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("alice/data") && err.contains("srv/data"),
        "{err}"
    );
    assert!(err.contains("--dataset"), "{err}");
    let v = backup(&repo, &b, &["--dataset", "data"], 0);
    assert_eq!(v["id"], 1);
    // The same source again needs nothing.
    backup(&repo, &a, &["--dataset", "alice-data"], 0);
    backup(&repo, &a, &["--dataset", "alice-data"], 0);
}

/// Item 17: messages that name the object and the next step.
#[test]
fn issue9_messages_say_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path(), "ds", 11);
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);

    // A truncated pack, read by range: "truncated", not "failed to fill
    // whole buffer".
    let pack = pack_of(&repo, "ds", b"big.bin");
    truncate(&pack, 2_000_000);
    let o = restore(&repo, "ds", &tmp.path().join("out"), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(!err.contains("fill whole buffer"), "{err}");

    // `--path ..` is the user's mistake, not the repository's.
    for p in ["..", "sub/../../x"] {
        let o = restore(
            &repo,
            "ds",
            &tmp.path().join("dots"),
            &[os("--path"), os(p)],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("not inside the dataset"), "{err}");
        assert!(!err.contains("repository"), "{err}");
    }

    // A --path that starts with '-' is a path, not an option.
    fs::write(src.join("-dash"), "dash").unwrap();
    backup(&repo, &src, &[], 0);
    let o = restore(
        &repo,
        "ds",
        &tmp.path().join("dash"),
        &[os("--path"), os("-dash")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::read(tmp.path().join("dash/-dash")).unwrap(), b"dash");

    // An empty --dataset.
    let o = bk()
        .arg("backup")
        .arg(&src)
        .args(["--dataset", "", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("dataset name is empty"),
        "{}",
        stderr(&o)
    );

    // A name whose encoded form is too long for a file name: refused
    // before any work.
    let long = "ü".repeat(60);
    let o = bk()
        .arg("backup")
        .arg(&src)
        .args(["--dataset", &long, "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("too long"), "{}", stderr(&o));

    // A repository whose config is missing is not re-initialised.
    fs::remove_file(repo.join("config")).unwrap();
    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("config file is missing"),
        "{}",
        stderr(&o)
    );
    assert!(!repo.join("config").exists());

    // A repository path that cannot be created names the path.
    let blocked = tmp.path().join("file");
    fs::write(&blocked, "x").unwrap();
    let o = bk()
        .arg("init")
        .arg("--repo")
        .arg(blocked.join("repo"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&blocked.join("repo").display().to_string()),
        "{}",
        stderr(&o)
    );
}

/// Acceptance 2: a deleted pack, a truncated pack and a flipped byte;
/// `repair index` and `repair snapshots --forget-damaged` leave a
/// repository that checks clean and restores every remaining file
/// identically; the next backup restores the damaged files from the source.
#[test]
fn issue9_repair_index_and_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir_all(&src).unwrap();
    let repo = tmp.path().join("repo");
    bk().arg("init").arg("--repo").arg(&repo).assert().success();
    // Small packs: each big file in packs of its own.
    let cfg = repo.join("config");
    let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    c["pack_size"] = (256 * 1024).into();
    fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    for (i, name) in ["deleted", "truncated", "flipped", "kept"]
        .iter()
        .enumerate()
    {
        fs::write(src.join(name), random_bytes(20 + i as u64, 1_500_000)).unwrap();
        backup(&repo, &src, &[], 0);
    }
    let before = manifest(&src);
    let p_del = pack_of(&repo, "ds", b"deleted");
    let p_trunc = pack_of(&repo, "ds", b"truncated");
    let p_flip = pack_of(&repo, "ds", b"flipped");
    assert!(p_del != p_trunc && p_trunc != p_flip);
    fs::remove_file(&p_del).unwrap();
    truncate(&p_trunc, 50_000);
    flip_byte(&p_flip, 5000);

    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = bk()
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bk()
        .args(["repair", "snapshots", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    for f in ["deleted", "truncated", "flipped"] {
        assert!(listed.contains(f), "{f} not named: {listed}");
    }
    assert!(!listed.contains("kept"), "{listed}");
    let o = bk()
        .args(["repair", "snapshots", "--forget-damaged", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Every remaining file of every snapshot restores identically.
    for id in 0..4 {
        let out = tmp.path().join(format!("out{id}"));
        let o = restore(&repo, "ds", &out, &[os("--id"), os(&id.to_string())]);
        assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
        let got = manifest(&out);
        for (path, entry) in &got.entries {
            assert_eq!(
                Some(entry),
                before.entries.get(path),
                "{path:?} in snapshot {id}"
            );
        }
        assert!(id < 3 || got.entries.contains_key(b"kept".as_slice()));
    }
    // The next backup stores the lost files again from the source.
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("healed");
    let o = restore(&repo, "ds", &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same(&before, &manifest(&out), "after the next backup");
    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Item 17: a pack that cannot be downloaded because the server went away
/// is a network error, not a "corrupt repository file".
#[test]
fn issue9_a_network_failure_is_not_called_corruption() {
    use std::sync::Arc;
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let mut s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let src = dataset(tmp.path(), "ds", 12);
    let mut url = bk_ftp::FtpUrl::parse(&format!(
        "ftp://{}@{}:{}{}/repo",
        s.user(),
        s.host(),
        s.port(),
        s.remote_base().trim_end_matches('/')
    ))
    .unwrap();
    url.set_password(s.password().to_string());
    let cfg = bk_ftp::FtpConfig::default()
        .retries(1, Duration::from_millis(10))
        .timeouts(Duration::from_secs(2), Duration::from_secs(2));
    let backend = Arc::new(bk_core::FtpBackend::new(url, cfg));
    let repo = Repository::open_or_init(backend).unwrap();
    let snap = bk_core::backup(
        &repo,
        &bk_core::LocalSource::new(&src, &[]).unwrap(),
        &bk_core::BackupOptions::new("ds"),
    )
    .unwrap();
    let idx = repo.load_index().unwrap();
    let root = repo.read_tree(&idx, &snap.tree).unwrap();
    let blob = root.find(b"big.bin").unwrap().content[0];
    s.stop();
    let err = repo.read_blob(&idx, &blob).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, bk_core::Error::Backend { .. }), "{err:?}");
    assert!(!msg.contains("corrupt"), "{msg}");
}
