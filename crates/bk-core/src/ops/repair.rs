//! Repairing a damaged repository, the way restic's `repair` commands do.
//!
//! - [`repair_index`] rebuilds the index from the packs themselves: every
//!   pack is read and each blob verified against its id; a pack whose header
//!   is gone (truncated) still gives up the blobs the old index placed in
//!   what is left of it. The new index replaces every old index file, and
//!   the damage records it makes obsolete are removed.
//! - [`repair_snapshots`] names, per snapshot, the files and directories
//!   that can no longer be restored (a blob or tree that no pack holds any
//!   more); with `forget_damaged` it rewrites those snapshots, under the same
//!   numbers, without them, and records what was left out in the snapshot's
//!   warnings (so `bk snapshots` marks it and a restore says so).
//!
//! A backup after a repair stores the lost blobs again from the source
//! where the files still exist there.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::Index;
use crate::pack::{self, BlobEntry, BlobKind, Compression, PackWriter};
use crate::repo::Repository;
use crate::repo::layout;
use crate::snapshot::{Snapshot, Warning};
use crate::tree::{Node, NodeKind, Tree, display_path, join};

/// What [`repair_index`] did.
#[derive(Debug, Clone, Default)]
pub struct IndexRepair {
    /// Packs read.
    pub packs_read: usize,
    /// Blobs in the new index.
    pub blobs: usize,
    /// Packs from which nothing could be used (unreadable, or no blob
    /// verified), by name.
    pub packs_lost: Vec<String>,
    /// Blobs the old index knew that are in no sound pack any more.
    pub blobs_lost: usize,
    /// Index files replaced.
    pub old_index_files: usize,
    /// Packs that had lost their header: their sound blobs were copied
    /// into a new pack and they were removed.
    pub packs_rewritten: Vec<String>,
}

/// Rebuild the index from the packs. Takes the lock.
pub fn repair_index(repo: &Repository) -> Result<IndexRepair> {
    let _lock = repo.lock("repair index")?;
    repo.recover()?;
    let (old_lists, old_names) = repo.index_files()?;
    let mut old: HashMap<Id, Vec<BlobEntry>> = HashMap::new();
    let mut known: HashSet<Id> = HashSet::new();
    for (p, entries) in old_lists {
        known.extend(entries.iter().map(|e| e.id));
        old.entry(p).or_default().extend(entries);
    }
    let mut out = IndexRepair {
        old_index_files: old_names.len(),
        ..IndexRepair::default()
    };
    let mut lists: Vec<(Id, Vec<BlobEntry>)> = Vec::new();
    let mut rewritten: Vec<String> = Vec::new();
    let mut listing: Vec<(Id, (String, u64))> = repo.pack_listing()?.into_iter().collect();
    listing.sort();
    for (id, (name, size)) in listing {
        let obj = crate::connector::ObjectInfo { name, size };
        let bytes = match repo.read_pack(&id) {
            Ok(b) => b,
            Err(e) if crate::connector::backend::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        out.packs_read += 1;
        let (header_ok, entries) =
            match pack::parse_header_with_id(&obj.name, bytes.len() as u64, &bytes) {
                Ok(Ok((hid, entries))) if hid == id => (true, entries),
                // No usable header: fall back on what the old index said.
                _ => (false, old.get(&id).cloned().unwrap_or_default()),
            };
        let stored_of = |e: &BlobEntry| {
            let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
            bytes
                .get(start..end)
                .filter(|stored| pack::open_blob(id, e, stored).is_ok())
        };
        let good: Vec<BlobEntry> = entries
            .into_iter()
            .filter(|e| stored_of(e).is_some())
            .collect();
        if good.is_empty() {
            out.packs_lost.push(obj.name);
            continue;
        }
        if header_ok {
            lists.push((id, good));
            continue;
        }
        // A pack without its header cannot be read without an index, and
        // check would keep calling it damaged: its sound blobs move into a
        // new pack, and it goes once the new index is written.
        let mut w = PackWriter::default();
        for e in &good {
            let stored = stored_of(e).expect("verified above");
            w.add(e.kind, e.id, e.compression, stored, e.raw_length as usize);
        }
        let (new_id, new_bytes, new_entries) = w.finish();
        repo.write_pack(&new_id, &new_bytes)?;
        lists.push((new_id, new_entries));
        rewritten.push(obj.name);
    }
    let mut have: HashSet<Id> = HashSet::new();
    for (_, entries) in &lists {
        have.extend(entries.iter().map(|e| e.id));
    }
    out.blobs = have.len();
    out.blobs_lost = known.difference(&have).count();
    // New index files first, then the old ones go: a crash in between
    // leaves both, which describe the same packs.
    let mut written = HashSet::new();
    for chunk in lists.chunks(2000) {
        let (id, _) = crate::index::encode(chunk);
        repo.write_index(chunk)?;
        written.insert(layout::index_name(&id));
    }
    for name in old_names {
        if !written.contains(&name) {
            repo.remove_index_file(&name)?;
        }
    }
    for name in repo.index_file_names()? {
        // Stray and damaged files in index/ were skipped on loading; the
        // new index covers every pack, so they go too.
        if !written.contains(&name) {
            repo.remove_index_file(&name)?;
        }
    }
    for name in &rewritten {
        if let Some(id) = layout::pack_id_from_name(name) {
            repo.remove_pack(&id)?;
        }
    }
    out.packs_rewritten = rewritten;
    repo.clear_damage()?;
    Ok(out)
}

/// One snapshot's losses.
#[derive(Debug, Clone)]
pub struct SnapshotDamage {
    /// Dataset.
    pub dataset: String,
    /// Snapshot number.
    pub id: u64,
    /// Paths (display form) that cannot be restored, with why.
    pub lost: Vec<(String, String)>,
    /// Whether the snapshot was rewritten without them.
    pub rewritten: bool,
}

/// Name what every snapshot can no longer restore; with `forget_damaged`,
/// rewrite the damaged snapshots without those entries. Takes the lock.
pub fn repair_snapshots(repo: &Repository, forget_damaged: bool) -> Result<Vec<SnapshotDamage>> {
    let _lock = repo.lock("repair snapshots")?;
    let idx = repo.load_index()?;
    let mut fixer = Fixer {
        repo,
        idx: &idx,
        pack: PackWriter::default(),
        new_trees: HashMap::new(),
        memo: HashMap::new(),
    };
    let mut out = Vec::new();
    for snap in repo.snapshots(None)? {
        let (tree, below) = fixer.fix(&snap.tree)?;
        if below.is_empty() {
            continue;
        }
        let lost: Vec<(String, String)> = below
            .into_iter()
            .map(|(p, why)| {
                let shown = if p.is_empty() {
                    "/".to_string()
                } else {
                    display_path(&p)
                };
                (shown, why)
            })
            .collect();
        let mut rewritten = false;
        if forget_damaged {
            let root = match tree {
                Some(t) => t,
                None => fixer.store(Tree::default()),
            };
            let mut s: Snapshot = snap.clone();
            s.tree = root;
            for (path, why) in &lost {
                s.warnings.push(Warning {
                    path: path.clone(),
                    message: format!(
                        "removed by `bk repair snapshots`: its data was lost from the repository ({why})"
                    ),
                });
            }
            fixer.flush()?;
            repo.replace_snapshot(&s)?;
            rewritten = true;
        }
        out.push(SnapshotDamage {
            dataset: snap.dataset.clone(),
            id: snap.id,
            lost,
            rewritten,
        });
    }
    fixer.flush()?;
    Ok(out)
}

struct Fixer<'a> {
    repo: &'a Repository,
    idx: &'a Index,
    pack: PackWriter,
    new_trees: HashMap<Id, Tree>,
    /// Tree id → (repaired id or None if unreadable, losses below it).
    memo: HashMap<Id, (Option<Id>, Losses)>,
}

