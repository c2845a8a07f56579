// tidy: long file: unit tests of one pipeline, each building its own dataset; grouped by contract point
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::connector::local::LocalSource;
use crate::connector::source::{SourceEntry, SourceFile};

/// A local source whose files really change on disk while bk reads
/// them: the first `changes` opens append to the file after the first
/// read call (a real writer racing the backup, made deterministic).
/// With `same_size`, the writer instead rewrites the file in place
/// with as many bytes and puts its mtime back, as `rsync --inplace -a`
/// or `cp -p` over it would.
struct Racing {
    inner: LocalSource,
    root: PathBuf,
    changes: usize,
    same_size: bool,
    opened: AtomicUsize,
}

struct RacingFile {
    f: Box<dyn SourceFile>,
    path: Option<PathBuf>,
    same_size: bool,
}

impl Read for RacingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.f.read(buf)?;
        if let Some(p) = self.path.take() {
            if self.same_size {
                let before = fs::metadata(&p)?;
                let upper = fs::read(&p)?.to_ascii_uppercase();
                OpenOptions::new().write(true).open(&p)?.write_all(&upper)?;
                let t = filetime::FileTime::from_last_modification_time(&before);
                filetime::set_file_mtime(&p, t)?;
            } else {
                let mut w = OpenOptions::new().append(true).open(&p)?;
                w.write_all(b" and more")?;
                let t = filetime::FileTime::from_unix_time(2_000_000_000 + n as i64, 7);
                filetime::set_file_mtime(&p, t)?;
            }
        }
        Ok(n)
    }
}

impl SourceFile for RacingFile {
    fn meta_now(&self) -> Option<EntryMeta> {
        self.f.meta_now()
    }
}

impl Source for Racing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn root(&self) -> Result<EntryMeta> {
        self.inner.root()
    }
    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>> {
        self.inner.list(dir)
    }
    fn open(&self, path: &[u8]) -> Result<Box<dyn SourceFile>> {
        let n = self.opened.fetch_add(1, Ordering::SeqCst);
        let f = self.inner.open(path)?;
        let path =
            (n < self.changes).then(|| self.root.join(String::from_utf8_lossy(path).as_ref()));
        Ok(Box::new(RacingFile {
            f,
            path,
            same_size: self.same_size,
        }))
    }
    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        self.inner.read_link(path)
    }
}

fn run(changes: usize) -> (Snapshot, Vec<u8>, Vec<u8>) {
    run_with(changes, false)
}

fn run_with(changes: usize, same_size: bool) -> (Snapshot, Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), b"start").unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = Racing {
        inner: LocalSource::new(&root, &[]).unwrap(),
        root: root.clone(),
        changes,
        same_size,
        opened: AtomicUsize::new(0),
    };
    let snap = backup(&repo, &src, &BackupOptions::new("d")).unwrap();
    let idx = repo.load_index().unwrap();
    let tree = repo.read_tree(&idx, &snap.tree).unwrap();
    let node = tree.find(b"f").unwrap().clone();
    let stored = crate::ops::restore::read_file_content(&repo, &idx, &node).unwrap();
    (snap, stored, fs::read(root.join("f")).unwrap())
}

#[test]
fn file_changed_once_while_read_is_reread() {
    let (snap, stored, now) = run(1);
    assert!(snap.warnings.is_empty(), "{:?}", snap.warnings);
    assert_eq!(stored, now, "the re-read sees the finished write");
    assert_eq!(stored, b"start and more");
}

#[test]
fn file_changing_on_every_read_is_recorded_with_a_warning() {
    let (snap, stored, now) = run(usize::MAX);
    assert_eq!(snap.warnings.len(), 1, "{:?}", snap.warnings);
    assert_eq!(snap.warnings[0].path, "f");
    assert!(
        snap.warnings[0]
            .message
            .contains("changed while it was read")
    );
    // What was stored is the second read, to its end.
    assert_eq!(stored, now);
    assert_eq!(stored, b"start and more and more");
}

