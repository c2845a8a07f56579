//! Who may use the UI: the sign-in token, the Host and Origin checks, job
//! owners, the attempt limiter (measured through a real server), HTTPS with
//! the generated certificate, the job history and the access log.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::{Owner, Summary, TlsMode, WebOptions};

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

#[actix_web::test]
async fn without_the_sign_in_address_nothing_is_visible() {
    let (tmp, opts) = local();
    let st = state(opts);
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    // The user backs up; the job's title names the folder.
    let mut user = Browser::new();
    let r = user.get(&app, "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    user.post(&app, "/connect", &[("address", "")]).await;
    user.get(&app, "/").await;
    let ds = tmp.path().join("root/ds").canonicalize().unwrap();
    let id = user
        .post(
            &app,
            "/backup",
            &[
                ("side", "local"),
                ("path", ds.to_str().unwrap()),
                ("dataset", "ds"),
            ],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");
    assert!(user.get(&app, "/jobs").await.body.contains("ds"));

    let mut s = Browser::stranger();
    for page in [
        "/",
        "/browse",
        "/browse?side=local",
        "/jobs",
        &format!("/jobs/{id}"),
        &format!("/jobs/{id}/events"),
        "/backups?dataset=ds",
        "/snapshot?dataset=ds&id=0",
        "/download?dataset=ds&id=0&path=a.txt",
        "/restore?dataset=ds",
        "/backup?side=local",
    ] {
        let r = s.get(&app, page).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/login"),
            "{page}: {}",
            r.body
        );
        assert!(r.bytes.is_empty(), "{page}: {}", r.body);
        assert!(r.set_cookies().is_empty(), "{page}: no session is made");
    }
    assert_eq!(st.session_count(), 1, "only the user's session");
    let r = s.get(&app, "/login").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("How to get in"), "{}", r.body);
    assert!(r.body.contains("printed when it started"), "{}", r.body);
    let tmp_path = tmp.path().display().to_string();
    for hidden in [tmp_path.as_str(), "/jobs/", "Backup", "Recover"] {
        assert!(!r.body.contains(hidden), "{hidden}: {}", r.body);
    }
    // A POST without the sign-in is refused too.
    let r = s.post_raw(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A wrong token: refused, and still nothing visible.
    let wrong = format!("/login?token={}", "0".repeat(64));
    let r = s.get(&app, &wrong).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("not valid"), "{}", r.body);
    assert!(r.set_cookies().is_empty());
    assert_eq!(s.get(&app, "/jobs").await.location(), "/login");
    // The right one: a session cookie and a redirect that drops the token.
    let r = s.get(&app, &format!("/login?token={TOKEN}")).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    let c = r.set_cookies();
    assert!(
        c[0].contains("HttpOnly") && c[0].contains("SameSite=Lax"),
        "{c:?}"
    );
    assert!(!c[0].contains("Secure"), "plain HTTP on loopback: {c:?}");
    let r = s.get(&app, "/jobs").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(&format!("/jobs/{id}")), "{}", r.body);
}

#[actix_web::test]
async fn a_foreign_host_name_is_refused() {
    let (_tmp, opts) = local();
    let st = state(opts.public_name("nas.example"));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    for host in [
        "evil.example:8080",
        "127.0.0.1:8081",
        "nas.example:9999",
        "localhost.evil.example:8080",
    ] {
        let mut b = Browser::stranger();
        b.host = host.into();
        for page in ["/", "/static/style.css", &format!("/login?token={TOKEN}")] {
            let r = b.get(&app, page).await;
            assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{host} {page}");
            assert!(
                r.body.contains("does not answer for that name"),
                "{}",
                r.body
            );
            assert!(r.set_cookies().is_empty(), "{host}: signed in anyway");
        }
    }
    assert_eq!(st.session_count(), 0);
    for host in [
        "127.0.0.1:8080",
        "localhost:8080",
        "[::1]:8080",
        "nas.example:8080",
        "NAS.example:8080",
    ] {
        let mut b = Browser::new();
        b.host = host.into();
        let r = b.get(&app, "/").await;
        assert_eq!(r.status, StatusCode::OK, "{host}: {}", r.body);
    }
}

