//! Where things are: the one place that knows URL schemes.
//!
//! A [`Location`] is what a user typed for a repository (`--repo`), a
//! dataset (`bk backup LOCATION`) or a restore target (`--to LOCATION`): a
//! local path, `ftp://` or `ftps://` today, `s3://`, `mysql://` and
//! `label-studio+http://` in the next connectors. Parse it here, give it the
//! secret it asks for ([`Location::login`], [`Location::set_password`]), then
//! open what it names: a [`Repository`], a [`Source`] or a [`Target`].
//!
//! A command opens its own connections. A frontend that stays connected (the
//! web UI's session) builds its FTP locations with [`Location::ftp_shared`]
//! instead, so that browsing and every job reuse the connections the
//! session logged in once.
//! Adding a connector means one folder under `connector/` and one arm in
//! each match of this file.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bk_ftp::{FtpConfig, FtpUrl, Pool};

use crate::connector::ftp::{FtpBackend, FtpSource, FtpTarget};
use crate::connector::local::{LocalBackend, LocalSource, LocalTarget, default_dataset_name};
use crate::connector::{Source, Target};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::snapshot::check_dataset_name;

/// What a location is used as, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A repository (`--repo`).
    Repository,
    /// A dataset to back up.
    Dataset,
    /// Where a restore writes (`--to`).
    Target,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Repository => "repository",
            Role::Dataset => "dataset",
            Role::Target => "restore target",
        }
    }
}

/// How to reach FTP servers: the settings every FTP location of one command
/// shares. Plain data, so that frontends need not know bk-ftp.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FtpOptions {
    /// Parallel connections per server.
    pub connections: usize,
    /// FTPS: trust this CA or server certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// FTPS: accept any certificate (the server is then not authenticated).
    pub accept_invalid_certs: bool,
    /// FTPS: offer TLS 1.2 only.
    pub tls12_only: bool,
    /// How long to wait for a server's greeting (`None`: bk-ftp's default).
    pub greeting_timeout: Option<Duration>,
}

impl Default for FtpOptions {
    fn default() -> Self {
        FtpOptions {
            connections: FtpConfig::default().connections,
            ca_file: None,
            accept_invalid_certs: false,
            tls12_only: false,
            greeting_timeout: None,
        }
    }
}

impl FtpOptions {
    /// Options with `n` parallel connections.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }
    /// Trust this CA or server certificate.
    pub fn ca_file(mut self, f: Option<PathBuf>) -> Self {
        self.ca_file = f;
        self
    }
    /// Accept any server certificate.
    pub fn accept_invalid_certs(mut self, yes: bool) -> Self {
        self.accept_invalid_certs = yes;
        self
    }
    /// Offer TLS 1.2 only.
    pub fn tls12_only(mut self, yes: bool) -> Self {
        self.tls12_only = yes;
        self
    }
    /// Wait at most this long for a greeting.
    pub fn greeting_timeout(mut self, t: Option<Duration>) -> Self {
        self.greeting_timeout = t;
        self
    }

    /// The bk-ftp configuration these options stand for.
    pub fn config(&self) -> FtpConfig {
        let mut cfg = FtpConfig::default()
            .connections(self.connections)
            .accept_invalid_certs(self.accept_invalid_certs)
            .tls12_only(self.tls12_only);
        if let Some(t) = self.greeting_timeout {
            cfg = cfg.greeting_timeout(t);
        }
        if let Some(ca) = &self.ca_file {
            cfg = cfg.ca_file(ca);
        }
        cfg
    }
}

/// A parsed location.
#[derive(Clone)]
#[non_exhaustive]
// A command holds a handful of locations: boxing the FTP variant would save
// nothing worth its noise at every construction and match.
#[allow(clippy::large_enum_variant)]
pub enum Location {
    /// A local (or mounted) directory.
    Local(PathBuf),
    /// A directory of an FTP server; the URL carries the password once set.
    Ftp {
        /// Server, user, password and directory.
        url: FtpUrl,
        /// Connection settings.
        config: FtpConfig,
        /// Connections to that server to use, shared with whoever else
        /// holds them ([`Location::ftp_shared`]); `None`: open new ones.
        pool: Option<Arc<Pool>>,
    },
}

