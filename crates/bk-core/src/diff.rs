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
    /// In both, with different content, symlink target or metadata (mode,
    /// owner, mtime, extended attributes). A directory is reported for its
    /// own metadata only; its entries are compared one by one.
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
                        if x.meta_differs(y) {
                            report(Change::Modified, &path, y);
                        }
                        diff_dir(load, x.subtree.as_ref(), y.subtree.as_ref(), &path, report)?;
                    }
                    (ka, kb) if ka != kb => {
                        whole(load, x, prefix, Change::Deleted, report)?;
                        whole(load, y, prefix, Change::Added, report)?;
                    }
                    _ => {
                        if x.content != y.content
                            || x.target != y.target
                            || x.size != y.size
                            || x.meta_differs(y)
                        {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Xattr;

    fn node(name: &str, kind: NodeKind) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime: 1_700_000_000,
            mtime_nsec: 5,
            size: 3,
            inode: 7,
            ctime: 1_700_000_000,
            ctime_nsec: 5,
            xattrs: Vec::new(),
            hardlink: None,
            content: vec![Id::hash(b"abc")],
            subtree: None,
            target: Vec::new(),
            change_token: None,
        }
    }

    /// Diff two one-level trees; returns the reported paths, by change.
    fn diff_one(a: Vec<Node>, b: Vec<Node>) -> Vec<(Change, String)> {
        let (ta, tb) = (Tree { nodes: a }, Tree { nodes: b });
        let (ia, ib) = (ta.encode().0, tb.encode().0);
        let trees: std::collections::HashMap<Id, Tree> = [(ia, ta), (ib, tb)].into();
        let mut load = |id: &Id| Ok(trees.get(id).cloned().unwrap_or_default());
        let mut out = Vec::new();
        diff_trees(&mut load, Some(&ia), Some(&ib), &mut |c, p, _| {
            out.push((c, String::from_utf8_lossy(p).into_owned()));
        })
        .unwrap();
        out
    }

    #[test]
    fn metadata_only_changes_are_modified() {
        let base = node("f", NodeKind::File);
        type Edit = Box<dyn Fn(&mut Node)>;
        let changes: Vec<(&str, Edit)> = vec![
            ("mode", Box::new(|n| n.mode = 0o600)),
            ("uid", Box::new(|n| n.uid = 0)),
            ("gid", Box::new(|n| n.gid = 0)),
            ("mtime", Box::new(|n| n.mtime += 1)),
            ("mtime_nsec", Box::new(|n| n.mtime_nsec += 1)),
            (
                "xattrs",
                Box::new(|n| {
                    n.xattrs = vec![Xattr {
                        name: b"user.a".to_vec(),
                        value: b"1".to_vec(),
                    }]
                }),
            ),
        ];
        for (what, change) in changes {
            let mut b = base.clone();
            change(&mut b);
            assert_eq!(
                diff_one(vec![base.clone()], vec![b]),
                vec![(Change::Modified, "f".to_string())],
                "{what}"
            );
        }
    }

    #[test]
    fn status_only_changes_are_not_modified() {
        // A file read again (its ctime or inode moved) with the same
        // content and metadata is the same file to the user.
        let a = node("f", NodeKind::File);
        let mut b = a.clone();
        b.ctime += 9;
        b.inode = 99;
        assert_eq!(diff_one(vec![a], vec![b]), vec![]);
    }

    #[test]
    fn a_directory_chmod_is_modified() {
        let mut a = node("d", NodeKind::Dir);
        a.content.clear();
        let mut b = a.clone();
        b.mode = 0o700;
        assert_eq!(
            diff_one(vec![a], vec![b]),
            vec![(Change::Modified, "d".to_string())]
        );
    }
}
