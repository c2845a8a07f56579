// tidy: long file: the backup pipeline (scanner, readers, packers, commit) shares one set of types and channels; scan/read/pack modules of their own are the next split
//! Backup: walk a source, store what changed, commit a snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Local;
use crossbeam_channel::{Receiver, Sender, bounded};

use crate::chunker::{ChunkError, Chunker};
use crate::connector::source::{EntryKind, EntryMeta, Source};
use crate::diff::{Change, diff_trees};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::Index;
use crate::pack::{BlobEntry, BlobKind, Compression, PackWriter};
use crate::progress::{Cancel, NoProgress, Phase, Progress, Totals};
use crate::repo::{Repository, hostname};
use crate::snapshot::{RootMeta, Snapshot, Stats, Warning, check_dataset_name};
use crate::tree::{Node, NodeKind, Tree, Xattr, display_path, join};

/// Options of a backup.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Dataset name; required (the CLI defaults it to the path's last component).
    pub dataset: String,
    /// Re-read every file instead of trusting size, mtime, ctime and inode.
    pub full: bool,
    /// Leave ctime out of the "unchanged since the parent" test, for file
    /// systems without a meaningful one (some FUSE and network mounts).
    pub ignore_ctime: bool,
    /// Worker threads (0 = one per CPU).
    pub threads: usize,
    /// Stay on the dataset root's file system: a directory on another
    /// device (a mount point) is recorded as an empty directory with its
    /// own metadata, and named once in a repository note.
    pub one_file_system: bool,
    /// The user named the dataset (rather than a name derived from the
    /// source's last component): a source other than the dataset's last
    /// one is then accepted.
    pub dataset_given: bool,
    /// Progress receiver: phases scan, read (packs are uploaded meanwhile),
    /// then upload (the last packs, the index and the snapshot).
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the backup when cancelled: it then commits nothing and ends
    /// with [`Error::Cancelled`].
    pub cancel: Option<Cancel>,
}

impl std::fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupOptions")
            .field("dataset", &self.dataset)
            .field("full", &self.full)
            .field("ignore_ctime", &self.ignore_ctime)
            .field("threads", &self.threads)
            .field("one_file_system", &self.one_file_system)
            .finish()
    }
}

impl BackupOptions {
    /// Options for a dataset.
    pub fn new(dataset: impl Into<String>) -> BackupOptions {
        BackupOptions {
            dataset: dataset.into(),
            ..Default::default()
        }
    }

    /// Full or incremental.
    pub fn full(mut self, full: bool) -> Self {
        self.full = full;
        self
    }

    /// The dataset name was given by the user, not derived from the source.
    pub fn dataset_given(mut self, yes: bool) -> Self {
        self.dataset_given = yes;
        self
    }

    /// Leave ctime out of the unchanged test.
    pub fn ignore_ctime(mut self, yes: bool) -> Self {
        self.ignore_ctime = yes;
        self
    }

    /// Thread count.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Stay on the dataset root's file system.
    pub fn one_file_system(mut self, yes: bool) -> Self {
        self.one_file_system = yes;
        self
    }

    /// Progress receiver.
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

/// Number of worker threads to use by default.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

// ---------------------------------------------------------------- packing

struct Shared<'a> {
    repo: &'a Repository,
    index: &'a Index,
    claimed: Mutex<HashSet<Id>>,
    data: Packer,
    trees: Packer,
    level: i32,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    written: Mutex<Vec<(Id, Vec<BlobEntry>)>>,
    stored_bytes: AtomicU64,
    blobs_stored: AtomicU64,
    cancel: Cancel,
}

/// A worker's zstd context and reusable output buffer.
#[derive(Default)]
struct Compress {
    ctx: Option<zstd::bulk::Compressor<'static>>,
    out: Vec<u8>,
}

struct Packer {
    kind: BlobKind,
    target: usize,
    current: Mutex<Option<PackWriter>>,
    tx: Mutex<Option<Sender<PackWriter>>>,
}

impl Packer {
    fn new(kind: BlobKind, target: usize, tx: Sender<PackWriter>) -> Packer {
        Packer {
            kind,
            target,
            current: Mutex::new(None),
            tx: Mutex::new(Some(tx)),
        }
    }