#[test]
fn same_size_rewrite_with_mtime_put_back_while_read_is_reread() {
    // Size and mtime are as before the read; only the ctime tells.
    let (snap, stored, now) = run_with(1, true);
    assert!(snap.warnings.is_empty(), "{:?}", snap.warnings);
    assert_eq!(now, b"START");
    assert_eq!(stored, now, "the torn first read must not be kept");
}

#[test]
fn same_size_rewrite_on_every_read_is_recorded_with_a_warning() {
    let (snap, _, _) = run_with(usize::MAX, true);
    assert_eq!(snap.warnings.len(), 1, "{:?}", snap.warnings);
    assert!(
        snap.warnings[0]
            .message
            .contains("changed while it was read")
    );
}

/// A local source whose extended attributes cannot be read. As root
/// every attribute is readable, so the fault is made up here.
struct NoXattrs(LocalSource);

impl Source for NoXattrs {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn root(&self) -> Result<EntryMeta> {
        self.0.root()
    }
    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>> {
        self.0.list(dir)
    }
    fn open(&self, path: &[u8]) -> Result<Box<dyn SourceFile>> {
        self.0.open(path)
    }
    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        self.0.read_link(path)
    }
    fn xattrs(&self, path: &[u8]) -> crate::connector::source::XattrRead {
        let mut r = self.0.xattrs(path);
        if path == b"f" {
            r.errors
                .push("extended attribute user.x not backed up: permission denied".into());
        }
        r
    }
}

#[test]
fn an_unreadable_xattr_is_a_warning_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), b"data").unwrap();
    fs::write(root.join("g"), b"more").unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = NoXattrs(LocalSource::new(&root, &[]).unwrap());
    let snap = backup(&repo, &src, &BackupOptions::new("d")).unwrap();
    assert_eq!(snap.warnings.len(), 1, "{:?}", snap.warnings);
    assert_eq!(snap.warnings[0].path, "f");
    assert!(snap.warnings[0].message.contains("user.x"));
    // The file itself is backed up.
    assert_eq!(snap.stats.files, 2);
}

/// A source whose files panic when read. No real file system makes a
/// reader panic, so this is a stand-in for a bug in a worker (a chunker
/// fed sizes it cannot take, say): the backup must end with an error,
/// commit nothing and release the lock, not hang.
struct Panicking(LocalSource);

struct PanicFile;

impl Read for PanicFile {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("reader bug")
    }
}

impl SourceFile for PanicFile {
    fn meta_now(&self) -> Option<EntryMeta> {
        None
    }
}

impl Source for Panicking {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn root(&self) -> Result<EntryMeta> {
        self.0.root()
    }
    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>> {
        self.0.list(dir)
    }
    fn open(&self, _: &[u8]) -> Result<Box<dyn SourceFile>> {
        Ok(Box::new(PanicFile))
    }
    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        self.0.read_link(path)
    }
}

#[test]
fn a_worker_panic_is_an_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d");
    fs::create_dir(&root).unwrap();
    for i in 0..5 {
        fs::write(root.join(format!("f{i}")), vec![i as u8; 10_000]).unwrap();
    }
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = Panicking(LocalSource::new(&root, &[]).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let repo2 = repo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(backup(&repo2, &src, &BackupOptions::new("d").threads(2)));
    });
    let res = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the backup hung after a worker panicked");
    let err = res.unwrap_err().to_string();
    assert!(err.contains("reader bug"), "{err}");
    assert!(repo.lock_holder().unwrap().is_none(), "the lock was left");
    assert!(repo.snapshots(None).unwrap().is_empty());
}

/// A dataset whose entries are made as they are read (a database dump,
/// an API export): no size known in advance, an opaque change token
/// per entry (optional), and begin/end hooks that log their calls. No
/// such connector ships yet, so this test double stands in for the
/// sources the contract is for (MySQL, S3, Label Studio).
#[derive(Default)]
struct Generated {
    files: Mutex<std::collections::BTreeMap<Vec<u8>, GenEntry>>,
    /// Every call to begin, list, open and end, in order.
    calls: Mutex<Vec<String>>,
    fault: GenFault,
}

