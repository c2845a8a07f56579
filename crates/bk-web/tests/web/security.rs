//! Each protection of the UI, and a test that fails without it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

/// A server with a local repository and one allowed root holding `ds`.
struct Local {
    tmp: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Local {
    fn new() -> Local {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("root")).unwrap();
        let root = tmp.path().join("root").canonicalize().unwrap();
        make_dataset(&root.join("ds"));
        Local { tmp, root }
    }

    fn opts(&self) -> WebOptions {
        WebOptions::new()
            .repo(RepoLocation::Local(self.tmp.path().join("repo")))
            .allow_root(&self.root)
    }

    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }
}

#[actix_web::test]
async fn every_response_has_the_security_headers() {
    let l = Local::new();
    let app = test::init_service(App::new().configure(bk_web::configure(state(l.opts())))).await;
    let mut b = Browser::new();
    // Browser::send asserts the headers on each of these.
    assert_eq!(b.get(&app, "/").await.status, StatusCode::OK);
    let css = b.get(&app, "/static/style.css").await;
    assert!(
        css.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = b.get(&app, "/static/app.js").await;
    assert!(js.body.contains("EventSource"));
    assert_eq!(
        b.get(&app, "/no/such/page").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.get(&app, "/jobs/999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.post_raw(&app, "/connect", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // No inline script or style anywhere: the CSP would block it.
    let page = b.get(&app, "/").await.body;
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
}

#[actix_web::test]
async fn the_session_cookie_is_random_http_only_and_lax() {
    let l = Local::new();
    let app = test::init_service(App::new().configure(bk_web::configure(state(l.opts())))).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut b = Browser::stranger();
        let r = b.get(&app, &format!("/login?token={TOKEN}")).await;
        let c = r.set_cookies();
        assert_eq!(c.len(), 1, "{c:?}");
        let c = &c[0];
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Lax"), "{c}");
        assert!(c.contains("Path=/"), "{c}");
        let id = c
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("bk_session=")
            .unwrap();
        assert_eq!(id.len(), 64);
        ids.push(id.to_string());
    }
    assert_ne!(ids[0], ids[1]);
}

async fn connect_local<S, B>(app: &S, b: &mut Browser) -> Resp
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    b.get(app, "/").await;
    let r = b
        .post(
            app,
            "/connect",
            &[("address", ""), ("user", ""), ("password", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r
}

#[actix_web::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let l = Local::new();
    let st = state(l.opts());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    // Connect without the token: refused, and not connected.
    let r = b
        .post_raw(&app, "/connect", &[("address", ""), ("user", "")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("security token"), "{}", r.body);
    assert!(b.get(&app, "/").await.body.contains("action=\"/connect\""));
    // Same for a backup once connected.
    connect_local(&app, &mut b).await;
    let ds = l.p("ds");
    let r = b
        .post_raw(
            &app,
            "/backup",
            &[("side", "local"), ("path", &ds), ("dataset", "ds")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(st.job(1).is_none(), "no job may start");
}

#[actix_web::test]
async fn a_post_with_a_wrong_csrf_token_is_refused() {
    let l = Local::new();
    let st = state(l.opts());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    connect_local(&app, &mut b).await;
    b.get(&app, "/").await;
    let good = b.csrf.clone();
    let mut bad = good.clone();
    let last = if bad.ends_with('0') { "1" } else { "0" };
    bad.replace_range(63..64, last);
    let ds = l.p("ds");
    for t in [bad.as_str(), "", &good[..32]] {
        let r = b
            .post_raw(
                &app,
                "/backup",
                &[
                    ("csrf", t),
                    ("side", "local"),
                    ("path", &ds),
                    ("dataset", "ds"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "token {t:?}");
    }
    // The token of another session is no good either.
    let mut other = Browser::new();
    connect_local(&app, &mut other).await;
    other.get(&app, "/").await;
    let r = b
        .post_raw(
            &app,
            "/backup",
            &[
                ("csrf", &other.csrf),
                ("side", "local"),
                ("path", &ds),
                ("dataset", "ds"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(st.job(1).is_none());
    // The right one works.
    let r = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &ds), ("dataset", "ds")],
        )
        .await;
    let id = r.job_id();
    assert_eq!(wait_job(&st, id).state, "done");
}

#[actix_web::test]
async fn a_post_without_a_session_is_refused() {
    let l = Local::new();
    let app = test::init_service(App::new().configure(bk_web::configure(state(l.opts())))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let token = b.csrf.clone();
    let mut stranger = Browser::stranger();
    let r = stranger
        .post_raw(&app, "/connect", &[("csrf", &token), ("address", "")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn an_expired_session_forgets_the_connection() {
    let l = Local::new();
    let st = state(l.opts().session_ttl(Duration::from_millis(1500)));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    connect_local(&app, &mut b).await;
    let home = b.get(&app, "/").await;
    assert!(home.body.contains("Datasets"), "{}", home.body);
    let token = b.csrf.clone();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(st.session_count(), 0);
    let old_cookie = b.cookie.clone();
    // A page sends the browser back to sign in, saying why.
    let r = b.get(&app, "/backups?dataset=ds").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?expired=1");
    let r = b.get(&app, "/login?expired=1").await;
    assert!(r.body.contains("session expired"), "{}", r.body);
    assert!(r.body.contains("How to get in"), "{}", r.body);
    // Signed in again, the connection is gone: connect again.
    let r = b.get(&app, &format!("/login?token={TOKEN}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(b.get(&app, "/").await.body.contains("action=\"/connect\""));
    // A form of the old session is refused.
    let mut old = Browser {
        cookie: old_cookie,
        ..Browser::new()
    };
    let ds = l.p("ds");
    let r = old
        .post_raw(
            &app,
            "/backup",
            &[
                ("csrf", &token),
                ("side", "local"),
                ("path", &ds),
                ("dataset", "ds"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("expired"), "{}", r.body);
}

#[actix_web::test]
async fn logout_forgets_the_connection() {
    let l = Local::new();
    let st = state(l.opts());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    connect_local(&app, &mut b).await;
    let cookie = b.cookie.clone();
    b.get(&app, "/").await;
    let r = b.post(&app, "/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.set_cookies().iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(st.session_count(), 0);
    // The old cookie no longer opens anything.
    let mut old = Browser {
        cookie,
        ..Browser::new()
    };
    let r = old.get(&app, "/browse").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn connecting_rotates_the_session_id() {
    let l = Local::new();
    let app = test::init_service(App::new().configure(bk_web::configure(state(l.opts())))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let before = b.cookie.clone().unwrap();
    connect_local(&app, &mut b).await;
    assert_ne!(b.cookie.clone().unwrap(), before);
    // The planted id is not connected.
    let mut planted = Browser {
        cookie: Some(before),
        ..Browser::new()
    };
    assert_eq!(
        planted.get(&app, "/browse").await.status,
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn the_ui_password_guards_every_page() {
    let l = Local::new();
    let pw = "s3cret-ui-pass";
    let st = state(l.opts().ui_password(pw));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(pw);
    for page in ["/", "/browse", "/jobs", "/backups?dataset=ds", "/restore"] {
        let r = b.get(&app, page).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(r.location(), "/login", "{page}");
    }
    // Connecting before signing in is refused.
    let r = b.get(&app, "/login").await;
    assert!(r.body.contains("Access password"));
    let r = b.post(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A wrong password.
    b.get(&app, "/login").await;
    let r = b
        .post(&app, "/login", &[("password", "s3cret-ui-pasS")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("not the access password"));
    // A missing token.
    let r = b.post_raw(&app, "/login", &[("password", pw)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The right one, with a new session id.
    let before = b.cookie.clone();
    let r = b.post(&app, "/login", &[("password", pw)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_ne!(b.cookie, before);
    let r = b.get(&app, "/").await;
    assert!(r.body.contains("action=\"/connect\""), "{}", r.body);
    connect_local(&app, &mut b).await;
    assert_eq!(b.get(&app, "/browse").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn local_paths_stay_under_the_allowed_roots() {
    let l = Local::new();
    let outside = l.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "not yours").unwrap();
    std::os::unix::fs::symlink(&outside, l.root.join("escape")).unwrap();
    let st = state(l.opts());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    connect_local(&app, &mut b).await;
    let q = |p: &str| format!("/browse?side=local&path={}", p.replace('/', "%2F"));
    assert_eq!(b.get(&app, &q(&l.p("ds"))).await.status, StatusCode::OK);
    let dotdot = format!("{}/../outside", l.root.display());
    for (p, want) in [
        (dotdot.clone(), StatusCode::FORBIDDEN),
        (l.p("escape"), StatusCode::FORBIDDEN),
        (outside.display().to_string(), StatusCode::FORBIDDEN),
        ("/etc".to_string(), StatusCode::FORBIDDEN),
        (l.p("missing"), StatusCode::NOT_FOUND),
        // Outside: forbidden whether it exists or not (no oracle).
        (
            outside.join("missing").display().to_string(),
            StatusCode::FORBIDDEN,
        ),
        ("/no/such/dir".to_string(), StatusCode::FORBIDDEN),
        ("relative".to_string(), StatusCode::BAD_REQUEST),
    ] {
        let r = b.get(&app, &q(&p)).await;
        assert_eq!(r.status, want, "{p}: {}", r.body);
        assert!(!r.body.contains("secret.txt"));
    }
    // Backing up through the symlink or `..` is refused, and starts nothing.
    b.get(&app, "/").await;
    for p in [l.p("escape"), dotdot.clone()] {
        let r = b
            .post(
                &app,
                "/backup",
                &[("side", "local"), ("path", &p), ("dataset", "x")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}");
    }
    assert!(st.job(1).is_none());
    let r = b
        .get(&app, &format!("/backup?side=local&path={}", l.p("escape")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Recovering to a place outside is refused too.
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &l.p("ds")), ("dataset", "ds")],
        )
        .await
        .job_id();
    wait_job(&st, id);
    for out in [
        l.p("escape/restored"),
        format!("{}/../restored", l.root.display()),
        outside.join("restored").display().to_string(),
    ] {
        let r = b
            .post(
                &app,
                "/restore",
                &[
                    ("dataset", "ds"),
                    ("dest", "local"),
                    ("out", &out),
                    ("which", "id"),
                    ("id", "0"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{out}: {}", r.body);
    }
    assert!(st.job(2).is_none());
    assert!(!outside.join("restored").exists());
}

#[actix_web::test]
async fn snapshot_paths_must_exist_in_the_snapshot() {
    let l = Local::new();
    let st = state(l.opts());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    connect_local(&app, &mut b).await;
    b.get(&app, "/").await;
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &l.p("ds")), ("dataset", "ds")],
        )
        .await
        .job_id();
    wait_job(&st, id);
    for (uri, want) in [
        ("/snapshot?dataset=ds&id=0&path=sub", StatusCode::OK),
        ("/snapshot?dataset=ds&id=0&path=nope", StatusCode::NOT_FOUND),
        (
            "/snapshot?dataset=ds&id=0&path=sub%2F..%2F..",
            StatusCode::FORBIDDEN,
        ),
        ("/snapshot?dataset=ds&id=7", StatusCode::NOT_FOUND),
        ("/snapshot?dataset=nope&id=0", StatusCode::NOT_FOUND),
        (
            "/download?dataset=ds&id=0&path=sub%2Fnope.bin",
            StatusCode::NOT_FOUND,
        ),
        (
            "/download?dataset=ds&id=0&path=..%2Fa.txt",
            StatusCode::FORBIDDEN,
        ),
        (
            "/download?dataset=ds&id=0&path=sub",
            StatusCode::BAD_REQUEST,
        ),
        ("/download?dataset=ds&id=0&path=a.txt", StatusCode::OK),
        ("/backups?dataset=nope", StatusCode::NOT_FOUND),
        ("/compare?dataset=ds&a=0&b=5", StatusCode::NOT_FOUND),
        ("/snapshot?dataset=ds&id=x", StatusCode::BAD_REQUEST),
    ] {
        let r = b.get(&app, uri).await;
        assert_eq!(r.status, want, "{uri}: {}", r.body);
    }
}

#[actix_web::test]
async fn pages_escape_what_users_type() {
    let l = Local::new();
    let st = state(l.opts());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    connect_local(&app, &mut b).await;
    b.get(&app, "/").await;
    let evil = "<img src=x onerror=alert(1)>";
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &l.p("ds")), ("dataset", evil)],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");
    for page in ["/", "/jobs", &format!("/jobs/{id}")] {
        let r = b.get(&app, page).await;
        assert!(!r.body.contains(evil), "{page}: {}", r.body);
        assert!(r.body.contains("&lt;img src=x"), "{page}: {}", r.body);
    }
    // A connect error echoes the address escaped, never the password.
    let mut c = Browser::new().secret("pw-<b>-never");
    c.get(&app, "/").await;
    let r = c
        .post(
            &app,
            "/connect",
            &[
                ("address", "<b>bad"),
                ("user", "u"),
                ("password", "pw-<b>-never"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains("<b>bad"));
}
