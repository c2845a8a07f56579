//! Where a backup reads from: the [`Source`] contract every dataset kind
//! implements (local directories, FTP directories, and the next kinds).

use std::fs::{self};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::error::Result;
use crate::tree::Xattr;

/// What a source entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Socket, device or anything else bk does not store.
    Unsupported(&'static str),
}

/// Metadata of one entry as the source reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Kind.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes, where the source knows it before reading the entry;
    /// `None` for content made as it is read (a database dump, an API
    /// export). The snapshot records the size counted while reading.
    pub size: Option<u64>,
    /// Modification time (s).
    pub mtime: i64,
    /// Modification time (ns part).
    pub mtime_nsec: u32,
    /// Status change time (s); 0 where the source has none (FTP).
    pub ctime: i64,
    /// Status change time (ns part).
    pub ctime_nsec: u32,
    /// Inode.
    pub inode: u64,
    /// Device.
    pub dev: u64,
    /// Link count.
    pub nlink: u64,
    /// An opaque token that changes whenever the content does (an ETag, a
    /// checksum, a row version), where the source has one. When both the
    /// parent snapshot's node and the entry carry one, the "unchanged
    /// since the parent" test compares the tokens instead of size, mtime
    /// and ctime.
    pub change_token: Option<Vec<u8>>,
}

impl EntryMeta {
    /// From a local `lstat`.
    pub fn from_metadata(m: &fs::Metadata) -> EntryMeta {
        let ft = m.file_type();
        let kind = if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            EntryKind::Unsupported("socket")
        } else if ft.is_block_device() {
            EntryKind::Unsupported("block device")
        } else if ft.is_char_device() {
            EntryKind::Unsupported("character device")
        } else {
            EntryKind::Unsupported("unknown file type")
        };
        EntryMeta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: Some(if ft.is_file() { m.size() } else { 0 }),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec() as u32,
            inode: m.ino(),
            dev: m.dev(),
            nlink: m.nlink(),
            change_token: None,
        }
    }
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Name (bytes).
    pub name: Vec<u8>,
    /// Metadata, or why it could not be read.
    pub meta: std::result::Result<EntryMeta, String>,
}

/// A dataset to back up, read one directory at a time. Paths are relative
/// to the dataset root, `/`-separated bytes; the root is the empty path.
///
/// A backup calls [`Source::root`] (also before it takes the repository
/// lock, to refuse a bad dataset early), then [`Source::begin`], then walks
/// and reads, then [`Source::end`]: exactly once when `begin` succeeded,
/// whether the backup succeeds, fails or is cancelled.
pub trait Source: Send + Sync {
    /// What this is, for the snapshot and messages (never with a password).
    fn describe(&self) -> String;
    /// Open one consistent view of the dataset for the whole backup (a
    /// database transaction, a bucket listing), before the walk. An error
    /// fails the backup before anything is read. The default does nothing.
    fn begin(&self) -> Result<()> {
        Ok(())
    }
    /// Close what [`Source::begin`] opened. After a successful walk and
    /// read it is called before the snapshot is committed, and its error
    /// fails the backup (a view that could not be closed cleanly cannot
    /// vouch for what it gave); after a failure its error is dropped, the
    /// backup's own error is what is reported. The default does nothing.
    fn end(&self) -> Result<()> {
        Ok(())
    }
    /// Metadata of the root; an error if it is not a directory.
    fn root(&self) -> Result<EntryMeta>;
    /// Entries of a directory, with ignore rules applied.
    fn list(&self, dir: &[u8]) -> Result<Vec<SourceEntry>>;
    /// Open a file for reading.
    fn open(&self, path: &[u8]) -> Result<Box<dyn SourceFile>>;
    /// A symlink's target, verbatim.
    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>>;
    /// Leave out the directory with this device and inode wherever it
    /// appears (the repository itself, when it lives inside the dataset).
    /// Sources that cannot see local directories ignore it.
    fn exclude_dir(&self, _dev: u64, _ino: u64) {}
    /// Paths left out by [`Source::exclude_dir`] so far.
    fn excluded(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Extended attributes of an entry (not following a symlink), and
    /// one message per attribute (or listing) that could not be read.
    fn xattrs(&self, _path: &[u8]) -> XattrRead {
        XattrRead::default()
    }
    /// How coarse this source's mtimes are, in seconds (0: as fine as the
    /// file system's, with a ctime). A file whose mtime falls in the same
    /// coarse unit as the parent snapshot's start may have changed again
    /// within it unseen, so the scanner reads it again.
    fn mtime_granularity_secs(&self) -> u32 {
        0
    }
}

/// What [`Source::xattrs`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XattrRead {
    /// The attributes read, sorted by name.
    pub attrs: Vec<Xattr>,
    /// What could not be read, one message each (names the attribute).
    pub errors: Vec<String>,
}

/// An open source file.
pub trait SourceFile: Read + Send {
    /// Metadata now (after reading), to notice a file changing under us.
    fn meta_now(&self) -> Option<EntryMeta>;
}
