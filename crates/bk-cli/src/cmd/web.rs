//! `bk web`: serve the web UI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args as ClapArgs;

use crate::connect::{Global, read_password_file};

/// Serve the web UI: back up and recover datasets from a browser.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Address to listen on. Anything but a loopback address needs
    /// --ui-password-file.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// A local directory whose subdirectories may be backed up and
    /// recovered into (repeatable).
    #[arg(long = "allow-root", value_name = "DIR")]
    allow_root: Vec<PathBuf>,
    /// File holding the UI's access password (must not be readable by others).
    #[arg(long, value_name = "FILE")]
    ui_password_file: Option<PathBuf>,
}

/// Serve until stopped.
pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let mut opts = bk_web::WebOptions::new()
        .listen(a.listen)
        .ftp_options(&g.ftp_options());
    if let Some(f) = &a.ui_password_file {
        let pw = read_password_file(f)?;
        if pw.is_empty() {
            bail!("the UI password file {} is empty", f.display());
        }
        opts = opts.ui_password(pw);
    } else if !a.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {} without a UI password: anyone who can reach that address could read and overwrite your backups; pass --ui-password-file FILE, or listen on 127.0.0.1",
            a.listen
        );
    }
    if g.repo.is_some() {
        opts = opts.repo(g.repo_location()?);
    }
    for r in &a.allow_root {
        opts = opts.allow_root(r);
    }
    bk_web::run(opts)?;
    Ok(ExitCode::SUCCESS)
}