#[actix_web::test]
async fn a_post_from_another_site_is_refused() {
    let (_tmp, opts) = local();
    let st = state(opts);
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let csrf = b.csrf.clone();
    let connect = |h: (&'static str, &'static str)| {
        test::TestRequest::post()
            .uri("/connect")
            .insert_header(h)
            .set_form([("csrf", csrf.clone()), ("address", String::new())])
    };
    for h in [
        ("origin", "http://evil.example"),
        ("origin", "http://127.0.0.1:8080.evil.example"),
        ("origin", "https://127.0.0.1:8080"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = b.send(&app, connect(h)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{h:?}");
        assert!(r.body.contains("another web site"), "{h:?}: {}", r.body);
    }
    assert!(
        b.get(&app, "/").await.body.contains("action=\"/connect\""),
        "not connected"
    );
    let r = b
        .send(&app, connect(("origin", "http://127.0.0.1:8080")))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = b
        .send(
            &app,
            test::TestRequest::get()
                .uri("/jobs")
                .insert_header(("sec-fetch-site", "cross-site")),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a link from another site still opens a page"
    );
}

#[actix_web::test]
async fn another_owners_job_is_not_found() {
    let (_tmp, opts) = local();
    let st = state(opts);
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let theirs = st.jobs().spawn_as(
        Owner::named("someone else"),
        bk_web::JobKind::Backup,
        "their secret folder".into(),
        "theirs".into(),
        move |_, _| {
            rx.recv().ok();
            Ok(Summary::default())
        },
    );
    let mine = st.jobs().spawn(
        bk_web::JobKind::Check,
        "my check".into(),
        String::new(),
        |_, _| Ok(Summary::default()),
    );
    let mut b = Browser::new();
    let list = b.get(&app, "/jobs").await;
    assert!(list.body.contains("my check"), "{}", list.body);
    assert!(!list.body.contains("their secret"), "{}", list.body);
    assert_eq!(
        b.get(&app, &format!("/jobs/{}", mine.id)).await.status,
        StatusCode::OK
    );
    let missing = b.get(&app, "/jobs/999").await;
    for uri in [
        format!("/jobs/{}", theirs.id),
        format!("/jobs/{}/events", theirs.id),
    ] {
        let r = b.get(&app, &uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!r.body.contains("their"), "{}", r.body);
        assert_eq!(
            r.body.replace(&format!("job {}.", theirs.id), "job N."),
            missing.body.replace("job 999.", "job N."),
            "the same answer as a missing job"
        );
    }
    b.get(&app, "/").await;
    let r = b
        .post(&app, &format!("/jobs/{}/cancel", theirs.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(theirs.running() && !theirs.cancel_requested());
    tx.send(()).unwrap();
}

#[actix_web::test]
async fn a_short_ui_password_is_refused_at_start() {
    let e = bk_web::AppState::new(WebOptions::new().ui_password("elevenchars")).unwrap_err();
    assert!(e.to_string().contains("at least 12"), "{e}");
    assert!(WebOptions::new().ui_password("").validate().is_err());
    assert!(
        WebOptions::new()
            .ui_password("twelve chars")
            .validate()
            .is_ok()
    );
    // Characters, not bytes: 11 accented letters are still too short.
    assert!(
        WebOptions::new()
            .ui_password("ééééééééééé")
            .validate()
            .is_err()
    );
    assert!(bk_web::run(WebOptions::new().ui_password("short")).is_err());
}

#[actix_web::test]
async fn plain_http_off_loopback_is_refused_without_insecure_http() {
    let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let plain = WebOptions::new().listen(any).tls(TlsMode::Off);
    let e = plain.validate().unwrap_err();
    assert!(e.to_string().contains("--insecure-http"), "{e}");
    assert!(bk_web::AppState::new(plain.clone()).is_err());
    assert!(bk_web::run(plain.clone()).is_err());
    assert!(plain.insecure_http(true).validate().is_ok());
    // Off loopback, HTTPS is the default; on loopback plain HTTP is.
    assert!(WebOptions::new().listen(any).tls_on());
    assert!(!WebOptions::new().listen(any).insecure_http(true).tls_on());
    assert!(!WebOptions::new().tls_on());
    assert!(WebOptions::new().tls(TlsMode::On).tls_on());
    let st = bk_web::AppState::new(WebOptions::new().listen(any).token(TOKEN)).unwrap();
    assert!(st.tls_fingerprint().is_some());
    assert_eq!(
        st.login_url().unwrap(),
        format!("https://127.0.0.1:8080/login?token={TOKEN}")
    );
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

#[actix_web::test]
async fn the_job_history_survives_a_restart() {
    let (tmp, opts) = local();
    let dir = tmp.path().join("state");
    let st = state(opts.clone().state_dir(&dir));
    let done = st.jobs().spawn(
        bk_web::JobKind::Backup,
        "backup of data".into(),
        "data".into(),
        |_, _| {
            Ok(Summary {
                snapshot: Some(4),
                facts: vec![("Files".into(), "12".into())],
                ..Summary::default()
            })
        },
    );
    let failed = st.jobs().spawn(
        bk_web::JobKind::Restore,
        "recovery".into(),
        "data".into(),
        |_, _| Err("the disk is full".into()),
    );
    wait_job(&st, done.id);
    wait_job(&st, failed.id);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let cut = st.jobs().spawn(
        bk_web::JobKind::Check,
        "a long check".into(),
        String::new(),
        move |_, _| {
            rx.recv().ok();
            Ok(Summary::default())
        },
    );
    // The server stops while `cut` runs; a new one reads the history.
    let st2 = state(opts.state_dir(&dir));
    let v = st2.job(done.id).unwrap();
    assert_eq!(
        (v.state, v.summary.as_ref().unwrap().snapshot),
        ("done", Some(4))
    );
    assert_eq!(
        v.summary.unwrap().facts,
        vec![("Files".to_string(), "12".to_string())]
    );
    assert_eq!(
        (v.title.as_str(), v.dataset.as_str(), v.kind_label),
        ("backup of data", "data", "Backup")
    );
    assert_eq!(v.started, done.view().started);
    let v = st2.job(failed.id).unwrap();
    assert_eq!(
        (v.state, v.error.as_deref()),
        ("failed", Some("the disk is full"))
    );
    assert_eq!(st2.job(cut.id).unwrap().state, "interrupted");
    let next = st2.jobs().spawn(
        bk_web::JobKind::Check,
        "next".into(),
        String::new(),
        |_, _| Ok(Summary::default()),
    );
    assert_eq!(next.id, cut.id + 1, "numbers continue");
    // The signed-in user sees them on the jobs page.
    let app = test::init_service(App::new().configure(bk_web::configure(st2.clone()))).await;
    let mut b = Browser::new();
    let page = b.get(&app, "/jobs").await.body;
    for t in ["backup of data", "recovery", "a long check", "interrupted"] {
        assert!(page.contains(t), "{t}: {page}");
    }
    tx.send(()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(dir.join("jobs.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o777, 0o600);
}

#[actix_web::test]
async fn the_access_log_names_requests_and_jobs_but_never_the_token() {
    let (tmp, opts) = local();
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let st = state(opts.log(buf.clone()));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;
    b.get(&app, "/").await;
    let ds = tmp.path().join("root/ds").canonicalize().unwrap();
    let id = b
        .post(
            &app,
            "/backup",
            &[
                ("side", "local"),
                ("path", ds.to_str().unwrap()),
                ("dataset", "ds"),
            ],
        )
        .await
        .job_id();
    wait_job(&st, id);
    let mut s = Browser::stranger();
    s.get(&app, &format!("/login?token={}", "1".repeat(64)))
        .await;
    s.host = "evil.example".into();
    s.get(&app, "/").await;
    // The job's end line is written after its state is set.
    std::thread::sleep(Duration::from_millis(100));
    let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    for want in [
        " 0.0.0.0 GET /login 303\n",
        " 0.0.0.0 GET / 200\n",
        " 0.0.0.0 POST /connect 303\n",
        " 0.0.0.0 POST /backup 303\n",
        " 0.0.0.0 GET /login 401\n",
        " 0.0.0.0 GET / 421\n",
        &format!(" job {id} backup started: "),
        &format!(" job {id} backup done after "),
    ] {
        assert!(log.contains(want), "{want:?} missing from:\n{log}");
    }
    assert!(log.lines().all(|l| l.starts_with("bk web: 20")), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    assert!(!log.contains(&"1".repeat(64)), "{log}");
    assert!(!log.contains("token"), "{log}");
}