/// The name the repository location had before datasets and targets used
/// the same type.
pub type RepoLocation = Location;

/// What a location needs before it can be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Login {
    /// Nothing (a local path, anonymous FTP).
    None,
    /// A password was typed inside the URL, where the process list shows
    /// it: usable, but the user should be told.
    PasswordInUrl,
    /// A password for `account` (`user@host:port`), from wherever the
    /// frontend keeps it.
    Password {
        /// `user@host:port`, to ask for or look up the password.
        account: String,
    },
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

/// Shows the path or the URL, never a password.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Ftp { url, .. } => write!(f, "{url}"),
        }
    }
}

fn is_ftp(s: &str) -> bool {
    s.starts_with("ftp://") || s.starts_with("ftps://")
}

impl Location {
    /// Parse `s` as a location used as `role`. Unknown URL schemes are
    /// refused with the list of those bk knows.
    pub fn parse(s: &str, role: Role, ftp: &FtpOptions) -> Result<Location> {
        if is_ftp(s) {
            let url = FtpUrl::parse(s).map_err(|e| Error::Invalid(e.to_string()))?;
            return Ok(Location::ftp(url, ftp.config()));
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(Error::Invalid(format!(
                "unsupported {} URL scheme in {:?}: use a local path, ftp:// or ftps://",
                role.noun(),
                scheme
            )));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// A local directory.
    pub fn local(p: impl Into<PathBuf>) -> Location {
        Location::Local(p.into())
    }

    /// The directory of `url` on its FTP server, reached over connections
    /// opened for whatever is opened here.
    pub fn ftp(url: FtpUrl, config: FtpConfig) -> Location {
        Location::Ftp {
            url,
            config,
            pool: None,
        }
    }

    /// Directory `path` of `pool`'s FTP server, reached over the pool's
    /// connections: a source, target or repository opened here logs in
    /// only when all of them are busy, and leaves them in the pool when it
    /// is done. The pool's URL and settings are the location's.
    ///
    /// Give a repository a pool of its own, not the one its datasets or
    /// restore targets use: a backup holds dataset connections while it
    /// writes packs, so one pool for both could wait on itself.
    pub fn ftp_shared(pool: Arc<Pool>, path: &str) -> Location {
        Location::Ftp {
            url: pool.url().with_path(path),
            config: pool.config().clone(),
            pool: Some(pool),
        }
    }

    /// Whether this is on another machine (reached over the network).
    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Local(_))
    }

    /// The local path, for a local location.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }

    /// What this location needs before it can be opened.
    pub fn login(&self) -> Login {
        match self {
            Location::Local(_) => Login::None,
            Location::Ftp { url, .. } if url.password.is_some() => Login::PasswordInUrl,
            Location::Ftp { url, .. } if url.user == "anonymous" => Login::None,
            Location::Ftp { url, .. } => Login::Password {
                account: format!("{}@{}:{}", url.user, url.host, url.port),
            },
        }
    }

    /// Whether [`Location::set_password`] means anything here.
    pub fn takes_password(&self) -> bool {
        matches!(self, Location::Ftp { .. })
    }

    /// Set the password (never shown by `Display` or `Debug`).
    pub fn set_password(&mut self, pw: String) {
        if let Location::Ftp { url, .. } = self {
            url.set_password(pw);
        }
    }

    /// The connections to use for an FTP location: the shared pool, or a
    /// new one.
    fn ftp_pool(url: &FtpUrl, config: &FtpConfig, pool: &Option<Arc<Pool>>) -> Arc<Pool> {
        pool.clone()
            .unwrap_or_else(|| Arc::new(Pool::new(url.clone(), config.clone())))
    }

    fn ftp_backend(
        url: &FtpUrl,
        config: &FtpConfig,
        pool: &Option<Arc<Pool>>,
    ) -> Result<Arc<FtpBackend>> {
        let b = Arc::new(FtpBackend::with_pool(
            Self::ftp_pool(url, config, pool),
            &url.path,
        ));
        b.connect()?;
        Ok(b)
    }

