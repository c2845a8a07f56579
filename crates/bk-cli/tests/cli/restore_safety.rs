//! Restores that must never lose data silently (issue 9): hard-link groups
//! across file systems, damaged trees, partial snapshots, `--overwrite` and
//! `--delete`, leftovers of an interrupted restore, and a port that is not
//! an FTP server.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use bk_core::Repository;
use bk_core::repo::layout::pack_name;

use crate::common::*;

#[test]
fn hard_links_on_two_file_systems_with_the_same_inode_numbers_keep_their_content() {
    if !is_root() {
        skipped("SKIPPED: hard_links_on_two_file_systems needs mount (root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    let Some(m1) = Tmpfs::mount(&src.join("m1")) else {
        skipped("SKIPPED: hard_links_on_two_file_systems needs mount (root)");
        return;
    };
    let m2 = Tmpfs::mount(&src.join("m2")).expect("second tmpfs");
    for (m, content) in [(&m1, "alice's data"), (&m2, "bob's other data")] {
        fs::write(m.0.join("a"), content).unwrap();
        fs::hard_link(m.0.join("a"), m.0.join("b")).unwrap();
    }
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    // The fault needs equal inode numbers on the two file systems.
    assert_eq!(
        ino(&m1.0.join("a")),
        ino(&m2.0.join("a")),
        "tmpfs inode numbers"
    );
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    let o = restore(&repo, "ds", &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (m, content) in [("m1", "alice's data"), ("m2", "bob's other data")] {
        for f in ["a", "b"] {
            assert_eq!(
                fs::read_to_string(out.join(m).join(f)).unwrap(),
                content,
                "{m}/{f}"
            );
        }
        assert_eq!(
            ino(&out.join(m).join("a")),
            ino(&out.join(m).join("b")),
            "{m}: a and b are one file"
        );
    }
    assert_ne!(ino(&out.join("m1/a")), ino(&out.join("m2/a")));
}

/// Flip bytes in the middle of the stored tree blob of directory `dir`.
fn damage_tree_of(repo_path: &Path, dataset: &str, dir: &[u8]) {
    let repo = Repository::open_local(repo_path).unwrap();
    let idx = repo.load_index().unwrap();
    let snap = &repo.snapshots(Some(dataset)).unwrap()[0];
    let root = repo.read_tree(&idx, &snap.tree).unwrap();
    let sub = root.find(dir).unwrap().subtree.unwrap();
    let loc = idx.get(&sub).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(repo_path.join(pack_name(&loc.pack)))
        .unwrap();
    let start = loc.entry.offset as u64 + loc.entry.length as u64 / 3;
    for at in start..start + 4 {
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    }
}

#[test]
fn a_damaged_tree_costs_only_its_directory_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir_all(src.join("lost/deeper")).unwrap();
    fs::create_dir_all(src.join("kept/sub")).unwrap();
    fs::write(src.join("top.txt"), random_bytes(1, 5_000)).unwrap();
    fs::write(src.join("lost/x.bin"), random_bytes(2, 5_000)).unwrap();
    fs::write(src.join("lost/deeper/y"), "y").unwrap();
    fs::write(src.join("kept/sub/z.bin"), random_bytes(3, 70_000)).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    damage_tree_of(&repo, "ds", b"lost");

    let out = tmp.path().join("out");
    let o = restore(&repo, "ds", &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("bk: error: lost: directory contents not restored:"),
        "{err}"
    );
    // Everything readable is restored byte for byte; the damaged directory
    // exists, empty.
    for f in ["top.txt", "kept/sub/z.bin"] {
        assert_eq!(
            fs::read(out.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(out.join("lost").is_dir());
    assert_eq!(fs::read_dir(out.join("lost")).unwrap().count(), 0);

    // A path inside it cannot be found without it: a clear error naming it.
    let o = restore(
        &repo,
        "ds",
        &tmp.path().join("one"),
        &[os("--path"), os("lost/x.bin")],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read directory \"lost\" of the snapshot"),
        "{err}"
    );

    // ls lists around it and names it.
    let o = bk()
        .args(["ls", "ds", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let err = stderr(&o);
    let listing = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(listing.contains("kept/sub/z.bin"), "{listing}");
    assert!(listing.contains(" lost\n"), "{listing}");
    assert!(
        err.contains("bk: error: lost: directory contents not listed:"),
        "{err}"
    );
}

#[test]
fn a_partial_snapshot_is_marked_and_its_restore_says_what_it_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    // A socket cannot be backed up: snapshot 1 is partial.
    let _sock = std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    backup(&repo, &src, &[], 3);

    let o = bk()
        .args(["snapshots", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("no line for {id}: {table}"))
            .to_string()
    };
    line("0");
    line("1!");
    assert!(table.contains("! partial: 1 snapshot(s)"), "{table}");

    let out = tmp.path().join("out");
    let o = restore(&repo, "ds", &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("snapshot 1 of \"ds\" is partial"), "{err}");
    assert!(err.contains("bk: warning: app.sock: skipped"), "{err}");
    assert_eq!(fs::read_to_string(out.join("a.txt")).unwrap(), "a");

    // A path the warning does not concern restores in full.
    let out = tmp.path().join("one");
    let o = restore(&repo, "ds", &out, &[os("--path"), os("a.txt")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The complete snapshot 0 too.
    let out = tmp.path().join("zero");
    let o = restore(&repo, "ds", &out, &[os("--id"), os("0")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn small_tree(src: &Path) {
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("a.txt"), "snapshot a").unwrap();
    fs::write(src.join("d"), "d is a file in the snapshot").unwrap();
    fs::write(src.join("dir/b.txt"), "snapshot b").unwrap();
}

#[test]
fn overwrite_says_what_it_replaces_and_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    small_tree(&src);
    fs::remove_file(src.join("d")).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    fs::create_dir_all(out.join("extra_dir")).unwrap();
    fs::create_dir_all(out.join("dir")).unwrap();
    fs::write(out.join("a.txt"), "old a").unwrap();
    fs::write(out.join("extra.txt"), "mine").unwrap();
    fs::write(out.join("extra_dir/x"), "mine too").unwrap();
    fs::write(out.join("dir/mine"), "mine three").unwrap();

    let o = restore(&repo, "ds", &out, &[os("--overwrite")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("replaced 1 existing entries: a.txt"), "{err}");
    assert!(
        err.contains(
            "kept 3 entries not in the snapshot (use --delete to remove them): \
             dir/mine, extra.txt, extra_dir/"
        ),
        "{err}"
    );
    assert_eq!(fs::read_to_string(out.join("a.txt")).unwrap(), "snapshot a");
    assert_eq!(
        fs::read_to_string(out.join("extra_dir/x")).unwrap(),
        "mine too"
    );
    assert_eq!(
        fs::read_to_string(out.join("dir/mine")).unwrap(),
        "mine three"
    );
}

#[test]
fn a_directory_where_the_snapshot_has_a_file_is_removed_only_with_delete_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    small_tree(&src);
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    fs::create_dir_all(out.join("d/inner")).unwrap();
    fs::write(out.join("d/inner/precious"), "precious").unwrap();
    fs::write(out.join("extra.txt"), "mine").unwrap();
    fs::write(out.join("dir/extra2"), "mine").unwrap_or_else(|_| {
        fs::create_dir_all(out.join("dir")).unwrap();
        fs::write(out.join("dir/extra2"), "mine").unwrap();
    });

    // --overwrite: the directory is kept, the entry refused and named.
    let o = restore(&repo, "ds", &out, &[os("--overwrite")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("bk: error: d: "), "{err}");
    assert!(err.contains("pass --delete to replace it"), "{err}");
    assert_eq!(
        fs::read_to_string(out.join("d/inner/precious")).unwrap(),
        "precious"
    );

    // --delete: an exact copy, every removed path named.
    let o = restore(&repo, "ds", &out, &[os("--delete")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    for p in ["removed d/", "removed extra.txt", "removed dir/extra2"] {
        assert!(err.lines().any(|l| l == p), "{p}: {err}");
    }
    assert_same(&manifest(&src), &manifest(&out), "restore --delete");
}

#[test]
fn delete_into_an_ftp_output_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    small_tree(&src);
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let o = bk()
        .args([
            "restore",
            "ds",
            "--delete",
            "--to",
            "ftp://u@127.0.0.1:1/x",
            "--repo",
        ])
        .arg(&repo)
        .env("BK_FTP_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--delete applies to local output directories only"),
        "{}",
        stderr(&o)
    );
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn leftovers_of_an_interrupted_restore_are_removed_and_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    small_tree(&src);
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let pid = dead_pid();

    // An output holding only leftovers counts as empty.
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let big = out.join(format!(".bk-restore-{pid}-0"));
    fs::write(&big, random_bytes(9, 3 << 20)).unwrap();
    let o = restore(&repo, "ds", &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!big.exists());
    assert!(
        err.contains("removed 1 temporary file(s) left by an interrupted restore"),
        "{err}"
    );
    assert_same(&manifest(&src), &manifest(&out), "restore over leftovers");

    // Leftovers in subdirectories too; names that only look alike stay.
    let mine = [
        ".bk-restore-notes.txt",
        ".bk-restore-12-x",
        ".bk-restore-12-3.bak",
        ".bk-restore-12",
        ".bk-restore--3",
        "bk-restore-12-3",
    ];
    for m in mine {
        fs::write(out.join(m), "user file").unwrap();
    }
    let left = [
        out.join(format!(".bk-restore-{pid}-7")),
        out.join(format!("dir/.bk-restore-{pid}-12")),
    ];
    for l in &left {
        fs::write(l, "partial").unwrap();
    }
    let o = restore(&repo, "ds", &out, &[os("--overwrite")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    for l in &left {
        assert!(!l.exists(), "{l:?} left");
    }
    for m in mine {
        assert_eq!(fs::read_to_string(out.join(m)).unwrap(), "user file", "{m}");
    }

    // A directory of user files with such names is not empty.
    let out2 = tmp.path().join("out2");
    fs::create_dir(&out2).unwrap();
    fs::write(out2.join(".bk-restore-notes.txt"), "user file").unwrap();
    let o = restore(&repo, "ds", &out2, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
}

#[test]
fn a_port_that_is_not_an_ftp_server_fails_fast_with_a_clear_message() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s); // accept, never write
        }
    });
    let t = Instant::now();
    let o = bk()
        .args(["snapshots", "--repo"])
        .arg(format!("ftp://u@127.0.0.1:{port}/r"))
        .env("BK_FTP_PASSWORD", "pw")
        .env("BK_FTP_GREETING_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "no FTP greeting from 127.0.0.1:{port} within 0.3 s; is this an FTP server?"
        )),
        "{err}"
    );
}
