// tidy: long file: the test kit's public surface (servers, trees, comparisons) in one place for test authors
//! Real FTP servers for bk's tests, started on `127.0.0.1` only.
//!
//! [`TestServer::start`] starts one server in a fresh temporary directory and
//! returns once the control port answers with a `220` greeting. Dropping the
//! [`TestServer`] stops the server and deletes the directory.
//!
//! | [`ServerKind`] | what runs | login | FTPS |
//! |---|---|---|---|
//! | `Embedded` | libunftp + unftp-sbe-fs on a thread of the test process | user + password (wrong password → 530) | yes |
//! | `PureFtpd` | `/usr/sbin/pure-ftpd`, virtual user (puredb) | user + password | yes |
//! | `Vsftpd` | `vsftpd`, anonymous only, writable under `/upload` | `anonymous` + any password | yes (`require_ssl_reuse` is an option) |
//! | `Proftpd` | `proftpd -n`, virtual user (AuthUserFile) | user + password | no ([`StartError::TlsUnsupported`]) |
//!
//! ```no_run
//! use bk_testkit::{servers_under_test, ServerOptions, TestServer};
//!
//! for kind in servers_under_test() {
//!     let server = TestServer::start(kind, ServerOptions::default()).unwrap();
//!     // Prepare files directly on disk ...
//!     std::fs::write(server.local_path(&format!("{}/hello.txt", server.remote_base())), b"hi").unwrap();
//!     // ... and point the FTP client at host()/port()/user()/password(),
//!     // writing only below remote_base(). With `tls: true`, trust ca_cert().
//!     println!("{kind}: ftp://{}:{}{}", server.host(), server.port(), server.remote_base());
//! }
//! ```
//!
//! Use [`TestServer::user`]/[`TestServer::password`] rather than the values
//! passed in [`ServerOptions`]: vsftpd only does anonymous logins, so it
//! reports `anonymous` (and [`TestServer::checks_password`] is `false`).
//!
//! # Files and ownership
//! [`TestServer::root`] is the directory the client sees as `/`;
//! [`TestServer::local_path`] maps an FTP path to the local file. The
//! external daemons run their sessions as `nobody` (pure-ftpd, proftpd) or
//! `daemon` (vsftpd), so a file or directory that a test (running as root)
//! creates there is not writable over FTP until the test calls
//! [`TestServer::hand_over`]. The external daemons need root: they chroot
//! and switch users.
//!
//! # Environment variables
//! - `BK_FTP_SERVERS`: comma list of `embedded`, `pure-ftpd`, `vsftpd`,
//!   `proftpd` (or `all`), read by [`servers_under_test`]. Default:
//!   `embedded`. A listed server that is not installed makes
//!   [`servers_under_test`] panic, so CI cannot silently skip it.
//! - `BK_FTP_SERVERS_ROOT`: a directory into which the Debian packages were
//!   unpacked with `dpkg -x` (see `install-ftp-servers.sh` next to this
//!   crate's `Cargo.toml`). Daemons are looked up on `PATH`, in `/usr/sbin`
//!   and `/usr/local/sbin` first, then in `$BK_FTP_SERVERS_ROOT/usr/sbin`;
//!   a binary found there gets `LD_LIBRARY_PATH` pointing to the
//!   libraries unpacked beside it.
//! - `BK_TESTKIT_KEEP_TMP=1`: keep each server's temporary directory
//!   (configs, logs, root) after the server stops, and print its path.
//!
//! # Ports
//! Control ports are ephemeral ports picked by the kernel (with a retry when
//! another process grabs the port first; each server greets with a unique
//! banner, so a foreign server on the same port is detected). Passive port
//! ranges are blocks of 25 ports below the kernel's ephemeral range
//! (20000..32000): the block depends on the process id and on a process-wide
//! counter, so servers started by parallel tests, and by test processes of
//! several crates, do not share ranges.
//!
//! # Server quirks worth knowing in tests
//! - pure-ftpd answers a wrong password only after a built-in delay of
//!   about 3–5 s (no option turns it off; correct logins are fast because the
//!   test user's hash is SHA-512 crypt, not pure-pw's argon2). It splits
//!   `LIST`/`NLST` arguments at spaces (ls options, globs), so list a
//!   directory whose name has a space by `CWD` + `LIST` without argument.
//!   Listings are capped at 10,000 entries unless `-L` is passed through
//!   [`ServerOptions::extra_config`].
//! - vsftpd: anonymous only, writable below `/upload`; no MLSD/MLST/MFMT
//!   (`MDTM <time> <path>` sets mtimes). With `require_ssl_reuse=YES` (its
//!   default, and ours), a TLS 1.3 client fails on the third upload in a row
//!   with `522 SSL connection failed: session reuse required` (suppaftp shows
//!   it as status 0): use TLS 1.2, or set
//!   [`ServerOptions::vsftpd_require_ssl_reuse`] to `false`.
//! - proftpd: no FTPS (mod_tls is not in `proftpd-core`).
//! - embedded (libunftp): each data transfer takes ~40 ms; no MFMT.
//!
//! # Installing the external servers (CI)
//! ```sh
//! bash crates/bk-testkit/install-ftp-servers.sh /opt/bk-ftp-servers
//! BK_FTP_SERVERS_ROOT=/opt/bk-ftp-servers BK_FTP_SERVERS=all cargo test
//! ```
//!
//! # Cut connections
//! [`CutProxy`] sits between a client and a server and cuts the control or
//! data connections a [`Cuts`] plan names, for tests of retries.

