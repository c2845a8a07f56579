//! Repositories on FTP servers (the embedded server by default; the real
//! ones when BK_FTP_SERVERS names them): every command works over ftp://,
//! and the password never shows.

use std::fs;
use std::path::Path;
use std::process::Output;

use bk_testkit::{ServerKind, ServerOptions, TestServer, servers_under_test};

use crate::common::*;

fn repo_url(s: &TestServer, tls: bool) -> String {
    let scheme = if tls { "ftps" } else { "ftp" };
    format!(
        "{scheme}://{}@{}:{}{}/repo",
        s.user(),
        s.host(),
        s.port(),
        s.remote_base().trim_end_matches('/')
    )
}

fn bk_ftp(s: &TestServer, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = bk();
    c.env("BK_FTP_PASSWORD", s.password()).args(args);
    if let Some(ca) = s.ca_cert() {
        c.arg("--ftp-ca").arg(ca);
        if s.kind() == ServerKind::Vsftpd {
            c.arg("--ftp-tls12");
        }
    }
    c.output().unwrap()
}

fn no_secret(s: &TestServer, o: &Output) {
    for stream in [&o.stdout, &o.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(s.password()) || !s.checks_password(),
            "the password leaked: {}",
            String::from_utf8_lossy(stream)
        );
    }
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("sub dir/empty")).unwrap();
    fs::write(root.join("a.txt"), "alpha").unwrap();
    fs::write(root.join("sub dir/b.bin"), random_bytes(5, 700_000)).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
}

#[test]
fn backup_restore_check_over_ftp() {
    for kind in servers_under_test() {
        for tls in [false, true] {
            if tls && !kind.supports_tls() {
                continue;
            }
            let s = TestServer::start(
                kind,
                if tls {
                    ServerOptions::tls()
                } else {
                    ServerOptions::default()
                },
            )
            .unwrap();
            let url = repo_url(&s, tls);
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("ds");
            tree(&src);
            let o = bk_ftp(
                &s,
                &[
                    os("backup"),
                    src.as_os_str(),
                    os("--repo"),
                    os(&url),
                    os("--json"),
                ],
            );
            assert_eq!(
                o.status.code(),
                Some(0),
                "{kind:?} tls={tls}: {}\n{}",
                stderr(&o),
                s.log()
            );
            no_secret(&s, &o);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["files"], 2);
            // The repository really is on the server.
            assert!(
                s.local_path(&format!("{}/repo/config", s.remote_base()))
                    .is_file()
            );
            let m0 = manifest(&src);
            fs::write(src.join("a.txt"), "alpha, changed").unwrap();
            let o = bk_ftp(
                &s,
                &[
                    os("backup"),
                    src.as_os_str(),
                    os("--repo"),
                    os(&url),
                    os("--json"),
                ],
            );
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(
                (v["id"].as_u64(), v["modified"].as_u64()),
                (Some(1), Some(1))
            );
            assert!(v["stored_bytes"].as_u64().unwrap() < 64 * 1024, "{v}");
            for (id, expected) in [("0", m0), ("1", manifest(&src))] {
                let out = tmp.path().join(format!("out{id}"));
                let o = bk_ftp(
                    &s,
                    &[
                        os("restore"),
                        os("ds"),
                        os("--repo"),
                        os(&url),
                        os("--to"),
                        out.as_os_str(),
                        os("--id"),
                        os(id),
                    ],
                );
                assert_eq!(o.status.code(), Some(0), "{kind:?}: {}", stderr(&o));
                assert_same(
                    &expected,
                    &manifest(&out),
                    &format!("{kind:?} tls={tls} snapshot {id}"),
                );
            }
            let o = bk_ftp(
                &s,
                &[os("check"), os("--read-data"), os("--repo"), os(&url)],
            );
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let o = bk_ftp(&s, &[os("snapshots"), os("--json"), os("--repo"), os(&url)]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v.as_array().unwrap().len(), 2);
            // The snapshot records where it came from, never a password.
            let snap_dir = s.local_path(&format!("{}/repo/snapshots/ds", s.remote_base()));
            for f in fs::read_dir(snap_dir).unwrap() {
                let text = fs::read_to_string(f.unwrap().path()).unwrap();
                assert!(!text.contains(s.password()) || !s.checks_password());
            }
        }
    }
}

