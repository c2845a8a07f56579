//! The recovery: a form (which backup, what, where to), a selection tree
//! and a folder picker, a confirmation that shows the backup that will be
//! used and what an output folder's contents become, then the job.
//!
//! Pages and their addresses (each works without JavaScript; the choices
//! travel in the query of GET pages and in hidden fields, see [`ask`]):
//! `GET /restore` the form (`form#restore`), `GET /restore/select` the
//! selection tree, `GET /restore/pick` the output folder picker,
//! `GET /restore/next` the confirmation (or the page that is still
//! missing a choice), `POST /restore` starts the job after every check,
//! `GET /restore/which` the backup a date and time picks, as JSON.

use super::*;

mod ask;
mod check;
mod pickers;

use crate::names;
use ask::Ask;
use check::{Resolved, resolve, shown_list};
pub(super) use pickers::{restore_pick, restore_select};

use super::snapshots::snap_rows;

/// The form, with `error` shown above it.
async fn form_page(
    st: &AppState,
    ctx: &Ctx,
    conn: &Connection,
    status: StatusCode,
    a: &Ask,
    error: Option<String>,
) -> Res {
    let repo = conn.repo.clone();
    let ds = a.dataset.clone();
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
    if !a.dataset.is_empty() && snaps.is_empty() {
        return Err(WebError::NotFound(format!(
            "There are no backups of a dataset named \"{}\".",
            a.dataset
        )));
    }
    let sides = sides(st, conn);
    let dest = if sides.iter().any(|s| s.side == a.dest) {
        a.dest.clone()
    } else {
        sides
            .first()
            .map(|s| s.side.to_string())
            .unwrap_or_default()
    };
    let rows = snap_rows(&snaps);
    let utc: Vec<String> = {
        let mut s: Vec<&Snapshot> = snaps.iter().collect();
        s.sort_by_key(|s| std::cmp::Reverse(s.id));
        s.iter()
            .map(|s| {
                s.time
                    .with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()
            })
            .collect()
    };
    let id: Option<u64> = a.id.parse().ok().or_else(|| rows.first().map(|r| r.id));
    let which = if a.which == "before" { "before" } else { "id" };
    st.render(
        ctx,
        status,
        "restore.html",
        context! {
            nav => "home",
            error,
            datasets,
            dataset => a.dataset,
            snapshots => rows,
            utc,
            id,
            which,
            scope => a.scope,
            paths => a.paths.iter().map(|p| names::encode(p)).collect::<Vec<_>>(),
            paths_shown => shown_list(&a.paths),
            sides,
            dest,
            out => a.out,
            out_hint => if dest == "local" {
                st.roots.first().map(|r| r.join("recovered").display().to_string()).unwrap_or_default()
            } else {
                "/recovered".to_string()
            },
            roots => st.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>(),
            before_date => a.before_date,
            before_time => a.before_time,
            server_tz => chrono::Local::now().format("UTC%:z").to_string(),
        },
    )
}

pub(super) async fn restore_form(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let mut a = Ask::parse(req.query_string())?;
    if a.which.is_empty() {
        // From a backup's "Recover" link: that backup; else the latest.
        a.which = "id".into();
    }
    form_page(&st, &ctx, &conn, StatusCode::OK, &a, None).await
}

/// The confirmation page: what will be recovered, from which backup, into
/// what; the replace confirmation when the folder is not empty.
fn confirm_page(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    a: &Ask,
    r: &Resolved,
    error: Option<String>,
) -> Res {
    let mut hidden = a.fields_but(&["which", "id", "before_date", "before_time", "before_utc"]);
    hidden.push(("which", "id".into()));
    hidden.push(("id", r.chosen.id.to_string()));
    let selected = if a.scope == "some" {
        shown_list(&a.paths)
    } else {
        Vec::new()
    };
    st.render(
        ctx,
        status,
        "restore_confirm.html",
        context! {
            nav => "home",
            error,
            dataset => a.dataset,
            chosen => r.chosen,
            out => r.output.shown,
            side => r.output.side,
            selected,
            nonempty => !r.output.existing.is_empty(),
            replaced => shown_list(&r.replaced),
            kept => shown_list(&r.kept),
            replace => a.replace,
            hidden,
            back => format!("/restore?{}", a.query()),
        },
    )
}

/// "Next" on the form (and the end of the selection and the picker).
pub(super) async fn restore_next(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let a = Ask::parse(req.query_string())?;
    if a.scope == "some" && a.paths.is_empty() {
        return pickers::select_page(&st, &ctx, &conn, &a, b"", None).await;
    }
    match refused(resolve(&st, &conn, &a).await)? {
        Ok(r) => confirm_page(&st, &ctx, StatusCode::OK, &a, &r, None),
        Err((status, m)) => form_page(&st, &ctx, &conn, status, &a, Some(m)).await,
    }
}