    fn add(&self, id: Id, comp: Compression, stored: &[u8], raw: usize) -> Result<()> {
        let full = {
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            let w = cur.get_or_insert_with(|| PackWriter::with_capacity(self.target + (1 << 20)));
            w.add(self.kind, id, comp, stored, raw);
            if w.len() >= self.target {
                cur.take()
            } else {
                None
            }
        };
        if let Some(p) = full {
            self.send(p)?;
        }
        Ok(())
    }

    fn send(&self, p: PackWriter) -> Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match tx {
            Some(tx) => tx
                .send(p)
                .map_err(|_| Error::Invalid("pack writers stopped".into())),
            None => Err(Error::Invalid("packer already closed".into())),
        }
    }

    /// Send the partial pack and close this packer's channel.
    fn close(&self) -> Result<()> {
        let last = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let r = match last {
            Some(p) if !p.is_empty() => self.send(p),
            _ => Ok(()),
        };
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        r
    }
}

impl Shared<'_> {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Store a blob unless the repository (or this run) has it already.
    fn store(&self, kind: BlobKind, data: &[u8], zc: &mut Compress) -> Result<Id> {
        let id = Id::hash(data);
        if self.index.contains(&id) {
            return Ok(id);
        }
        if !self
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
        {
            return Ok(id);
        }
        let compressor = match &mut zc.ctx {
            Some(c) => c,
            None => zc.ctx.insert(
                zstd::bulk::Compressor::new(self.level)
                    .map_err(|e| Error::Invalid(format!("zstd: {e}")))?,
            ),
        };
        // Keep the compressed form only when it saves something worth the
        // decompression on restore: the output buffer is capped so that zstd
        // gives up as soon as it would not.
        let limit = data.len() - data.len() / 64;
        zc.out.clear();
        zc.out.reserve(limit);
        let (comp, stored) = match compressor.compress_to_buffer(data, &mut zc.out) {
            Ok(n) if n < limit && !data.is_empty() => (Compression::Zstd, &zc.out[..n]),
            _ => (Compression::None, data),
        };
        let packer = match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.trees,
        };
        packer.add(id, comp, stored, data.len())?;
        self.blobs_stored.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }
}

/// The warning of a file that kept changing while it was read: what was
/// read last is stored (so a restore reproduces it; it is not missing).
pub(crate) const CHANGED_WHILE_READ: &str =
    "file changed while it was read; stored the content read last";

/// Closes both packers when dropped.
struct ClosePackers<'s, 'a>(&'s Shared<'a>);

impl Drop for ClosePackers<'_, '_> {
    fn drop(&mut self) {
        let _ = self.0.data.close();
        let _ = self.0.trees.close();
    }
}

fn pack_writer_loop(shared: &Shared<'_>, rx: Receiver<PackWriter>) {
    for p in rx {
        if shared.failed.load(Ordering::SeqCst) {
            continue;
        }
        if shared.cancel.is_cancelled() {
            shared.fail(Error::Cancelled);
            continue;
        }
        let (id, bytes, entries) = p.finish();
        match shared.repo.write_pack(&id, &bytes) {
            Ok(()) => {
                shared
                    .stored_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                shared
                    .written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, entries));
            }
            Err(e) => shared.fail(e),
        }
    }
}

// ---------------------------------------------------------------- scanning

struct ScanDir {
    entries: Vec<ScanEntry>,
}

struct ScanEntry {
    node: Node,
    /// Index into the job list when the file must be read.
    job: Option<usize>,
    sub: Option<ScanDir>,
}

struct Job {
    path: Vec<u8>,
    meta: EntryMeta,
}

struct JobResult {
    content: Vec<Id>,
    size: u64,
    meta: EntryMeta,
}

