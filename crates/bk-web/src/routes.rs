//! The handlers. Pages render without JavaScript; every POST checks the
//! session's CSRF token; every path goes through [`crate::paths`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use bk_core::bk_ftp::url::{self as ftp_url, Secret};
use bk_core::bk_ftp::{EntryKind, ErrorKind as FtpErrorKind, FtpClient, FtpUrl, Pool};
use bk_core::index::Index;
use bk_core::location::RepoLocation;
use bk_core::restore::Target;
use bk_core::tree::{Node, NodeKind, display_path};
use bk_core::{BackupOptions, Repository, RestoreOptions, Select, Snapshot};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::jobs::{JobKind, Summary, Tracker, human};
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
                .wrap(
                    DefaultHeaders::new()
                        .add(("Content-Security-Policy", CSP))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "no-referrer"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Cache-Control", "no-store")),
                )
                .route("/static/style.css", web::get().to(style_css))
                .route("/static/app.js", web::get().to(app_js))
                .route("/login", web::get().to(login_page))
                .route("/login", web::post().to(login))
                .route("/", web::get().to(index))
                .route("/connect", web::post().to(connect))
                .route("/logout", web::post().to(logout))
                .route("/browse", web::get().to(browse))
                .route("/backup", web::get().to(backup_form))
                .route("/backup", web::post().to(backup))
                .route("/jobs", web::get().to(jobs))
                .route("/jobs/{id}", web::get().to(job))
                .route("/jobs/{id}/events", web::get().to(job_events))
                .route("/backups", web::get().to(backups))
                .route("/snapshot", web::get().to(snapshot))
                .route("/download", web::get().to(download))
                .route("/compare", web::get().to(compare))
                .route("/restore", web::get().to(restore_form))
                .route("/restore", web::post().to(restore))
                .default_service(web::to(not_found)),
        );
    }
}

// ---------------------------------------------------------------- helpers

