//! This machine's file system: a repository in a local or mounted directory
//! ([`LocalBackend`]), a directory tree as a dataset ([`LocalSource`]) and a
//! directory to restore into ([`LocalTarget`]).

mod backend;
mod source;
mod target;

pub use backend::LocalBackend;
pub use source::{LocalSource, default_dataset_name, read_xattrs};
pub use target::LocalTarget;
