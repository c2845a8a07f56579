//! A repository in a local (or mounted) directory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::connector::backend::{Backend, ObjectInfo, TEMP_PREFIX, is_temp_name};
use crate::error::{Result, backend_err};
use crate::repo::layout::{PACKS_DIR, SNAPSHOTS_DIR, is_repository_dir};

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
                                || rel == PACKS_DIR
                                || rel == SNAPSHOTS_DIR) =>
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
    use crate::connector::backend::{is_already_exists, is_not_found};

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
