//! Checking the repository, as a job like backups and recoveries.

use super::*;

#[derive(Deserialize)]
pub(super) struct CheckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    read_data: Option<String>,
}

pub(super) async fn check(req: HttpRequest, st: St, form: web::Form<CheckForm>) -> Res {
    let (_ctx, conn) = st.post_conn(&req, &form.csrf)?;
    let read_data = form.read_data.is_some();
    let repo = conn.repo.clone();
    let title = format!(
        "Check the repository {}{}",
        conn.repo_shown,
        if read_data {
            ", reading all its data"
        } else {
            ""
        }
    );
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let job = st
        .jobs
        .spawn(JobKind::Check, title, String::new(), move |job, cancel| {
            let run = || -> bk_core::Result<Summary> {
                cancel.check()?;
                job.set_current(if read_data {
                    "reading and verifying every pack"
                } else {
                    "checking the index, the snapshots and their trees"
                });
                // As `bk check` does: no backup writes while packs are read.
                let _lock = repo.lock("check")?;
                let opts = bk_core::CheckOptions::new()
                    .read_data(read_data)
                    .progress(Arc::new(Tracker(job.clone())))
                    .cancel(cancel.clone());
                Ok(check_summary(&bk_core::check_with(&repo, &opts)?))
            };
            run().map_err(|e| JobError::from_core(e, |m| scrub(m, &secret)))
        });
    Ok(see_other(&format!("/jobs/{}", job.id)))
}

fn check_summary(r: &bk_core::CheckReport) -> Summary {
    let result = if r.ok() {
        "no problems found".to_string()
    } else {
        format!("{} problems found", r.errors.len())
    };
    Summary {
        snapshot: None,
        facts: vec![
            ("Result".into(), result),
            ("Backups".into(), r.snapshots.to_string()),
            ("Packs".into(), r.packs.to_string()),
            ("Blobs".into(), r.blobs.to_string()),
            ("Packs read".into(), r.packs_read.to_string()),
        ],
        warnings: r.notes.clone(),
        errors: r.errors.clone(),
    }
}
