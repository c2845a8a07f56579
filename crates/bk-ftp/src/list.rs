//! Remote directory entries, and parsers for MLSD/MLST and LIST (Unix and
//! DOS formats). suppaftp's MLSD parser drops facts and rejects proftpd's
//! symlink lines, so these are our own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{Datelike, NaiveDate, NaiveDateTime, Utc};

/// What a remote entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
}

/// How exact an mtime is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    /// Seconds or better, in UTC (MLSD, MLST, MDTM).
    Exact,
    /// Minutes, in the server's local time zone (LIST, recent entries).
    Minute,
    /// Days (LIST, entries older than six months).
    Day,
}

/// One entry of a remote directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The name (not a path).
    pub name: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, if the listing gave one.
    pub mtime: Option<SystemTime>,
    /// How exact `mtime` is.
    pub precision: Precision,
    /// Permission bits, when the server reports them.
    pub mode: Option<u32>,
    /// A symlink's target, when the server reports it.
    pub target: Option<String>,
}

/// Parse `YYYYMMDDHHMMSS[.fff]` (UTC), as in MLSD `modify=`, MDTM and MFMT.
pub fn parse_timeval(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, f),
        None => (s, ""),
    };
    let t = NaiveDateTime::parse_from_str(main, "%Y%m%d%H%M%S").ok()?;
    let secs = t.and_utc().timestamp();
    let mut nanos = 0u32;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
    }
    to_system_time(secs, nanos)
}

/// Format a time as `YYYYMMDDHHMMSS` (UTC), for MFMT.
pub fn format_timeval(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::<Utc>::from_timestamp(d.as_secs() as i64, 0)
        .map(|t| t.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_else(|| "19700101000000".into())
}

fn to_system_time(secs: i64, nanos: u32) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs((-secs) as u64))
    }
}

/// Parse one MLSD line (`fact=value;…; name`) or an MLST line (whose name
/// is a path). Returns `None` for `.`/`..` (`cdir`/`pdir`) and bad lines.
pub fn parse_mlsd(line: &str) -> Option<RemoteEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    let sp = line.find(' ')?;
    let (facts, name) = (&line[..sp], &line[sp + 1..]);
    if name.is_empty() {
        return None;
    }
    let mut e = RemoteEntry {
        name: name.to_string(),
        kind: EntryKind::File,
        size: 0,
        mtime: None,
        precision: Precision::Exact,
        mode: None,
        target: None,
    };
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (k, v) = fact.split_once('=')?;
        match k.to_ascii_lowercase().as_str() {
            "type" => {
                let lv = v.to_ascii_lowercase();
                e.kind = match lv.as_str() {
                    "file" => EntryKind::File,
                    "dir" => EntryKind::Dir,
                    "cdir" | "pdir" => return None,
                    _ if lv.starts_with("os.unix=symlink")
                        || lv.starts_with("os.unix=slink")
                        || lv == "link" =>
                    {
                        // pure-ftpd sends `slink:` with nothing after it:
                        // an unknown target, not an empty one.
                        if let Some(t) = v
                            .split_once("slink:")
                            .map(|(_, t)| t)
                            .filter(|t| !t.is_empty())
                        {
                            e.target = Some(t.to_string());
                        }
                        EntryKind::Symlink
                    }
                    _ => EntryKind::File,
                };
            }
            "size" | "sizd" => e.size = v.parse().unwrap_or(0),
            "modify" => e.mtime = parse_timeval(v),
            "unix.mode" => e.mode = u32::from_str_radix(v.trim_start_matches("0o"), 8).ok(),
            _ => {}
        }
    }
    Some(e)
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parse one LIST line in the Unix (`ls -l`) or DOS format. `now` decides
/// the year of recent Unix entries.
pub fn parse_list(line: &str, now: SystemTime) -> Option<RemoteEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with("total ") || line.is_empty() {
        return None;
    }
    parse_unix(line, now).or_else(|| parse_dos(line))
}

/// Whitespace-separated tokens with the byte offset where each ends.
fn tokens(line: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b' ' {
            i += 1;
        }
        if start < i {
            out.push((start, i));
        }
    }
    out
}

