// tidy: long file: every file kind and metadata round trip, one test each
//! Changes and metadata that must not be lost (issue 9, items 5 and 6):
//! ctime catches rewrites whose mtime was put back, extended attributes and
//! ACLs round-trip, sparse files stay sparse, metadata-only changes are
//! modified, FTP restores say when a file ends up more open, and format-1
//! repositories still restore.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bk_testkit::{ServerKind, ServerOptions, TestServer};
use filetime::FileTime;

use crate::common::*;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `lsetxattr`; the error if the file system refuses.
fn set_xattr(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings; value valid for its length.
    let r = unsafe {
        libc::lsetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `lgetxattr`, `None` when absent.
fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: NUL-terminated strings; buf valid for its length.
    let r = unsafe {
        libc::lgetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn restore_ok(repo: &Path, ds: &str, out: &Path) {
    let o = restore(repo, ds, out, &[]);
    assert_eq!(o.status.code(), Some(0), "restore: {}", stderr(&o));
}

/// Rewrite `p` in place with `content` (same size) and put its mtime back,
/// as `cp -p`, `rsync --inplace -a` or `touch -r` do.
fn rewrite_keeping_mtime(p: &Path, content: &[u8]) {
    let before = fs::metadata(p).unwrap();
    assert_eq!(before.len(), content.len() as u64);
    fs::write(p, content).unwrap();
    filetime::set_file_mtime(p, FileTime::from_last_modification_time(&before)).unwrap();
    let after = fs::metadata(p).unwrap();
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
}

#[test]
fn same_size_rewrite_with_mtime_put_back_is_backed_up() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"version one").unwrap();
    fs::write(src.join("g"), b"untouched").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    rewrite_keeping_mtime(&src.join("f"), b"version two");
    let v = backup(&repo, &src, &[], 0);
    assert_eq!(v["files_read"], 1, "only the rewritten file is read: {v}");
    assert_eq!(v["modified"], 1, "{v}");
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    assert_eq!(fs::read(out.join("f")).unwrap(), b"version two");
}

#[test]
fn ignore_ctime_trusts_size_mtime_and_inode() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"aaaa").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    // A ctime-only change (a chmod back and forth) …
    fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    // … is not re-read with --ignore-ctime,
    let v = backup(&repo, &src, &["--ignore-ctime"], 0);
    assert_eq!(v["files_read"], 0, "{v}");
    // and is without it.
    let v = backup(&repo, &src, &[], 0);
    assert_eq!(v["files_read"], 1, "{v}");
    assert_eq!(v["modified"], 0, "same content and metadata: {v}");
}

#[test]
fn chmod_only_change_is_modified_in_stats_and_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("f"), b"content").unwrap();
    fs::write(src.join("sub/g"), b"other").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
    let v = backup(&repo, &src, &[], 0);
    assert_eq!(
        v["modified"], 1,
        "the file (directories are not counted): {v}"
    );
    let o = bk()
        .args(["diff", "d", "0", "1", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["modified"], serde_json::json!(["f", "sub/"]), "{d}");
    assert_eq!(d["added"], serde_json::json!([]));
    assert_eq!(d["deleted"], serde_json::json!([]));
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    assert_eq!(fs::metadata(out.join("f")).unwrap().mode() & 0o7777, 0o600);
}

#[test]
fn user_xattrs_of_files_and_directories_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    if let Err(e) = set_xattr(&src.join("f"), "user.comment", b"hello") {
        skipped(&format!(
            "SKIPPED: user_xattrs_of_files_and_directories_round_trip needs user xattrs on the temp file system ({e})"
        ));
        return;
    }
    set_xattr(&src.join("f"), "user.bin", b"\x00\xff\x01").unwrap();
    set_xattr(&src.join("sub"), "user.dir", b"on a directory").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    assert_eq!(
        get_xattr(&out.join("f"), "user.comment").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        get_xattr(&out.join("f"), "user.bin").as_deref(),
        Some(&b"\x00\xff\x01"[..])
    );
    assert_eq!(
        get_xattr(&out.join("sub"), "user.dir").as_deref(),
        Some(&b"on a directory"[..])
    );

    // An xattr-only change is modified, and the next snapshot has it.
    set_xattr(&src.join("f"), "user.comment", b"changed").unwrap();
    let v = backup(&repo, &src, &[], 0);
    assert_eq!(v["modified"], 1, "{v}");
    let out2 = tmp.path().join("out2");
    restore_ok(&repo, "d", &out2);
    assert_eq!(
        get_xattr(&out2.join("f"), "user.comment").as_deref(),
        Some(&b"changed"[..])
    );
}

