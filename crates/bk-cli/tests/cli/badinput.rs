//! Bad input gets one clear error line and loses nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bk_core::Repository;
use bk_core::id::Id;
use bk_core::pack::{BlobKind, Compression, PackWriter};
use bk_core::repo::layout::pack_name;
use bk_core::snapshot::{RootMeta, Snapshot, Stats};
use bk_core::tree::{Node, NodeKind, Tree};

use crate::common::*;

fn fails(args: &[&std::ffi::OsStr], needle: &str) -> String {
    let o = bk().args(args).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err:?}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    assert!(o.stdout.is_empty());
    err
}

#[test]
fn missing_source_and_non_directory_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let missing = tmp.path().join("nope");
    fails(
        &[
            os("backup"),
            missing.as_os_str(),
            os("--repo"),
            repo.as_os_str(),
        ],
        "no such file or directory",
    );
    assert!(
        !repo.exists(),
        "a failed backup must not create the repository"
    );
    let fifo = tmp.path().join("pipe");
    mkfifo(&fifo);
    fails(
        &[
            os("backup"),
            fifo.as_os_str(),
            os("--repo"),
            repo.as_os_str(),
        ],
        "named pipe",
    );
    fails(
        &[
            os("backup"),
            os("/dev/null"),
            os("--repo"),
            repo.as_os_str(),
        ],
        "character device",
    );
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    fails(
        &[
            os("backup"),
            file.as_os_str(),
            os("--repo"),
            repo.as_os_str(),
        ],
        "not a directory",
    );
}

#[test]
fn repository_path_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    let repo = tmp.path().join("repo");
    fs::write(&repo, "I am a file").unwrap();
    fails(
        &[
            os("backup"),
            src.as_os_str(),
            os("--repo"),
            repo.as_os_str(),
        ],
        "not a directory",
    );
    fails(
        &[os("snapshots"), os("--repo"), repo.as_os_str()],
        "not a directory",
    );
    assert_eq!(fs::read_to_string(&repo).unwrap(), "I am a file");
    // A non-empty directory that is no repository is not taken over either.
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("precious"), "data").unwrap();
    fails(
        &[
            os("backup"),
            src.as_os_str(),
            os("--repo"),
            other.as_os_str(),
        ],
        "not a bk repository",
    );
    // An absent repository: exit 10, in exitcodes.rs.
}

#[test]
fn non_empty_output_needs_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), "new").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("a"), "old").unwrap();
    fs::write(out.join("keep"), "mine").unwrap();
    fails(
        &[
            os("restore"),
            os("d"),
            os("--repo"),
            repo.as_os_str(),
            os("--to"),
            out.as_os_str(),
        ],
        "not empty",
    );
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "old");
    let o = restore(&repo, "d", &out, &[os("--overwrite")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "new");
    assert_eq!(fs::read_to_string(out.join("keep")).unwrap(), "mine");
    // Output path that is a file.
    let f = tmp.path().join("f");
    fs::write(&f, "x").unwrap();
    fails(
        &[
            os("restore"),
            os("d"),
            os("--repo"),
            repo.as_os_str(),
            os("--to"),
            f.as_os_str(),
        ],
        "not a directory",
    );
}

#[test]
fn newer_repository_format_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let cfg = repo.join("config");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        text.replace("\"format_version\": 2", "\"format_version\": 3"),
    )
    .unwrap();
    let before = fs::read_dir(repo.join("snapshots/d")).unwrap().count();
    fails(
        &[
            os("backup"),
            src.as_os_str(),
            os("--repo"),
            repo.as_os_str(),
        ],
        "format version 3 is newer",
    );
    fails(
        &[os("snapshots"), os("--repo"), repo.as_os_str()],
        "upgrade bk",
    );
    assert_eq!(
        fs::read_dir(repo.join("snapshots/d")).unwrap().count(),
        before
    );
}

#[test]
fn unknown_dataset_and_bad_snapshot_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    fails(
        &[
            os("restore"),
            os("zzz"),
            os("--repo"),
            repo.as_os_str(),
            os("--to"),
            out.as_os_str(),
        ],
        "has no snapshots",
    );
    fails(
        &[
            os("restore"),
            os("d"),
            os("--repo"),
            repo.as_os_str(),
            os("--to"),
            out.as_os_str(),
            os("--path"),
            os("nope/x"),
        ],
        "does not exist in snapshot 0",
    );
    fails(&[os("snapshots")], "no repository given");
}

