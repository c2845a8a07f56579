//! `ls`: the entries of a snapshot, from the same plan a restore makes.

use crate::error::{Error, Result};
use crate::ops::restore::{self, UnreadableDir};
use crate::repo::Repository;
use crate::snapshot::Snapshot;
use crate::tree;

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
) -> Result<(Vec<ListEntry>, Vec<UnreadableDir>)> {
    let idx = repo.index()?;
    let plan = restore::plan(repo, &idx, snap, path)?;
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