/// A refusal for the form (its status and words), or a server failure.
fn refused<T>(c: check::Checked<T>) -> Result<Result<T, (StatusCode, String)>, WebError> {
    match c {
        Ok(Ok(x)) => Ok(Ok(x)),
        Ok(Err(m)) => Ok(Err((StatusCode::BAD_REQUEST, m))),
        Err(WebError::Forbidden(m)) => Ok(Err((StatusCode::FORBIDDEN, m))),
        Err(e) => Err(e),
    }
}

#[derive(Serialize)]
struct Which {
    id: Option<u64>,
    time: Option<String>,
    files: Option<u64>,
    size: Option<String>,
    message: String,
}

/// The backup a date and time picks, for the form's live hint:
/// `{id, time, files, size, message}` (`id` null and `message` saying
/// why when there is none).
pub(super) async fn restore_which(req: HttpRequest, st: St) -> Res {
    let (_ctx, conn) = gate!(st.gate_conn(&req));
    let mut a = Ask::parse(req.query_string())?;
    if a.which.is_empty() {
        a.which = "before".into();
    }
    let w = match check::choose(&conn, &a).await? {
        Ok(c) => Which {
            message: format!(
                "Backup #{} of {} will be recovered: {} files, {}.",
                c.id, c.time_utc, c.files, c.size
            ),
            id: Some(c.id),
            time: Some(c.time),
            files: Some(c.files),
            size: Some(c.size),
        },
        Err(m) => Which {
            id: None,
            time: None,
            files: None,
            size: None,
            message: m,
        },
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::to_string(&w).map_err(|e| WebError::Internal(e.to_string()))?))
}

/// Start: every check again (the folder may have changed since the
/// confirmation), then the job.
pub(super) async fn restore(req: HttpRequest, st: St, body: Bytes) -> Res {
    let raw = std::str::from_utf8(&body)
        .map_err(|_| WebError::BadRequest("The form could not be read.".into()))?;
    let a = Ask::parse(raw)?;
    let (ctx, conn) = st.post_conn(&req, &a.csrf)?;
    let r = match refused(resolve(&st, &conn, &a).await)? {
        Ok(r) => r,
        Err((status, m)) => return form_page(&st, &ctx, &conn, status, &a, Some(m)).await,
    };
    if !r.output.existing.is_empty() && !a.replace {
        let m = format!(
            "{} is not empty. To recover into it, tick \"Replace its contents\" below; or go back and choose another folder.",
            r.output.shown
        );
        return confirm_page(&st, &ctx, StatusCode::BAD_REQUEST, &a, &r, Some(m));
    }
    let snap_id = r.chosen.id;
    let shown = r.output.shown.clone();
    let what = if a.scope == "some" {
        let n = a.paths.len();
        format!("{n} selected {}", if n == 1 { "entry" } else { "entries" })
    } else {
        "all".into()
    };
    let title = format!(
        "Recover backup #{snap_id} ({}) of \"{}\" ({what}) to {shown}",
        r.chosen.time, a.dataset
    );
    let repo = conn.repo.clone();
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let ds = a.dataset.clone();
    let paths = if a.scope == "some" {
        a.paths.clone()
    } else {
        Vec::new()
    };
    let replace = !r.output.existing.is_empty();
    let output = r.output.loc;
    let job = st.jobs.spawn(
        JobKind::Restore,
        title,
        a.dataset.clone(),
        move |job, cancel| {
            let opts = RestoreOptions::new(Select::Id(snap_id))
                .paths(paths)
                .overwrite(replace)
                .progress(Arc::new(Tracker(job)))
                .cancel(cancel);
            let report = bk_core::ops::restore::restore_to(&repo, &ds, &output, &opts)
                .map_err(|e| JobError::from_core(e, |m| scrub(m, &secret)))?;
            Ok(summary(&report, shown))
        },
    );
    Ok(see_other(&format!("/jobs/{}", job.id)))
}

fn summary(report: &bk_core::RestoreReport, shown: String) -> Summary {
    let o = &report.outcome;
    let mut facts = vec![
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
    ];
    let c = &report.changes;
    if !c.replaced.is_empty() || !c.kept.is_empty() {
        facts.push(("Replaced".into(), c.replaced.len().to_string()));
        facts.push(("Kept as they were".into(), c.kept.len().to_string()));
    }
    Summary {
        snapshot: Some(report.snapshot.id),
        facts,
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
    }
}
