//! Connecting to a real FTP server (bk-testkit's embedded one), pulling a
//! dataset from it, and recovering onto it.

use actix_web::http::StatusCode;
use actix_web::test;
use bk_testkit::{ServerKind, ServerOptions, TestServer};
use bk_web::WebOptions;

use crate::common::*;

fn server() -> TestServer {
    TestServer::start(ServerKind::Embedded, ServerOptions::default()).expect("embedded FTP server")
}

#[actix_web::test]
async fn a_wrong_ftp_password_is_reported_in_plain_words() {
    let s = server();
    let st = state(WebOptions::new());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let wrong = "wrong-pw-123";
    let mut b = Browser::new().secret(s.password()).secret(wrong);
    b.get(&app, "/").await;
    let r = b
        .post(
            &app,
            "/connect",
            &[
                ("address", &s.addr()),
                ("user", s.user()),
                ("password", wrong),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(
        r.body.contains("refused the user name or password"),
        "{}",
        r.body
    );
    // The form comes back with the address and user, never the password.
    assert!(r.body.contains(&s.addr()));
    assert!(
        r.body
            .contains("type=\"password\" name=\"password\" value=\"\"")
    );
    // Not connected, and nothing was created on the server.
    assert_eq!(b.get(&app, "/browse").await.status, StatusCode::SEE_OTHER);
    assert!(!s.local_path("/repo").exists());
}

#[actix_web::test]
async fn an_unreachable_server_is_reported_in_plain_words() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let st = state(WebOptions::new());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret("pw-unreachable-1");
    b.get(&app, "/").await;
    let addr = format!("127.0.0.1:{port}");
    let r = b
        .post(
            &app,
            "/connect",
            &[
                ("address", &addr),
                ("user", "bk"),
                ("password", "pw-unreachable-1"),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("Could not reach the FTP server at {addr}")),
        "{}",
        r.body
    );
    // A malformed address and a missing one are named too.
    let r = b
        .post(
            &app,
            "/connect",
            &[("address", "a b"), ("repo_path", "/repo")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("host:port"), "{}", r.body);
    let r = b
        .post(&app, "/connect", &[("address", ""), ("repo_path", "/repo")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Enter the address"), "{}", r.body);
}

#[actix_web::test]
async fn pull_a_dataset_from_ftp_and_recover_the_state_before_a_time_onto_it() {
    let s = server();
    let data = s.local_path("/data/proj");
    make_dataset(&data);
    std::fs::create_dir_all(s.local_path("/data/other")).unwrap();
    let st = state(WebOptions::new());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    b.get(&app, "/").await;
    let r = b
        .post(
            &app,
            "/connect",
            &[
                ("address", &s.addr()),
                ("user", s.user()),
                ("password", s.password()),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let home = b.get(&app, "/").await;
    assert!(home.body.contains("No backups yet"), "{}", home.body);
    assert!(
        home.body.contains(&format!("{}&#x2f;repo", s.port())),
        "{}",
        home.body
    );

    // Browse one level at a time; `..` cannot climb.
    let r = b.get(&app, "/browse?side=ftp&path=%2F").await;
    assert!(r.body.contains(">data/<"), "{}", r.body);
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata").await;
    assert!(
        r.body.contains(">proj/<") && r.body.contains(">other/<"),
        "{}",
        r.body
    );
    assert!(r.body.contains("Back up this folder"), "{}", r.body);
    // FTP names travel in the parameter form too.
    assert!(
        r.body
            .contains("/browse?side=ftp&amp;path=&#x2f;data&#x2f;proj\">proj/</a>"),
        "{}",
        r.body
    );
    let r = b.get(&app, "/browse?side=ftp&path=%2Fdata%2F..%2F..").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b.get(&app, "/browse?side=ftp&path=%2Fnope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = b.get(&app, "/browse?side=local").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "no local roots were allowed"
    );

    // The backup form, then the job.
    let r = b.get(&app, "/backup?side=ftp&path=%2Fdata%2Fproj").await;
    assert!(r.body.contains("value=\"proj\""), "{}", r.body);
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
    assert!(!j.title.contains(s.password()));
    let between = chrono::Utc::now();
    tick();
    std::fs::write(data.join("a.txt"), "version two\n").unwrap();
    std::fs::write(data.join("new.txt"), "new").unwrap();
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
    let facts = j.summary.unwrap().facts;
    assert!(
        facts.contains(&("Modified".into(), "1".into())),
        "{facts:?}"
    );
    assert!(facts.contains(&("Added".into(), "1".into())), "{facts:?}");

    let r = b.get(&app, "/backups?dataset=proj").await;
    assert!(r.body.find("<td class=\"num\">1</td>") < r.body.find("<td class=\"num\">0</td>"));
    assert!(r.body.contains("incremental"), "{}", r.body);

    // Recover the state before `between` onto the FTP server.
    b.get(&app, "/restore?dataset=proj").await;
    let before = between.to_rfc3339();
    let id = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "proj"),
                ("dest", "ftp"),
                ("out", "/restored/proj"),
                ("which", "before"),
                ("before_utc", &before),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert!(j.title.contains("#0"), "{}", j.title);
    assert_eq!(read_tree(&s.local_path("/restored/proj")), v1);
    // The folder picker browses the FTP server.
    let r = b
        .get(&app, "/restore/pick?dataset=proj&dest=ftp&side=ftp")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(">restored/</a>"), "{}", r.body);
    let r = b
        .get(
            &app,
            "/restore/pick?dataset=proj&dest=ftp&side=ftp&at=%2Frestored",
        )
        .await;
    assert!(r.body.contains(">proj/</a>"), "{}", r.body);
    assert!(r.body.contains("id=\"pick-here\""), "{}", r.body);
    // A second recovery into the now non-empty folder is refused before
    // any job starts, in plain words, until "Replace its contents".
    let r = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "proj"),
                ("dest", "ftp"),
                ("out", "/restored/proj"),
                ("which", "id"),
                ("id", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("is not empty. To recover into it, tick"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"replace-confirm\""), "{}", r.body);
    // `..` in the output is refused.
    let r = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "proj"),
                ("dest", "ftp"),
                ("out", "/restored/../../x"),
                ("which", "id"),
                ("id", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("cannot be used as a folder"), "{}", r.body);
    // The repository's folder on the same server, inside it, or a folder
    // that holds it: refused before the job starts.
    for out in ["/repo", "/repo/snapshots", "/repo/new"] {
        let r = b
            .post(
                &app,
                "/restore",
                &[
                    ("dataset", "proj"),
                    ("dest", "ftp"),
                    ("out", out),
                    ("which", "id"),
                    ("id", "1"),
                    ("replace", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{out}: {}", r.body);
        assert!(
            r.body.contains("where the backups themselves are kept"),
            "{out}: {}",
            r.body
        );
    }
    assert!(!s.local_path("/repo/new").exists());
    // Every job page and the job list hold no password (Browser checks).
    b.get(&app, "/jobs").await;
    for id in 1..=3 {
        b.get(&app, &format!("/jobs/{id}")).await;
    }

    // "Back up now" on Home: the same FTP folder again, with this
    // session's login; the password stays out of the page and the job.
    let home = b.get(&app, "/").await;
    assert!(
        home.body.contains("data-dataset=\"proj\"") && home.body.contains("Back up now"),
        "{}",
        home.body
    );
    let id = b
        .post(&app, "/backup-now", &[("dataset", "proj")])
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert!(!j.title.contains(s.password()));
    let snaps = bk_core::Repository::open_local(&s.local_path("/repo"))
        .unwrap()
        .snapshots(Some("proj"))
        .unwrap();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[2].source, snaps[0].source);
    assert!(snaps[2].source.starts_with("ftp://"), "{}", snaps[2].source);
    b.get(&app, &format!("/jobs/{id}")).await;
}

#[actix_web::test]
async fn use_tls_connects_over_ftps_and_an_untrusted_certificate_is_explained() {
    let s = TestServer::start(ServerKind::Embedded, ServerOptions::tls()).expect("FTPS server");
    let ca = s.ca_cert().expect("a certificate").to_path_buf();
    let cfg = bk_ftp::FtpConfig::default().ca_file(&ca);
    let st = state(WebOptions::new().ftp_config(cfg));
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    b.get(&app, "/").await;
    let r = b
        .post(
            &app,
            "/connect",
            &[
                ("address", &s.addr()),
                ("user", s.user()),
                ("password", s.password()),
                ("tls", "on"),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let home = b.get(&app, "/").await;
    assert!(home.body.contains("ftps:&#x2f;&#x2f;"), "{}", home.body);
    assert!(
        s.local_path("/repo").is_dir(),
        "the repository was created over FTPS"
    );

    // Without the certificate's trust, TLS fails in words that say so.
    let st = state(WebOptions::new());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new().secret(s.password());
    b.get(&app, "/").await;
    let r = b
        .post(
            &app,
            "/connect",
            &[
                ("address", &s.addr()),
                ("user", s.user()),
                ("password", s.password()),
                ("tls", "on"),
                ("repo_path", "/repo"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("secure (TLS) connection"), "{}", r.body);
}
