//! One progress interface for every operation, and the cancel token.
//!
//! An operation moves through [`Phase`]s (a backup scans, then reads and
//! uploads; a restore writes; a check reads). It tells its [`Progress`]
//! receiver when a phase starts and with what totals, then how many bytes
//! and files are done. Receivers are called from worker threads, so they
//! must be cheap and thread-safe; every method has a no-op default.
//!
//! A [`Cancel`] token is shared between the frontend (a signal handler, a
//! Cancel button) and the running operation, which checks it between units
//! of work and stops with [`crate::Error::Cancelled`]: nothing committed,
//! the lock released, temporary files removed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A stage of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Walking the source and comparing it with the parent snapshot.
    Scan,
    /// Reading changed files (and uploading their packs).
    Read,
    /// Writing packs, index and snapshot to the repository.
    Upload,
    /// Writing restored files through the target.
    Restore,
    /// Verifying repository files.
    Check,
}

impl Phase {
    /// A lowercase word for messages.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Scan => "scanning",
            Phase::Read => "reading",
            Phase::Upload => "uploading",
            Phase::Restore => "restoring",
            Phase::Check => "checking",
        }
    }
}

/// What a phase will do, where known in advance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Files (or other units: packs for a check) to go through.
    pub files: Option<u64>,
    /// Bytes to go through.
    pub bytes: Option<u64>,
}

/// Receives the progress of an operation. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A phase starts, with its totals where known.
    fn phase(&self, _phase: Phase, _totals: Totals) {}
    /// `bytes` more bytes of `path` were done in the current phase.
    fn bytes(&self, _path: &[u8], _bytes: u64) {}
    /// A file (or unit) of the current phase is finished.
    fn file_done(&self, _path: &[u8]) {}
}

/// The receiver that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Asks a running operation to stop. Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the operation to stop (safe from any thread; idempotent).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancelled: the operation's check point.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The shared flag, for a signal handler that can only store to an
    /// atomic (`signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// Helpers for the cancel tests of the operations.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::connector::local::LocalBackend;
    use crate::repo::Repository;

    /// Cancels `cancel` once `after` bytes were reported, from whichever
    /// worker thread reports them, as a Ctrl-C in the middle would.
    #[derive(Debug)]
    pub struct CancelAfter {
        pub cancel: Cancel,
        pub after: u64,
        pub seen: AtomicU64,
        pub phases: std::sync::Mutex<Vec<Phase>>,
    }

    impl CancelAfter {
        pub fn new(after: u64) -> Arc<CancelAfter> {
            Arc::new(CancelAfter {
                cancel: Cancel::new(),
                after,
                seen: AtomicU64::new(0),
                phases: Default::default(),
            })
        }
        pub fn seen(&self) -> u64 {
            self.seen.load(Ordering::SeqCst)
        }
    }

    impl Progress for CancelAfter {
        fn phase(&self, phase: Phase, _: Totals) {
            self.phases.lock().unwrap().push(phase);
        }
        fn bytes(&self, _: &[u8], n: u64) {
            if self.seen.fetch_add(n, Ordering::SeqCst) + n >= self.after {
                self.cancel.cancel();
            }
        }
    }

    /// Incompressible bytes.
    pub fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// `files` files of `size` incompressible bytes under `dir/ds`, in two
    /// directories.
    pub fn dataset(dir: &Path, files: u64, size: usize) -> PathBuf {
        let root = dir.join("ds");
        for i in 0..files {
            let sub = root.join(format!("d{}", i % 2));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(format!("f{i}")), noise(i + 1, size)).unwrap();
        }
        root
    }

    /// A local repository with 1 MiB packs, so that packs are uploaded
    /// while a backup reads.
    pub fn small_pack_repo(root: &Path) -> Repository {
        Repository::init(Arc::new(LocalBackend::new(root))).unwrap();
        let cfg = root.join("config");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        c["pack_size"] = serde_json::json!(1 << 20);
        std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
        Repository::open_local(root).unwrap()
    }

    /// Files under `dir` named like a temporary file of bk (the backends'
    /// `.tmp-…` and `….bkftp-part`, the local target's `.bk-restore-…`).
    pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-")
                    || name.starts_with(".bk-restore-")
                    || name.ends_with(".bkftp-part")
                {
                    out.push(e.path());
                }
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let c = Cancel::new();
        let d = c.clone();
        assert!(c.check().is_ok());
        d.cancel();
        assert!(c.is_cancelled());
        assert!(matches!(c.check(), Err(Error::Cancelled)));
        c.flag().store(false, Ordering::SeqCst);
        assert!(!d.is_cancelled());
    }
}
