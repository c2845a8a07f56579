//! Starts every server of `servers_under_test()` (plain and, where the kind
//! can, FTPS) and checks login, upload, listing, download and the local file
//! mapping with suppaftp; and that a wrong password gets 530.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use bk_testkit::{ServerKind, ServerOptions, TestServer, servers_under_test};
use suppaftp::rustls::pki_types::CertificateDer;
use suppaftp::rustls::pki_types::pem::PemObject;
use suppaftp::rustls::{self, ClientConfig, RootCertStore};
use suppaftp::types::FileType;
use suppaftp::{FtpError, RustlsConnector, RustlsFtpStream, Status};

/// Which TLS protocol versions the client offers.
#[derive(Debug, Clone, Copy)]
enum ClientTls {
    Off,
    /// TLS 1.3 and 1.2 (rustls' default).
    Default,
    /// TLS 1.2 only: copes with vsftpd's `require_ssl_reuse=YES`.
    Tls12,
}

fn connect(server: &TestServer, tls: ClientTls) -> Result<RustlsFtpStream, FtpError> {
    let stream = RustlsFtpStream::connect(server.addr())?;
    let versions: &[&rustls::SupportedProtocolVersion] = match tls {
        ClientTls::Off => return Ok(stream),
        ClientTls::Default => rustls::DEFAULT_VERSIONS,
        ClientTls::Tls12 => &[&rustls::version::TLS12],
    };
    let ca = server.ca_cert().expect("a TLS server has a certificate");
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("read cert.pem"))
        .expect("add root");
    let config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    stream.into_secure(RustlsConnector::from(Arc::new(config)), "localhost")
}