fn parse_unix(line: &str, now: SystemTime) -> Option<RemoteEntry> {
    let kind = match line.as_bytes().first()? {
        b'-' => EntryKind::File,
        b'd' => EntryKind::Dir,
        b'l' => EntryKind::Symlink,
        _ => return None,
    };
    let perms = line.get(1..10)?;
    let mode = perms_to_mode(perms);
    let toks = tokens(line);
    let tok = |i: usize| &line[toks[i].0..toks[i].1];
    // Find the month: preceded by the size, followed by day and time/year.
    let m = (3..toks.len().saturating_sub(3)).find(|&i| {
        MONTHS.contains(&tok(i).to_ascii_lowercase().as_str())
            && tok(i - 1).chars().all(|c| c.is_ascii_digit())
    })?;
    let size: u64 = tok(m - 1).parse().ok()?;
    let month = MONTHS
        .iter()
        .position(|x| *x == tok(m).to_ascii_lowercase())? as u32
        + 1;
    let day: u32 = tok(m + 1).parse().ok()?;
    let ty = tok(m + 2);
    let name_start = toks[m + 2].1 + 1;
    let mut name = line.get(name_start..)?.to_string();
    let (mtime, precision) = if let Some((h, mi)) = ty.split_once(':') {
        let (h, mi): (u32, u32) = (h.parse().ok()?, mi.parse().ok()?);
        let now_d = chrono::DateTime::<Utc>::from(now);
        let mut year = now_d.year();
        let mk =
            |y: i32| NaiveDate::from_ymd_opt(y, month, day).and_then(|d| d.and_hms_opt(h, mi, 0));
        let mut t = mk(year)?;
        // A date more than a day in the future belongs to last year.
        if t.and_utc() > now_d + chrono::Duration::days(1) {
            year -= 1;
            t = mk(year)?;
        }
        (
            to_system_time(t.and_utc().timestamp(), 0),
            Precision::Minute,
        )
    } else {
        let year: i32 = ty.parse().ok()?;
        let t = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(0, 0, 0)?;
        (to_system_time(t.and_utc().timestamp(), 0), Precision::Day)
    };
    let mut target = None;
    if kind == EntryKind::Symlink
        && let Some((n, t)) = name.split_once(" -> ")
    {
        target = Some(t.to_string());
        name = n.to_string();
    }
    if name == "." || name == ".." || name.is_empty() {
        return None;
    }
    Some(RemoteEntry {
        name,
        kind,
        size,
        mtime,
        precision,
        mode,
        target,
    })
}

fn perms_to_mode(p: &str) -> Option<u32> {
    let b = p.as_bytes();
    if b.len() != 9 {
        return None;
    }
    let mut m = 0;
    for (i, &c) in b.iter().enumerate() {
        let bit = 1 << (8 - i);
        match c {
            b'r' | b'w' | b'x' => m |= bit,
            b's' | b't' => m |= bit,
            b'-' | b'S' | b'T' => {}
            _ => return None,
        }
    }
    Some(m)
}

