//! `bk ls`, `bk diff` and `bk snapshots` output; owners restored as root.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::*;

#[test]
fn diff_ls_and_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("keep"), "k").unwrap();
    fs::write(src.join("edit"), "v0").unwrap();
    fs::write(src.join("gone"), "g").unwrap();
    fs::write(src.join("dir/inner"), "i").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    fs::write(src.join("edit"), "v1 longer").unwrap();
    fs::remove_file(src.join("gone")).unwrap();
    fs::write(src.join("new\nline"), "n").unwrap();
    std::os::unix::fs::symlink("keep", src.join("link")).unwrap();
    let s1 = backup(&repo, &src, &[], 0);
    assert_eq!(
        (
            s1["added"].as_u64(),
            s1["modified"].as_u64(),
            s1["deleted"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );

    let o = bk()
        .args(["diff", "ds", "0", "1", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["added"], serde_json::json!(["link", "new\\nline"]));
    assert_eq!(d["modified"], serde_json::json!(["edit"]));
    assert_eq!(d["deleted"], serde_json::json!(["gone"]));

    let o = bk()
        .args(["ls", "ds", "1", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    let paths: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert!(out.contains("link -> keep"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("-rw-") && l.contains(" 9 ") && l.ends_with(" edit")),
        "{out}"
    );
    assert!(paths.contains(&"dir/inner"), "{out}");
    let o = bk()
        .args(["ls", "ds", "0", "dir", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");

    let o = bk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let snaps = v.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    for key in [
        "dataset",
        "id",
        "time",
        "full",
        "files",
        "bytes",
        "added",
        "modified",
        "deleted",
        "stored_bytes",
    ] {
        assert!(snaps[1].get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        snaps[0]["full"], true,
        "a dataset's first snapshot reads everything"
    );
    assert_eq!(snaps[1]["full"], false);
    assert_eq!(
        snaps[1]["files"], 4,
        "regular files only: the symlink is not one"
    );
}

#[test]
fn owners_are_restored_when_root() {
    if !is_root() {
        return; // only root can give files away; CI runs as root
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("owned"), "x").unwrap();
    std::os::unix::fs::chown(src.join("owned"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::symlink("owned", src.join("link")).unwrap();
    std::os::unix::fs::lchown(src.join("link"), Some(4321), Some(8765)).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    assert!(restore(&repo, "ds", &out, &[]).status.success());
    let m = fs::metadata(out.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    let l = fs::symlink_metadata(out.join("link")).unwrap();
    assert_eq!((l.uid(), l.gid()), (4321, 8765));
}