    /// Open the existing repository here.
    pub fn open(&self) -> Result<Repository> {
        match self {
            Location::Local(p) => Repository::open_local(p),
            Location::Ftp { url, config, pool } => {
                Repository::open(Self::ftp_backend(url, config, pool)?)
            }
        }
    }

    /// Open the repository here, creating it when there is none.
    pub fn open_or_init(&self) -> Result<Repository> {
        match self {
            Location::Local(p) => Repository::open_or_init_local(p),
            Location::Ftp { url, config, pool } => {
                Repository::open_or_init(Self::ftp_backend(url, config, pool)?)
            }
        }
    }

    /// Create a new repository here.
    pub fn init(&self) -> Result<Repository> {
        match self {
            Location::Local(p) => Repository::init(Arc::new(LocalBackend::new(p.clone()))),
            Location::Ftp { url, config, pool } => {
                Repository::init(Self::ftp_backend(url, config, pool)?)
            }
        }
    }

    /// The dataset here, as a source to back up, with gitignore-style
    /// `excludes` (local datasets only). Its root is checked.
    pub fn source(&self, excludes: &[String]) -> Result<Box<dyn Source>> {
        let src: Box<dyn Source> = match self {
            Location::Local(p) => Box::new(LocalSource::new(p, excludes)?),
            Location::Ftp { url, config, pool } => {
                if !excludes.is_empty() {
                    return Err(Error::Invalid(
                        "--exclude applies to local datasets only".into(),
                    ));
                }
                Box::new(FtpSource::with_pool(
                    Self::ftp_pool(url, config, pool),
                    &url.path,
                ))
            }
        };
        src.root()?;
        Ok(src)
    }

    /// The dataset name: `given` (checked), else the location's last path
    /// component.
    pub fn dataset_name(&self, given: Option<&str>) -> Result<String> {
        if let Some(d) = given {
            check_dataset_name(d)?;
            return Ok(d.to_string());
        }
        let derived = match self {
            Location::Local(p) => default_dataset_name(p),
            Location::Ftp { url, .. } => Some(bk_ftp::url::file_name(&url.path).to_string()),
        };
        match derived {
            Some(n) if !n.is_empty() && n != "/" && check_dataset_name(&n).is_ok() => Ok(n),
            _ => Err(Error::Invalid(format!(
                "cannot derive a dataset name from {self}; pass --dataset"
            ))),
        }
    }

