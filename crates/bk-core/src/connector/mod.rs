//! Connectors: where repositories live ([`Backend`]), what a backup reads
//! ([`Source`]) and where a restore writes ([`Target`]). The contracts are
//! here; each kind of storage or dataset is one folder that provides what it
//! can (`local/`, `ftp/`). [`crate::location`] is the one place that picks a
//! connector for a location the user typed.

pub mod backend;
pub mod ftp;
pub mod local;
pub mod source;
pub mod target;

pub use backend::{Backend, ObjectInfo};
pub use source::{EntryKind, EntryMeta, Source, SourceEntry, SourceFile, XattrRead};
pub use target::{Changes, ChunkFeed, Target, WriteChunk};
