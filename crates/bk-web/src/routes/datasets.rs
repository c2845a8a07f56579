//! The datasets view (browsing the FTP server and the allowed local roots)
//! and the backup form.

use super::*;

#[derive(Deserialize)]
pub(super) struct SideQ {
    side: Option<String>,
    path: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Entry {
    name: String,
    kind: &'static str,
    size: String,
    path: String,
}

fn pick_side(
    st: &AppState,
    conn: &Connection,
    side: Option<&str>,
) -> Result<&'static str, WebError> {
    match side {
        Some("ftp") if conn.ftp.is_some() => Ok("ftp"),
        Some("local") if !st.roots.is_empty() => Ok("local"),
        Some("ftp") => Err(WebError::BadRequest("You are not connected to an FTP server.".into())),
        Some("local") => Err(WebError::Forbidden(
            "No local folders are allowed: start bk web with --allow-root DIR.".into(),
        )),
        Some(_) => Err(WebError::BadRequest("Unknown side.".into())),
        None if conn.ftp.is_some() => Ok("ftp"),
        None if !st.roots.is_empty() => Ok("local"),
        None => Err(WebError::BadRequest(
            "There is nothing to browse: connect to an FTP server, or start bk web with --allow-root DIR.".into(),
        )),
    }
}

/// A dataset directory, checked: on the FTP server or under an allowed
/// root. Returns its location for the engine and the path the forms carry.
fn dataset_location(
    st: &AppState,
    conn: &Connection,
    side: &str,
    raw: &str,
) -> Result<(Location, String), WebError> {
    if side == "ftp" {
        let p = paths::ftp_path(raw).map_err(path_err)?;
        // The session's pool: the backup reuses its login.
        let pool = conn.pool.clone().ok_or_else(|| {
            WebError::BadRequest("You are not connected to an FTP server.".into())
        })?;
        let loc = Location::ftp_shared(pool, &p);
        Ok((loc, p))
    } else {
        let p = paths::confine_existing(raw, &st.roots).map_err(path_err)?;
        if !p.is_dir() {
            return Err(WebError::BadRequest(format!("{raw} is not a directory")));
        }
        let shown = p.display().to_string();
        Ok((Location::Local(p), shown))
    }
}

fn ftp_list(pool: &Pool, dir: &str) -> Result<Vec<bk_ftp::RemoteEntry>, WebError> {
    pool.run(true, |c| c.list(dir)).map_err(|e| match e.kind() {
        FtpErrorKind::NotFound => {
            WebError::NotFound(format!("{dir} does not exist on the FTP server"))
        }
        FtpErrorKind::PermissionDenied => {
            WebError::Forbidden(format!("The FTP server does not allow reading {dir}"))
        }
        _ => WebError::Upstream(format!("Listing {dir} on the FTP server failed: {e}")),
    })
}

