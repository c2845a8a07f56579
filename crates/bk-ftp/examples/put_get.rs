//! Upload or download one file over one connection, with
//! [`FtpClient::put_file`] (temporary name, SIZE check, rename, mtime) and
//! [`FtpClient::get_file`] (temporary file, size check against the server's
//! facts, rename, mtime). Used by `cargo xtask bench-ftp`.
//!
//! ```sh
//! FTP_PASSWORD=… cargo run --release -p bk-ftp --example put_get -- put LOCAL ftp://user@host/remote/file
//! FTP_PASSWORD=… cargo run --release -p bk-ftp --example put_get -- get ftp://user@host/remote/file LOCAL
//! ```
//!
//! The password comes from the environment only, so it never shows up in
//! the process list.

use std::path::Path;
use std::time::Instant;

use bk_ftp::{EntryKind, FtpClient, FtpConfig, FtpUrl};

const USAGE: &str = "usage: put_get put LOCAL ftp://user@host/remote/file\n       \
                     put_get get ftp://user@host/remote/file LOCAL\n\
                     (password from FTP_PASSWORD)";

fn connect(url: &str) -> Result<(FtpClient, String), Box<dyn std::error::Error>> {
    let mut url = FtpUrl::parse(url)?;
    if let Ok(pw) = std::env::var("FTP_PASSWORD") {
        url.set_password(pw);
    }
    let client = FtpClient::connect(&url, &FtpConfig::default())?;
    Ok((client, url.path))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, a, b] = &args[..] else {
        return Err(USAGE.into());
    };
    let started = Instant::now();
    let bytes = match op.as_str() {
        "put" => {
            let (mut c, remote) = connect(b)?;
            let n = c.put_file(Path::new(a), &remote)?;
            c.quit();
            n
        }
        "get" => {
            let (mut c, remote) = connect(a)?;
            let entry = c
                .stat(&remote)?
                .ok_or_else(|| format!("{remote}: no such file on the server"))?;
            if entry.kind != EntryKind::File {
                return Err(format!("{remote}: not a regular file").into());
            }
            let n = c.get_file(&remote, Path::new(b), Some(&entry))?;
            c.quit();
            n
        }
        _ => return Err(USAGE.into()),
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{op}: {bytes} bytes in {secs:.2} s ({:.1} MB/s)",
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}
