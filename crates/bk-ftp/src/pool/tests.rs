//! The pool's tests, against the embedded server and bk-testkit's proxies.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use bk_testkit::{CutProxy, Cuts, ServerKind, ServerOptions, TestServer};

use super::*;

fn server() -> TestServer {
    TestServer::start(ServerKind::Embedded, ServerOptions::default()).unwrap()
}

fn url_at(s: &TestServer, port: u16) -> FtpUrl {
    let mut u = FtpUrl::parse(&format!("ftp://{}@127.0.0.1:{port}/", s.user())).unwrap();
    u.set_password(s.password());
    u
}

fn remote(s: &TestServer, name: &str) -> String {
    format!("{}/{name}", s.remote_base().trim_end_matches('/'))
}

/// A port that accepts every connection and closes it at once: what a
/// network that went down looks like to a client.
fn closing_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    port
}

fn counted(s: &TestServer) -> CutProxy {
    CutProxy::start(&s.addr(), Cuts::none()).unwrap()
}

#[test]
fn log_in_keeps_its_connection_for_the_next_operations() {
    let s = server();
    let proxy = counted(&s);
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().connections(3),
    );
    pool.log_in().unwrap();
    assert_eq!((proxy.logins(), pool.open_connections()), (1, 1));
    // Again: the idle connection is enough.
    pool.log_in().unwrap();
    let dir = s.remote_base().to_string();
    std::fs::write(s.local_path(&remote(&s, "x.txt")), b"x").unwrap();
    for _ in 0..3 {
        let l = pool.run(true, |c: &mut FtpClient| c.list(&dir)).unwrap();
        assert!(l.iter().any(|e| e.name == "x.txt"), "{l:?}");
    }
    assert_eq!(proxy.logins(), 1);
    assert_eq!(proxy.control_conns(), 1);
    assert_eq!(pool.connects(), 1);
}

#[test]
fn a_refused_log_in_is_reported_at_once_and_keeps_nothing() {
    let s = server();
    let proxy = counted(&s);
    let mut u = url_at(&s, proxy.port());
    u.set_password("not-the-password");
    let pool = Pool::new(
        u,
        FtpConfig::default().retries(5, Duration::from_millis(10)),
    );
    let e = pool.log_in().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!((proxy.logins(), pool.open_connections()), (1, 0));
    assert!(!e.to_string().contains("not-the-password"), "{e}");
}

#[test]
fn more_connections_open_only_when_all_are_busy_and_are_then_reused() {
    let s = server();
    let proxy = counted(&s);
    let pool = Arc::new(Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().connections(3),
    ));
    pool.log_in().unwrap();
    // Three at once: two more logins.
    let held: Vec<PooledClient> = (0..3).map(|_| pool.checkout().unwrap()).collect();
    assert_eq!(proxy.logins(), 3);
    drop(held);
    // Three at once again, and many one after another: no new login.
    let held: Vec<PooledClient> = (0..3).map(|_| pool.checkout().unwrap()).collect();
    drop(held);
    for _ in 0..5 {
        pool.run(true, |c: &mut FtpClient| c.noop()).unwrap();
    }
    assert_eq!((proxy.logins(), pool.connects()), (3, 3));
    assert_eq!(proxy.control_conns(), 3);
}

#[test]
fn a_connection_the_server_dropped_is_replaced_by_one_fresh_login() {
    let s = server();
    let dir = s.remote_base().to_string();
    // Checked before every reuse: the dead connection is found by NOOP,
    // and the operation does not even see a failure.
    let proxy = counted(&s);
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().idle_check(Duration::ZERO),
    );
    pool.log_in().unwrap();
    assert_eq!(proxy.drop_connections(), 1);
    pool.run(false, |c: &mut FtpClient| c.list(&dir)).unwrap();
    assert_eq!((proxy.logins(), pool.connects()), (2, 2));
    assert_eq!((pool.replaced(), pool.retried()), (1, 0));
    assert_eq!(pool.open_connections(), 1);

    // Not checked (used again at once): the failed operation is retried
    // on a fresh login, once.
    let proxy = counted(&s);
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().retries(5, Duration::from_millis(10)),
    );
    pool.log_in().unwrap();
    assert_eq!(proxy.drop_connections(), 1);
    pool.run(true, |c: &mut FtpClient| c.list(&dir)).unwrap();
    assert_eq!((proxy.logins(), pool.connects()), (2, 2));
    assert_eq!(pool.retried(), 1);
    assert_eq!(pool.open_connections(), 1);
}

#[test]
fn keep_alive_pings_idle_connections_and_closes_dead_ones() {
    let s = server();
    let proxy = counted(&s);
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().idle_check(Duration::ZERO),
    );
    pool.log_in().unwrap();
    pool.keep_alive();
    assert_eq!(proxy.commands("NOOP"), 1);
    assert_eq!((pool.open_connections(), pool.replaced()), (1, 0));
    proxy.drop_connections();
    pool.keep_alive();
    assert_eq!((pool.open_connections(), pool.replaced()), (0, 1));
    assert_eq!(proxy.logins(), 1, "keep_alive does not log in");
    pool.run(false, |c: &mut FtpClient| c.noop()).unwrap();
    assert_eq!(proxy.logins(), 2);
    // Connections idle for less than idle_check are left alone.
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().idle_check(Duration::from_secs(3600)),
    );
    pool.log_in().unwrap();
    let noops = proxy.commands("NOOP");
    pool.keep_alive();
    assert_eq!(proxy.commands("NOOP"), noops);
}

