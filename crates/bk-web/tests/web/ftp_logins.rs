//! One FTP login per session (issue 11, acceptance 4): the embedded FTP
//! server behind bk-testkit's counting proxy, so that every `USER` command
//! bk sends is counted, while one session connects, browses, backs up and
//! recovers.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test;
use bk_ftp::FtpConfig;
use bk_testkit::{CutProxy, Cuts, ServerKind, ServerOptions, TestServer};
use bk_web::WebOptions;

use crate::common::*;

fn server() -> TestServer {
    TestServer::start(ServerKind::Embedded, ServerOptions::default()).expect("embedded FTP server")
}

fn config(connections: usize) -> FtpConfig {
    FtpConfig::default()
        .timeouts(Duration::from_secs(10), Duration::from_secs(60))
        .connections(connections)
}

/// Connect one browser to the server through `proxy`, the repository in
/// `/repo` on the same server.
async fn connect<S, B>(app: &S, b: &mut Browser, s: &TestServer, proxy: &CutProxy)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    b.get(app, "/").await;
    let addr = format!("127.0.0.1:{}", proxy.port());
    let r = b
        .post(
            app,
            "/connect",
            &[
                ("address", &addr),
                ("user", s.user()),
                ("password", s.password()),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// Connect, browse two folders, back up one, recover it onto the server,
/// with `n` parallel connections per pool. The session has two pools: the
/// dataset server's (logged in by the connect check) and the repository's
/// (it lives on the same server). Each logs in once and opens more
/// connections only while all are busy, so the whole session logs in at
/// most 2 × n times, exactly twice after connect and browsing, and with
/// n = 1 exactly twice in all. Before the session pool, connect and the
/// first listing logged in three times and every job again.
async fn session_run(n: usize) {
    let s = server();
    let data = s.local_path("/data/proj");
    make_dataset(&data);
    std::fs::create_dir_all(s.local_path("/data/other")).unwrap();
    let proxy = CutProxy::start(&s.addr(), Cuts::none()).unwrap();
    let st = state(WebOptions::new().ftp_config(config(n)));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    connect(&app, &mut b, &s, &proxy).await;
    assert_eq!(
        proxy.logins(),
        2,
        "connect: the check's login and the repository's"
    );

    let r = b.get(&app, "/browse?side=ftp&path=%2F").await;
    assert!(r.body.contains(">data/<"), "{}", r.body);
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata").await;
    assert!(
        r.body.contains(">proj/<") && r.body.contains(">other/<"),
        "{}",
        r.body
    );
    let r = b.get(&app, "/backup?side=ftp&path=%2Fdata%2Fproj").await;
    assert!(r.body.contains("value=\"proj\""), "{}", r.body);
    assert_eq!(proxy.logins(), 2, "browsing reused the connect's login");

    let v1 = read_tree(&data);
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "ftp"), ("path", "/data/proj"), ("dataset", "proj")],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert_eq!((j.files_done, j.files_total), (2, 2));
    let after_backup = proxy.logins();
    assert!(
        after_backup <= 2 * n,
        "{after_backup} logins for pools of {n}"
    );

    b.get(&app, "/restore?dataset=proj").await;
    let id = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "proj"),
                ("dest", "ftp"),
                ("out", "/restored/proj"),
                ("which", "id"),
                ("id", "0"),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert_eq!(read_tree(&s.local_path("/restored/proj")), v1);
    // Browsing after the jobs: the pool is still the session's.
    let r = b.get(&app, "/browse?side=ftp&path=%2Frestored").await;
    assert!(r.body.contains(">proj/<"), "{}", r.body);

    let logins = proxy.logins();
    assert!(logins <= 2 * n, "{logins} logins for pools of {n}");
    if n == 1 {
        assert_eq!(after_backup, 2, "the backup logged in again");
        assert_eq!(logins, 2, "the recovery logged in again");
    }
    // A login per control connection: nothing logged in twice on one,
    // and no connection was opened but for a login.
    assert_eq!(proxy.control_conns(), logins);
    eprintln!("pools of {n}: {after_backup} logins after the backup, {logins} in all");
}

#[actix_web::test]
async fn one_session_logs_in_once_per_pool_connection_across_browsing_backup_and_recovery() {
    session_run(1).await;
    session_run(2).await;
}

