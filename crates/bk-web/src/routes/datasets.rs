//! The Folders view (browsing the FTP server and the allowed local roots),
//! the backup form, and Home's "Back up now". Folder paths travel as bytes
//! in parameter form ([`crate::names`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bk_core::location::Role;

use super::*;
use crate::names::{self, RawQuery};
use crate::words;

/// `side` and `path` of a Folders address; the path as raw bytes.
struct SideQ {
    side: Option<String>,
    path: Vec<u8>,
}

impl SideQ {
    fn of(req: &HttpRequest) -> Result<SideQ, WebError> {
        let q = RawQuery::parse(req.query_string())
            .map_err(|e| WebError::BadRequest(format!("The address is malformed: {e}.")))?;
        Ok(SideQ {
            side: q.text("side").map(str::to_string),
            path: q.get("path").unwrap_or_default().to_vec(),
        })
    }
}

#[derive(Serialize)]
pub(super) struct Entry {
    /// The name as HTML (escapes marked).
    name: minijinja::Value,
    kind: &'static str,
    size: String,
    /// The path in parameter form.
    path: String,
    #[serde(skip)]
    sort: Vec<u8>,
}

const NO_LOCAL: &str = "This server may not use folders of this computer: the person who started bk web chooses which ones it may use.";

fn pick_side(
    st: &AppState,
    conn: &Connection,
    side: Option<&str>,
) -> Result<&'static str, WebError> {
    match side {
        Some("ftp") if conn.ftp.is_some() => Ok("ftp"),
        Some("local") if !st.roots.is_empty() => Ok("local"),
        Some("ftp") => Err(WebError::BadRequest(
            "You are not connected to an FTP server.".into(),
        )),
        Some("local") => Err(WebError::Forbidden(NO_LOCAL.into())),
        Some(_) => Err(WebError::BadRequest("Unknown side.".into())),
        None if conn.ftp.is_some() => Ok("ftp"),
        None if !st.roots.is_empty() => Ok("local"),
        None => Err(WebError::BadRequest(format!(
            "There is nothing to browse: connect to an FTP server. {NO_LOCAL}"
        ))),
    }
}

/// FTP paths are text (the FTP client reads names as UTF-8).
fn ftp_text(raw: &[u8]) -> Result<&str, WebError> {
    std::str::from_utf8(raw).map_err(|_| {
        WebError::BadRequest(format!(
            "{} is not a name the FTP server can have: FTP names here are text (UTF-8).",
            names::shown(raw)
        ))
    })
}

/// A dataset folder, checked and shown.
pub(super) struct Folder {
    /// Its location for the engine.
    pub(super) loc: Location,
    /// Its path as bytes (local) or text (FTP).
    pub(super) bytes: Vec<u8>,
}

impl Folder {
    /// What the pages show (plain text).
    pub(super) fn shown(&self) -> String {
        match &self.loc {
            Location::Local(_) => names::shown(&self.bytes),
            other => other.to_string(),
        }
    }
}

/// A dataset directory, checked: on the FTP server or under an allowed
/// root.
fn dataset_location(
    st: &AppState,
    conn: &Connection,
    side: &str,
    raw: &[u8],
) -> Result<Folder, WebError> {
    if side == "ftp" {
        let p = paths::ftp_path(ftp_text(raw)?).map_err(path_err)?;
        // The session's pool: the backup reuses its login.
        let pool = conn.pool.clone().ok_or_else(|| {
            WebError::BadRequest("You are not connected to an FTP server.".into())
        })?;
        let loc = Location::ftp_shared(pool, &p);
        Ok(Folder {
            loc,
            bytes: p.into_bytes(),
        })
    } else {
        let p = paths::confine_existing(OsStr::from_bytes(raw), &st.roots).map_err(path_err)?;
        if !p.is_dir() {
            return Err(WebError::BadRequest(format!(
                "{} is not a folder.",
                names::shown(raw)
            )));
        }
        Ok(Folder {
            bytes: p.as_os_str().as_bytes().to_vec(),
            loc: Location::Local(p),
        })
    }
}

