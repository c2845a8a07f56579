//! Progress on a terminal: under a pty (`script` from util-linux/bsdutils)
//! the bar redraws in place; with `--quiet`, or when stderr is a pipe,
//! stderr holds only the summary.

use std::fs;
use std::process::Command;

use crate::common::*;

const MIB: usize = 1024 * 1024;

/// Run `bk ARGS` on a pseudo-terminal; what the terminal received.
fn on_a_terminal(args: &str) -> Option<String> {
    let bk = assert_cmd::cargo::cargo_bin("bk");
    let o = Command::new("script")
        .args(["-qfec", &format!("{} {args}", bk.display()), "/dev/null"])
        .env_remove("BK_REPO")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    assert!(o.status.success(), "bk {args}: {}", stderr(&o));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The distinct frames of the bar of `phase` (e.g. "reading").
fn frames(term: &str, phase: &str) -> Vec<String> {
    let mut v: Vec<String> = term
        .split('\r')
        .filter_map(|f| f.find(&format!("{phase} [")).map(|i| f[i..].to_string()))
        .map(|f| f.split("eta").next().unwrap().trim_end().to_string())
        .collect();
    v.dedup();
    v
}

fn piped(args: &[&std::ffi::OsStr]) -> String {
    let o = bk().args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stderr(&o)
}

#[test]
fn a_terminal_sees_the_bar_redraw_and_a_pipe_only_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("big");
    fs::create_dir(&ds).unwrap();
    for i in 0..12 {
        let f = ds.join(format!("part{i:02}"));
        fs::write(f, random_bytes(300 + i as u64, 8 * MIB)).unwrap();
    }
    let repo = tmp.path().join("repo");
    let (d, r) = (ds.display(), repo.display());
    let Some(term) = on_a_terminal(&format!("backup {d} --repo {r} --threads 1")) else {
        skipped("SKIPPED progress: no `script` (util-linux) to run bk on a terminal");
        return;
    };
    // Redrawn in place (carriage return, clear line), with the numbers moving.
    let reading = frames(&term, "reading");
    assert!(reading.len() >= 2, "fewer than two redraws: {term:?}");
    assert!(term.matches("\r\u{1b}[2K").count() >= 2, "{term:?}");
    assert!(
        reading.iter().any(|f| f.contains("/96.00 MiB")),
        "{reading:?}"
    );
    // After the last clear, and the cursor moves of a two-line bar.
    let mut last = term.rsplit("\u{1b}[2K").next().unwrap();
    while let Some(rest) = last
        .strip_prefix("\u{1b}[1A")
        .or(last.strip_prefix("\u{1b}[1B"))
    {
        last = rest;
    }
    assert!(
        last.starts_with("snapshot 0 of \"big\" saved: 12 files, 96.0 MiB"),
        "the bar is cleared before the summary: {last:?}"
    );

    // --quiet on a terminal: only the summary.
    let quiet = on_a_terminal(&format!("backup {d} --repo {r} --quiet")).unwrap();
    assert!(!quiet.contains('\u{1b}'), "{quiet:?}");
    assert_eq!(quiet.lines().count(), 1, "{quiet:?}");
    assert!(
        quiet.starts_with("snapshot 1 of \"big\" saved:"),
        "{quiet:?}"
    );

    // A pipe: exactly the summary line, no remnant of a bar.
    let err = piped(&[os("backup"), ds.as_os_str(), os("--repo"), repo.as_os_str()]);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("snapshot 2 of \"big\" saved: 12 files, 96.0 MiB"),
        "{err:?}"
    );
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");

    // Restore and check --read-data: a bar on a terminal, the summary on a pipe.
    let out = tmp.path().join("out-term");
    let term = on_a_terminal(&format!("restore big --repo {r} --to {}", out.display())).unwrap();
    assert!(!frames(&term, "restoring").is_empty(), "{term:?}");
    assert!(term.contains("restored snapshot 2 of \"big\""), "{term:?}");
    let term = on_a_terminal(&format!("check --read-data --repo {r}")).unwrap();
    assert!(!frames(&term, "checking").is_empty(), "{term:?}");
    assert!(term.contains("no errors found"), "{term:?}");

    let out = tmp.path().join("out-pipe");
    let err = piped(&[
        os("restore"),
        os("big"),
        os("--repo"),
        repo.as_os_str(),
        os("--to"),
        out.as_os_str(),
    ]);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("restored snapshot 2 of \"big\""), "{err:?}");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
    let err = piped(&[
        os("check"),
        os("--read-data"),
        os("--repo"),
        repo.as_os_str(),
    ]);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err:?}");
    assert!(lines[0].starts_with("checked 3 snapshots"), "{err:?}");
    assert_eq!(lines[1], "no errors found");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
}