#[actix_web::test]
async fn a_connection_the_server_dropped_is_replaced_by_one_login_on_the_next_browse() {
    let s = server();
    std::fs::create_dir_all(s.local_path("/data/proj")).unwrap();
    let proxy = CutProxy::start(&s.addr(), Cuts::none()).unwrap();
    let st = state(WebOptions::new().ftp_config(config(4)));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    connect(&app, &mut b, &s, &proxy).await;
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata").await;
    assert!(r.body.contains(">proj/<"), "{}", r.body);
    assert_eq!(proxy.logins(), 2);
    // The server drops both idle sessions (the dataset pool's and the
    // repository's), as on a restart or an idle timeout.
    assert_eq!(proxy.drop_connections(), 2);
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(">proj/<"), "{}", r.body);
    assert_eq!(proxy.logins(), 3, "exactly one fresh login for the listing");
    let r = b.get(&app, "/browse?side=ftp&path=%2F").await;
    assert!(r.body.contains(">data/<"), "{}", r.body);
    assert_eq!(proxy.logins(), 3, "and that one is kept");
    // The repository's pool recovers the same way.
    let r = b.get(&app, "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No backups yet"), "{}", r.body);
    assert!(proxy.logins() <= 4, "{}", proxy.logins());
}

/// A port that greets like an FTP server and then never answers.
fn mute_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let _ = c.write_all(b"220 slow server\r\n");
            held.push(c);
        }
    });
    port
}

#[actix_web::test]
async fn a_server_that_does_not_answer_the_login_is_reported_with_the_wait() {
    let port = mute_server();
    let cfg = FtpConfig::default().timeouts(Duration::from_secs(5), Duration::from_secs(1));
    let st = state(WebOptions::new().ftp_config(cfg));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret("pw-mute-server-1");
    b.get(&app, "/").await;
    let t = Instant::now();
    let addr = format!("127.0.0.1:{port}");
    let r = b
        .post(
            &app,
            "/connect",
            &[
                ("address", &addr),
                ("user", "bk"),
                ("password", "pw-mute-server-1"),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert!(
        r.body.contains(&format!(
            "The FTP server at {addr} did not answer within 1 s."
        )),
        "{}",
        r.body
    );
    assert!(!r.body.contains("os error"), "{}", r.body);
    // Not connected; the form is back, still marked as a slow one.
    assert!(r.body.contains("data-busy=\"Connecting…\""), "{}", r.body);
    assert_eq!(b.get(&app, "/browse").await.status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn slow_forms_and_ftp_listings_carry_their_busy_sign() {
    let s = server();
    std::fs::create_dir_all(s.local_path("/data/proj")).unwrap();
    let st = state(WebOptions::new());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    let r = b.get(&app, "/").await;
    assert!(
        r.body.contains("id=\"connect\" data-busy=\"Connecting…\""),
        "{}",
        r.body
    );
    let proxy = CutProxy::start(&s.addr(), Cuts::none()).unwrap();
    connect(&app, &mut b, &s, &proxy).await;
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata").await;
    assert!(
        r.body
            .contains("<ul class=\"listing\" data-busy=\"Working…\">"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<p class=\"actions\" data-busy=\"Working…\">"),
        "{}",
        r.body
    );
    let r = b.get(&app, "/backup?side=ftp&path=%2Fdata%2Fproj").await;
    assert!(
        r.body
            .contains("action=\"/backup\" class=\"card\" id=\"backup\" data-busy=\"Working…\""),
        "{}",
        r.body
    );
    // app.js does the rest; it is served and names the attribute.
    let js = b.get(&app, "/static/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("form[data-busy]"), "{}", js.body);
    assert!(js.body.contains("b.disabled = true"), "{}", js.body);
}

#[actix_web::test]
async fn idle_logins_are_kept_alive_while_the_session_lives() {
    let s = server();
    std::fs::create_dir_all(s.local_path("/data/proj")).unwrap();
    let proxy = CutProxy::start(&s.addr(), Cuts::none()).unwrap();
    // The sweeper runs every ttl / 2; every idle connection is due.
    let st = state(
        WebOptions::new()
            .session_ttl(Duration::from_secs(2))
            .ftp_config(config(2).idle_check(Duration::ZERO)),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    connect(&app, &mut b, &s, &proxy).await;
    // (Opening the repository NOOPs its reused connections too: count
    // from here.)
    let noops = proxy.commands("NOOP");
    let t = Instant::now();
    while proxy.commands("NOOP") == noops {
        assert!(t.elapsed() < Duration::from_secs(5), "no keep-alive NOOP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata").await;
    assert!(r.body.contains(">proj/<"), "{}", r.body);
    assert_eq!(proxy.logins(), 2, "kept alive, not logged in again");
}