/// Content, change token, mtime.
type GenEntry = (Vec<u8>, Option<Vec<u8>>, i64);

#[derive(Default, Clone, Copy, PartialEq)]
enum GenFault {
    #[default]
    None,
    BeginFails,
    EndFails,
    ReadPanics,
    ListPanics,
}

struct GenFile(std::io::Cursor<Vec<u8>>, bool);

impl Read for GenFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        assert!(!self.1, "generator bug");
        self.0.read(buf)
    }
}

impl SourceFile for GenFile {
    fn meta_now(&self) -> Option<EntryMeta> {
        None
    }
}

fn gen_meta(kind: EntryKind, mtime: i64, token: Option<Vec<u8>>) -> EntryMeta {
    EntryMeta {
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: None,
        mtime,
        mtime_nsec: 0,
        ctime: 0,
        ctime_nsec: 0,
        inode: 0,
        dev: 0,
        nlink: 1,
        change_token: token,
    }
}

impl Generated {
    fn with(files: &[(&str, &[u8], Option<&str>, i64)]) -> Generated {
        let g = Generated::default();
        g.set(files);
        g
    }

    fn set(&self, files: &[(&str, &[u8], Option<&str>, i64)]) {
        *self.files.lock().unwrap() = files
            .iter()
            .map(|(n, c, t, m)| (n.as_bytes().to_vec(), (c.to_vec(), t.map(|t| t.into()), *m)))
            .collect();
    }

    fn log(&self, call: impl Into<String>) {
        self.calls.lock().unwrap().push(call.into());
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn count(calls: &[String], what: &str) -> usize {
        calls.iter().filter(|c| c.starts_with(what)).count()
    }
}

impl Source for Generated {
    fn describe(&self) -> String {
        "generated test dataset".into()
    }
    fn begin(&self) -> Result<()> {
        self.log("begin");
        match self.fault {
            GenFault::BeginFails => Err(Error::Invalid("opening the view: refused".into())),
            _ => Ok(()),
        }
    }
    fn end(&self) -> Result<()> {
        self.log("end");
        match self.fault {
            GenFault::EndFails => Err(Error::Invalid("closing the view: lost".into())),
            _ => Ok(()),
        }
    }
    fn root(&self) -> Result<EntryMeta> {
        Ok(EntryMeta {
            mode: 0o755,
            ..gen_meta(EntryKind::Dir, 0, None)
        })
    }
    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>> {
        self.log(format!("list {}", display_path(dir)));
        assert!(self.fault != GenFault::ListPanics, "listing bug");
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|(name, (_, token, mtime))| SourceEntry {
                name: name.clone(),
                meta: Ok(gen_meta(EntryKind::File, *mtime, token.clone())),
            })
            .collect())
    }
    fn open(&self, path: &[u8]) -> Result<Box<dyn SourceFile>> {
        self.log(format!("open {}", display_path(path)));
        let content = self.files.lock().unwrap()[path].0.clone();
        Ok(Box::new(GenFile(
            std::io::Cursor::new(content),
            self.fault == GenFault::ReadPanics,
        )))
    }
    fn read_link(&self, _: &[u8]) -> Result<Vec<u8>> {
        Err(Error::Invalid("no symlinks here".into()))
    }
}

fn stored_node(repo: &Repository, snap: &Snapshot, name: &[u8]) -> (Node, Vec<u8>) {
    let idx = repo.load_index().unwrap();
    let tree = repo.read_tree(&idx, &snap.tree).unwrap();
    let node = tree.find(name).unwrap().clone();
    let content = crate::ops::restore::read_file_content(repo, &idx, &node).unwrap();
    (node, content)
}

