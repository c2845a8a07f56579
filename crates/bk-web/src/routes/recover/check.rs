//! Every check of a recovery, run before the job starts: which backup,
//! which paths of it, where to (confined, not the repository), and what
//! the output folder already holds.

use std::collections::BTreeSet;
use std::path::Path;

use super::super::*;
use super::ask::Ask;
use crate::names;

/// The backup a recovery will use, and what the selection holds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Chosen {
    pub id: u64,
    /// RFC 3339, UTC (for `<time datetime>`).
    pub time: String,
    /// The same for a reader without JavaScript ("2026-12-01 20:14 UTC").
    pub time_utc: String,
    pub files: u64,
    pub bytes: u64,
    pub size: String,
    /// Names at the top of the output folder that the recovery writes.
    #[serde(skip)]
    pub top: BTreeSet<Vec<u8>>,
}

/// Where a recovery writes, checked.
pub(crate) struct Output {
    pub loc: Location,
    /// Its path or URL, never a password.
    pub shown: String,
    /// "on this computer" or "on the FTP server host:port".
    pub side: String,
    /// The names already in it (empty when it does not exist yet).
    pub existing: Vec<Vec<u8>>,
}

/// A recovery ready to start.
pub(crate) struct Resolved {
    pub chosen: Chosen,
    pub output: Output,
    /// Entries of the output folder that the recovery replaces.
    pub replaced: Vec<Vec<u8>>,
    /// Entries of the output folder that it keeps.
    pub kept: Vec<Vec<u8>>,
}

/// A check's outcome: a message for the form, or a failure of the server
/// (a [`WebError::Forbidden`] is a path outside what this server may
/// touch: the handlers show it on the form too, with its status).
pub(crate) type Checked<T> = Result<Result<T, String>, WebError>;

fn utc_text(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

fn server_zone() -> String {
    chrono::Local::now().format("UTC%:z").to_string()
}

/// The backup the form asks for.
pub(crate) fn selection(a: &Ask) -> Result<Select, String> {
    if a.which == "before" {
        if !a.before_utc.trim().is_empty() {
            let t = chrono::DateTime::parse_from_rfc3339(a.before_utc.trim())
                .map_err(|_| "The date and time could not be read. Type them again.".to_string())?;
            return Ok(Select::Before(t));
        }
        let date = a.before_date.trim();
        if date.is_empty() {
            return Err("Choose the date before which to recover.".into());
        }
        if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
            return Err(format!(
                "\"{date}\" is not a date: use the form year-month-day, such as 2026-12-01."
            ));
        }
        let time = a.before_time.trim();
        let t = if time.is_empty() {
            date.to_string()
        } else {
            let ok = ["%H:%M", "%H:%M:%S"]
                .iter()
                .any(|f| chrono::NaiveTime::parse_from_str(time, f).is_ok());
            if !ok {
                return Err(format!(
                    "\"{time}\" is not a time: use hours and minutes, such as 20:30 (seconds may follow: 20:30:15)."
                ));
            }
            format!("{date} {time}")
        };
        bk_core::parse_time(&t).map(Select::Before).map_err(|_| {
            format!(
                "{date} {time} does not exist in the server's time zone ({}).",
                server_zone()
            )
        })
    } else {
        a.id.trim()
            .parse()
            .map(Select::Id)
            .map_err(|_| "Choose the backup to recover.".to_string())
    }
}

