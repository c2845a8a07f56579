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

impl Config {
    /// Refuse values the engine cannot work with, naming the value and the
    /// range it must be in (a hand-edited or damaged config must give a
    /// clear error, not a panic in a worker thread).
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020 as cdc;
        let c = &self.chunker;
        let check = |what: &str, v: i64, lo: i64, hi: i64| -> Result<()> {
            if v < lo || v > hi {
                return Err(Error::Corrupt {
                    name: "config".into(),
                    reason: format!("{what} is {v}, outside {lo}..={hi}"),
                });
            }
            Ok(())
        };
        check(
            "chunker.min",
            c.min.into(),
            cdc::MINIMUM_MIN as i64,
            cdc::MINIMUM_MAX as i64,
        )?;
        check(
            "chunker.avg",
            c.avg.into(),
            cdc::AVERAGE_MIN as i64,
            cdc::AVERAGE_MAX as i64,
        )?;
        check(
            "chunker.max",
            c.max.into(),
            cdc::MAXIMUM_MIN as i64,
            cdc::MAXIMUM_MAX as i64,
        )?;
        if !(c.min <= c.avg && c.avg <= c.max) {
            return Err(Error::Corrupt {
                name: "config".into(),
                reason: format!(
                    "chunker sizes must grow: min {} <= avg {} <= max {}",
                    c.min, c.avg, c.max
                ),
            });
        }
        check("pack_size", self.pack_size.into(), 64 << 10, 1 << 30)?;
        check("zstd_level", self.zstd_level.into(), -7, 22)?;
        if self.id.is_empty() {
            return Err(Error::Corrupt {
                name: "config".into(),
                reason: "the repository id is empty".into(),
            });
        }
        Ok(())
    }
}

/// Subdirectories of a repository.
const DIRS: &[&str] = &["packs", "index", "snapshots", "locks"];
const LOCK_NAME: &str = "locks/exclusive";
/// Records of damaged packs and blobs found by `check --read-data` or a
/// backup, one immutable file each; see [`Repository::record_damage`].
const DAMAGED_DIR: &str = "damaged";

/// A repository on some backend.
#[derive(Debug, Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    packs: Arc<PackCache>,
    notes: Arc<Mutex<Vec<String>>>,
}

/// (pack, its blob entries) lists, as index files hold them.
pub(crate) type PackLists = Vec<(Id, Vec<BlobEntry>)>;

/// A repository file that was skipped: (name, why).
pub type SkippedFile = (String, String);

/// Damaged packs and blobs recorded in the repository: their copies are
/// never used again (a sound copy elsewhere, or one a later backup stores,
/// takes their place).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// Packs that are missing, short or unreadable as a whole.
    #[serde(default)]
    pub packs: Vec<Id>,
    /// Single blobs, as (pack, blob), whose stored bytes are wrong.
    #[serde(default)]
    pub blobs: Vec<(Id, Id)>,
}

impl Damage {
    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.packs.is_empty() && self.blobs.is_empty()
    }
}

type CachedPack = Arc<std::sync::OnceLock<std::result::Result<Arc<Vec<u8>>, PackReadError>>>;