struct Scanner<'a> {
    source: &'a dyn Source,
    repo: &'a Repository,
    index: &'a Index,
    full: bool,
    ignore_ctime: bool,
    /// Files whose mtime is at or after this (seconds, already rounded down
    /// to the source's mtime granularity) are read again: within one coarse
    /// mtime unit a change after the parent's walk cannot be seen.
    trust_before: Option<i64>,
    /// With `--one-file-system`: the root's device; directories on another
    /// are not entered.
    root_dev: Option<u64>,
    /// Mount points not entered (paths).
    not_crossed: Vec<Vec<u8>>,
    jobs: Vec<Job>,
    warnings: Vec<Warning>,
    /// Checked once per directory; the caller checks it after the walk.
    cancel: &'a Cancel,
}

fn node_from(name: Vec<u8>, kind: NodeKind, m: &EntryMeta) -> Node {
    Node {
        name,
        kind,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: m.mtime,
        mtime_nsec: m.mtime_nsec,
        // A size unknown before reading is set from the read.
        size: m.size.unwrap_or(0),
        inode: m.inode,
        ctime: m.ctime,
        ctime_nsec: m.ctime_nsec,
        xattrs: Vec::new(),
        hardlink: None,
        content: Vec::new(),
        subtree: None,
        target: Vec::new(),
        change_token: m.change_token.clone(),
    }
}

