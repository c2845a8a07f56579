//! The job list, a job's page, and its progress as server-sent events.
//! Each shows only the jobs the session may see ([`AppState::visible_job`]):
//! another owner's job is "not found", like a missing one.

use super::*;

pub(super) async fn jobs(req: HttpRequest, st: St) -> Res {
    let ctx = gate!(st.gate(&req));
    let list: Vec<_> = st.visible_jobs(&ctx).iter().map(|j| j.view()).collect();
    st.render(
        &ctx,
        StatusCode::OK,
        "jobs.html",
        context! { nav => "jobs", jobs => list },
    )
}

pub(super) async fn job(req: HttpRequest, st: St, id: web::Path<u64>) -> Res {
    let ctx = gate!(st.gate(&req));
    let j = st
        .visible_job(&ctx, *id)
        .ok_or_else(|| WebError::NotFound(format!("There is no job {id}.")))?;
    let v = j.view();
    let refresh = v.state == "running";
    st.render(
        &ctx,
        StatusCode::OK,
        "job.html",
        context! { nav => "jobs", job => v, refresh },
    )
}

pub(super) async fn job_events(req: HttpRequest, st: St, id: web::Path<u64>) -> Res {
    let ctx = gate!(st.gate(&req));
    let j = st
        .visible_job(&ctx, *id)
        .ok_or_else(|| WebError::NotFound(format!("There is no job {id}.")))?;
    let stream = futures_util::stream::unfold((j, 0u64, false), |(j, n, done)| async move {
        if done {
            return None;
        }
        if n > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        }
        let v = j.view();
        let finished = v.state != "running";
        let data = serde_json::to_string(&v).unwrap_or_else(|_| "{}".into());
        let ev = format!(
            "event: {}\ndata: {data}\n\n",
            if finished { "done" } else { "progress" }
        );
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(ev)),
            (j, n + 1, finished),
        ))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

#[derive(Deserialize)]
pub(super) struct CancelForm {
    #[serde(default)]
    csrf: String,
}

/// The Cancel button: sets the job's cancel token; the operation stops at
/// its next check and the job ends as cancelled.
pub(super) async fn cancel(
    req: HttpRequest,
    st: St,
    id: web::Path<u64>,
    form: web::Form<CancelForm>,
) -> Res {
    let ctx = st.post_gate(&req, &form.csrf, true)?;
    let j = st
        .visible_job(&ctx, *id)
        .ok_or_else(|| WebError::NotFound(format!("There is no job {id}.")))?;
    if !j.cancel() {
        return Err(WebError::Conflict(format!(
            "Job {id} has already ended ({}), so there is nothing to cancel.",
            j.view().state
        )));
    }
    Ok(see_other(&format!("/jobs/{id}")))
}
