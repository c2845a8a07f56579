//! `bk web`: serve the web UI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args as ClapArgs;

use crate::connect::{Global, read_password_file};

/// Serve the web UI: back up and recover datasets from a browser.
///
/// Nothing is shown before signing in: without --ui-password-file, bk web
/// prints a secret sign-in address at start (open it in the browser).
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Address to listen on. Anything but a loopback address is served
    /// over HTTPS (see --tls-cert, --insecure-http).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// A local directory whose subdirectories may be backed up and
    /// recovered into (repeatable).
    #[arg(long = "allow-root", value_name = "DIR")]
    allow_root: Vec<PathBuf>,
    /// File holding the UI's access password, at least 12 characters (must
    /// not be readable by others). Without it, a secret sign-in address is
    /// printed at start.
    #[arg(long, value_name = "FILE")]
    ui_password_file: Option<PathBuf>,
    /// Another name the UI answers for besides 127.0.0.1, localhost and
    /// [::1], as NAME or NAME:PORT (repeatable); requests naming any other
    /// host are refused.
    #[arg(long = "public-name", value_name = "NAME")]
    public_name: Vec<String>,
    /// Serve HTTPS even on a loopback address (with --tls-cert/--tls-key,
    /// or a self-signed certificate kept in the state directory).
    #[arg(long)]
    tls: bool,
    /// The HTTPS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The HTTPS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address: passwords and files
    /// cross the network readable. Only for a network you trust.
    #[arg(long, conflicts_with_all = ["tls", "tls_cert"])]
    insecure_http: bool,
    /// Where the job history and the generated certificate are kept
    /// (default $XDG_STATE_HOME/bk/web or ~/.local/state/bk/web).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Serve until stopped.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let mut opts = bk_web::WebOptions::new()
        .listen(a.listen)
        .ftp_options(&g.ftp_options())
        .insecure_http(a.insecure_http);
    if let Some(f) = &a.ui_password_file {
        let pw = read_password_file(f)?;
        if pw.is_empty() {
            bail!("the UI password file {} is empty", f.display());
        }
        opts = opts.ui_password(pw);
    }
    for n in &a.public_name {
        opts = opts.public_name(n);
    }
    if a.tls {
        opts = opts.tls(bk_web::TlsMode::On);
    }
    if let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) {
        opts = opts.tls_files(c, k);
    }
    let state_dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => bk_web::default_state_dir().ok_or_else(|| {
            anyhow::anyhow!(
                "no state directory: set HOME or XDG_STATE_HOME, or pass --state-dir DIR"
            )
        })?,
    };
    opts = opts.state_dir(state_dir);
    if g.repo.is_some() {
        opts = opts.repo(g.repo_location()?);
    }
    for r in &a.allow_root {
        opts = opts.allow_root(r);
    }
    bk_web::run(opts)?;
    Ok(ExitCode::SUCCESS)
}
