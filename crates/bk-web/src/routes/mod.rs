//! The handlers. Pages render without JavaScript; every POST checks the
//! session's CSRF token; every path goes through [`crate::paths`].

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use bk_core::index::Index;
use bk_core::location::{Location, RepoLocation};
use bk_core::tree::{Node, NodeKind};
use bk_core::{BackupOptions, Cancel, Repository, RestoreOptions, Select, Snapshot};
use bk_ftp::url::{self as ftp_url, Secret};
use bk_ftp::{EntryKind, ErrorKind as FtpErrorKind, FtpUrl, Pool};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::jobs::{Job, JobError, JobKind, Summary, Tracker, human};
use crate::paths::{self, PathError};
use crate::render::{APP_JS, STYLE_CSS, WebError, plain_page};
use crate::session::{Connection, Ctx, clear_cookie, ct_eq, set_cookie};
use crate::{AppState, CSP};

type St = web::Data<AppState>;
type Res = Result<HttpResponse, WebError>;

/// Register every route of the UI on `cfg`, with `state` and the security
/// headers. The same function serves `bk web` and the tests:
/// `App::new().configure(configure(state))`.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let bad_form = |e: actix_web::error::UrlencodedError, _: &HttpRequest| {
            WebError::BadRequest(format!("the form could not be read: {e}")).into()
        };
        let bad_query = |e: actix_web::error::QueryPayloadError, _: &HttpRequest| {
            WebError::BadRequest(format!("the address is malformed: {e}")).into()
        };
        let bad_path = |_e: actix_web::error::PathError, _: &HttpRequest| {
            WebError::NotFound("There is no such page.".into()).into()
        };
        let access_state = state.clone();
        cfg.service(
            web::scope("")
                .app_data(web::Data::from(state))
                .app_data(
                    web::FormConfig::default()
                        .limit(64 * 1024)
                        .error_handler(bad_form),
                )
                .app_data(web::QueryConfig::default().error_handler(bad_query))
                .app_data(web::PathConfig::default().error_handler(bad_path))
                .wrap(actix_web::middleware::from_fn(
                    move |req: actix_web::dev::ServiceRequest,
                          next: actix_web::middleware::Next<_>| {
                        crate::access::middleware(access_state.clone(), req, next)
                    },
                ))
                .wrap(
                    DefaultHeaders::new()
                        .add(("Content-Security-Policy", CSP))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Cache-Control", "no-store")),
                )
                .route("/static/style.css", web::get().to(style_css))
                .route("/static/app.js", web::get().to(app_js))
                .route("/login", web::get().to(connect::login_page))
                .route("/login", web::post().to(connect::login))
                .route("/", web::get().to(connect::index))
                .route("/connect", web::post().to(connect::connect))
                .route("/logout", web::post().to(connect::logout))
                .route("/browse", web::get().to(datasets::browse))
                .route("/backup", web::get().to(datasets::backup_form))
                .route("/backup", web::post().to(datasets::backup))
                .route("/backup-now", web::post().to(datasets::backup_now))
                .route("/jobs", web::get().to(job_pages::jobs))
                .route("/jobs/{id}", web::get().to(job_pages::job))
                .route("/jobs/{id}/events", web::get().to(job_pages::job_events))
                .route("/jobs/{id}/cancel", web::post().to(job_pages::cancel))
                .route("/backups", web::get().to(snapshots::backups))
                .route("/snapshot", web::get().to(snapshots::snapshot))
                .route("/download", web::get().to(snapshots::download))
                .route("/compare", web::get().to(snapshots::compare))
                .route("/restore", web::get().to(recover::restore_form))
                .route("/restore", web::post().to(recover::restore))
                .route("/restore/next", web::get().to(recover::restore_next))
                .route("/restore/select", web::get().to(recover::restore_select))
                .route("/restore/pick", web::get().to(recover::restore_pick))
                .route("/restore/which", web::get().to(recover::restore_which))
                .route("/check", web::post().to(check::check))
                .default_service(web::to(not_found)),
        );
    }
}

// ---------------------------------------------------------------- helpers

