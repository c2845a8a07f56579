//! Storage under a repository: named immutable objects.
//!
//! Names are `/`-separated paths relative to the repository root, such as
//! `packs/3f/3f2a….pack`. Every write is atomic (temporary name, then
//! rename) and durable before it returns.

use std::collections::HashMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Result, backend_err};

/// Prefix of temporary files; listings skip them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Whether `leaf` is a name bk's backends give a file while writing it:
/// `.tmp-<pid>-<n>` (local) or `.<name>.bkftp-part` (bk-ftp uploads). Only
/// such names, and only in [`is_repository_dir`]s, are ever removed as
/// leftovers; a user's `.tmp-notes` is not bk's.
pub fn is_temp_name(leaf: &str) -> bool {
    if let Some(rest) = leaf.strip_prefix(TEMP_PREFIX) {
        let mut parts = rest.splitn(2, '-');
        let digits = |s: Option<&str>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        return digits(parts.next()) && digits(parts.next());
    }
    leaf.len() > ".bkftp-part".len() + 1 && leaf.starts_with('.') && leaf.ends_with(".bkftp-part")
}

/// Whether `dir` (repository-relative, no trailing `/`, `""` for the root)
/// is one of the directories bk writes files into: the root, `packs/XX`,
/// `index`, `snapshots/<dataset>`, `locks`, `damaged`.
pub fn is_repository_dir(dir: &str) -> bool {
    let mut parts = dir.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), None, None) => true,
        (Some("index" | "locks" | "damaged"), None, None) => true,
        (Some("packs"), Some(xx), None) => {
            xx.len() == 2 && xx.bytes().all(|b| b.is_ascii_hexdigit())
        }
        (Some("snapshots"), Some(ds), None) => !ds.is_empty(),
        _ => false,
    }
}

