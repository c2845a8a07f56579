// tidy: long file: the FTP compatibility suite, one test per behaviour, run against every server of the matrix
//! bk-ftp against real FTP servers started by bk-testkit: the embedded
//! libunftp server by default, Debian's pure-ftpd, vsftpd and proftpd when
//! `BK_FTP_SERVERS` names them (CI does).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bk_ftp::{
    Direction, EntryKind, ErrorKind, FtpClient, FtpConfig, FtpUrl, Pool, TransferOptions, compare,
    download_tree, mirror, upload_tree, walk_local, walk_remote,
};
use bk_testkit::{ServerKind, ServerOptions, TestServer, servers_under_test};

/// Every server under test, plain and (where supported) with FTPS.
fn servers() -> Vec<(ServerKind, bool)> {
    let mut out = Vec::new();
    for k in servers_under_test() {
        out.push((k, false));
        if k.supports_tls() {
            out.push((k, true));
        }
    }
    out
}

fn start(kind: ServerKind, tls: bool) -> TestServer {
    let opts = if tls {
        ServerOptions::tls()
    } else {
        ServerOptions::default()
    };
    TestServer::start(kind, opts).unwrap_or_else(|e| panic!("starting {kind:?}: {e}"))
}

fn url_of(s: &TestServer, path: &str) -> FtpUrl {
    let scheme = if s.tls() { "ftps" } else { "ftp" };
    let mut u = FtpUrl::parse(&format!(
        "{scheme}://{}@{}:{}{}",
        s.user(),
        s.host(),
        s.port(),
        path
    ))
    .unwrap();
    u.set_password(s.password());
    u
}

fn config_of(s: &TestServer) -> FtpConfig {
    let mut c = FtpConfig::default()
        .connections(4)
        .retries(3, Duration::from_millis(50))
        .timeouts(Duration::from_secs(10), Duration::from_secs(30));
    if let Some(ca) = s.ca_cert() {
        // vsftpd keeps its default require_ssl_reuse=YES: TLS 1.2 sessions
        // can be resumed by the data connections, TLS 1.3 tickets cannot.
        c = c.ca_file(ca).tls12_only(s.kind() == ServerKind::Vsftpd);
    }
    c
}

fn base(s: &TestServer, sub: &str) -> String {
    let b = s.remote_base().trim_end_matches('/');
    format!("{b}/{sub}")
}