fn with_cookie(mut r: HttpResponse, ctx: &Ctx) -> HttpResponse {
    if ctx.new_cookie
        && let Ok(v) = HeaderValue::from_str(&set_cookie(&ctx.sid, ctx.secure))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn see_other(loc: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .finish()
}

impl AppState {
    fn render(&self, ctx: &Ctx, status: StatusCode, name: &str, extra: minijinja::Value) -> Res {
        let v = context! {
            csrf => ctx.csrf,
            connected => ctx.conn.is_some(),
            ..extra
        };
        Ok(with_cookie(self.templates.page(status, name, v)?, ctx))
    }

    /// GET: the session of a signed-in user (UI password or sign-in
    /// token); anyone else is sent to `/login`, which says how to get in.
    /// No session is made here: only the sign-in pages make them.
    fn gate(&self, req: &HttpRequest) -> Result<Ctx, Box<HttpResponse>> {
        match self.sessions.get(req) {
            Some(ctx) if ctx.ui_ok => Ok(ctx),
            Some(_) => Err(Box::new(see_other("/login"))),
            None if crate::session::cookie_sid(req).is_some() => {
                Err(Box::new(see_other("/login?expired=1")))
            }
            None => Err(Box::new(see_other("/login"))),
        }
    }

    /// GET: as [`AppState::gate`], and connected.
    fn gate_conn(&self, req: &HttpRequest) -> Result<(Ctx, Arc<Connection>), Box<HttpResponse>> {
        let ctx = self.gate(req)?;
        match ctx.conn.clone() {
            Some(c) => Ok((ctx, c)),
            None => {
                let to = if ctx.expired { "/?expired=1" } else { "/" };
                Err(Box::new(with_cookie(see_other(to), &ctx)))
            }
        }
    }

    /// POST: a live session whose CSRF token the form carries.
    fn post_gate(&self, req: &HttpRequest, csrf: &str, need_ui: bool) -> Result<Ctx, WebError> {
        let Some(ctx) = self.sessions.get(req) else {
            return Err(WebError::Forbidden(
                "Your session has expired (or this browser does not keep cookies). Open the start page and try again.".into(),
            ));
        };
        if csrf.is_empty() || !ct_eq(csrf.as_bytes(), ctx.csrf.as_bytes()) {
            return Err(WebError::Forbidden(
                "This form's security token is missing or wrong, so it was not accepted. Reload the page and try again.".into(),
            ));
        }
        if need_ui && !ctx.ui_ok {
            return Err(WebError::Forbidden("Sign in first.".into()));
        }
        Ok(ctx)
    }

    fn post_conn(&self, req: &HttpRequest, csrf: &str) -> Result<(Ctx, Arc<Connection>), WebError> {
        let ctx = self.post_gate(req, csrf, true)?;
        match ctx.conn.clone() {
            Some(c) => Ok((ctx, c)),
            None => Err(WebError::Forbidden(
                "You are not connected any more. Open the start page and connect again.".into(),
            )),
        }
    }
}

macro_rules! gate {
    ($e:expr) => {
        match $e {
            Ok(x) => x,
            Err(redirect) => return Ok(*redirect),
        }
    };
}

mod check;
mod connect;
mod datasets;
mod job_pages;
mod recover;
mod snapshots;

/// Run blocking work (FTP, repository, disk) off the HTTP threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    web::block(f)
        .await
        .map_err(|e| WebError::Internal(format!("worker thread: {e}")))?
}

fn path_err(e: PathError) -> WebError {
    match e {
        PathError::NotFound(_) => WebError::NotFound(e.to_string()),
        PathError::Forbidden(_) => WebError::Forbidden(e.to_string()),
        PathError::Invalid(_) => WebError::BadRequest(e.to_string()),
    }
}

fn core_err(e: bk_core::Error) -> WebError {
    use bk_core::Error as E;
    match e {
        E::NoSnapshots(_) | E::NoSuchSnapshot { .. } | E::PathNotFound { .. } => {
            WebError::NotFound(e.to_string())
        }
        E::UnsafeName { .. } => WebError::Forbidden(e.to_string()),
        E::Invalid(_) | E::NoneBefore { .. } => WebError::BadRequest(e.to_string()),
        e => WebError::Upstream(format!("The repository could not be read: {e}")),
    }
}

/// Remove a password from a message, in case a server or library echoed it.
fn scrub(msg: String, secret: &str) -> String {
    if secret.len() >= 3 && msg.contains(secret) {
        msg.replace(secret, "***")
    } else {
        msg
    }
}

