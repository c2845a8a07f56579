//! The repository: config, index, blobs, snapshots and the lock.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Local;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, LocalBackend, is_already_exists, is_not_found};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{self, Index};
use crate::pack::{self, BlobEntry, BlobKind};
use crate::snapshot::{self, Snapshot};
use crate::tree::Tree;

/// The newest repository format this build reads and writes. Version 2
/// added ctime and extended attributes to tree nodes (docs/FORMAT.md);
/// version 1 repositories are read as they are and upgraded by the first
/// backup into them.
pub const FORMAT_VERSION: u32 = 2;

/// Chunker parameters (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk.
    pub min: u32,
    /// Average chunk.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 8 * 1024 * 1024,
        }
    }
}

/// `config`: the repository's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version; readers refuse newer ones.
    pub format_version: u32,
    /// Random repository id.
    pub id: String,
    /// Content-defined chunking parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for blobs.
    pub zstd_level: i32,
}

/// Subdirectories of a repository.
const DIRS: &[&str] = &["packs", "index", "snapshots", "locks"];
const LOCK_NAME: &str = "locks/exclusive";

/// A repository on some backend.
#[derive(Debug, Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    packs: Arc<PackCache>,
}

type CachedPack = Arc<std::sync::OnceLock<std::result::Result<Arc<Vec<u8>>, String>>>;

/// Whole packs kept in memory for backends where a round trip costs more
/// than the bytes (FTP): a restore reads each pack once, not once per blob.
#[derive(Debug, Default)]
struct PackCache {
    inner: std::sync::Mutex<(
        std::collections::HashMap<Id, CachedPack>,
        std::collections::VecDeque<Id>,
    )>,
}

/// Packs kept by the cache (16 MiB each by default).
const PACK_CACHE_SIZE: usize = 4;

impl Repository {
    /// Open a local repository.
    pub fn open_local(path: &Path) -> Result<Repository> {
        Repository::open(Arc::new(LocalBackend::new(path)))
    }

    /// Open a local repository, creating it when the path does not exist or
    /// is an empty directory.
    pub fn open_or_init_local(path: &Path) -> Result<Repository> {
        Repository::open_or_init(Arc::new(LocalBackend::new(path)))
    }