#[test]
fn a_dead_network_is_given_up_after_the_bound() {
    let mut u = FtpUrl::parse(&format!("ftp://u@127.0.0.1:{}/", closing_port())).unwrap();
    u.set_password("pw");
    let pool = Pool::new(
        u,
        FtpConfig::default().retries(4, Duration::from_millis(10)),
    );
    let t = Instant::now();
    let e = pool.run(true, |c: &mut FtpClient| c.noop()).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(pool.connects(), 4, "{e}");
    let r = pool.take_retried();
    assert_eq!(r.iter().map(|r| r.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(r.iter().all(|r| !r.progress), "{r:?}");
    assert_eq!(pool.retried(), 3);
    // 10 + 20 + 40 ms of pauses.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let s = server();
    let pool = Pool::new(
        url_at(&s, s.port()),
        FtpConfig::default().retries(5, Duration::from_millis(10)),
    );
    let missing = remote(&s, "missing");
    let e = pool
        .run(true, |c: &mut FtpClient| c.size(&missing))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(pool.connects(), 1);
    assert_eq!(pool.retried(), 0);
    assert!(pool.take_retried().is_empty());
}

#[test]
fn cut_connections_are_retried_and_each_failure_is_recorded_once() {
    let s = server();
    // Cut during the greeting: the first two connections never log in.
    let proxy = CutProxy::start(&s.addr(), Cuts::control(2, 10)).unwrap();
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().retries(5, Duration::from_millis(10)),
    );
    pool.run_as(true, "pinging the server", |c: &mut FtpClient| c.noop())
        .unwrap();
    assert_eq!(proxy.control_cuts(), 2);
    assert_eq!(pool.connects(), 3);
    let r = pool.take_retried();
    assert_eq!(r.len(), 2, "{r:?}");
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.attempt, i as u32 + 1);
        assert_eq!(r.what, "pinging the server");
        assert!(!r.progress);
        let line = r.to_string();
        // Cut after the greeting's first bytes: the login fails.
        assert!(
            line.starts_with(&format!(
                "pinging the server: attempt {} failed: logging in to 127.0.0.1:{}: ",
                i + 1,
                proxy.port()
            )),
            "{line}"
        );
        assert!(!line.contains(s.password()), "{line}");
    }
    assert!(pool.take_retried().is_empty(), "taken once");
    assert_eq!(pool.retried(), 2, "the count stays");
}

#[test]
fn an_operation_that_is_not_idempotent_is_not_retried() {
    let s = server();
    let proxy = CutProxy::start(&s.addr(), Cuts::control(1, 10)).unwrap();
    let pool = Pool::new(
        url_at(&s, proxy.port()),
        FtpConfig::default().retries(5, Duration::from_millis(10)),
    );
    let e = pool.run(false, |c: &mut FtpClient| c.noop()).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(pool.connects(), 1);
    assert_eq!(pool.retried(), 0);
}

#[test]
fn failures_that_moved_data_are_retried_longer_and_still_bounded() {
    let s = server();
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let name = remote(&s, "f.bin");
    std::fs::write(s.local_path(&name), &data).unwrap();
    // Two attempts without progress, eight with: five downloads cut
    // after 100 bytes each are retried, the sixth gets the file.
    let cfg = FtpConfig::default().retries(2, Duration::from_millis(10));
    assert_eq!(cfg.attempts_with_progress, 8);
    let proxy = CutProxy::start(&s.addr(), Cuts::data("RETR", 5, 100)).unwrap();
    let pool = Pool::new(url_at(&s, proxy.port()), cfg.clone());
    let got = pool
        .run_as(true, "reading f.bin", |c: &mut FtpClient| {
            c.get_bytes(&name)
        })
        .unwrap();
    assert!(got == data, "got {} bytes", got.len());
    assert_eq!(proxy.data_cuts(), 5);
    let r = pool.take_retried();
    assert_eq!(r.len(), 5, "{r:?}");
    assert!(r.iter().all(|r| r.progress), "{r:?}");
    assert!(
        r[0].error
            .contains("got 100 bytes, the server's SIZE said 20000"),
        "{}",
        r[0]
    );
    // Cut every time: the eighth attempt is the last.
    let proxy = CutProxy::start(&s.addr(), Cuts::data("RETR", 100, 100)).unwrap();
    let pool = Pool::new(url_at(&s, proxy.port()), cfg);
    let e = pool
        .run(true, |c: &mut FtpClient| c.get_bytes(&name))
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(proxy.data_cuts(), 8);
    assert_eq!(pool.retried(), 7);
}
