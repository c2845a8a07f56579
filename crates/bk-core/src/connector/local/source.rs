//! A local directory tree as a dataset, with ignore rules (`--exclude`,
//! `.bkignore`) and extended attributes.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::connector::source::{EntryKind, EntryMeta, Source, SourceEntry, SourceFile, XattrRead};
use crate::error::{Error, IoContext, Result};
use crate::tree::Xattr;

impl SourceFile for File {
    fn meta_now(&self) -> Option<EntryMeta> {
        self.metadata().ok().map(|m| EntryMeta::from_metadata(&m))
    }
}

/// Directories to leave out, by (device, inode), and the paths where they
/// were met.
#[derive(Debug, Default)]
struct ExcludedDirs {
    ids: Vec<(u64, u64)>,
    met: Vec<Vec<u8>>,
}

/// A local directory tree.
#[derive(Debug)]
pub struct LocalSource {
    root: PathBuf,
    excludes: Gitignore,
    use_bkignore: bool,
    // One matcher per directory that has a `.bkignore`, keyed by its path.
    bkignores: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Option<Gitignore>>>,
    excluded_dirs: std::sync::Mutex<ExcludedDirs>,
}

impl LocalSource {
    /// A source rooted at `root`, excluding `excludes` (gitignore globs,
    /// relative to the root).
    pub fn new(root: impl Into<PathBuf>, excludes: &[String]) -> Result<LocalSource> {
        let root = root.into();
        let mut b = GitignoreBuilder::new(&root);
        for pat in excludes {
            b.add_line(None, pat)
                .map_err(|e| Error::Invalid(format!("bad --exclude pattern {pat:?}: {e}")))?;
        }
        let excludes = b
            .build()
            .map_err(|e| Error::Invalid(format!("bad --exclude patterns: {e}")))?;
        Ok(LocalSource {
            root,
            excludes,
            use_bkignore: true,
            bkignores: Default::default(),
            excluded_dirs: Default::default(),
        })
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    fn bkignore(&self, dir: &[u8]) -> Option<Gitignore> {
        let mut cache = self.bkignores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = cache.get(dir) {
            return g.clone();
        }
        let dpath = self.path(dir);
        let f = dpath.join(".bkignore");
        let g = if f.is_file() {
            let mut b = GitignoreBuilder::new(&dpath);
            b.add(&f);
            b.build().ok()
        } else {
            None
        };
        cache.insert(dir.to_vec(), g.clone());
        g
    }

    fn ignored(&self, dir: &[u8], name: &[u8], is_dir: bool) -> bool {
        let full = self.path(dir).join(OsStr::from_bytes(name));
        if self
            .excludes
            .matched_path_or_any_parents(&full, is_dir)
            .is_ignore()
        {
            return true;
        }
        if !self.use_bkignore {
            return false;
        }
        // Deeper .bkignore files take precedence, as in git.
        let mut d = dir.to_vec();
        loop {
            if let Some(g) = self.bkignore(&d) {
                let m = g.matched(&full, is_dir);
                if m.is_ignore() {
                    return true;
                }
                if m.is_whitelist() {
                    return false;
                }
            }
            if d.is_empty() {
                return false;
            }
            match d.iter().rposition(|&b| b == b'/') {
                Some(i) => d.truncate(i),
                None => d.clear(),
            }
        }
    }
}

impl LocalSource {
    fn is_excluded_dir(&self, dir: &[u8], name: &[u8], m: &EntryMeta) -> bool {
        let mut ex = self.excluded_dirs.lock().unwrap_or_else(|p| p.into_inner());
        if !ex.ids.contains(&(m.dev, m.inode)) {
            return false;
        }
        ex.met.push(crate::tree::join(dir, name));
        true
    }
}

impl Source for LocalSource {
    fn describe(&self) -> String {
        fs::canonicalize(&self.root)
            .unwrap_or_else(|_| self.root.clone())
            .display()
            .to_string()
    }