fn with_cookie(mut r: HttpResponse, ctx: &Ctx) -> HttpResponse {
    if ctx.new_cookie
        && let Ok(v) = HeaderValue::from_str(&set_cookie(&ctx.sid))
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

    /// GET: the session (created if needed) of a user past the UI password.
    fn gate(&self, req: &HttpRequest) -> Result<Ctx, Box<HttpResponse>> {
        let ctx = self.sessions.get_or_create(req);
        if !ctx.ui_ok {
            return Err(Box::new(with_cookie(see_other("/login"), &ctx)));
        }
        Ok(ctx)
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

// ---------------------------------------------------------------- login

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

async fn login_page(req: HttpRequest, st: St) -> Res {
    if st.opts.ui_password.is_none() {
        return Ok(see_other("/"));
    }
    let ctx = st.sessions.get_or_create(&req);
    if ctx.ui_ok {
        return Ok(with_cookie(see_other("/"), &ctx));
    }
    st.render(&ctx, StatusCode::OK, "login.html", context! {})
}

async fn login(req: HttpRequest, st: St, form: web::Form<PasswordForm>) -> Res {
    let Some(want) = st.opts.ui_password.as_ref() else {
        return Ok(see_other("/"));
    };
    let ctx = st.post_gate(&req, &form.csrf, false)?;
    if !ct_eq(form.password.as_bytes(), want.expose().as_bytes()) {
        // Slow down guessing.
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        return st.render(
            &ctx,
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! { error => "That is not the access password." },
        );
    }
    let new = st.sessions.rotate(&ctx.sid, |s| s.ui_ok = true);
    Ok(with_cookie(see_other("/"), &new))
}

// ---------------------------------------------------------------- connect

#[derive(Deserialize)]
struct ConnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    tls: Option<String>,
    #[serde(default)]
    repo_path: String,
}

#[derive(Deserialize)]
struct IndexQ {
    expired: Option<String>,
}

#[derive(Serialize)]
struct DatasetRow {
    name: String,
    count: usize,
    latest: String,
    latest_shown: String,
    size: String,
}

async fn index(req: HttpRequest, st: St, q: web::Query<IndexQ>) -> Res {
    let ctx = gate!(st.gate(&req));
    let Some(conn) = ctx.conn.clone() else {
        let notice = (ctx.expired || q.expired.is_some())
            .then_some("Your session expired, so the connection was closed. Connect again.");
        return connect_page(&st, &ctx, StatusCode::OK, None, None, notice);
    };
    let repo = conn.repo.clone();
    let snaps = blocking(move || repo.snapshots(None).map_err(core_err)).await?;
    let mut rows: Vec<DatasetRow> = Vec::new();
    for s in &snaps {
        match rows.iter_mut().find(|r| r.name == s.dataset) {
            Some(r) => {
                r.count += 1;
                r.latest = rfc3339_utc(&s.time);
                r.latest_shown = s.time.format("%Y-%m-%d %H:%M:%S %:z").to_string();
                r.size = human(s.stats.bytes);
            }
            None => rows.push(DatasetRow {
                name: s.dataset.clone(),
                count: 1,
                latest: rfc3339_utc(&s.time),
                latest_shown: s.time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
                size: human(s.stats.bytes),
            }),
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    st.render(
        &ctx,
        StatusCode::OK,
        "home.html",
        context! {
            nav => "home",
            repo => conn.repo_shown,
            ftp => conn.ftp.as_ref().map(|u| u.to_string()),
            datasets => rows,
        },
    )
}

fn connect_page(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    form: Option<&ConnectForm>,
    error: Option<String>,
    notice: Option<&str>,
) -> Res {
    // The password is never sent back.
    st.render(
        ctx,
        status,
        "connect.html",
        context! {
            error,
            notice,
            address => form.map(|f| f.address.as_str()).unwrap_or(""),
            user => form.map(|f| f.user.as_str()).unwrap_or(""),
            tls => form.is_some_and(|f| f.tls.is_some()),
            repo_path => form.map(|f| f.repo_path.as_str()).unwrap_or("/backups"),
            local_repo => st.opts.repo.as_ref().map(|r| r.to_string()),
            has_roots => !st.roots.is_empty(),
        },
    )
}

async fn connect(req: HttpRequest, st: St, form: web::Form<ConnectForm>) -> Res {
    let ctx = st.post_gate(&req, &form.csrf, true)?;
    let form = form.into_inner();
    let st2 = st.clone();
    let (form, r) = blocking(move || {
        let r = open_connection(&st2, &form);
        Ok((form, r))
    })
    .await?;
    match r {
        Ok(conn) => {
            let conn = Arc::new(conn);
            let new = st.sessions.rotate(&ctx.sid, |s| s.conn = Some(conn));
            Ok(with_cookie(see_other("/"), &new))
        }
        Err((status, msg)) => connect_page(&st, &ctx, status, Some(&form), Some(msg), None),
    }
}

/// `host`, `host:port`, `[v6]:port`, optionally with `ftp://` / `ftps://`.
fn server_url(address: &str, tls: bool) -> Result<FtpUrl, String> {
    let mut a = address.trim();
    let mut tls = tls;
    if let Some(r) = a.strip_prefix("ftps://") {
        a = r;
        tls = true;
    } else if let Some(r) = a.strip_prefix("ftp://") {
        a = r;
    }
    let a = a.trim_end_matches('/');
    let host_chars = |c: char| c.is_ascii_alphanumeric() || ".-_:[]".contains(c);
    if a.is_empty() || !a.chars().all(host_chars) {
        return Err("Enter the server's address as host or host:port, such as 192.168.1.1 or ftp.example.org:2121.".into());
    }
    let scheme = if tls { "ftps" } else { "ftp" };
    FtpUrl::parse(&format!("{scheme}://{a}/")).map_err(|_| {
        "Enter the server's address as host or host:port, such as 192.168.1.1 or ftp.example.org:2121.".to_string()
    })
}

fn open_connection(st: &AppState, f: &ConnectForm) -> Result<Connection, (StatusCode, String)> {
    let cfg = st.opts.ftp_config.clone();
    let pw = f.password.as_str();
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let ftp = if f.address.trim().is_empty() {
        if st.opts.repo.is_none() {
            return Err(bad("Enter the address of the FTP server.".into()));
        }
        None
    } else {
        let mut url = server_url(&f.address, f.tls.is_some()).map_err(bad)?;
        let user = f.user.trim();
        if !user.is_empty() {
            if user.contains(['\r', '\n']) {
                return Err(bad("The user name contains a line break.".into()));
            }
            url.user = user.to_string();
        }
        if pw.contains(['\r', '\n']) {
            return Err(bad("The password contains a line break.".into()));
        }
        url.password = Some(Secret::new(pw));
        let c = FtpClient::connect(&url, &cfg).map_err(|e| connect_error(&url, &e, pw))?;
        c.quit();
        Some(url)
    };
    let (loc, shown) = match (&st.opts.repo, &ftp) {
        (Some(loc), _) => (loc.clone(), loc.to_string()),
        (None, Some(url)) => {
            let p = paths::ftp_path(f.repo_path.trim()).map_err(|e| bad(e.to_string()))?;
            if p == "/" {
                return Err(bad(
                    "Choose a folder for the repository, such as /backups, not the server's top folder.".into(),
                ));
            }
            let u = url.with_path(&p);
            let shown = u.to_string();
            (
                RepoLocation::Ftp {
                    url: u,
                    config: cfg.clone(),
                },
                shown,
            )
        }
        (None, None) => return Err(bad("Enter the address of the FTP server.".into())),
    };
    let repo = loc.open_or_init().map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            scrub(format!("Could not open the repository at {shown}: {e}"), pw),
        )
    })?;
    let pool = ftp
        .as_ref()
        .map(|u| Arc::new(Pool::new(u.clone(), cfg.clone().connections(2))));
    Ok(Connection {
        ftp,
        pool,
        ftp_config: cfg,
        repo: Arc::new(repo),
        repo_shown: shown,
    })
}