mod cut;
mod embedded;
mod external;

pub use cut::{CutProxy, Cuts};

use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};
use std::process::Child;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The address every server listens on.
pub const HOST: &str = "127.0.0.1";

/// Which FTP server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// libunftp + unftp-sbe-fs inside the test process.
    Embedded,
    /// pure-ftpd (Debian package `pure-ftpd`) as a child process.
    PureFtpd,
    /// vsftpd (Debian package `vsftpd`) as a child process; anonymous only.
    Vsftpd,
    /// proftpd (Debian package `proftpd-core`) as a child process; no FTPS.
    Proftpd,
}

impl ServerKind {
    /// Every kind, in a stable order.
    pub const ALL: [ServerKind; 4] = [
        ServerKind::Embedded,
        ServerKind::PureFtpd,
        ServerKind::Vsftpd,
        ServerKind::Proftpd,
    ];

    /// The name used in `BK_FTP_SERVERS` (`embedded`, `pure-ftpd`, `vsftpd`, `proftpd`).
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Embedded => "embedded",
            ServerKind::PureFtpd => "pure-ftpd",
            ServerKind::Vsftpd => "vsftpd",
            ServerKind::Proftpd => "proftpd",
        }
    }

    /// Whether [`ServerOptions::tls`] can be used with this kind.
    pub fn supports_tls(self) -> bool {
        !matches!(self, ServerKind::Proftpd)
    }

    /// Whether the server checks the password (false: anonymous logins only).
    pub fn checks_password(self) -> bool {
        !matches!(self, ServerKind::Vsftpd)
    }

    /// Whether the server can be started here (the embedded one always can).
    pub fn is_installed(self) -> bool {
        self == ServerKind::Embedded || external::locate(self).is_some()
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "embedded" | "libunftp" | "unftp" => Ok(ServerKind::Embedded),
            "pure-ftpd" | "pureftpd" | "pure" => Ok(ServerKind::PureFtpd),
            "vsftpd" => Ok(ServerKind::Vsftpd),
            "proftpd" => Ok(ServerKind::Proftpd),
            other => Err(format!(
                "unknown FTP server {other:?} (expected embedded, pure-ftpd, vsftpd or proftpd)"
            )),
        }
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Offer explicit FTPS (`AUTH TLS`) with a fresh self-signed certificate
    /// for `localhost`/`127.0.0.1` (see [`TestServer::ca_cert`]). Plain FTP
    /// stays allowed on pure-ftpd (`-Y 1`) and the embedded server; vsftpd
    /// then requires TLS for logins and data.
    pub tls: bool,
    /// The login name (ignored by vsftpd, which only does `anonymous`).
    pub user: String,
    /// The password.
    pub password: String,
    /// vsftpd's `require_ssl_reuse` (default `true`, vsftpd's own default):
    /// data connections must resume the control connection's TLS session.
    /// A TLS 1.3 rustls client fails this from the 2nd data connection on;
    /// clients must use TLS 1.2 against such a server, or set this to `false`.
    pub vsftpd_require_ssl_reuse: bool,
    /// Passive port range; `None` picks a block that no other server of this
    /// process (nor, very likely, of another test process) uses.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// The address announced in PASV replies instead of the one the server
    /// listens on (embedded and pure-ftpd): e.g. `127.0.0.2`, where nothing
    /// listens, to test clients that must use the control connection's
    /// address when a server announces an unroutable one.
    pub passive_address: Option<std::net::Ipv4Addr>,
    /// Extra command-line arguments (pure-ftpd, e.g. `-L 20000:8`) or extra
    /// configuration lines (vsftpd, proftpd). Ignored by the embedded server.
    pub extra_config: Vec<String>,
    /// How long to wait for the greeting before giving up.
    pub startup_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: false,
            user: "bk".to_owned(),
            password: "bk-secret-pw".to_owned(),
            vsftpd_require_ssl_reuse: true,
            passive_ports: None,
            passive_address: None,
            extra_config: Vec::new(),
            startup_timeout: Duration::from_secs(20),
        }
    }
}

