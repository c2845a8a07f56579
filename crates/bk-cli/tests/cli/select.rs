//! Restore selection: latest, by id, by --before in every accepted form.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, FixedOffset};

use crate::common::*;

fn three_versions(tmp: &Path) -> (PathBuf, Vec<DateTime<FixedOffset>>) {
    let src = tmp.join("ds");
    fs::create_dir(&src).unwrap();
    let repo = tmp.join("repo");
    let mut times = Vec::new();
    for v in 0..3 {
        if v > 0 {
            // Distinct seconds, so that second-precision times tell them apart.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        fs::write(src.join("f.txt"), format!("version {v}")).unwrap();
        let s = backup(&repo, &src, &[], 0);
        times.push(DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap());
    }
    (repo, times)
}

/// Restore with `args` (and TZ); Ok(content of f.txt) or Err((code, stderr)).
fn restored(
    repo: &Path,
    out: &Path,
    args: &[&str],
    tz: &str,
) -> Result<String, (Option<i32>, String)> {
    let _ = fs::remove_dir_all(out);
    let o = bk()
        .arg("restore")
        .arg("ds")
        .arg("--repo")
        .arg(repo)
        .arg("--to")
        .arg(out)
        .args(args)
        .env("TZ", tz)
        .output()
        .unwrap();
    if o.status.code() == Some(0) {
        Ok(fs::read_to_string(out.join("f.txt")).unwrap())
    } else {
        Err((o.status.code(), stderr(&o)))
    }
}

#[test]
fn select_by_latest_id_and_before() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, t) = three_versions(tmp.path());
    let out = tmp.path().join("out");
    let tz = "UTC";
    assert_eq!(restored(&repo, &out, &[], tz).unwrap(), "version 2");
    for v in 0..3 {
        assert_eq!(
            restored(&repo, &out, &["--id", &v.to_string()], tz).unwrap(),
            format!("version {v}")
        );
    }
    let (code, err) = restored(&repo, &out, &["--id", "7"], tz).unwrap_err();
    assert_eq!(code, Some(1));
    assert!(err.contains("no snapshot 7"), "{err}");

    // RFC 3339: strictly before. At exactly snapshot 1's time, snapshot 0.
    let at1 = t[1].to_rfc3339();
    assert_eq!(
        restored(&repo, &out, &["--before", &at1], tz).unwrap(),
        "version 0"
    );
    let after1 = (t[1] + Duration::milliseconds(1)).to_rfc3339();
    assert_eq!(
        restored(&repo, &out, &["--before", &after1], tz).unwrap(),
        "version 1"
    );
    // The same instant written with another offset selects the same snapshot.
    let shifted = t[2]
        .with_timezone(&FixedOffset::east_opt(5 * 3600 + 1800).unwrap())
        .to_rfc3339();
    assert_eq!(
        restored(&repo, &out, &["--before", &shifted], tz).unwrap(),
        "version 1"
    );

    // Nothing before the first snapshot: a clear error, exit 1, nothing written.
    let (code, err) = restored(&repo, &out, &["--before", &t[0].to_rfc3339()], tz).unwrap_err();
    assert_eq!(code, Some(1));
    assert!(err.contains("no snapshot before"), "{err}");
    assert!(!out.join("f.txt").exists());
}

#[test]
fn before_in_local_time_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, t) = three_versions(tmp.path());
    let out = tmp.path().join("out");
    // "YYYY-MM-DD HH:MM:SS" is local time: the same wall-clock string means
    // different instants in different zones.
    for tz_name in ["UTC", "Asia/Kolkata", "America/New_York"] {
        let off = tz_offset(tz_name, t[2]);
        let local = |x: DateTime<FixedOffset>| x.with_timezone(&off);
        // The second after snapshot 1 (its time rounded up to whole seconds).
        let s = local(t[1] + Duration::seconds(1))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        assert_eq!(
            restored(&repo, &out, &["--before", &s], tz_name).unwrap(),
            "version 1",
            "{tz_name} {s}"
        );
        let s = local(t[0]).format("%Y-%m-%d %H:%M:%S").to_string();
        let (code, err) = restored(&repo, &out, &["--before", &s], tz_name).unwrap_err();
        assert_eq!(code, Some(1), "{tz_name}: {err}");
    }
    // Date only: the start of that day in local time.
    let tz_name = "Asia/Kolkata";
    let off = tz_offset(tz_name, t[2]);
    let day = t[2].with_timezone(&off).date_naive();
    let tomorrow = (day + Duration::days(1)).format("%Y-%m-%d").to_string();
    assert_eq!(
        restored(&repo, &out, &["--before", &tomorrow], tz_name).unwrap(),
        "version 2"
    );
    if t[0].with_timezone(&off).date_naive() == day {
        let today = day.format("%Y-%m-%d").to_string();
        let (code, err) = restored(&repo, &out, &["--before", &today], tz_name).unwrap_err();
        assert_eq!(code, Some(1));
        assert!(err.contains("no snapshot before"), "{err}");
    }
    let (code, err) = restored(&repo, &out, &["--before", "last tuesday"], "UTC").unwrap_err();
    assert_eq!(code, Some(1));
    assert!(err.contains("YYYY-MM-DD"), "{err}");
}

/// The UTC offset of a named zone at a time, as the bk process will see it
/// (asked of the `date` command, so the test does not need a tz database crate).
fn tz_offset(tz: &str, at: DateTime<FixedOffset>) -> FixedOffset {
    let o = std::process::Command::new("date")
        .env("TZ", tz)
        .arg("-d")
        .arg(format!("@{}", at.timestamp()))
        .arg("+%z")
        .output()
        .unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    let s = s.trim();
    let sign = if s.starts_with('-') { -1 } else { 1 };
    let h: i32 = s[1..3].parse().unwrap();
    let m: i32 = s[3..5].parse().unwrap();
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).unwrap()
}

#[test]
fn path_given_several_times_restores_each_at_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    fs::create_dir_all(src.join("a/b")).unwrap();
    fs::create_dir_all(src.join("c")).unwrap();
    fs::write(src.join("a/b/one.txt"), "one").unwrap();
    fs::write(src.join("a/two.bin"), random_bytes(7, 9000)).unwrap();
    fs::write(src.join("c/three.txt"), "three").unwrap();
    fs::write(src.join("top.txt"), "top").unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    let out = tmp.path().join("out");
    let o = restore(
        &repo,
        "ds",
        &out,
        &[
            os("--path"),
            os("a/b"),
            os("--path"),
            os("c/three.txt"),
            os("--path"),
            os("a/b/one.txt"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole = manifest(&src);
    let got = manifest(&out);
    let mut want = manifest_under(&whole, b"a/b");
    want.entries
        .extend(manifest_under(&whole, b"c/three.txt").entries);
    // The parents on the way, with their metadata.
    for p in [&b"a"[..], b"c"] {
        want.entries.insert(p.to_vec(), whole.entries[p].clone());
    }
    assert_eq!(got.entries, want.entries);
    assert!(!out.join("a/two.bin").exists() && !out.join("top.txt").exists());
}