#[test]
fn an_entry_of_unknown_size_stores_the_size_read_and_restores_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    // Several chunks, so the size is a sum of chunk lengths.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let dump: Vec<u8> = (0..6_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let src = Generated::with(&[
        ("dump.sql", &dump, None, 100),
        ("empty.sql", b"", None, 100),
    ]);
    let snap = backup(&repo, &src, &BackupOptions::new("db").threads(2)).unwrap();
    assert!(snap.warnings.is_empty(), "{:?}", snap.warnings);
    let (node, stored) = stored_node(&repo, &snap, b"dump.sql");
    assert_eq!(node.size, dump.len() as u64);
    assert!(
        node.content.len() > 1,
        "one chunk only: {}",
        node.content.len()
    );
    assert_eq!(stored, dump);
    assert_eq!(stored_node(&repo, &snap, b"empty.sql").0.size, 0);
    assert_eq!(snap.stats.bytes, dump.len() as u64);
    assert_eq!(snap.stats.bytes_read, dump.len() as u64);
    assert_eq!(snap.stats.files_read, 2);

    let out = tmp.path().join("out");
    let r = crate::ops::restore::restore(&repo, "db", &out, &Default::default()).unwrap();
    assert!(r.is_complete(), "{:?}", r.outcome.errors);
    assert_eq!(fs::read(out.join("dump.sql")).unwrap(), dump);
    assert_eq!(fs::read(out.join("empty.sql")).unwrap(), b"");
}

#[test]
fn change_tokens_decide_whether_an_entry_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = Generated::with(&[
        ("same.csv", b"rows of a", Some("etag-1"), 100),
        ("new.csv", b"rows of b", Some("etag-1"), 100),
        ("untagged.csv", b"rows of c", None, 100),
    ]);
    let first = backup(&repo, &src, &BackupOptions::new("api")).unwrap();
    assert_eq!(Generated::count(&src.calls(), "open"), 3);
    assert_eq!(
        stored_node(&repo, &first, b"same.csv")
            .0
            .change_token
            .as_deref(),
        Some(&b"etag-1"[..])
    );

    // same.csv: an equal token, a later mtime; new.csv: a new token (the
    // same mtime); untagged.csv: no token and no size, nothing to trust.
    src.set(&[
        ("same.csv", b"rows of a", Some("etag-1"), 200),
        ("new.csv", b"rows of B!", Some("etag-2"), 100),
        ("untagged.csv", b"rows of c", None, 100),
    ]);
    let second = backup(&repo, &src, &BackupOptions::new("api")).unwrap();
    let calls = src.calls();
    assert!(!calls.contains(&"open same.csv".to_string()), "{calls:?}");
    assert!(calls.contains(&"open new.csv".to_string()), "{calls:?}");
    assert!(
        calls.contains(&"open untagged.csv".to_string()),
        "{calls:?}"
    );
    assert_eq!(second.stats.files_read, 2);
    let (same, content) = stored_node(&repo, &second, b"same.csv");
    assert_eq!(content, b"rows of a");
    assert_eq!(same.size, 9, "the size comes from the parent's node");
    assert_eq!(same.mtime, 200);
    let (new, content) = stored_node(&repo, &second, b"new.csv");
    assert_eq!(content, b"rows of B!");
    assert_eq!(new.size, 10);
    assert_eq!(new.change_token.as_deref(), Some(&b"etag-2"[..]));
    // same.csv's mtime changed, new.csv's content.
    assert_eq!((second.stats.modified, second.stats.added), (2, 0));

    // A full backup reads everything whatever the tokens say.
    let full = backup(&repo, &src, &BackupOptions::new("api").full(true)).unwrap();
    assert_eq!(full.stats.files_read, 3);
}