impl ServerOptions {
    /// The defaults with FTPS switched on.
    pub fn tls() -> Self {
        ServerOptions {
            tls: true,
            ..ServerOptions::default()
        }
    }
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The daemon binary (or a helper it needs) was not found.
    #[error(
        "FTP server {0} is not installed (looked on PATH, in /usr/sbin and in $BK_FTP_SERVERS_ROOT/usr/sbin; \
         run crates/bk-testkit/install-ftp-servers.sh DIR and set BK_FTP_SERVERS_ROOT=DIR)"
    )]
    NotInstalled(ServerKind),
    /// FTPS was requested from a server kind that cannot do it here.
    #[error("FTP server {0} does not support FTPS in bk-testkit")]
    TlsUnsupported(ServerKind),
    /// Preparing the directory, the config or the certificate failed.
    #[error("preparing {kind} failed: {what}: {source}")]
    Io {
        /// The server kind.
        kind: ServerKind,
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server did not come up (it exited, or did not greet in time).
    #[error("{kind} did not start: {message}")]
    Failed {
        /// The server kind.
        kind: ServerKind,
        /// What happened, with the server's log output where there is one.
        message: String,
    },
}

/// Servers chosen by the env var `BK_FTP_SERVERS` (comma list of `embedded`,
/// `pure-ftpd`, `vsftpd`, `proftpd`, or `all`; default `embedded`).
///
/// # Panics
/// When a name is unknown, or a listed server is not installed: CI must not
/// silently skip a server it was asked to test.
pub fn servers_under_test() -> Vec<ServerKind> {
    let spec = std::env::var("BK_FTP_SERVERS").unwrap_or_default();
    let spec = if spec.trim().is_empty() {
        "embedded".to_owned()
    } else {
        spec
    };
    let mut kinds = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed: Vec<ServerKind> = if item.eq_ignore_ascii_case("all") {
            ServerKind::ALL.to_vec()
        } else {
            match item.parse() {
                Ok(kind) => vec![kind],
                Err(e) => panic!("BK_FTP_SERVERS={spec:?}: {e}"),
            }
        };
        for kind in parsed {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    for &kind in &kinds {
        assert!(
            kind.is_installed(),
            "BK_FTP_SERVERS={spec:?} asks for {kind}, but {}",
            StartError::NotInstalled(kind)
        );
    }
    kinds
}

/// How a running server is stopped.
enum Handle {
    Embedded(embedded::Handle),
    Child(Child),
    Stopped,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handle::Embedded(_) => f.write_str("Embedded"),
            Handle::Child(c) => write!(f, "Child(pid {})", c.id()),
            Handle::Stopped => f.write_str("Stopped"),
        }
    }
}

/// A running FTP server; dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct TestServer {
    kind: ServerKind,
    port: u16,
    user: String,
    password: String,
    root: PathBuf,
    remote_base: String,
    ca_cert: Option<PathBuf>,
    log_file: Option<PathBuf>,
    owner: Option<(u32, u32)>,
    handle: Handle,
    // Last field: dropped after the server is stopped.
    dir: Option<tempfile::TempDir>,
}

/// What a starter hands back to [`TestServer::start`].
struct Started {
    port: u16,
    handle: Handle,
}

/// Everything the starters need that is common to all kinds.
struct Setup<'a> {
    kind: ServerKind,
    opts: &'a ServerOptions,
    dir: PathBuf,
    passive: RangeInclusive<u16>,
    cert: Option<CertFiles>,
}

