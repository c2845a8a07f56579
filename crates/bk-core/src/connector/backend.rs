//! Storage under a repository: named immutable objects.
//!
//! Names are `/`-separated paths relative to the repository root, such as
//! `packs/3f/3f2a….pack`. Every write is atomic (temporary name, then
//! rename) and durable before it returns.

use std::fmt::Debug;
use std::io::{self};
use std::path::Path;

use crate::error::Result;

/// Prefix of temporary files; listings skip them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Whether `leaf` is a name bk's backends give a file while writing it:
/// `.tmp-<pid>-<n>` (local) or `.<name>.bkftp-part` (bk-ftp uploads). Only
/// such names, and only in [`crate::repo::layout::is_repository_dir`]s, are ever removed as
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
    /// ([`crate::repo::layout::is_repository_dir`]). Only call while holding the repository lock.
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
