//! The state directory of `bk web` (`--state-dir`, by default
//! `$XDG_STATE_HOME/bk/web` or `~/.local/state/bk/web`, mode 700):
//!
//! ```text
//! cert.pem, key.pem   the self-signed certificate (key mode 600), see tls.rs
//! jobs.jsonl          the job history: one JSON object per line
//! ```
//!
//! A job writes a line when it starts (state `running`) and one when it
//! ends; the last line of a job number wins. At start the file is read back
//! (a job still `running` there was cut off by the server's stop and is
//! shown as `interrupted`), compacted to the newest [`KEEP`] jobs, and new
//! job numbers continue after the highest one. A line never holds a
//! password: titles name paths and URLs without them, errors were scrubbed
//! before they reached the job.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::jobs::{JobKind, Summary};

/// Jobs kept in the history file.
pub const KEEP: usize = 200;

/// The default state directory.
pub fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(base.join("bk/web"))
}

/// Create `dir` (and its parents) and make it mode 700.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the state directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making the state directory {} private", dir.display()))
}

/// One line of `jobs.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Job number.
    pub id: u64,
    /// Operation.
    pub kind: JobKind,
    /// What it did.
    pub title: String,
    /// Dataset.
    pub dataset: String,
    /// Who may see it.
    pub owner: String,
    /// `running`, `done`, `failed`, `cancelled`.
    pub state: String,
    /// Start, RFC 3339 UTC.
    pub started: String,
    /// End, RFC 3339 UTC.
    #[serde(default)]
    pub ended: Option<String>,
    /// Duration in milliseconds.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Counters at the end.
    #[serde(default)]
    pub files_done: u64,
    /// Counters at the end.
    #[serde(default)]
    pub files_total: u64,
    /// Counters at the end.
    #[serde(default)]
    pub bytes_done: u64,
    /// Counters at the end.
    #[serde(default)]
    pub bytes_total: u64,
    /// How it ended.
    #[serde(default)]
    pub summary: Option<Summary>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// The history file, appended to by jobs.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    file: Mutex<()>,
}

impl History {
    /// Open (and compact) `dir/jobs.jsonl`; returns the stored jobs, oldest
    /// first, one record per job number.
    pub fn open(dir: &Path) -> anyhow::Result<(History, Vec<Record>)> {
        let path = dir.join("jobs.jsonl");
        let mut recs: Vec<Record> = Vec::new();
        match std::fs::File::open(&path) {
            Ok(f) => {
                for line in std::io::BufReader::new(f).lines() {
                    let line = line.with_context(|| format!("reading {}", path.display()))?;
                    // A line cut off by a crash is skipped, not fatal.
                    let Ok(r) = serde_json::from_str::<Record>(&line) else {
                        continue;
                    };
                    match recs.iter_mut().find(|x| x.id == r.id) {
                        Some(x) => *x = r,
                        None => recs.push(r),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        recs.sort_by_key(|r| r.id);
        if recs.len() > KEEP {
            recs.drain(..recs.len() - KEEP);
        }
        for r in &mut recs {
            if r.state == "running" {
                r.state = "interrupted".into();
            }
        }
        let mut text = String::new();
        for r in &recs {
            text.push_str(&serde_json::to_string(r).context("writing the job history")?);
            text.push('\n');
        }
        let tmp = dir.join("jobs.jsonl.tmp");
        crate::tls::write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok((
            History {
                path,
                file: Mutex::new(()),
            },
            recs,
        ))
    }

    /// Append one record (one `write` of one line, so lines never mix).
    pub fn append(&self, r: &Record) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut line = serde_json::to_string(r).context("writing the job history")?;
        line.push('\n');
        let _g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        f.write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
