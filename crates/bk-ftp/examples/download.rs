//! Copy a remote directory tree down, keeping the server's mtimes.
//!
//! `FTP_PASSWORD=… cargo run -p bk-ftp --example download -- ftp://user@host/remote/dir LOCAL_DIR`

use bk_ftp::{FtpConfig, FtpUrl, Pool, TransferOptions, download_tree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, local] = &args[..] else {
        return Err("usage: download ftp://user@host/remote/dir LOCAL_DIR".into());
    };
    let mut url = FtpUrl::parse(url)?;
    url.set_password(std::env::var("FTP_PASSWORD").unwrap_or_default());
    let remote = url.path.clone();
    let pool = Pool::new(url, FtpConfig::default());
    let r = download_tree(
        &pool,
        &remote,
        local.as_ref(),
        &TransferOptions::default().precise_mtimes(true),
    )?;
    println!("{} files, {} bytes", r.files, r.bytes);
    Ok(())
}
