//! Backups and restores started from the UI run as jobs on their own
//! threads; pages and the event stream read their counters.
//!
//! A job record holds what the user may see (titles with paths and URLs
//! that never include a password, counters, the summary); the credentials
//! live only in the closure the job's thread runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bk_core::tree::display_path;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// At most this many finished jobs are remembered.
const KEEP_FINISHED: usize = 200;

/// A backup or a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A backup.
    Backup,
    /// A restore.
    Restore,
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
}

/// One job.
#[derive(Debug)]
pub struct Job {
    /// Its number.
    pub id: u64,
    /// Backup or restore.
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
}

/// What a page or an event shows of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Number.
    pub id: u64,
    /// backup / restore.
    pub kind: JobKind,
    /// What it does.
    pub title: String,
    /// Dataset.
    pub dataset: String,
    /// `running`, `done`, `failed`.
    pub state: &'static str,
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

    fn finish(&self, r: Result<Summary, String>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = match r {
            Ok(s) => State::Done(s),
            Err(e) => State::Failed(e),
        };
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
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
        let percent = if !running && !matches!(state, State::Failed(_)) {
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
        };
        JobView {
            id: self.id,
            kind: self.kind,
            title: self.title.clone(),
            dataset: self.dataset.clone(),
            state: st,
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
    /// the job (for a [`Tracker`]) and returns the summary or a message.
    pub fn spawn(
        &self,
        kind: JobKind,
        title: String,
        dataset: String,
        work: impl FnOnce(Arc<Job>) -> Result<Summary, String> + Send + 'static,
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
        let spawned = std::thread::Builder::new()
            .name(format!("bk-web-job-{id}"))
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(j.clone())))
                    .unwrap_or_else(|_| Err("the job stopped on an internal error".into()));
                j.finish(r);
            });
        if let Err(e) = spawned {
            job.finish(Err(format!("could not start the job: {e}")));
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
        let job = store.spawn(JobKind::Backup, "t".into(), "ds".into(), move |j| {
            let t = Tracker(j);
            let totals = bk_core::Totals {
                files: Some(2),
                bytes: Some(200),
            };
            bk_core::Progress::phase(&t, bk_core::Phase::Read, totals);
            bk_core::Progress::bytes(&t, b"a/b", 100);
            bk_core::Progress::file_done(&t, b"a/b");
            rx.recv().ok();
            Ok(Summary::default())
        });
        let t = Instant::now();
        while job.view().files_done < 1 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
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
        let job = store.spawn(JobKind::Restore, "t".into(), "ds".into(), |_| {
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

    #[test]
    fn human_units() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human_duration(Duration::from_secs(65)), "1 min 05 s");
    }
}