fn ftp_list(pool: &Pool, dir: &str) -> Result<Vec<bk_ftp::RemoteEntry>, WebError> {
    pool.run(true, |c| c.list(dir)).map_err(|e| match e.kind() {
        FtpErrorKind::NotFound => {
            WebError::NotFound(format!("{dir} does not exist on the FTP server."))
        }
        FtpErrorKind::PermissionDenied => {
            WebError::Forbidden(format!("The FTP server does not allow reading {dir}."))
        }
        _ => WebError::Upstream(words::plain(&format!(
            "Listing {dir} on the FTP server failed: {e}"
        ))),
    })
}

fn sort_entries(v: &mut [Entry]) {
    v.sort_by(|a, b| (a.kind != "dir", &a.sort).cmp(&(b.kind != "dir", &b.sort)));
}

fn local_entries(dir: &Path) -> Result<Vec<Entry>, WebError> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        WebError::BadRequest(format!(
            "Cannot read {}: {}.",
            names::shown(dir.as_os_str().as_bytes()),
            words::io_error(&e)
        ))
    })?;
    let mut v = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        let meta = std::fs::metadata(&path).ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let name = e.file_name().as_bytes().to_vec();
        v.push(Entry {
            name: names::html_value(&name),
            kind: if is_dir { "dir" } else { "file" },
            size: meta
                .filter(|m| m.is_file())
                .map(|m| human(m.len()))
                .unwrap_or_default(),
            path: names::encode(path.as_os_str().as_bytes()),
            sort: name,
        });
    }
    sort_entries(&mut v);
    Ok(v)
}

pub(super) async fn browse(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let q = SideQ::of(&req)?;
    let side = pick_side(&st, &conn, q.side.as_deref())?;
    // The folder shown (as HTML), its parameter form, its parent's.
    let (path, path_enc, parent, where_, entries, empty) = if side == "ftp" {
        let raw = ftp_text(&q.path)?;
        let p = paths::ftp_path(if raw.is_empty() { "/" } else { raw }).map_err(path_err)?;
        let pool = conn.pool.clone().expect("ftp side has a pool");
        let dir = p.clone();
        let list = blocking(move || ftp_list(&pool, &dir)).await?;
        let mut entries: Vec<Entry> = list
            .into_iter()
            .filter(|e| e.name != "." && e.name != "..")
            .map(|e| Entry {
                path: names::encode(ftp_url::join(&p, &e.name).as_bytes()),
                kind: match e.kind {
                    EntryKind::Dir => "dir",
                    EntryKind::File => "file",
                    EntryKind::Symlink => "link",
                },
                size: if e.kind == EntryKind::File {
                    human(e.size)
                } else {
                    String::new()
                },
                name: names::html_value(e.name.as_bytes()),
                sort: e.name.into_bytes(),
            })
            .collect();
        sort_entries(&mut entries);
        let parent = (p != "/").then(|| names::encode(ftp_url::parent(&p).as_bytes()));
        let where_ = format!(
            "On the FTP server {}:",
            conn.ftp.as_ref().map(|u| u.addr()).unwrap_or_default()
        );
        (
            Some(names::html_value(p.as_bytes())),
            names::encode(p.as_bytes()),
            parent,
            where_,
            entries,
            "This folder is empty.",
        )
    } else if q.path.is_empty() {
        let entries = st
            .roots
            .iter()
            .map(|r| {
                let b = r.as_os_str().as_bytes();
                Entry {
                    name: names::html_value(b),
                    kind: "dir",
                    size: String::new(),
                    path: names::encode(b),
                    sort: b.to_vec(),
                }
            })
            .collect();
        (
            None,
            String::new(),
            None,
            String::new(),
            entries,
            "This server may use no folders of this computer.",
        )
    } else {
        let p = paths::confine_existing(OsStr::from_bytes(&q.path), &st.roots).map_err(path_err)?;
        let dir = p.clone();
        let entries = blocking(move || local_entries(&dir)).await?;
        let parent = if st.roots.contains(&p) {
            Some(String::new())
        } else {
            p.parent().map(|x| names::encode(x.as_os_str().as_bytes()))
        };
        let b = p.as_os_str().as_bytes();
        (
            Some(names::html_value(b)),
            names::encode(b),
            parent,
            "On this computer:".to_string(),
            entries,
            "This folder is empty.",
        )
    };
    st.render(
        &ctx,
        StatusCode::OK,
        "browse.html",
        context! {
            nav => "folders",
            sides => sides(&st, &conn),
            side,
            path,
            path_enc,
            parent,
            location => where_,
            entries,
            empty,
        },
    )
}

