//! The bk backup engine.
//!
//! bk keeps the version history of directory trees ("datasets") in a
//! repository. File content is cut into content-defined chunks, each stored
//! once (its id is the blake3 of its plaintext), compressed with zstd and
//! packed into ~16 MiB packs; directories become tree blobs, so an unchanged
//! directory costs nothing; a snapshot names a root tree and is complete on
//! its own. The format is described in `docs/FORMAT.md`.
//!
//! The simplest door is the original API:
//!
//! ```
//! # fn main() -> Result<(), bk_core::Error> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let data = tmp.path().join("dataset");
//! # std::fs::create_dir(&data).unwrap();
//! # std::fs::write(data.join("a.txt"), "version 1").unwrap();
//! use bk_core::{make_backup, recover_backup, Select};
//!
//! let repo = tmp.path().join("backups");
//! let first = make_backup(&repo, &data, false)?;          // snapshot 0 of "dataset"
//! std::fs::write(data.join("a.txt"), "version 2").unwrap();
//! make_backup(&repo, &data, false)?;                        // snapshot 1, only the change is stored
//!
//! let out = tmp.path().join("restored");
//! recover_backup(&repo, "dataset", &out, Select::Id(first.id))?;
//! assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "version 1");
//! # Ok(()) }
//! ```
//!
//! For more control use [`Repository`], [`backup`] with [`BackupOptions`],
//! and [`restore()`] with [`RestoreOptions`].
#![deny(missing_docs)]

pub mod chunker;
pub mod connector;
pub mod diff;
mod error;
pub mod id;
pub mod index;
pub mod location;
pub mod ops;
pub mod pack;
pub mod progress;
pub mod repo;
pub mod snapshot;
pub mod tree;

use std::path::Path;

pub use connector::ftp::{FtpBackend, FtpSource, FtpTarget};
pub use connector::local::{LocalBackend, LocalSource, LocalTarget};
pub use connector::{Backend, Source, Target};
pub use diff::Change;
pub use error::{Error, Result};
pub use id::Id;
pub use ops::backup::{BackupOptions, backup};
pub use ops::check::{CheckOptions, CheckReport, check, check_with};
pub use ops::diff::diff_snapshots;
pub use ops::ls::{ListEntry, list_snapshot, list_snapshot_partial};
pub use ops::restore::{RestoreOptions, RestoreReport, restore};
pub use progress::{Cancel, NoProgress, Phase, Progress, Totals};
pub use repo::Repository;
pub use snapshot::{Select, Snapshot, SnapshotSummary, parse_time};

/// Back up the directory `dataset_path` into the local repository `repo`
/// (created if absent). The dataset is named after the directory's last
/// component. `full` re-reads every file instead of trusting unchanged size,
/// mtime and inode.
///
/// Files that cannot be read do not stop the backup: they are listed in the
/// summary's `warnings`.
pub fn make_backup(
    repo: impl AsRef<Path>,
    dataset_path: impl AsRef<Path>,
    full: bool,
) -> Result<SnapshotSummary> {
    let path = dataset_path.as_ref();
    let name = connector::local::default_dataset_name(path).ok_or_else(|| Error::BadSource {
        path: path.to_path_buf(),
        reason: "cannot derive a dataset name from it; give one explicitly".into(),
    })?;
    let src = LocalSource::new(path, &[])?;
    src.root()?;
    let repo = Repository::open_or_init_local(repo.as_ref())?;
    let snap = backup(&repo, &src, &BackupOptions::new(name).full(full))?;
    Ok(snap.summary())
}

/// Restore a snapshot of `dataset` from the local repository `repo` into
/// `out_dir` (absent or empty): the latest, by number, or the newest one
/// before a time. Files that could not be restored are listed in the
/// report's `outcome.errors`.
pub fn recover_backup(
    repo: impl AsRef<Path>,
    dataset: &str,
    out_dir: impl AsRef<Path>,
    select: Select,
) -> Result<RestoreReport> {
    let repo = Repository::open_local(repo.as_ref())?;
    restore(
        &repo,
        dataset,
        out_dir.as_ref(),
        &RestoreOptions::new(select),
    )
}