/// One entry of a backend listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Repository-relative name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// The storage a repository lives on. Local directories first; FTP and S3
/// plug in here.
pub trait Backend: Send + Sync + Debug {
    /// Where this is, for messages (never contains a password).
    fn location(&self) -> String;
    /// Whether the repository root exists and looks like a directory.
    fn root_exists(&self) -> Result<bool>;
    /// Create the root and the given subdirectories.
    fn create_dirs(&self, dirs: &[&str]) -> Result<()>;
    /// Read a whole object. A missing object is an `io::ErrorKind::NotFound`
    /// inside [`crate::Error::Backend`].
    fn read(&self, name: &str) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`.
    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Write an object atomically and durably, replacing nothing: if `name`
    /// exists already the write fails with `AlreadyExists` when `exclusive`,
    /// and is a no-op success otherwise (content-addressed names).
    fn write(&self, name: &str, data: &[u8], exclusive: bool) -> Result<()>;
    /// All objects under `dir` (recursively), temporary files excluded.
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>>;
    /// Replace an object atomically: readers see the old or the new bytes,
    /// never a mix. Only for the few files bk rewrites on purpose (a
    /// snapshot rewritten by `bk repair snapshots`, a config upgrade).
    fn replace(&self, name: &str, data: &[u8]) -> Result<()>;
    /// Whether the root holds nothing at all (no file, no directory). A
    /// missing root is empty.
    fn root_is_empty(&self) -> Result<bool>;
    /// Remove an object.
    fn remove(&self, name: &str) -> Result<()>;
    /// Remove temporary files left by interrupted writers: only bk's own
    /// temporary names ([`is_temp_name`]) in bk's own directories
    /// ([`is_repository_dir`]). Only call while holding the repository lock.
    fn remove_temp_files(&self) -> Result<usize>;
    /// How many writes are worth running at once (packs upload in parallel
    /// over several connections on network backends).
    fn write_parallelism(&self) -> usize {
        2
    }
    /// Whether reading a whole pack once beats reading each blob's byte
    /// range (true where every read is a round trip and a new connection).
    fn prefers_whole_reads(&self) -> bool {
        false
    }
    /// The local directory of the repository, when it is on this machine's
    /// file system (a backup then leaves it out of a dataset it sits in).
    fn local_root(&self) -> Option<&Path> {
        None
    }
    /// The transient failures (a cut connection, a short transfer, a
    /// timeout) retried since the last call, one line each naming what was
    /// being done, the attempt and the error; never a secret. Backends
    /// that do not retry have none.
    fn take_retries(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Is this error "the object does not exist"?
pub fn is_not_found(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Backend { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Is this error "the object exists already"?
pub fn is_already_exists(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Backend { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
}

/// A repository in a local (or mounted) directory.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    counter: AtomicU64,
    handles: Mutex<HashMap<String, Arc<File>>>,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            counter: AtomicU64::new(0),
            handles: Mutex::new(HashMap::new()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn handle(&self, name: &str) -> io::Result<Arc<File>> {
        let mut h = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = h.get(name) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.path(name))?);
        if h.len() > 64 {
            h.clear();
        }
        h.insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn write_inner(&self, name: &str, data: &[u8], mode: Mode) -> io::Result<()> {
        let dest = self.path(name);
        let dir = dest.parent().unwrap_or(&self.root);
        let tmp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let res = (|| {
            let mut f = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir_all(dir)?;
                    OpenOptions::new().write(true).create_new(true).open(&tmp)?
                }
                r => r?,
            };
            f.write_all(data)?;
            f.sync_data()?;
            drop(f);
            if mode == Mode::Replace {
                fs::rename(&tmp, &dest)?;
                return File::open(dir)?.sync_all();
            }
            // link() never replaces an existing name: that makes the
            // snapshot commit and the lock safe against a racing writer.
            match fs::hard_link(&tmp, &dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && mode == Mode::Same => {
                    // A content-addressed name that exists already holds
                    // these bytes, unless it was damaged (truncated, a bit
                    // flipped): then the new copy takes its place.
                    if !same_content(&dest, data)? {
                        fs::rename(&tmp, &dest)?;
                        return File::open(dir)?.sync_all();
                    }
                }
                Err(e) => return Err(e),
            }
            fs::remove_file(&tmp)?;
            File::open(dir)?.sync_all()
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }
}

/// How [`LocalBackend::write_inner`] treats an existing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fail with `AlreadyExists`.
    Exclusive,
    /// The name is content-addressed: keep the file if it holds the same
    /// bytes, replace it otherwise.
    Same,
    /// Replace it.
    Replace,
}

/// Whether the file at `p` holds exactly `data` (size first, then bytes).
fn same_content(p: &Path, data: &[u8]) -> io::Result<bool> {
    let m = fs::symlink_metadata(p)?;
    if !m.is_file() || m.len() != data.len() as u64 {
        return Ok(false);
    }
    Ok(fs::read(p)? == data)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn root_exists(&self) -> Result<bool> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(crate::Error::NotARepository(
                self.location(),
                "it is not a directory".into(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(backend_err("inspecting", &self.location(), e)),
        }
    }

    fn create_dirs(&self, dirs: &[&str]) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| crate::Error::Io {
            action: "creating repository directory",
            path: self.root.clone(),
            source: e,
        })?;
        for d in dirs {
            fs::create_dir_all(self.path(d)).map_err(|e| backend_err("creating", d, e))?;
        }
        Ok(())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        fs::read(self.path(name)).map_err(|e| backend_err("reading", name, e))
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = self
            .handle(name)
            .map_err(|e| backend_err("opening", name, e))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| backend_err("reading", name, e))?;
        Ok(buf)
    }

    fn write(&self, name: &str, data: &[u8], exclusive: bool) -> Result<()> {
        let mode = if exclusive {
            Mode::Exclusive
        } else {
            Mode::Same
        };
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.write_inner(name, data, mode)
            .map_err(|e| backend_err("writing", name, e))
    }

    fn replace(&self, name: &str, data: &[u8]) -> Result<()> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.write_inner(name, data, Mode::Replace)
            .map_err(|e| backend_err("replacing", name, e))
    }

    fn root_is_empty(&self) -> Result<bool> {
        match fs::read_dir(&self.root) {
            Ok(mut rd) => Ok(rd.next().is_none()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(backend_err("listing", &self.location(), e)),
        }
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut stack = vec![dir.trim_end_matches('/').to_string()];
        while let Some(d) = stack.pop() {
            let rd = match fs::read_dir(self.path(&d)) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(backend_err("listing", &d, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| backend_err("listing", &d, e))?;
                let fname = ent.file_name();
                let Some(fname) = fname.to_str() else {
                    continue;
                };
                if fname.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let name = if d.is_empty() {
                    fname.to_string()
                } else {
                    format!("{d}/{fname}")
                };
                let ft = ent
                    .file_type()
                    .map_err(|e| backend_err("listing", &name, e))?;
                if ft.is_dir() {
                    stack.push(name);
                } else if ft.is_file() {
                    let size = ent
                        .metadata()
                        .map_err(|e| backend_err("listing", &name, e))?
                        .len();
                    out.push(ObjectInfo { name, size });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove(&self, name: &str) -> Result<()> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        fs::remove_file(self.path(name)).map_err(|e| backend_err("removing", name, e))
    }

    fn remove_temp_files(&self) -> Result<usize> {
        let mut n = 0;
        let mut stack = vec![String::new()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(self.path(&d)) else {
                continue;
            };
            for ent in rd.flatten() {
                let Some(leaf) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let rel = if d.is_empty() {
                    leaf.clone()
                } else {
                    format!("{d}/{leaf}")
                };
                match ent.file_type() {
                    Ok(ft)
                        if ft.is_dir()
                            && (is_repository_dir(&rel)
                                || rel == "packs"
                                || rel == "snapshots") =>
                    {
                        stack.push(rel);
                    }
                    Ok(ft)
                        if ft.is_file()
                            && is_repository_dir(&d)
                            && is_temp_name(&leaf)
                            && fs::remove_file(ent.path()).is_ok() =>
                    {
                        n += 1
                    }
                    _ => {}
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_is_atomic_and_exclusive_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        assert!(!b.root_exists().unwrap());
        b.create_dirs(&["packs"]).unwrap();
        b.write("packs/aa/x", b"hello", false).unwrap();
        b.write("packs/aa/x", b"hello", false).unwrap();
        let err = b.write("packs/aa/x", b"other", true).unwrap_err();
        assert!(is_already_exists(&err), "{err}");
        assert_eq!(b.read("packs/aa/x").unwrap(), b"hello");
        assert_eq!(b.read_range("packs/aa/x", 1, 3).unwrap(), b"ell");
        let l = b.list("packs").unwrap();
        assert_eq!(
            l,
            vec![ObjectInfo {
                name: "packs/aa/x".into(),
                size: 5
            }]
        );
        fs::write(dir.path().join("repo/packs/aa/.tmp-1-1"), b"partial").unwrap();
        assert_eq!(b.list("packs").unwrap().len(), 1);
        assert_eq!(b.remove_temp_files().unwrap(), 1);
        assert!(is_not_found(&b.read("packs/zz").unwrap_err()));
    }
}
