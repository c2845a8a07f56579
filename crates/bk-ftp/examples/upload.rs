//! Copy a local directory tree up to a server, with progress.
//!
//! `FTP_PASSWORD=… cargo run -p bk-ftp --example upload -- LOCAL_DIR ftp://user@host/remote/dir`

use bk_ftp::{FtpConfig, FtpUrl, Pool, TransferOptions, upload_tree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [local, url] = &args[..] else {
        return Err("usage: upload LOCAL_DIR ftp://user@host/remote/dir".into());
    };
    let mut url = FtpUrl::parse(url)?;
    url.set_password(std::env::var("FTP_PASSWORD").unwrap_or_default());
    let remote = url.path.clone();
    let pool = Pool::new(url, FtpConfig::default().connections(4));
    let opts = TransferOptions::default().progress(|p| {
        eprint!(
            "\r{}/{} files, {}/{} bytes",
            p.files_done, p.files_total, p.bytes_done, p.bytes_total
        )
    });
    let r = upload_tree(&pool, local.as_ref(), &remote, &opts)?;
    eprintln!("\n{} files uploaded", r.files);
    Ok(())
}