impl Scanner<'_> {
    fn warn(&mut self, path: &[u8], message: impl Into<String>) {
        self.warnings.push(Warning {
            path: display_path(path),
            message: message.into(),
        });
    }

    /// Whether `old` (the parent's node) still describes the entry's
    /// status: same inode and ctime (every write, chmod, chown and xattr
    /// change moves ctime; a source without ctimes never qualifies).
    fn status_unchanged(&self, old: &Node, meta: &EntryMeta) -> bool {
        !self.full
            && !self.ignore_ctime
            && (meta.ctime != 0 || meta.ctime_nsec != 0)
            && old.ctime == meta.ctime
            && old.ctime_nsec == meta.ctime_nsec
            && old.inode == meta.inode
    }

    /// The entry's extended attributes: the parent's when its status is
    /// unchanged (no extra system call for an unchanged file), else read,
    /// with a warning naming each one that could not be.
    fn xattrs(&mut self, path: &[u8], old: Option<&Node>, meta: &EntryMeta) -> Vec<Xattr> {
        if let Some(o) = old.filter(|o| self.status_unchanged(o, meta)) {
            return o.xattrs.clone();
        }
        let r = self.source.xattrs(path);
        for e in r.errors {
            self.warn(path, e);
        }
        r.attrs
    }

    /// The "unchanged since the parent" test for a file. Where both the
    /// parent's node and the entry carry a change token, the tokens decide
    /// (a size known now that differs from the stored one still means
    /// changed); else size, mtime, ctime and inode, and an entry whose size
    /// is not known in advance is always read.
    fn file_unchanged(&self, old: Option<&Node>, meta: &EntryMeta) -> bool {
        let Some(o) = old else { return false };
        if self.full || o.kind != NodeKind::File || !self.blobs_present(o) {
            return false;
        }
        if let (Some(was), Some(now)) = (&o.change_token, &meta.change_token) {
            return was == now && meta.size.is_none_or(|s| s == o.size);
        }
        meta.size == Some(o.size)
            && o.mtime == meta.mtime
            && o.mtime_nsec == meta.mtime_nsec
            && o.inode == meta.inode
            && (self.ignore_ctime || (o.ctime == meta.ctime && o.ctime_nsec == meta.ctime_nsec))
            && self.trust_before.is_none_or(|t| meta.mtime < t)
    }

    /// Whether the content of the parent's node `o` can be reused: a blob
    /// lost from the repository (its pack missing, short or damaged) is
    /// read again.
    fn blobs_present(&self, o: &Node) -> bool {
        (o.size == 0 || !o.content.is_empty()) && o.content.iter().all(|b| self.index.contains(b))
    }

    fn parent_tree(&self, id: Option<&Id>) -> Option<Tree> {
        // A parent that cannot be read only costs speed: files are re-read.
        id.and_then(|id| self.repo.read_tree(self.index, id).ok())
    }

    fn scan(&mut self, dir: &[u8], parent: Option<&Tree>) -> ScanDir {
        if self.cancel.is_cancelled() {
            return ScanDir {
                entries: Vec::new(),
            };
        }
        let list = match self.source.list(dir) {
            Ok(l) => l,
            Err(e) => {
                self.warn(dir, format!("directory not read: {e}"));
                return ScanDir {
                    entries: Vec::new(),
                };
            }
        };
        let mut entries = Vec::with_capacity(list.len());
        for ent in list {
            let path = join(dir, &ent.name);
            let meta = match ent.meta {
                Ok(m) => m,
                Err(e) => {
                    self.warn(&path, format!("not backed up: cannot read metadata: {e}"));
                    continue;
                }
            };
            let old = parent
                .and_then(|t| t.find(&ent.name))
                .filter(|o| kind_matches(o.kind, meta.kind));
            let xattrs = match meta.kind {
                EntryKind::Unsupported(_) => Vec::new(),
                _ => self.xattrs(&path, old, &meta),
            };
            // Every node made for this entry carries its attributes.
            let node_from = |name: Vec<u8>, kind: NodeKind, m: &EntryMeta| Node {
                xattrs: xattrs.clone(),
                ..node_from(name, kind, m)
            };
            match meta.kind {
                EntryKind::Dir if self.root_dev.is_some_and(|d| d != meta.dev) => {
                    self.not_crossed.push(path);
                    entries.push(ScanEntry {
                        node: node_from(ent.name, NodeKind::Dir, &meta),
                        job: None,
                        sub: Some(ScanDir {
                            entries: Vec::new(),
                        }),
                    });
                }
                EntryKind::Dir => {
                    let old_sub = old
                        .filter(|n| n.kind == NodeKind::Dir)
                        .and_then(|n| self.parent_tree(n.subtree.as_ref()));
                    let sub = self.scan(&path, old_sub.as_ref());
                    entries.push(ScanEntry {
                        node: node_from(ent.name, NodeKind::Dir, &meta),
                        job: None,
                        sub: Some(sub),
                    });
                }
                EntryKind::File => {
                    let mut node = node_from(ent.name, NodeKind::File, &meta);
                    if meta.nlink > 1 {
                        node.hardlink = Some(crate::tree::link_group(meta.dev, meta.inode));
                    }
                    let unchanged = self.file_unchanged(old, &meta);
                    let job = if unchanged {
                        let o = old.expect("checked");
                        node.content = o.content.clone();
                        // The stored content's size (a source may not
                        // know it before reading).
                        node.size = o.size;
                        // The ctime the content was last read at: with
                        // --ignore-ctime a later backup without it still
                        // sees a ctime change.
                        (node.ctime, node.ctime_nsec) = (o.ctime, o.ctime_nsec);
                        None
                    } else {
                        self.jobs.push(Job {
                            path: path.clone(),
                            meta: meta.clone(),
                        });
                        Some(self.jobs.len() - 1)
                    };
                    entries.push(ScanEntry {
                        node,
                        job,
                        sub: None,
                    });
                }
                EntryKind::Symlink => match self.source.read_link(&path) {
                    Ok(target) => {
                        let mut node = node_from(ent.name, NodeKind::Symlink, &meta);
                        node.target = target;
                        entries.push(ScanEntry {
                            node,
                            job: None,
                            sub: None,
                        });
                    }
                    Err(e) => self.warn(&path, format!("not backed up: {e}")),
                },
                EntryKind::Fifo => entries.push(ScanEntry {
                    node: node_from(ent.name, NodeKind::Fifo, &meta),
                    job: None,
                    sub: None,
                }),
                EntryKind::Unsupported(what) => {
                    self.warn(&path, format!("skipped: {what}s are not backed up"));
                }
            }
        }
        ScanDir { entries }
    }
}

// ---------------------------------------------------------------- reading

/// Whether a file is still the version it was: a rewrite of the same size
/// whose mtime was put back still moves its ctime. Sizes and change tokens
/// are compared where both reports have one.
fn same_version(a: &EntryMeta, b: &EntryMeta) -> bool {
    a.size.zip(b.size).is_none_or(|(x, y)| x == y)
        && a.change_token
            .as_ref()
            .zip(b.change_token.as_ref())
            .is_none_or(|(x, y)| x == y)
        && a.mtime == b.mtime
        && a.mtime_nsec == b.mtime_nsec
        && a.ctime == b.ctime
        && a.ctime_nsec == b.ctime_nsec
        && a.inode == b.inode
}

