//! Planning a restore: which directories, files and special entries of a
//! snapshot are written, for the whole snapshot or a selection of paths.
//!
//! A selection is a union: `a` and `a/b` restore `a` once, whole; `a/b`
//! and `a/c` create `a` once, as a parent that is not written in full.
//! Each selected path keeps its place under the output directory.

use std::collections::HashSet;

use super::{PlanEntry, RestorePlan, UnreadableDir};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::Index;
use crate::repo::Repository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind, Tree, check_name, display_path, join, shown};

/// Add the entries of directory `prefix` (tree `tree`). A tree that cannot
/// be read or is malformed costs only that directory's contents: it is
/// recorded in `plan.unreadable` and the walk goes on. A name that would
/// escape the output is no damage but a hostile repository: that refuses
/// the whole restore.
fn collect(
    repo: &Repository,
    idx: &Index,
    tree: &Id,
    prefix: &[u8],
    plan: &mut RestorePlan,
) -> Result<()> {
    let t = match read_checked_tree(repo, idx, tree) {
        Ok(t) => t,
        Err(e @ Error::UnsafeName { .. }) => return Err(e),
        Err(e) => {
            plan.unreadable.push(UnreadableDir {
                path: prefix.to_vec(),
                reason: e.to_string(),
            });
            return Ok(());
        }
    };
    for n in t.nodes {
        add_node(repo, idx, prefix, n, plan)?;
    }
    Ok(())
}

fn read_checked_tree(repo: &Repository, idx: &Index, tree: &Id) -> Result<Tree> {
    let t = repo.read_tree(idx, tree)?;
    check_tree(&t)?;
    Ok(t)
}

fn check_tree(t: &Tree) -> Result<()> {
    for (i, n) in t.nodes.iter().enumerate() {
        check_name(&n.name)?;
        if i > 0 && t.nodes[i - 1].name >= n.name {
            return Err(Error::Corrupt {
                name: "tree".into(),
                reason: format!(
                    "entries not sorted or duplicated at {:?}",
                    display_path(&n.name)
                ),
            });
        }
    }
    Ok(())
}

fn add_node(
    repo: &Repository,
    idx: &Index,
    prefix: &[u8],
    n: Node,
    plan: &mut RestorePlan,
) -> Result<()> {
    let path = join(prefix, &n.name);
    match n.kind {
        NodeKind::Dir => {
            let sub = n.subtree;
            plan.dirs.push(PlanEntry {
                path: path.clone(),
                node: n,
            });
            if let Some(sub) = sub {
                collect(repo, idx, &sub, &path, plan)?;
            }
        }
        NodeKind::File => {
            plan.bytes += n.size;
            plan.files.push(PlanEntry { path, node: n });
        }
        NodeKind::Symlink | NodeKind::Fifo => plan.specials.push(PlanEntry { path, node: n }),
    }
    Ok(())
}

/// The components of a selected path (`/`-separated, relative to the
/// dataset root; empty and `.` components dropped). `..` and NUL are the
/// user's mistake and refused.
pub(super) fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if comps.iter().any(|c| *c == b".." || c.contains(&0)) {
        return Err(Error::Invalid(format!(
            "path {:?} is not inside the dataset: give a path relative to the dataset root, without '..'",
            display_path(path)
        )));
    }
    Ok(comps)
}

/// The selection reduced to what it means: `None` for the whole snapshot
/// (no path, or one that names the root), else the selected paths in
/// order, each once, without those under another selected path.
pub(super) fn normalize(paths: &[Vec<u8>]) -> Result<Option<Vec<Vec<&[u8]>>>> {
    let mut sel = Vec::with_capacity(paths.len());
    for p in paths {
        let c = components(p)?;
        if c.is_empty() {
            return Ok(None);
        }
        sel.push(c);
    }
    if sel.is_empty() {
        return Ok(None);
    }
    // Sorted by components, every path under `a` follows `a` directly.
    sel.sort();
    sel.dedup();
    let mut kept: Vec<Vec<&[u8]>> = Vec::with_capacity(sel.len());
    for c in sel {
        if kept.last().is_some_and(|k| c.starts_with(k)) {
            continue;
        }
        kept.push(c);
    }
    Ok(Some(kept))
}