fn round_trip(kind: ServerKind, opts: ServerOptions, tls: ClientTls) {
    let t0 = Instant::now();
    let server = TestServer::start(kind, opts).unwrap_or_else(|e| panic!("start {kind}: {e}"));
    let started = t0.elapsed();
    assert_eq!(server.kind(), kind);
    assert_eq!(server.host(), "127.0.0.1");
    let fail = |what: &str, e: FtpError| -> ! {
        panic!("{kind} {tls:?}: {what}: {e}\nserver log:\n{}", server.log())
    };

    let mut ftp = connect(&server, tls).unwrap_or_else(|e| fail("connect", e));
    ftp.login(server.user(), server.password())
        .unwrap_or_else(|e| fail("login", e));
    ftp.transfer_type(FileType::Binary)
        .unwrap_or_else(|e| fail("TYPE I", e));

    // Bytes that ASCII mode would mangle.
    let data: Vec<u8> = (0..70_000u32)
        .map(|i| (i * 7 % 251) as u8)
        .chain(*b"a\nb\r\nc\n")
        .collect();
    let base = server.remote_base().trim_end_matches('/');
    let dir = format!("{base}/smoke dir");
    let remote = format!("{dir}/file.bin");
    ftp.mkdir(&dir).unwrap_or_else(|e| fail("MKD", e));
    let written = ftp
        .put_file(&remote, &mut Cursor::new(&data))
        .unwrap_or_else(|e| fail("STOR", e));
    assert_eq!(written, data.len() as u64);
    // More uploads in a row: against vsftpd's require_ssl_reuse=YES a TLS 1.3
    // client runs out of session tickets on the 3rd upload.
    for i in 2..=4 {
        let name = format!("{dir}/more-{i}.bin");
        ftp.put_file(&name, &mut Cursor::new(&data[..i * 100]))
            .unwrap_or_else(|e| fail("STOR more", e));
        assert_eq!(
            std::fs::read(server.local_path(&name)).expect("local more"),
            &data[..i * 100]
        );
    }

    let names = ftp.nlst(Some(&dir)).unwrap_or_else(|e| fail("NLST", e));
    assert!(
        names.iter().any(|n| n.ends_with("file.bin")),
        "{kind}: NLST {dir}: {names:?}"
    );
    // pure-ftpd splits LIST arguments at spaces ("ls" options, globs), so
    // `LIST /smoke dir` lists nothing there: CWD, then LIST without argument.
    ftp.cwd(&dir).unwrap_or_else(|e| fail("CWD", e));
    let lines = ftp.list(None).unwrap_or_else(|e| fail("LIST", e));
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(" file.bin") && l.contains(&format!(" {} ", data.len()))),
        "{kind}: LIST in {dir}: {lines:?}"
    );
    ftp.cwd("/").unwrap_or_else(|e| fail("CWD /", e));
    assert_eq!(
        ftp.size(&remote).unwrap_or_else(|e| fail("SIZE", e)),
        data.len()
    );

    let back = ftp
        .retr_as_buffer(&remote)
        .unwrap_or_else(|e| fail("RETR", e))
        .into_inner();
    assert!(back == data, "{kind}: downloaded bytes differ");
    // A second download: vsftpd's session-reuse check bites on later data connections.
    let again = ftp
        .retr_as_buffer(&remote)
        .unwrap_or_else(|e| fail("RETR 2", e))
        .into_inner();
    assert!(again == data, "{kind}: second download differs");

    let local = server.local_path(&remote);
    assert!(local.starts_with(server.root()), "{}", local.display());
    assert!(
        std::fs::read(&local).expect("local file") == data,
        "{kind}: {} differs",
        local.display()
    );

    // A file prepared locally is visible over FTP, and (after hand_over) replaceable.
    let prepared = format!("{dir}/prepared.txt");
    std::fs::write(server.local_path(&prepared), b"from the test").expect("write prepared");
    server.hand_over().expect("hand_over");
    let got = ftp
        .retr_as_buffer(&prepared)
        .unwrap_or_else(|e| fail("RETR prepared", e))
        .into_inner();
    assert_eq!(got, b"from the test");
    ftp.put_file(&prepared, &mut Cursor::new(b"replaced"))
        .unwrap_or_else(|e| fail("STOR over prepared", e));
    assert_eq!(
        std::fs::read(server.local_path(&prepared)).expect("read"),
        b"replaced"
    );
    ftp.rm(&prepared).unwrap_or_else(|e| fail("DELE", e));
    assert!(!server.local_path(&prepared).exists());
    ftp.quit().unwrap_or_else(|e| fail("QUIT", e));

    if server.checks_password() {
        let mut ftp = connect(&server, tls).unwrap_or_else(|e| fail("connect 2", e));
        match ftp.login(server.user(), "wrong-password") {
            Err(FtpError::UnexpectedResponse(resp)) => {
                assert_eq!(resp.status, Status::NotLoggedIn, "{kind}: {resp:?}");
                assert_eq!(resp.status.code(), 530);
            }
            other => panic!("{kind}: wrong password: {other:?}"),
        }
    } else {
        assert_eq!(kind, ServerKind::Vsftpd);
    }
    eprintln!(
        "{kind} tls={tls:?}: started in {started:?}, whole test {:?}",
        t0.elapsed()
    );
}

/// Runs `f` for `kind` when `BK_FTP_SERVERS` selects it.
fn with(kind: ServerKind, f: impl FnOnce()) {
    if servers_under_test().contains(&kind) {
        f();
    } else {
        eprintln!("{kind} not selected by BK_FTP_SERVERS: skipped");
    }
}

#[test]
fn embedded_plain() {
    with(ServerKind::Embedded, || {
        round_trip(
            ServerKind::Embedded,
            ServerOptions::default(),
            ClientTls::Off,
        )
    });
}

#[test]
fn embedded_tls() {
    with(ServerKind::Embedded, || {
        round_trip(
            ServerKind::Embedded,
            ServerOptions::tls(),
            ClientTls::Default,
        )
    });
}

#[test]
fn pure_ftpd_plain() {
    with(ServerKind::PureFtpd, || {
        round_trip(
            ServerKind::PureFtpd,
            ServerOptions::default(),
            ClientTls::Off,
        )
    });
}

#[test]
fn pure_ftpd_tls() {
    with(ServerKind::PureFtpd, || {
        round_trip(
            ServerKind::PureFtpd,
            ServerOptions::tls(),
            ClientTls::Default,
        )
    });
}

#[test]
fn vsftpd_plain() {
    with(ServerKind::Vsftpd, || {
        round_trip(ServerKind::Vsftpd, ServerOptions::default(), ClientTls::Off)
    });
}

