//! A 1 GiB file up and down with bounded memory: its own test binary, so
//! the process's peak RSS is this test's alone (the embedded server runs in
//! the same process and is counted too).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::time::Duration;

use bk_ftp::{FtpClient, FtpConfig, FtpUrl};
use bk_testkit::{ServerKind, ServerOptions, TestServer, servers_under_test};

const GIB: u64 = 1 << 30;

/// Resident memory now (not the high-water mark: generating the test file
/// and starting the server came first and must not count).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn same_content(a: &std::path::Path, b: &std::path::Path) -> bool {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = fa.read(&mut ba).unwrap();
        let mut nb = 0;
        while nb < na {
            let k = fb.read(&mut bb[nb..na]).unwrap();
            if k == 0 {
                return false;
            }
            nb += k;
        }
        if na == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
        if ba[..na] != bb[..na] {
            return false;
        }
    }
}

#[test]
fn one_gib_up_and_down_in_bounded_memory() {
    // The real servers when CI names them (the embedded one otherwise).
    let kind = servers_under_test()
        .into_iter()
        .find(|k| *k == ServerKind::PureFtpd)
        .unwrap_or(ServerKind::Embedded);
    let s = TestServer::start(kind, ServerOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.bin");
    {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&src).unwrap());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..(GIB >> 20) {
            for c in block.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            w.write_all(&block).unwrap();
        }
        w.flush().unwrap();
    }
    let before = rss_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut url = FtpUrl::parse(&format!("ftp://{}@{}:{}/", s.user(), s.host(), s.port())).unwrap();
    url.set_password(s.password());
    let cfg = FtpConfig::default().timeouts(Duration::from_secs(10), Duration::from_secs(120));
    let mut c = FtpClient::connect(&url, &cfg).unwrap();
    let remote = format!("{}/big.bin", s.remote_base().trim_end_matches('/'));
    assert_eq!(c.put_file(&src, &remote).unwrap(), GIB);
    let back = tmp.path().join("back.bin");
    let entry = c.stat(&remote).unwrap().unwrap();
    assert_eq!(entry.size, GIB);
    assert_eq!(c.get_file(&remote, &back, Some(&entry)).unwrap(), GIB);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let growth = peak
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(before);
    assert!(same_content(&src, &back), "the downloaded copy differs");
    assert!(
        same_content(&src, &s.local_path(&remote)),
        "the server's copy differs"
    );
    eprintln!(
        "{kind:?}: RSS grew by at most {} MiB during the 1 GiB round trip (from {} MiB)",
        growth >> 20,
        before >> 20
    );
    assert!(
        growth < 64 << 20,
        "RSS grew by {} MiB for a 1 GiB round trip",
        growth >> 20
    );
}
