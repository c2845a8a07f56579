//! Recovering a partial backup says what it lacks (issue 9 item 12).

use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

#[actix_web::test]
async fn the_recovery_of_a_partial_backup_names_what_it_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("ds");
    make_dataset(&ds);
    // A socket cannot be backed up: the snapshot is partial.
    let _sock = std::os::unix::net::UnixListener::bind(ds.join("app.sock")).unwrap();
    let repo = tmp.path().join("repo");
    let s = bk_core::make_backup(&repo, &ds, false).unwrap();
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);

    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(repo))
            .allow_root(&root),
    );
    let app =
        actix_web::test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;
    b.get(&app, "/restore?dataset=ds").await;
    let out = root.join("restored").display().to_string();
    let id = b
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
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let warnings = j.summary.unwrap().warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("app.sock: skipped"), "{warnings:?}");
    let page = b.get(&app, &format!("/jobs/{id}")).await.body;
    assert!(
        page.contains("Warnings (1)") && page.contains("app.sock"),
        "{page}"
    );
}