fn rfc3339_utc(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn mtime_utc(n: &Node) -> String {
    chrono::DateTime::from_timestamp(n.mtime, n.mtime_nsec)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct Side {
    side: &'static str,
    label: String,
}

fn sides(st: &AppState, conn: &Connection) -> Vec<Side> {
    let mut v = Vec::new();
    if let Some(u) = &conn.ftp {
        v.push(Side {
            side: "ftp",
            label: format!("FTP server {}", u.addr()),
        });
    }
    if !st.roots.is_empty() {
        v.push(Side {
            side: "local",
            label: "This computer".into(),
        });
    }
    v
}

// ---------------------------------------------------------------- static

async fn style_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}

async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn not_found() -> HttpResponse {
    plain_page(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

#[cfg(test)]
mod tests {
    use super::connect::server_url;
    use super::snapshots::pct;
    use super::*;

    /// The sign-in token of these tests' servers.
    const T: &str = "7e577e577e577e577e577e577e577e577e577e577e577e577e577e577e577e57";

    #[actix_web::test]
    async fn a_running_job_refreshes_without_js_and_streams_progress_every_half_second() {
        use actix_web::{App, test};
        let st = AppState::new(crate::WebOptions::new().token(T)).unwrap();
        let app = test::init_service(App::new().configure(configure(st.clone()))).await;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let job = st
            .jobs
            .spawn(JobKind::Backup, "t".into(), "ds".into(), move |j, _| {
                let t = Tracker(j);
                let totals = bk_core::Totals {
                    files: Some(3),
                    bytes: Some(3000),
                };
                bk_core::Progress::phase(&t, bk_core::Phase::Read, totals);
                bk_core::Progress::bytes(&t, b"dir/file <1>", 1000);
                rx.recv().ok();
                Ok(Summary::default())
            });
        while job.view().bytes_done < 1000 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let get = |uri: String| {
            test::TestRequest::get()
                .uri(&uri)
                .insert_header(("host", "127.0.0.1:8080"))
                .to_request()
        };
        let resp = test::call_service(&app, get(format!("/login?token={T}"))).await;
        let cookie = resp
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let with_cookie = |uri: String| {
            test::TestRequest::get()
                .uri(&uri)
                .insert_header(("cookie", cookie.clone()))
                .insert_header(("host", "127.0.0.1:8080"))
                .to_request()
        };
        let page = test::call_and_read_body(&app, with_cookie(format!("/jobs/{}", job.id))).await;
        let page = String::from_utf8_lossy(&page);
        assert!(
            page.contains("<noscript><meta http-equiv=\"refresh\" content=\"1\"></noscript>"),
            "{page}"
        );
        assert!(page.contains(&format!("data-job-events=\"/jobs/{}/events\"", job.id)));
        assert!(page.contains("dir&#x2f;file &lt;1&gt;"), "{page}");
        assert!(
            page.contains("<progress max=\"100\" value=\"33\">"),
            "{page}"
        );
        // Let the job end after 1.7 s: by then three or four progress events
        // went out (one at once, then one every 500 ms), then "done".
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1700));
            tx.send(()).ok();
        });
        let t = std::time::Instant::now();
        let body =
            test::call_and_read_body(&app, with_cookie(format!("/jobs/{}/events", job.id))).await;
        let body = String::from_utf8_lossy(&body);
        assert!(t.elapsed() >= Duration::from_millis(1700));
        let progress = body.matches("event: progress\n").count();
        assert!(progress >= 3, "{body}");
        assert!(
            body.ends_with("\n\n") && body.contains("event: done\n"),
            "{body}"
        );
        assert!(body.contains("\"files_total\":3"), "{body}");
        // A finished job's page no longer refreshes.
        let page = test::call_and_read_body(&app, with_cookie(format!("/jobs/{}", job.id))).await;
        assert!(!String::from_utf8_lossy(&page).contains("http-equiv=\"refresh\""));
    }

    /// The backup route's job: a backup waiting for another one into the
    /// same repository ends cancelled at once when its Cancel button is
    /// pressed, without waiting for the other to end.
    #[actix_web::test]
    async fn a_backup_waiting_for_its_turn_is_cancelled_at_once() {
        use actix_web::{App, test};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ds")).unwrap();
        std::fs::write(root.join("ds/a.txt"), "a").unwrap();
        let repo = root.join("repo");
        let st = AppState::new(
            crate::WebOptions::new()
                .token(T)
                .repo(RepoLocation::Local(repo.clone()))
                .allow_root(&root),
        )
        .unwrap();
        let app = test::init_service(App::new().configure(configure(st.clone()))).await;
        // A browser: the session cookie and the page's CSRF token.
        let mut cookie = String::new();
        let mut send = async |req: test::TestRequest| {
            let resp = test::call_service(
                &app,
                req.insert_header(("cookie", cookie.clone()))
                    .insert_header(("host", "127.0.0.1:8080"))
                    .to_request(),
            )
            .await;
            if let Some(c) = resp.headers().get("set-cookie") {
                cookie = c.to_str().unwrap().split(';').next().unwrap().to_string();
            }
            let status = resp.status();
            let loc = resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            let body = String::from_utf8_lossy(&test::read_body(resp).await).into_owned();
            (status, loc.unwrap_or_default(), body)
        };
        let csrf_of = |body: &str| {
            let i = body.find("name=\"csrf\" value=\"").unwrap() + 19;
            body[i..i + body[i..].find('"').unwrap()].to_string()
        };
        send(test::TestRequest::get().uri(&format!("/login?token={T}"))).await;
        let (_, _, home) = send(test::TestRequest::get().uri("/")).await;
        let form = [("csrf", csrf_of(&home)), ("address", String::new())];
        let (status, _, _) = send(test::TestRequest::post().uri("/connect").set_form(form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, home) = send(test::TestRequest::get().uri("/")).await;
        let csrf = csrf_of(&home);

        // Another backup into this repository: a thread holds its turn.
        let turn = st.backup_turn(&repo.display().to_string());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (taken, is_taken) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _held = turn.lock().unwrap();
            taken.send(()).unwrap();
            released.recv().ok();
        });
        is_taken.recv().unwrap();
        let form = [
            ("csrf", csrf.clone()),
            ("side", "local".into()),
            ("path", root.join("ds").display().to_string()),
            ("dataset", "ds".into()),
        ];
        let (status, page, _) = send(
            test::TestRequest::post()
                .uri("/backup")
                .set_form(form.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let job = st
            .jobs
            .get(page.trim_start_matches("/jobs/").parse().unwrap())
            .unwrap();
        let t = std::time::Instant::now();
        while !job.view().current.starts_with("waiting for another backup") {
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", job.view());
            std::thread::sleep(Duration::from_millis(5));
        }
        let cancel = test::TestRequest::post()
            .uri(&format!("{page}/cancel"))
            .set_form([("csrf", csrf.clone())]);
        let (status, to, _) = send(cancel).await;
        assert_eq!(
            (status, to.as_str()),
            (StatusCode::SEE_OTHER, page.as_str())
        );
        while job.running() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the job waits for its turn"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(job.view().state, "cancelled", "{:?}", job.view().error);
        let r = Repository::open_local(&repo).unwrap();
        assert!(
            r.snapshots(Some("ds")).unwrap().is_empty(),
            "no backup was made"
        );
        // Once the other backup is over, the next one runs.
        release.send(()).unwrap();
        other.join().unwrap();
        let (_, page, _) = send(test::TestRequest::post().uri("/backup").set_form(form)).await;
        let job = st
            .jobs
            .get(page.trim_start_matches("/jobs/").parse().unwrap())
            .unwrap();
        while job.running() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(job.view().state, "done", "{:?}", job.view().error);
    }

    #[test]
    fn server_addresses() {
        let u = server_url("127.0.0.1:2121", false).unwrap();
        assert_eq!(u.addr(), "127.0.0.1:2121");
        assert_eq!(u.user, "anonymous");
        let u = server_url("ftps://example.org", false).unwrap();
        assert_eq!(u.port, 21);
        assert_eq!(u.scheme, bk_ftp::Scheme::Ftps);
        let u = server_url("[::1]:2121", true).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.scheme),
            ("::1", 2121, bk_ftp::Scheme::Ftps)
        );
        let u = server_url(" ftp://h.example:2121/ ", false).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("h.example", 2121, "/")
        );
        assert_eq!(server_url("h", false).unwrap().scheme, bk_ftp::Scheme::Ftp);
        assert!(server_url("http://h", false).is_err());
        assert!(server_url("ftp://h/dir", false).is_err());
        assert!(server_url("[::1", false).is_err());
        assert!(server_url("user@host", false).is_err());
        assert!(server_url("host:notaport", false).is_err());
        assert!(server_url("", false).is_err());
    }

    #[test]
    fn scrub_hides_secrets() {
        assert_eq!(
            scrub("login pw123 failed".into(), "pw123"),
            "login *** failed"
        );
    }

    #[test]
    fn filenames_are_encoded() {
        assert_eq!(pct("a b\"é"), "a%20b%22%C3%A9");
    }
}
