//! A restore into a local (or mounted) directory: files written under a
//! temporary name and renamed into place, sparse files kept sparse, mode,
//! owner, mtime and extended attributes set.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use filetime::FileTime;

use crate::connector::target::{Changes, ChunkFeed, Target};
use crate::error::{Error, IoContext, Result};
use crate::tree::{Node, NodeKind, shown};

/// Whether `name` is a temporary name of this restorer:
/// `.bk-restore-<pid>-<n>`, both numbers digits only. Returns the pid.
fn restore_temp_pid(name: &[u8]) -> Option<u64> {
    let rest = name.strip_prefix(b".bk-restore-")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, n) = (&rest[..dash], &rest[dash + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(pid) || !digits(n) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether process `pid` exists here (its temporary files are in use).
fn pid_alive(pid: u64) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return true; // not a process id: leave the file alone
    }
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(p, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// A local output directory.
#[derive(Debug)]
pub struct LocalTarget {
    root: PathBuf,
    overwrite: bool,
    delete: bool,
    counter: AtomicU64,
    is_root: bool,
    changes: Mutex<Changes>,
}

impl LocalTarget {
    /// Prepare `root`: it must be absent or empty unless `overwrite`.
    /// Temporary files an interrupted restore left there do not count, and
    /// are removed (also from every existing directory the restore writes).
    pub fn new(root: &Path, overwrite: bool) -> Result<LocalTarget> {
        match fs::symlink_metadata(root) {
            Ok(m) if m.is_dir() => {
                let mut nonempty = false;
                for e in fs::read_dir(root).ctx("reading", root)? {
                    let e = e.ctx("reading", root)?;
                    if restore_temp_pid(e.file_name().as_bytes()).is_none() {
                        nonempty = true;
                        break;
                    }
                }
                if nonempty && !overwrite {
                    return Err(Error::OutputNotEmpty(root.to_path_buf()));
                }
            }
            Ok(_) => {
                return Err(Error::Invalid(format!(
                    "output path {} exists and is not a directory",
                    root.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).ctx("creating directory", root)?;
            }
            Err(e) => return Err(e).ctx("inspecting", root),
        }
        let t = LocalTarget {
            root: root.to_path_buf(),
            overwrite,
            delete: false,
            counter: AtomicU64::new(0),
            // SAFETY: geteuid has no preconditions.
            is_root: unsafe { libc::geteuid() } == 0,
            changes: Mutex::default(),
        };
        t.remove_leftovers(root);
        Ok(t)
    }

    /// Mirror: remove what the snapshot does not have, and directories
    /// where it has another kind of entry (implies overwriting).
    pub fn delete(mut self, yes: bool) -> Self {
        self.delete = yes;
        self.overwrite |= yes;
        self
    }

    fn changes(&self) -> std::sync::MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `p` relative to the root, for reports.
    fn rel(&self, p: &Path, dir: bool) -> String {
        let mut s = shown(
            p.strip_prefix(&self.root)
                .unwrap_or(p)
                .as_os_str()
                .as_bytes(),
        );
        if dir {
            s.push('/');
        }
        s
    }

    /// Remove the temporary files of interrupted restores from `dir`: only
    /// names that match this restorer's pattern exactly, of processes that
    /// are gone, and never a directory.
    fn remove_leftovers(&self, dir: &Path) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Some(pid) = restore_temp_pid(e.file_name().as_bytes()) else {
                continue;
            };
            if pid == u64::from(std::process::id()) || pid_alive(pid) {
                continue;
            }
            if e.file_type().is_ok_and(|t| !t.is_dir()) && fs::remove_file(e.path()).is_ok() {
                let r = self.rel(&e.path(), false);
                self.changes().leftovers.push(r);
            }
        }
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    fn temp_path(&self, rel: &[u8]) -> PathBuf {
        let p = self.path(rel);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        p.with_file_name(format!(".bk-restore-{}-{n}", std::process::id()))
    }

    /// Make room for a new entry at `p` when overwriting (a symlink is
    /// never followed). A directory is kept for a directory; for another
    /// kind of entry an empty one is replaced, and one with entries is
    /// removed only when mirroring (and named), else refused. What is
    /// replaced or removed is recorded.
    fn clear(&self, p: &Path, keep_dir: bool) -> io::Result<()> {
        if !self.overwrite {
            return Ok(());
        }
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() && keep_dir => Ok(()),
            Ok(m) if m.is_dir() => match fs::remove_dir(p) {
                Ok(()) => {
                    let r = self.rel(p, true);
                    self.changes().replaced.push(r);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && self.delete => {
                    fs::remove_dir_all(p)?;
                    let r = self.rel(p, true);
                    self.changes().removed.push(r);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Err(io::Error::new(
                    io::ErrorKind::DirectoryNotEmpty,
                    "the output has a directory with entries where the snapshot has none; \
                     kept it (pass --delete to replace it and everything in it)",
                )),
                Err(e) => Err(e),
            },
            Ok(_) => {
                if keep_dir {
                    fs::remove_file(p)?;
                } // else rename() replaces it atomically
                let r = self.rel(p, false);
                self.changes().replaced.push(r);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Target for LocalTarget {
    fn create_dir(&self, path: &[u8]) -> io::Result<()> {
        let p = self.path(path);
        self.clear(&p, true)?;
        match fs::create_dir(&p) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fs::symlink_metadata(&p)?.is_dir() {
                    self.remove_leftovers(&p);
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    ))
                }
            }
            r => r,
        }
    }

    fn write_file(&self, path: &[u8], node: &Node, chunks: &mut ChunkFeed<'_>) -> Result<()> {
        let dest = self.path(path);
        let tmp = self.temp_path(path);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
            .ctx("creating", &tmp)?;
        let res = (|| -> Result<()> {
            let mut w = SparseWriter { f: &f, pos: 0 };
            chunks(&mut |b: &[u8]| w.write(b))?;
            // The length, for a file that ends in a hole.
            f.set_len(w.pos).ctx("writing", &tmp)?;
            if self.is_root {
                std::os::unix::fs::fchown(&f, Some(node.uid), Some(node.gid))
                    .ctx("setting owner of", &dest)?;
            }
            // After the owner (chown drops security.capability), before the
            // mode: chmod then sets an ACL's mask from the mode's group bits,
            // which is what the mask was.
            let xattr_errors = set_xattrs(XattrTarget::Fd(&f), &node.xattrs);
            f.set_permissions(fs::Permissions::from_mode(node.mode))
                .ctx("setting mode of", &dest)?;
            filetime::set_file_handle_times(&f, None, Some(mtime_of(node)))
                .ctx("setting mtime of", &dest)?;
            drop(f);
            if self.overwrite {
                self.clear(&dest, false).ctx("replacing", &dest)?;
            }
            fs::rename(&tmp, &dest).ctx("renaming into place", &dest)?;
            // The content is in place; what is missing is named.
            match xattr_errors {
                None => Ok(()),
                Some(e) => Err(e).ctx("restoring metadata of", &dest),
            }
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn hard_link(&self, existing: &[u8], path: &[u8]) -> io::Result<()> {
        let dest = self.path(path);
        let tmp = self.temp_path(path);
        fs::hard_link(self.path(existing), &tmp)?;
        self.clear(&dest, false)?;
        fs::rename(&tmp, &dest).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    fn create_special(&self, path: &[u8], node: &Node) -> io::Result<()> {
        let dest = self.path(path);
        let tmp = self.temp_path(path);
        match node.kind {
            NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), &tmp)?,
            NodeKind::Fifo => {
                let c = std::ffi::CString::new(tmp.as_os_str().as_bytes())
                    .map_err(|_| io::Error::other("NUL in path"))?;
                // SAFETY: c is a valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), (node.mode & 0o7777) as libc::mode_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            _ => return Err(io::Error::other("not a special file")),
        }
        self.clear(&dest, false)?;
        fs::rename(&tmp, &dest).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        self.set_meta(path, node)
    }

    fn set_meta(&self, path: &[u8], node: &Node) -> io::Result<()> {
        let p = self.path(path);
        let symlink = node.kind == NodeKind::Symlink;
        if self.is_root {
            std::os::unix::fs::lchown(&p, Some(node.uid), Some(node.gid))?;
        }
        let xattr_errors = set_xattrs(XattrTarget::Path(&p), &node.xattrs);
        if !symlink {
            fs::set_permissions(&p, fs::Permissions::from_mode(node.mode))?;
        }
        filetime::set_symlink_file_times(&p, mtime_of(node), mtime_of(node))?;
        xattr_errors.map_or(Ok(()), Err)
    }

    fn sweep(&self, dir: &[u8], names: &HashSet<&[u8]>) -> io::Result<()> {
        if !self.overwrite {
            return Ok(());
        }
        let d = self.path(dir);
        // Only a real directory (its creation replaced a symlink).
        if !fs::symlink_metadata(&d)?.is_dir() {
            return Ok(());
        }
        let mut extra = Vec::new();
        for e in fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name();
            // Another live restore's temporary files are none of ours.
            if names.contains(name.as_bytes()) || restore_temp_pid(name.as_bytes()).is_some() {
                continue;
            }
            extra.push((e.path(), e.file_type()?.is_dir()));
        }
        extra.sort();
        for (p, is_dir) in extra {
            let r = self.rel(&p, is_dir);
            if !self.delete {
                self.changes().kept.push(r);
                continue;
            }
            if is_dir {
                fs::remove_dir_all(&p)?;
            } else {
                fs::remove_file(&p)?;
            }
            self.changes().removed.push(r);
        }
        Ok(())
    }

    fn mirrors(&self) -> bool {
        self.delete
    }

    fn take_changes(&self) -> Changes {
        let mut c = std::mem::take(&mut *self.changes());
        for v in [
            &mut c.replaced,
            &mut c.kept,
            &mut c.removed,
            &mut c.leftovers,
        ] {
            v.sort();
        }
        c
    }
}

/// Writes a restored file, leaving holes where a whole aligned block is
/// zeros: a sparse file comes back sparse. The scan stops at the first
/// non-zero byte, so ordinary data costs about nothing extra.
struct SparseWriter<'f> {
    f: &'f fs::File,
    /// Bytes of the file written or skipped so far.
    pos: u64,
}

/// Holes are made in units of this (file system blocks are 4 KiB or less
/// on the file systems that have holes).
const HOLE_BLOCK: u64 = 4096;

impl SparseWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let start = self.pos;
        // [run, i) is data not yet written: written in one call per run.
        let (mut run, mut i) = (0usize, 0usize);
        while i < data.len() {
            let off = start + i as u64;
            let n = ((HOLE_BLOCK - off % HOLE_BLOCK) as usize).min(data.len() - i);
            if n as u64 == HOLE_BLOCK && is_zero(&data[i..i + n]) {
                if run < i {
                    self.f.write_all_at(&data[run..i], start + run as u64)?;
                }
                run = i + n;
            }
            i += n;
        }
        if run < data.len() {
            self.f.write_all_at(&data[run..], start + run as u64)?;
        }
        self.pos += data.len() as u64;
        Ok(())
    }
}

fn is_zero(b: &[u8]) -> bool {
    // Whole words first: the compiler turns this into wide compares.
    let (words, rest) = b.split_at(b.len() / 16 * 16);
    words
        .chunks_exact(16)
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && rest.iter().all(|&x| x == 0)
}

enum XattrTarget<'a> {
    Fd(&'a fs::File),
    /// Not following a symlink.
    Path(&'a Path),
}

/// Set extended attributes; `None` if all were set, else an error naming
/// each one that was not.
fn set_xattrs(t: XattrTarget<'_>, attrs: &[crate::tree::Xattr]) -> Option<io::Error> {
    use std::os::fd::AsRawFd;
    if attrs.is_empty() {
        return None;
    }
    let cpath = match t {
        XattrTarget::Path(p) => match std::ffi::CString::new(p.as_os_str().as_bytes()) {
            Ok(c) => Some(c),
            Err(_) => return Some(io::Error::other("NUL in path")),
        },
        XattrTarget::Fd(_) => None,
    };
    let mut failed = Vec::new();
    for a in attrs {
        let shown = String::from_utf8_lossy(&a.name).into_owned();
        let Ok(name) = std::ffi::CString::new(a.name.as_slice()) else {
            failed.push(format!("{shown} (NUL in its name)"));
            continue;
        };
        let value = a.value.as_ptr().cast();
        // SAFETY: name and the path are NUL-terminated; value is valid for
        // its length; the descriptor is open for the call's duration.
        let r = unsafe {
            match (&t, &cpath) {
                (XattrTarget::Fd(f), _) => {
                    libc::fsetxattr(f.as_raw_fd(), name.as_ptr(), value, a.value.len(), 0)
                }
                (_, Some(c)) => libc::lsetxattr(c.as_ptr(), name.as_ptr(), value, a.value.len(), 0),
                _ => unreachable!("a path target has its C string"),
            }
        };
        if r != 0 {
            failed.push(format!("{shown} ({})", io::Error::last_os_error()));
        }
    }
    (!failed.is_empty()).then(|| {
        io::Error::other(format!(
            "extended attribute(s) not restored: {}",
            failed.join(", ")
        ))
    })
}

fn mtime_of(n: &Node) -> FileTime {
    FileTime::from_unix_time(n.mtime, n.mtime_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::display_path;

    #[test]
    fn restore_temp_names_are_matched_exactly() {
        assert_eq!(restore_temp_pid(b".bk-restore-123-4"), Some(123));
        for other in [
            &b".bk-restore-notes.txt"[..],
            b".bk-restore-12-",
            b".bk-restore--3",
            b".bk-restore-12-3.bak",
            b".bk-restore-1a-3",
            b"x.bk-restore-1-3",
            b".bk-restore-12",
        ] {
            assert_eq!(restore_temp_pid(other), None, "{}", display_path(other));
        }
    }

    #[test]
    fn link_groups_differ_across_devices() {
        use crate::tree::link_group;
        assert_ne!(link_group(1, 2), link_group(3, 2));
        assert_eq!(link_group(1, 2), link_group(1, 2));
    }

    #[test]
    fn sparse_writer_is_byte_exact_over_odd_piece_boundaries() {
        let tmp = tempfile::tempdir().unwrap();
        // Zeros and data in runs that straddle blocks and pieces.
        let mut want = Vec::new();
        for (i, len) in [5000usize, 12288, 1, 8191, 40000, 3, 20000]
            .iter()
            .enumerate()
        {
            let b = if i % 2 == 0 { 0u8 } else { 0x5a };
            want.extend(std::iter::repeat_n(b, *len));
        }
        want.extend(std::iter::repeat_n(0u8, 3 * 4096 + 17));
        for piece in [1usize, 7, 4096, 5000, want.len()] {
            let p = tmp.path().join(format!("f{piece}"));
            let f = fs::File::create(&p).unwrap();
            let mut w = SparseWriter { f: &f, pos: 0 };
            for c in want.chunks(piece) {
                w.write(c).unwrap();
            }
            f.set_len(w.pos).unwrap();
            drop(f);
            assert!(fs::read(&p).unwrap() == want, "piece size {piece}");
        }
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0; 4096]));
        for i in [0, 15, 16, 4095] {
            let mut b = [0u8; 4096];
            b[i] = 1;
            assert!(!is_zero(&b), "{i}");
        }
    }
}