pub(super) async fn browse(req: HttpRequest, st: St, q: web::Query<SideQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let side = pick_side(&st, &conn, q.side.as_deref())?;
    let raw = q.path.clone().unwrap_or_default();
    let (path, parent, where_, entries, empty) = if side == "ftp" {
        let p = paths::ftp_path(if raw.is_empty() { "/" } else { &raw }).map_err(path_err)?;
        let pool = conn.pool.clone().expect("ftp side has a pool");
        let dir = p.clone();
        let mut list = blocking(move || ftp_list(&pool, &dir)).await?;
        list.sort_by(|a, b| {
            (a.kind != EntryKind::Dir, &a.name).cmp(&(b.kind != EntryKind::Dir, &b.name))
        });
        let entries: Vec<Entry> = list
            .into_iter()
            .filter(|e| e.name != "." && e.name != "..")
            .map(|e| Entry {
                path: ftp_url::join(&p, &e.name),
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
                name: e.name,
            })
            .collect();
        let parent = (p != "/").then(|| ftp_url::parent(&p).to_string());
        let where_ = format!(
            "On the FTP server {}:",
            conn.ftp.as_ref().map(|u| u.addr()).unwrap_or_default()
        );
        (Some(p), parent, where_, entries, "This directory is empty.")
    } else if raw.is_empty() {
        let entries = st
            .roots
            .iter()
            .map(|r| Entry {
                name: r.display().to_string(),
                kind: "dir",
                size: String::new(),
                path: r.display().to_string(),
            })
            .collect();
        (
            None,
            None,
            String::new(),
            entries,
            "No local folders are allowed.",
        )
    } else {
        let p = paths::confine_existing(&raw, &st.roots).map_err(path_err)?;
        let dir = p.clone();
        let entries = blocking(move || {
            let rd = std::fs::read_dir(&dir)
                .map_err(|e| WebError::BadRequest(format!("Cannot read {}: {e}", dir.display())))?;
            let mut v = Vec::new();
            for e in rd.flatten() {
                let path = e.path();
                let meta = std::fs::metadata(&path).ok();
                let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
                v.push(Entry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    kind: if is_dir { "dir" } else { "file" },
                    size: meta
                        .filter(|m| m.is_file())
                        .map(|m| human(m.len()))
                        .unwrap_or_default(),
                    path: path.display().to_string(),
                });
            }
            v.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
            Ok(v)
        })
        .await?;
        let parent = if st.roots.contains(&p) {
            Some(String::new())
        } else {
            p.parent().map(|x| x.display().to_string())
        };
        (
            Some(p.display().to_string()),
            parent,
            "On this computer:".to_string(),
            entries,
            "This directory is empty.",
        )
    };
    st.render(
        &ctx,
        StatusCode::OK,
        "browse.html",
        context! {
            nav => "datasets",
            sides => sides(&st, &conn),
            side,
            path,
            parent,
            location => where_,
            entries,
            empty,
        },
    )
}

pub(super) async fn backup_form(req: HttpRequest, st: St, q: web::Query<SideQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let side = pick_side(&st, &conn, q.side.as_deref())?;
    let raw = q.path.clone().unwrap_or_default();
    let (loc, path) = dataset_location(&st, &conn, side, &raw)?;
    let where_ = if side == "ftp" {
        if let Some(pool) = conn.pool.clone() {
            let dir = path.clone();
            blocking(move || ftp_list(&pool, &dir).map(|_| ())).await?;
        }
        format!(
            "A directory on the FTP server {}; bk pulls it from there.",
            conn.ftp.as_ref().map(|u| u.addr()).unwrap_or_default()
        )
    } else {
        "A directory on this computer.".to_string()
    };
    st.render(
        &ctx,
        StatusCode::OK,
        "backup.html",
        context! {
            nav => "datasets",
            side,
            dataset => loc.dataset_name(None).unwrap_or_default(),
            path,
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
    let (loc, _) = dataset_location(&st, &conn, side, &form.path)?;
    let dataset = match loc.dataset_name(Some(form.dataset.trim())) {
        Ok(d) => d,
        Err(e) => {
            return st.render(
                &ctx,
                StatusCode::BAD_REQUEST,
                "backup.html",
                context! {
                    nav => "datasets",
                    side,
                    path => form.path,
                    dataset => form.dataset.trim(),
                    error => format!("Choose another dataset name: {e}"),
                },
            );
        }
    };
    let full = form.full.is_some();
    let repo = conn.repo.clone();
    // The location shows its path or URL, never a password.
    let title = format!("Back up {loc} as \"{dataset}\"");
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let ds = dataset.clone();
    let turn = st.backup_turn(&conn.repo_shown);
    let job = st
        .jobs
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
                let snap = bk_core::backup(&repo, &*src, &opts)?;
                Ok(backup_summary(&snap))
            };
            run().map_err(|e| JobError::from_core(e, |m| scrub(m, &secret)))
        });
    Ok(see_other(&format!("/jobs/{}", job.id)))
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

fn backup_summary(s: &Snapshot) -> Summary {
    let t = &s.stats;
    Summary {
        snapshot: Some(s.id),
        facts: vec![
            (
                "Backup".into(),
                format!(
                    "#{} ({})",
                    s.id,
                    if s.full { "full" } else { "incremental" }
                ),
            ),
            ("Files".into(), t.files.to_string()),
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
        ],
        warnings: s
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.path, w.message))
            .collect(),
        errors: Vec::new(),
    }
}
