//! `check`: is the repository consistent, and (with `read_data`) is every
//! stored byte intact?

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::Result;
use crate::id::Id;
use crate::index::Index;
use crate::pack::{self, BlobKind};
use crate::progress::{Cancel, NoProgress, Phase, Progress, Totals};
use crate::repo::Repository;
use crate::repo::layout;
use crate::snapshot::Snapshot;
use crate::tree::{NodeKind, display_path, join};

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Blobs in the index.
    pub blobs: usize,
    /// Packs whose data was read and verified.
    pub packs_read: usize,
    /// Problems. Empty means the repository is sound.
    pub errors: Vec<String>,
    /// Harmless findings (packs left by an interrupted backup …).
    pub notes: Vec<String>,
}

impl CheckReport {
    /// No errors.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Options of a check.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Read every pack and verify every blob against its id.
    pub read_data: bool,
    /// Progress receiver: with `read_data`, phase check, one unit per pack.
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the check (between packs, and between snapshots) when
    /// cancelled: it ends with [`crate::Error::Cancelled`]; stopped while
    /// reading packs, it records no damage.
    pub cancel: Option<Cancel>,
}

impl std::fmt::Debug for CheckOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckOptions")
            .field("read_data", &self.read_data)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl CheckOptions {
    /// The structural check (no pack data read).
    pub fn new() -> CheckOptions {
        CheckOptions::default()
    }
    /// Also read and verify every pack.
    pub fn read_data(mut self, yes: bool) -> Self {
        self.read_data = yes;
        self
    }
    /// Report progress to `p`.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = Some(p);
        self
    }
    /// Stop when this token is cancelled.
    pub fn cancel(mut self, c: Cancel) -> Self {
        self.cancel = Some(c);
        self
    }
}

/// Check the repository. With `read_data`, read every pack and verify
/// every blob against its id, then name the snapshots and files that use
/// a damaged blob. What it finds damaged (packs missing, short or
/// unreadable; blobs whose bytes are wrong) is recorded in the repository
/// ([`Repository::record_damage`]), so the next backup stores those blobs
/// again from the source instead of deduplicating against them.
pub fn check(repo: &Repository, read_data: bool) -> Result<CheckReport> {
    check_with(repo, &CheckOptions::new().read_data(read_data))
}

