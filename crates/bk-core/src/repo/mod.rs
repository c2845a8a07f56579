//! The repository: config, index, blobs, snapshots and the lock.

mod damage;
mod kept_index;
pub mod layout;
mod lock;
mod packs;

pub use damage::Damage;
use damage::index_without;
pub use lock::{LockInfo, RepoLock, hostname, machine_id};
pub use packs::PackFeed;
use packs::{PackCache, PackReadError};

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Local;
use serde::{Deserialize, Serialize};

use crate::connector::backend::{Backend, ObjectInfo, is_already_exists, is_not_found};
use crate::connector::local::LocalBackend;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{self, Index};
use crate::pack::{self, BlobEntry, BlobKind};
use crate::snapshot::{Select, Snapshot};
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
                    name: layout::CONFIG.into(),
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
                name: layout::CONFIG.into(),
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
                name: layout::CONFIG.into(),
                reason: "the repository id is empty".into(),
            });
        }
        Ok(())
    }
}

/// An index and the names of the index files and damage records it was
/// loaded from.
type CachedIndex = (Vec<String>, Arc<Index>);

/// A repository on some backend.
#[derive(Debug, Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    packs: Arc<PackCache>,
    notes: Arc<Mutex<Vec<String>>>,
    /// The index as [`Repository::index`] loaded it, with the names of the
    /// index files and damage records it was loaded from.
    index: Arc<Mutex<Option<CachedIndex>>>,
}

/// (pack, its blob entries) lists, as index files hold them.
pub(crate) type PackLists = Vec<(Id, Vec<BlobEntry>)>;

/// A repository file that was skipped: (name, why).
pub type SkippedFile = (String, String);

