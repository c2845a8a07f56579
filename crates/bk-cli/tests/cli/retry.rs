//! Transient network failures over FTP (issue 10): a transfer cut on the
//! way is retried, printed once per failure and counted in the summary,
//! and a download cut short is never taken for a corrupt repository file.
//! The cuts are real: a proxy (bk-testkit's `CutProxy`) between bk and the
//! embedded server ends the data connections it is told to.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bk_core::Repository;
use bk_ftp::{FtpConfig, FtpUrl};
use bk_testkit::{CutProxy, Cuts, ServerKind, ServerOptions, TestServer};

use crate::common::*;

fn repo_url(s: &TestServer, port: u16) -> String {
    format!(
        "ftp://{}@127.0.0.1:{port}{}/repo",
        s.user(),
        s.remote_base().trim_end_matches('/')
    )
}

fn dataset(root: &Path) {
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a.txt"), "alpha").unwrap();
    fs::write(root.join("sub/b.bin"), random_bytes(7, 300_000)).unwrap();
    fs::write(root.join("sub/c.bin"), random_bytes(8, 90_000)).unwrap();
}

fn bk_backup(s: &TestServer, src: &Path, url: &str) -> std::process::Output {
    bk().env("BK_FTP_PASSWORD", s.password())
        .arg("backup")
        .arg(src)
        .args(["--repo", url, "--json"])
        .output()
        .unwrap()
}

#[test]
fn issue10_a_config_or_index_download_cut_midway_is_retried_not_called_corrupt() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    dataset(&src);
    let o = bk_backup(&s, &src, &repo_url(&s, s.port()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (name, part) in [("config", "/repo/config"), ("index", "/repo/index/")] {
        // The server completes the transfer; bk gets the first 40 bytes.
        let proxy =
            CutProxy::start(&s.addr(), Cuts::data("RETR", 1, 40).path_contains(part)).unwrap();
        let mut url = FtpUrl::parse(&repo_url(&s, proxy.port())).unwrap();
        url.set_password(s.password());
        let cfg = FtpConfig::default().retries(3, Duration::from_millis(10));
        let repo = Repository::open(Arc::new(bk_core::FtpBackend::new(url, cfg)))
            .unwrap_or_else(|e| panic!("{name} cut once: {e}"));
        let idx = repo
            .load_index()
            .unwrap_or_else(|e| panic!("{name} cut once: {e}"));
        // (Before, a cut index read was skipped as a damaged file: an empty
        // index, with a note.)
        assert!(!idx.is_empty(), "{name}: the index was read");
        let notes = repo.take_notes();
        assert!(notes.is_empty(), "{name}: {notes:?}");
        assert_eq!(proxy.data_cuts(), 1, "{name}: the cut happened");
        let retried = repo.take_retries();
        assert_eq!(retried.len(), 1, "{name}: {retried:?}");
        assert!(
            retried[0].starts_with(&format!("reading {name}"))
                && retried[0].contains(": attempt 1 failed: downloading ")
                && retried[0].contains("got 40 bytes, the server's SIZE said "),
            "{}",
            retried[0]
        );
    }
}

#[test]
fn issue10_a_backup_through_cut_uploads_completes_and_counts_its_retries() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    dataset(&src);
    // Two pack uploads arrive short (the server stores what came and says
    // 226): the size check catches them and they are sent again.
    let proxy = CutProxy::start(
        &s.addr(),
        Cuts::data("STOR", 2, 100).path_contains("/packs/"),
    )
    .unwrap();
    let o = bk_backup(&s, &src, &repo_url(&s, proxy.port()));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(proxy.data_cuts(), 2, "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("bk: retried "))
        .collect();
    assert_eq!(lines.len(), 2, "{err}");
    for l in &lines {
        assert!(
            l.starts_with("bk: retried writing packs/")
                && l.contains(": confirming upload of ")
                && l.contains("server has 100 bytes, expected "),
            "{l}"
        );
        assert!(!l.contains(s.password()), "{l}");
    }
    assert!(
        err.contains(", 2 transfer(s) retried"),
        "the summary line counts them: {err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["retries"], 2, "{v}");
    assert_eq!(v["files"], 3, "the other fields stay: {v}");
    // Restored over a direct connection: byte for byte the dataset.
    let out = tmp.path().join("out");
    let o = bk()
        .env("BK_FTP_PASSWORD", s.password())
        .args(["restore", "ds", "--repo", &repo_url(&s, s.port()), "--to"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same(&manifest(&src), &manifest(&out), "restored after retries");
    // Without cuts, nothing is retried and the JSON says so.
    fs::write(src.join("a.txt"), "alpha 2").unwrap();
    let o = bk_backup(&s, &src, &repo_url(&s, s.port()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("retried"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["retries"], 0, "{v}");
}

#[test]
fn issue10_a_lock_whose_rename_or_delete_reply_was_lost_is_taken_and_released() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    dataset(&src);
    let o = bk_backup(&s, &src, &repo_url(&s, s.port()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lock_file = s.local_path(&format!(
        "{}/repo/locks/exclusive",
        s.remote_base().trim_end_matches('/')
    ));
    // The server renames the lock into place (then deletes it), but the
    // reply never arrives: the retry finds the work done.
    for verb in ["RNTO", "DELE"] {
        let proxy = CutProxy::start(&s.addr(), Cuts::replies_lost(&[verb])).unwrap();
        let mut url = FtpUrl::parse(&repo_url(&s, proxy.port())).unwrap();
        url.set_password(s.password());
        let cfg = FtpConfig::default().retries(3, Duration::from_millis(10));
        let repo = Repository::open(Arc::new(bk_core::FtpBackend::new(url, cfg))).unwrap();
        let lock = repo
            .lock("test")
            .unwrap_or_else(|e| panic!("{verb} reply lost: {e}"));
        assert!(lock_file.exists());
        lock.release()
            .unwrap_or_else(|e| panic!("{verb} reply lost: {e}"));
        assert!(!lock_file.exists());
        assert_eq!(proxy.replies_lost(), 1);
        let retried = repo.take_retries();
        assert_eq!(retried.len(), 1, "{retried:?}");
        let expect = match verb {
            "RNTO" => "writing locks/exclusive: attempt 1 failed: renaming ",
            _ => "removing locks/exclusive: attempt 1 failed: ",
        };
        assert!(retried[0].starts_with(expect), "{}", retried[0]);
    }
}