fn connect_error(url: &FtpUrl, e: &bk_core::bk_ftp::Error, pw: &str) -> (StatusCode, String) {
    let addr = url.addr();
    let (status, msg) = match e.kind() {
        FtpErrorKind::Auth => (
            StatusCode::UNAUTHORIZED,
            format!(
                "The FTP server at {addr} refused the user name or password. Check them and try again."
            ),
        ),
        _ if e.kind() == FtpErrorKind::Tls || e.op().starts_with("starting TLS") => (
            StatusCode::BAD_GATEWAY,
            format!(
                "Could not make a secure (TLS) connection to {addr}: {}. If the server does not offer TLS, untick \"Use TLS\".",
                e.text()
            ),
        ),
        _ if e.op().starts_with("connecting") || e.op().starts_with("resolving") => (
            StatusCode::BAD_GATEWAY,
            format!(
                "Could not reach the FTP server at {addr} ({}). Check the address and that the server is running.",
                e.text()
            ),
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            format!("The FTP server at {addr} did not accept the connection: {e}"),
        ),
    };
    (status, scrub(msg, pw))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(req: HttpRequest, st: St, form: web::Form<CsrfForm>) -> Res {
    let ctx = st.post_gate(&req, &form.csrf, false)?;
    st.sessions.remove(&ctx.sid);
    let mut r = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&clear_cookie()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

// ---------------------------------------------------------------- browse

#[derive(Deserialize)]
struct SideQ {
    side: Option<String>,
    path: Option<String>,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    kind: &'static str,
    size: String,
    path: String,
}

/// A dataset directory, checked: on the FTP server or under an allowed root.
enum DatasetDir {
    Ftp(String),
    Local(PathBuf),
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

fn dataset_dir(st: &AppState, side: &str, raw: &str) -> Result<DatasetDir, WebError> {
    if side == "ftp" {
        Ok(DatasetDir::Ftp(paths::ftp_path(raw).map_err(path_err)?))
    } else {
        let p = paths::confine_existing(raw, &st.roots).map_err(path_err)?;
        if !p.is_dir() {
            return Err(WebError::BadRequest(format!("{raw} is not a directory")));
        }
        Ok(DatasetDir::Local(p))
    }
}

fn ftp_list(pool: &Pool, dir: &str) -> Result<Vec<bk_core::bk_ftp::RemoteEntry>, WebError> {
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

async fn browse(req: HttpRequest, st: St, q: web::Query<SideQ>) -> Res {
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

// ---------------------------------------------------------------- backup

fn default_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

async fn backup_form(req: HttpRequest, st: St, q: web::Query<SideQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let side = pick_side(&st, &conn, q.side.as_deref())?;
    let raw = q.path.clone().unwrap_or_default();
    let (path, where_) = match dataset_dir(&st, side, &raw)? {
        DatasetDir::Ftp(p) => {
            if let Some(pool) = conn.pool.clone() {
                let dir = p.clone();
                blocking(move || ftp_list(&pool, &dir).map(|_| ())).await?;
            }
            let w = format!(
                "A directory on the FTP server {}; bk pulls it from there.",
                conn.ftp.as_ref().map(|u| u.addr()).unwrap_or_default()
            );
            (p, w)
        }
        DatasetDir::Local(p) => (
            p.display().to_string(),
            "A directory on this computer.".into(),
        ),
    };
    st.render(
        &ctx,
        StatusCode::OK,
        "backup.html",
        context! {
            nav => "datasets",
            side,
            dataset => default_name(&path),
            path,
            location => where_,
        },
    )
}

#[derive(Deserialize)]
struct BackupForm {
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

/// Builds a backup's source on the job's thread.
type MakeSource = Box<dyn FnOnce() -> bk_core::Result<Box<dyn bk_core::Source>> + Send>;

async fn backup(req: HttpRequest, st: St, form: web::Form<BackupForm>) -> Res {
    let (ctx, conn) = st.post_conn(&req, &form.csrf)?;
    let side = pick_side(&st, &conn, Some(form.side.as_str()))?;
    let dir = dataset_dir(&st, side, &form.path)?;
    let dataset = form.dataset.trim().to_string();
    if let Err(e) = bk_core::snapshot::check_dataset_name(&dataset) {
        return st.render(
            &ctx,
            StatusCode::BAD_REQUEST,
            "backup.html",
            context! {
                nav => "datasets",
                side,
                path => form.path,
                dataset,
                error => format!("Choose another dataset name: {e}"),
            },
        );
    }
    let full = form.full.is_some();
    let repo = conn.repo.clone();
    let (title, source): (String, MakeSource) = match dir {
        DatasetDir::Local(p) => (
            format!("Back up {} as \"{dataset}\"", p.display()),
            Box::new(move || {
                Ok(Box::new(bk_core::LocalSource::new(&p, &[])?) as Box<dyn bk_core::Source>)
            }),
        ),
        DatasetDir::Ftp(p) => {
            let url = conn
                .ftp
                .as_ref()
                .ok_or_else(|| {
                    WebError::BadRequest("You are not connected to an FTP server.".into())
                })?
                .with_path(&p);
            let cfg = conn.ftp_config.clone();
            (
                format!("Back up {url} as \"{dataset}\""),
                Box::new(move || {
                    Ok(Box::new(bk_core::FtpSource::new(url, cfg)) as Box<dyn bk_core::Source>)
                }),
            )
        }
    };
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let ds = dataset.clone();
    let turn = st.backup_turn(&conn.repo_shown);
    let job = st.jobs.spawn(JobKind::Backup, title, dataset, move |job| {
        let run = || -> bk_core::Result<Summary> {
            let _turn = turn.try_lock().or_else(|_| {
                job.set_current("waiting for another backup into this repository to end");
                turn.lock()
            });
            job.set_current("");
            let src = source()?;
            src.root()?;
            let opts = BackupOptions::new(ds)
                .full(full)
                .threads(bk_core::archiver::default_threads())
                .progress(Arc::new(Tracker(job.clone())));
            let snap = bk_core::backup(&repo, &*src, &opts)?;
            Ok(backup_summary(&snap))
        };
        run().map_err(|e| scrub(e.to_string(), &secret))
    });
    Ok(see_other(&format!("/jobs/{}", job.id)))
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

// ---------------------------------------------------------------- jobs

async fn jobs(req: HttpRequest, st: St) -> Res {
    let ctx = gate!(st.gate(&req));
    let list: Vec<_> = st.jobs.list().iter().map(|j| j.view()).collect();
    st.render(
        &ctx,
        StatusCode::OK,
        "jobs.html",
        context! { nav => "jobs", jobs => list },
    )
}

async fn job(req: HttpRequest, st: St, id: web::Path<u64>) -> Res {
    let ctx = gate!(st.gate(&req));
    let j = st
        .jobs
        .get(*id)
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

async fn job_events(req: HttpRequest, st: St, id: web::Path<u64>) -> Res {
    let _ctx = gate!(st.gate(&req));
    let j = st
        .jobs
        .get(*id)
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

// ---------------------------------------------------------------- backups view

#[derive(Deserialize)]
struct DatasetQ {
    dataset: String,
}

#[derive(Serialize)]
struct SnapRow {
    id: u64,
    time: String,
    full: bool,
    files: u64,
    size: String,
    added: u64,
    modified: u64,
    deleted: u64,
    stored: String,
    warnings: usize,
}

fn snap_rows(snaps: &[Snapshot]) -> Vec<SnapRow> {
    let mut v: Vec<SnapRow> = snaps
        .iter()
        .map(|s| SnapRow {
            id: s.id,
            time: rfc3339_utc(&s.time),
            full: s.full,
            files: s.stats.files,
            size: human(s.stats.bytes),
            added: s.stats.added,
            modified: s.stats.modified,
            deleted: s.stats.deleted,
            stored: human(s.stats.stored_bytes),
            warnings: s.warnings.len(),
        })
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.id));
    v
}

async fn load_snapshots(repo: Arc<Repository>, dataset: String) -> Result<Vec<Snapshot>, WebError> {
    blocking(move || {
        let s = repo.snapshots(Some(&dataset)).map_err(core_err)?;
        if s.is_empty() {
            return Err(WebError::NotFound(format!(
                "There are no backups of a dataset named \"{dataset}\"."
            )));
        }
        Ok(s)
    })
    .await
}

async fn backups(req: HttpRequest, st: St, q: web::Query<DatasetQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let snaps = load_snapshots(conn.repo.clone(), q.dataset.clone()).await?;
    st.render(
        &ctx,
        StatusCode::OK,
        "backups.html",
        context! { nav => "home", dataset => q.dataset, snapshots => snap_rows(&snaps) },
    )
}

#[derive(Deserialize)]
struct SnapQ {
    dataset: String,
    id: u64,
    #[serde(default)]
    path: String,
}

/// What a path of a snapshot names.
enum Found {
    Root,
    Node(Node),
}

/// The snapshot, the index, and the node at `comps` (which must exist).
fn resolve(
    repo: &Repository,
    dataset: &str,
    id: u64,
    comps: &[Vec<u8>],
) -> Result<(Snapshot, Index, Found), WebError> {
    let snaps = repo.snapshots(Some(dataset)).map_err(core_err)?;
    let snap = bk_core::snapshot::select(dataset, &snaps, Select::Id(id))
        .map_err(core_err)?
        .clone();
    let idx = repo.load_index().map_err(core_err)?;
    if comps.is_empty() {
        return Ok((snap, idx, Found::Root));
    }
    let missing = || {
        WebError::NotFound(format!(
            "{} does not exist in backup {id} of {dataset}",
            display_path(&comps.join(&b'/'))
        ))
    };
    let mut tree = repo.read_tree(&idx, &snap.tree).map_err(core_err)?;
    for (i, c) in comps.iter().enumerate() {
        bk_core::tree::check_name(c).map_err(|e| WebError::BadRequest(e.to_string()))?;
        let node = tree.find(c).cloned().ok_or_else(missing)?;
        if i + 1 == comps.len() {
            return Ok((snap, idx, Found::Node(node)));
        }
        let sub = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(s)) => s,
            _ => return Err(missing()),
        };
        tree = repo.read_tree(&idx, &sub).map_err(core_err)?;
    }
    Err(missing())
}

#[derive(Serialize)]
struct TreeEntry {
    name: String,
    kind: &'static str,
    size: String,
    mtime: String,
    path: String,
    target: String,
}

#[derive(Serialize)]
struct Crumb {
    name: String,
    path: String,
}

async fn snapshot(req: HttpRequest, st: St, q: web::Query<SnapQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let comps = paths::snapshot_components(&q.path).map_err(path_err)?;
    let repo = conn.repo.clone();
    let (dataset, id) = (q.dataset.clone(), q.id);
    let c2 = comps.clone();
    let (snap, entries) = blocking(move || {
        let (snap, idx, found) = resolve(&repo, &dataset, id, &c2)?;
        let sub = match found {
            Found::Root => Some(snap.tree),
            Found::Node(n) if n.kind == NodeKind::Dir => n.subtree,
            Found::Node(_) => {
                return Err(WebError::BadRequest(
                    "That is a file, not a directory.".into(),
                ));
            }
        };
        let nodes = match sub {
            Some(t) => repo.read_tree(&idx, &t).map_err(core_err)?.nodes,
            None => Vec::new(),
        };
        let prefix = c2.join(&b'/');
        let entries: Vec<TreeEntry> = nodes
            .iter()
            .map(|n| TreeEntry {
                name: display_path(&n.name),
                kind: match n.kind {
                    NodeKind::Dir => "dir",
                    NodeKind::File => "file",
                    NodeKind::Symlink => "link",
                    NodeKind::Fifo => "fifo",
                },
                size: if n.kind == NodeKind::File {
                    human(n.size)
                } else {
                    String::new()
                },
                mtime: mtime_utc(n),
                path: display_path(&bk_core::tree::join(&prefix, &n.name)),
                target: display_path(&n.target),
            })
            .collect();
        Ok((snap, entries))
    })
    .await?;
    let mut crumbs = Vec::new();
    let mut acc: Vec<u8> = Vec::new();
    for c in &comps {
        acc = bk_core::tree::join(&acc, c);
        crumbs.push(Crumb {
            name: display_path(c),
            path: display_path(&acc),
        });
    }
    let parent = (!comps.is_empty()).then(|| display_path(&comps[..comps.len() - 1].join(&b'/')));
    st.render(
        &ctx,
        StatusCode::OK,
        "tree.html",
        context! {
            nav => "home",
            dataset => q.dataset,
            id => q.id,
            time => rfc3339_utc(&snap.time),
            crumbs,
            parent,
            entries,
        },
    )
}

/// RFC 5987 encoding for `filename*`.
fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

async fn download(req: HttpRequest, st: St, q: web::Query<SnapQ>) -> Res {
    let (_ctx, conn) = gate!(st.gate_conn(&req));
    let comps = paths::snapshot_components(&q.path).map_err(path_err)?;
    if comps.is_empty() {
        return Err(WebError::BadRequest("Choose a file to download.".into()));
    }
    let repo = conn.repo.clone();
    let (dataset, id) = (q.dataset.clone(), q.id);
    let c2 = comps.clone();
    let (idx, node) = blocking(move || {
        let (_, idx, found) = resolve(&repo, &dataset, id, &c2)?;
        match found {
            Found::Node(n) if n.kind == NodeKind::File => Ok((idx, n)),
            _ => Err(WebError::BadRequest("Only files can be downloaded.".into())),
        }
    })
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let repo = conn.repo.clone();
    let size = node.size;
    let name = display_path(&node.name);
    std::thread::Builder::new()
        .name("bk-web-download".into())
        .spawn(move || {
            for id in &node.content {
                let r = repo
                    .read_blob(&idx, id)
                    .map(Bytes::from)
                    .map_err(|e| std::io::Error::other(e.to_string()));
                let stop = r.is_err();
                if tx.blocking_send(r).is_err() || stop {
                    return;
                }
            }
        })
        .map_err(|e| WebError::Internal(format!("starting a download thread: {e}")))?;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                pct(&name)
            ),
        ))
        .body(actix_web::body::SizedStream::new(size, stream)))
}

#[derive(Deserialize)]
struct CompareQ {
    dataset: String,
    a: u64,
    b: u64,
}

#[derive(Serialize)]
struct ChangeGroup {
    kind: &'static str,
    label: &'static str,
    paths: Vec<String>,
}

async fn compare(req: HttpRequest, st: St, q: web::Query<CompareQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let repo = conn.repo.clone();
    let (dataset, a, b) = (q.dataset.clone(), q.a, q.b);
    let groups = blocking(move || {
        let snaps = repo.snapshots(Some(&dataset)).map_err(core_err)?;
        let sa = bk_core::snapshot::select(&dataset, &snaps, Select::Id(a)).map_err(core_err)?;
        let sb = bk_core::snapshot::select(&dataset, &snaps, Select::Id(b)).map_err(core_err)?;
        let changes = bk_core::diff_snapshots(&repo, sa, sb).map_err(core_err)?;
        let mut g = [
            ChangeGroup {
                kind: "added",
                label: "Added",
                paths: Vec::new(),
            },
            ChangeGroup {
                kind: "modified",
                label: "Modified",
                paths: Vec::new(),
            },
            ChangeGroup {
                kind: "deleted",
                label: "Deleted",
                paths: Vec::new(),
            },
        ];
        for (c, p, n) in changes {
            let mut name = display_path(&p);
            if n.kind == NodeKind::Dir {
                name.push('/');
            }
            let i = match c {
                bk_core::Change::Added => 0,
                bk_core::Change::Modified => 1,
                bk_core::Change::Deleted => 2,
            };
            g[i].paths.push(name);
        }
        Ok(g.into_iter()
            .filter(|g| !g.paths.is_empty())
            .collect::<Vec<_>>())
    })
    .await?;
    st.render(
        &ctx,
        StatusCode::OK,
        "compare.html",
        context! { nav => "home", dataset => q.dataset, a => q.a, b => q.b, changes => groups },
    )
}

// ---------------------------------------------------------------- restore

#[derive(Deserialize)]
struct RestoreQ {
    dataset: Option<String>,
    id: Option<u64>,
}

#[derive(Deserialize, Default)]
struct RestoreForm {
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

async fn restore_form(req: HttpRequest, st: St, q: web::Query<RestoreQ>) -> Res {
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

/// Where a restore writes, checked.
enum Output {
    Local(PathBuf),
    Ftp(FtpUrl),
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

async fn restore(req: HttpRequest, st: St, form: web::Form<RestoreForm>) -> Res {
    let (ctx, conn) = st.post_conn(&req, &form.csrf)?;
    let f = form.into_inner();
    let fail = |msg: String| restore_page(&st, &ctx, &conn, StatusCode::BAD_REQUEST, &f, Some(msg));
    let select = match selection(&f) {
        Ok(s) => s,
        Err(m) => return fail(m).await,
    };
    let output = match f.dest.as_str() {
        "local" if !st.roots.is_empty() => {
            Output::Local(paths::confine_new(f.out.trim(), &st.roots).map_err(path_err)?)
        }
        "ftp" if conn.ftp.is_some() => {
            let p = paths::ftp_path(f.out.trim()).map_err(path_err)?;
            if p == "/" {
                return fail("Recover into a new folder, not the FTP server's top folder.".into())
                    .await;
            }
            Output::Ftp(conn.ftp.as_ref().expect("checked").with_path(&p))
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
    let shown = match &output {
        Output::Local(p) => p.display().to_string(),
        Output::Ftp(u) => u.to_string(),
    };
    let title = format!(
        "Recover backup #{snap_id} ({snap_time}) of \"{}\" to {shown}",
        f.dataset
    );
    let repo = conn.repo.clone();
    let cfg = conn.ftp_config.clone();
    let secret = conn
        .ftp
        .as_ref()
        .and_then(|u| u.password.as_ref())
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let ds = f.dataset.clone();
    let job = st
        .jobs
        .spawn(JobKind::Restore, title, f.dataset.clone(), move |job| {
            let opts = RestoreOptions::new(Select::Id(snap_id)).progress(Arc::new(Tracker(job)));
            let r = match output {
                Output::Local(p) => bk_core::restore(&repo, &ds, &p, &opts),
                Output::Ftp(url) => bk_core::restore::restore_with(&repo, &ds, &opts, move || {
                    Ok(Box::new(bk_core::FtpTarget::new(url, cfg, false)?) as Box<dyn Target>)
                }),
            };
            let report = r.map_err(|e| scrub(e.to_string(), &secret))?;
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
                warnings: Vec::new(),
                errors: o
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect(),
            })
        });
    Ok(see_other(&format!("/jobs/{}", job.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_running_job_refreshes_without_js_and_streams_progress_every_half_second() {
        use actix_web::{App, test};
        let st = AppState::new(crate::WebOptions::new()).unwrap();
        let app = test::init_service(App::new().configure(configure(st.clone()))).await;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let job = st
            .jobs
            .spawn(JobKind::Backup, "t".into(), "ds".into(), move |j| {
                let t = Tracker(j);
                bk_core::Progress::scanned(&t, 3, 3, 3000);
                bk_core::Progress::bytes_read(&t, b"dir/file <1>", 1000);
                rx.recv().ok();
                Ok(Summary::default())
            });
        let get = |uri: String| test::TestRequest::get().uri(&uri).to_request();
        let resp = test::call_service(&app, get("/".into())).await;
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
        // Let the job end after 1.3 s: by then at least three progress events
        // went out (one at once, then one every 500 ms), then "done".
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1300));
            tx.send(()).ok();
        });
        let t = std::time::Instant::now();
        let body =
            test::call_and_read_body(&app, with_cookie(format!("/jobs/{}/events", job.id))).await;
        let body = String::from_utf8_lossy(&body);
        assert!(t.elapsed() >= Duration::from_millis(1300));
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

    #[test]
    fn server_addresses() {
        let u = server_url("127.0.0.1:2121", false).unwrap();
        assert_eq!(u.addr(), "127.0.0.1:2121");
        assert_eq!(u.user, "anonymous");
        let u = server_url("ftps://example.org", false).unwrap();
        assert_eq!(u.port, 21);
        assert_eq!(u.scheme, bk_core::bk_ftp::Scheme::Ftps);
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
