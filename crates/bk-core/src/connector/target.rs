//! Where a restore writes: the [`Target`] contract every kind of restore
//! destination implements (a local directory, an FTP directory, and the
//! next kinds).

use std::collections::HashSet;
use std::io;

use crate::error::Result;
use crate::tree::Node;

/// Receives a file's content, piece by piece.
pub type WriteChunk<'a> = dyn FnMut(&[u8]) -> io::Result<()> + 'a;
/// Feeds a file's content, in order, to a [`WriteChunk`].
pub type ChunkFeed<'a> = dyn FnMut(&mut WriteChunk<'_>) -> Result<()> + 'a;

/// Where a restore writes. A local directory now; FTP later.
pub trait Target: Sync {
    /// Create a directory (parents exist). Existing directories are fine.
    fn create_dir(&self, path: &[u8]) -> io::Result<()>;
    /// Write a file from its chunks, atomically (temporary name, rename).
    fn write_file(&self, path: &[u8], node: &Node, chunks: &mut ChunkFeed<'_>) -> Result<()>;
    /// Whether [`Target::hard_link`] works; if not, every name of a hard-link
    /// group is written as its own copy.
    fn supports_links(&self) -> bool {
        true
    }
    /// Create a hard link `path` to the already restored `existing`.
    fn hard_link(&self, existing: &[u8], path: &[u8]) -> io::Result<()>;
    /// Create a symlink or FIFO.
    fn create_special(&self, path: &[u8], node: &Node) -> io::Result<()>;
    /// Set mode, owner and mtime of an entry.
    fn set_meta(&self, path: &[u8], node: &Node) -> io::Result<()>;
    /// Deal with the entries of the (already created) directory `dir` whose
    /// names are not in `names`, the snapshot's entries there: keep them or,
    /// when mirroring, remove them; either way record them for
    /// [`Target::take_changes`]. Called before anything is written into
    /// `dir`. The default does nothing.
    fn sweep(&self, _dir: &[u8], _names: &HashSet<&[u8]>) -> io::Result<()> {
        Ok(())
    }
    /// Whether [`Target::sweep`] removes what the snapshot does not have
    /// ([`RestoreOptions::delete`](crate::ops::restore::RestoreOptions::delete)
    /// is refused for a target that does not).
    fn mirrors(&self) -> bool {
        false
    }
    /// What the target did to entries that were there before (drained).
    fn take_changes(&self) -> Changes {
        Changes::default()
    }
    /// The phase in which the file `path` is written, for a target that
    /// needs an order (a table's schema before its rows, rows before its
    /// triggers; media before the tasks that point at them). Every file of
    /// a phase is written, its write finished, before any file of a later
    /// phase begins; within a phase files are written in parallel, in pack
    /// order. Directories are created before the first phase; hard links,
    /// symlinks and FIFOs come after the last, directory metadata after
    /// them. The default puts every file in phase 0: one phase.
    fn phase(&self, _path: &[u8], _node: &Node) -> u32 {
        0
    }
    /// Called once, after everything is written and every metadata set
    /// (verify counts, rewrite links). An error makes the restore
    /// incomplete: it is reported as an error of the output's root, and
    /// what was written stays. The default does nothing.
    fn finish(&self) -> Result<()> {
        Ok(())
    }
}

/// What a restore did to entries that were in the output before it
/// (display paths relative to the output; directories end in `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Existing entries replaced by the snapshot's.
    pub replaced: Vec<String>,
    /// Entries the snapshot does not have, left in place (`overwrite`).
    pub kept: Vec<String>,
    /// Entries removed (`delete`): not in the snapshot, or a directory where
    /// the snapshot has a file, symlink or FIFO.
    pub removed: Vec<String>,
    /// Temporary files of an interrupted restore (`.bk-restore-PID-N`)
    /// that were removed.
    pub leftovers: Vec<String>,
}