    /// Open an existing repository.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Repository> {
        if !backend.root_exists()? {
            return Err(Error::NoRepository(backend.location()));
        }
        let raw = match backend.read("config") {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => {
                return Err(Error::NotARepository(
                    backend.location(),
                    "it has no config file".into(),
                ));
            }
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version = serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
            name: "config".into(),
            reason: e.to_string(),
        })?;
        if v.format_version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                found: v.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let config: Config = serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
            name: "config".into(),
            reason: e.to_string(),
        })?;
        Ok(Repository {
            backend,
            config,
            packs: Arc::default(),
        })
    }

    /// Create a new repository. Fails if one exists already.
    pub fn init(backend: Arc<dyn Backend>) -> Result<Repository> {
        backend.create_dirs(DIRS)?;
        let mut seed = Vec::new();
        seed.extend_from_slice(&std::process::id().to_le_bytes());
        seed.extend_from_slice(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        seed.extend_from_slice(backend.location().as_bytes());
        let config = Config {
            format_version: FORMAT_VERSION,
            id: Id::hash(&seed).to_hex(),
            chunker: ChunkerParams::default(),
            pack_size: 16 * 1024 * 1024,
            zstd_level: 1,
        };
        let bytes = serde_json::to_vec_pretty(&config).expect("config serializes");
        match backend.write("config", &bytes, true) {
            Err(e) if is_already_exists(&e) => {
                return Err(Error::Invalid(format!(
                    "a repository exists already at {}",
                    backend.location()
                )));
            }
            r => r?,
        }
        Ok(Repository {
            backend,
            config,
            packs: Arc::default(),
        })
    }

    /// Open, or create when absent (or an empty directory).
    pub fn open_or_init(backend: Arc<dyn Backend>) -> Result<Repository> {
        match Repository::open(backend.clone()) {
            Err(Error::NoRepository(_)) => Repository::init(backend),
            Err(Error::NotARepository(loc, why)) => {
                if backend.root_exists()? && backend.list("")?.is_empty() {
                    Repository::init(backend)
                } else {
                    Err(Error::NotARepository(loc, why))
                }
            }
            r => r,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Raise an older repository's config to [`FORMAT_VERSION`] before
    /// writing trees of the new format into it, so that an older bk refuses
    /// the repository instead of reading new trees and silently dropping
    /// what it does not know (extended attributes). Returns the version
    /// found when it upgraded. The config read at open is left as it was.
    pub fn upgrade_format(&self) -> Result<Option<u32>> {
        if self.config.format_version >= FORMAT_VERSION {
            return Ok(None);
        }
        let corrupt = |e: serde_json::Error| Error::Corrupt {
            name: "config".into(),
            reason: e.to_string(),
        };
        // Read again: another backup may have upgraded it meanwhile.
        let mut config: Config =
            serde_json::from_slice(&self.backend.read("config")?).map_err(corrupt)?;
        let found = config.format_version;
        if found >= FORMAT_VERSION {
            return Ok(None);
        }
        config.format_version = FORMAT_VERSION;
        let bytes = serde_json::to_vec_pretty(&config).expect("config serializes");
        self.backend.write("config", &bytes, false)?;
        if self.backend.read("config")? != bytes {
            // This backend keeps an existing file on a non-exclusive write:
            // replace it (the config is the one file that is ever rewritten).
            self.backend.remove("config")?;
            self.backend.write("config", &bytes, true)?;
        }
        Ok(Some(found))
    }

    /// Read every index file. Corrupt ones are an error.
    pub fn load_index(&self) -> Result<Index> {
        let mut idx = Index::default();
        for obj in self.backend.list("index")? {
            let bytes = self.backend.read(&obj.name)?;
            for (pack, entries) in index::decode(&obj.name, &bytes)? {
                idx.add_pack(pack, entries);
            }
        }
        Ok(idx)
    }

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
        for obj in self.backend.list("packs")? {
            let Some(id) = pack::pack_id_from_name(&obj.name) else {
                continue;
            };
            if !idx.has_pack(&id) {
                out.push((id, obj.name, obj.size));
            }
        }
        Ok(out)
    }

    /// Write an index file for these packs.
    pub fn write_index(&self, packs: &[(Id, Vec<BlobEntry>)]) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let (id, bytes) = index::encode(packs);
        self.backend
            .write(&format!("index/{}", id.to_hex()), &bytes, false)
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
        let name = pack::pack_name(pack);
        cell.get_or_init(|| {
            self.backend
                .read(&name)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| Error::Corrupt { name, reason })
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
        let stored = self.backend.read_range(
            &pack::pack_name(&loc.pack),
            loc.entry.offset as u64,
            loc.entry.length as u64,
        )?;
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

    /// Names of all datasets.
    pub fn datasets(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .backend
            .list("snapshots")?
            .into_iter()
            .filter_map(|o| {
                let mut parts = o.name.split('/');
                parts.next();
                snapshot::decode_dataset_dir(parts.next()?)
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// All snapshots, of one dataset or of all, sorted by dataset and id.
    pub fn snapshots(&self, dataset: Option<&str>) -> Result<Vec<Snapshot>> {
        let dir = match dataset {
            Some(d) => snapshot::dataset_dir(d),
            None => "snapshots".to_string(),
        };
        let mut out = Vec::new();
        for obj in self.backend.list(&dir)? {
            if !obj.name.ends_with(".json") {
                continue;
            }
            let bytes = self.backend.read(&obj.name)?;
            let s: Snapshot = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                name: obj.name.clone(),
                reason: e.to_string(),
            })?;
            if snapshot::snapshot_name(&s.dataset, s.id) != obj.name {
                return Err(Error::Corrupt {
                    name: obj.name.clone(),
                    reason: format!("it describes snapshot {} of {:?}", s.id, s.dataset),
                });
            }
            out.push(s);
        }
        out.sort_by(|a, b| (&a.dataset, a.id).cmp(&(&b.dataset, b.id)));
        Ok(out)
    }

    /// Commit a snapshot: the atomic, never-overwriting write that makes a
    /// backup visible.
    pub fn commit_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(snap).expect("snapshot serializes");
        self.backend.write(
            &snapshot::snapshot_name(&snap.dataset, snap.id),
            &bytes,
            true,
        )
    }

    /// Take the exclusive lock. A lock whose owner is a dead process on this
    /// host is cleared automatically.
    pub fn lock(&self, command: &str) -> Result<RepoLock> {
        let info = LockInfo {
            host: hostname(),
            pid: std::process::id(),
            command: command.to_string(),
            time: Local::now().to_rfc3339(),
        };
        let bytes = serde_json::to_vec(&info).expect("lock serializes");
        for _ in 0..3 {
            match self.backend.write(LOCK_NAME, &bytes, true) {
                Ok(()) => {
                    return Ok(RepoLock {
                        backend: self.backend.clone(),
                        released: false,
                    });
                }
                Err(e) if is_already_exists(&e) => {
                    let holder = self.lock_holder()?;
                    match holder {
                        None => continue,
                        Some(h) if h.host == info.host && !pid_alive(h.pid) => {
                            // Its owner is gone: the lock is stale.
                            let _ = self.backend.remove(LOCK_NAME);
                            continue;
                        }
                        Some(h) => {
                            return Err(Error::Locked {
                                holder: h.describe(),
                            });
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Locked {
            holder: "another process (the lock keeps changing hands)".into(),
        })
    }

    /// Who holds the lock, if anyone.
    pub fn lock_holder(&self) -> Result<Option<LockInfo>> {
        match self.backend.read(LOCK_NAME) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).unwrap_or(LockInfo {
                host: "?".into(),
                pid: 0,
                command: "unreadable lock file".into(),
                time: "?".into(),
            }))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove the lock whoever holds it. Returns who held it.
    pub fn force_unlock(&self) -> Result<Option<LockInfo>> {
        let h = self.lock_holder()?;
        if h.is_some() {
            self.backend.remove(LOCK_NAME)?;
        }
        Ok(h)
    }
}

/// The content of the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// What it is doing.
    pub command: String,
    /// Since when (RFC 3339).
    pub time: String,
}

impl LockInfo {
    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host {} (`{}`, since {})",
            self.pid, self.host, self.command, self.time
        )
    }
}

/// Held lock; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    released: bool,
}

impl RepoLock {
    /// Release now.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.backend.remove(LOCK_NAME)
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.backend.remove(LOCK_NAME);
        }
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates or
    // truncates within it.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_and_stale_lock_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init_local(dir.path()).unwrap();
        let l = repo.lock("test").unwrap();
        match repo.lock("second") {
            Err(Error::Locked { holder }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        l.release().unwrap();
        // A lock held by a pid that does not exist is stale.
        let stale = LockInfo {
            host: hostname(),
            pid: i32::MAX as u32 - 7,
            command: "dead".into(),
            time: "then".into(),
        };
        repo.backend()
            .write(LOCK_NAME, &serde_json::to_vec(&stale).unwrap(), true)
            .unwrap();
        let l = repo.lock("third").unwrap();
        drop(l);
        assert!(repo.lock_holder().unwrap().is_none());
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Repository::open_or_init_local(dir.path()).unwrap();
        let cfg = dir.path().join("config");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace(
                &format!("\"format_version\": {FORMAT_VERSION}"),
                "\"format_version\": 99",
            ),
        )
        .unwrap();
        let err = Repository::open_local(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NewerFormat { found: 99, .. }), "{err}");
    }
}

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
        let name = pack::pack_name(&pack);
        let data = cell
            .get_or_init(|| {
                self.repo
                    .backend
                    .read(&name)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|reason| Error::Corrupt {
                name: name.clone(),
                reason,
            });
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

#[cfg(test)]
mod feed_tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::archiver::{BackupOptions, backup};
    use crate::backend::ObjectInfo;
    use crate::restore::{RestoreOptions, restore};
    use crate::snapshot::Select;
    use crate::source::LocalSource;

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
        assert!(
            reads <= packs,
            "{reads} pack downloads for {packs} packs: some were downloaded again"
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