/// Why a whole pack could not be read, kept so that every reader waiting
/// for it gets the same error: a network failure stays a network failure
/// (with its kind, so "not found" is still "not found"), never "corrupt".
#[derive(Debug, Clone)]
struct PackReadError {
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
                let has_data = ["packs", "index", "snapshots"]
                    .iter()
                    .any(|d| backend.list(d).is_ok_and(|l| !l.is_empty()));
                return Err(Error::NotARepository(
                    backend.location(),
                    if has_data {
                        "it holds packs or snapshots but its config file is missing; \
                         put back the config from a copy of the repository (bk will not \
                         create a new one over existing data)"
                            .into()
                    } else {
                        "it has no config file".into()
                    },
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
        config.validate()?;
        Ok(Repository {
            backend,
            config,
            packs: Arc::default(),
            notes: Arc::default(),
        })
    }

    /// Create a new repository in an absent or empty directory. Fails if
    /// one exists already, or if the directory holds anything else.
    pub fn init(backend: Arc<dyn Backend>) -> Result<Repository> {
        if backend.root_exists()? && !backend.root_is_empty()? {
            return Err(match backend.read("config") {
                Ok(_) => Error::Invalid(format!(
                    "a repository exists already at {}",
                    backend.location()
                )),
                Err(_) => Error::NotARepository(
                    backend.location(),
                    "it is not empty; create a repository in a new or empty directory".into(),
                ),
            });
        }
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
            notes: Arc::default(),
        })
    }

    /// Open, or create when absent (or an empty directory: nothing in it,
    /// not even a subdirectory).
    pub fn open_or_init(backend: Arc<dyn Backend>) -> Result<Repository> {
        match Repository::open(backend.clone()) {
            Err(Error::NoRepository(_)) => Repository::init(backend),
            Err(Error::NotARepository(loc, why)) => {
                if backend.root_exists()? && backend.root_is_empty()? {
                    Repository::init(backend)
                } else if why == "it has no config file" {
                    Err(Error::NotARepository(
                        loc,
                        "it is not empty and has no config file; back up into a new or empty \
                         directory, or the directory of an existing repository"
                            .into(),
                    ))
                } else {
                    Err(Error::NotARepository(loc, why))
                }
            }
            r => r,
        }
    }

    /// Something the user should know that is not an error (a file skipped,
    /// a stale lock broken). Front ends print [`Repository::take_notes`].
    pub fn note(&self, message: impl Into<String>) {
        let m = message.into();
        let mut n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if !n.contains(&m) {
            n.push(m);
        }
    }

    /// The notes collected so far, in order; they are removed.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The transfers the backend retried since the last call (one line per
    /// retried failure, see [`Backend::take_retries`]); they are removed.
    /// Front ends print them and count them in a summary.
    pub fn take_retries(&self) -> Vec<String> {
        self.backend.take_retries()
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
        // The config is one of the few files ever rewritten: atomically,
        // so a reader sees the old or the new one, never none.
        self.backend.replace("config", &bytes)?;
        Ok(Some(found))
    }

    /// Read every index file, leaving out what [`Repository::damage`]
    /// records. A file that is not a sound index file (a stray README, an
    /// empty or truncated file, a copy under another name) is skipped with a
    /// note naming it: its packs then count as unindexed, and the next
    /// backup verifies and indexes them again. A failure to read one is an
    /// error.
    pub fn load_index(&self) -> Result<Index> {
        let (lists, _) = self.index_files()?;
        let damage = self.damage()?;
        Ok(index_without(lists, &damage))
    }

    /// The decoded index files: (pack, entries) lists, and the names of the
    /// sound files.
    pub(crate) fn index_files(&self) -> Result<(PackLists, Vec<String>)> {
        let mut lists = Vec::new();
        let mut names = Vec::new();
        for obj in self.backend.list("index")? {
            let leaf = obj.name.rsplit('/').next().unwrap_or(&obj.name);
            let Some(id) = Id::from_hex(leaf) else {
                self.note(format!(
                    "skipped {}: not an index file name (bk names index files by their hash)",
                    obj.name
                ));
                continue;
            };
            let bytes = self.backend.read(&obj.name)?;
            match index::decode(&obj.name, &bytes) {
                Ok(_) if Id::hash(&bytes) != id => self.note(format!(
                    "skipped {}: its content does not match its name (damaged)",
                    obj.name
                )),
                Ok(packs) => {
                    lists.extend(packs);
                    names.push(obj.name);
                }
                Err(e) => self.note(format!("skipped {e}")),
            }
        }
        Ok((lists, names))
    }

    /// Every damage record of the repository, merged.
    pub fn damage(&self) -> Result<Damage> {
        let mut all = Damage::default();
        for obj in self.backend.list(DAMAGED_DIR)? {
            let bytes = self.backend.read(&obj.name)?;
            match serde_json::from_slice::<Damage>(&bytes) {
                Ok(d) => {
                    all.packs.extend(d.packs);
                    all.blobs.extend(d.blobs);
                }
                Err(e) => self.note(format!("skipped {}: not a damage record: {e}", obj.name)),
            }
        }
        all.packs.sort();
        all.packs.dedup();
        all.blobs.sort();
        all.blobs.dedup();
        Ok(all)
    }

    /// Record damaged packs and blobs, so that no later backup deduplicates
    /// against them and no restore reads them while another copy exists.
    /// An immutable file of its own, named by its hash.
    pub fn record_damage(&self, damage: &Damage) -> Result<()> {
        if damage.is_empty() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(damage).expect("damage serializes");
        let name = format!("{DAMAGED_DIR}/{}.json", Id::hash(&bytes).to_hex());
        self.backend.write(&name, &bytes, false)
    }

    /// These packs were written anew (a backup stored their blobs again and
    /// the content-addressed name came out the same): drop what the damage
    /// records say of them. The records are merged into one new file
    /// first, then the old ones removed; a crash in between leaves the old
    /// claims, which only costs storing those blobs once more.
    ///
    /// `known` is the damage read under the same lock (by
    /// [`Repository::index_for_backup`]): when it says nothing of these
    /// packs, nothing is read or written (the common case costs no I/O).
    pub fn clear_damage_of(&self, known: &Damage, packs: &[Id]) -> Result<()> {
        let written: std::collections::HashSet<&Id> = packs.iter().collect();
        let touches = |d: &Damage| {
            d.packs.iter().any(|p| written.contains(p))
                || d.blobs.iter().any(|(p, _)| written.contains(p))
        };
        if !touches(known) {
            return Ok(());
        }
        let files = self.backend.list(DAMAGED_DIR)?;
        let all = self.damage()?;
        if !touches(&all) {
            return Ok(());
        }
        let rest = Damage {
            packs: all
                .packs
                .into_iter()
                .filter(|p| !written.contains(p))
                .collect(),
            blobs: all
                .blobs
                .into_iter()
                .filter(|(p, _)| !written.contains(p))
                .collect(),
        };
        self.record_damage(&rest)?;
        let kept = serde_json::to_vec_pretty(&rest).expect("damage serializes");
        let kept = format!("{DAMAGED_DIR}/{}.json", Id::hash(&kept).to_hex());
        for obj in files {
            if obj.name != kept {
                self.backend.remove(&obj.name)?;
            }
        }
        Ok(())
    }

    /// Remove every damage record (after `bk repair index` wrote an index
    /// that leaves the damaged copies out).
    pub fn clear_damage(&self) -> Result<()> {
        for obj in self.backend.list(DAMAGED_DIR)? {
            self.backend.remove(&obj.name)?;
        }
        Ok(())
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
            .list("packs")?
            .into_iter()
            .filter_map(|o| pack::pack_id_from_name(&o.name).map(|id| (id, (o.name, o.size))))
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
                        pack::pack_name(pack)
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
                &pack::pack_name(&loc.pack),
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
    /// A file that is not a sound snapshot of its directory (a stray file, a
    /// `… (copy).json`, an empty or truncated file, one describing another
    /// snapshot) is skipped with a note naming it; a failure to read one is
    /// an error.
    pub fn snapshots(&self, dataset: Option<&str>) -> Result<Vec<Snapshot>> {
        Ok(self.snapshot_files(dataset)?.0)
    }

    /// Like [`Repository::snapshots`], also returning the files skipped and
    /// why (for `check`, which reports them as errors).
    pub fn snapshot_files(
        &self,
        dataset: Option<&str>,
    ) -> Result<(Vec<Snapshot>, Vec<SkippedFile>)> {
        let dir = match dataset {
            Some(d) => snapshot::dataset_dir(d),
            None => "snapshots".to_string(),
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for obj in self.backend.list(&dir)? {
            let leaf = obj.name.rsplit('/').next().unwrap_or(&obj.name);
            let numbered = leaf.len() == 15
                && leaf.ends_with(".json")
                && leaf[..10].bytes().all(|b| b.is_ascii_digit());
            if !numbered {
                bad.push((
                    obj.name.clone(),
                    "not a snapshot file name (NNNNNNNNNN.json)".to_string(),
                ));
                continue;
            }
            let bytes = self.backend.read(&obj.name)?;
            match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) if snapshot::snapshot_name(&s.dataset, s.id) == obj.name => out.push(s),
                Ok(s) => bad.push((
                    obj.name.clone(),
                    format!("it describes snapshot {} of {:?}", s.id, s.dataset),
                )),
                Err(e) => bad.push((obj.name.clone(), format!("not a snapshot: {e}"))),
            }
        }
        for (name, why) in &bad {
            self.note(format!("skipped {name}: {why}"));
        }
        out.sort_by(|a, b| (&a.dataset, a.id).cmp(&(&b.dataset, b.id)));
        Ok((out, bad))
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

    /// Rewrite a committed snapshot under its own number (`bk repair
    /// snapshots`): the one write that replaces a snapshot file.
    pub fn replace_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(snap).expect("snapshot serializes");
        self.backend
            .replace(&snapshot::snapshot_name(&snap.dataset, snap.id), &bytes)
    }

    /// Take the exclusive lock. A lock whose owner is a dead process on this
    /// machine (the same machine id and boot, not only the same host name:
    /// cloned VMs and containers share host names) is broken, with a note.
    pub fn lock(&self, command: &str) -> Result<RepoLock> {
        let info = LockInfo::new(command);
        let bytes = serde_json::to_vec(&info).expect("lock serializes");
        for _ in 0..3 {
            match self.backend.write(LOCK_NAME, &bytes, true) {
                Ok(()) => {
                    return Ok(RepoLock {
                        backend: self.backend.clone(),
                        token: info.token.clone(),
                        released: false,
                    });
                }
                Err(e) if is_already_exists(&e) => match self.lock_holder()? {
                    None => continue,
                    Some(h) if h.is_stale() => {
                        self.note(format!(
                            "removed a stale lock: {} is no longer running on this machine",
                            h.describe()
                        ));
                        let _ = self.backend.remove(LOCK_NAME);
                        continue;
                    }
                    Some(h) => {
                        return Err(Error::Locked {
                            holder: h.describe(),
                        });
                    }
                },
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
                token: String::new(),
                machine_id: String::new(),
                boot_id: String::new(),
            }))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove the lock. A lock held by a running process on this machine is
    /// only removed with `force`; one whose owner is gone, or one from
    /// another machine (which cannot be checked from here: the caller asked
    /// for it), is removed. Returns who held it.
    pub fn unlock(&self, force: bool) -> Result<Option<LockInfo>> {
        let Some(h) = self.lock_holder()? else {
            return Ok(None);
        };
        if h.is_live_here() && !force {
            return Err(Error::Invalid(format!(
                "the lock is held by {}, which is running on this machine; stop it, or pass --force to remove its lock anyway",
                h.describe()
            )));
        }
        self.backend.remove(LOCK_NAME)?;
        Ok(Some(h))
    }

    /// Remove the lock whoever holds it. Returns who held it.
    pub fn force_unlock(&self) -> Result<Option<LockInfo>> {
        self.unlock(true)
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
    /// Random, one per lock taken: its holder releases only its own lock.
    #[serde(default)]
    pub token: String,
    /// `/etc/machine-id` of the holder's machine (empty if it has none).
    #[serde(default)]
    pub machine_id: String,
    /// The holder's boot (`/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_id: String,
}

