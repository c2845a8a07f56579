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
//! failed. A job runs `Running` → `Done`, `Failed` or `Cancelled`; a job
//! read back from the history that was running when the server stopped is
//! `Interrupted`.
//!
//! Each job has an [`Owner`]: pages list and open only the jobs of their
//! session's owner ([`JobStore::list_for`], [`JobStore::get_for`]); another
//! owner's job is "not found", exactly like a missing one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bk_core::Cancel;
use bk_core::tree::display_path;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Log;
use crate::state::{History, Record};
pub use crate::units::{human, human_duration};

/// At most this many finished jobs are remembered.
const KEEP_FINISHED: usize = crate::state::KEEP;

/// Who may see a job. There is one user: whoever passed the UI password or
/// opened the sign-in address is [`Owner::user`], in every session and
/// across restarts; a session that did neither owns nothing and sees
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    /// The signed-in user.
    pub fn user() -> Owner {
        Owner("user".into())
    }
    /// Another owner (for tools, and for tests of the separation).
    pub fn named(n: &str) -> Owner {
        Owner(n.to_string())
    }
    /// Its name, as the history stores it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The operation a job runs. Adding one: a variant here and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    Interrupted,
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
    /// Who may see it.
    pub owner: Owner,
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
    /// `running`, `done`, `failed`, `cancelled`, `interrupted`.
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
    fn new(id: u64, kind: JobKind, title: String, dataset: String, owner: Owner) -> Job {
        Job {
            id,
            kind,
            title,
            dataset,
            owner,
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

    /// A job of an earlier run, from its history record.
    fn stored(r: Record) -> Job {
        let mut j = Job::new(r.id, r.kind, r.title, r.dataset, Owner(r.owner));
        if let Ok(t) = DateTime::parse_from_rfc3339(&r.started) {
            j.started_at = t.with_timezone(&Utc);
        }
        j.planned = AtomicBool::new(r.files_total > 0 || r.bytes_total > 0);
        j.files_done = AtomicU64::new(r.files_done);
        j.files_total = AtomicU64::new(r.files_total);
        j.bytes_done = AtomicU64::new(r.bytes_done);
        j.bytes_total = AtomicU64::new(r.bytes_total);
        j.finished = Mutex::new(Some(j.started + Duration::from_millis(r.elapsed_ms)));
        j.state = Mutex::new(match r.state.as_str() {
            "done" => State::Done(r.summary.unwrap_or_default()),
            "failed" => State::Failed(r.error.unwrap_or_default()),
            "cancelled" => State::Cancelled,
            _ => State::Interrupted,
        });
        j
    }

    /// What the history keeps of the job now.
    fn record(&self) -> Record {
        let v = self.view();
        let elapsed = self
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now)
            .duration_since(self.started);
        Record {
            id: self.id,
            kind: self.kind,
            title: self.title.clone(),
            dataset: self.dataset.clone(),
            owner: self.owner.0.clone(),
            state: v.state.to_string(),
            started: v.started,
            ended: (v.state != "running")
                .then(|| Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
            elapsed_ms: elapsed.as_millis() as u64,
            files_done: v.files_done,
            files_total: v.files_total,
            bytes_done: v.bytes_done,
            bytes_total: v.bytes_total,
            summary: v.summary,
            error: v.error,
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
            State::Interrupted => (
                "interrupted",
                Some("The server stopped while this job ran.".to_string()),
                None,
            ),
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
    history: Option<Arc<History>>,
    log: Log,
}

/// Keep the job's state in the history; a full disk must not stop a job.
fn keep(history: &Option<Arc<History>>, log: &Log, job: &Job) {
    if let Some(h) = history
        && let Err(e) = h.append(&job.record())
    {
        log.line(&format!("job {}: not kept in the history: {e:#}", job.id));
    }
}

impl JobStore {
    /// A store that keeps its jobs in `history` (the jobs read back from it
    /// come first; new numbers continue after theirs) and logs their starts
    /// and ends to `log`.
    pub fn new(history: Option<History>, stored: Vec<Record>, log: Log) -> JobStore {
        let next = stored.iter().map(|r| r.id).max().unwrap_or(0);
        JobStore {
            next: AtomicU64::new(next),
            jobs: Mutex::new(
                stored
                    .into_iter()
                    .map(|r| Arc::new(Job::stored(r)))
                    .collect(),
            ),
            history: history.map(Arc::new),
            log,
        }
    }

    /// Start `work` as a job of the signed-in user ([`Owner::user`]); see
    /// [`JobStore::spawn_as`].
    pub fn spawn(
        &self,
        kind: JobKind,
        title: String,
        dataset: String,
        work: impl FnOnce(Arc<Job>, Cancel) -> Result<Summary, JobError> + Send + 'static,
    ) -> Arc<Job> {
        self.spawn_as(Owner::user(), kind, title, dataset, work)
    }

    /// Start `work` on a new thread as job `kind` with `title`, owned by
    /// `owner`. `work` gets the job (for a [`Tracker`]) and the job's cancel
    /// token (for the operation's options), and returns the summary, or how
    /// it ended otherwise.
    pub fn spawn_as(
        &self,
        owner: Owner,
        kind: JobKind,
        title: String,
        dataset: String,
        work: impl FnOnce(Arc<Job>, Cancel) -> Result<Summary, JobError> + Send + 'static,
    ) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job::new(id, kind, title, dataset, owner));
        self.log.line(&format!(
            "job {id} {} started: {}",
            kind.label().to_lowercase(),
            job.title.escape_debug()
        ));
        keep(&self.history, &self.log, &job);
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
        let (history, log) = (self.history.clone(), self.log.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bk-web-job-{id}"))
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(j.clone(), cancel)
                }))
                .unwrap_or_else(|_| Err("the job stopped on an internal error".into()));
                j.finish(r);
                ended(&history, &log, &j);
            });
        if let Err(e) = spawned {
            job.finish(Err(format!("could not start the job: {e}").into()));
            ended(&self.history, &self.log, &job);
        }
        job
    }

    /// The job with this number, if `owner` may see it.
    pub fn get_for(&self, id: u64, owner: &Owner) -> Option<Arc<Job>> {
        self.get(id).filter(|j| j.owner == *owner)
    }

    /// The jobs `owner` may see, newest first.
    pub fn list_for(&self, owner: &Owner) -> Vec<Arc<Job>> {
        let mut v = self.list();
        v.retain(|j| j.owner == *owner);
        v
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

fn ended(history: &Option<Arc<History>>, log: &Log, job: &Job) {
    let v = job.view();
    let why = v
        .error
        .as_deref()
        .map(|e| format!(": {}", e.escape_debug()))
        .unwrap_or_default();
    log.line(&format!(
        "job {} {} {} after {}{why}",
        job.id,
        job.kind.label().to_lowercase(),
        v.state,
        v.elapsed
    ));
    keep(history, log, job);
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
