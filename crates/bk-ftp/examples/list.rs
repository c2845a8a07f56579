//! List a remote tree and compare it with a local directory.
//!
//! `FTP_PASSWORD=… cargo run -p bk-ftp --example list -- ftp://user@host/remote/dir [LOCAL_DIR]`

use std::time::Duration;

use bk_ftp::{FtpConfig, FtpUrl, Pool, compare, walk_local, walk_remote};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first() else {
        return Err("usage: list ftp://user@host/remote/dir [LOCAL_DIR]".into());
    };
    let mut url = FtpUrl::parse(url)?;
    url.set_password(std::env::var("FTP_PASSWORD").unwrap_or_default());
    let remote = url.path.clone();
    let pool = Pool::new(url, FtpConfig::default());
    let tree = walk_remote(&pool, &remote, true)?;
    for (path, e) in &tree {
        println!("{:?} {:>12} {path}", e.kind, e.size);
    }
    if let Some(local) = args.get(1) {
        let diff = compare(&walk_local(local.as_ref())?, &tree, Duration::from_secs(2));
        println!(
            "only local: {:?}\nnewer locally or resized: {:?}\nonly remote: {:?}",
            diff.added, diff.modified, diff.deleted
        );
    }
    Ok(())
}
