//! A reusable FTP/FTPS toolkit: copy directory trees to and from a server,
//! list and compare remote trees, mirror one way, check and set mtimes.
//!
//! Built on [`suppaftp`] (synchronous, rustls for TLS) and independent of the
//! rest of bk. The main types:
//!
//! - [`FtpUrl`]: `ftp://user@host:port/path` or `ftps://…`; never prints the password;
//! - [`FtpConfig`]: timeouts, TLS trust, parallel connections, retries;
//! - [`FtpClient`]: one connection: list (MLSD, or LIST in Unix and DOS
//!   formats), stat, streaming upload and download with resume, atomic
//!   put/get, rename, delete, `mkdir -p`, MDTM/MFMT;
//! - [`Pool`]: N connections shared by threads, with retry and backoff on
//!   transient failures, shrinking when a server caps connections; logged
//!   in once per connection and kept ([`Pool::log_in`]), idle connections
//!   checked and replaced when the server dropped them;
//! - [`upload_tree`], [`download_tree`], [`mirror`], [`walk_remote`],
//!   [`walk_local`], [`compare`].
//!
//! # Mirror a directory to a server
//!
//! ```no_run
//! use bk_ftp::{Direction, FtpConfig, FtpUrl, Pool, TransferOptions, mirror};
//!
//! fn main() -> Result<(), bk_ftp::Error> {
//!     let mut url = FtpUrl::parse("ftp://alice@ftp.example.org/backups/photos")?;
//!     url.set_password(std::env::var("FTP_PASSWORD").unwrap_or_default());
//!     let pool = Pool::new(url, FtpConfig::default().connections(4));
//!     let opts = TransferOptions::default().delete(true);
//!     let report = mirror(&pool, Direction::Upload, "photos".as_ref(), "/backups/photos", &opts)?;
//!     println!("{} files, {} bytes sent, {} deleted", report.files, report.bytes, report.deleted);
//!     Ok(())
//! }
//! ```
//!
//! # Copy a tree up, and down
//!
//! ```no_run
//! # fn main() -> Result<(), bk_ftp::Error> {
//! use bk_ftp::{FtpConfig, FtpUrl, Pool, TransferOptions, download_tree, upload_tree};
//! let pool = Pool::new(FtpUrl::parse("ftp://bob:pw@127.0.0.1:2121/")?, FtpConfig::default());
//! let opts = TransferOptions::default().progress(|p| eprintln!("{}/{} files", p.files_done, p.files_total));
//! upload_tree(&pool, "dataset".as_ref(), "/datasets/dataset", &opts)?;
//! download_tree(&pool, "/datasets/dataset", "dataset_copy".as_ref(), &opts)?;
//! # Ok(()) }
//! ```
//!
//! # List and compare
//!
//! ```no_run
//! # fn main() -> Result<(), bk_ftp::Error> {
//! use std::time::Duration;
//! use bk_ftp::{FtpConfig, FtpUrl, Pool, compare, walk_local, walk_remote};
//! let pool = Pool::new(FtpUrl::parse("ftps://bob:pw@ftp.example.org/")?, FtpConfig::default().ca_file("ca.pem"));
//! let remote = walk_remote(&pool, "/datasets/folder2", true)?;
//! let local = walk_local("folder2".as_ref())?;
//! let diff = compare(&local, &remote, Duration::from_secs(2));
//! println!("to upload: {:?}, modified: {:?}, only remote: {:?}", diff.added, diff.modified, diff.deleted);
//! # Ok(()) }
//! ```
//!
//! # Check and set an mtime
//!
//! ```no_run
//! # fn main() -> Result<(), bk_ftp::Error> {
//! use bk_ftp::{FtpClient, FtpConfig, FtpUrl};
//! let mut c = FtpClient::connect(&FtpUrl::parse("ftp://bob:pw@127.0.0.1/")?, &FtpConfig::default())?;
//! let t = c.mtime("/data/a.csv")?;
//! if !c.set_mtime("/data/b.csv", t)? {
//!     eprintln!("this server cannot set modification times");
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod error;
pub mod list;
mod pool;
mod transfer;
mod tree;
pub mod url;

pub use client::{
    Download, Features, FtpClient, FtpConfig, LISTING_CAP, TlsOptions, Upload, attempt_temp_name,
    temp_name,
};
pub use error::{Error, ErrorKind, Result};
pub use list::{EntryKind, Precision, RemoteEntry};
pub use pool::{Pool, PooledClient, Retried};
pub use transfer::{
    Direction, Progress, ProgressFn, TransferOptions, TransferReport, download_tree, mirror,
    upload_tree,
};
pub use tree::{Tree, TreeDiff, TreeEntry, compare, walk_local, walk_remote};
pub use url::{FtpUrl, Scheme, Secret};
