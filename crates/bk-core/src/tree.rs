//! Trees: one blob per directory, nodes sorted by name (bytes).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// The kind of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory (has a subtree).
    Dir,
    /// Symbolic link (has a target).
    Symlink,
    /// Named pipe.
    Fifo,
}

/// One directory entry with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The name: bytes, never containing `/` or NUL.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Inode number at backup time (change detection).
    pub inode: u64,
    /// Status change time, seconds since the epoch (change detection: a
    /// rewrite whose mtime was put back still moves it). Format 2; 0 in
    /// format-1 trees and for sources without one (FTP).
    #[serde(default)]
    pub ctime: i64,
    /// Nanoseconds part of the status change time.
    #[serde(default)]
    pub ctime_nsec: u32,
    /// Extended attributes (POSIX ACLs among them, as the raw
    /// `system.posix_acl_*` values), sorted by name. Format 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Hard-link group: set on files with more than one link, equal for all
    /// names of one file within a snapshot ([`link_group`] of its device and
    /// inode; older snapshots used the inode alone, so a restore links only
    /// members whose size and content also match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<u64>,
    /// File content: data blob ids in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Directory: the subtree's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Symlink target, verbatim.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<u8>,
    /// The source's opaque change token for the content (an ETag, a
    /// checksum), where it has one: the next backup compares it instead of
    /// size and mtime. Absent from trees of sources without tokens, so
    /// their trees encode as before; older readers skip it.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub change_token: Option<Vec<u8>>,
}

/// One extended attribute: name (e.g. `user.comment`) and value, as bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    /// Full name with its namespace.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Value, verbatim.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl Node {
    /// Whether the metadata a restore sets (mode, owner, mtime, extended
    /// attributes) differs; content, kind and size are compared apart.
    pub fn meta_differs(&self, other: &Node) -> bool {
        self.mode != other.mode
            || self.uid != other.uid
            || self.gid != other.gid
            || self.mtime != other.mtime
            || self.mtime_nsec != other.mtime_nsec
            || self.xattrs != other.xattrs
    }
}

/// A directory's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Serialize (MessagePack with field names) and return (id, bytes).
    pub fn encode(&self) -> (Id, Vec<u8>) {
        let bytes = rmp_serde::to_vec_named(self).expect("trees always serialize");
        (Id::hash(&bytes), bytes)
    }

    /// Parse a tree blob.
    pub fn decode(id: &Id, bytes: &[u8]) -> Result<Tree> {
        rmp_serde::from_slice(bytes).map_err(|e| Error::Corrupt {
            name: format!("tree {id}"),
            reason: e.to_string(),
        })
    }

    /// Find a node by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// The hard-link group id of the file `inode` on device `dev`: inode
/// numbers repeat across file systems, so a dataset spanning mounts keys
/// groups by both.
pub fn link_group(dev: u64, inode: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&dev.to_le_bytes());
    b[8..].copy_from_slice(&inode.to_le_bytes());
    let h = Id::hash(&b);
    u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"))
}

/// Refuse names that could escape a directory when restored.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::UnsafeName {
            name: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(())
}

/// Display a byte path for messages: UTF-8 where it is, `\xNN` elsewhere,
/// and control characters escaped.
pub fn display_path(p: &[u8]) -> String {
    let mut out = String::with_capacity(p.len());
    for chunk in p.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Join a parent path and a name with `/` (bytes).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// A path for messages; the root is ".".
pub(crate) fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        display_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"../x", b"a\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for ok in [&b"a"[..], b"..a", b"a b", b"\xff\xfe", b"new\nline"] {
            check_name(ok).unwrap();
        }
    }

    fn file(token: Option<&[u8]>) -> Node {
        Node {
            name: b"t.csv".to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            mtime_nsec: 0,
            size: 3,
            inode: 0,
            ctime: 0,
            ctime_nsec: 0,
            xattrs: Vec::new(),
            hardlink: None,
            content: vec![Id::hash(b"abc")],
            subtree: None,
            target: Vec::new(),
            change_token: token.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn a_change_token_is_stored_only_where_there_is_one() {
        let without = Tree {
            nodes: vec![file(None)],
        };
        let (id, bytes) = without.encode();
        // Trees of sources without tokens encode as before the field existed
        // (same bytes, same ids: unchanged directories still dedup).
        assert!(!bytes.windows(12).any(|w| w == b"change_token"));
        assert_eq!(Tree::decode(&id, &bytes).unwrap(), without);

        let with = Tree {
            nodes: vec![file(Some(b"\"etag\"\x00\xff"))],
        };
        let (id, bytes) = with.encode();
        assert!(bytes.windows(12).any(|w| w == b"change_token"));
        assert_eq!(Tree::decode(&id, &bytes).unwrap(), with);
    }

    #[test]
    fn display_escapes() {
        assert_eq!(display_path(b"a\nb\xffc"), "a\\nb\\xffc");
    }
}
