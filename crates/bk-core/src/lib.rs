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
pub mod repo;
pub mod snapshot;
pub mod tree;

use std::path::Path;

pub use bk_ftp;
pub use connector::ftp::{FtpBackend, FtpSource, FtpTarget};
pub use connector::local::{LocalBackend, LocalSource, LocalTarget};
pub use connector::{Backend, Source, Target};
pub use diff::Change;
pub use error::{Error, Result};
pub use id::Id;
pub use ops::backup::{BackupOptions, Progress, backup};
pub use ops::check::{CheckReport, check};
pub use ops::restore::{RestoreOptions, RestoreProgress, RestoreReport, restore};
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

/// One entry of a snapshot listing.
#[derive(Debug, Clone)]
pub struct ListEntry {
    /// Path relative to the dataset root (bytes).
    pub path: Vec<u8>,
    /// The node.
    pub node: tree::Node,
}

/// List a snapshot's entries under `path` (recursively). A directory whose
/// tree cannot be read is an error naming it; [`list_snapshot_partial`]
/// lists around it instead.
pub fn list_snapshot(
    repo: &Repository,
    snap: &Snapshot,
    path: Option<&[u8]>,
) -> Result<Vec<ListEntry>> {
    let (entries, unreadable) = list_snapshot_partial(repo, snap, path)?;
    match unreadable.into_iter().next() {
        Some(u) => Err(Error::UnreadableDir {
            path: if u.path.is_empty() {
                ".".into()
            } else {
                tree::display_path(&u.path)
            },
            reason: u.reason,
        }),
        None => Ok(entries),
    }
}

/// List a snapshot's entries under `path` (recursively), and the
/// directories whose contents could not be read (listed themselves, empty).
pub fn list_snapshot_partial(
    repo: &Repository,
    snap: &Snapshot,
    path: Option<&[u8]>,
) -> Result<(Vec<ListEntry>, Vec<ops::restore::UnreadableDir>)> {
    let idx = repo.load_index()?;
    let plan = ops::restore::plan(repo, &idx, snap, path)?;
    let unreadable = plan.unreadable;
    let skip_parents = path.map_or(0, |p| {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .count()
            .saturating_sub(1)
    });
    let mut out: Vec<ListEntry> = plan
        .dirs
        .into_iter()
        .skip(skip_parents)
        .chain(plan.files)
        .chain(plan.specials)
        .map(|e| ListEntry {
            path: e.path,
            node: e.node,
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((out, unreadable))
}

/// Compare two snapshots of a dataset: (change, path, node) triples.
pub fn diff_snapshots(
    repo: &Repository,
    a: &Snapshot,
    b: &Snapshot,
) -> Result<Vec<(Change, Vec<u8>, tree::Node)>> {
    let idx = repo.load_index()?;
    let mut out = Vec::new();
    let mut load = |id: &Id| repo.read_tree(&idx, id);
    diff::diff_trees(&mut load, Some(&a.tree), Some(&b.tree), &mut |c, p, n| {
        out.push((c, p.to_vec(), n.clone()));
    })?;
    Ok(out)
}