/// Whether a parent's node of kind `n` is the same kind of entry as `e`.
fn kind_matches(n: NodeKind, e: EntryKind) -> bool {
    matches!(
        (n, e),
        (NodeKind::File, EntryKind::File)
            | (NodeKind::Dir, EntryKind::Dir)
            | (NodeKind::Symlink, EntryKind::Symlink)
            | (NodeKind::Fifo, EntryKind::Fifo)
    )
}

fn read_file(
    shared: &Shared<'_>,
    source: &dyn Source,
    job: &Job,
    chunker: &mut Chunker,
    zc: &mut Compress,
    progress: &dyn Progress,
) -> std::result::Result<(JobResult, Option<String>), String> {
    let mut meta = job.meta.clone();
    for attempt in 0..2 {
        let mut f = source.open(&job.path).map_err(|e| e.to_string())?;
        let mut content = Vec::new();
        let r = chunker.chunk(&mut f, |chunk| -> Result<()> {
            shared.cancel.check()?;
            if shared.failed.load(Ordering::Relaxed) {
                return Err(Error::Invalid("backup aborted".into()));
            }
            content.push(shared.store(BlobKind::Data, chunk, zc)?);
            progress.bytes(&job.path, chunk.len() as u64);
            Ok(())
        });
        let size = match r {
            Ok(n) => n,
            Err(ChunkError::Read(e)) => return Err(format!("read error: {e}")),
            Err(ChunkError::Sink(e)) => {
                shared.fail(e);
                return Err("backup aborted".into());
            }
        };
        let now = f.meta_now();
        // Sources that cannot re-inspect an open file (FTP) vouch for it
        // through the transfer's completion reply and its size; content
        // whose size is not known in advance is whatever the read gave.
        let stable = match &now {
            Some(n) => same_version(n, &meta) && n.size.is_none_or(|s| s == size),
            None => meta.size.is_none_or(|s| s == size),
        };
        if stable || attempt == 1 {
            let warning = (!stable).then(|| CHANGED_WHILE_READ.to_string());
            let walked_token = meta.change_token.clone();
            let mut m = now.unwrap_or(meta);
            m.size = Some(size);
            if m.change_token.is_none() {
                m.change_token = walked_token;
            }
            return Ok((
                JobResult {
                    content,
                    size,
                    meta: m,
                },
                warning,
            ));
        }
        if let Some(n) = now {
            meta = n;
        }
    }
    unreachable!("the loop returns")
}

// ---------------------------------------------------------------- building

struct Builder<'s, 'a> {
    shared: &'s Shared<'a>,
    results: Vec<Option<JobResult>>,
    new_trees: HashMap<Id, Tree>,
    stats: Stats,
    zc: Compress,
}

impl Builder<'_, '_> {
    fn build(&mut self, dir: ScanDir) -> Result<Id> {
        let mut nodes = Vec::with_capacity(dir.entries.len());
        for e in dir.entries {
            let mut node = e.node;
            if let Some(sub) = e.sub {
                node.subtree = Some(self.build(sub)?);
                self.stats.dirs += 1;
            } else if let Some(j) = e.job {
                // A file that could not be read is left out (and warned about).
                let Some(r) = self.results[j].take() else {
                    continue;
                };
                node.content = r.content;
                node.size = r.size;
                node.mtime = r.meta.mtime;
                node.mtime_nsec = r.meta.mtime_nsec;
                node.mode = r.meta.mode;
                node.uid = r.meta.uid;
                node.gid = r.meta.gid;
                node.inode = r.meta.inode;
                node.ctime = r.meta.ctime;
                node.ctime_nsec = r.meta.ctime_nsec;
                node.change_token = r.meta.change_token;
            }
            match node.kind {
                NodeKind::File => {
                    self.stats.files += 1;
                    self.stats.bytes += node.size;
                }
                NodeKind::Dir => {}
                _ => self.stats.others += 1,
            }
            nodes.push(node);
        }
        let tree = Tree { nodes };
        let (id, bytes) = tree.encode();
        self.shared.store(BlobKind::Tree, &bytes, &mut self.zc)?;
        self.new_trees.insert(id, tree);
        Ok(id)
    }
}

