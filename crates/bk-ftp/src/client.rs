// tidy: long file: FtpClient is one type over one control connection; its transfer, listing and login halves share private state
//! One FTP/FTPS connection.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use suppaftp::rustls::ClientConfig;
use suppaftp::rustls::pki_types::pem::PemObject;
use suppaftp::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use suppaftp::types::FileType;
use suppaftp::{Mode, RustlsConnector, RustlsFtpStream, Status};

use crate::error::{Error, ErrorKind, Result};
use crate::list::{self, EntryKind, Precision, RemoteEntry};
use crate::url::{self, FtpUrl, Scheme};

/// TLS settings for `ftps://`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Trust this CA or server certificate (PEM) in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (self-signed servers). Explicit opt-out: the
    /// connection is encrypted but the server is not authenticated.
    pub accept_invalid_certs: bool,
    /// Offer TLS 1.2 only. vsftpd's default `require_ssl_reuse=YES` needs the
    /// data connection to resume the control connection's session, which
    /// TLS 1.3's single-use tickets cannot do; TLS 1.2 session ids can.
    pub tls12_only: bool,
}

/// Connection settings. `Default` gives sane values; setters chain.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FtpConfig {
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for every read or write on the control and data connections.
    pub io_timeout: Duration,
    /// How long to wait for the server's greeting after connecting. A port
    /// that accepts but never greets is not an FTP server: that failure is
    /// permanent ([`ErrorKind::NotFtp`]), not retried.
    pub greeting_timeout: Duration,
    /// TLS settings (used by `ftps://`).
    pub tls: TlsOptions,
    /// Parallel connections for tree transfers.
    pub connections: usize,
    /// Attempts for an operation that fails transiently without moving a
    /// byte of data (connection refused or reset, a 4xx reply, a timeout),
    /// reconnecting in between. With the backoff, this bounds how long an
    /// unreachable server takes to be given up.
    pub retries: u32,
    /// Attempts in all for an operation whose failed attempts did move data
    /// (a transfer cut midway, an upload that arrived short): over a link
    /// that drops connections now and then, the network works and another
    /// attempt is likely to get through. At least `retries`.
    pub attempts_with_progress: u32,
    /// First backoff delay; doubled after each failure that moved no data
    /// (up to 5 s); a failure that moved data waits only this long.
    pub backoff: Duration,
    /// Use PASV even when the server offers EPSV (PASV replies always have
    /// their address replaced by the control connection's).
    pub force_pasv: bool,
    /// A [`crate::Pool`] connection idle this long is checked with `NOOP`
    /// before it is used again, and replaced by a fresh login when the
    /// server dropped it (servers close idle sessions after minutes).
    pub idle_check: Duration,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            connect_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(60),
            greeting_timeout: Duration::from_secs(15),
            tls: TlsOptions::default(),
            connections: 4,
            retries: 5,
            attempts_with_progress: 20,
            backoff: Duration::from_millis(200),
            force_pasv: false,
            idle_check: Duration::from_secs(5),
        }
    }
}

impl FtpConfig {
    /// Number of parallel connections (at least 1).
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }
    /// Trust this CA or certificate file (PEM).
    pub fn ca_file(mut self, p: impl Into<PathBuf>) -> Self {
        self.tls.ca_file = Some(p.into());
        self
    }
    /// Accept any server certificate.
    pub fn accept_invalid_certs(mut self, yes: bool) -> Self {
        self.tls.accept_invalid_certs = yes;
        self
    }
    /// Offer only TLS 1.2.
    pub fn tls12_only(mut self, yes: bool) -> Self {
        self.tls.tls12_only = yes;
        self
    }
    /// Connect and I/O timeouts.
    pub fn timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }
    /// How long to wait for the server's greeting (default 15 s).
    ///
    /// ```
    /// let cfg = bk_ftp::FtpConfig::default().greeting_timeout(std::time::Duration::from_secs(5));
    /// assert_eq!(cfg.greeting_timeout.as_secs(), 5);
    /// ```
    pub fn greeting_timeout(mut self, t: Duration) -> Self {
        self.greeting_timeout = t;
        self
    }
    /// Use PASV even when EPSV is offered.
    pub fn force_pasv(mut self, yes: bool) -> Self {
        self.force_pasv = yes;
        self
    }
    /// Attempts without progress and the first backoff; the attempts of
    /// an operation that moves data become four times as many (see
    /// [`FtpConfig::attempts_with_progress`] to set them apart).
    ///
    /// ```
    /// let cfg = bk_ftp::FtpConfig::default().retries(3, std::time::Duration::from_millis(50));
    /// assert_eq!((cfg.retries, cfg.attempts_with_progress), (3, 12));
    /// ```
    pub fn retries(mut self, n: u32, backoff: Duration) -> Self {
        self.retries = n.max(1);
        self.attempts_with_progress = self.retries.saturating_mul(4);
        self.backoff = backoff;
        self
    }
    /// Attempts in all for an operation whose failed attempts moved data
    /// (at least [`FtpConfig::retries`]).
    ///
    /// ```
    /// let cfg = bk_ftp::FtpConfig::default().attempts_with_progress(50);
    /// assert_eq!((cfg.retries, cfg.attempts_with_progress), (5, 50));
    /// ```
    pub fn attempts_with_progress(mut self, n: u32) -> Self {
        self.attempts_with_progress = n.max(self.retries);
        self
    }
    /// Check a pooled connection idle this long with `NOOP` before reusing
    /// it ([`Duration::ZERO`]: before every reuse).
    ///
    /// ```
    /// let cfg = bk_ftp::FtpConfig::default().idle_check(std::time::Duration::from_secs(30));
    /// assert_eq!(cfg.idle_check.as_secs(), 30);
    /// ```
    pub fn idle_check(mut self, d: Duration) -> Self {
        self.idle_check = d;
        self
    }
}

