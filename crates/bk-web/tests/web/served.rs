//! The sign-in limiter and HTTPS, through a real server on loopback.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bk_core::location::RepoLocation;
use bk_web::{TlsMode, WebOptions};

use crate::common::*;

fn local() -> (tempfile::TempDir, WebOptions) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    make_dataset(&root.join("ds"));
    let o = WebOptions::new()
        .repo(RepoLocation::Local(tmp.path().join("repo")))
        .allow_root(&root);
    (tmp, o)
}

// ------------------------------------------------------- a real server

/// One HTTP/1.1 request over a fresh connection: (status, head, body).
fn http(addr: SocketAddr, req: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    parse(&out)
}

fn parse(out: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str, cookie: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        addr.port()
    )
}

fn post(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        addr.port(),
        body.len()
    )
}

fn cookie_of(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap_or_default()
}

fn csrf_in(body: &str) -> String {
    let i = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    body[i..i + 64].to_string()
}

/// `clients` threads guess for `for_` through a real server; returns the
/// guesses that were checked (answered 401) per second, and the number
/// refused unchecked (429).
fn guess(addr: SocketAddr, clients: usize, for_: Duration, password: bool) -> (f64, usize) {
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut checked, mut refused) = (0usize, 0usize);
                let (cookie, csrf) = if password {
                    let (_, head, body) = http(addr, &get(addr, "/login", ""));
                    (cookie_of(&head), csrf_in(&body))
                } else {
                    (String::new(), String::new())
                };
                let mut n = 0;
                while t0.elapsed() < for_ && n < 200 {
                    n += 1;
                    let req = if password {
                        post(
                            addr,
                            "/login",
                            &cookie,
                            &format!("csrf={csrf}&password=wrong-guess-{i}-{n}"),
                        )
                    } else {
                        get(addr, &format!("/login?token={:064x}", i * 1000 + n), "")
                    };
                    match http(addr, &req).0 {
                        401 => checked += 1,
                        429 => {
                            refused += 1;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        s => panic!("a guess was answered {s}"),
                    }
                }
                (checked, refused)
            })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for t in threads {
        let (c, r) = t.join().unwrap();
        checked += c;
        refused += r;
    }
    (checked as f64 / t0.elapsed().as_secs_f64(), refused)
}

/// Poll until the right credential signs in (it may have to wait out the
/// backoff the guesses earned this address); returns how long it took.
fn sign_in_after(addr: SocketAddr, password: Option<&str>) -> Duration {
    let t0 = Instant::now();
    loop {
        let (status, head, _) = match password {
            Some(pw) => {
                let (_, head, body) = http(addr, &get(addr, "/login", ""));
                let c = cookie_of(&head);
                http(
                    addr,
                    &post(
                        addr,
                        "/login",
                        &c,
                        &format!("csrf={}&password={pw}", csrf_in(&body)),
                    ),
                )
            }
            None => http(addr, &get(addr, &format!("/login?token={TOKEN}"), "")),
        };
        if status == 303 {
            assert!(
                head.lines().any(|l| l.eq_ignore_ascii_case("location: /")),
                "{head}"
            );
            return t0.elapsed();
        }
        assert_eq!(status, 429, "{head}");
        assert!(t0.elapsed() < Duration::from_secs(30), "never let in");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[actix_web::test]
async fn parallel_guessing_is_rate_limited() {
    for password in [false, true] {
        let (_tmp, mut opts) = local();
        opts = opts.listen("127.0.0.1:0".parse().unwrap());
        if password {
            opts = opts.ui_password("the right password");
        }
        let st = state(opts);
        let (server, addr) = bk_web::serve(st.clone()).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let clients = if password { 50 } else { 200 };
        let (rate, refused) = actix_web::rt::task::spawn_blocking(move || {
            guess(addr, clients, Duration::from_secs(2), password)
        })
        .await
        .unwrap();
        eprintln!(
            "password={password}: {clients} clients: {rate:.1} checked guesses/s, {refused} refused unchecked"
        );
        assert!(rate < 20.0, "{rate} guesses a second");
        assert!(rate >= 1.0, "guesses are still answered: {rate}");
        assert!(refused > 0, "the queue is bounded");
        let pw = password.then_some("the+right+password");
        let took = actix_web::rt::task::spawn_blocking(move || sign_in_after(addr, pw))
            .await
            .unwrap();
        eprintln!("password={password}: signed in {took:?} after the guesses");
        handle.stop(false).await;
    }
}

/// Accepts exactly the certificate with this SHA-256 fingerprint.
#[derive(Debug)]
struct Pinned(String, Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let d = ring::digest::digest(&ring::digest::SHA256, end_entity);
        let fp: Vec<String> = d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        if fp.join(":") == self.0 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

fn https(addr: SocketAddr, fingerprint: &str, req: &str) -> Result<(u16, String, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(fingerprint.to_string(), provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // Some servers close without close_notify; what came is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(parse(&out))
}

#[actix_web::test]
async fn https_with_the_generated_certificate() {
    let (tmp, opts) = local();
    let dir = tmp.path().join("state");
    let st = state(
        opts.listen("127.0.0.1:0".parse().unwrap())
            .tls(TlsMode::On)
            .state_dir(&dir),
    );
    let fp = st.tls_fingerprint().unwrap().to_string();
    let (server, addr) = bk_web::serve(st.clone()).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    assert_eq!(
        st.login_url().unwrap(),
        format!("https://127.0.0.1:{}/login?token={TOKEN}", addr.port())
    );
    let fp2 = fp.clone();
    let (signed_in, plain, wrong_pin) = actix_web::rt::task::spawn_blocking(move || {
        let a = https(addr, &fp2, &get(addr, &format!("/login?token={TOKEN}"), "")).unwrap();
        let cookie = cookie_of(&a.1);
        let page = https(addr, &fp2, &get(addr, "/", &cookie)).unwrap();
        let plain = std::net::TcpStream::connect(addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(get(addr, "/", "").as_bytes())?;
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            Ok(out)
        });
        let wrong = https(
            addr,
            &format!("{}00", "00:".repeat(31)),
            &get(addr, "/", ""),
        );
        ((a, page), plain.unwrap_or_default(), wrong)
    })
    .await
    .unwrap();
    let ((status, head, _), (page_status, _, page)) = signed_in;
    assert_eq!(status, 303, "{head}");
    let set = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(
        set.contains("; Secure") && set.contains("SameSite=Lax") && set.contains("HttpOnly"),
        "{set}"
    );
    assert_eq!(page_status, 200);
    assert!(page.contains("action=\"/connect\""), "{page}");
    assert!(
        !String::from_utf8_lossy(&plain).contains("/connect"),
        "plain HTTP is not served"
    );
    assert!(wrong_pin.is_err(), "the client really checks the pin");
    handle.stop(false).await;
    // The certificate was kept, key private, and is served again.
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key & 0o777, 0o600);
    let dirmode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(dirmode & 0o777, 0o700);
    let again = state(WebOptions::new().tls(TlsMode::On).state_dir(&dir));
    assert_eq!(again.tls_fingerprint(), Some(fp.as_str()));
}
