//! `--one-file-system` (issue 10): a backup stays on the dataset's file
//! system; a mount point inside it is recorded as an empty directory with
//! its own metadata and named once.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common::*;

const NOTE: &str = "not crossed: mount point a/mnt (another file system)";

#[test]
fn one_file_system_records_a_mount_point_as_an_empty_directory() {
    if !is_root() {
        skipped("SKIPPED: one_file_system_records_a_mount_point needs mount (root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("top.txt"), "on the dataset's file system").unwrap();
    let Some(m) = Tmpfs::mount(&src.join("a/mnt")) else {
        skipped("SKIPPED: one_file_system_records_a_mount_point needs mount (root)");
        return;
    };
    fs::write(m.0.join("inside.txt"), "on another file system").unwrap();
    fs::create_dir(m.0.join("sub")).unwrap();
    fs::write(m.0.join("sub/deep.txt"), "deeper").unwrap();
    // The mount point keeps its own metadata (the mounted root's).
    fs::set_permissions(&m.0, fs::Permissions::from_mode(0o710)).unwrap();
    let repo = tmp.path().join("repo");

    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .arg("--one-file-system")
        .output()
        .unwrap();
    let err = stderr(&o);
    // What the user asked for: a note, not a partial snapshot.
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.matches(NOTE).count(), 1, "{err}");
    assert!(err.contains(": 1 files,"), "{err}");
    let out = tmp.path().join("out");
    let r = restore(&repo, "ds", &out, &[os("--id"), os("0")]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let mnt = out.join("a/mnt");
    assert!(mnt.is_dir());
    assert_eq!(
        fs::read_dir(&mnt).unwrap().count(),
        0,
        "the mount point is empty"
    );
    assert_eq!(
        fs::metadata(&mnt).unwrap().permissions().mode() & 0o7777,
        0o710
    );
    assert_eq!(
        fs::read_to_string(out.join("top.txt")).unwrap(),
        "on the dataset's file system"
    );

    // Without the flag the other file system is backed up like the rest.
    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("not crossed"), "{err}");
    let out = tmp.path().join("out2");
    let r = restore(&repo, "ds", &out, &[]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_same(
        &manifest(&src),
        &manifest(&out),
        "restore without --one-file-system",
    );
    assert_eq!(
        fs::read_to_string(out.join("a/mnt/sub/deep.txt")).unwrap(),
        "deeper"
    );
}