/// Choose the backup and plan the selection in it.
pub(crate) async fn choose(conn: &Connection, a: &Ask) -> Checked<Chosen> {
    let select = match selection(a) {
        Ok(s) => s,
        Err(m) => return Ok(Err(m)),
    };
    let repo = conn.repo.clone();
    let ds = a.dataset.clone();
    let paths = if a.scope == "some" {
        a.paths.clone()
    } else {
        Vec::new()
    };
    blocking(move || {
        let snaps = repo.snapshots(Some(&ds)).map_err(core_err)?;
        let snap = match bk_core::snapshot::select(&ds, &snaps, select) {
            Ok(s) => s.clone(),
            Err(_) if snaps.is_empty() => {
                return Ok(Err(format!("There are no backups of \"{ds}\".")));
            }
            Err(_) => {
                let first = snaps
                    .iter()
                    .min_by_key(|s| (s.time, s.id))
                    .expect("non-empty");
                let msg = match select {
                    Select::Before(t) => format!(
                        "There is no backup of \"{ds}\" before {}. The first one is #{} of {}.",
                        utc_text(&t),
                        first.id,
                        utc_text(&first.time)
                    ),
                    Select::Id(n) => format!("There is no backup #{n} of \"{ds}\"."),
                    Select::Latest => format!("There are no backups of \"{ds}\"."),
                };
                return Ok(Err(msg));
            }
        };
        let idx = repo.index().map_err(core_err)?;
        let plan = match bk_core::ops::restore::plan_paths(&repo, &idx, &snap, &paths) {
            Ok(p) => p,
            Err(bk_core::Error::PathNotFound { path, .. }) => {
                return Ok(Err(format!(
                    "Backup #{} does not have {path}: choose the files and folders again.",
                    snap.id
                )));
            }
            Err(e @ bk_core::Error::Invalid(_)) => return Ok(Err(e.to_string())),
            Err(e) => return Err(core_err(e)),
        };
        let top = plan
            .dirs
            .iter()
            .chain(&plan.files)
            .chain(&plan.specials)
            .map(|e| e.path.split(|&b| b == b'/').next().unwrap_or(b"").to_vec())
            .filter(|n| !n.is_empty())
            .collect();
        Ok(Ok(Chosen {
            id: snap.id,
            time: rfc3339_utc(&snap.time),
            time_utc: utc_text(&snap.time),
            files: plan.files.len() as u64,
            bytes: plan.bytes,
            size: human(plan.bytes),
            top,
        }))
    })
    .await
}

/// Refuse an output folder that is, lies inside, or holds the repository.
fn into_repository(out: &Path, repo: &Path) -> bool {
    let repo = repo.canonicalize().unwrap_or_else(|_| repo.to_path_buf());
    out.starts_with(&repo) || repo.starts_with(out)
}

fn ftp_overlaps(out: &str, repo: &str) -> bool {
    let under =
        |a: &str, b: &str| a == b || a.starts_with(&format!("{}/", b.trim_end_matches('/')));
    under(out, repo) || under(repo, out)
}

const INTO_REPO: &str = "That folder is where the backups themselves are kept (or holds it): recovering there would mix files into the backups. Choose a folder outside it.";

/// Check the output and list what it already holds.
pub(crate) async fn output(st: &AppState, conn: &Connection, a: &Ask) -> Checked<Output> {
    let raw = a.out.trim();
    if raw.is_empty() {
        return Ok(Err("Choose the folder to recover into.".into()));
    }
    match a.dest.as_str() {
        "local" if !st.roots.is_empty() => {
            let roots: Vec<String> = st.roots.iter().map(|r| r.display().to_string()).collect();
            let p = match paths::confine_new(raw, &st.roots) {
                Ok(p) => p,
                Err(PathError::Forbidden(_)) => {
                    return Err(WebError::Forbidden(format!(
                        "{raw} is outside the folders this server may write to ({}). Choose a folder inside one of them.",
                        roots.join(", ")
                    )));
                }
                Err(PathError::Invalid(m)) if m.contains("not an absolute") => {
                    return Ok(Err(format!(
                        "\"{raw}\" is not a full path: it must start with / (such as {}/recovered).",
                        roots[0]
                    )));
                }
                Err(e) => {
                    let mut m = e.to_string();
                    if let Some(c) = m.get(..1) {
                        m = c.to_uppercase() + &m[1..];
                    }
                    return Ok(Err(format!("{m}.")));
                }
            };
            if let Some(r) = conn.repo_at.local_path()
                && into_repository(&p, r)
            {
                return Ok(Err(INTO_REPO.into()));
            }
            let dir = p.clone();
            let existing = blocking(move || {
                use std::os::unix::ffi::OsStrExt;
                match std::fs::symlink_metadata(&dir) {
                    Err(_) => return Ok(Ok(Vec::new())),
                    Ok(m) if !m.is_dir() => {
                        return Ok(Err(format!(
                            "{} is a file, not a folder. Choose a folder.",
                            dir.display()
                        )));
                    }
                    Ok(_) => {}
                }
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(_) => {
                        return Ok(Err(format!(
                            "The folder {} cannot be read by this server. Choose another one.",
                            dir.display()
                        )));
                    }
                };
                let mut v: Vec<Vec<u8>> = rd
                    .flatten()
                    .map(|e| e.file_name().as_bytes().to_vec())
                    .collect();
                v.sort();
                Ok(Ok(v))
            })
            .await?;
            let existing = match existing {
                Ok(e) => e,
                Err(m) => return Ok(Err(m)),
            };
            Ok(Ok(Output {
                shown: p.display().to_string(),
                loc: Location::Local(p),
                side: "on this computer".into(),
                existing,
            }))
        }
        "ftp" if conn.ftp.is_some() => {
            let url = conn.ftp.as_ref().expect("checked");
            let p = match paths::ftp_path(raw) {
                Ok(p) => p,
                Err(_) => {
                    return Err(WebError::Forbidden(format!(
                        "\"{raw}\" cannot be used as a folder on the FTP server (it holds \"..\" or a line break)."
                    )));
                }
            };
            if p == "/" {
                return Ok(Err(
                    "Recover into a folder, not into the FTP server's top folder.".into(),
                ));
            }
            if let Location::Ftp { url: r, .. } = &conn.repo_at
                && r.addr() == url.addr()
                && ftp_overlaps(&p, &ftp_url::normalize(&r.path))
            {
                return Ok(Err(INTO_REPO.into()));
            }
            let pool = conn.pool.clone().expect("ftp side has a pool");
            let dir = p.clone();
            let listed = blocking(move || Ok(pool.run(true, |c| c.list(&dir)))).await?;
            let existing = match listed {
                Ok(l) => {
                    let mut v: Vec<Vec<u8>> = l
                        .into_iter()
                        .filter(|e| e.name != "." && e.name != "..")
                        .map(|e| e.name.into_bytes())
                        .collect();
                    v.sort();
                    v
                }
                Err(e) if e.kind() == FtpErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Ok(Err(format!(
                        "The folder {p} on the FTP server could not be read: {}.",
                        e.text()
                    )));
                }
            };
            // The session's pool: the recovery reuses its login.
            let loc = Location::ftp_shared(conn.pool.clone().expect("ftp side has a pool"), &p);
            Ok(Ok(Output {
                shown: loc.to_string(),
                loc,
                side: format!("on the FTP server {}", url.addr()),
                existing,
            }))
        }
        "local" => Ok(Err(
            "This server may not write to any folder on this computer: recover to the FTP server instead.".into(),
        )),
        _ => Ok(Err("Choose where to recover to.".into())),
    }
}