#[test]
fn trusted_xattrs_of_files_directories_and_symlinks_round_trip_as_root() {
    if !is_root() {
        skipped(
            "SKIPPED: trusted_xattrs_of_files_directories_and_symlinks_round_trip_as_root needs root",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    std::os::unix::fs::symlink("f", src.join("link")).unwrap();
    for (p, v) in [("f", "file"), ("sub", "dir"), ("link", "symlink")] {
        set_xattr(&src.join(p), "trusted.bk-test", v.as_bytes()).unwrap();
    }
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    for (p, v) in [("f", "file"), ("sub", "dir"), ("link", "symlink")] {
        assert_eq!(
            get_xattr(&out.join(p), "trusted.bk-test").as_deref(),
            Some(v.as_bytes()),
            "{p}"
        );
    }
    // The symlink's attribute is its own, not its target's.
    assert_eq!(
        get_xattr(&out.join("f"), "trusted.bk-test").as_deref(),
        Some(&b"file"[..])
    );
}

/// A POSIX ACL in the kernel's xattr form: version 2, then (tag, perm, id).
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const ACL_USER_OBJ: u16 = 1;
const ACL_USER: u16 = 2;
const ACL_GROUP_OBJ: u16 = 4;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;

#[test]
fn acl_with_mask_round_trips_without_making_the_group_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    let f = src.join("f");
    fs::write(&f, b"x").unwrap();
    // user::rw- user:4321:rw- group::r-- mask::rw- other::r--
    let value = acl(&[
        (ACL_USER_OBJ, 6, NO_ID),
        (ACL_USER, 6, 4321),
        (ACL_GROUP_OBJ, 4, NO_ID),
        (ACL_MASK, 6, NO_ID),
        (ACL_OTHER, 4, NO_ID),
    ]);
    if let Err(e) = set_xattr(&f, "system.posix_acl_access", &value) {
        skipped(&format!(
            "SKIPPED: acl_with_mask_round_trips_without_making_the_group_writable needs POSIX ACLs on the temp file system ({e})"
        ));
        return;
    }
    // The mode's group bits show the mask.
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o664);
    let stored = get_xattr(&f, "system.posix_acl_access").unwrap();
    // A default ACL on a directory, too.
    let dflt = acl(&[
        (ACL_USER_OBJ, 7, NO_ID),
        (ACL_GROUP_OBJ, 5, NO_ID),
        (ACL_OTHER, 0, NO_ID),
    ]);
    fs::create_dir(src.join("shared")).unwrap();
    set_xattr(&src.join("shared"), "system.posix_acl_default", &dflt).unwrap();
    let dflt_stored = get_xattr(&src.join("shared"), "system.posix_acl_default").unwrap();

    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    let back = get_xattr(&out.join("f"), "system.posix_acl_access");
    assert_eq!(back.as_ref(), Some(&stored), "the ACL, mask included");
    assert_eq!(fs::metadata(out.join("f")).unwrap().mode() & 0o777, 0o664);
    // The owning group itself still has only r--.
    let group = back.unwrap()[4..]
        .chunks(8)
        .find(|e| u16::from_le_bytes([e[0], e[1]]) == ACL_GROUP_OBJ)
        .map(|e| u16::from_le_bytes([e[2], e[3]]));
    assert_eq!(group, Some(4));
    assert_eq!(
        get_xattr(&out.join("shared"), "system.posix_acl_default"),
        Some(dflt_stored)
    );
}

#[test]
fn sparse_file_restores_sparse_and_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    let p = src.join("sparse.img");
    let size = 100u64 << 20;
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(&p).unwrap();
        f.set_len(size).unwrap();
        // 3 MiB of data in three places, the rest holes (and an unaligned
        // piece near the end).
        let data = random_bytes(3, 1 << 20);
        for off in [0u64, 40 << 20, 77 << 20] {
            f.write_all_at(&data, off).unwrap();
        }
        f.write_all_at(b"tail", size - 10).unwrap();
    }
    let blocks_src = fs::metadata(&p).unwrap().blocks() * 512;
    if blocks_src > 8 << 20 {
        skipped(
            "SKIPPED: sparse_file_restores_sparse_and_identical needs a temp file system with holes",
        );
        return;
    }
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    let r = out.join("sparse.img");
    let m = fs::metadata(&r).unwrap();
    assert_eq!(m.len(), size);
    let allocated = m.blocks() * 512;
    assert!(
        allocated < 5 << 20,
        "restored with {allocated} bytes allocated for 3 MiB of data (source: {blocks_src})"
    );
    assert!(
        fs::read(&p).unwrap() == fs::read(&r).unwrap(),
        "content differs"
    );
}

