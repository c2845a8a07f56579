//! Tests of jobs.rs.

use super::*;

#[test]
fn a_job_reports_progress_and_its_end() {
    let store = JobStore::default();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (reported, seen) = std::sync::mpsc::channel::<()>();
    let job = store.spawn(JobKind::Backup, "t".into(), "ds".into(), move |j, _| {
        let t = Tracker(j);
        let totals = bk_core::Totals {
            files: Some(2),
            bytes: Some(200),
        };
        bk_core::Progress::phase(&t, bk_core::Phase::Read, totals);
        bk_core::Progress::bytes(&t, b"a/b", 100);
        bk_core::Progress::file_done(&t, b"a/b");
        // Looked at only now: the current name is set best effort
        // (never waiting for a reader of the page), so a view taken
        // while `bytes` runs may miss it.
        reported.send(()).ok();
        rx.recv().ok();
        Ok(Summary::default())
    });
    seen.recv_timeout(Duration::from_secs(10)).unwrap();
    let v = job.view();
    assert_eq!(v.state, "running");
    assert_eq!((v.files_done, v.files_total), (1, 2));
    assert_eq!(v.percent, 50);
    assert_eq!(v.current, "a/b");
    tx.send(()).unwrap();
    for _ in 0..100 {
        if !job.running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(job.view().state, "done");
    assert_eq!(store.list().len(), 1);
    assert!(store.get(job.id).is_some());
}

#[test]
fn a_panicking_job_fails_cleanly() {
    let store = JobStore::default();
    let job = store.spawn(JobKind::Restore, "t".into(), "ds".into(), |_, _| {
        panic!("boom");
    });
    for _ in 0..100 {
        if !job.running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(job.view().state, "failed");
}

fn wait_end(job: &Job) {
    let t = Instant::now();
    while job.running() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_job_whose_operation_stops_on_its_token_ends_cancelled() {
    let store = JobStore::default();
    let job = store.spawn(JobKind::Check, "t".into(), "ds".into(), |j, cancel| {
        j.set_totals(4, 400);
        // What an operation does: check the token between units of work.
        loop {
            if let Err(e) = cancel.check() {
                return Err(JobError::from_core(e, |m| m));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    let v = job.view();
    assert_eq!((v.state, v.cancel_requested), ("running", false));
    assert!(job.cancel(), "a running job can be cancelled");
    assert!(job.cancel_requested());
    wait_end(&job);
    let v = job.view();
    assert_eq!(v.state, "cancelled");
    assert!(v.cancel_requested);
    assert_eq!((v.error, v.summary.is_none()), (None, true));
    assert_eq!(v.percent, 0, "a cancelled job did not do all its work");
    assert_eq!(v.kind_label, "Check");
    assert!(!job.cancel(), "an ended job cannot be cancelled");
    assert_eq!(job.view().state, "cancelled");
}

#[test]
fn failed_and_done_jobs_are_not_cancelled() {
    let store = JobStore::default();
    let failed = store.spawn(JobKind::Backup, "t".into(), "ds".into(), |_, _| {
        Err(JobError::from_core(
            bk_core::Error::Invalid("pw123 refused".into()),
            |m| m.replace("pw123", "***"),
        ))
    });
    wait_end(&failed);
    let v = failed.view();
    assert_eq!(v.state, "failed");
    assert_eq!(v.error.as_deref(), Some("*** refused"));
    assert!(!failed.cancel());
    assert!(
        !failed.cancel_requested(),
        "an ended job's token stays unset"
    );
    // A job asked to stop whose operation finishes anyway is done.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let done = store.spawn(JobKind::Restore, "t".into(), "ds".into(), move |_, _| {
        rx.recv().ok();
        Ok(Summary::default())
    });
    assert!(done.cancel());
    tx.send(()).unwrap();
    wait_end(&done);
    let v = done.view();
    assert_eq!(
        (v.state, v.cancel_requested, v.percent),
        ("done", true, 100)
    );
}

#[test]
fn human_units() {
    assert_eq!(human(10), "10 B");
    assert_eq!(human(1536), "1.5 KiB");
    assert_eq!(human_duration(Duration::from_secs(65)), "1 min 05 s");
}