/// [`check`] with progress and a cancel token.
pub fn check_with(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let read_data = opts.read_data;
    let progress: &dyn Progress = match &opts.progress {
        Some(p) => &**p,
        None => &NoProgress,
    };
    let cancel = opts.cancel.clone().unwrap_or_default();
    let mut r = CheckReport::default();
    let before = repo.take_notes();
    let idx = match repo.load_index() {
        Ok(i) => i,
        Err(e) => {
            r.errors.push(format!("index: {e}"));
            Index::default()
        }
    };
    // Files skipped while loading the index are errors for check.
    r.errors.extend(repo.take_notes());
    for n in before {
        repo.note(n);
    }
    let recorded = repo.damage()?;
    if !recorded.is_empty() {
        let mut named: Vec<String> = recorded.packs.iter().map(|p| p.short()).collect();
        named.extend(
            recorded
                .blobs
                .iter()
                .map(|(p, b)| format!("{} in {}", b.short(), p.short())),
        );
        let more = named.len().saturating_sub(5);
        named.truncate(5);
        r.notes.push(format!(
            "{} pack(s) and {} blob(s) are recorded as damaged and no longer used: {}{} (`bk repair index` rebuilds the index without them)",
            recorded.packs.len(),
            recorded.blobs.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    r.packs = idx.packs().count();
    r.blobs = idx.len();
    let mut found = crate::repo::Damage::default();

    let listing: HashMap<Id, (String, u64)> = repo.pack_listing()?;
    let mut unusable: HashSet<Id> = HashSet::new();
    for (id, entries) in idx.packs() {
        match listing.get(id) {
            None => {
                r.errors.push(format!(
                    "pack {} is in the index but missing",
                    layout::pack_name(id)
                ));
                unusable.insert(*id);
            }
            Some((name, size)) => {
                let end = entries
                    .iter()
                    .map(|e| e.offset as u64 + e.length as u64)
                    .max()
                    .unwrap_or(0);
                if end > *size {
                    r.errors.push(format!(
                        "pack {name} is truncated ({size} bytes, blobs reach {end})"
                    ));
                    unusable.insert(*id);
                }
            }
        }
    }
    found.packs.extend(unusable.iter().copied());
    let unindexed = listing
        .keys()
        .filter(|id| !idx.has_pack(id) && !recorded.packs.contains(id))
        .count();
    if unindexed > 0 {
        r.notes.push(format!(
            "{unindexed} pack(s) are in no index (left by an interrupted backup); the next backup indexes and reuses them"
        ));
    }

    let mut damaged: HashMap<Id, String> = HashMap::new();
    if read_data {
        progress.phase(
            Phase::Check,
            Totals {
                files: Some(idx.packs().count() as u64),
                bytes: Some(
                    idx.packs()
                        .filter_map(|(id, _)| listing.get(id).map(|(_, size)| *size))
                        .sum(),
                ),
            },
        );
        for (id, entries) in idx.packs() {
            cancel.check()?;
            let Some((name, _)) = listing.get(id) else {
                progress.file_done(layout::pack_name(id).as_bytes());
                for e in entries {
                    damaged.insert(e.id, "its pack is missing".into());
                }
                continue;
            };
            let bytes = match repo.read_pack(id) {
                Ok(b) => b,
                Err(e) if crate::connector::backend::is_not_found(&e) => {
                    r.errors.push(format!("reading pack {name}: {e}"));
                    found.packs.push(*id);
                    for e in entries {
                        damaged.insert(e.id, "its pack is missing".into());
                    }
                    continue;
                }
                // A pack that cannot be read now (a dropped connection) is
                // not damaged: the check fails without recording it.
                Err(e) => return Err(e),
            };
            r.packs_read += 1;
            progress.bytes(name.as_bytes(), bytes.len() as u64);
            progress.file_done(name.as_bytes());
            match pack::parse_header_with_id(name, bytes.len() as u64, &bytes) {
                Ok(Ok((hid, _))) if hid == *id => {}
                Ok(Ok(_)) => r.errors.push(format!(
                    "pack {name}: header does not match its name (damaged)"
                )),
                Ok(Err(_)) | Err(_) => r
                    .errors
                    .push(format!("pack {name}: header unreadable (damaged)")),
            }
            for e in entries {
                let start = e.offset as usize;
                let end = start + e.length as usize;
                let res = bytes
                    .get(start..end)
                    .ok_or_else(|| "blob outside the pack".to_string())
                    .and_then(|s| {
                        pack::open_blob(*id, e, s)
                            .map(|_| ())
                            .map_err(|err| err.to_string())
                    });
                if let Err(why) = res {
                    found.blobs.push((*id, e.id));
                    // Another copy of the blob in a sound pack is still fine.
                    if idx.get(&e.id).is_some_and(|l| l.pack == *id) {
                        r.errors.push(format!(
                            "blob {} in pack {}: {why}",
                            e.id.short(),
                            id.short()
                        ));
                        damaged.insert(e.id, why);
                    }
                }
            }
        }
    }

    // Blobs of a missing or short pack are damaged for every snapshot.
    for (id, entries) in idx.packs() {
        if unusable.contains(id) {
            for e in entries {
                if idx.get(&e.id).is_some_and(|l| l.pack == *id) {
                    damaged
                        .entry(e.id)
                        .or_insert_with(|| "its pack is missing or truncated".into());
                }
            }
        }
    }
    repo.record_damage(&found)?;

    let before = repo.take_notes();
    let snaps = match repo.snapshot_files(None) {
        Ok((s, bad)) => {
            for (name, why) in bad {
                r.errors.push(format!("{name}: {why}"));
            }
            s
        }
        Err(e) => {
            r.errors.push(format!("snapshots: {e}"));
            Vec::new()
        }
    };
    let _ = repo.take_notes();
    for n in before {
        repo.note(n);
    }
    r.snapshots = snaps.len();
    let mut checked_trees: HashSet<Id> = HashSet::new();
    for s in &snaps {
        cancel.check()?;
        check_snapshot(repo, &idx, s, &damaged, &mut checked_trees, &mut r);
    }
    Ok(r)
}

fn check_snapshot(
    repo: &Repository,
    idx: &Index,
    s: &Snapshot,
    damaged: &HashMap<Id, String>,
    seen: &mut HashSet<Id>,
    r: &mut CheckReport,
) {
    let label = format!("snapshot {} of {:?}", s.id, s.dataset);
    // Trees already verified for an earlier snapshot are verified again only
    // when something is damaged, so that every affected snapshot is named.
    let mut stack = vec![(s.tree, Vec::<u8>::new())];
    while let Some((tid, path)) = stack.pop() {
        if damaged.is_empty() && !seen.insert(tid) {
            continue;
        }
        let where_ = if path.is_empty() {
            "/".to_string()
        } else {
            display_path(&path)
        };
        if idx
            .get(&tid)
            .is_some_and(|l| l.entry.kind != BlobKind::Tree)
        {
            r.errors.push(format!(
                "{label}: {where_}: tree blob {} is not a tree",
                tid.short()
            ));
            continue;
        }
        let tree = match repo.read_tree(idx, &tid) {
            Ok(t) => t,
            Err(e) => {
                r.errors.push(format!("{label}: directory {where_}: {e}"));
                continue;
            }
        };
        for n in &tree.nodes {
            let p = join(&path, &n.name);
            match n.kind {
                NodeKind::Dir => match n.subtree {
                    Some(sub) => stack.push((sub, p)),
                    None => r.errors.push(format!(
                        "{label}: directory {} has no tree",
                        display_path(&p)
                    )),
                },
                NodeKind::File => {
                    for b in &n.content {
                        if let Some(why) = damaged.get(b) {
                            r.errors.push(format!(
                                "{label}: file {} is damaged ({why})",
                                display_path(&p)
                            ));
                            break;
                        }
                        if !idx.contains(b) {
                            r.errors.push(format!(
                                "{label}: file {} refers to missing blob {}",
                                display_path(&p),
                                b.short()
                            ));
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::testing::{CancelAfter, dataset, small_pack_repo};

    #[test]
    fn a_cancelled_check_stops_between_packs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = dataset(tmp.path(), 6, 1 << 20);
        let repo = small_pack_repo(&tmp.path().join("repo"));
        let src = crate::connector::local::LocalSource::new(&root, &[]).unwrap();
        crate::backup(&repo, &src, &crate::BackupOptions::new("ds")).unwrap();
        let packs = repo.load_index().unwrap().packs().count() as u64;
        assert!(packs >= 4, "{packs} packs");

        let p = CancelAfter::new(1);
        let opts = CheckOptions::new()
            .read_data(true)
            .progress(p.clone())
            .cancel(p.cancel.clone());
        let err = check_with(&repo, &opts).unwrap_err();
        assert!(matches!(err, crate::Error::Cancelled), "{err:?}");
        // One pack read, then the cancel seen before the next.
        assert!(p.seen() <= 2 << 20, "read {} bytes", p.seen());
        assert_eq!(*p.phases.lock().unwrap(), [Phase::Check]);

        let r = check_with(&repo, &CheckOptions::new().read_data(true)).unwrap();
        assert!(r.ok(), "{:?}", r.errors);
        assert_eq!(r.packs_read as u64, packs);
    }
}