/// What the server announced in `FEAT`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// MLSD listings.
    pub mlsd: bool,
    /// MLST single-entry facts.
    pub mlst: bool,
    /// MDTM (read mtime).
    pub mdtm: bool,
    /// MFMT (set mtime).
    pub mfmt: bool,
    /// SIZE.
    pub size: bool,
    /// REST STREAM (resume).
    pub rest_stream: bool,
    /// UTF8.
    pub utf8: bool,
    /// EPSV.
    pub epsv: bool,
}

/// How this server lets us set a file's mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetMtime {
    Unknown,
    Mfmt,
    MdtmWrite,
    Unsupported,
}

/// One logged-in FTP connection.
pub struct FtpClient {
    stream: RustlsFtpStream,
    url: FtpUrl,
    features: Features,
    set_mtime: SetMtime,
    /// The server answered `SITE CHMOD` with "not implemented".
    chmod_unsupported: bool,
    /// Data bytes sent or received so far, counted as they go (a cut
    /// transfer counts what got through): tells a [`crate::Pool`] whether a
    /// failed attempt made progress.
    moved: u64,
}

impl std::fmt::Debug for FtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpClient")
            .field("url", &self.url)
            .field("features", &self.features)
            .finish()
    }
}

fn tls_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(suppaftp::rustls::crypto::ring::default_provider());
    let versions: &[&suppaftp::rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&suppaftp::rustls::version::TLS12]
    } else {
        &[
            &suppaftp::rustls::version::TLS13,
            &suppaftp::rustls::version::TLS12,
        ]
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| Error::new(ErrorKind::Tls, "configuring TLS", e.to_string()))?;
    let config = if opts.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = suppaftp::rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        if let Some(ca) = &opts.ca_file {
            let certs = CertificateDer::pem_file_iter(ca).map_err(|e| {
                Error::new(ErrorKind::Tls, "reading CA file", e.to_string())
                    .path(ca.display().to_string())
            })?;
            for c in certs {
                let c = c.map_err(|e| {
                    Error::new(ErrorKind::Tls, "reading CA file", e.to_string())
                        .path(ca.display().to_string())
                })?;
                roots.add(c).map_err(|e| {
                    Error::new(ErrorKind::Tls, "reading CA file", e.to_string())
                        .path(ca.display().to_string())
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts every certificate (explicit opt-out), still checking signatures.
#[derive(Debug)]
struct AcceptAny(Arc<suppaftp::rustls::crypto::CryptoProvider>);

impl suppaftp::rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<
        suppaftp::rustls::client::danger::ServerCertVerified,
        suppaftp::rustls::Error,
    > {
        Ok(suppaftp::rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &suppaftp::rustls::DigitallySignedStruct,
    ) -> std::result::Result<
        suppaftp::rustls::client::danger::HandshakeSignatureValid,
        suppaftp::rustls::Error,
    > {
        suppaftp::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &suppaftp::rustls::DigitallySignedStruct,
    ) -> std::result::Result<
        suppaftp::rustls::client::danger::HandshakeSignatureValid,
        suppaftp::rustls::Error,
    > {
        suppaftp::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<suppaftp::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn resolve(url: &FtpUrl) -> Result<SocketAddr> {
    url.addr()
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(ErrorKind::Transient, "resolving", e.to_string()).path(url.host.clone())
        })?
        .next()
        .ok_or_else(|| {
            Error::new(ErrorKind::Invalid, "resolving", "no address").path(url.host.clone())
        })
}

impl FtpClient {
    /// Connect, secure (for `ftps://`), log in, read `FEAT`, switch to
    /// binary mode and UTF-8 names. The password is `url.password`.
    pub fn connect(url: &FtpUrl, config: &FtpConfig) -> Result<FtpClient> {
        let addr = resolve(url)?;
        let io = config.io_timeout;
        let ct = config.connect_timeout;
        let tcp = TcpStream::connect_timeout(&addr, ct)
            .map_err(|e| Error::io("connecting to", &url.addr(), e))?;
        tcp.set_write_timeout(Some(io)).ok();
        // A port that accepts and never greets (or greets in another
        // protocol) is not an FTP server: say so at once instead of
        // waiting io_timeout for every retry.
        let greet = config.greeting_timeout.max(Duration::from_millis(1));
        tcp.set_read_timeout(Some(greet)).ok();
        check_greeting(&tcp, url, greet)?;
        // The socket option is shared with the stream suppaftp reads from.
        let control = tcp
            .try_clone()
            .map_err(|e| Error::io("connecting to", &url.addr(), e))?;
        let stream = RustlsFtpStream::connect_with_stream(tcp).map_err(|e| {
            if is_timeout(&e) {
                no_greeting(url, greet)
            } else {
                connect_error(e, url)
            }
        })?;
        control.set_read_timeout(Some(io)).ok();
        let mut stream = stream.passive_stream_builder(move |a: SocketAddr| {
            let s =
                TcpStream::connect_timeout(&a, ct).map_err(suppaftp::FtpError::ConnectionError)?;
            s.set_read_timeout(Some(io)).ok();
            s.set_write_timeout(Some(io)).ok();
            Ok(s)
        });
        if url.scheme == Scheme::Ftps {
            let cfg = tls_config(&config.tls)?;
            stream = stream
                .into_secure(RustlsConnector::from(cfg), &url.host)
                .map_err(|e| Error::ftp("starting TLS with", Some(&url.addr()), e))?;
        }
        let password = url.password.as_ref().map(|p| p.expose()).unwrap_or("");
        stream.login(url.user.as_str(), password).map_err(|e| {
            let mut err = Error::ftp("logging in to", Some(&url.addr()), e);
            if err.code == Some(530) || err.code == Some(430) {
                err.kind = ErrorKind::Auth;
                err.text = format!("login refused for user {:?} ({})", url.user, err.text);
            }
            err
        })?;
        let features = match stream.feat() {
            Ok(map) => {
                let has = |k: &str| map.keys().any(|x| x.eq_ignore_ascii_case(k));
                Features {
                    mlsd: has("MLSD") || has("MLST"),
                    mlst: has("MLST"),
                    mdtm: has("MDTM"),
                    mfmt: has("MFMT"),
                    size: has("SIZE"),
                    rest_stream: has("REST")
                        || map
                            .keys()
                            .any(|k| k.to_ascii_uppercase().starts_with("REST")),
                    utf8: has("UTF8"),
                    epsv: has("EPSV"),
                }
            }
            Err(_) => Features::default(),
        };
        if features.utf8 {
            let _ = stream.opts("UTF8", Some("ON"));
        }
        stream
            .transfer_type(FileType::Binary)
            .map_err(|e| Error::ftp("setting binary mode on", Some(&url.addr()), e))?;
        if features.epsv && !config.force_pasv {
            stream.set_mode(Mode::ExtendedPassive);
        } else {
            // The control connection's address, not the one a (possibly
            // NATed) server announces in its PASV reply.
            stream.set_passive_nat_workaround(true);
        }
        let set_mtime = if features.mfmt {
            SetMtime::Mfmt
        } else {
            SetMtime::Unknown
        };
        Ok(FtpClient {
            stream,
            url: url.clone(),
            features,
            set_mtime,
            chmod_unsupported: false,
            moved: 0,
        })
    }

    /// The URL this client is connected to (without the password when shown).
    pub fn url(&self) -> &FtpUrl {
        &self.url
    }

    /// The server's capabilities.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Send NOOP; `Ok` means the connection is alive.
    pub fn noop(&mut self) -> Result<()> {
        self.stream
            .noop()
            .map_err(|e| Error::ftp("pinging", None, e))
    }

    /// List a directory: MLSD when available, else LIST.
    ///
    /// A listing is never taken as proof of absence when it may have been
    /// cut short: servers cap listings (pure-ftpd at 10,000 entries, silently
    /// for MLSD), so a listing of exactly [`LISTING_CAP`] lines is an error
    /// rather than a directory that seems to have lost its other entries.
    pub fn list(&mut self, dir: &str) -> Result<Vec<RemoteEntry>> {
        let dir = url::normalize(dir);
        if self.features.mlsd {
            let lines = self
                .stream
                .mlsd(Some(&dir))
                .map_err(|e| Error::ftp("listing", Some(&dir), e))?;
            check_cap(&dir, lines.len())?;
            Ok(lines
                .iter()
                .filter_map(|l| list::parse_mlsd(l))
                .filter(|e| e.name != "." && e.name != "..")
                .collect())
        } else {
            self.list_with_list(&dir)
        }
    }

    /// List a directory with LIST (forcing the fallback path).
    pub fn list_with_list(&mut self, dir: &str) -> Result<Vec<RemoteEntry>> {
        let dir = url::normalize(dir);
        // CWD first: a path argument to LIST is taken as flags by some
        // servers when a name starts with '-', and globbed by others.
        self.stream
            .cwd(&dir)
            .map_err(|e| Error::ftp("listing", Some(&dir), e))?;
        let lines = self
            .stream
            .list(None)
            .map_err(|e| Error::ftp("listing", Some(&dir), e));
        let _ = self.stream.cwd("/");
        let lines = lines?;
        check_cap(&dir, lines.len())?;
        let now = SystemTime::now();
        Ok(lines
            .iter()
            .filter_map(|l| list::parse_list(l, now))
            .collect())
    }

    /// Facts about one path, or `None` when it does not exist.
    pub fn stat(&mut self, path: &str) -> Result<Option<RemoteEntry>> {
        let path = url::normalize(path);
        if self.features.mlst {
            match self.stream.mlst(Some(&path)) {
                Ok(line) => {
                    let fact_line = line
                        .lines()
                        .map(str::trim_start)
                        .find(|l| l.contains('=') && l.contains("; "));
                    if let Some(mut e) = fact_line.and_then(list::parse_mlsd) {
                        e.name = url::file_name(&path).to_string();
                        return Ok(Some(e));
                    }
                }
                Err(e) => {
                    let err = Error::ftp("inspecting", Some(&path), e);
                    if err.code != Some(550)
                        && err.code != Some(501)
                        && err.kind != ErrorKind::Unsupported
                    {
                        return Err(err);
                    }
                    // 550 may also be libunftp's answer for a valid path:
                    // SIZE and the parent's listing below decide.
                }
            }
        }
        match self.stream.size(&path) {
            Ok(size) => {
                let mtime = self
                    .stream
                    .mdtm(&path)
                    .ok()
                    .and_then(|t| list::parse_timeval(&t.format("%Y%m%d%H%M%S").to_string()));
                Ok(Some(RemoteEntry {
                    name: url::file_name(&path).to_string(),
                    kind: EntryKind::File,
                    size: size as u64,
                    mtime,
                    precision: Precision::Exact,
                    mode: None,
                    target: None,
                }))
            }
            Err(e) => {
                let err = Error::ftp("inspecting", Some(&path), e);
                if err.code == Some(550) {
                    // Not a file; maybe a directory.
                    let parent = url::parent(&path).to_string();
                    let name = url::file_name(&path).to_string();
                    if path == "/" {
                        return Ok(Some(dir_entry("/")));
                    }
                    match self.list(&parent) {
                        Ok(entries) => Ok(entries.into_iter().find(|e| e.name == name)),
                        Err(e) if e.code == Some(550) => Ok(None),
                        Err(e) => Err(e),
                    }
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Size of a remote file (SIZE).
    pub fn size(&mut self, path: &str) -> Result<u64> {
        self.stream
            .size(path)
            .map(|s| s as u64)
            .map_err(|e| Error::ftp("reading the size of", Some(path), e))
    }

    /// Modification time of a remote file (MDTM, UTC).
    pub fn mtime(&mut self, path: &str) -> Result<SystemTime> {
        let r = self
            .stream
            .custom_command(format!("MDTM {path}"), &[Status::File])
            .map_err(|e| Error::ftp("reading the mtime of", Some(path), e))?;
        let body = String::from_utf8_lossy(&r.body).to_string();
        let v = body.trim().trim_start_matches("213").trim();
        list::parse_timeval(v).ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                "reading the mtime of",
                format!("unreadable MDTM reply {body:?}"),
            )
            .path(path)
        })
    }

    /// Set a remote file's mtime: MFMT, or vsftpd's `MDTM time path`.
    /// Returns `Ok(false)` when the server supports neither.
    pub fn set_mtime(&mut self, path: &str, t: SystemTime) -> Result<bool> {
        let tv = list::format_timeval(t);
        for attempt in [SetMtime::Mfmt, SetMtime::MdtmWrite] {
            if self.set_mtime != SetMtime::Unknown && self.set_mtime != attempt {
                continue;
            }
            let cmd = match attempt {
                SetMtime::Mfmt => format!("MFMT {tv} {path}"),
                _ => format!("MDTM {tv} {path}"),
            };
            match self
                .stream
                .custom_command(cmd, &[Status::File, Status::RequestedFileActionOk])
            {
                Ok(_) => {
                    self.set_mtime = attempt;
                    return Ok(true);
                }
                Err(e) => {
                    let err = Error::ftp("setting the mtime of", Some(path), e);
                    let probing = self.set_mtime == SetMtime::Unknown;
                    match err.code {
                        Some(500 | 501 | 502 | 504) if probing => continue,
                        // A server without the two-argument MDTM reads the
                        // whole line as a path that does not exist.
                        Some(550) if probing && attempt == SetMtime::MdtmWrite => {}
                        Some(500 | 501 | 502 | 504) => {}
                        _ => return Err(err),
                    }
                }
            }
        }
        self.set_mtime = SetMtime::Unsupported;
        Ok(false)
    }

    /// Set a remote file's or directory's permission bits with
    /// `SITE CHMOD`. Returns `Ok(false)` when the server does not implement
    /// it (remembered for this connection, so it is asked once).
    pub fn chmod(&mut self, path: &str, mode: u32) -> Result<bool> {
        if self.chmod_unsupported {
            return Ok(false);
        }
        let cmd = format!("SITE CHMOD {:o} {path}", mode & 0o7777);
        match self
            .stream
            .custom_command(cmd, &[Status::CommandOk, Status::RequestedFileActionOk])
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = Error::ftp("setting the mode of", Some(path), e);
                match err.code {
                    Some(500 | 501 | 502 | 504) => {
                        self.chmod_unsupported = true;
                        Ok(false)
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// Create one directory.
    pub fn mkdir(&mut self, path: &str) -> Result<()> {
        self.stream
            .mkdir(path)
            .map_err(|e| Error::ftp("creating directory", Some(path), e))
    }

    /// Create a directory and its missing parents (`mkdir -p`).
    pub fn mkdir_all(&mut self, path: &str) -> Result<()> {
        let path = url::normalize(path);
        if path == "/" {
            return Ok(());
        }
        match self.stream.mkdir(&path) {
            Ok(()) => return Ok(()),
            Err(e) => {
                let err = Error::ftp("creating directory", Some(&path), e);
                if err.is_transient() {
                    return Err(err);
                }
            }
        }
        // Exists already, or a parent is missing.
        if self.is_dir(&path)? {
            return Ok(());
        }
        self.mkdir_all(url::parent(&path))?;
        match self.stream.mkdir(&path) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = Error::ftp("creating directory", Some(&path), e);
                if self.is_dir(&path)? {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    fn is_dir(&mut self, path: &str) -> Result<bool> {
        match self.stream.cwd(path) {
            Ok(()) => {
                let _ = self.stream.cwd("/");
                Ok(true)
            }
            Err(e) => {
                let err = Error::ftp("inspecting", Some(path), e);
                if err.is_transient() {
                    Err(err)
                } else {
                    Ok(false)
                }
            }
        }
    }

    /// Delete a file.
    pub fn remove_file(&mut self, path: &str) -> Result<()> {
        self.stream
            .rm(path)
            .map_err(|e| Error::ftp("deleting", Some(path), e))
    }

    /// Delete an empty directory.
    pub fn remove_dir(&mut self, path: &str) -> Result<()> {
        self.stream
            .rmdir(path)
            .map_err(|e| Error::ftp("removing directory", Some(path), e))
    }

    /// Delete a directory tree (or a file).
    pub fn remove_all(&mut self, path: &str) -> Result<()> {
        let path = url::normalize(path);
        let entries = match self.list(&path) {
            Ok(e) => e,
            Err(e) if e.code == Some(550) => return self.remove_file(&path),
            Err(e) => return Err(e),
        };
        for e in entries {
            let p = url::join(&path, &e.name);
            match e.kind {
                EntryKind::Dir => self.remove_all(&p)?,
                _ => self.remove_file(&p)?,
            }
        }
        self.remove_dir(&path)
    }

    /// Rename (RNFR/RNTO). Most servers replace an existing target.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.stream
            .rename(from, to)
            .map_err(|e| Error::ftp("renaming", Some(&format!("{from} to {to}")), e))
    }

    /// Stream `reader` into `remote` (STOR), starting at `offset` (REST) when
    /// non-zero. Returns the bytes sent. Memory stays bounded.
    pub fn upload_stream(
        &mut self,
        reader: &mut dyn Read,
        remote: &str,
        offset: u64,
    ) -> Result<u64> {
        if offset > 0 {
            self.stream
                .resume_transfer(offset as usize)
                .map_err(|e| Error::ftp("resuming", Some(remote), e))?;
        }
        let mut w = self
            .stream
            .put_with_stream(remote)
            .map_err(|e| Error::ftp("uploading", Some(remote), e))?;
        let n = copy(reader, &mut w, &mut self.moved).map_err(|e| match e {
            CopyError::Read(e) => {
                Error::new(ErrorKind::LocalIo, "reading", e.to_string()).path(remote)
            }
            CopyError::Write(e) => Error::io("uploading", remote, e),
        })?;
        w.finish()
            .map_err(|e| Error::ftp("uploading", Some(remote), e))?;
        Ok(n)
    }

    /// Read `len` bytes of `remote` starting at `offset` (REST + RETR, then
    /// ABOR once the range is in): a byte range without the whole file.
    pub fn read_range(&mut self, remote: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if offset > 0 {
            self.stream
                .resume_transfer(offset as usize)
                .map_err(|e| Error::ftp("resuming", Some(remote), e))?;
        }
        let mut r = self
            .stream
            .retr_as_stream(remote)
            .map_err(|e| Error::ftp("downloading", Some(remote), e))?;
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            match r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => {
                    got += k;
                    self.moved += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("downloading", remote, e)),
            }
        }
        if got < buf.len() {
            r.finish()
                .map_err(|e| Error::ftp("downloading", Some(remote), e))?;
            // The server may report success for a transfer cut on the way
            // (it wrote everything into its socket): only the file's size
            // tells a cut transfer, which another attempt fixes, from a
            // file that ends before the range.
            if let Ok(size) = self.size(remote)
                && size >= offset + len
            {
                return Err(Error::new(
                    ErrorKind::Transient,
                    "downloading",
                    format!(
                        "the transfer ended after {got} of {len} bytes at offset {offset} \
                         (the file has {size}): the connection was cut"
                    ),
                )
                .path(remote));
            }
            return Err(Error::new(
                ErrorKind::Permanent,
                "reading a range of",
                format!(
                    "the file ends {} bytes before the range does",
                    buf.len() - got
                ),
            )
            .path(remote));
        }
        // More may follow: stop the transfer. A server that answers ABOR
        // oddly leaves the session out of step, which the next command
        // reports as transient, and the pool replaces the connection.
        let mut probe = [0u8; 1];
        match r.read(&mut probe) {
            Ok(0) => r
                .finish()
                .map_err(|e| Error::ftp("downloading", Some(remote), e))?,
            _ => self
                .stream
                .abort(r)
                .map_err(|e| Error::ftp("aborting the download of", Some(remote), e))?,
        }
        Ok(buf)
    }

    /// Start downloading `remote` (RETR) as a stream.
    pub fn open_download(&mut self, remote: &str) -> Result<Download> {
        let s = self
            .stream
            .retr_as_stream(remote)
            .map_err(|e| Error::ftp("downloading", Some(remote), e))?;
        Ok(Download {
            inner: Box::new(s),
            path: remote.to_string(),
        })
    }

    /// Start uploading to `remote` (STOR) as a stream. For an atomic
    /// upload, write to [`temp_name`] and [`FtpClient::rename`] afterwards.
    pub fn open_upload(&mut self, remote: &str) -> Result<Upload> {
        let s = self
            .stream
            .put_with_stream(remote)
            .map_err(|e| Error::ftp("uploading", Some(remote), e))?;
        Ok(Upload {
            inner: Box::new(s),
            path: remote.to_string(),
        })
    }

    /// Upload bytes atomically (temporary name, SIZE check, rename). With
    /// `exclusive`, fail with [`ErrorKind::AlreadyExists`] when `remote`
    /// exists already (checked just before the rename: FTP has no atomic
    /// create-if-absent, so this is a best effort against a racing writer).
    ///
    /// Each call uploads to a temporary name of its own
    /// ([`attempt_temp_name`]): a server may still be writing the temporary
    /// file of an earlier, cut attempt, and that late write must never reach
    /// the file this call renames into place.
    pub fn put_bytes(&mut self, data: &[u8], remote: &str, exclusive: bool) -> Result<()> {
        self.put_bytes_via(data, remote, &attempt_temp_name(remote), exclusive)
    }

    /// [`FtpClient::put_bytes`] through the temporary name `tmp` (beside
    /// `remote`), so that a caller that retries knows which temporary files
    /// its failed attempts may have left.
    pub fn put_bytes_via(
        &mut self,
        data: &[u8],
        remote: &str,
        tmp: &str,
        exclusive: bool,
    ) -> Result<()> {
        self.upload_stream(&mut io::Cursor::new(data), tmp, 0)?;
        let got = self.size(tmp)?;
        if got != data.len() as u64 {
            return Err(Error::new(
                ErrorKind::Transient,
                "confirming upload of",
                format!("server has {got} bytes, expected {}", data.len()),
            )
            .path(remote));
        }
        if exclusive && self.size(remote).is_ok() {
            let _ = self.remove_file(tmp);
            return Err(
                Error::new(ErrorKind::AlreadyExists, "creating", "it exists already").path(remote),
            );
        }
        self.rename(tmp, remote)
    }

    /// Stream `remote` into `writer` (RETR), starting at `offset` (REST).
    pub fn download_stream(
        &mut self,
        remote: &str,
        writer: &mut dyn Write,
        offset: u64,
    ) -> Result<u64> {
        if offset > 0 {
            self.stream
                .resume_transfer(offset as usize)
                .map_err(|e| Error::ftp("resuming", Some(remote), e))?;
        }
        let mut r = self
            .stream
            .retr_as_stream(remote)
            .map_err(|e| Error::ftp("downloading", Some(remote), e))?;
        let n = copy(&mut r, writer, &mut self.moved).map_err(|e| match e {
            CopyError::Read(e) => Error::io("downloading", remote, e),
            CopyError::Write(e) => {
                Error::new(ErrorKind::LocalIo, "writing", e.to_string()).path(remote)
            }
        })?;
        r.finish()
            .map_err(|e| Error::ftp("downloading", Some(remote), e))?;
        Ok(n)
    }

    /// Download a whole file into memory, checked against its size (SIZE):
    /// a transfer that ends short is a transient error
    /// ([`Error::is_transient`], so a [`crate::Pool`] retries it), never
    /// bytes handed on as if they were the file. A server may report success
    /// for a transfer cut on the way, once it wrote everything into its
    /// socket. Without SIZE (a server that lacks it), the completion reply
    /// is all there is to go by.
    pub fn get_bytes(&mut self, remote: &str) -> Result<Vec<u8>> {
        let expect = match self.size(remote) {
            Ok(n) => Some(n),
            Err(e) if e.kind() == ErrorKind::Unsupported => None,
            Err(e) => return Err(e),
        };
        let mut v = Vec::with_capacity(expect.unwrap_or(0).min(1 << 30) as usize);
        self.download_stream(remote, &mut v, 0)?;
        match expect {
            Some(n) if n != v.len() as u64 => Err(Error::new(
                ErrorKind::Transient,
                "downloading",
                format!(
                    "got {} bytes, the server's SIZE said {n}: the transfer was cut",
                    v.len()
                ),
            )
            .path(remote)),
            _ => Ok(v),
        }
    }

    /// Data bytes this connection has sent and received so far (cut
    /// transfers included, up to where they were cut).
    pub(crate) fn data_bytes(&self) -> u64 {
        self.moved
    }

    /// Upload a local file atomically: to a temporary name beside the
    /// target (resuming a previous partial upload of it with REST when the
    /// server supports it), confirm its size with SIZE, rename into place,
    /// then set the remote mtime to the local one where the server allows.
    /// Returns the bytes sent (less than the file's size after a resume).
    pub fn put_file(&mut self, local: &Path, remote: &str) -> Result<u64> {
        let meta = fs::metadata(local).map_err(|e| Error::local("reading", local, e))?;
        let len = meta.len();
        let tmp = temp_name(remote);
        let mut offset = 0;
        // Resuming pays for itself only on big files: small ones skip the
        // extra round trip of asking for a partial upload's size.
        if self.features.rest_stream
            && len >= RESUME_MIN
            && let Ok(partial) = self.stream.size(&tmp)
            && (partial as u64) < len
        {
            offset = partial as u64;
        }
        let mut f = File::open(local).map_err(|e| Error::local("opening", local, e))?;
        if offset > 0 {
            use std::io::Seek;
            f.seek(io::SeekFrom::Start(offset))
                .map_err(|e| Error::local("reading", local, e))?;
        }
        self.upload_stream(&mut f, &tmp, offset)?;
        // A listing may lag behind an upload; SIZE on the file itself does not.
        let got = self.size(&tmp)?;
        if got != len {
            return Err(Error::new(
                ErrorKind::Transient,
                "confirming upload of",
                format!("server has {got} bytes, expected {len}"),
            )
            .path(remote));
        }
        self.rename(&tmp, remote)?;
        if let Ok(m) = meta.modified() {
            self.set_mtime(remote, m)?;
        }
        Ok(len - offset)
    }

    /// Download a remote file atomically: into a temporary file beside the
    /// target (resuming a partial one with REST), then rename it into place
    /// and set the local mtime to `mtime` (or the server's MDTM). Returns the
    /// bytes received (less than the file's size after a resume).
    pub fn get_file(
        &mut self,
        remote: &str,
        local: &Path,
        expect: Option<&RemoteEntry>,
    ) -> Result<u64> {
        let parent = local.parent().unwrap_or(Path::new("."));
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.bkftp-part"));
        let mut offset = 0;
        if self.features.rest_stream
            && let Ok(m) = fs::metadata(&tmp)
            && expect.is_some_and(|e| m.len() < e.size)
        {
            offset = m.len();
        }
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .append(offset > 0)
            .truncate(offset == 0)
            .open(&tmp)
            .map_err(|e| Error::local("creating", &tmp, e))?;
        let received = self.download_stream(remote, &mut f, offset)?;
        let n = received + offset;
        f.sync_all().map_err(|e| Error::local("writing", &tmp, e))?;
        drop(f);
        if let Some(e) = expect
            && e.kind == EntryKind::File
            && n != e.size
        {
            return Err(Error::new(
                ErrorKind::Transient,
                "downloading",
                format!("got {n} bytes, the listing said {}", e.size),
            )
            .path(remote));
        }
        fs::rename(&tmp, local).map_err(|e| Error::local("renaming into place", local, e))?;
        let mtime = match expect.and_then(|e| e.mtime.filter(|_| e.precision == Precision::Exact)) {
            Some(t) => Some(t),
            None => self.mtime(remote).ok(),
        };
        if let Some(t) = mtime {
            let _ = File::options()
                .write(true)
                .open(local)
                .and_then(|f| f.set_modified(t));
        }
        Ok(received)
    }

    /// Log out.
    pub fn quit(mut self) {
        let _ = self.stream.quit();
    }
}

/// The listing size at which a server is presumed to have cut the listing
/// short (pure-ftpd's default cap, applied silently to MLSD).
pub const LISTING_CAP: usize = 10_000;

fn check_cap(dir: &str, lines: usize) -> Result<()> {
    if lines == LISTING_CAP {
        return Err(Error::new(
            ErrorKind::Protocol,
            "listing",
            format!(
                "the server returned exactly {LISTING_CAP} entries: the listing is probably truncated \
                 (pure-ftpd caps listings; raise the cap with its -L option, or split the directory)"
            ),
        )
        .path(dir));
    }
    Ok(())
}

fn dir_entry(name: &str) -> RemoteEntry {
    RemoteEntry {
        name: name.to_string(),
        kind: EntryKind::Dir,
        size: 0,
        mtime: None,
        precision: Precision::Exact,
        mode: None,
        target: None,
    }
}

/// Peek at the first bytes the server sends: an FTP greeting starts with a
/// three-digit reply code. Nothing within `greet` is a timeout; anything
/// else (an SSH banner, an HTTP reply) is another protocol. Neither is
/// retried.
fn check_greeting(tcp: &TcpStream, url: &FtpUrl, greet: Duration) -> Result<()> {
    let mut buf = [0u8; 64];
    let n = match tcp.peek(&mut buf) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(no_greeting(url, greet));
        }
        Err(e) => return Err(Error::io("connecting to", &url.addr(), e)),
    };
    // n == 0: closed before greeting; suppaftp reports that (transient).
    let head = &buf[..n.min(3)];
    if head.iter().all(u8::is_ascii_digit) {
        return Ok(());
    }
    let line: String = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Err(Error::new(
        ErrorKind::NotFtp,
        "connecting",
        format!(
            "{} answered {line:?}, which is not an FTP greeting; is this an FTP server?",
            url.addr()
        ),
    ))
}

fn is_timeout(e: &suppaftp::FtpError) -> bool {
    matches!(e, suppaftp::FtpError::ConnectionError(io)
        if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

fn no_greeting(url: &FtpUrl, greet: Duration) -> Error {
    Error::new(
        ErrorKind::NotFtp,
        "connecting",
        format!(
            "no FTP greeting from {} within {}; is this an FTP server?",
            url.addr(),
            seconds(greet)
        ),
    )
    .timed_out()
}

/// "15 s", "0.3 s".
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn connect_error(e: suppaftp::FtpError, url: &FtpUrl) -> Error {
    let mut err = Error::ftp("connecting to", Some(&url.addr()), e);
    if err.code == Some(421) {
        err.kind = ErrorKind::TooManyConnections;
    }
    err
}

/// Files smaller than this are uploaded whole instead of resumed.
pub const RESUME_MIN: u64 = 1 << 20;

/// The temporary name an upload goes to before its rename.
pub fn temp_name(remote: &str) -> String {
    let dir = url::parent(remote);
    let name = url::file_name(remote);
    url::join(dir, &format!(".{name}.bkftp-part"))
}

/// A temporary name for one upload attempt of `remote`, unique within this
/// process and across processes: `.<name>.<pid>-<n>.bkftp-part`.
pub fn attempt_temp_name(remote: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = url::parent(remote);
    let name = url::file_name(remote);
    url::join(
        dir,
        &format!(".{name}.{}-{n}.bkftp-part", std::process::id()),
    )
}

/// A transfer's data stream that can be completed (its final reply read).
trait Finish: Send {
    fn finish_boxed(self: Box<Self>) -> suppaftp::FtpResult<()>;
}

impl<T: suppaftp::TlsStream + Send + 'static> Finish for suppaftp::TransferStream<T> {
    fn finish_boxed(self: Box<Self>) -> suppaftp::FtpResult<()> {
        (*self).finish()
    }
}

trait ReadFinish: Read + Finish {
    fn into_finish(self: Box<Self>) -> Box<dyn Finish>;
}
impl<T: Read + Finish + 'static> ReadFinish for T {
    fn into_finish(self: Box<Self>) -> Box<dyn Finish> {
        self
    }
}

trait WriteFinish: Write + Finish {
    fn into_finish(self: Box<Self>) -> Box<dyn Finish>;
}
impl<T: Write + Finish + 'static> WriteFinish for T {
    fn into_finish(self: Box<Self>) -> Box<dyn Finish> {
        self
    }
}

/// A download in progress: read it, then call [`Download::finish`]. While it
/// lives, its connection must not be used for anything else.
pub struct Download {
    inner: Box<dyn ReadFinish>,
    path: String,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Download({})", self.path)
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Download {
    /// Read the server's completion reply (a transfer the server aborted
    /// is an error here even when the bytes looked complete).
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        self.inner
            .into_finish()
            .finish_boxed()
            .map_err(|e| Error::ftp("downloading", Some(&path), e))
    }
}

/// An upload in progress: write it, then call [`Upload::finish`].
pub struct Upload {
    inner: Box<dyn WriteFinish>,
    path: String,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upload({})", self.path)
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Upload {
    /// Close the data connection and read the server's completion reply.
    pub fn finish(mut self) -> Result<()> {
        let path = self.path;
        self.inner
            .flush()
            .map_err(|e| Error::io("uploading", &path, e))?;
        self.inner
            .into_finish()
            .finish_boxed()
            .map_err(|e| Error::ftp("uploading", Some(&path), e))
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy `r` to `w`, adding the bytes to `moved` as they go.
fn copy(
    r: &mut dyn Read,
    w: &mut dyn Write,
    moved: &mut u64,
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..k]).map_err(CopyError::Write)?;
        n += k as u64;
        *moved += k as u64;
    }
    w.flush().map_err(CopyError::Write)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;
    use crate::pool::Pool;

    /// A loopback port that accepts every connection, writes `banner` and
    /// then holds the connection open without another word.
    fn silent_port(banner: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let _ = s.write_all(banner);
                held.push(s);
            }
        });
        port
    }

    fn url(port: u16) -> FtpUrl {
        let mut u = FtpUrl::parse(&format!("ftp://u@127.0.0.1:{port}/r")).unwrap();
        u.set_password("pw");
        u
    }

    #[test]
    fn a_port_that_never_greets_fails_within_the_greeting_timeout() {
        let port = silent_port(b"");
        let cfg = FtpConfig::default().greeting_timeout(Duration::from_millis(300));
        let t = Instant::now();
        let e = FtpClient::connect(&url(port), &cfg).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(e.kind(), ErrorKind::NotFtp, "{e}");
        assert!(!e.is_transient());
        assert!(
            e.to_string().contains(&format!(
                "no FTP greeting from 127.0.0.1:{port} within 0.3 s; is this an FTP server?"
            )),
            "{e}"
        );
        assert!(e.is_timeout(), "{e}");
        assert_eq!(seconds(FtpConfig::default().greeting_timeout), "15 s");
    }

    #[test]
    fn a_server_that_greets_and_then_stays_silent_times_out_at_login() {
        let port = silent_port(b"220 slow server\r\n");
        let cfg = FtpConfig::default().timeouts(Duration::from_secs(5), Duration::from_millis(300));
        let t = Instant::now();
        let e = FtpClient::connect(&url(port), &cfg).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(e.is_timeout(), "{e}");
        assert_eq!(e.op(), "logging in to", "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn no_greeting_is_not_retried_by_the_pool() {
        let port = silent_port(b"");
        let cfg = FtpConfig::default()
            .greeting_timeout(Duration::from_millis(200))
            .retries(5, Duration::from_millis(10));
        let pool = Pool::new(url(port), cfg);
        let t = Instant::now();
        let e = pool.run(true, |c: &mut FtpClient| c.noop()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFtp, "{e}");
        assert_eq!(pool.connects(), 1, "the connect was retried");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn another_protocol_fails_at_once_naming_what_it_said() {
        for banner in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        ] {
            let first = String::from_utf8_lossy(banner)
                .lines()
                .next()
                .unwrap()
                .to_string();
            let port = silent_port(banner);
            // The default 15 s timeout: the answer must not wait for it.
            let pool = Pool::new(url(port), FtpConfig::default());
            let t = Instant::now();
            let e = pool.run(true, |c: &mut FtpClient| c.noop()).unwrap_err();
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
            assert_eq!(e.kind(), ErrorKind::NotFtp, "{e}");
            assert_eq!(pool.connects(), 1, "retried: {e}");
            assert!(!e.is_timeout(), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&first), "{msg}");
            assert!(
                msg.contains("is not an FTP greeting; is this an FTP server?"),
                "{msg}"
            );
        }
    }

    mod cut_transfers {
        use bk_testkit::{CutProxy, Cuts, ServerKind, ServerOptions, TestServer};

        use super::*;

        fn client_via(s: &TestServer, cuts: Cuts) -> (FtpClient, CutProxy) {
            let proxy = CutProxy::start(&s.addr(), cuts).unwrap();
            let mut u =
                FtpUrl::parse(&format!("ftp://{}@127.0.0.1:{}/", s.user(), proxy.port())).unwrap();
            u.set_password(s.password());
            (
                FtpClient::connect(&u, &FtpConfig::default()).unwrap(),
                proxy,
            )
        }

        fn file(s: &TestServer, name: &str, len: usize) -> (String, Vec<u8>) {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
            let remote = format!("{}/{name}", s.remote_base().trim_end_matches('/'));
            std::fs::write(s.local_path(&remote), &data).unwrap();
            (remote, data)
        }

        #[test]
        fn a_download_cut_short_is_a_transient_error_not_the_file() {
            let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
            let (remote, data) = file(&s, "index-file", 5000);
            // The server completes the transfer (226): without a size
            // check the short stream looks like the whole file.
            let (mut c, proxy) = client_via(&s, Cuts::data("RETR", 2, 300));
            let mut v = Vec::new();
            c.download_stream(&remote, &mut v, 0).unwrap();
            assert_eq!(v.len(), 300, "the proxy cuts after 300 bytes");
            let e = c.get_bytes(&remote).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
            assert!(
                e.to_string()
                    .contains("got 300 bytes, the server's SIZE said 5000: the transfer was cut"),
                "{e}"
            );
            assert_eq!(proxy.data_cuts(), 2);
            assert!(c.get_bytes(&remote).unwrap() == data, "an uncut download");
        }

        #[test]
        fn a_range_cut_short_is_transient_and_a_range_past_the_end_is_not() {
            let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
            let (remote, data) = file(&s, "pack", 50_000);
            let (mut c, _proxy) = client_via(&s, Cuts::data("RETR", 1, 1000));
            let e = c.read_range(&remote, 10_000, 20_000).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
            assert!(
                e.to_string()
                    .contains("the transfer ended after 1000 of 20000 bytes"),
                "{e}"
            );
            let got = c.read_range(&remote, 10_000, 20_000).unwrap();
            assert!(got[..] == data[10_000..30_000]);
            // (A fresh connection: the ABOR above leaves some sessions out of step.)
            let (mut c, _proxy) = client_via(&s, Cuts::default());
            let e = c.read_range(&remote, 40_000, 20_000).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Permanent, "{e}");
            assert!(
                e.to_string()
                    .contains("the file ends 10000 bytes before the range does"),
                "{e}"
            );
        }

        #[test]
        fn a_short_upload_is_caught_by_the_size_check() {
            let s = TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap();
            let remote = format!("{}/up.bin", s.remote_base().trim_end_matches('/'));
            let data: Vec<u8> = (0..40_000u32).map(|i| (i % 249) as u8).collect();
            let (mut c, proxy) = client_via(&s, Cuts::data("STOR", 1, 2000));
            let e = c.put_bytes(&data, &remote, true).unwrap_err();
            assert_eq!(proxy.data_cuts(), 1);
            assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
            assert!(
                e.to_string()
                    .contains("server has 2000 bytes, expected 40000"),
                "{e}"
            );
            assert!(
                !s.local_path(&remote).exists(),
                "a short file was renamed into place"
            );
            c.put_bytes(&data, &remote, true).unwrap();
            assert!(std::fs::read(s.local_path(&remote)).unwrap() == data);
        }
    }
}