#[test]
fn wrong_password_and_password_sources() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let url = repo_url(&s, false);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    tree(&src);
    let o = bk()
        .env("BK_FTP_PASSWORD", "not-the-password")
        .args([os("backup"), src.as_os_str(), os("--repo"), os(&url)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("530") && err.contains("login"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(!s.local_path("/repo").exists(), "nothing was created");

    // No password at all: a clear error before connecting.
    let o = bk()
        .args([os("snapshots"), os("--repo"), os(&url)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("BK_FTP_PASSWORD"), "{}", stderr(&o));
    assert!(stderr(&o).contains("terminal"), "{}", stderr(&o));

    // A password file readable by others is refused; a private one works.
    let pw = tmp.path().join("pw");
    fs::write(&pw, format!("{}\n", s.password())).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut fs::metadata(&pw).unwrap().permissions(),
        0o644,
    );
    fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = bk()
        .args([
            os("backup"),
            src.as_os_str(),
            os("--repo"),
            os(&url),
            os("--password-file"),
            pw.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = bk()
        .args([
            os("backup"),
            src.as_os_str(),
            os("--repo"),
            os(&url),
            os("--password-file"),
            pw.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains(s.password()));

    // A password inside the URL works, with a warning, and is never echoed.
    let with_pw = url.replacen(
        &format!("{}@", s.user()),
        &format!("{}:{}@", s.user(), s.password()),
        1,
    );
    let o = bk()
        .args([os("snapshots"), os("--repo"), os(&with_pw)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning") && !stderr(&o).contains(s.password()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn pull_a_dataset_from_ftp_and_push_a_restore_back() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The dataset lives on the server.
    let remote_ds = s.local_path("/datasets/folder2");
    fs::create_dir_all(remote_ds.join("sub dir")).unwrap();
    fs::write(remote_ds.join("a.txt"), "alpha").unwrap();
    fs::write(remote_ds.join("sub dir/b.bin"), random_bytes(9, 900_000)).unwrap();
    fs::write(remote_ds.join("sub dir/c.json"), "{}").unwrap();
    // Older than the first backup's second: listed mtimes are whole
    // seconds, and a file of the parent's second is read again.
    for f in ["a.txt", "sub dir/b.bin", "sub dir/c.json"] {
        let old = filetime::FileTime::from_unix_time(1_700_000_000, 0);
        filetime::set_file_mtime(remote_ds.join(f), old).unwrap();
    }
    let url = format!(
        "ftp://{}@{}:{}/datasets/folder2",
        s.user(),
        s.host(),
        s.port()
    );
    let repo = tmp.path().join("repo");
    let run = |args: &[&std::ffi::OsStr]| bk_ftp(&s, args);

    let o = run(&[
        os("backup"),
        os(&url),
        os("--repo"),
        repo.as_os_str(),
        os("--json"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v0: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v0["dataset"].as_str(), v0["files"].as_u64()),
        (Some("folder2"), Some(3))
    );
    assert_eq!(v0["bytes_read"], 900_000 + 5 + 2);
    assert!(!v0["source"].as_str().unwrap().contains(s.password()));

    // Nothing changed: no file content is downloaded.
    let o = run(&[
        os("backup"),
        os(&url),
        os("--repo"),
        repo.as_os_str(),
        os("--json"),
    ]);
    let v1: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v1["files_read"].as_u64(), v1["bytes_read"].as_u64()),
        (Some(0), Some(0)),
        "{v1}"
    );
    assert_eq!(v1["stored_bytes"].as_u64().map(|b| b < 4096), Some(true));

    // One file changes (size and mtime): only it is downloaded.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(remote_ds.join("a.txt"), "alpha v2").unwrap();
    let o = run(&[
        os("backup"),
        os(&url),
        os("--repo"),
        repo.as_os_str(),
        os("--json"),
    ]);
    let v2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            v2["files_read"].as_u64(),
            v2["bytes_read"].as_u64(),
            v2["modified"].as_u64()
        ),
        (Some(1), Some(8), Some(1)),
        "{v2}"
    );

    // Restore snapshot 0 back to the server, next to the dataset.
    let to = format!(
        "ftp://{}@{}:{}/datasets/folder2_recovered",
        s.user(),
        s.host(),
        s.port()
    );
    let o = run(&[
        os("restore"),
        os("folder2"),
        os("--repo"),
        repo.as_os_str(),
        os("--to"),
        os(&to),
        os("--id"),
        os("0"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let back = s.local_path("/datasets/folder2_recovered");
    assert_eq!(fs::read_to_string(back.join("a.txt")).unwrap(), "alpha");
    assert_eq!(
        fs::read(back.join("sub dir/b.bin")).unwrap(),
        random_bytes(9, 900_000)
    );
    assert_eq!(
        fs::read_to_string(back.join("sub dir/c.json")).unwrap(),
        "{}"
    );
    // No temporary upload names are left behind.
    let leftovers: Vec<_> = fs::read_dir(back.join("sub dir"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("bkftp-part"))
        .collect();
    assert!(leftovers.is_empty());
    // Restoring into the now non-empty directory needs --overwrite.
    let o = run(&[
        os("restore"),
        os("folder2"),
        os("--repo"),
        repo.as_os_str(),
        os("--to"),
        os(&to),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    let o = run(&[
        os("restore"),
        os("folder2"),
        os("--repo"),
        repo.as_os_str(),
        os("--to"),
        os(&to),
        os("--overwrite"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(back.join("a.txt")).unwrap(), "alpha v2");
    // A missing dataset directory is a clear error.
    let missing = format!("ftp://{}@{}:{}/datasets/nope", s.user(), s.host(), s.port());
    let o = run(&[os("backup"), os(&missing), os("--repo"), repo.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such directory"), "{}", stderr(&o));
}

/// Without BK_FTP_PASSWORD or a file, bk asks on its terminal: the prompt
/// goes to stderr, the typed password is not echoed, and it works.
#[test]
fn password_prompt_on_a_terminal() {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::Stdio;

    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    tree(&src);
    let url = repo_url(&s, false);
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the out-parameters.
    let rc = unsafe {
        libc::openpty(
            &raw mut master,
            &raw mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bk"))
        .env_remove("BK_FTP_PASSWORD")
        .env_remove("BK_REPO")
        .arg("backup")
        .arg(&src)
        .args([os("--repo"), os(&url), os("--json")])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the prompt on stderr, then type the password.
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut b = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("password for") {
        let n = err.read(&mut b).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&b[..n]);
    }
    let mut term = std::fs::File::from(master);
    writeln!(term, "{}", s.password()).unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    err.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "{seen}");
    assert!(
        seen.contains(&format!("{}@{}", s.user(), s.host())),
        "{seen}"
    );
    assert!(
        out.contains("\"id\": 0") || out.contains("\"id\":0"),
        "{out}"
    );
    assert!(!out.contains(s.password()) && !seen.contains(s.password()));
    // What the terminal showed: only the newline (ECHONL), not the password.
    // SAFETY: F_SETFL on an open descriptor.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::fcntl(term.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
    }
    let mut shown = Vec::new();
    let _ = term.read_to_end(&mut shown);
    assert!(
        !String::from_utf8_lossy(&shown).contains(s.password()),
        "the password was echoed: {:?}",
        String::from_utf8_lossy(&shown)
    );
}

/// A file that fails mid-upload (its second chunk is damaged in the
/// repository) is reported, and leaves neither a partial file under its
/// name nor a temporary upload on the server.
#[test]
fn a_file_that_fails_mid_upload_leaves_no_partial_upload_on_the_server() {
    use bk_core::Repository;
    use bk_core::repo::layout::pack_name;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("big.bin"), random_bytes(11, 6_000_000)).unwrap();
    fs::write(data.join("ok.txt"), "fine").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &data, &["--dataset", "ds"], 0);

    // Damage the second chunk of big.bin where its pack holds it.
    let r = Repository::open_local(&repo).unwrap();
    let idx = r.load_index().unwrap();
    let snap = r.snapshots(Some("ds")).unwrap().pop().unwrap();
    let root = r.read_tree(&idx, &snap.tree).unwrap();
    let node = root.find(b"big.bin").unwrap();
    assert!(
        node.content.len() >= 2,
        "one chunk only: the test needs two"
    );
    let loc = idx.get(&node.content[1]).unwrap();
    let pack = repo.join(pack_name(&loc.pack));
    let mut bytes = fs::read(&pack).unwrap();
    let at = (loc.entry.offset + loc.entry.length / 2) as usize;
    bytes[at] ^= 0xff;
    fs::write(&pack, bytes).unwrap();

    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let remote = format!("{}/out", s.remote_base().trim_end_matches('/'));
    let to = format!("ftp://{}@{}:{}{remote}", s.user(), s.host(), s.port());
    let o = bk_ftp(
        &s,
        &[
            os("restore"),
            os("ds"),
            os("--repo"),
            repo.as_os_str(),
            os("--to"),
            os(&to),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("big.bin"), "{err}");
    let out = s.local_path(&remote);
    assert_eq!(fs::read_to_string(out.join("ok.txt")).unwrap(), "fine");
    assert!(!out.join("big.bin").exists(), "a partial big.bin is there");
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("bkftp-part")),
        "a partial upload was left: {names:?}"
    );
}