#[derive(Debug, Clone)]
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl TestServer {
    /// Starts a server of `kind` and waits until it greets.
    pub fn start(kind: ServerKind, opts: ServerOptions) -> Result<TestServer, StartError> {
        if opts.tls && !kind.supports_tls() {
            return Err(StartError::TlsUnsupported(kind));
        }
        let daemon = if kind == ServerKind::Embedded {
            None
        } else {
            Some(external::locate(kind).ok_or(StartError::NotInstalled(kind))?)
        };
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |source| StartError::Io {
                kind,
                what: what.clone(),
                source,
            }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("bk-testkit-{}-", kind.name()))
            .tempdir()
            .map_err(io_err("creating the temporary directory"))?;
        tmp.disable_cleanup(
            std::env::var_os("BK_TESTKIT_KEEP_TMP").is_some_and(|v| !v.is_empty() && v != "0"),
        );
        // Daemons switch to an unprivileged user that must reach the root.
        set_mode(tmp.path(), 0o755).map_err(io_err("chmod of the temporary directory"))?;
        let cert = if opts.tls {
            Some(write_cert(tmp.path()).map_err(io_err("writing the TLS certificate"))?)
        } else {
            None
        };
        let setup = Setup {
            kind,
            opts: &opts,
            dir: tmp.path().to_owned(),
            passive: opts.passive_ports.clone().unwrap_or_else(passive_range),
            cert: cert.clone(),
        };
        let (layout, started) = match &daemon {
            None => embedded::start(&setup)?,
            Some(daemon) => external::start(&setup, daemon)?,
        };
        Ok(TestServer {
            kind,
            port: started.port,
            user: layout.user,
            password: opts.password.clone(),
            root: layout.root,
            remote_base: layout.remote_base,
            ca_cert: cert.map(|c| c.cert),
            log_file: layout.log_file,
            owner: layout.owner,
            handle: started.handle,
            dir: Some(tmp),
        })
    }

    /// The server's kind.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The control port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    /// The login name to use (`anonymous` for vsftpd).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password to use (any password works for vsftpd).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether a wrong password is refused (with 530).
    pub fn checks_password(&self) -> bool {
        self.kind.checks_password()
    }

    /// The local directory the client sees as `/` after logging in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The FTP directory below which the client may write: `/`, or `/upload`
    /// for vsftpd (whose anonymous root itself must not be writable).
    pub fn remote_base(&self) -> &str {
        &self.remote_base
    }

    /// Maps an FTP path (absolute, or relative to `/`) to the local file.
    /// `..` cannot leave [`TestServer::root`].
    pub fn local_path(&self, remote: &str) -> PathBuf {
        let mut parts: Vec<&str> = Vec::new();
        for part in remote.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        let mut path = self.root.clone();
        path.extend(parts);
        path
    }

    /// The PEM certificate the server presents (self-signed, for
    /// `localhost` and `127.0.0.1`, not a CA) when started with `tls`; add it
    /// to the client's trust roots.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// Whether the server offers FTPS.
    pub fn tls(&self) -> bool {
        self.ca_cert.is_some()
    }

    /// The server's log so far (external daemons: their log file and
    /// stderr), for failure messages. Empty for the embedded server.
    pub fn log(&self) -> String {
        self.log_file.as_deref().map(read_lossy).unwrap_or_default()
    }

    /// Makes everything below the local directory of [`TestServer::remote_base`]
    /// (not that directory itself) writable for the server's session user: as
    /// root it is chowned to that user (`nobody`, or `daemon` for vsftpd),
    /// otherwise it is made world-writable. Call it after creating files or
    /// directories locally that the client must change or write into. A no-op
    /// for the embedded server, which runs as the test's own user.
    pub fn hand_over(&self) -> io::Result<()> {
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        let base = self.local_path(&self.remote_base);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_root = unsafe { libc::geteuid() } == 0;
        let mut stack = vec![base];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                let ft = entry.file_type()?;
                if as_root {
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
                } else if !ft.is_symlink() {
                    set_mode(&path, if ft.is_dir() { 0o777 } else { 0o666 })?;
                }
                if ft.is_dir() {
                    stack.push(path);
                }
            }
        }
        Ok(())
    }

    /// Stops the server now (also done by `Drop`).
    pub fn stop(&mut self) {
        match std::mem::replace(&mut self.handle, Handle::Stopped) {
            Handle::Embedded(h) => h.stop(),
            Handle::Child(child) => external::stop(child),
            Handle::Stopped => {}
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            drop(dir);
            if path.exists() {
                eprintln!(
                    "bk-testkit: kept {} ({}) in {}",
                    self.kind,
                    self.addr(),
                    path.display()
                );
            }
        }
    }
}

