//! Trees: recursive listings of a remote or local directory, and comparing
//! two of them.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::client::FtpClient;
use crate::error::{Error, Result};
use crate::list::{EntryKind, Precision, RemoteEntry};
use crate::pool::Pool;
use crate::url;

/// One entry of a tree, keyed by its `/`-separated path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size (files).
    pub size: u64,
    /// Modification time, when known.
    pub mtime: Option<SystemTime>,
    /// How exact the mtime is.
    pub precision: Precision,
}

/// A directory tree: relative path → entry (the root itself excluded).
pub type Tree = BTreeMap<String, TreeEntry>;

impl From<&RemoteEntry> for TreeEntry {
    fn from(e: &RemoteEntry) -> Self {
        TreeEntry {
            kind: e.kind,
            size: e.size,
            mtime: e.mtime,
            precision: e.precision,
        }
    }
}

/// Recursively list `root` on the server. With `precise_mtimes`, files whose
/// listing gave only minute or day precision (LIST) get their exact UTC
/// mtime with MDTM (one round trip each).
pub fn walk_remote(pool: &Pool, root: &str, precise_mtimes: bool) -> Result<Tree> {
    let root = url::normalize(root);
    let mut tree = Tree::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.clone()
        } else {
            url::join(&root, &rel)
        };
        let entries = pool.run(true, |c: &mut FtpClient| c.list(&dir))?;
        for e in entries {
            let p = if rel.is_empty() {
                e.name.clone()
            } else {
                format!("{rel}/{}", e.name)
            };
            let mut te = TreeEntry::from(&e);
            if precise_mtimes && e.kind == EntryKind::File && e.precision != Precision::Exact {
                let full = url::join(&dir, &e.name);
                if let Ok(t) = pool.run(true, |c: &mut FtpClient| c.mtime(&full)) {
                    te.mtime = Some(t);
                    te.precision = Precision::Exact;
                }
            }
            if e.kind == EntryKind::Dir {
                stack.push(p.clone());
            }
            tree.insert(p, te);
        }
    }
    Ok(tree)
}

/// Recursively list a local directory (symlinks are reported, not followed).
/// Names that are not UTF-8 cannot be sent to an FTP server and are an error.
pub fn walk_local(root: &Path) -> Result<Tree> {
    let mut tree = Tree::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let rd = fs::read_dir(&dir).map_err(|e| Error::local("listing", &dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::local("listing", &dir, e))?;
            let name = ent.file_name().into_string().map_err(|n| {
                Error::new(
                    crate::ErrorKind::Invalid,
                    "listing",
                    "a name is not valid UTF-8 and cannot be sent over FTP",
                )
                .path(dir.join(n).display().to_string())
            })?;
            let p = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let m = ent
                .metadata()
                .map_err(|e| Error::local("inspecting", &ent.path(), e))?;
            let kind = if m.is_dir() {
                EntryKind::Dir
            } else if m.file_type().is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::File
            };
            if kind == EntryKind::Dir {
                stack.push(p.clone());
            }
            tree.insert(
                p,
                TreeEntry {
                    kind,
                    size: if kind == EntryKind::File { m.len() } else { 0 },
                    mtime: m.modified().ok(),
                    precision: Precision::Exact,
                },
            );
        }
    }
    Ok(tree)
}

/// What differs between a source tree and a destination tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// In the source only.
    pub added: Vec<String>,
    /// In both, with a different size, kind or mtime.
    pub modified: Vec<String>,
    /// In the destination only.
    pub deleted: Vec<String>,
}

impl TreeDiff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.deleted.is_empty()
    }
}

/// Compare by kind, size and mtime: a file is modified when its size
/// differs or the source's copy is newer than the destination's by more
/// than the tolerance (as `lftp mirror` and `rsync --update` decide).
/// `tolerance` absorbs servers that keep
/// whole seconds; a side with only minute or day precision widens it to that
/// unit (LIST), and a side without an mtime compares by size alone.
pub fn compare(source: &Tree, dest: &Tree, tolerance: Duration) -> TreeDiff {
    let mut d = TreeDiff::default();
    for (p, s) in source {
        match dest.get(p) {
            None => d.added.push(p.clone()),
            Some(t) if t.kind != s.kind => d.modified.push(p.clone()),
            Some(t) if s.kind == EntryKind::File => {
                let tol = tolerance.max(unit(s.precision)).max(unit(t.precision));
                // Only a source *newer* than the destination counts: a
                // server that cannot set mtimes (no MFMT) stamps uploads
                // with the upload time, which must not look like a change.
                let source_newer = match (s.mtime, t.mtime) {
                    (Some(a), Some(b)) => a.duration_since(b).is_ok_and(|d| d > tol),
                    _ => false,
                };
                if s.size != t.size || source_newer {
                    d.modified.push(p.clone());
                }
            }
            Some(_) => {}
        }
    }
    for p in dest.keys() {
        if !source.contains_key(p) {
            d.deleted.push(p.clone());
        }
    }
    d
}

fn unit(p: Precision) -> Duration {
    match p {
        Precision::Exact => Duration::ZERO,
        Precision::Minute => Duration::from_secs(60),
        Precision::Day => Duration::from_secs(86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(size: u64, secs: u64, p: Precision) -> TreeEntry {
        TreeEntry {
            kind: EntryKind::File,
            size,
            mtime: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            precision: p,
        }
    }

    #[test]
    fn compare_with_tolerance() {
        let mut a = Tree::new();
        let mut b = Tree::new();
        a.insert("same".into(), f(1, 1000, Precision::Exact));
        b.insert("same".into(), f(1, 1001, Precision::Exact));
        a.insert("newer".into(), f(1, 5000, Precision::Exact));
        b.insert("newer".into(), f(1, 1000, Precision::Exact));
        a.insert("minute".into(), f(1, 1000, Precision::Exact));
        b.insert("minute".into(), f(1, 1040, Precision::Minute));
        a.insert("size".into(), f(2, 1000, Precision::Exact));
        b.insert("size".into(), f(1, 1000, Precision::Exact));
        a.insert("older".into(), f(1, 1000, Precision::Exact));
        b.insert("older".into(), f(1, 5000, Precision::Exact));
        a.insert("only-a".into(), f(1, 1, Precision::Exact));
        b.insert("only-b".into(), f(1, 1, Precision::Exact));
        let d = compare(&a, &b, Duration::from_secs(2));
        assert_eq!(d.added, ["only-a"]);
        assert_eq!(d.deleted, ["only-b"]);
        assert_eq!(d.modified, ["newer", "size"]);
    }
}
