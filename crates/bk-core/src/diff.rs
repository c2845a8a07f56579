//! Comparing two trees: what was added, modified and deleted.

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::tree::{Node, NodeKind, Tree, join};

/// One difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the newer tree.
    Added,
    /// In both, with different content (or kind, or symlink target).
    Modified,
    /// Only in the older tree.
    Deleted,
}

/// Walk two trees (old `a`, new `b`) and report every differing entry.
/// Unchanged subtrees (same id) are skipped without being read.
pub fn diff_trees(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    a: Option<&Id>,
    b: Option<&Id>,
    report: &mut dyn FnMut(Change, &[u8], &Node),
) -> Result<()> {
    diff_dir(load, a, b, b"", report)
}

fn diff_dir(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &[u8],
    report: &mut dyn FnMut(Change, &[u8], &Node),
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = match a {
        Some(id) => load(id)?,
        None => Tree::default(),
    };
    let tb = match b {
        Some(id) => load(id)?,
        None => Tree::default(),
    };
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        let ord = match (na, nb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let x = na.expect("present");
                whole(load, x, prefix, Change::Deleted, report)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let y = nb.expect("present");
                whole(load, y, prefix, Change::Added, report)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (na.expect("present"), nb.expect("present"));
                let path = join(prefix, &x.name);
                match (x.kind, y.kind) {
                    (NodeKind::Dir, NodeKind::Dir) => {
                        diff_dir(load, x.subtree.as_ref(), y.subtree.as_ref(), &path, report)?;
                    }
                    (ka, kb) if ka != kb => {
                        whole(load, x, prefix, Change::Deleted, report)?;
                        whole(load, y, prefix, Change::Added, report)?;
                    }
                    _ => {
                        if x.content != y.content || x.target != y.target {
                            report(Change::Modified, &path, y);
                        }
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn whole(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    n: &Node,
    prefix: &[u8],
    change: Change,
    report: &mut dyn FnMut(Change, &[u8], &Node),
) -> Result<()> {
    let path = join(prefix, &n.name);
    report(change, &path, n);
    if n.kind == NodeKind::Dir
        && let Some(sub) = &n.subtree
    {
        let t = load(sub)?;
        for c in &t.nodes {
            whole(load, c, &path, change, report)?;
        }
    }
    Ok(())
}