#[test]
fn a_lost_blob_is_read_again_even_with_an_equal_token() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = Generated::with(&[("t.csv", b"table t", Some("v1"), 100)]);
    let first = backup(&repo, &src, &BackupOptions::new("db")).unwrap();
    // Lose the pack of t.csv's data (its tree stays readable).
    let (node, _) = stored_node(&repo, &first, b"t.csv");
    let idx = repo.load_index().unwrap();
    let pack = idx.get(&node.content[0]).unwrap().pack;
    fs::remove_file(
        tmp.path()
            .join("repo")
            .join(crate::repo::layout::pack_name(&pack)),
    )
    .unwrap();
    src.calls();
    let snap = backup(&repo, &src, &BackupOptions::new("db")).unwrap();
    assert_eq!(Generated::count(&src.calls(), "open"), 1);
    assert_eq!(stored_node(&repo, &snap, b"t.csv").1, b"table t");
}

#[test]
fn begin_and_end_frame_the_walk_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = Generated::with(&[("a", b"1", None, 1), ("b", b"2", None, 1)]);
    backup(&repo, &src, &BackupOptions::new("db").threads(2)).unwrap();
    let calls = src.calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("begin"),
        "{calls:?}"
    );
    assert_eq!(calls.last().map(String::as_str), Some("end"), "{calls:?}");
    assert_eq!(Generated::count(&calls, "begin"), 1, "{calls:?}");
    assert_eq!(Generated::count(&calls, "end"), 1, "{calls:?}");
    assert_eq!(Generated::count(&calls, "open"), 2, "{calls:?}");
}

#[test]
fn end_is_called_once_when_the_backup_fails() {
    for fault in [GenFault::ReadPanics, GenFault::ListPanics] {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
        let src = Generated {
            fault,
            ..Generated::with(&[("a", b"1", None, 1)])
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            backup(&repo, &src, &BackupOptions::new("db"))
        }));
        // A reader's panic is caught in its worker (an error), the walk's
        // unwinds through backup (a panic): either way the view is closed.
        assert!(!matches!(r, Ok(Ok(_))), "{:?}", fault as u8);
        let calls = src.calls();
        assert_eq!(Generated::count(&calls, "begin"), 1, "{calls:?}");
        assert_eq!(Generated::count(&calls, "end"), 1, "{calls:?}");
        assert!(repo.snapshots(None).unwrap().is_empty());
        assert!(repo.lock_holder().unwrap().is_none(), "the lock was left");
    }
}

#[test]
fn a_failing_begin_reads_nothing_and_a_failing_end_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_init_local(&tmp.path().join("repo")).unwrap();
    let src = Generated {
        fault: GenFault::BeginFails,
        ..Generated::with(&[("a", b"1", None, 1)])
    };
    let err = backup(&repo, &src, &BackupOptions::new("db")).unwrap_err();
    assert!(err.to_string().contains("opening the view"), "{err}");
    assert_eq!(src.calls(), ["begin"], "neither walked nor ended");

    let src = Generated {
        fault: GenFault::EndFails,
        ..Generated::with(&[("a", b"1", None, 1)])
    };
    let err = backup(&repo, &src, &BackupOptions::new("db")).unwrap_err();
    assert!(err.to_string().contains("closing the view"), "{err}");
    assert_eq!(Generated::count(&src.calls(), "end"), 1);
    assert!(repo.snapshots(None).unwrap().is_empty(), "committed");
    assert!(repo.lock_holder().unwrap().is_none(), "the lock was left");
}

