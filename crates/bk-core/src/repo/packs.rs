//! Reading packs: whole-pack cache, verified blobs and trees, the checks a
//! backup makes of the packs it dedups against, and the shared pack feed of
//! a restore.

use super::*;

/// Why a whole pack could not be read, kept so that every reader waiting
/// for it gets the same error: a network failure stays a network failure
/// (with its kind, so "not found" is still "not found"), never "corrupt".
#[derive(Debug, Clone)]
pub(super) struct PackReadError {
    kind: std::io::ErrorKind,
    message: String,
}

impl PackReadError {
    fn from_error(e: &Error) -> PackReadError {
        let kind = match e {
            Error::Backend { source, .. } => source.kind(),
            _ => std::io::ErrorKind::Other,
        };
        PackReadError {
            kind,
            message: match e {
                Error::Backend { source, .. } => source.to_string(),
                other => other.to_string(),
            },
        }
    }

    fn into_error(self, name: String) -> Error {
        Error::Backend {
            action: "reading",
            name,
            source: std::io::Error::new(self.kind, self.message),
        }
    }
}

/// Whole packs kept in memory for backends where a round trip costs more
/// than the bytes (FTP): a restore reads each pack once, not once per blob.
#[derive(Debug, Default)]
pub(super) struct PackCache {
    inner: std::sync::Mutex<(
        std::collections::HashMap<Id, CachedPack>,
        std::collections::VecDeque<Id>,
    )>,
}

/// Packs kept by the cache (16 MiB each by default).
const PACK_CACHE_SIZE: usize = 4;

/// Blobs for a reader that knows in advance every blob it will read (a
/// restore). On a backend that reads whole packs, each pack is downloaded
/// when it is first needed, shared by all threads, and dropped as soon as
/// the last blob planned from it was read; at most `cap` packs are held
/// (least recently used goes first), so a pack is downloaded again only
/// when more than `cap` packs are in use at once. Other backends read byte
/// ranges, as [`Repository::read_blob`] does.
pub struct PackFeed<'a> {
    repo: &'a Repository,
    idx: &'a Index,
    cap: usize,
    state: Mutex<FeedState>,
}

#[derive(Default)]
struct FeedState {
    /// Blob reads still to come, per pack.
    demand: HashMap<Id, usize>,
    held: HashMap<Id, CachedPack>,
    /// Held packs, least recently used first.
    lru: VecDeque<Id>,
}

