//! Plain words for what the pages say: file-system errors without their
//! numbers, engine messages without command-line flags, counts that name
//! what they count, and times with their zone.
//!
//! The engine's messages are written for the command line (they suggest
//! `--overwrite`, `--dataset NAME`, and an `io::Error` ends in
//! `(os error 36)`); [`plain`] turns such a message into one for a page.

use std::io::ErrorKind;

/// An I/O error in words a person reads, without its `os error N`.
pub fn io_error(e: &std::io::Error) -> String {
    let words = match e.kind() {
        ErrorKind::NotFound => "it does not exist",
        ErrorKind::PermissionDenied => "this server is not allowed to read it",
        ErrorKind::NotADirectory => "it is not a folder",
        ErrorKind::IsADirectory => "it is a folder",
        ErrorKind::InvalidFilename => "the name is too long for this computer",
        ErrorKind::AlreadyExists => "it exists already",
        ErrorKind::DirectoryNotEmpty => "the folder is not empty",
        ErrorKind::StorageFull => "the disk is full",
        ErrorKind::ReadOnlyFilesystem => "the disk is read-only",
        ErrorKind::TimedOut => "it took too long",
        _ => return plain(&e.to_string()),
    };
    words.to_string()
}

/// `msg` without `(os error N)` and with each command-line hint replaced
/// by what the user does on the pages instead.
pub fn plain(msg: &str) -> String {
    let mut s = strip_os_errors(msg);
    // "…; pass --dataset "ds" to add this one to it anyway, or …": on a
    // page the dataset name is a field of the form.
    if let Some(i) = s.find("; pass --dataset") {
        s.truncate(i);
        s.push_str("; choose another dataset name for this folder");
    }
    for (flag, words) in [
        (
            "(pass --overwrite to restore into it)",
            "(recover into a new or empty folder, or choose to replace its contents)",
        ),
        (
            "(pass --delete to replace it and everything in it)",
            "(recover into an empty folder for exactly the backup's contents)",
        ),
        (
            "; stop it, or pass --force to remove its lock anyway",
            "; wait for it to end",
        ),
        (
            "start bk web with --allow-root DIR to allow one",
            "ask the person who started bk web to allow one",
        ),
        (
            "start bk web with --allow-root DIR",
            "ask the person who started bk web to allow a folder",
        ),
        ("with --overwrite", "by replacing its contents"),
        ("--delete applies", "Replacing everything applies"),
        ("--exclude pattern", "exclusion pattern"),
    ] {
        s = s.replace(flag, words);
    }
    any_flag(&s)
}

/// Any other `--some-flag` as `the "some flag" option`.
fn any_flag(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("--") {
        let tail = &rest[i + 2..];
        let n = tail
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'-')
            .count();
        if n > 0 && tail.as_bytes()[0].is_ascii_lowercase() {
            out.push_str(&rest[..i]);
            out.push_str(&format!("the \"{}\" option", tail[..n].replace('-', " ")));
            rest = &tail[n..];
        } else {
            out.push_str(&rest[..i + 2]);
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn strip_os_errors(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" (os error ") {
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// What a snapshot holds, counted so that it agrees with "added":
/// `12 (11 files, 1 link or pipe)`; folders are not counted as entries.
pub fn entries(files: u64, others: u64) -> String {
    let f = if files == 1 { "file" } else { "files" };
    if others == 0 {
        format!("{} ({files} {f})", files + others)
    } else {
        let o = if others == 1 {
            "link or pipe"
        } else {
            "links or pipes"
        };
        format!("{} ({files} {f}, {others} {o})", files + others)
    }
}

/// An RFC 3339 UTC time (`2026-12-02T03:30:00Z`) as the text of a
/// `<time>` element before the script turns it into the browser's zone:
/// `2026-12-02 03:30:00 UTC`, so the zone is always named.
pub fn utc_text(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_os_error_numbers_and_no_flags() {
        let e = std::io::Error::from_raw_os_error(36);
        let m = io_error(&e);
        assert!(!m.contains("os error"), "{m}");
        assert_eq!(m, "the name is too long for this computer");
        let e = std::io::Error::from_raw_os_error(5);
        assert!(!io_error(&e).contains("os error"), "{}", io_error(&e));
        assert_eq!(
            plain("reading /x: Input/output error (os error 5)"),
            "reading /x: Input/output error"
        );
        assert_eq!(
            plain("output directory /o is not empty (pass --overwrite to restore into it)"),
            "output directory /o is not empty (recover into a new or empty folder, or choose to replace its contents)"
        );
        assert_eq!(
            plain("try --ignore-ctime -- x"),
            "try the \"ignore ctime\" option -- x"
        );
        assert_eq!(plain("a (os error x) b"), "a (os error x) b");
        let m = plain(
            "dataset \"ds\" was last backed up from /a, not from /b; pass --dataset \"ds\" to add this one to it anyway, or --dataset NAME to start a new dataset",
        );
        assert!(
            m.ends_with("not from /b; choose another dataset name for this folder"),
            "{m}"
        );
    }

    #[test]
    fn counts_and_times() {
        assert_eq!(entries(11, 1), "12 (11 files, 1 link or pipe)");
        assert_eq!(entries(1, 0), "1 (1 file)");
        assert_eq!(entries(0, 2), "2 (0 files, 2 links or pipes)");
        assert_eq!(
            utc_text("2026-12-02T04:30:00+01:00"),
            "2026-12-02 03:30:00 UTC"
        );
    }
}