// ---------------------------------------------------------------- backup

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// The source's view, open from [`Source::begin`] on: [`SourceView::end`]
/// closes it after a backup that read everything, and dropping it closes
/// it after one that failed, panicked or was cancelled.
struct SourceView<'a> {
    source: &'a dyn Source,
    open: bool,
}

impl<'a> SourceView<'a> {
    fn begin(source: &'a dyn Source) -> Result<SourceView<'a>> {
        source.begin()?;
        Ok(SourceView { source, open: true })
    }

    fn end(mut self) -> Result<()> {
        self.open = false;
        self.source.end()
    }
}

impl Drop for SourceView<'_> {
    fn drop(&mut self) {
        if self.open {
            // The backup's own error is the one reported.
            let _ = self.source.end();
        }
    }
}

/// For a source with coarse mtimes: the start of the mtime unit in which
/// the parent snapshot began. A file listed then with an mtime in that
/// unit may have changed again within it, after the parent's walk, with
/// the same listed size and mtime.
fn trust_before(source: &dyn Source, parent: Option<&Snapshot>) -> Option<i64> {
    let g = i64::from(source.mtime_granularity_secs());
    let p = parent?;
    (g > 0).then(|| p.time.timestamp().div_euclid(g) * g)
}

/// Back up `source` into `repo` as a new snapshot of `opts.dataset`.
///
/// Returns the committed snapshot. Files that could not be read are listed
/// in its `warnings`; any repository error aborts before the snapshot is
/// written, leaving every earlier snapshot intact. So does a cancel
/// ([`Error::Cancelled`]), checked per directory while scanning, per chunk
/// while reading and per pack before uploading: packs already uploaded
/// stay, as after a crash, and the next backup reuses them.
pub fn backup(repo: &Repository, source: &dyn Source, opts: &BackupOptions) -> Result<Snapshot> {
    let started = Instant::now();
    let time = Local::now().fixed_offset();
    check_dataset_name(&opts.dataset)?;
    let root_meta = source.root()?;
    let progress: Arc<dyn Progress> = opts
        .progress
        .clone()
        .unwrap_or_else(|| Arc::new(NoProgress));
    let cancel = opts.cancel.clone().unwrap_or_default();
    cancel.check()?;
    let _lock = repo.lock(&format!("backup {}", opts.dataset))?;
    repo.recover()?;
    let (mut index, damage) = repo.index_for_backup()?;

    let snaps = repo.snapshots(Some(&opts.dataset))?;
    let parent = snaps.iter().max_by_key(|s| s.id);
    let described = source.describe();
    if let Some(p) = parent
        && !opts.dataset_given
        && p.source != described
    {
        return Err(Error::Invalid(format!(
            "dataset {:?} was last backed up from {}, not from {described}; pass --dataset {:?} to add this one to it anyway, or --dataset NAME to start a new dataset",
            opts.dataset, p.source, opts.dataset
        )));
    }
    // New trees carry format-2 fields: an older bk must not read them.
    if let Some(old) = repo.upgrade_format()? {
        repo.note(format!(
            "upgraded repository {} from format {old} to {}: bk older than this one can no longer use it",
            repo.backend().location(),
            crate::repo::FORMAT_VERSION
        ));
    }
    let next_id = parent.map_or(0, |p| p.id + 1);
    let parent_root = parent.and_then(|p| repo.read_tree(&index, &p.tree).ok());
    if let Some(root) = repo.backend().local_root()
        && let Ok(m) = std::fs::metadata(root)
    {
        use std::os::unix::fs::MetadataExt;
        if (m.dev(), m.ino()) == (root_meta.dev, root_meta.inode) {
            return Err(Error::Invalid(format!(
                "the repository {} is the directory being backed up; keep the repository outside the dataset",
                repo.backend().location()
            )));
        }
        source.exclude_dir(m.dev(), m.ino());
    }

    let mut scanner = Scanner {
        source,
        repo,
        index: &index,
        full: opts.full,
        ignore_ctime: opts.ignore_ctime,
        trust_before: trust_before(source, parent),
        root_dev: opts.one_file_system.then_some(root_meta.dev),
        not_crossed: Vec::new(),
        jobs: Vec::new(),
        warnings: Vec::new(),
        cancel: &cancel,
    };
    let view = SourceView::begin(source)?;
    progress.phase(Phase::Scan, Totals::default());
    let root_scan = scanner.scan(b"", parent_root.as_ref());
    cancel.check()?;
    let Scanner {
        jobs,
        mut warnings,
        not_crossed,
        ..
    } = scanner;
    // What the user asked for, so a note rather than a warning: the
    // snapshot is not partial.
    for p in not_crossed {
        repo.note(format!(
            "not crossed: mount point {} (another file system), recorded as an empty directory",
            display_path(&p)
        ));
    }
    for p in source.excluded() {
        repo.note(format!(
            "left out: the repository itself ({}), found inside the dataset at {}",
            repo.backend().location(),
            display_path(&p)
        ));
    }
    // Sizes not known in advance count 0 here; they are counted as read.
    let bytes_to_read: u64 = jobs.iter().filter_map(|j| j.meta.size).sum();
    progress.phase(
        Phase::Read,
        Totals {
            files: Some(jobs.len() as u64),
            bytes: Some(bytes_to_read),
        },
    );

    let cfg = repo.config();
    let (tx, rx) = bounded::<PackWriter>(0);
    let shared = Shared {
        repo,
        index: &index,
        claimed: Mutex::new(HashSet::new()),
        data: Packer::new(BlobKind::Data, cfg.pack_size as usize, tx.clone()),
        trees: Packer::new(BlobKind::Tree, (cfg.pack_size / 4) as usize, tx),
        level: cfg.zstd_level,
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        written: Mutex::new(Vec::new()),
        stored_bytes: AtomicU64::new(0),
        blobs_stored: AtomicU64::new(0),
        cancel: cancel.clone(),
    };

    // Largest files first, so one big file does not finish alone at the
    // end; one of unknown size (a whole table's dump) may be the largest.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].meta.size.unwrap_or(u64::MAX)));
    let threads = if opts.threads == 0 {
        default_threads()
    } else {
        opts.threads
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<JobResult>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let job_warnings: Mutex<Vec<Warning>> = Mutex::new(Vec::new());
    let files_read = AtomicU64::new(0);
    let bytes_read = AtomicU64::new(0);

    let build = std::thread::scope(|s| -> Result<(Id, HashMap<Id, Tree>, Stats)> {
        let writers: Vec<_> = (0..repo.backend().write_parallelism().max(1))
            .map(|_| {
                let rx = rx.clone();
                let shared = &shared;
                s.spawn(move || pack_writer_loop(shared, rx))
            })
            .collect();
        drop(rx);
        // Should this thread unwind, the pack writers must still see their
        // channel close, or the scope would wait for them forever.
        let _close = ClosePackers(&shared);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut chunker = Chunker::new(cfg.chunker);
                    let mut zc = Compress::default();
                    loop {
                        if shared.failed.load(Ordering::Relaxed) {
                            return;
                        }
                        if shared.cancel.is_cancelled() {
                            shared.fail(Error::Cancelled);
                            return;
                        }
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&j) = order.get(k) else { return };
                        let job = &jobs[j];
                        match read_file(&shared, source, job, &mut chunker, &mut zc, &*progress) {
                            Ok((r, warn)) => {
                                files_read.fetch_add(1, Ordering::Relaxed);
                                bytes_read.fetch_add(r.size, Ordering::Relaxed);
                                if let Some(w) = warn {
                                    job_warnings.lock().unwrap_or_else(|p| p.into_inner()).push(
                                        Warning {
                                            path: display_path(&job.path),
                                            message: w,
                                        },
                                    );
                                }
                                results.lock().unwrap_or_else(|p| p.into_inner())[j] = Some(r);
                            }
                            Err(msg) => {
                                if !shared.failed.load(Ordering::Relaxed) {
                                    job_warnings.lock().unwrap_or_else(|p| p.into_inner()).push(
                                        Warning {
                                            path: display_path(&job.path),
                                            message: format!("not backed up: {msg}"),
                                        },
                                    );
                                }
                            }
                        }
                        progress.file_done(&job.path);
                    }
                })
            })
            .collect();
        for w in workers {
            if let Err(panic) = w.join() {
                shared.fail(Error::Invalid(format!(
                    "internal error: a backup worker failed ({}); nothing was committed",
                    panic_message(&*panic)
                )));
            }
        }
        let mut builder = Builder {
            shared: &shared,
            results: std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner())),
            new_trees: HashMap::new(),
            stats: Stats::default(),
            zc: Compress::default(),
        };
        let built = if shared.failed.load(Ordering::SeqCst) {
            Err(Error::Invalid("aborted".into()))
        } else {
            progress.phase(Phase::Upload, Totals::default());
            builder.build(root_scan)
        };
        let closed = shared.data.close().and(shared.trees.close());
        for w in writers {
            if let Err(panic) = w.join() {
                shared.fail(Error::Invalid(format!(
                    "internal error: a pack writer failed ({}); nothing was committed",
                    panic_message(&*panic)
                )));
            }
        }
        if let Some(e) = shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        let root = built?;
        closed?;
        Ok((root, builder.new_trees, builder.stats))
    });
    let (root_tree, new_trees, mut stats) = build?;
    view.end()?;

    let written = std::mem::take(&mut *shared.written.lock().unwrap_or_else(|p| p.into_inner()));
    stats.stored_bytes = shared.stored_bytes.load(Ordering::Relaxed);
    stats.blobs_stored = shared.blobs_stored.load(Ordering::Relaxed);
    drop(shared);
    let ids: Vec<Id> = written.iter().map(|(id, _)| *id).collect();
    cancel.check()?;
    repo.clear_damage_of(&damage, &ids)?;
    repo.write_index(&written)?;
    for (id, e) in written {
        index.add_pack(id, e);
    }

    // Added / modified / deleted against the parent.
    let mut load = |id: &Id| -> Result<Tree> {
        match new_trees.get(id) {
            Some(t) => Ok(t.clone()),
            None => repo.read_tree(&index, id),
        }
    };
    if let Some(p) = parent {
        // Best effort: counts stay zero if a parent tree cannot be read.
        let _ = diff_trees(
            &mut load,
            Some(&p.tree),
            Some(&root_tree),
            &mut |c, _, n| {
                if n.kind != NodeKind::Dir {
                    match c {
                        Change::Added => stats.added += 1,
                        Change::Modified => stats.modified += 1,
                        Change::Deleted => stats.deleted += 1,
                    }
                }
            },
        );
    } else {
        stats.added = stats.files + stats.others;
    }
    warnings.extend(job_warnings.into_inner().unwrap_or_else(|p| p.into_inner()));
    warnings.sort_by(|a, b| a.path.cmp(&b.path));
    stats.files_read = files_read.load(Ordering::Relaxed);
    stats.bytes_read = bytes_read.load(Ordering::Relaxed);
    stats.duration_ms = started.elapsed().as_millis() as u64;

    let snap = Snapshot {
        dataset: opts.dataset.clone(),
        id: next_id,
        time,
        // The first snapshot of a dataset reads everything: it is full.
        full: opts.full || parent.is_none(),
        parent: parent.map(|p| p.id),
        tree: root_tree,
        root: RootMeta {
            mode: root_meta.mode,
            uid: root_meta.uid,
            gid: root_meta.gid,
            mtime: root_meta.mtime,
            mtime_nsec: root_meta.mtime_nsec,
        },
        source: source.describe(),
        host: hostname(),
        stats,
        warnings,
    };
    cancel.check()?;
    repo.commit_snapshot(&snap)?;
    Ok(snap)
}

#[cfg(test)]
mod tests;
