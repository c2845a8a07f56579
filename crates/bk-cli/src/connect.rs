//! From the global flags to open locations: the repository, a dataset, a
//! restore target, each with its secret (FTP password from
//! `BK_FTP_PASSWORD`, `--password-file` or a prompt). bk-core parses the
//! locations and picks the connectors; this module only gathers secrets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bk_core::Repository;
use bk_core::location::{FtpOptions, Location, Login, Role};
use clap::Args;

/// Flags every command takes: where the repository is, and how to reach FTP
/// servers.
#[derive(Args, Debug)]
pub struct Global {
    /// Repository: a local directory, or ftp://user@host[:port]/path or
    /// ftps://… (password from BK_FTP_PASSWORD or --password-file).
    #[arg(long, short = 'r', env = "BK_REPO", global = true, value_name = "REPO")]
    pub repo: Option<PathBuf>,
    /// File holding the FTP password (must not be readable by others).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// FTPS: trust this CA or server certificate (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    pub ftp_ca: Option<PathBuf>,
    /// FTPS: accept any server certificate (self-signed servers; the server
    /// is then not authenticated).
    #[arg(long, global = true)]
    pub ftp_insecure: bool,
    /// FTPS: offer TLS 1.2 only (vsftpd with require_ssl_reuse=YES).
    #[arg(long, global = true)]
    pub ftp_tls12: bool,
    /// Parallel FTP connections.
    #[arg(long, global = true, default_value_t = 4)]
    pub ftp_connections: usize,
    /// Draw no progress bar on the terminal (warnings, errors and the
    /// summary line are still printed).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

impl Global {
    /// FTP settings from the flags.
    pub fn ftp_options(&self) -> FtpOptions {
        // Undocumented on purpose: lets the tests see a port that never
        // greets fail without waiting the default 15 s.
        let greeting = std::env::var("BK_FTP_GREETING_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        FtpOptions::default()
            .connections(self.ftp_connections)
            .accept_invalid_certs(self.ftp_insecure)
            .tls12_only(self.ftp_tls12)
            .ca_file(self.ftp_ca.clone())
            .greeting_timeout(greeting)
    }

    /// A location the user typed, with its password attached.
    pub fn location(&self, s: &Path, role: Role) -> Result<Location> {
        let mut loc = Location::parse(&s.to_string_lossy(), role, &self.ftp_options())?;
        if !loc.takes_password() {
            return Ok(loc);
        }
        if let Some(pw) = self.ftp_password()? {
            loc.set_password(pw);
            return Ok(loc);
        }
        match loc.login() {
            Login::None => {}
            Login::PasswordInUrl => eprintln!(
                "bk: warning: the FTP password was given inside the URL, where other users can see it in the process list; use BK_FTP_PASSWORD or --password-file"
            ),
            Login::Password { account } => match prompt_password(&account)? {
                Some(pw) => loc.set_password(pw),
                None => bail!(
                    "no password for {loc}: set BK_FTP_PASSWORD, pass --password-file FILE, or run bk \
                     on a terminal to be asked for it"
                ),
            },
            _ => {}
        }
        Ok(loc)
    }

    /// The repository's location (`--repo` or `BK_REPO`).
    pub fn repo_location(&self) -> Result<Location> {
        let Some(p) = self.repo.as_deref() else {
            bail!("no repository given: pass --repo REPO or set BK_REPO");
        };
        self.location(p, Role::Repository)
    }

    /// Open the existing repository.
    pub fn open(&self) -> Result<Repository> {
        Ok(self.repo_location()?.open()?)
    }

    /// Open the repository, creating it when there is none.
    pub fn open_or_init(&self) -> Result<Repository> {
        Ok(self.repo_location()?.open_or_init()?)
    }

    /// The FTP password: BK_FTP_PASSWORD, or --password-file (refused when
    /// others can read it).
    fn ftp_password(&self) -> Result<Option<String>> {
        if let Some(f) = &self.password_file {
            return Ok(Some(read_password_file(f)?));
        }
        Ok(std::env::var("BK_FTP_PASSWORD").ok())
    }
}

/// Asks for the password of `account` (`user@host:port`) on the terminal,
/// without echo, when standard input is one; `None` otherwise. Asked once
/// per account.
fn prompt_password(account: &str) -> Result<Option<String>> {
    use std::io::{BufRead, IsTerminal};
    static ASKED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, pw)) = ASKED
        .lock()
        .ok()
        .and_then(|a| a.iter().find(|(k, _)| k == account).cloned())
    {
        return Ok(Some(pw));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0, a terminal.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &raw mut old) } != 0 {
        return Ok(None);
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // Echo off before the prompt shows, so nothing typed after it echoes.
    // SAFETY: fd 0 is a terminal; `quiet` is a valid termios from tcgetattr.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw const quiet) };
    eprint!("FTP password for {account}: ");
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // SAFETY: as above; echo is restored whatever the read returned.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw const old) };
    read.context("reading the password from the terminal")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("no password entered for {account}");
    }
    if let Ok(mut a) = ASKED.lock() {
        a.push((account.to_string(), pw.clone()));
    }
    Ok(Some(pw))
}

/// A password from a file that others cannot read; a final newline is dropped.
pub fn read_password_file(f: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(f).with_context(|| format!("reading password file {}", f.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "password file {} is readable by others (mode {:o}); run chmod 600 on it",
            f.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("reading password file {}", f.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Print each transfer the backend retried, then what the repository
/// noted (files skipped, a stale lock broken …). Returns how many failures
/// were retried.
pub fn print_notes(repo: &Repository) -> usize {
    let retries = repo.take_retries();
    for r in &retries {
        eprintln!("bk: retried {r}");
    }
    for n in repo.take_notes() {
        eprintln!("bk: note: {n}");
    }
    retries.len()
}