#[test]
fn file_ending_in_a_hole_keeps_its_length() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("h")).unwrap();
    f.set_len(3 << 20).unwrap();
    drop(f);
    fs::write(src.join("zeros"), vec![0u8; 10_000]).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    restore_ok(&repo, "d", &out);
    assert_eq!(fs::read(out.join("h")).unwrap(), vec![0u8; 3 << 20]);
    assert_eq!(fs::read(out.join("zeros")).unwrap(), vec![0u8; 10_000]);
}

#[test]
fn xattr_the_target_refuses_is_named_and_exit_3() {
    if !is_root() {
        skipped("SKIPPED: xattr_the_target_refuses_is_named_and_exit_3 needs root");
        return;
    }
    // A real refusal: ramfs has no extended attributes at all.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("tagged"), b"x").unwrap();
    fs::write(src.join("plain"), b"y").unwrap();
    set_xattr(&src.join("tagged"), "trusted.bk-test", b"v").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(&mnt)
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        skipped(
            "SKIPPED: xattr_the_target_refuses_is_named_and_exit_3 needs mount (util-linux) and ramfs",
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&mnt);
    if set_xattr(&mnt, "trusted.probe", b"1").is_ok() {
        skipped(
            "SKIPPED: xattr_the_target_refuses_is_named_and_exit_3 needs a file system without trusted xattrs (ramfs has them here)",
        );
        return;
    }
    let out = mnt.join("out");
    let o = restore(&repo, "d", &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("tagged") && err.contains("trusted.bk-test"),
        "{err}"
    );
    assert!(!err.contains("plain"), "{err}");
    // The content is there all the same.
    assert_eq!(fs::read(out.join("tagged")).unwrap(), b"x");
}

fn ftp_url(s: &TestServer, path: &str) -> String {
    format!("ftp://{}@{}:{}{path}", s.user(), s.host(), s.port())
}

fn bk_ftp(s: &TestServer, args: &[&std::ffi::OsStr]) -> std::process::Output {
    bk().env("BK_FTP_PASSWORD", s.password())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ftp_restore_names_files_more_open_than_they_were() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("secret"), b"s").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(src.join("public"), b"p").unwrap();
    fs::set_permissions(src.join("public"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let to = ftp_url(&s, "/restored");
    let o = bk_ftp(
        &s,
        &[
            os("restore"),
            os("d"),
            os("--repo"),
            repo.as_os_str(),
            os("--to"),
            os(&to),
        ],
    );
    let err = stderr(&o);
    let local = s.local_path("/restored/secret");
    let mode = fs::metadata(&local).unwrap().mode() & 0o777;
    if mode == 0o600 {
        // The server did SITE CHMOD: nothing to report.
        assert_eq!(o.status.code(), Some(0), "{err}");
    } else {
        assert_eq!(o.status.code(), Some(3), "mode {mode:o}: {err}");
        assert!(err.contains("secret") && err.contains("600"), "{err}");
        assert!(!err.contains("public"), "{err}");
    }
    assert_eq!(fs::read(local).unwrap(), b"s");
}

#[test]
fn pull_mode_change_within_the_parents_second_is_backed_up() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ds = s.local_path("/datasets/pulled");
    fs::create_dir_all(&ds).unwrap();
    let f = ds.join("f");
    let old = ds.join("old");
    fs::write(&f, b"first").unwrap();
    fs::write(&old, b"quiet").unwrap();
    filetime::set_file_mtime(&old, FileTime::from_unix_time(1_700_000_000, 0)).unwrap();
    // The listing gives whole seconds: f's mtime is in the second the next
    // backup starts in (or later, a server clock slightly ahead), so a
    // rewrite within that second leaves size and listed mtime as they were.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = FileTime::from_unix_time(now + 2, 0);
    filetime::set_file_mtime(&f, t).unwrap();
    let url = ftp_url(&s, "/datasets/pulled");
    let repo = tmp.path().join("repo");
    let run = || {
        let o = bk_ftp(
            &s,
            &[
                os("backup"),
                os(&url),
                os("--repo"),
                repo.as_os_str(),
                os("--json"),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    run();
    fs::write(&f, b"again").unwrap();
    filetime::set_file_mtime(&f, t).unwrap();
    let v = run();
    assert_eq!(v["files_read"], 1, "f is read again, old is trusted: {v}");
    assert_eq!(v["modified"], 1, "{v}");
    let out = tmp.path().join("out");
    restore_ok(&repo, "pulled", &out);
    assert_eq!(fs::read(out.join("f")).unwrap(), b"again");
    assert_eq!(fs::read(out.join("old")).unwrap(), b"quiet");
}

/// Copy a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn fixture_repo(tmp: &Path) -> (std::path::PathBuf, serde_json::Value) {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format1");
    let repo = tmp.join("repo");
    copy_tree(&fx.join("repo"), &repo);
    let expected = serde_json::from_slice(&fs::read(fx.join("expected.json")).unwrap()).unwrap();
    (repo, expected)
}

/// Compare a restore with the fixture's description of snapshot `id`.
fn assert_matches_fixture(out: &Path, expected: &serde_json::Value, id: &str) {
    let want = expected["snapshots"][id].as_object().unwrap();
    let mut seen = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(out).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let w = want
                .get(&rel)
                .unwrap_or_else(|| panic!("{rel} is not in snapshot {id}"));
            assert_eq!(w["mtime"].as_i64(), Some(m.mtime()), "{rel}");
            match w["kind"].as_str().unwrap() {
                "dir" => {
                    assert!(m.is_dir(), "{rel}");
                    stack.push(p.clone());
                }
                "symlink" => assert_eq!(
                    fs::read_link(&p).unwrap().to_str(),
                    w["target"].as_str(),
                    "{rel}"
                ),
                _ => {
                    let hex: String = fs::read(&p)
                        .unwrap()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    assert_eq!(Some(hex.as_str()), w["content_hex"].as_str(), "{rel}");
                }
            }
            if w["kind"] != "symlink" {
                assert_eq!(
                    w["mode"].as_u64(),
                    Some(u64::from(m.mode() & 0o7777)),
                    "{rel}"
                );
            }
            seen.push(rel);
        }
    }
    seen.sort();
    let mut all: Vec<_> = want.keys().cloned().collect();
    all.sort();
    assert_eq!(seen, all, "snapshot {id}");
    for group in expected["hardlinks"].as_array().unwrap() {
        let inodes: Vec<u64> = group
            .as_array()
            .unwrap()
            .iter()
            .map(|p| fs::metadata(out.join(p.as_str().unwrap())).unwrap().ino())
            .collect();
        assert!(
            inodes.windows(2).all(|w| w[0] == w[1]),
            "hard links {group}"
        );
    }
    assert_eq!(
        Some(fs::metadata(out).unwrap().mtime()),
        expected["root_mtime"][id].as_i64()
    );
}

