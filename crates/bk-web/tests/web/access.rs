//! Who may use the UI: the sign-in token, the Host and Origin checks, job
//! owners, the attempt limiter (measured through a real server), HTTPS with
//! the generated certificate, the job history and the access log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