fn parse_dos(line: &str) -> Option<RemoteEntry> {
    let toks = tokens(line);
    if toks.len() < 4 {
        return None;
    }
    let tok = |i: usize| &line[toks[i].0..toks[i].1];
    let date = NaiveDate::parse_from_str(tok(0), "%m-%d-%y")
        .or_else(|_| NaiveDate::parse_from_str(tok(0), "%m-%d-%Y"))
        .ok()?;
    let time = chrono::NaiveTime::parse_from_str(tok(1), "%I:%M%p")
        .or_else(|_| chrono::NaiveTime::parse_from_str(tok(1), "%H:%M"))
        .ok()?;
    let (kind, size) = if tok(2).eq_ignore_ascii_case("<DIR>") {
        (EntryKind::Dir, 0)
    } else {
        (EntryKind::File, tok(2).parse().ok()?)
    };
    let name = line.get(toks[2].1 + 1..)?.trim_start().to_string();
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some(RemoteEntry {
        name,
        kind,
        size,
        mtime: to_system_time(date.and_time(time).and_utc().timestamp(), 0),
        precision: Precision::Minute,
        mode: None,
        target: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> SystemTime {
        parse_timeval(s).unwrap()
    }

    #[test]
    fn mlsd_lines() {
        let e = parse_mlsd(
            "type=file;size=1234;modify=20240102030405.5;UNIX.mode=0644; a name; with semicolon",
        )
        .unwrap();
        assert_eq!(e.name, "a name; with semicolon");
        assert_eq!(
            (e.kind, e.size, e.mode),
            (EntryKind::File, 1234, Some(0o644))
        );
        assert_eq!(
            e.mtime.unwrap(),
            ts("20240102030405") + Duration::from_millis(500)
        );
        let d = parse_mlsd("type=dir;modify=20240102030405; -leading dash").unwrap();
        assert_eq!((d.kind, d.name.as_str()), (EntryKind::Dir, "-leading dash"));
        let s = parse_mlsd(
            "modify=20240102030405;perm=adfrw;size=5;type=OS.unix=symlink;unique=1; link",
        )
        .unwrap();
        assert_eq!(s.kind, EntryKind::Symlink);
        let s = parse_mlsd("type=OS.unix=slink:/etc/x; l2").unwrap();
        assert_eq!(
            (s.kind, s.target.as_deref()),
            (EntryKind::Symlink, Some("/etc/x"))
        );
        assert!(parse_mlsd("type=cdir;modify=20240102030405; .").is_none());
        let u = parse_mlsd("type=file;size=3; ünïcödé 名前").unwrap();
        assert_eq!(u.name, "ünïcödé 名前");
    }

    #[test]
    fn unix_list_lines() {
        let now = ts("20241115120000");
        let e = parse_list(
            "-rw-r--r--    1 1000     1000         8192 Nov  5 14:30 file with  spaces.txt",
            now,
        )
        .unwrap();
        assert_eq!(
            (e.name.as_str(), e.size, e.kind),
            ("file with  spaces.txt", 8192, EntryKind::File)
        );
        assert_eq!(e.mtime.unwrap(), ts("20241105143000"));
        assert_eq!((e.precision, e.mode), (Precision::Minute, Some(0o644)));
        // December seen in November is last year's.
        let old = parse_list("-rw-r--r-- 1 0 0 1 Dec 24 10:00 x", now).unwrap();
        assert_eq!(old.mtime.unwrap(), ts("20231224100000"));
        let y = parse_list("drwxr-xr-x 2 ftp ftp 4096 Jan  2  2020 -dir", now).unwrap();
        assert_eq!(
            (y.kind, y.name.as_str(), y.precision),
            (EntryKind::Dir, "-dir", Precision::Day)
        );
        assert_eq!(y.mtime.unwrap(), ts("20200102000000"));
        let l = parse_list("lrwxrwxrwx 1 0 0 5 Nov  5 14:30 link -> target file", now).unwrap();
        assert_eq!(
            (l.kind, l.name.as_str(), l.target.as_deref()),
            (EntryKind::Symlink, "link", Some("target file"))
        );
        // No group column.
        let g = parse_list("-rw-r--r-- 1 owner 77 Nov  5 14:30 nogroup", now).unwrap();
        assert_eq!((g.size, g.name.as_str()), (77, "nogroup"));
        assert!(parse_list("total 12", now).is_none());
    }

    #[test]
    fn dos_list_lines() {
        let now = SystemTime::now();
        let d = parse_list("01-02-20  03:04PM       <DIR>          My Dir", now).unwrap();
        assert_eq!((d.kind, d.name.as_str()), (EntryKind::Dir, "My Dir"));
        assert_eq!(d.mtime.unwrap(), ts("20200102150400"));
        let f = parse_list("11-05-2024  09:15AM             1234 report 1.pdf", now).unwrap();
        assert_eq!(
            (f.kind, f.size, f.name.as_str()),
            (EntryKind::File, 1234, "report 1.pdf")
        );
    }

    #[test]
    fn timeval_round_trip() {
        let t = ts("20240102030405");
        assert_eq!(format_timeval(t), "20240102030405");
        assert!(parse_timeval("2024").is_none());
    }
}
