//! The one error type of bk-core.

use std::io;
use std::path::PathBuf;

use crate::id::Id;

/// Everything that can go wrong in the engine. Messages name the action and
/// the object; foreign errors are kept as `source`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local I/O operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "creating directory" …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An operation on a repository file failed in the backend.
    #[error("{action} repository file {name}: {source}")]
    Backend {
        /// What was being done.
        action: &'static str,
        /// The repository-relative name.
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The repository does not exist.
    #[error("no bk repository at {0} (create one with `bk init`, or run `bk backup`)")]
    NoRepository(String),
    /// The repository path exists but is not a directory or not a repository.
    #[error("{0} is not a bk repository: {1}")]
    NotARepository(String, String),
    /// The repository was written by a newer bk.
    #[error(
        "repository format version {found} is newer than this bk supports (version {supported}); upgrade bk to use it"
    )]
    NewerFormat {
        /// The version the repository declares.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Another process holds the repository lock.
    #[error("repository is locked by {holder}; if that process is gone, run `bk unlock`")]
    Locked {
        /// Who holds it (pid, host, command, since when).
        holder: String,
    },
    /// A repository file failed verification.
    #[error("corrupt repository file {name}: {reason}")]
    Corrupt {
        /// The repository-relative name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// A blob a tree or snapshot refers to is not in the index.
    #[error("blob {0} is not in the repository index")]
    MissingBlob(Id),
    /// A blob's content does not match its id.
    #[error("blob {id} in pack {pack} is damaged: {reason}")]
    DamagedBlob {
        /// The blob.
        id: Id,
        /// The pack it was read from.
        pack: Id,
        /// What was wrong.
        reason: String,
    },
    /// The dataset has no snapshots.
    #[error("dataset {0:?} has no snapshots in this repository")]
    NoSnapshots(String),
    /// No snapshot with that number.
    #[error("dataset {dataset:?} has no snapshot {id}")]
    NoSuchSnapshot {
        /// The dataset.
        dataset: String,
        /// The requested number.
        id: u64,
    },
    /// No snapshot strictly before the given time.
    #[error("dataset {dataset:?} has no snapshot before {before}")]
    NoneBefore {
        /// The dataset.
        dataset: String,
        /// The requested time (RFC 3339).
        before: String,
    },
    /// The path given to restore or ls is not in the snapshot.
    #[error("path {path:?} does not exist in snapshot {id} of {dataset:?}")]
    PathNotFound {
        /// The dataset.
        dataset: String,
        /// The snapshot.
        id: u64,
        /// The path asked for.
        path: String,
    },
    /// A directory of a snapshot whose tree blob cannot be read or parsed.
    #[error("cannot read directory {path:?} of the snapshot: {reason}")]
    UnreadableDir {
        /// The directory (relative to the dataset root; "." is the root).
        path: String,
        /// The repository error.
        reason: String,
    },
    /// A name read from the repository would escape the output directory.
    #[error(
        "refusing unsafe name {name:?} in the repository (it would write outside the output directory)"
    )]
    UnsafeName {
        /// The name, lossily decoded.
        name: String,
    },
    /// The source of a backup is not a directory.
    #[error("cannot back up {}: {reason}", path.display())]
    BadSource {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The restore output directory is not empty.
    #[error("output directory {} is not empty (pass --overwrite to restore into it)", .0.display())]
    OutputNotEmpty(PathBuf),
    /// Bad user input.
    #[error("{0}")]
    Invalid(String),
    /// The operation was cancelled (Ctrl-C, SIGTERM, a Cancel button)
    /// and stopped cleanly: a backup committed nothing, a restore left no
    /// partially written file under its real name.
    #[error("interrupted")]
    Cancelled,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the action and path to a `std::io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.into(),
            source,
        })
    }
}

/// Attach the action and repository file name to a `std::io::Error`.
pub(crate) fn backend_err(action: &'static str, name: &str, source: io::Error) -> Error {
    Error::Backend {
        action,
        name: name.to_string(),
        source,
    }
}
