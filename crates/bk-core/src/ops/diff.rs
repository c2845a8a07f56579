//! `diff`: what changed between two snapshots, by one merge walk over
//! their trees that skips unchanged subtrees by id.

use crate::diff::{Change, diff_trees};
use crate::error::Result;
use crate::id::Id;
use crate::repo::Repository;
use crate::snapshot::Snapshot;
use crate::tree;

/// Compare two snapshots of a dataset: (change, path, node) triples.
pub fn diff_snapshots(
    repo: &Repository,
    a: &Snapshot,
    b: &Snapshot,
) -> Result<Vec<(Change, Vec<u8>, tree::Node)>> {
    let idx = repo.index()?;
    let mut out = Vec::new();
    let mut load = |id: &Id| repo.read_tree(&idx, id);
    diff_trees(&mut load, Some(&a.tree), Some(&b.tree), &mut |c, p, n| {
        out.push((c, p.to_vec(), n.clone()));
    })?;
    Ok(out)
}
