//! Operations started from the UI (backups, restores, checks) run as jobs
//! on their own threads; pages and the event stream read their counters.
//!
//! A job record holds what the user may see (titles with paths and URLs
//! that never include a password, counters, the summary); the credentials
//! live only in the closure the job's thread runs.
//!
//! Each job has a [`Cancel`] token made by the [`JobStore`]: the Cancel
//! button sets it, the operation checks it and stops with
//! [`bk_core::Error::Cancelled`], and the job then ends as cancelled, not
//! failed. A job runs `Running` → `Done`, `Failed` or `Cancelled`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bk_core::Cancel;
use bk_core::tree::display_path;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// At most this many finished jobs are remembered.
const KEEP_FINISHED: usize = 200;

/// The operation a job runs. Adding one: a variant here and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JobKind {
    /// A backup.
    Backup,
    /// A restore.
    Restore,
    /// A repository check.
    Check,
}

impl JobKind {
    /// What its page calls it: "Backup", "Recovery", "Check".
    pub fn label(self) -> &'static str {
        match self {
            JobKind::Backup => "Backup",
            JobKind::Restore => "Recovery",
            JobKind::Check => "Check",
        }
    }
}

/// How a job ended other than with a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The operation stopped because the job was cancelled.
    Cancelled,
    /// The operation failed; the message is shown to the user.
    Failed(String),
}

impl JobError {
    /// The end of a job whose operation returned `e`; a failure's message
    /// goes through `shown` (which removes secrets) first.
    pub fn from_core(e: bk_core::Error, shown: impl FnOnce(String) -> String) -> JobError {
        match e {
            bk_core::Error::Cancelled => JobError::Cancelled,
            // Plain words on the job page: no command-line flag, no OS
            // error number.
            e => JobError::Failed(crate::words::plain(&shown(e.to_string()))),
        }
    }
}

impl From<String> for JobError {
    fn from(m: String) -> JobError {
        JobError::Failed(m)
    }
}

impl From<&str> for JobError {
    fn from(m: &str) -> JobError {
        JobError::Failed(m.to_string())
    }
}

/// How a job ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The snapshot made or restored.
    pub snapshot: Option<u64>,
    /// Label → value lines.
    pub facts: Vec<(String, String)>,
    /// Files that could not be read (backup).
    pub warnings: Vec<String>,
    /// Entries that could not be restored (restore).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
enum State {
    Running,
    Done(Summary),
    Failed(String),
    Cancelled,
}

/// One job.
#[derive(Debug)]
pub struct Job {
    /// Its number.
    pub id: u64,
    /// The operation it runs.
    pub kind: JobKind,
    /// One line saying what it does.
    pub title: String,
    /// The dataset.
    pub dataset: String,
    started_at: DateTime<Utc>,
    started: Instant,
    planned: AtomicBool,
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    /// Raw path bytes: the hot path copies bytes, `view` formats them.
    current: Mutex<Vec<u8>>,
    state: Mutex<State>,
    finished: Mutex<Option<Instant>>,
    cancel: Cancel,
}

/// What a page or an event shows of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Number.
    pub id: u64,
    /// backup / restore / check.
    pub kind: JobKind,
    /// "Backup", "Recovery", "Check".
    pub kind_label: &'static str,
    /// What it does.
    pub title: String,
    /// Dataset.
    pub dataset: String,
    /// `running`, `done`, `failed`, `cancelled`.
    pub state: &'static str,
    /// Cancel was asked for (the job may still be stopping).
    pub cancel_requested: bool,
    /// Start time, RFC 3339 UTC.
    pub started: String,
    /// The walk or plan is done and the totals are known.
    pub planned: bool,
    /// Files done.
    pub files_done: u64,
    /// Files to do.
    pub files_total: u64,
    /// Bytes done.
    pub bytes_done: u64,
    /// Bytes to do.
    pub bytes_total: u64,
    /// Bytes done, readable.
    pub bytes_done_h: String,
    /// Bytes to do, readable.
    pub bytes_total_h: String,
    /// 0–100.
    pub percent: u32,
    /// The file being worked on.
    pub current: String,
    /// Bytes per second, readable.
    pub speed: String,
    /// Time left, readable ("" when unknown).
    pub eta: String,
    /// Time so far, readable.
    pub elapsed: String,
    /// Why it failed.
    pub error: Option<String>,
    /// How it ended.
    pub summary: Option<Summary>,
}

impl Job {
    fn new(id: u64, kind: JobKind, title: String, dataset: String) -> Job {
        Job {
            id,
            kind,
            title,
            dataset,
            started_at: Utc::now(),
            started: Instant::now(),
            planned: AtomicBool::new(false),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            current: Mutex::default(),
            state: Mutex::new(State::Running),
            finished: Mutex::default(),
            cancel: Cancel::new(),
        }
    }