impl LockInfo {
    fn new(command: &str) -> LockInfo {
        let mut t = [0u8; 16];
        getrandom::fill(&mut t).expect("the operating system's random source failed");
        LockInfo {
            host: hostname(),
            pid: std::process::id(),
            command: command.to_string(),
            time: Local::now().to_rfc3339(),
            token: hex::encode(t),
            machine_id: machine_id(),
            boot_id: boot_id(),
        }
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host {} (`{}`, since {})",
            self.pid, self.host, self.command, self.time
        )
    }

    /// Whether the lock was taken on this machine: same host name and the
    /// same machine id (a lock without one, from an older bk or a machine
    /// without `/etc/machine-id`, is never taken for this machine's).
    fn is_this_machine(&self) -> bool {
        let here = machine_id();
        !here.is_empty() && self.machine_id == here && self.host == hostname()
    }

    /// Whether its holder is gone for sure: it was taken on this machine,
    /// and either in an earlier boot or by a pid that is not running.
    fn is_stale(&self) -> bool {
        self.is_this_machine() && (self.boot_id != boot_id() || !pid_alive(self.pid))
    }

    /// Whether its holder is running here now.
    fn is_live_here(&self) -> bool {
        self.is_this_machine() && !self.is_stale()
    }
}

/// Held lock; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    token: String,
    released: bool,
}