    /// A restore target here. `overwrite` lets it write into a non-empty
    /// directory; `delete` also removes what the snapshot does not have
    /// (refused where the target cannot).
    pub fn target(&self, overwrite: bool, delete: bool) -> Result<Box<dyn Target>> {
        match self {
            Location::Local(p) => Ok(Box::new(
                LocalTarget::new(p, overwrite || delete)?.delete(delete),
            )),
            Location::Ftp { url, config, pool } => {
                if delete {
                    return Err(Error::Invalid(format!(
                        "--delete applies to local output directories only; restore to {self} with --overwrite"
                    )));
                }
                Ok(Box::new(FtpTarget::with_pool(
                    Self::ftp_pool(url, config, pool),
                    &url.path,
                    overwrite,
                )?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Location> {
        Location::parse(s, Role::Repository, &FtpOptions::default())
    }

    #[test]
    fn parse_kinds_and_never_show_the_password() {
        let l = parse("/tmp/repo").unwrap();
        assert!(matches!(l, Location::Local(_)));
        assert_eq!(l.login(), Login::None);
        let f = parse("ftp://u:pw-123@h:2121/r").unwrap();
        assert!(matches!(f, Location::Ftp { .. }));
        assert_eq!(f.login(), Login::PasswordInUrl);
        assert!(!f.to_string().contains("pw-123"));
        assert!(!format!("{f:?}").contains("pw-123"));
        let e = parse("s3://bucket/x").unwrap_err();
        assert!(e.to_string().contains("\"s3\""), "{e}");
        assert!(e.to_string().contains("repository"), "{e}");
        let e = Location::parse("mysql://u@h/db", Role::Target, &FtpOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("restore target") && e.contains("\"mysql\""),
            "{e}"
        );
        // A local name that merely contains "://" after a non-scheme part.
        assert!(matches!(parse("./a b://c").unwrap(), Location::Local(_)));
    }

    /// A backup from an FTP dataset and a restore back to the server, both
    /// over one shared pool (and the repository over a pool of its own):
    /// one login per parallel connection, reused by both jobs.
    #[test]
    fn shared_pools_log_in_once_per_connection_across_backup_and_restore() {
        use bk_testkit::{CutProxy, Cuts, ServerKind, ServerOptions, TestServer};

        use crate::ops::backup::BackupOptions;
        use crate::ops::restore::{RestoreOptions, restore_to};
        use crate::snapshot::Select;

        let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
        let base = s.remote_base().trim_end_matches('/').to_string();
        let data = s.local_path(&format!("{base}/data"));
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.txt"), b"alpha\n").unwrap();
        std::fs::write(data.join("sub/b.bin"), vec![7u8; 70_000]).unwrap();
        let proxy = CutProxy::start(&s.addr(), Cuts::none()).unwrap();
        let mut url =
            FtpUrl::parse(&format!("ftp://{}@127.0.0.1:{}/", s.user(), proxy.port())).unwrap();
        url.set_password(s.password());
        let cfg = FtpConfig::default().connections(2);
        let pool = Arc::new(Pool::new(url.clone(), cfg.clone()));
        pool.log_in().unwrap();
        let repo_pool = Arc::new(Pool::new(url, cfg));
        let repo = Location::ftp_shared(repo_pool.clone(), &format!("{base}/repo"))
            .open_or_init()
            .unwrap();
        assert_eq!(proxy.logins(), 2);

        let src = Location::ftp_shared(pool.clone(), &format!("{base}/data"));
        assert!(!src.to_string().contains(s.password()));
        let source = src.source(&[]).unwrap();
        let snap = crate::backup(&repo, &*source, &BackupOptions::new("data").threads(2)).unwrap();
        assert_eq!(snap.stats.files, 2);
        drop(source);
        let after_backup = (pool.connects(), repo_pool.connects());
        assert!(
            after_backup.0 <= 2 && after_backup.1 <= 2,
            "{after_backup:?}"
        );
        assert_eq!(pool.open_connections(), pool.connects(), "all kept");

        let out = Location::ftp_shared(pool.clone(), &format!("{base}/out"));
        restore_to(&repo, "data", &out, &RestoreOptions::new(Select::Latest)).unwrap();
        let restored = s.local_path(&format!("{base}/out"));
        assert_eq!(std::fs::read(restored.join("a.txt")).unwrap(), b"alpha\n");
        assert_eq!(
            std::fs::read(restored.join("sub/b.bin")).unwrap(),
            vec![7u8; 70_000]
        );
        // Every login the server saw is one the two pools counted, and no
        // more than their parallel connections.
        let logins = pool.connects() + repo_pool.connects();
        assert_eq!(proxy.logins(), logins);
        assert_eq!(proxy.control_conns(), logins);
        assert!(
            pool.connects() <= 2 && repo_pool.connects() <= 2,
            "{logins}"
        );
        assert_eq!(pool.open_connections(), pool.connects(), "kept for reuse");
    }

    #[test]
    fn logins_and_dataset_names() {
        let mut f = parse("ftp://alice@h:21/data/train").unwrap();
        assert_eq!(
            f.login(),
            Login::Password {
                account: "alice@h:21".into()
            }
        );
        f.set_password("s3cret".into());
        assert_eq!(f.login(), Login::PasswordInUrl);
        assert!(!f.to_string().contains("s3cret"));
        assert_eq!(f.dataset_name(None).unwrap(), "train");
        assert_eq!(f.dataset_name(Some("x")).unwrap(), "x");
        assert!(f.dataset_name(Some("a/b")).is_err());
        let a = parse("ftp://anonymous@h/").unwrap();
        assert_eq!(a.login(), Login::None);
        assert!(a.dataset_name(None).is_err());
        let l = parse("/srv/photos").unwrap();
        assert_eq!(l.dataset_name(None).unwrap(), "photos");
    }
}