/// Plan the restore of `snap` (optionally one path of it). Directories
/// whose tree cannot be read are listed in the plan's `unreadable`; only a
/// directory on the way to `path` that cannot be read is an error.
pub fn plan(
    repo: &Repository,
    idx: &Index,
    snap: &Snapshot,
    path: Option<&[u8]>,
) -> Result<RestorePlan> {
    let paths: Vec<Vec<u8>> = path.map(<[u8]>::to_vec).into_iter().collect();
    plan_paths(repo, idx, snap, &paths)
}

/// Plan the restore of the union of `paths` of `snap` (the whole snapshot
/// when `paths` is empty or one of them names the root). Each path is
/// restored at its own place, its parent directories created with their
/// metadata (and listed in the plan's `partial_dirs`: their other entries
/// are neither written nor swept). A path the snapshot lacks is an error.
pub fn plan_paths(
    repo: &Repository,
    idx: &Index,
    snap: &Snapshot,
    paths: &[Vec<u8>],
) -> Result<RestorePlan> {
    let mut plan = RestorePlan::default();
    match normalize(paths)? {
        None => collect(repo, idx, &snap.tree, b"", &mut plan)?,
        Some(sel) => {
            let root = read_checked_tree(repo, idx, &snap.tree).map_err(|e| unreadable(b"", e))?;
            plan.partial_dirs.push(Vec::new());
            let mut parents: HashSet<Vec<u8>> = HashSet::new();
            for comps in &sel {
                add_selected(repo, idx, snap, &root, comps, &mut parents, &mut plan)?;
            }
        }
    }
    // Read packs in order: files whose first blob sits early in a pack go first.
    plan.files.sort_by_key(|e| {
        e.node
            .content
            .first()
            .and_then(|id| idx.get(id))
            .map(|l| (l.pack, l.entry.offset))
    });
    Ok(plan)
}

fn unreadable(dir: &[u8], e: Error) -> Error {
    match e {
        Error::UnsafeName { .. } => e,
        e => Error::UnreadableDir {
            path: shown(dir),
            reason: e.to_string(),
        },
    }
}

/// Add one selected path (its components `comps`) and the parents on the
/// way to it that no earlier selection added.
fn add_selected(
    repo: &Repository,
    idx: &Index,
    snap: &Snapshot,
    root: &Tree,
    comps: &[&[u8]],
    parents: &mut HashSet<Vec<u8>>,
    plan: &mut RestorePlan,
) -> Result<()> {
    let not_found = || Error::PathNotFound {
        dataset: snap.dataset.clone(),
        id: snap.id,
        path: display_path(&comps.join(&b'/')),
    };
    let mut owned: Tree;
    let mut tree = root;
    let mut prefix = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        check_name(c)?;
        let node = tree.find(c).cloned().ok_or_else(not_found)?;
        if i + 1 == comps.len() {
            return add_node(repo, idx, &prefix, node, plan);
        }
        if node.kind != NodeKind::Dir {
            return Err(not_found());
        }
        // Parents of the selected path are created with their metadata.
        let sub = node.subtree.ok_or_else(not_found)?;
        prefix = join(&prefix, c);
        if parents.insert(prefix.clone()) {
            plan.dirs.push(PlanEntry {
                path: prefix.clone(),
                node,
            });
            plan.partial_dirs.push(prefix.clone());
        }
        owned = read_checked_tree(repo, idx, &sub).map_err(|e| unreadable(&prefix, e))?;
        tree = &owned;
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_a_union_without_overlaps() {
        let p = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        let given = p(&["a/b", "a", "c/d", "./c/d/", "c/e", "a/b/c"]);
        let n = normalize(&given).unwrap().unwrap();
        let shown: Vec<String> = n
            .iter()
            .map(|c| String::from_utf8(c.join(&b'/')).unwrap())
            .collect();
        assert_eq!(shown, ["a", "c/d", "c/e"]);
        assert!(
            normalize(&p(&["a", "/"])).unwrap().is_none(),
            "the root is all"
        );
        assert!(normalize(&[]).unwrap().is_none());
        assert!(normalize(&p(&["a/../b"])).is_err());
        // `ab` is not under `a`.
        let given = p(&["a", "ab"]);
        assert_eq!(normalize(&given).unwrap().unwrap().len(), 2);
    }
}