#[test]
fn format1_repository_restores_and_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, expected) = fixture_repo(tmp.path());
    for id in ["0", "1"] {
        let out = tmp.path().join(format!("out{id}"));
        let o = restore(&repo, "ds", &out, &[os("--id"), os(id)]);
        assert_eq!(o.status.code(), Some(0), "restore {id}: {}", stderr(&o));
        assert_matches_fixture(&out, &expected, id);
    }
    let o = bk()
        .args(["ls", "ds", "1", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ls = String::from_utf8_lossy(&o.stdout);
    for name in [
        "hello.txt",
        "new.txt",
        "sub/link -> ../hello.txt",
        "empty",
        "sub/hard2",
    ] {
        assert!(ls.contains(name), "{name} in:\n{ls}");
    }
    let o = bk()
        .args(["check", "--read-data", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bk()
        .args(["diff", "ds", "0", "1", "--json", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["added"], serde_json::json!(["new.txt"]), "{d}");
    assert_eq!(d["modified"], serde_json::json!(["hello.txt"]), "{d}");
    // Reading changes nothing: the config is still format 1.
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    assert_eq!(cfg["format_version"], 1);
}

#[test]
fn backup_into_a_format1_repository_upgrades_it_with_one_note() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, expected) = fixture_repo(tmp.path());
    let src = tmp.path().join("ds");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("hello.txt"), b"hello from format 2\n").unwrap();
    set_xattr(&src.join("hello.txt"), "user.v", b"2").ok();
    // The fixture was made from another directory: name the dataset.
    let o = bk()
        .arg("backup")
        .arg(&src)
        .args(["--dataset", "ds", "--repo"])
        .arg(&repo)
        .arg("--json")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("upgraded repository").count(), 1, "{err}");
    assert!(err.contains("from format 1 to 2"), "{err}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    assert_eq!(cfg["format_version"], 2);
    // The id and the chunker are kept: dedup goes on.
    let old: serde_json::Value = serde_json::from_slice(
        &fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format1/repo/config"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!((&cfg["id"], &cfg["chunker"]), (&old["id"], &old["chunker"]));
    // Old snapshots restore as before; the new one too; no second note.
    let out = tmp.path().join("out0");
    let o = restore(&repo, "ds", &out, &[os("--id"), os("0")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_matches_fixture(&out, &expected, "0");
    let out = tmp.path().join("out2");
    restore_ok(&repo, "ds", &out);
    assert_eq!(
        fs::read(out.join("hello.txt")).unwrap(),
        b"hello from format 2\n"
    );
    let o = bk()
        .arg("backup")
        .arg(&src)
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("upgraded"), "{}", stderr(&o));
}