/// Losses below a tree: (path relative to it, why); the empty path is the
/// tree itself.
type Losses = Vec<(Vec<u8>, String)>;

fn under(prefix: &[u8], rel: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        prefix.to_vec()
    } else {
        join(prefix, rel)
    }
}

impl Fixer<'_> {
    /// The tree `id` without its lost entries (`None` when the tree itself
    /// cannot be read), and what was lost below it.
    fn fix(&mut self, id: &Id) -> Result<(Option<Id>, Losses)> {
        if let Some(done) = self.memo.get(id) {
            return Ok(done.clone());
        }
        let mut below: Losses = Vec::new();
        let fixed = match self.repo.read_tree(self.idx, id) {
            Err(e @ Error::Backend { .. }) if !crate::connector::backend::is_not_found(&e) => {
                return Err(e);
            }
            Err(e) => {
                below.push((Vec::new(), format!("directory unreadable: {e}")));
                None
            }
            Ok(tree) => {
                let mut nodes = Vec::with_capacity(tree.nodes.len());
                let mut changed = false;
                for n in tree.nodes {
                    match (n.kind, n.subtree) {
                        (NodeKind::Dir, Some(sub)) => {
                            let (fixed, sub_lost) = self.fix(&sub)?;
                            below.extend(
                                sub_lost
                                    .into_iter()
                                    .map(|(p, why)| (under(&n.name, &p), why)),
                            );
                            // An unreadable directory stays, empty: its
                            // contents are named as lost.
                            let f = match fixed {
                                Some(f) => f,
                                None => self.store(Tree::default()),
                            };
                            changed |= f != sub;
                            nodes.push(Node {
                                subtree: Some(f),
                                ..n
                            });
                        }
                        (NodeKind::File, _) => {
                            match n.content.iter().find(|b| !self.idx.contains(b)) {
                                Some(b) => {
                                    changed = true;
                                    below.push((
                                        n.name.clone(),
                                        format!("blob {} is in no sound pack", b.short()),
                                    ));
                                }
                                None => nodes.push(n),
                            }
                        }
                        _ => nodes.push(n),
                    }
                }
                Some(if changed {
                    self.store(Tree { nodes })
                } else {
                    *id
                })
            }
        };
        self.memo.insert(*id, (fixed, below.clone()));
        Ok((fixed, below))
    }

    fn store(&mut self, tree: Tree) -> Id {
        let (id, bytes) = tree.encode();
        if !self.idx.contains(&id) && !self.new_trees.contains_key(&id) {
            match zstd::bulk::compress(&bytes, 3) {
                Ok(z) if z.len() < bytes.len() => {
                    self.pack
                        .add(BlobKind::Tree, id, Compression::Zstd, &z, bytes.len())
                }
                _ => self
                    .pack
                    .add(BlobKind::Tree, id, Compression::None, &bytes, bytes.len()),
            }
            self.new_trees.insert(id, tree);
        }
        id
    }

    /// Write the new trees (pack, then index) before any snapshot refers
    /// to them.
    fn flush(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let (id, bytes, entries) = std::mem::take(&mut self.pack).finish();
        self.repo.write_pack(&id, &bytes)?;
        self.repo.write_index(&[(id, entries)])
    }
}
