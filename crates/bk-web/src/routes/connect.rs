//! Signing in with the UI password, connecting to the FTP server and the
//! repository, logging out, and the home page.

use super::*;
use bk_ftp::FtpConfig;

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub(super) struct LoginQ {
    token: Option<String>,
    expired: Option<String>,
}

const EXPIRED: &str = "Your session expired, so you were signed out.";

/// `/login`: with the UI password, its form; otherwise the page that says
/// how to get in, and `?token=…` (the address `bk web` printed) signs in.
pub(super) async fn login_page(req: HttpRequest, st: St, q: web::Query<LoginQ>) -> Res {
    let q = q.into_inner();
    let notice = q.expired.is_some().then_some(EXPIRED);
    if let (Some(want), Some(given)) = (st.token.as_ref(), q.token.as_deref()) {
        let ip = crate::access::client_ip(&req);
        let turn = match st.limiter.take(ip) {
            Ok(t) => t,
            Err(wait) => return access_page(&st, StatusCode::TOO_MANY_REQUESTS, Some(wait), None),
        };
        crate::access::Limiter::wait(turn).await;
        if !ct_eq(given.as_bytes(), want.expose().as_bytes()) {
            st.limiter.failed(ip);
            return access_page(&st, StatusCode::UNAUTHORIZED, None, None);
        }
        st.limiter.succeeded(ip);
        let sid = crate::session::cookie_sid(&req).unwrap_or_default();
        let new = st.sessions.rotate(&sid, |s| s.ui_ok = true);
        // The token leaves the address bar (and the history) at once.
        return Ok(with_cookie(see_other("/"), &new));
    }
    if let Some(ctx) = st.sessions.get(&req)
        && ctx.ui_ok
    {
        return Ok(see_other("/"));
    }
    if st.opts.ui_password.is_none() {
        return access_page(&st, StatusCode::OK, None, notice);
    }
    let ctx = st.sessions.get_or_create(&req);
    st.render(&ctx, StatusCode::OK, "login.html", context! { notice })
}

/// The page for someone who has not signed in: how to get in, and why an
/// attempt failed.
fn access_page(
    st: &AppState,
    status: StatusCode,
    wait: Option<Duration>,
    notice: Option<&str>,
) -> Res {
    let error = match (status, wait) {
        (_, Some(w)) => Some(crate::access::too_many(w)),
        (StatusCode::UNAUTHORIZED, _) => Some(
            "That sign-in address is not valid (bk web makes a new one each time it starts)."
                .to_string(),
        ),
        _ => None,
    };
    let mut r = st
        .templates
        .page(status, "access.html", context! { error, notice })?;
    if let Some(w) = wait
        && let Ok(v) = HeaderValue::from_str(&w.as_secs().max(1).to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(r)
}

pub(super) async fn login(req: HttpRequest, st: St, form: web::Form<PasswordForm>) -> Res {
    let Some(want) = st.opts.ui_password.as_ref() else {
        return Ok(see_other("/login"));
    };
    let ctx = st.post_gate(&req, &form.csrf, false)?;
    let ip = crate::access::client_ip(&req);
    let turn = match st.limiter.take(ip) {
        Ok(t) => t,
        Err(wait) => {
            let mut r = st.render(
                &ctx,
                StatusCode::TOO_MANY_REQUESTS,
                "login.html",
                context! { error => crate::access::too_many(wait) },
            )?;
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(r);
        }
    };
    crate::access::Limiter::wait(turn).await;
    if !ct_eq(form.password.as_bytes(), want.expose().as_bytes()) {
        st.limiter.failed(ip);
        return st.render(
            &ctx,
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! { error => "That is not the access password." },
        );
    }
    st.limiter.succeeded(ip);
    let new = st.sessions.rotate(&ctx.sid, |s| s.ui_ok = true);
    Ok(with_cookie(see_other("/"), &new))
}

#[derive(Deserialize)]
pub(super) struct ConnectForm {
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
pub(super) struct IndexQ {
    expired: Option<String>,
}

/// Home, once connected: a dashboard with a card per dataset (its last
/// backup, "Back up now", its backups) and the running and failed jobs.
pub(super) async fn index(req: HttpRequest, st: St, q: web::Query<IndexQ>) -> Res {
    let ctx = gate!(st.gate(&req));
    let Some(conn) = ctx.conn.clone() else {
        let notice = q
            .expired
            .is_some()
            .then_some("Your session expired, so the connection was closed. Connect again.");
        return connect_page(&st, &ctx, StatusCode::OK, None, None, notice);
    };
    let repo = conn.repo.clone();
    let snaps = blocking(move || repo.snapshots(None).map_err(core_err)).await?;
    let rows = super::snapshots::dataset_rows(&snaps);
    let jobs: Vec<crate::JobView> = st
        .visible_jobs(&ctx)
        .iter()
        .map(|j| j.view())
        .filter(|v| matches!(v.state, "running" | "failed" | "interrupted"))
        .collect();
    st.render(
        &ctx,
        StatusCode::OK,
        "home.html",
        context! {
            nav => "home",
            repo => conn.repo_shown,
            ftp => conn.ftp.as_ref().map(|u| u.to_string()),
            datasets => rows,
            jobs,
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

pub(super) async fn connect(req: HttpRequest, st: St, form: web::Form<ConnectForm>) -> Res {
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

/// `host`, `host:port`, `[v6]:port`, optionally with `ftp://` / `ftps://`
/// (bk-ftp parses it).
pub(super) fn server_url(address: &str, tls: bool) -> Result<FtpUrl, String> {
    FtpUrl::server(address, tls).map_err(|_| {
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
        // The session's one login: the check's connection stays in the
        // pool that browsing and jobs use.
        let pool = Arc::new(Pool::new(url.clone(), cfg.clone()));
        pool.log_in()
            .map_err(|e| connect_error(&url, &cfg, &e, pw))?;
        Some((url, pool))
    };
    let (ftp, pool) = match ftp {
        Some((u, p)) => (Some(u), Some(p)),
        None => (None, None),
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
            // A pool of its own, kept with the repository for the session
            // (see Location::ftp_shared on why not the dataset pool).
            (RepoLocation::ftp(u, cfg.clone()), shown)
        }
        (None, None) => return Err(bad("Enter the address of the FTP server.".into())),
    };
    let repo = loc.open_or_init().map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            scrub(format!("Could not open the repository at {shown}: {e}"), pw),
        )
    })?;
    Ok(Connection {
        ftp,
        pool,
        repo: Arc::new(repo),
        repo_shown: shown,
        repo_at: loc,
    })
}

fn connect_error(
    url: &FtpUrl,
    cfg: &FtpConfig,
    e: &bk_ftp::Error,
    pw: &str,
) -> (StatusCode, String) {
    let addr = url.addr();
    let (status, msg) = match e.kind() {
        _ if e.is_timeout() => {
            let waited = if e.op().starts_with("connecting to") {
                cfg.connect_timeout
            } else if e.kind() == FtpErrorKind::NotFtp {
                cfg.greeting_timeout
            } else {
                cfg.io_timeout
            };
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "The FTP server at {addr} did not answer within {}. Check the address and port, or try again when the server is less busy.",
                    seconds(waited)
                ),
            )
        }
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

/// "10 s", "0.5 s".
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(req: HttpRequest, st: St, form: web::Form<CsrfForm>) -> Res {
    let ctx = st.post_gate(&req, &form.csrf, false)?;
    st.sessions.remove(&ctx.sid);
    let mut r = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&clear_cookie()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}
