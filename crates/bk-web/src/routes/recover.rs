//! The recovery form and recovery jobs.

use super::*;

use super::snapshots::snap_rows;

#[derive(Deserialize)]
pub(super) struct RestoreQ {
    dataset: Option<String>,
    id: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(super) struct RestoreForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    dest: String,
    #[serde(default)]
    out: String,
    #[serde(default)]
    which: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    before_date: String,
    #[serde(default)]
    before_time: String,
    #[serde(default)]
    before_utc: String,
}

async fn restore_page(
    st: &AppState,
    ctx: &Ctx,
    conn: &Connection,
    status: StatusCode,
    f: &RestoreForm,
    error: Option<String>,
) -> Res {
    let repo = conn.repo.clone();
    let ds = f.dataset.clone();
    let (datasets, snaps) = blocking(move || {
        let d = repo.datasets().map_err(core_err)?;
        let s = if ds.is_empty() {
            Vec::new()
        } else {
            repo.snapshots(Some(&ds)).map_err(core_err)?
        };
        Ok((d, s))
    })
    .await?;
    if !f.dataset.is_empty() && snaps.is_empty() {
        return Err(WebError::NotFound(format!(
            "There are no backups of a dataset named \"{}\".",
            f.dataset
        )));
    }
    let sides = sides(st, conn);
    let dest = if sides.iter().any(|s| s.side == f.dest) {
        f.dest.clone()
    } else {
        sides
            .first()
            .map(|s| s.side.to_string())
            .unwrap_or_default()
    };
    let rows = snap_rows(&snaps);
    let id: Option<u64> = f.id.parse().ok().or_else(|| rows.first().map(|r| r.id));
    let which = if f.which == "before" { "before" } else { "id" };
    st.render(
        ctx,
        status,
        "restore.html",
        context! {
            nav => "home",
            error,
            datasets,
            dataset => f.dataset,
            snapshots => rows,
            id,
            which,
            sides,
            dest,
            out => f.out,
            out_hint => if dest == "local" {
                st.roots.first().map(|r| r.join("recovered").display().to_string()).unwrap_or_default()
            } else {
                "/recovered".to_string()
            },
            roots => st.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>(),
            before_date => f.before_date,
            before_time => f.before_time,
            server_tz => chrono::Local::now().format("UTC%:z").to_string(),
        },
    )
}

pub(super) async fn restore_form(req: HttpRequest, st: St, q: web::Query<RestoreQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let f = RestoreForm {
        dataset: q.dataset.clone().unwrap_or_default(),
        id: q.id.map(|i| i.to_string()).unwrap_or_default(),
        which: if q.id.is_some() || q.dataset.is_none() {
            "id"
        } else {
            "before"
        }
        .into(),
        ..Default::default()
    };
    restore_page(&st, &ctx, &conn, StatusCode::OK, &f, None).await
}

fn selection(f: &RestoreForm) -> Result<Select, String> {
    if f.which == "before" {
        if !f.before_utc.trim().is_empty() {
            let t = chrono::DateTime::parse_from_rfc3339(f.before_utc.trim())
                .map_err(|_| "The date could not be read.".to_string())?;
            return Ok(Select::Before(t));
        }
        if f.before_date.trim().is_empty() {
            return Err("Choose the date before which to recover.".into());
        }
        let t = if f.before_time.trim().is_empty() {
            f.before_date.trim().to_string()
        } else {
            format!("{} {}", f.before_date.trim(), f.before_time.trim())
        };
        bk_core::parse_time(&t)
            .map(Select::Before)
            .map_err(|e| e.to_string())
    } else {
        f.id.trim()
            .parse()
            .map(Select::Id)
            .map_err(|_| "Choose the backup to recover.".to_string())
    }
}

pub(super) async fn restore(req: HttpRequest, st: St, form: web::Form<RestoreForm>) -> Res {
    let (ctx, conn) = st.post_conn(&req, &form.csrf)?;
    let f = form.into_inner();
    let fail = |msg: String| restore_page(&st, &ctx, &conn, StatusCode::BAD_REQUEST, &f, Some(msg));
    let select = match selection(&f) {
        Ok(s) => s,
        Err(m) => return fail(m).await,
    };
    // Where the restore writes, checked.
    let output = match f.dest.as_str() {
        "local" if !st.roots.is_empty() => {
            Location::Local(paths::confine_new(f.out.trim(), &st.roots).map_err(path_err)?)
        }
        "ftp" if conn.ftp.is_some() => {
            let p = paths::ftp_path(f.out.trim()).map_err(path_err)?;
            if p == "/" {
                return fail("Recover into a new folder, not the FTP server's top folder.".into())
                    .await;
            }
            // The session's pool: the recovery reuses its login.
            Location::ftp_shared(conn.pool.clone().expect("connected to FTP"), &p)
        }
        "local" => {
            return Err(WebError::Forbidden(
                "No local folders are allowed: start bk web with --allow-root DIR.".into(),
            ));
        }
        _ => return fail("Choose where to recover to.".into()).await,
    };
    // Check the selection now, so that a date with no backup before it is
    // reported on the form rather than as a failed job.
    let repo = conn.repo.clone();
    let ds = f.dataset.clone();
    let chosen = blocking(move || {
        let snaps = repo.snapshots(Some(&ds)).map_err(core_err)?;
        Ok(bk_core::snapshot::select(&ds, &snaps, select).map(|s| (s.id, rfc3339_utc(&s.time))))
    })
    .await?;
    let (snap_id, snap_time) = match chosen {
        Ok(x) => x,
        Err(e) => return fail(e.to_string()).await,
    };
    // The location shows its path or URL, never a password.
    let shown = output.to_string();
    let title = format!(
        "Recover backup #{snap_id} ({snap_time}) of \"{}\" to {shown}",
        f.dataset
    );
    let repo = conn.repo.clone();
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let ds = f.dataset.clone();
    let job = st.jobs.spawn(
        JobKind::Restore,
        title,
        f.dataset.clone(),
        move |job, cancel| {
            let opts = RestoreOptions::new(Select::Id(snap_id))
                .progress(Arc::new(Tracker(job)))
                .cancel(cancel);
            let report = bk_core::ops::restore::restore_to(&repo, &ds, &output, &opts)
                .map_err(|e| JobError::from_core(e, |m| scrub(m, &secret)))?;
            let o = &report.outcome;
            Ok(Summary {
                snapshot: Some(report.snapshot.id),
                facts: vec![
                    (
                        "Backup".into(),
                        format!(
                            "#{} of {}",
                            report.snapshot.id,
                            report.snapshot.time.format("%Y-%m-%d %H:%M:%S %:z")
                        ),
                    ),
                    ("Recovered to".into(), shown),
                    ("Files".into(), o.files.to_string()),
                    ("Bytes".into(), human(o.bytes)),
                    ("Directories and links".into(), o.others.to_string()),
                    ("Errors".into(), o.errors.len().to_string()),
                ],
                // A partial backup: what it lacks is not recovered either.
                warnings: report
                    .not_backed_up
                    .iter()
                    .map(|w| format!("{}: {}", w.path, w.message))
                    .collect(),
                errors: o
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect(),
            })
        },
    );
    Ok(see_other(&format!("/jobs/{}", job.id)))
}