/// A tree with nested and empty directories, empty files, awkward names
/// and `n` small files.
fn make_tree(root: &Path, n: usize) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::write(root.join("empty file"), b"").unwrap();
    fs::write(
        root.join("a/b/c/deep.bin"),
        (0..200_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(root.join("with space.txt"), b"spaces").unwrap();
    fs::write(root.join("ünïcödé 名前.txt"), "unicode".as_bytes()).unwrap();
    fs::write(root.join("-leading-dash"), b"dash").unwrap();
    // At most 2,500 per directory: pure-ftpd truncates listings at 10,000.
    for i in 0..n {
        let dir = if i < 2500 {
            "many".to_string()
        } else {
            format!("many{}", i / 2500)
        };
        fs::create_dir_all(root.join(&dir)).unwrap();
        fs::write(
            root.join(format!("{dir}/f{i:05}.json")),
            format!("{{\"i\": {i}}}\n").repeat(1 + i % 7),
        )
        .unwrap();
    }
}

fn assert_same_files(a: &Path, b: &Path, what: &str) {
    let ta = walk_local(a).unwrap();
    let tb = walk_local(b).unwrap();
    let ka: Vec<_> = ta.keys().collect();
    let kb: Vec<_> = tb.keys().collect();
    assert_eq!(ka, kb, "{what}: file sets differ");
    for (p, e) in &ta {
        if e.kind == EntryKind::File {
            assert!(
                fs::read(a.join(p)).unwrap() == fs::read(b.join(p)).unwrap(),
                "{what}: {p} differs"
            );
        }
    }
}

fn files_in_tree(n: usize, kind: ServerKind) -> usize {
    // The embedded server takes ~40 ms per data connection (10,000 files
    // would take minutes): it gets a smaller tree, the real servers all of it.
    if kind == ServerKind::Embedded {
        n.min(300)
    } else {
        n
    }
}

#[test]
fn tree_round_trip_with_mtimes() {
    for (kind, tls) in servers() {
        let s = start(kind, tls);
        let what = format!("{kind:?} tls={tls}");
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, files_in_tree(10_000, kind));
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        fs::File::options()
            .write(true)
            .open(src.join("with space.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let remote = base(&s, "tree");
        let pool = Pool::new(url_of(&s, &remote), config_of(&s));
        let done = Arc::new(AtomicU64::new(0));
        let d2 = done.clone();
        let opts = TransferOptions::default().progress(move |p| {
            assert!(p.files_done <= p.files_total && p.bytes_done <= p.bytes_total);
            d2.store(p.files_done, Ordering::SeqCst);
        });
        let up = upload_tree(&pool, &src, &remote, &opts)
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", s.log()));
        let nfiles = walk_local(&src)
            .unwrap()
            .values()
            .filter(|e| e.kind == EntryKind::File)
            .count() as u64;
        assert_eq!(up.files, nfiles, "{what}");
        assert_eq!(done.load(Ordering::SeqCst), nfiles, "{what}: progress");
        // What the server stored is what we sent.
        assert_same_files(&src, &s.local_path(&remote), &what);

        let mut c = FtpClient::connect(&url_of(&s, "/"), &config_of(&s)).unwrap();
        // mtime up: set with MFMT (or vsftpd's MDTM) where the server can.
        let remote_t = c.mtime(&format!("{remote}/with space.txt")).unwrap();
        if c.features().mfmt || kind == ServerKind::Vsftpd {
            assert_eq!(remote_t, old, "{what}: remote mtime");
        }
        // Listing both ways agrees.
        let rt = walk_remote(&pool, &remote, true).unwrap();
        let lt = walk_local(&src).unwrap();
        assert_eq!(
            rt.keys().collect::<Vec<_>>(),
            lt.keys().collect::<Vec<_>>(),
            "{what}: listing"
        );
        assert_eq!(rt["a/b/c/deep.bin"].size, 200_000);
        assert_eq!(rt["empty dir"].kind, EntryKind::Dir);

        let back = tmp.path().join("back");
        let down = download_tree(&pool, &remote, &back, &TransferOptions::default()).unwrap();
        assert_eq!(down.files, nfiles, "{what}");
        assert_same_files(&src, &back, &what);
        // mtime down: the local copy gets the server's mtime.
        let got = fs::metadata(back.join("with space.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(got, remote_t, "{what}: local mtime after download");
        // And the comparison sees no differences.
        let again = walk_remote(&pool, &remote, true).unwrap();
        let diff = compare(&walk_local(&back).unwrap(), &again, Duration::from_secs(2));
        assert!(diff.is_empty(), "{what}: {diff:?}");
    }
}

#[test]
fn mirror_with_and_without_delete() {
    for (kind, tls) in servers() {
        let s = start(kind, tls);
        let what = format!("{kind:?} tls={tls}");
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, 20);
        let remote = base(&s, "mirror");
        let pool = Pool::new(url_of(&s, &remote), config_of(&s));
        let first = mirror(
            &pool,
            Direction::Upload,
            &src,
            &remote,
            &TransferOptions::default(),
        )
        .unwrap();
        assert_eq!(first.diff.deleted.len(), 0);
        // Nothing changed: nothing moves.
        let again = mirror(
            &pool,
            Direction::Upload,
            &src,
            &remote,
            &TransferOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (again.files, again.bytes),
            (0, 0),
            "{what}: {:?}",
            again.diff
        );
        // Change one file (same size, newer mtime), add one, delete one.
        std::thread::sleep(Duration::from_millis(2500));
        fs::write(src.join("with space.txt"), b"SPACES").unwrap();
        fs::write(src.join("a/new.txt"), b"new").unwrap();
        fs::remove_file(src.join("many/f00003.json")).unwrap();
        let m = mirror(
            &pool,
            Direction::Upload,
            &src,
            &remote,
            &TransferOptions::default(),
        )
        .unwrap();
        assert_eq!(m.diff.added, ["a/new.txt"], "{what}");
        assert_eq!(m.diff.modified, ["with space.txt"], "{what}");
        assert_eq!(m.diff.deleted, ["many/f00003.json"], "{what}");
        assert_eq!((m.files, m.deleted), (2, 0));
        assert!(
            s.local_path(&format!("{remote}/many/f00003.json")).exists(),
            "kept without delete"
        );
        let m = mirror(
            &pool,
            Direction::Upload,
            &src,
            &remote,
            &TransferOptions::default().delete(true),
        )
        .unwrap();
        assert_eq!((m.files, m.deleted), (0, 1), "{what}: {:?}", m.diff);
        assert!(!s.local_path(&format!("{remote}/many/f00003.json")).exists());
        assert_same_files(&src, &s.local_path(&remote), &what);
        // And down: a local copy mirrored from the server, extras deleted.
        let down = tmp.path().join("down");
        fs::create_dir_all(down.join("stale dir")).unwrap();
        fs::write(down.join("stale dir/x"), b"x").unwrap();
        let d = mirror(
            &pool,
            Direction::Download,
            &down,
            &remote,
            &TransferOptions::default().delete(true),
        )
        .unwrap();
        assert!(d.deleted >= 1);
        assert_same_files(&src, &down, &what);
    }
}

#[test]
fn list_fallback_matches_mlsd() {
    for kind in servers_under_test() {
        let s = start(kind, false);
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, 5);
        let remote = base(&s, "list");
        let pool = Pool::new(url_of(&s, &remote), config_of(&s));
        upload_tree(&pool, &src, &remote, &TransferOptions::default()).unwrap();
        let mut c = FtpClient::connect(&url_of(&s, "/"), &config_of(&s)).unwrap();
        let mut via_list = c.list_with_list(&remote).unwrap();
        let mut via_default = c.list(&remote).unwrap();
        via_list.sort_by(|a, b| a.name.cmp(&b.name));
        via_default.sort_by(|a, b| a.name.cmp(&b.name));
        let names = |v: &Vec<bk_ftp::RemoteEntry>| {
            v.iter()
                .map(|e| (e.name.clone(), e.kind, e.size))
                .collect::<Vec<_>>()
        };
        let expected: Vec<_> = {
            let mut v: Vec<_> = fs::read_dir(&src)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            via_list.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            expected,
            "{kind:?} LIST"
        );
        let dirs_sized = |v: Vec<(String, EntryKind, u64)>| {
            v.into_iter()
                .map(|(n, k, sz)| (n, k, if k == EntryKind::Dir { 0 } else { sz }))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            dirs_sized(names(&via_list)),
            dirs_sized(names(&via_default)),
            "{kind:?}"
        );
    }
}

#[test]
fn wrong_password_is_a_clear_error_without_retries() {
    for (kind, tls) in servers() {
        let s = start(kind, tls);
        if !s.checks_password() {
            continue;
        }
        let mut url = url_of(&s, "/");
        url.set_password("definitely-wrong-pw");
        let pool = Pool::new(url, config_of(&s));
        let started = std::time::Instant::now();
        let err = pool.run(true, |c| c.list("/")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{kind:?}: {err}");
        assert_eq!(err.code(), Some(530), "{err}");
        assert_eq!(pool.connects(), 1, "a refused login is not retried");
        assert!(started.elapsed() < Duration::from_secs(10));
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("definitely-wrong-pw") && !shown.contains(s.password()),
            "{shown}"
        );
        assert!(shown.contains(s.user()), "names the user: {shown}");
    }
}

#[test]
fn missing_paths_and_permission_denied() {
    for kind in servers_under_test() {
        let s = start(kind, false);
        let mut c = FtpClient::connect(&url_of(&s, "/"), &config_of(&s)).unwrap();
        let missing = base(&s, "no/such/file");
        assert!(c.stat(&missing).unwrap().is_none(), "{kind:?}");
        let tmp = tempfile::tempdir().unwrap();
        let err = c
            .get_file(&missing, &tmp.path().join("x"), None)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{kind:?}: {err}");
        assert_eq!(err.code(), Some(550));
        assert!(err.to_string().contains("no/such/file"), "{err}");
        assert!(!tmp.path().join("x").exists());
        let pool = Pool::new(url_of(&s, "/"), config_of(&s));
        let err = download_tree(
            &pool,
            &missing,
            &tmp.path().join("y"),
            &TransferOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), Some(550), "{kind:?}: {err}");

        // Permission denied needs a server process that is not root.
        if kind != ServerKind::Embedded {
            let ro = s.local_path(&base(&s, "readonly"));
            fs::create_dir_all(&ro).unwrap();
            s.hand_over().unwrap();
            let mut perms = fs::metadata(&ro).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
            fs::set_permissions(&ro, perms).unwrap();
            let f = tmp.path().join("f");
            fs::write(&f, b"data").unwrap();
            let err = c
                .put_file(&f, &format!("{}/f", base(&s, "readonly")))
                .unwrap_err();
            assert!(!err.is_transient(), "{kind:?}: {err}");
            assert!(
                matches!(err.code(), Some(550 | 553 | 450)),
                "{kind:?}: {err}"
            );
        }
    }
}

#[test]
fn interrupted_transfers_resume() {
    for (kind, tls) in servers() {
        let s = start(kind, tls);
        let what = format!("{kind:?} tls={tls}");
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let local = tmp.path().join("big.bin");
        fs::write(&local, &data).unwrap();
        let dir = base(&s, "resume");
        fs::create_dir_all(s.local_path(&dir)).unwrap();
        // An upload cut off after 1 MB left its temporary file behind.
        let remote = format!("{dir}/big.bin");
        fs::write(
            s.local_path(&bk_ftp::temp_name(&remote)),
            &data[..1_000_000],
        )
        .unwrap();
        s.hand_over().unwrap();
        let mut c = FtpClient::connect(&url_of(&s, "/"), &config_of(&s)).unwrap();
        assert!(c.features().rest_stream, "{what}: REST STREAM");
        let sent = c.put_file(&local, &remote).unwrap();
        assert_eq!(sent, 2_000_000, "{what}: only the rest is sent");
        assert!(
            fs::read(s.local_path(&remote)).unwrap() == data,
            "{what}: resumed upload differs"
        );
        assert!(!s.local_path(&bk_ftp::temp_name(&remote)).exists());
        // A download cut off after 1.5 MB resumes too.
        let out = tmp.path().join("down.bin");
        fs::write(tmp.path().join(".down.bin.bkftp-part"), &data[..1_500_000]).unwrap();
        let entry = c.stat(&remote).unwrap().unwrap();
        assert_eq!(entry.size, data.len() as u64);
        let got = c.get_file(&remote, &out, Some(&entry)).unwrap();
        assert_eq!(got, 1_500_000, "{what}: only the rest is received");
        assert!(
            fs::read(&out).unwrap() == data,
            "{what}: resumed download differs"
        );
    }
}

#[test]
fn secrets_never_shown() {
    let mut url = FtpUrl::parse("ftps://carol:hunter2@127.0.0.1:1/x").unwrap();
    url.set_password("hunter3");
    let pool = Pool::new(url.clone(), FtpConfig::default().retries(1, Duration::ZERO));
    let err = pool.run(true, |c| c.list("/")).unwrap_err();
    for shown in [
        format!("{url}"),
        format!("{url:?}"),
        format!("{pool:?}"),
        format!("{err}"),
        format!("{err:?}"),
    ] {
        assert!(!shown.contains("hunter"), "{shown}");
    }
    assert_eq!(
        err.kind(),
        ErrorKind::Transient,
        "connection refused: {err}"
    );
}

#[test]
fn connection_cap_shrinks_the_pool_instead_of_failing() {
    if !servers_under_test().contains(&ServerKind::PureFtpd) {
        return; // the cap is pure-ftpd's -C; other servers are not asked for it
    }
    let opts = ServerOptions {
        extra_config: vec!["-C".into(), "2".into()],
        ..ServerOptions::default()
    };
    let s = TestServer::start(ServerKind::PureFtpd, opts).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 40);
    let remote = base(&s, "capped");
    let pool = Pool::new(url_of(&s, &remote), config_of(&s).connections(6));
    let r = upload_tree(&pool, &src, &remote, &TransferOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(r.files > 40);
    assert!(
        pool.limit() <= 2,
        "the pool shrank to the server's cap: {}",
        pool.limit()
    );
    assert_same_files(&src, &s.local_path(&remote), "capped");
}

/// A TCP proxy in front of a server that cuts the first `cuts` control
/// connections after `after` bytes from the server: a dropped connection
/// in the middle of a session, as a flaky network makes it.
struct CutProxy {
    port: u16,
}

impl CutProxy {
    fn start(target: String, cuts: usize, after: usize) -> CutProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, conn) in l.incoming().enumerate() {
                let Ok(client) = conn else { return };
                let Ok(server) = TcpStream::connect(&target) else {
                    return;
                };
                let cut = n < cuts;
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(k) = c2.read(&mut buf) {
                        if k == 0 || s2.write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    let _ = s2.shutdown(Shutdown::Write);
                });
                let (mut s3, mut c3) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1];
                    let mut sent = 0;
                    while let Ok(k) = s3.read(&mut buf) {
                        if k == 0 || c3.write_all(&buf[..k]).is_err() {
                            break;
                        }
                        sent += k;
                        if cut && sent >= after {
                            let _ = c3.shutdown(Shutdown::Both);
                            let _ = s3.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                    let _ = c3.shutdown(Shutdown::Write);
                });
            }
        });
        CutProxy { port }
    }
}