type CachedPack = Arc<std::sync::OnceLock<std::result::Result<Arc<Vec<u8>>, PackReadError>>>;

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
        let raw = match backend.read(layout::CONFIG) {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => {
                let has_data = [layout::PACKS_DIR, layout::INDEX_DIR, layout::SNAPSHOTS_DIR]
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
            name: layout::CONFIG.into(),
            reason: e.to_string(),
        })?;
        if v.format_version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                found: v.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let config: Config = serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
            name: layout::CONFIG.into(),
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(Repository {
            backend,
            config,
            packs: Arc::default(),
            index: Arc::default(),
            notes: Arc::default(),
        })
    }

    /// Create a new repository in an absent or empty directory. Fails if
    /// one exists already, or if the directory holds anything else.
    pub fn init(backend: Arc<dyn Backend>) -> Result<Repository> {
        if backend.root_exists()? && !backend.root_is_empty()? {
            return Err(match backend.read(layout::CONFIG) {
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
        backend.create_dirs(layout::DIRS)?;
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
        match backend.write(layout::CONFIG, &bytes, true) {
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
            index: Arc::default(),
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

    /// The recovery a writer does at start, under the lock: temporary
    /// files of interrupted writes (ours or a crashed run's) are removed.
    /// Packs an interrupted run left complete stay: the next backup verifies
    /// and reuses them ([`Repository::index_for_backup`]). Returns how many
    /// files were removed.
    pub fn recover(&self) -> Result<usize> {
        self.backend.remove_temp_files()
    }

    /// Every pack file: id → (name, size), from one listing of `packs/`.
    /// Files there whose names are not pack ids are left out.
    pub fn pack_listing(&self) -> Result<HashMap<Id, (String, u64)>> {
        Ok(self
            .backend
            .list(layout::PACKS_DIR)?
            .into_iter()
            .filter_map(|o| layout::pack_id_from_name(&o.name).map(|id| (id, (o.name, o.size))))
            .collect())
    }

    /// A pack file's bytes, whole.
    pub fn read_pack(&self, id: &Id) -> Result<Vec<u8>> {
        self.backend.read(&layout::pack_name(id))
    }

    /// Store a finished pack under its id (an existing file of that name
    /// is compared, and replaced when it differs).
    pub fn write_pack(&self, id: &Id, bytes: &[u8]) -> Result<()> {
        self.backend.write(&layout::pack_name(id), bytes, false)
    }

    /// Remove a pack file (repair, once its blobs are in a new pack).
    pub fn remove_pack(&self, id: &Id) -> Result<()> {
        self.backend.remove(&layout::pack_name(id))
    }

    /// Names of every file in `index/`, readable or not.
    pub fn index_file_names(&self) -> Result<Vec<String>> {
        Ok(self
            .backend
            .list(layout::INDEX_DIR)?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    /// Remove an index file (repair, once a new index covers its packs).
    pub fn remove_index_file(&self, name: &str) -> Result<()> {
        self.index_changed();
        if !name.starts_with(&format!("{}/", layout::INDEX_DIR)) {
            return Err(Error::Invalid(format!("{name} is not an index file")));
        }
        self.backend.remove(name)
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
            name: layout::CONFIG.into(),
            reason: e.to_string(),
        };
        // Read again: another backup may have upgraded it meanwhile.
        let mut config: Config =
            serde_json::from_slice(&self.backend.read(layout::CONFIG)?).map_err(corrupt)?;
        let found = config.format_version;
        if found >= FORMAT_VERSION {
            return Ok(None);
        }
        config.format_version = FORMAT_VERSION;
        let bytes = serde_json::to_vec_pretty(&config).expect("config serializes");
        // The config is one of the few files ever rewritten: atomically,
        // so a reader sees the old or the new one, never none.
        self.backend.replace(layout::CONFIG, &bytes)?;
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
        self.index_files_of(self.backend.list(layout::INDEX_DIR)?)
    }

    /// [`Repository::index_files`] of these entries of `index/`.
    fn index_files_of(&self, objs: Vec<ObjectInfo>) -> Result<(PackLists, Vec<String>)> {
        let mut lists = Vec::new();
        let mut names = Vec::new();
        for obj in objs {
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

    /// Write an index file for these packs.
    pub fn write_index(&self, packs: &[(Id, Vec<BlobEntry>)]) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        self.index_changed();
        let (id, bytes) = index::encode(packs);
        self.backend.write(&layout::index_name(&id), &bytes, false)
    }

    /// Names of all datasets.
    pub fn datasets(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .backend
            .list(layout::SNAPSHOTS_DIR)?
            .into_iter()
            .filter_map(|o| {
                let mut parts = o.name.split('/');
                parts.next();
                layout::decode_dataset_dir(parts.next()?)
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

    /// The snapshot of `dataset` that `sel` chooses: the latest, by
    /// number, or the newest one before a time. The error names the dataset
    /// and what it has.
    pub fn find_snapshot(&self, dataset: &str, sel: Select) -> Result<Snapshot> {
        let snaps = self.snapshots(Some(dataset))?;
        crate::snapshot::select(dataset, &snaps, sel).cloned()
    }

    /// Like [`Repository::snapshots`], also returning the files skipped and
    /// why (for `check`, which reports them as errors).
    pub fn snapshot_files(
        &self,
        dataset: Option<&str>,
    ) -> Result<(Vec<Snapshot>, Vec<SkippedFile>)> {
        let dir = match dataset {
            Some(d) => layout::dataset_dir(d),
            None => layout::SNAPSHOTS_DIR.to_string(),
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
                Ok(s) if layout::snapshot_name(&s.dataset, s.id) == obj.name => out.push(s),
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
        self.backend
            .write(&layout::snapshot_name(&snap.dataset, snap.id), &bytes, true)
    }

    /// Rewrite a committed snapshot under its own number (`bk repair
    /// snapshots`): the one write that replaces a snapshot file.
    pub fn replace_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(snap).expect("snapshot serializes");
        self.backend
            .replace(&layout::snapshot_name(&snap.dataset, snap.id), &bytes)
    }
}