    fn root(&self) -> Result<EntryMeta> {
        let m = fs::metadata(&self.root).map_err(|e| Error::BadSource {
            path: self.root.clone(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".into()
            } else {
                e.to_string()
            },
        })?;
        let meta = EntryMeta::from_metadata(&m);
        match meta.kind {
            EntryKind::Dir => Ok(meta),
            EntryKind::File => Err(Error::BadSource {
                path: self.root.clone(),
                reason: "it is a file, not a directory (back up the directory that holds it)"
                    .into(),
            }),
            EntryKind::Fifo => Err(Error::BadSource {
                path: self.root.clone(),
                reason: "it is a named pipe, not a directory".into(),
            }),
            EntryKind::Unsupported(what) => Err(Error::BadSource {
                path: self.root.clone(),
                reason: format!("it is a {what}, not a directory"),
            }),
            EntryKind::Symlink => unreachable!("metadata follows symlinks"),
        }
    }

    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>> {
        let dpath = self.path(dir);
        let rd = fs::read_dir(&dpath).ctx("listing directory", &dpath)?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.ctx("listing directory", &dpath)?;
            let name = ent.file_name().as_bytes().to_vec();
            let meta = ent
                .metadata()
                .map(|m| EntryMeta::from_metadata(&m))
                .map_err(|e| e.to_string());
            let is_dir = matches!(&meta, Ok(m) if m.kind == EntryKind::Dir);
            if self.ignored(dir, &name, is_dir) {
                continue;
            }
            if let Ok(m) = &meta
                && is_dir
                && self.is_excluded_dir(dir, &name, m)
            {
                continue;
            }
            out.push(SourceEntry { name, meta });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn open(&self, path: &[u8]) -> Result<Box<dyn SourceFile>> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.path(path);
        // O_NONBLOCK: a file swapped for a FIFO after the walk must not hang
        // the backup; O_NOFOLLOW: nor may a swapped-in symlink be followed.
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&p)
            .ctx("opening", &p)?;
        let m = f.metadata().ctx("inspecting", &p)?;
        if !m.is_file() {
            return Err(Error::Io {
                action: "opening",
                path: p,
                source: std::io::Error::other("it is no longer a regular file"),
            });
        }
        Ok(Box::new(f))
    }

    fn exclude_dir(&self, dev: u64, ino: u64) {
        self.excluded_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .push((dev, ino));
    }

    fn excluded(&self) -> Vec<Vec<u8>> {
        self.excluded_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .met
            .clone()
    }

    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>> {
        let p = self.path(path);
        Ok(fs::read_link(&p)
            .ctx("reading symlink", &p)?
            .as_os_str()
            .as_bytes()
            .to_vec())
    }

    fn xattrs(&self, path: &[u8]) -> XattrRead {
        read_xattrs(&self.path(path))
    }
}

fn cpath(p: &Path) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("NUL in path"))
}

/// The extended attributes of `p` (a symlink itself, not its target), with
/// `llistxattr`/`lgetxattr`. A file system without xattrs has none; every
/// attribute that cannot be read is named in `errors`.
pub fn read_xattrs(p: &Path) -> XattrRead {
    let mut out = XattrRead::default();
    let c = match cpath(p) {
        Ok(c) => c,
        Err(e) => {
            out.errors
                .push(format!("extended attributes not read: {e}"));
            return out;
        }
    };
    let names = match xattr_call(|buf, len| {
        // SAFETY: c is NUL-terminated; buf is valid for len bytes (or null with 0).
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    }) {
        Ok(n) => n,
        Err(e) if xattrs_unsupported(&e) => return out,
        Err(e) => {
            out.errors.push(format!(
                "extended attributes not backed up: listing them: {e}"
            ));
            return out;
        }
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        match xattr_call(|buf, len| {
            // SAFETY: both strings are NUL-terminated; buf is valid for len bytes.
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len) }
        }) {
            Ok(value) => out.attrs.push(Xattr {
                name: name.to_vec(),
                value,
            }),
            // Removed between the listing and the read: nothing to keep.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => out.errors.push(format!(
                "extended attribute {} not backed up: {e}",
                String::from_utf8_lossy(name)
            )),
        }
    }
    out.attrs.sort();
    out
}

/// Whether an xattr call failed only because the file system (or the
/// file type) has no extended attributes.
pub(crate) fn xattrs_unsupported(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTSUP)
}

/// Run a size-probing xattr call (`f(null, 0)` gives the size) until the
/// buffer is large enough: a value may grow between the calls.
fn xattr_call(mut f: impl FnMut(*mut u8, usize) -> libc::ssize_t) -> std::io::Result<Vec<u8>> {
    loop {
        let n = f(std::ptr::null_mut(), 0);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n as usize];
        if n == 0 {
            return Ok(buf);
        }
        let m = f(buf.as_mut_ptr(), buf.len());
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(buf);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
}

/// The default dataset name for a path: its last component.
pub fn default_dataset_name(path: &Path) -> Option<String> {
    let abs = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    abs.file_name().map(|n| n.to_string_lossy().into_owned())
}
