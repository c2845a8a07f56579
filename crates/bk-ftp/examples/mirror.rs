//! Mirror a local directory to a server, deleting what is gone locally.
//!
//! `FTP_PASSWORD=… cargo run -p bk-ftp --example mirror -- LOCAL_DIR ftp://user@host/remote/dir`

use bk_ftp::{Direction, FtpConfig, FtpUrl, Pool, TransferOptions, mirror};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [local, url] = &args[..] else {
        return Err("usage: mirror LOCAL_DIR ftp://user@host/remote/dir".into());
    };
    let mut url = FtpUrl::parse(url)?;
    url.set_password(std::env::var("FTP_PASSWORD").unwrap_or_default());
    let remote = url.path.clone();
    let pool = Pool::new(url, FtpConfig::default());
    let r = mirror(
        &pool,
        Direction::Upload,
        local.as_ref(),
        &remote,
        &TransferOptions::default().delete(true),
    )?;
    println!(
        "{} files ({} bytes) sent, {} deleted",
        r.files, r.bytes, r.deleted
    );
    Ok(())
}