/// Write a snapshot whose root tree holds `node` (with content "evil").
fn crafted_repo(repo_path: &Path, mut node: Node) {
    let repo = Repository::open_or_init_local(repo_path).unwrap();
    let data = b"evil".to_vec();
    let data_id = Id::hash(&data);
    node.content = vec![data_id];
    node.size = 4;
    let (tree_id, tree_bytes) = Tree { nodes: vec![node] }.encode();
    let mut w = PackWriter::default();
    w.add(
        BlobKind::Data,
        data_id,
        Compression::None,
        &data,
        data.len(),
    );
    w.add(
        BlobKind::Tree,
        tree_id,
        Compression::None,
        &tree_bytes,
        tree_bytes.len(),
    );
    let (pack_id, bytes, entries) = w.finish();
    repo.backend()
        .write(&pack_name(&pack_id), &bytes, false)
        .unwrap();
    repo.write_index(&[(pack_id, entries)]).unwrap();
    repo.commit_snapshot(&Snapshot {
        dataset: "evil".into(),
        id: 0,
        time: chrono::Local::now().fixed_offset(),
        full: true,
        parent: None,
        tree: tree_id,
        root: RootMeta {
            mode: 0o755,
            ..Default::default()
        },
        source: "crafted".into(),
        host: "test".into(),
        stats: Stats::default(),
        warnings: vec![],
    })
    .unwrap();
}

fn file_node(name: &[u8]) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        size: 0,
        inode: 0,
        ctime: 0,
        ctime_nsec: 0,
        xattrs: vec![],
        hardlink: None,
        content: vec![],
        subtree: None,
        target: vec![],
        change_token: None,
    }
}

#[test]
fn crafted_names_never_escape_the_output_directory() {
    for name in [&b"../x"[..], b"..", b"a/../../x", b"/abs", b"nul\0x"] {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        crafted_repo(&repo, file_node(name));
        let work = tmp.path().join("work");
        let out = work.join("out");
        fs::create_dir_all(&work).unwrap();
        fails(
            &[
                os("restore"),
                os("evil"),
                os("--repo"),
                repo.as_os_str(),
                os("--to"),
                out.as_os_str(),
            ],
            "unsafe name",
        );
        let outside: Vec<_> = fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            outside.iter().all(|n| n == "out"),
            "{name:?}: wrote {outside:?}"
        );
        assert!(!tmp.path().join("x").exists() && !Path::new("/abs").exists());
        if out.exists() {
            assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "{name:?}");
        }
    }
}

#[test]
fn unreadable_file_is_recorded_and_exit_code_is_3() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("readable"), "fine").unwrap();
    fs::write(src.join("secret"), "no").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("bk");
    let mut cmd = if is_root() {
        // Root reads everything: run this backup as nobody so the file is
        // really unreadable.
        fs::set_permissions(&repo, fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let o = cmd
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .arg("--json")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("secret") && err.contains("ermission denied"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"], 1);
    let w = &v["warnings"][0];
    assert_eq!(w["path"], "secret");
    // It is recorded in the snapshot itself.
    let o = bk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s[0]["warnings"][0]["path"], "secret");
    // Its restore says what the snapshot lacks (issue 9 item 12).
    let out = tmp.path().join("out");
    let o = restore(&repo, "d", &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bk: warning: secret: not backed up"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_to_string(out.join("readable")).unwrap(), "fine");
    assert!(!out.join("secret").exists());
}

#[test]
fn sockets_are_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    let repo = tmp.path().join("repo");
    let v = backup(&repo, &src, &[], 3);
    assert_eq!(v["warnings"][0]["path"], "sock");
    assert!(
        v["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("socket")
    );
}

#[test]
fn bkignore_and_exclude() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir_all(src.join("sub/cache")).unwrap();
    fs::write(src.join(".bkignore"), "*.tmp\ncache/\n").unwrap();
    fs::write(src.join("keep.txt"), "k").unwrap();
    fs::write(src.join("drop.tmp"), "d").unwrap();
    fs::write(src.join("sub/cache/x"), "x").unwrap();
    fs::write(src.join("sub/y.log"), "y").unwrap();
    fs::write(src.join("sub/z"), "z").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &["--exclude", "*.log"], 0);
    let out = tmp.path().join("out");
    assert!(restore(&repo, "d", &out, &[]).status.success());
    let m = manifest(&out);
    let names: Vec<String> = m
        .entries
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(names, [".bkignore", "keep.txt", "sub", "sub/z"]);
}

#[test]
fn full_disk_fails_cleanly_and_keeps_earlier_snapshots() {
    if !is_root() {
        return; // mounting a small tmpfs needs root; CI runs as root
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mounting a 3 MiB tmpfs for the full-disk test failed");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let repo = mnt.join("repo");
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("small"), random_bytes(1, 100_000)).unwrap();
    backup(&repo, &src, &[], 0);
    let m0 = manifest(&src);
    // 8 MiB of incompressible data cannot fit in what is left.
    fs::write(src.join("big"), random_bytes(2, 8 << 20)).unwrap();
    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left"), "{err}");
    // Nothing was committed, the repository checks clean and snapshot 0 restores.
    let o = bk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = tmp.path().join("out");
    let o = restore(&repo, "d", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(&m0, &manifest(&out), "after a full disk");
}
