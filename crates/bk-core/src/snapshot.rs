//! Snapshots: one backup of one dataset, numbered 0, 1, 2 … per dataset.

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::layout::SNAPSHOTS_DIR;

/// What a backup counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Regular files in the snapshot.
    pub files: u64,
    /// Directories (the root excluded).
    pub dirs: u64,
    /// Symlinks, FIFOs.
    pub others: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Entries added since the parent.
    pub added: u64,
    /// Entries whose content changed since the parent.
    pub modified: u64,
    /// Entries gone since the parent.
    pub deleted: u64,
    /// Files read (the rest were unchanged and trusted).
    pub files_read: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// New pack bytes written by this backup.
    pub stored_bytes: u64,
    /// New blobs stored.
    pub blobs_stored: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// A problem met during a backup that did not stop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Path relative to the dataset root (lossy display form).
    pub path: String,
    /// What happened.
    pub message: String,
}

/// Metadata of the dataset's root directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMeta {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Seconds.
    pub mtime: i64,
    /// Nanoseconds.
    pub mtime_nsec: u32,
}

/// One snapshot, stored as JSON in `snapshots/<dataset>/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The dataset's name.
    pub dataset: String,
    /// Number within the dataset.
    pub id: u64,
    /// When the backup started.
    pub time: DateTime<FixedOffset>,
    /// Whether every file was re-read.
    pub full: bool,
    /// The snapshot compared against.
    pub parent: Option<u64>,
    /// Root tree.
    pub tree: Id,
    /// Root directory metadata.
    pub root: RootMeta,
    /// What was backed up (a path or URL, never with a password).
    pub source: String,
    /// Host name.
    pub host: String,
    /// Counts.
    pub stats: Stats,
    /// Files that could not be read, and other problems.
    pub warnings: Vec<Warning>,
}

/// The flat summary the CLI prints with `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Dataset.
    pub dataset: String,
    /// Snapshot number.
    pub id: u64,
    /// RFC 3339 time.
    pub time: String,
    /// Full or incremental.
    pub full: bool,
    /// Files.
    pub files: u64,
    /// Bytes of content.
    pub bytes: u64,
    /// Added entries.
    pub added: u64,
    /// Modified entries.
    pub modified: u64,
    /// Deleted entries.
    pub deleted: u64,
    /// New bytes stored.
    pub stored_bytes: u64,
    /// Files read from the source (the others were unchanged and trusted).
    pub files_read: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Warnings (files not read and so on).
    pub warnings: Vec<Warning>,
    /// Parent snapshot.
    pub parent: Option<u64>,
    /// Source path or URL.
    pub source: String,
    /// Milliseconds.
    pub duration_ms: u64,
}

impl Snapshot {
    /// The flat summary.
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            dataset: self.dataset.clone(),
            id: self.id,
            time: self.time.to_rfc3339(),
            full: self.full,
            files: self.stats.files,
            bytes: self.stats.bytes,
            added: self.stats.added,
            modified: self.stats.modified,
            deleted: self.stats.deleted,
            stored_bytes: self.stats.stored_bytes,
            files_read: self.stats.files_read,
            bytes_read: self.stats.bytes_read,
            warnings: self.warnings.clone(),
            parent: self.parent,
            source: self.source.clone(),
            duration_ms: self.stats.duration_ms,
        }
    }
}

/// Which snapshot to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The newest.
    Latest,
    /// By number.
    Id(u64),
    /// The newest one strictly before this time.
    Before(DateTime<FixedOffset>),
}

/// Pick a snapshot from a dataset's list (sorted by id).
pub fn select<'a>(dataset: &str, snaps: &'a [Snapshot], sel: Select) -> Result<&'a Snapshot> {
    if snaps.is_empty() {
        return Err(Error::NoSnapshots(dataset.to_string()));
    }
    match sel {
        Select::Latest => Ok(snaps.iter().max_by_key(|s| s.id).expect("non-empty")),
        Select::Id(id) => snaps
            .iter()
            .find(|s| s.id == id)
            .ok_or(Error::NoSuchSnapshot {
                dataset: dataset.to_string(),
                id,
            }),
        Select::Before(t) => snaps
            .iter()
            .filter(|s| s.time < t)
            .max_by_key(|s| (s.time, s.id))
            .ok_or_else(|| Error::NoneBefore {
                dataset: dataset.to_string(),
                before: t.to_rfc3339(),
            }),
    }
}

/// Parse a `--before` time: `YYYY-MM-DD` (start of that day, local time),
/// `YYYY-MM-DD HH:MM[:SS]` (local time), or RFC 3339 with an offset.
pub fn parse_time(s: &str) -> Result<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let local = |n: NaiveDateTime| -> Result<DateTime<FixedOffset>> {
        Local
            .from_local_datetime(&n)
            .earliest()
            .map(|t| t.fixed_offset())
            .ok_or_else(|| {
                Error::Invalid(format!("time {s:?} does not exist in the local time zone"))
            })
    };
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return local(n);
        }
    }
    Err(Error::Invalid(format!(
        "cannot read time {s:?}: use YYYY-MM-DD, \"YYYY-MM-DD HH:MM[:SS]\" (local time) or RFC 3339 such as 2024-05-01T12:00:00+02:00"
    )))
}

/// Check a dataset name: non-empty, at most 200 bytes, no `/`, NUL or
/// control characters, not `.` or `..`.
pub fn check_dataset_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 200
        || name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c.is_control())
    {
        return Err(Error::Invalid(if name.is_empty() {
            "the dataset name is empty: give a name of 1–200 bytes without '/' or control characters".to_string()
        } else {
            format!(
                "invalid dataset name {name:?}: use 1–200 bytes without '/' or control characters"
            )
        }));
    }
    // The directory name is the percent-encoded name: every byte other than
    // a letter, digit, '-', '_' or '.' takes three, and file systems allow
    // 255 bytes per name.
    let encoded = crate::repo::layout::dataset_dir(name).len() - SNAPSHOTS_DIR.len() - 1;
    if encoded > 255 {
        return Err(Error::Invalid(format!(
            "dataset name {name:?} is too long: stored as a directory name it takes {encoded} bytes (each byte other than a letter, digit, '-', '_' or '.' takes 3), and file systems allow 255; choose a shorter name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        let t = parse_time("2024-05-01T12:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00+02:00");
        let d = parse_time("2024-05-01").unwrap();
        assert_eq!(d.naive_local().to_string(), "2024-05-01 00:00:00");
        let m = parse_time("2024-05-01 13:45").unwrap();
        assert_eq!(m.naive_local().to_string(), "2024-05-01 13:45:00");
        assert!(parse_time("yesterday").is_err());
    }
}