/// Every check, in the order a person fixes them.
pub(crate) async fn resolve(st: &AppState, conn: &Connection, a: &Ask) -> Checked<Resolved> {
    if a.scope == "some" && a.paths.is_empty() {
        return Ok(Err("Tick at least one file or folder to recover.".into()));
    }
    let chosen = match choose(conn, a).await? {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    let output = match output(st, conn, a).await? {
        Ok(o) => o,
        Err(m) => return Ok(Err(m)),
    };
    let (replaced, kept): (Vec<Vec<u8>>, Vec<Vec<u8>>) = output
        .existing
        .iter()
        .cloned()
        .partition(|n| chosen.top.contains(n));
    Ok(Ok(Resolved {
        chosen,
        output,
        replaced,
        kept,
    }))
}

/// Names as shown on a page (HTML, escapes marked).
pub(crate) fn shown_list(v: &[Vec<u8>]) -> Vec<minijinja::Value> {
    v.iter().map(|n| names::html_value(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_and_what_holds_it_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let repo = root.join("repo");
        std::fs::create_dir(&repo).unwrap();
        assert!(into_repository(&repo, &repo));
        assert!(into_repository(&repo.join("x/y"), &repo));
        assert!(into_repository(&root, &repo), "a folder that holds it");
        assert!(!into_repository(&root.join("repo2"), &repo));
        assert!(!into_repository(&root.join("out"), &repo));
        assert!(ftp_overlaps("/backups", "/backups"));
        assert!(ftp_overlaps("/backups/a", "/backups/"));
        assert!(ftp_overlaps("/b", "/b/backups"));
        assert!(!ftp_overlaps("/backups2", "/backups"));
    }

    #[test]
    fn a_time_to_the_minute_is_enough() {
        let a = |d: &str, t: &str| Ask {
            which: "before".into(),
            before_date: d.into(),
            before_time: t.into(),
            ..Default::default()
        };
        let Ok(Select::Before(x)) = selection(&a("2026-12-01", "20:30")) else {
            panic!()
        };
        let Ok(Select::Before(y)) = selection(&a("2026-12-01", "20:30:15")) else {
            panic!()
        };
        assert_eq!((y - x).num_seconds(), 15);
        let e = selection(&a("2026-12-01", "8:30 PM")).unwrap_err();
        assert!(e.contains("hours and minutes"), "{e}");
        assert!(
            selection(&a("", "20:30"))
                .unwrap_err()
                .contains("Choose the date")
        );
        assert!(
            selection(&a("01/12/2026", ""))
                .unwrap_err()
                .contains("year-month-day")
        );
    }
}
