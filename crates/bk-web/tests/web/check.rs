//! Checking the repository from the home page, as a job.

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

#[actix_web::test]
async fn the_repository_is_checked_as_a_job_and_damage_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("ds");
    make_dataset(&ds);
    let repo = tmp.path().join("repo");
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(repo.clone()))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let r = b.post(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let home = b.get(&app, "/").await.body;
    assert!(
        home.contains("<form method=\"post\" action=\"/check\""),
        "{home}"
    );
    let path = ds.display().to_string();
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &path), ("dataset", "ds")],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");

    // Without the form's token: refused, no job.
    let r = b.post_raw(&app, "/check", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(st.job(id + 1).is_none());

    let id = b.post(&app, "/check", &[]).await.job_id();
    let v = wait_job(&st, id);
    assert_eq!(
        (v.state, v.kind),
        ("done", bk_web::JobKind::Check),
        "{:?}",
        v.error
    );
    let s = v.summary.unwrap();
    assert!(
        s.facts
            .contains(&("Result".into(), "no problems found".into())),
        "{s:?}"
    );
    assert!(s.facts.contains(&("Backups".into(), "1".into())), "{s:?}");
    assert!(s.errors.is_empty(), "{s:?}");
    let page = b.get(&app, &format!("/jobs/{id}")).await.body;
    assert!(page.contains(&format!("Check job {id}</h1>")), "{page}");
    assert!(!page.contains("View backups of"), "{page}");

    // Lose the packs: a check that reads the data names the damage.
    for e in std::fs::read_dir(repo.join("packs")).unwrap().flatten() {
        if e.path().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let id = b
        .post(&app, "/check", &[("read_data", "on")])
        .await
        .job_id();
    let v = wait_job(&st, id);
    assert_eq!(v.state, "done", "{:?}", v.error);
    let s = v.summary.unwrap();
    assert!(!s.errors.is_empty(), "{s:?}");
    let result = format!("{} problems found", s.errors.len());
    assert!(s.facts.contains(&("Result".into(), result)), "{s:?}");
    let page = b.get(&app, &format!("/jobs/{id}")).await.body;
    assert!(page.contains("Problems ("), "{page}");
}
