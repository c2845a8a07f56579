//! `bk web`'s start-up through the binary: the flags that lock it
//! (`--ui-password-file`, `--tls`, `--state-dir`) and what it prints.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bk web ARGS` in the background; its stderr lines until one matches
/// `until` (or 20 s), then the process is stopped.
fn start_lines(args: &[&str], until: impl Fn(&str) -> bool) -> Vec<String> {
    let exe = assert_cmd::cargo::cargo_bin("bk");
    let mut child: Child = Command::new(exe)
        .args(args)
        .env_remove("BK_REPO")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
        let done = until(&l);
        lines.push(l);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn fingerprint(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|l| {
        l.strip_prefix("bk web: certificate SHA-256 fingerprint ")
            .map(str::to_string)
    })
}

#[test]
fn a_short_ui_password_is_refused_at_start() {
    let t = tempfile::tempdir().unwrap();
    let pw = t.path().join("pw");
    std::fs::write(&pw, "short-pw\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_port().to_string();
    let o = bk()
        .args(["web", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--ui-password-file")
        .arg(&pw)
        .arg("--state-dir")
        .arg(t.path().join("state"))
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("12"), "says how long it must be: {e}");
    assert!(!e.contains("short-pw"), "the password is not echoed: {e}");
}

#[test]
fn tls_on_loopback_prints_the_sign_in_address_and_keeps_its_certificate() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let state_s = state.display().to_string();
    let run = || {
        let port = free_port().to_string();
        let listen = format!("127.0.0.1:{port}");
        start_lines(
            &["web", "--listen", &listen, "--tls", "--state-dir", &state_s],
            |l| l.contains("/login?token="),
        )
    };
    let first = run();
    let login = first
        .iter()
        .find(|l| l.contains("/login?token="))
        .unwrap_or_else(|| panic!("no sign-in address: {first:?}"));
    let url = login
        .split_whitespace()
        .find(|w| w.starts_with("https://127.0.0.1:"))
        .unwrap_or_else(|| panic!("an https address: {login}"));
    let token = url.rsplit("token=").next().unwrap();
    assert_eq!(token.len(), 64, "{url}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
    let fp = fingerprint(&first).unwrap_or_else(|| panic!("a fingerprint: {first:?}"));
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "the state directory is private");
    assert_eq!(mode(&state.join("key.pem")), 0o600, "the key is private");
    assert!(state.join("cert.pem").is_file());
    // The token appears once, where it is printed.
    assert_eq!(first.iter().filter(|l| l.contains(token)).count(), 1);

    // A second start reuses the certificate (same fingerprint) and makes a
    // new token.
    let second = run();
    assert_eq!(
        fingerprint(&second).as_deref(),
        Some(fp.as_str()),
        "{second:?}"
    );
    assert!(
        !second.iter().any(|l| l.contains(token)),
        "a new token at each start: {second:?}"
    );
}