impl std::fmt::Debug for PackFeed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackFeed")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<'a> PackFeed<'a> {
    /// A feed for reading `blobs` (in any order, repeats counted), holding
    /// at most `cap` packs.
    pub fn new<'b>(
        repo: &'a Repository,
        idx: &'a Index,
        blobs: impl IntoIterator<Item = &'b Id>,
        cap: usize,
    ) -> Self {
        let mut st = FeedState::default();
        if repo.backend.prefers_whole_reads() {
            for id in blobs {
                if let Some(loc) = idx.get(id) {
                    *st.demand.entry(loc.pack).or_default() += 1;
                }
            }
        }
        PackFeed {
            repo,
            idx,
            cap: cap.max(1),
            state: Mutex::new(st),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read and verify a blob.
    pub fn read(&self, id: &Id) -> Result<Vec<u8>> {
        if !self.repo.backend.prefers_whole_reads() {
            return self.repo.read_blob(self.idx, id);
        }
        let loc = self.idx.get(id).ok_or(Error::MissingBlob(*id))?;
        let pack = loc.pack;
        let cell = {
            let mut st = self.lock();
            let st = &mut *st;
            if let Some(pos) = st.lru.iter().position(|p| *p == pack) {
                st.lru.remove(pos);
            }
            st.lru.push_back(pack);
            let cell = st.held.entry(pack).or_default().clone();
            while st.held.len() > self.cap {
                let Some(old) = st.lru.pop_front() else { break };
                st.held.remove(&old);
            }
            cell
        };
        let name = layout::pack_name(&pack);
        let data = cell
            .get_or_init(|| {
                self.repo
                    .backend
                    .read(&name)
                    .map(Arc::new)
                    .map_err(|e| PackReadError::from_error(&e))
            })
            .clone()
            .map_err(|e| e.into_error(name.clone()));
        {
            let mut st = self.lock();
            let left = st.demand.get(&pack).copied().unwrap_or(0).saturating_sub(1);
            st.demand.insert(pack, left);
            if left == 0 || data.is_err() {
                // Nobody needs it any more (or it failed: let a retry fetch
                // it again).
                st.held.remove(&pack);
                if let Some(pos) = st.lru.iter().position(|p| *p == pack) {
                    st.lru.remove(pos);
                }
            }
        }
        let data = data?;
        let start = loc.entry.offset as usize;
        let stored = data
            .get(start..start + loc.entry.length as usize)
            .ok_or_else(|| Error::DamagedBlob {
                id: *id,
                pack,
                reason: "the pack is shorter than the index says".into(),
            })?;
        pack::open_blob(pack, &loc.entry, stored)
    }
}

impl Repository {
    /// Read a pack's blob list from the pack itself.
    pub fn read_pack_header(&self, name: &str, size: u64) -> Result<Vec<BlobEntry>> {
        let guess = (64 * 1024u64).min(size);
        let tail = self
            .backend
            .read_range(name, size - guess.min(size), guess.min(size))?;
        match pack::parse_header(name, size, &tail)? {
            Ok(e) => Ok(e),
            Err(need) => {
                let tail = self
                    .backend
                    .read_range(name, size - need as u64, need as u64)?;
                pack::parse_header(name, size, &tail)?.map_err(|_| Error::Corrupt {
                    name: name.to_string(),
                    reason: "header does not fit".into(),
                })
            }
        }
    }

    /// Packs that exist but are in no index (left by an interrupted
    /// backup), with their sizes.
    pub fn unindexed_packs(&self, idx: &Index) -> Result<Vec<(Id, String, u64)>> {
        let mut out = Vec::new();
        for obj in self.backend.list(layout::PACKS_DIR)? {
            let Some(id) = layout::pack_id_from_name(&obj.name) else {
                continue;
            };
            if !idx.has_pack(&id) {
                out.push((id, obj.name, obj.size));
            }
        }
        Ok(out)
    }

    /// The index a backup deduplicates against: every indexed pack is
    /// checked against the listing of `packs/` (no extra round trip per
    /// blob) and those missing or shorter than their blobs reach are left
    /// out, so their blobs are stored again; they are recorded as damaged
    /// (so restores stop using them once a new copy exists). Then packs
    /// left by an interrupted run are verified blob by blob and indexed.
    /// Returns the index and the damage now recorded.
    pub fn index_for_backup(&self) -> Result<(Index, Damage)> {
        let (lists, _) = self.index_files()?;
        let mut damage = self.damage()?;
        let listing: HashMap<Id, (String, u64)> = self
            .backend
            .list(layout::PACKS_DIR)?
            .into_iter()
            .filter_map(|o| layout::pack_id_from_name(&o.name).map(|id| (id, (o.name, o.size))))
            .collect();
        let mut found = Damage::default();
        let mut seen = std::collections::HashSet::new();
        for (pack, entries) in &lists {
            if !seen.insert(*pack) || damage.packs.contains(pack) {
                continue;
            }
            let end = entries
                .iter()
                .map(|e| e.offset as u64 + e.length as u64)
                .max()
                .unwrap_or(0);
            match listing.get(pack) {
                None => {
                    self.note(format!(
                        "pack {} is missing: its blobs will be stored again",
                        layout::pack_name(pack)
                    ));
                    found.packs.push(*pack);
                }
                Some((name, size)) if *size < end => {
                    self.note(format!(
                        "pack {name} is truncated ({size} bytes, its blobs reach {end}): its blobs will be stored again"
                    ));
                    found.packs.push(*pack);
                }
                Some(_) => {}
            }
        }
        self.record_damage(&found)?;
        damage.packs.extend(found.packs);
        let mut idx = index_without(lists, &damage);

        let mut recovered = Vec::new();
        for (id, (name, size)) in &listing {
            if idx.has_pack(id) || damage.packs.contains(id) {
                continue;
            }
            match self.verify_pack(id, name, *size) {
                Ok(entries) => recovered.push((*id, entries)),
                Err(e) => self.note(format!(
                    "pack {name} is in no index and cannot be reused: {e}"
                )),
            }
        }
        if !recovered.is_empty() {
            self.write_index(&recovered)?;
            for (id, e) in recovered {
                idx.add_pack(id, e);
            }
        }
        Ok((idx, damage))
    }

    /// Read a whole pack and verify it: its header hashes to its name and
    /// every blob matches its id. Returns its blob list.
    pub fn verify_pack(&self, id: &Id, name: &str, size: u64) -> Result<Vec<BlobEntry>> {
        let bytes = self.backend.read(name)?;
        if bytes.len() as u64 != size {
            return Err(Error::Corrupt {
                name: name.to_string(),
                reason: format!("listed with {size} bytes, read {}", bytes.len()),
            });
        }
        let (hid, entries) =
            pack::parse_header_with_id(name, size, &bytes)?.map_err(|_| Error::Corrupt {
                name: name.to_string(),
                reason: "header does not fit".into(),
            })?;
        if hid != *id {
            return Err(Error::Corrupt {
                name: name.to_string(),
                reason: "its header does not match its name".into(),
            });
        }
        for e in &entries {
            let stored = &bytes[e.offset as usize..(e.offset as usize + e.length as usize)];
            pack::open_blob(*id, e, stored)?;
        }
        Ok(entries)
    }

    fn whole_pack(&self, pack: &Id) -> Result<Arc<Vec<u8>>> {
        let cell = {
            let mut g = self.packs.inner.lock().unwrap_or_else(|p| p.into_inner());
            let (map, order) = &mut *g;
            if let Some(c) = map.get(pack) {
                // Least recently used goes first.
                if let Some(pos) = order.iter().position(|p| p == pack) {
                    order.remove(pos);
                    order.push_back(*pack);
                }
                c.clone()
            } else {
                let c: CachedPack = Arc::default();
                map.insert(*pack, c.clone());
                order.push_back(*pack);
                while order.len() > PACK_CACHE_SIZE {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
                c
            }
        };
        let name = layout::pack_name(pack);
        cell.get_or_init(|| {
            self.backend
                .read(&name)
                .map(Arc::new)
                .map_err(|e| PackReadError::from_error(&e))
        })
        .clone()
        .map_err(|e| e.into_error(name))
    }

    /// Read and verify a blob.
    pub fn read_blob(&self, idx: &Index, id: &Id) -> Result<Vec<u8>> {
        let loc = idx.get(id).ok_or(Error::MissingBlob(*id))?;
        if self.backend.prefers_whole_reads() {
            let data = self.whole_pack(&loc.pack)?;
            let start = loc.entry.offset as usize;
            let stored = data
                .get(start..start + loc.entry.length as usize)
                .ok_or_else(|| Error::DamagedBlob {
                    id: *id,
                    pack: loc.pack,
                    reason: "the pack is shorter than the index says".into(),
                })?;
            return pack::open_blob(loc.pack, &loc.entry, stored);
        }
        let stored = self
            .backend
            .read_range(
                &layout::pack_name(&loc.pack),
                loc.entry.offset as u64,
                loc.entry.length as u64,
            )
            .map_err(|e| match e {
                Error::Backend { source, .. }
                    if source.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    Error::DamagedBlob {
                        id: *id,
                        pack: loc.pack,
                        reason: "the pack is shorter than the index says (truncated)".into(),
                    }
                }
                e => e,
            })?;
        pack::open_blob(loc.pack, &loc.entry, &stored)
    }

    /// Read and parse a tree.
    pub fn read_tree(&self, idx: &Index, id: &Id) -> Result<Tree> {
        if let Some(loc) = idx.get(id)
            && loc.entry.kind != BlobKind::Tree
        {
            return Err(Error::Corrupt {
                name: format!("tree {id}"),
                reason: "blob is not a tree".into(),
            });
        }
        let b = self.read_blob(idx, id)?;
        Tree::decode(id, &b)
    }
}

#[cfg(test)]
mod feed_tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::connector::backend::ObjectInfo;
    use crate::connector::local::LocalSource;
    use crate::ops::backup::{BackupOptions, backup};
    use crate::ops::restore::{RestoreOptions, restore};
    use crate::snapshot::Select;

    /// The local backend, reading whole packs the way the FTP backend does,
    /// and counting those reads.
    #[derive(Debug)]
    struct WholeReads {
        inner: LocalBackend,
        pack_reads: AtomicU64,
    }

    impl Backend for WholeReads {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn root_exists(&self) -> Result<bool> {
            self.inner.root_exists()
        }
        fn create_dirs(&self, dirs: &[&str]) -> Result<()> {
            self.inner.create_dirs(dirs)
        }
        fn read(&self, name: &str) -> Result<Vec<u8>> {
            if name.starts_with("packs/") {
                self.pack_reads.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.read(name)
        }
        fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.inner.read_range(name, offset, len)
        }
        fn write(&self, name: &str, data: &[u8], exclusive: bool) -> Result<()> {
            self.inner.write(name, data, exclusive)
        }
        fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
            self.inner.list(dir)
        }
        fn replace(&self, name: &str, data: &[u8]) -> Result<()> {
            self.inner.replace(name, data)
        }
        fn root_is_empty(&self) -> Result<bool> {
            self.inner.root_is_empty()
        }
        fn remove(&self, name: &str) -> Result<()> {
            self.inner.remove(name)
        }
        fn remove_temp_files(&self) -> Result<usize> {
            self.inner.remove_temp_files()
        }
        fn prefers_whole_reads(&self) -> bool {
            true
        }
    }

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Big files whose chunks interleave in the packs (written by several
    /// threads at once) and many small files, restored by 8 threads: every
    /// pack is downloaded once, not once per reader that needs it.
    #[test]
    fn a_restore_downloads_each_pack_once() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("ds");
        std::fs::create_dir_all(data.join("small")).unwrap();
        for i in 0..4u64 {
            std::fs::write(data.join(format!("big{i}.bin")), noise(i + 1, 12 << 20)).unwrap();
        }
        for i in 0..300u64 {
            let f = data.join("small").join(format!("{i}.txt"));
            std::fs::write(f, noise(1000 + i, 3000 + i as usize * 97)).unwrap();
        }
        let root = tmp.path().join("repo");
        Repository::init(Arc::new(LocalBackend::new(&root))).unwrap();
        // Small packs, so that there are many and readers share them.
        let cfg = root.join("config");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        c["pack_size"] = serde_json::json!(2 << 20);
        std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();

        let backend = Arc::new(WholeReads {
            inner: LocalBackend::new(&root),
            pack_reads: AtomicU64::new(0),
        });
        let repo = Repository::open(backend.clone()).unwrap();
        let src = LocalSource::new(&data, &[]).unwrap();
        backup(&repo, &src, &BackupOptions::new("ds").threads(4)).unwrap();
        let packs = repo.backend().list("packs").unwrap().len() as u64;
        assert!(packs >= 12, "only {packs} packs: the test needs many");

        let repo = Repository::open(backend.clone()).unwrap();
        backend.pack_reads.store(0, Ordering::SeqCst);
        let out = tmp.path().join("out");
        let mut opts = RestoreOptions::new(Select::Latest);
        opts.threads = 8;
        let r = restore(&repo, "ds", &out, &opts).unwrap();
        assert!(r.outcome.errors.is_empty(), "{:?}", r.outcome.errors);
        let reads = backend.pack_reads.load(Ordering::SeqCst);
        // The feed holds a bounded number of packs: when writer threads are
        // scheduled very unevenly (a loaded machine), a pack can be evicted
        // before its last reader and fetched once more. Downloads must still
        // scale with packs, not with files or blobs (300 small files here).
        assert!(
            reads <= packs + packs / 4,
            "{reads} pack downloads for {packs} packs: packs were downloaded again and again"
        );
        for i in 0..4u64 {
            let got = std::fs::read(out.join(format!("big{i}.bin"))).unwrap();
            assert!(got == noise(i + 1, 12 << 20), "big{i}.bin differs");
        }
        for i in 0..300u64 {
            let got = std::fs::read(out.join("small").join(format!("{i}.txt"))).unwrap();
            assert!(got == noise(1000 + i, 3000 + i as usize * 97));
        }
    }
}