impl RepoLock {
    /// Release now. Only this lock is removed: if the lock file is someone
    /// else's by now (ours was broken and another process took the lock),
    /// it is left alone.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.remove_own()
    }

    fn remove_own(&self) -> Result<()> {
        let current = match self.backend.read(LOCK_NAME) {
            Ok(b) => serde_json::from_slice::<LockInfo>(&b).ok(),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if current.is_some_and(|c| c.token == self.token) {
            self.backend.remove(LOCK_NAME)?;
        }
        Ok(())
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.remove_own();
        }
    }
}

fn first_line_of(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This machine's id (`/etc/machine-id`, else D-Bus's copy); empty if none.
pub fn machine_id() -> String {
    let id = first_line_of("/etc/machine-id");
    if id.is_empty() {
        first_line_of("/var/lib/dbus/machine-id")
    } else {
        id
    }
}

/// The id of this boot of the machine; empty if unknown.
fn boot_id() -> String {
    first_line_of("/proc/sys/kernel/random/boot_id")
}

/// An index of `lists` without the packs and blobs `damage` names. A blob
/// kept in several packs is found in a sound one.
fn index_without(lists: PackLists, damage: &Damage) -> Index {
    let bad_packs: std::collections::HashSet<Id> = damage.packs.iter().copied().collect();
    let bad_blobs: std::collections::HashSet<(Id, Id)> = damage.blobs.iter().copied().collect();
    let mut idx = Index::default();
    for (pack, mut entries) in lists {
        if bad_packs.contains(&pack) {
            continue;
        }
        if !bad_blobs.is_empty() {
            entries.retain(|e| !bad_blobs.contains(&(pack, e.id)));
        }
        idx.add_pack(pack, entries);
    }
    idx
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
        let mut stale = LockInfo::new("dead");
        stale.pid = i32::MAX as u32 - 7;
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
