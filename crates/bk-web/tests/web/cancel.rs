//! The Cancel button of a running job: the form on its page, the CSRF and
//! session checks, the token it sets, and the job ending as cancelled.

use std::sync::mpsc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test;
use bk_web::{JobError, JobKind, WebOptions};

use crate::common::*;

#[actix_web::test]
async fn the_cancel_button_stops_a_running_job() {
    let st = state(WebOptions::new());
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    // A real job thread running what an operation does: work until the
    // token is cancelled, then stop with the engine's Cancelled error (once
    // the test lets it, so that the "cancelling" state can be seen).
    let (release, released) = mpsc::channel::<()>();
    let job = st.jobs().spawn(
        JobKind::Backup,
        "Back up /data as \"ds\"".into(),
        "ds".into(),
        move |_job, cancel| {
            while cancel.check().is_ok() {
                std::thread::sleep(Duration::from_millis(5));
            }
            released.recv().ok();
            Err(JobError::from_core(bk_core::Error::Cancelled, |m| m))
        },
    );
    let id = job.id;
    let page = format!("/jobs/{id}");
    let action = format!("/jobs/{id}/cancel");

    // The running job's page has the Cancel form, with the CSRF token.
    let r = b.get(&app, &page).await;
    assert!(
        r.body
            .contains(&format!("<form method=\"post\" action=\"{action}\"")),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains(&format!("name=\"csrf\" value=\"{}\"", b.csrf))
    );

    // Without a session, or without the right token: refused, token untouched.
    let mut stranger = Browser::new();
    let r = stranger
        .post_raw(&app, &action, &[("csrf", b.csrf.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = b.post_raw(&app, &action, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("security token"), "{}", r.body);
    let r = b.post_raw(&app, &action, &[("csrf", "0123")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(!job.cancel_requested());
    assert!(!st.job(id).unwrap().cancel_requested);

    // With both: back to the job's page, which says it is stopping.
    let r = b.post(&app, &action, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), page);
    assert!(job.cancel_requested(), "the job's token is cancelled");
    let v = st.job(id).unwrap();
    assert_eq!((v.state, v.cancel_requested), ("running", true));
    let r = b.get(&app, &page).await;
    assert!(r.body.contains("id=\"cancelling\""), "{}", r.body);
    assert!(!r.body.contains(&action), "no second Cancel button");
    // Asking again while it stops is harmless.
    let r = b.post(&app, &action, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(st.job(id).unwrap().state, "running");

    // The operation returns Cancelled: the job is cancelled, not failed.
    release.send(()).unwrap();
    let v = wait_job(&st, id);
    assert_eq!(v.state, "cancelled");
    assert_eq!((v.error, v.summary.is_none()), (None, true));
    let r = b.get(&app, &page).await;
    assert!(
        r.body
            .contains("<span data-field=\"state\">cancelled</span>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"cancelled\""), "{}", r.body);
    assert!(r.body.contains("No backup was made"), "{}", r.body);
    assert!(!r.body.contains(&action) && !r.body.contains("http-equiv=\"refresh\""));
    assert!(!r.body.contains("class=\"error\""), "{}", r.body);
    let r = b.get(&app, &format!("{page}/events")).await;
    assert!(
        r.body.starts_with("event: done\n") && r.body.contains("\"state\":\"cancelled\""),
        "{}",
        r.body
    );
    let r = b.get(&app, "/jobs").await;
    assert!(
        r.body.contains("state-cancelled\">cancelled<"),
        "{}",
        r.body
    );

    // An ended job cannot be cancelled; an unknown one is not found.
    let r = b.post(&app, &action, &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("already ended (cancelled)"), "{}", r.body);
    let r = b.post(&app, "/jobs/999/cancel", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[actix_web::test]
async fn a_finished_backup_cannot_be_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("ds");
    make_dataset(&ds);
    let st = state(
        WebOptions::new()
            .repo(bk_core::location::RepoLocation::Local(
                tmp.path().join("repo"),
            ))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let r = b.post(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    b.get(&app, "/").await;
    let path = ds.display().to_string();
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &path), ("dataset", "ds")],
        )
        .await
        .job_id();
    let v = wait_job(&st, id);
    assert_eq!(v.state, "done", "{:?}", v.error);
    let page = b.get(&app, &format!("/jobs/{id}")).await.body;
    assert!(!page.contains("/cancel\""), "{page}");
    let r = b.post(&app, &format!("/jobs/{id}/cancel"), &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("already ended (done)"), "{}", r.body);
    let v = st.job(id).unwrap();
    assert_eq!((v.state, v.cancel_requested), ("done", false));
    assert!(v.summary.is_some());
}