#[test]
fn a_backup_cancelled_while_reading_commits_nothing_and_the_next_one_reuses_its_packs() {
    use crate::progress::testing::{CancelAfter, dataset, small_pack_repo, temp_files};
    const MIB: usize = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = dataset(tmp.path(), 24, MIB);
    let repo_dir = tmp.path().join("repo");
    let repo = small_pack_repo(&repo_dir);
    let src = LocalSource::new(&root, &[]).unwrap();
    let p = CancelAfter::new(6 * MIB as u64);
    let opts = BackupOptions::new("ds")
        .threads(2)
        .progress(p.clone())
        .cancel(p.cancel.clone());
    let err = backup(&repo, &src, &opts).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    // Stopped soon after the cancel: each of the two readers finishes
    // at most the chunk it was storing.
    assert!(
        p.seen() < 8 * MIB as u64,
        "read {} bytes after the cancel",
        p.seen()
    );
    assert_eq!(*p.phases.lock().unwrap(), [Phase::Scan, Phase::Read]);
    assert!(
        repo.snapshots(None).unwrap().is_empty(),
        "a snapshot was committed"
    );
    assert!(repo.lock_holder().unwrap().is_none(), "the lock was left");
    assert_eq!(temp_files(&repo_dir), Vec::<PathBuf>::new());
    let packs_left = repo.backend().list("packs").unwrap().len();
    assert!(
        packs_left > 0,
        "the test should cancel after packs were uploaded"
    );
    let r = crate::check(&repo, true).unwrap();
    assert!(r.ok(), "{:?}", r.errors);

    // The packs of the cancelled run are indexed and reused, not stored again.
    let snap = backup(&repo, &src, &BackupOptions::new("ds").threads(2)).unwrap();
    assert_eq!(snap.stats.files, 24);
    assert!(
        snap.stats.stored_bytes < 20 * MIB as u64,
        "stored {} bytes again",
        snap.stats.stored_bytes
    );
    let r = crate::check(&repo, true).unwrap();
    assert!(r.ok(), "{:?}", r.errors);
}

#[test]
fn a_backup_cancelled_before_it_reads_stops_after_the_scan() {
    use crate::progress::testing::{CancelAfter, dataset, small_pack_repo};
    let tmp = tempfile::tempdir().unwrap();
    let root = dataset(tmp.path(), 4, 1000);
    let repo = small_pack_repo(&tmp.path().join("repo"));
    let src = LocalSource::new(&root, &[]).unwrap();
    let p = CancelAfter::new(u64::MAX);
    p.cancel.cancel();
    let opts = BackupOptions::new("ds")
        .progress(p.clone())
        .cancel(p.cancel.clone());
    let err = backup(&repo, &src, &opts).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert_eq!(p.seen(), 0, "nothing is read once cancelled");
    assert!(repo.lock_holder().unwrap().is_none(), "the lock was left");
    assert!(repo.backend().list("packs").unwrap().is_empty());
}

/// Issue 11: a dataset folder that holds the repository (the README's old
/// example, `--allow-root ~` with the repository in it) is backed up
/// without the repository, the backup says so, and the next backup does not
/// grow by the previous one.
#[test]
fn issue11_the_repository_inside_the_dataset_is_left_out_and_said_so() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("home");
    fs::create_dir_all(root.join("data")).unwrap();
    fs::write(root.join("data/a.txt"), b"alpha").unwrap();
    let repo = Repository::open_or_init_local(&root.join("backups")).unwrap();
    let src = LocalSource::new(&root, &[]).unwrap();
    let first = backup(&repo, &src, &BackupOptions::new("home")).unwrap();
    let notes = repo.take_notes();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("left out: the repository itself") && n.ends_with("at backups")),
        "{notes:?}"
    );
    assert_eq!(
        (first.stats.files, first.stats.dirs),
        (1, 1),
        "{:?}",
        first.stats
    );
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let idx = repo.index().unwrap();
    let top = repo.read_tree(&idx, &first.tree).unwrap();
    let names: Vec<&[u8]> = top.nodes.iter().map(|n| n.name.as_slice()).collect();
    assert_eq!(names, vec![&b"data"[..]]);
    // The second backup has nothing new to store: the packs the first one
    // wrote into the repository folder are not read back in.
    let src = LocalSource::new(&root, &[]).unwrap();
    let second = backup(&repo, &src, &BackupOptions::new("home")).unwrap();
    assert_eq!(second.tree, first.tree);
    assert_eq!((second.stats.added, second.stats.files_read), (0, 0));
    assert!(!repo.take_notes().is_empty(), "said again on every backup");
}