    fn set_totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.planned.store(true, Ordering::Relaxed);
    }

    fn add_bytes(&self, path: &[u8], n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
        // Called by every reader thread for every buffer: never wait here;
        // another thread updating the name is as good.
        if let Ok(mut c) = self.current.try_lock()
            && c.as_slice() != path
        {
            c.clear();
            c.extend_from_slice(path);
        }
    }

    /// Say what the job is doing when it is not reading a file.
    pub fn set_current(&self, what: &str) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = what.as_bytes().to_vec();
    }

    fn add_file(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(&self, r: Result<Summary, JobError>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = match r {
            Ok(s) => State::Done(s),
            Err(JobError::Failed(e)) => State::Failed(e),
            Err(JobError::Cancelled) => State::Cancelled,
        };
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Ask the job to stop: sets its cancel token. Returns whether the job
    /// was still running (asking twice is harmless); `false` means it had
    /// already ended and nothing changed.
    pub fn cancel(&self) -> bool {
        // Under the state lock, so that a job is never ended and then
        // marked as asked to stop.
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Running) {
            self.cancel.cancel();
            true
        } else {
            false
        }
    }

    /// Whether cancel was asked for.
    pub fn cancel_requested(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether the job still runs.
    pub fn running(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            State::Running
        )
    }

    /// A consistent picture of the job now.
    pub fn view(&self) -> JobView {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let elapsed = self
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now)
            .duration_since(self.started);
        let files_done = self.files_done.load(Ordering::Relaxed);
        let files_total = self.files_total.load(Ordering::Relaxed);
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let planned = self.planned.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = bytes_done as f64 / secs;
        let running = matches!(state, State::Running);
        let percent = if matches!(state, State::Done(_)) {
            100
        } else if bytes_total > 0 {
            ((bytes_done.min(bytes_total) as f64 / bytes_total as f64) * 100.0) as u32
        } else if files_total > 0 {
            ((files_done.min(files_total) as f64 / files_total as f64) * 100.0) as u32
        } else {
            0
        };
        let eta = if running && planned && rate > 0.0 && bytes_total >= bytes_done {
            human_duration(Duration::from_secs_f64(
                (bytes_total - bytes_done) as f64 / rate,
            ))
        } else {
            String::new()
        };
        let (st, error, summary) = match state {
            State::Running => ("running", None, None),
            State::Done(s) => ("done", None, Some(s)),
            State::Failed(e) => ("failed", Some(e), None),
            State::Cancelled => ("cancelled", None, None),
        };
        JobView {
            id: self.id,
            kind: self.kind,
            kind_label: self.kind.label(),
            title: self.title.clone(),
            dataset: self.dataset.clone(),
            state: st,
            cancel_requested: self.cancel.is_cancelled(),
            started: self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            planned,
            files_done,
            files_total,
            bytes_done,
            bytes_total,
            bytes_done_h: human(bytes_done),
            bytes_total_h: human(bytes_total),
            percent,
            current: if running {
                display_path(&self.current.lock().unwrap_or_else(|p| p.into_inner()))
            } else {
                String::new()
            },
            speed: format!("{}/s", human(rate as u64)),
            eta,
            elapsed: human_duration(elapsed),
            error,
            summary,
        }
    }
}

/// Feeds a job's counters from the engine's progress callbacks.
#[derive(Debug)]
pub struct Tracker(pub Arc<Job>);

impl bk_core::Progress for Tracker {
    /// The phase that reads (backup) or writes (restore) files brings the
    /// totals; the others (scan, upload) have none.
    fn phase(&self, _phase: bk_core::Phase, totals: bk_core::Totals) {
        if let (Some(files), Some(bytes)) = (totals.files, totals.bytes) {
            self.0.set_totals(files, bytes);
        }
    }
    fn bytes(&self, path: &[u8], bytes: u64) {
        self.0.add_bytes(path, bytes);
    }
    fn file_done(&self, _path: &[u8]) {
        self.0.add_file();
    }
}

/// All jobs of this server.
#[derive(Debug, Default)]
pub struct JobStore {
    next: AtomicU64,
    jobs: Mutex<Vec<Arc<Job>>>,
}

impl JobStore {
    /// Start `work` on a new thread as job `kind` with `title`. `work` gets
    /// the job (for a [`Tracker`]) and the job's cancel token (for the
    /// operation's options), and returns the summary, or how it ended
    /// otherwise.
    pub fn spawn(
        &self,
        kind: JobKind,
        title: String,
        dataset: String,
        work: impl FnOnce(Arc<Job>, Cancel) -> Result<Summary, JobError> + Send + 'static,
    ) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job::new(id, kind, title, dataset));
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.push(job.clone());
            let finished = jobs.iter().filter(|j| !j.running()).count();
            if finished > KEEP_FINISHED {
                let mut drop_n = finished - KEEP_FINISHED;
                jobs.retain(|j| {
                    if drop_n > 0 && !j.running() {
                        drop_n -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        let j = job.clone();
        let cancel = job.cancel.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("bk-web-job-{id}"))
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(j.clone(), cancel)
                }))
                .unwrap_or_else(|_| Err("the job stopped on an internal error".into()));
                j.finish(r);
            });
        if let Err(e) = spawned {
            job.finish(Err(format!("could not start the job: {e}").into()));
        }
        job
    }

    /// The job with this number.
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|j| j.id == id)
            .cloned()
    }

    /// All jobs, newest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        let mut v = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.reverse();
        v
    }
}

/// `1.5 MiB`.
pub fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
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
}