/// vsftpd's default `require_ssl_reuse=YES`: a TLS 1.2 client copes.
#[test]
fn vsftpd_tls_reuse_required() {
    with(ServerKind::Vsftpd, || {
        round_trip(ServerKind::Vsftpd, ServerOptions::tls(), ClientTls::Tls12)
    });
}

/// With `require_ssl_reuse=NO`, TLS 1.3 works too.
#[test]
fn vsftpd_tls_no_reuse() {
    with(ServerKind::Vsftpd, || {
        let opts = ServerOptions {
            vsftpd_require_ssl_reuse: false,
            ..ServerOptions::tls()
        };
        round_trip(ServerKind::Vsftpd, opts, ClientTls::Default);
    });
}

/// What the option above is for: with vsftpd's default `require_ssl_reuse=YES`,
/// a TLS 1.3 client fails on the 3rd upload in a row ("522 SSL connection
/// failed: session reuse required"; suppaftp reports status 0 for 522).
#[test]
fn vsftpd_tls13_fails_when_reuse_required() {
    with(ServerKind::Vsftpd, || {
        let server = TestServer::start(ServerKind::Vsftpd, ServerOptions::tls()).expect("start");
        let mut ftp = connect(&server, ClientTls::Default).expect("connect");
        ftp.login(server.user(), server.password()).expect("login");
        ftp.transfer_type(FileType::Binary).expect("TYPE I");
        let failed = (0..6).find_map(|i| {
            ftp.put_file(format!("/upload/f{i}"), &mut Cursor::new(b"abc"))
                .err()
                .map(|e| (i, e.to_string()))
        });
        let (i, err) = failed.expect("a TLS 1.3 upload to fail with require_ssl_reuse=YES");
        assert!(
            err.contains("522") && err.contains("reuse"),
            "upload {i}: {err}"
        );
    });
}

#[test]
fn proftpd_plain() {
    with(ServerKind::Proftpd, || {
        round_trip(
            ServerKind::Proftpd,
            ServerOptions::default(),
            ClientTls::Off,
        )
    });
}

#[test]
fn proftpd_tls_is_refused() {
    with(ServerKind::Proftpd, || {
        let err = TestServer::start(ServerKind::Proftpd, ServerOptions::tls())
            .expect_err("no FTPS for proftpd");
        assert!(
            matches!(
                err,
                bk_testkit::StartError::TlsUnsupported(ServerKind::Proftpd)
            ),
            "{err}"
        );
    });
}

/// Several servers at once get distinct ports and passive ranges, and
/// dropping one leaves the others running.
#[test]
fn concurrent_servers() {
    let kind = servers_under_test()[0];
    let a = TestServer::start(kind, ServerOptions::default()).expect("start a");
    let b = TestServer::start(kind, ServerOptions::default()).expect("start b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.root(), b.root());
    let b_root = b.root().to_owned();
    drop(b);
    if std::env::var_os("BK_TESTKIT_KEEP_TMP").is_none() {
        assert!(!b_root.exists(), "temp dir removed on drop");
    }
    let mut ftp = connect(&a, ClientTls::Off).expect("a still up");
    ftp.login(a.user(), a.password()).expect("login a");
    ftp.quit().expect("quit");
}

#[test]
fn selection_parses() {
    assert_eq!("pure-ftpd".parse::<ServerKind>(), Ok(ServerKind::PureFtpd));
    assert_eq!("Embedded".parse::<ServerKind>(), Ok(ServerKind::Embedded));
    assert!("ftpd".parse::<ServerKind>().is_err());
    assert!(ServerKind::Embedded.is_installed());
    assert!(!servers_under_test().is_empty());
}

/// Dropping a server also ends sessions that are still connected (for the
/// external daemons: the forked session processes are killed too).
#[test]
fn drop_ends_connected_sessions() {
    for kind in servers_under_test() {
        let server = TestServer::start(kind, ServerOptions::default()).expect("start");
        let addr = server.addr();
        let mut ftp = connect(&server, ClientTls::Off).expect("connect");
        ftp.login(server.user(), server.password()).expect("login");
        ftp.noop().expect("noop while up");
        drop(server);
        assert!(ftp.noop().is_err(), "{kind}: session survived the drop");
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "{kind}: still listening on {addr}"
        );
    }
}