pub(super) async fn backup_form(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let q = SideQ::of(&req)?;
    let side = pick_side(&st, &conn, q.side.as_deref())?;
    let folder = dataset_location(&st, &conn, side, &q.path)?;
    let where_ = if side == "ftp" {
        if let Some(pool) = conn.pool.clone() {
            let dir = String::from_utf8_lossy(&folder.bytes).into_owned();
            blocking(move || ftp_list(&pool, &dir).map(|_| ())).await?;
        }
        format!(
            "A folder on the FTP server {}; bk pulls it from there.",
            conn.ftp.as_ref().map(|u| u.addr()).unwrap_or_default()
        )
    } else {
        "A folder on this computer.".to_string()
    };
    st.render(
        &ctx,
        StatusCode::OK,
        "backup.html",
        context! {
            nav => "folders",
            side,
            dataset => folder.loc.dataset_name(None).unwrap_or_default(),
            path => names::html_value(&folder.bytes),
            path_enc => names::encode(&folder.bytes),
            location => where_,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct BackupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    side: String,
    /// The folder in parameter form ([`names::encode`]).
    #[serde(default)]
    path: String,
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    full: Option<String>,
}

pub(super) async fn backup(req: HttpRequest, st: St, form: web::Form<BackupForm>) -> Res {
    let (ctx, conn) = st.post_conn(&req, &form.csrf)?;
    let side = pick_side(&st, &conn, Some(form.side.as_str()))?;
    let raw = names::decode(&form.path)
        .map_err(|e| WebError::BadRequest(format!("The folder could not be read: {e}.")))?;
    let folder = dataset_location(&st, &conn, side, &raw)?;
    let dataset = match folder.loc.dataset_name(Some(form.dataset.trim())) {
        Ok(d) => d,
        Err(e) => {
            return st.render(
                &ctx,
                StatusCode::BAD_REQUEST,
                "backup.html",
                context! {
                    nav => "folders",
                    side,
                    path => names::html_value(&folder.bytes),
                    path_enc => names::encode(&folder.bytes),
                    dataset => form.dataset.trim(),
                    error => words::plain(&format!("Choose another dataset name: {e}")),
                },
            );
        }
    };
    let job = start_backup(&st, &conn, folder, dataset, form.full.is_some());
    Ok(see_other(&format!("/jobs/{}", job.id)))
}

#[derive(Deserialize)]
pub(super) struct BackupNowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dataset: String,
}

/// "Back up now" on Home: the dataset's last source, with its options.
pub(super) async fn backup_now(req: HttpRequest, st: St, form: web::Form<BackupNowForm>) -> Res {
    let (_ctx, conn) = st.post_conn(&req, &form.csrf)?;
    let repo = conn.repo.clone();
    let ds = form.dataset.clone();
    let last = blocking(move || {
        let snaps = repo.snapshots(Some(&ds)).map_err(core_err)?;
        snaps.into_iter().max_by_key(|s| s.id).ok_or_else(|| {
            WebError::NotFound(format!(
                "There are no backups of a dataset named \"{ds}\" yet: choose its folder under Folders to make the first one."
            ))
        })
    })
    .await?;
    let folder = last_source(&st, &conn, &last)?;
    // An explicit full backup stays full; the first one is full only
    // because it had nothing to compare with.
    let full = last.full && last.parent.is_some();
    let job = start_backup(&st, &conn, folder, last.dataset.clone(), full);
    Ok(see_other(&format!("/jobs/{}", job.id)))
}

/// Where the dataset was last backed up from, usable by this session.
fn last_source(st: &AppState, conn: &Connection, last: &Snapshot) -> Result<Folder, WebError> {
    let loc = Location::parse(&last.source, Role::Dataset, &Default::default())
        .map_err(|e| WebError::BadRequest(words::plain(&e.to_string())))?;
    match loc {
        Location::Local(p) => {
            if st.roots.is_empty() {
                return Err(WebError::Forbidden(format!(
                    "\"{}\" was backed up from {} on this computer. {NO_LOCAL}",
                    last.dataset, last.source
                )));
            }
            dataset_location(st, conn, "local", p.as_os_str().as_bytes())
        }
        Location::Ftp { url, .. } => match &conn.ftp {
            Some(mine) if mine.addr() == url.addr() && mine.scheme == url.scheme => {
                dataset_location(st, conn, "ftp", url.path.as_bytes())
            }
            Some(mine) => Err(WebError::BadRequest(format!(
                "\"{}\" comes from the FTP server {}, and you are connected to {}. Log out and connect to {} to back it up now.",
                last.dataset,
                url.addr(),
                mine.addr(),
                url.addr()
            ))),
            None => Err(WebError::BadRequest(format!(
                "\"{}\" comes from the FTP server {}, and you are not connected to it. Log out and connect to {} to back it up now.",
                last.dataset,
                url.addr(),
                url.addr()
            ))),
        },
        other => Err(WebError::BadRequest(format!(
            "\"{}\" was backed up from {other}, which this page cannot back up now.",
            last.dataset
        ))),
    }
}

/// Start a backup job of `folder` as `dataset`.
fn start_backup(
    st: &AppState,
    conn: &Connection,
    folder: Folder,
    dataset: String,
    full: bool,
) -> Arc<Job> {
    let repo = conn.repo.clone();
    // The folder shows its path or URL, never a password.
    let title = format!("Back up {} as \"{dataset}\"", folder.shown());
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let ds = dataset.clone();
    let turn = st.backup_turn(&conn.repo_shown);
    let loc = folder.loc;
    st.jobs
        .spawn(JobKind::Backup, title, dataset, move |job, cancel| {
            let run = || -> bk_core::Result<Summary> {
                let _turn = wait_turn(&turn, &job, &cancel)?;
                job.set_current("");
                let src = loc.source(&[])?;
                let opts = BackupOptions::new(ds)
                    .full(full)
                    .threads(bk_core::ops::backup::default_threads())
                    .progress(Arc::new(Tracker(job.clone())))
                    .cancel(cancel.clone());
                let r = bk_core::backup(&repo, &*src, &opts);
                // What the engine noted (the repository left out, a mount
                // point not crossed), for this job's page.
                let notes = repo.take_notes();
                Ok(backup_summary(&r?, notes))
            };
            run().map_err(|e| JobError::from_core(e, |m| scrub(m, &secret)))
        })
}

/// Wait for this repository's backup turn, or until the job is cancelled.
fn wait_turn<'a>(
    turn: &'a std::sync::Mutex<()>,
    job: &Job,
    cancel: &Cancel,
) -> bk_core::Result<std::sync::MutexGuard<'a, ()>> {
    let mut waiting = false;
    loop {
        cancel.check()?;
        match turn.try_lock() {
            Ok(g) => return Ok(g),
            // A backup that panicked left nothing behind that this one uses.
            Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                if !waiting {
                    job.set_current("waiting for another backup into this repository to end");
                    waiting = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn backup_summary(s: &Snapshot, notes: Vec<String>) -> Summary {
    let t = &s.stats;
    let mut facts = vec![
        (
            "Backup".into(),
            format!(
                "#{} ({})",
                s.id,
                if s.full { "full" } else { "incremental" }
            ),
        ),
        // Added, modified and deleted count the same entries (files,
        // links, pipes; not folders), so the numbers agree.
        ("Entries".into(), words::entries(t.files, t.others)),
        ("Folders".into(), t.dirs.to_string()),
        ("Size".into(), human(t.bytes)),
        ("Added".into(), t.added.to_string()),
        ("Modified".into(), t.modified.to_string()),
        ("Deleted".into(), t.deleted.to_string()),
        (
            "Files read".into(),
            format!("{} ({})", t.files_read, human(t.bytes_read)),
        ),
        ("Bytes stored".into(), human(t.stored_bytes)),
        ("Warnings".into(), s.warnings.len().to_string()),
    ];
    facts.extend(
        notes
            .into_iter()
            .map(|n| ("Note".to_string(), words::plain(&n))),
    );
    Summary {
        snapshot: Some(s.id),
        facts,
        warnings: s
            .warnings
            .iter()
            .map(|w| words::plain(&format!("{}: {}", w.path, w.message)))
            .collect(),
        errors: Vec::new(),
    }
}
