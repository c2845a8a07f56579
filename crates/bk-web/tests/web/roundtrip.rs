//! A whole session on local folders: connect, browse, back up, modify, back
//! up again, look at the backups, download a file, compare, and recover the
//! state before a time, by UTC instant (JavaScript) and by local date and
//! time (no JavaScript).

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

#[actix_web::test]
async fn back_up_twice_and_recover_the_state_before_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("ds");
    make_dataset(&ds);
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(tmp.path().join("repo")))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();

    // Connect to the local repository (no FTP server).
    let r = b.get(&app, "/").await;
    assert!(r.body.contains("Backups are kept in"), "{}", r.body);
    let r = b.post(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Browse: the roots, then the root's directories.
    let r = b.get(&app, "/browse").await;
    // Names are shown as HTML of their own (escapes marked), '/' as it is.
    let shown = root.display().to_string();
    assert!(r.body.contains(&format!(">{shown}/<")), "{}", r.body);
    let q = format!("/browse?side=local&path={}", root.display());
    let r = b.get(&app, &q).await;
    assert!(r.body.contains(">ds/<"), "{}", r.body);
    let r = b
        .get(&app, &format!("/backup?side=local&path={}", ds.display()))
        .await;
    assert!(r.body.contains("value=\"ds\""), "{}", r.body);

    // First backup.
    let path = ds.display().to_string();
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &path), ("dataset", "ds")],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert_eq!((j.files_done, j.files_total), (2, 2));
    assert_eq!(j.bytes_done, j.bytes_total);
    assert_eq!(j.percent, 100);
    let page = b.get(&app, &format!("/jobs/{id}")).await.body;
    assert!(
        page.contains("Summary") && page.contains("Bytes stored"),
        "{page}"
    );
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "a finished job does not refresh"
    );
    let events = b.get(&app, &format!("/jobs/{id}/events")).await;
    assert_eq!(
        events.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    assert!(
        events.body.starts_with("event: done\ndata: {"),
        "{}",
        events.body
    );

    let v1 = read_tree(&ds);
    let between = chrono::Utc::now();
    tick();

    // Modify: change one file, delete one, add one; back up in full.
    std::fs::write(ds.join("a.txt"), "version two\n").unwrap();
    std::fs::remove_file(ds.join("sub/b.bin")).unwrap();
    std::fs::write(ds.join("c.txt"), "new file").unwrap();
    let id = b
        .post(
            &app,
            "/backup",
            &[
                ("side", "local"),
                ("path", &path),
                ("dataset", "ds"),
                ("full", "on"),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let facts = j.summary.unwrap().facts;
    for f in [("Modified", "1"), ("Added", "1"), ("Deleted", "1")] {
        assert!(facts.contains(&(f.0.into(), f.1.into())), "{facts:?}");
    }

    // Home and the backups view.
    let home = b.get(&app, "/").await.body;
    assert!(home.contains("/backups?dataset=ds"), "{home}");
    let r = b.get(&app, "/backups?dataset=ds").await.body;
    assert!(r.contains("<time datetime=\"20"), "{r}");
    assert!(
        r.contains(">full<") && r.contains("Recover from this backup"),
        "{r}"
    );

    // Browse backup 0 and download a file of it.
    let r = b.get(&app, "/snapshot?dataset=ds&id=0").await.body;
    assert!(r.contains(">a.txt<") && r.contains(">sub/<"), "{r}");
    let r = b.get(&app, "/snapshot?dataset=ds&id=0&path=sub").await.body;
    assert!(r.contains(">b.bin<") && r.contains(">empty/<"), "{r}");
    let r = b
        .get(&app, "/download?dataset=ds&id=0&path=sub%2Fb.bin")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, bytes(1, 300_000));
    let cd = r
        .headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cd.starts_with("attachment; filename=\"b.bin\""), "{cd}");
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/octet-stream"
    );

    // Compare.
    let r = b.get(&app, "/compare?dataset=ds&a=0&b=1").await.body;
    let added = r.find("Added").unwrap();
    let modified = r.find("Modified").unwrap();
    let deleted = r.find("Deleted").unwrap();
    let at = |s: &str| r.find(s).unwrap_or_else(|| panic!("{s} in {r}"));
    assert!(added < at("c.txt") && at("c.txt") < modified);
    assert!(modified < at("<code>a.txt") && at("<code>a.txt") < deleted);
    assert!(deleted < at("b.bin"));

    // Recover the state before `between`, as the script sends it (UTC).
    let form = b.get(&app, "/restore?dataset=ds").await.body;
    assert!(form.contains("name=\"which\" value=\"before\""), "{form}");
    let out1 = root.join("restored1").display().to_string();
    let before = between.to_rfc3339();
    let id = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "ds"),
                ("dest", "local"),
                ("out", &out1),
                ("which", "before"),
                ("before_utc", &before),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert_eq!((j.files_done, j.files_total), (2, 2), "restore progress");
    assert_eq!(j.bytes_done, j.bytes_total);
    assert_eq!(j.bytes_total, 300_000 + 10);
    assert_eq!(read_tree(&root.join("restored1")), v1);
    assert!(root.join("restored1/sub/empty").is_dir());

    // The same without JavaScript: a local date and time.
    // Whole seconds: round up, still before the second backup.
    let local = (between + chrono::Duration::seconds(1)).with_timezone(&chrono::Local);
    let (d, t) = (
        local.format("%Y-%m-%d").to_string(),
        local.format("%H:%M:%S").to_string(),
    );
    let out2 = root.join("restored2").display().to_string();
    let id = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "ds"),
                ("dest", "local"),
                ("out", &out2),
                ("which", "before"),
                ("before_date", &d),
                ("before_time", &t),
                ("before_utc", ""),
            ],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");
    assert_eq!(read_tree(&root.join("restored2")), v1);

    // By number, the latest.
    let out3 = root.join("restored3").display().to_string();
    let id = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "ds"),
                ("dest", "local"),
                ("out", &out3),
                ("which", "id"),
                ("id", "1"),
            ],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");
    assert_eq!(read_tree(&root.join("restored3")), read_tree(&ds));

    // A date before every backup is reported on the form, not as a job.
    let r = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "ds"),
                ("dest", "local"),
                ("out", &out3),
                ("which", "before"),
                ("before_date", "2001-01-01"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("There is no backup of"), "{}", r.body);
    // So is a missing choice.
    let r = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "ds"),
                ("dest", "local"),
                ("out", &out3),
                ("which", "before"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Choose the date"), "{}", r.body);

    // The job list shows all of them, newest first.
    let r = b.get(&app, "/jobs").await.body;
    assert!(
        r.find("/jobs/5\"").unwrap() < r.find("/jobs/1\"").unwrap(),
        "{r}"
    );
}

#[actix_web::test]
async fn backups_started_together_take_turns_and_all_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    for n in ["one", "two", "three"] {
        make_dataset(&root.join(n));
    }
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(tmp.path().join("repo")))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;
    b.get(&app, "/").await;
    let mut ids = Vec::new();
    for n in ["one", "two", "three"] {
        let p = root.join(n).display().to_string();
        ids.push(
            b.post(
                &app,
                "/backup",
                &[("side", "local"), ("path", &p), ("dataset", n)],
            )
            .await
            .job_id(),
        );
    }
    for id in ids {
        let j = wait_job(&st, id);
        assert_eq!(j.state, "done", "{:?}", j.error);
    }
    let home = b.get(&app, "/").await.body;
    for n in ["one", "two", "three"] {
        assert!(home.contains(&format!("/backups?dataset={n}\"")), "{home}");
    }
}
