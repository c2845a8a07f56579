//! Where a repository lives: a local directory, or a directory of an FTP
//! server. Front ends (the CLI, the web UI) build one and open it here, so
//! that they agree on what a repository location means.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bk_ftp::{FtpConfig, FtpUrl};

use crate::error::{Error, Result};
use crate::{FtpBackend, LocalBackend, Repository};

/// A repository's location.
#[derive(Clone)]
#[non_exhaustive]
pub enum RepoLocation {
    /// A local (or mounted) directory.
    Local(PathBuf),
    /// A directory of an FTP server; the URL carries the password.
    Ftp {
        /// Server, user, password and directory.
        url: FtpUrl,
        /// Connection settings.
        config: FtpConfig,
    },
}

impl fmt::Debug for RepoLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoLocation({self})")
    }
}

/// Shows the path or the URL, never a password.
impl fmt::Display for RepoLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoLocation::Local(p) => write!(f, "{}", p.display()),
            RepoLocation::Ftp { url, .. } => write!(f, "{url}"),
        }
    }
}

/// Whether `s` is an `ftp://` or `ftps://` URL.
pub fn is_ftp(s: &str) -> bool {
    s.starts_with("ftp://") || s.starts_with("ftps://")
}

impl RepoLocation {
    /// A local path, or an FTP URL (whose password, if any, is set by the
    /// caller afterwards). Other URL schemes are refused.
    pub fn parse(s: &str, config: FtpConfig) -> Result<RepoLocation> {
        if is_ftp(s) {
            let url = FtpUrl::parse(s).map_err(|e| Error::Invalid(e.to_string()))?;
            return Ok(RepoLocation::Ftp { url, config });
        }
        if s.contains("://") {
            return Err(Error::Invalid(format!(
                "unsupported repository URL scheme in {:?}: use a local path, ftp:// or ftps://",
                s.split("://").next().unwrap_or("")
            )));
        }
        Ok(RepoLocation::Local(PathBuf::from(s)))
    }

    fn ftp_backend(url: &FtpUrl, config: &FtpConfig) -> Result<Arc<FtpBackend>> {
        let b = Arc::new(FtpBackend::new(url.clone(), config.clone()));
        b.connect()?;
        Ok(b)
    }

    /// Open the existing repository.
    pub fn open(&self) -> Result<Repository> {
        match self {
            RepoLocation::Local(p) => Repository::open_local(p),
            RepoLocation::Ftp { url, config } => Repository::open(Self::ftp_backend(url, config)?),
        }
    }

    /// Open the repository, creating it when there is none.
    pub fn open_or_init(&self) -> Result<Repository> {
        match self {
            RepoLocation::Local(p) => Repository::open_or_init_local(p),
            RepoLocation::Ftp { url, config } => {
                Repository::open_or_init(Self::ftp_backend(url, config)?)
            }
        }
    }

    /// Create a new repository.
    pub fn init(&self) -> Result<Repository> {
        match self {
            RepoLocation::Local(p) => Repository::init(Arc::new(LocalBackend::new(p.clone()))),
            RepoLocation::Ftp { url, config } => Repository::init(Self::ftp_backend(url, config)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_kinds_and_never_show_the_password() {
        let l = RepoLocation::parse("/tmp/repo", FtpConfig::default()).unwrap();
        assert!(matches!(l, RepoLocation::Local(_)));
        let f = RepoLocation::parse("ftp://u:pw-123@h:2121/r", FtpConfig::default()).unwrap();
        assert!(matches!(f, RepoLocation::Ftp { .. }));
        assert!(!f.to_string().contains("pw-123"));
        assert!(!format!("{f:?}").contains("pw-123"));
        let e = RepoLocation::parse("s3://bucket/x", FtpConfig::default()).unwrap_err();
        assert!(e.to_string().contains("\"s3\""), "{e}");
    }
}