/// The parts of a [`TestServer`] that depend on the kind.
struct Layout {
    user: String,
    root: PathBuf,
    remote_base: String,
    log_file: Option<PathBuf>,
    owner: Option<(u32, u32)>,
}

// ---------------------------------------------------------------------------
// Ports

const PASV_FIRST: u32 = 20_000;
const PASV_SLOT: u32 = 200;
const PASV_SLOTS: u32 = 60; // 20000..32000, below Linux's ephemeral range (32768..)
const PASV_BLOCK: u32 = 25;

static NEXT_PASV_BLOCK: AtomicU32 = AtomicU32::new(0);
static NEXT_NONCE: AtomicU32 = AtomicU32::new(0);

/// A passive port range for one server: the process's slot (by pid) and the
/// next block in it (process-wide counter).
fn passive_range() -> RangeInclusive<u16> {
    let block = NEXT_PASV_BLOCK.fetch_add(1, Ordering::Relaxed) % (PASV_SLOT / PASV_BLOCK);
    let first = PASV_FIRST + (std::process::id() % PASV_SLOTS) * PASV_SLOT + block * PASV_BLOCK;
    let last = first + PASV_BLOCK - 1;
    u16::try_from(first).expect("port fits u16")..=u16::try_from(last).expect("port fits u16")
}

/// A currently free TCP port on 127.0.0.1 (it may be taken again before use).
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A greeting that identifies one server start.
fn nonce(kind: ServerKind, port: u16) -> String {
    format!(
        "bk-testkit {} {}-{}-{port}",
        kind.name(),
        std::process::id(),
        NEXT_NONCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Why waiting for the greeting ended without success.
enum NotReady {
    /// The server stopped; the message says why.
    Exited(String),
    /// Another server answers on the port: pick another port.
    PortTaken,
    /// No greeting in time.
    Timeout(String),
}

/// Polls `port` until a greeting containing `nonce` arrives, `alive` reports
/// that the server is gone, or `timeout` passes.
fn wait_for_greeting(
    port: u16,
    nonce: &str,
    timeout: Duration,
    alive: &mut dyn FnMut() -> Result<(), String>,
) -> Result<(), NotReady> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    let mut last: String;
    loop {
        alive().map_err(NotReady::Exited)?;
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => match read_greeting(stream) {
                Ok(text) if text.contains(nonce) => return Ok(()),
                Ok(text) if text.starts_with("220") => {
                    // Give our server a moment to fail its bind, then report.
                    std::thread::sleep(Duration::from_millis(200));
                    alive().map_err(NotReady::Exited)?;
                    return Err(NotReady::PortTaken);
                }
                Ok(text) => last = format!("unexpected greeting {text:?}"),
                Err(e) => last = format!("reading the greeting: {e}"),
            },
            Err(e) => last = format!("connecting: {e}"),
        }
        if Instant::now() >= deadline {
            return Err(NotReady::Timeout(last));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a (possibly multi-line) reply and sends QUIT.
fn read_greeting(stream: TcpStream) -> io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        text.push_str(&line);
        let b = line.as_bytes();
        if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
            break;
        }
    }
    if text.starts_with("220") {
        let _ = writer.write_all(b"QUIT\r\n");
    }
    Ok(text)
}

// ---------------------------------------------------------------------------
// Helpers

/// A self-signed end-entity certificate (not a CA: webpki rejects those as
/// server certificates) for `localhost` and `127.0.0.1`, as PEM files.
fn write_cert(dir: &Path) -> io::Result<CertFiles> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let other = |e: rcgen::Error| io::Error::other(e.to_string());
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(other)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(other)?;
    let cert = params.self_signed(&key).map_err(other)?;
    let files = CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert.pem())?;
    std::fs::write(&files.key, key.serialize_pem())?;
    set_mode(&files.key, 0o600)?;
    Ok(files)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// `path` without `..` or other surprises, as needed in daemon configs.
fn plain_path(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path
            .to_string_lossy()
            .chars()
            .any(|c| c.is_whitespace() || c == '"')
}

/// Joins `extra` in front of an existing `PATH`-like variable.
fn prepend_path_var(name: &str, extra: &[PathBuf]) -> OsString {
    let mut parts: Vec<PathBuf> = extra.to_vec();
    if let Some(old) = std::env::var_os(name) {
        parts.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(parts).unwrap_or_default()
}