#[test]
fn dropped_control_connections_are_retried() {
    for kind in servers_under_test() {
        let s = start(kind, false);
        let proxy = CutProxy::start(s.addr(), 3, 600);
        let mut url = url_of(&s, "/");
        url.port = proxy.port;
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, 30);
        let remote = base(&s, "flaky");
        let pool = Pool::new(
            url.with_path(&remote),
            config_of(&s)
                .connections(2)
                .retries(6, Duration::from_millis(20)),
        );
        let r = upload_tree(&pool, &src, &remote, &TransferOptions::default())
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(r.files > 30);
        assert!(
            pool.connects() > 3,
            "{kind:?}: the cut connections were replaced ({})",
            pool.connects()
        );
        assert_same_files(
            &src,
            &s.local_path(&remote),
            &format!("{kind:?} through a cutting proxy"),
        );
    }
}

#[test]
fn a_listing_at_the_servers_cap_is_an_error_not_a_short_tree() {
    if !servers_under_test().contains(&ServerKind::PureFtpd) {
        return; // the 10,000-entry cap is pure-ftpd's
    }
    let s = TestServer::start(ServerKind::PureFtpd, ServerOptions::default()).unwrap();
    let dir = s.local_path("/big dir");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..10_050 {
        fs::write(dir.join(format!("{i}")), b"").unwrap();
    }
    s.hand_over().unwrap();
    let pool = Pool::new(url_of(&s, "/"), config_of(&s));
    let err = walk_remote(&pool, "/", false).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(err.to_string().contains("/big dir"), "{err}");
}

#[test]
fn pasv_with_an_unroutable_address_uses_the_control_connection() {
    for kind in servers_under_test() {
        if !matches!(kind, ServerKind::Embedded | ServerKind::PureFtpd) {
            continue; // the servers bk-testkit can make announce another address
        }
        // Nothing listens on 127.0.0.2: a client that trusted the PASV
        // reply would be refused.
        let opts = ServerOptions {
            passive_address: Some(std::net::Ipv4Addr::new(127, 0, 0, 2)),
            ..ServerOptions::default()
        };
        let s = TestServer::start(kind, opts).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, 10);
        let remote = base(&s, "nat");
        let pool = Pool::new(url_of(&s, &remote), config_of(&s).force_pasv(true));
        upload_tree(&pool, &src, &remote, &TransferOptions::default())
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let back = tmp.path().join("back");
        download_tree(&pool, &remote, &back, &TransferOptions::default()).unwrap();
        assert_same_files(
            &src,
            &back,
            &format!("{kind:?} behind a PASV address that does not route"),
        );
    }
}
