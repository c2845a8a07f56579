//! TEMPORARY experiment (to be deleted): tree upload with fewer round trips.
//! zz_lean_upload MODE LOCAL_DIR ftp://user@host/remote  (MODE: full | nosize | direct)

use std::fs::File;
use std::sync::Mutex;
use std::time::Instant;

use bk_ftp::{FtpClient, FtpConfig, FtpUrl, Pool, temp_name, walk_local};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, local, url] = &args[..] else {
        return Err("usage".into());
    };
    let mut url = FtpUrl::parse(url)?;
    url.set_password(std::env::var("FTP_PASSWORD").unwrap_or_default());
    let remote = url.path.clone();
    let pool = Pool::new(url, FtpConfig::default().connections(4));
    let t = Instant::now();
    let tree = walk_local(local.as_ref())?;
    let mut dirs = vec![];
    let mut files = vec![];
    for (p, e) in &tree {
        if e.kind == bk_ftp::EntryKind::Dir {
            dirs.push(p.clone());
        } else {
            files.push(p.clone());
        }
    }
    pool.run(true, |c: &mut FtpClient| c.mkdir_all(&remote))?;
    for d in &dirs {
        pool.run(true, |c: &mut FtpClient| {
            c.mkdir_all(&format!("{remote}/{d}"))
        })?;
    }
    let next = Mutex::new(files.into_iter());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let Some(rel) = next.lock().unwrap().next() else {
                        return;
                    };
                    let lp = std::path::Path::new(local).join(&rel);
                    let rp = format!("{remote}/{rel}");
                    pool.run(true, |c: &mut FtpClient| {
                        if mode == "full" {
                            return c.put_file(&lp, &rp).map(|_| ());
                        }
                        let mut f = File::open(&lp).unwrap();
                        let m = f.metadata().unwrap().modified().unwrap();
                        if mode == "nosize" {
                            let tmp = temp_name(&rp);
                            c.upload_stream(&mut f, &tmp, 0)?;
                            c.rename(&tmp, &rp)?;
                        } else {
                            c.upload_stream(&mut f, &rp, 0)?;
                        }
                        c.set_mtime(&rp, m).map(|_| ())
                    })
                    .unwrap();
                }
            });
        }
    });
    eprintln!(
        "{mode}: {:.2} s, {} logins",
        t.elapsed().as_secs_f64(),
        pool.connects()
    );
    Ok(())
}
