//! Templates (embedded in the binary, HTML auto-escaped), static assets,
//! and the error type whose pages say what went wrong in plain words.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use minijinja::Environment;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("access.html", include_str!("../templates/access.html")),
    ("connect.html", include_str!("../templates/connect.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("browse.html", include_str!("../templates/browse.html")),
    ("backup.html", include_str!("../templates/backup.html")),
    ("job.html", include_str!("../templates/job.html")),
    ("jobs.html", include_str!("../templates/jobs.html")),
    ("backups.html", include_str!("../templates/backups.html")),
    ("datasets.html", include_str!("../templates/datasets.html")),
    ("tree.html", include_str!("../templates/tree.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    ("restore.html", include_str!("../templates/restore.html")),
    (
        "restore_confirm.html",
        include_str!("../templates/restore_confirm.html"),
    ),
    (
        "restore_select.html",
        include_str!("../templates/restore_select.html"),
    ),
    (
        "restore_pick.html",
        include_str!("../templates/restore_pick.html"),
    ),
];

/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("../static/style.css");
/// The script (progressive enhancement: live progress, local times).
pub const APP_JS: &str = include_str!("../static/app.js");

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// Parse every template (a syntax error fails here, at start-up).
    pub fn new() -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        // `{{ t|utc }}`: the text of a `<time datetime="{{ t }}">`, zone named.
        env.add_filter("utc", |t: String| crate::words::utc_text(&t));
        // .html templates escape every value (minijinja's default callback).
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    /// Render `name` with `ctx` into a page with status `status`.
    pub fn page(
        &self,
        status: StatusCode,
        name: &str,
        ctx: minijinja::Value,
    ) -> Result<HttpResponse, WebError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| WebError::Internal(format!("template {name}: {e}")))?;
        let html = t
            .render(ctx)
            .map_err(|e| WebError::Internal(format!("rendering {name}: {e}")))?;
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html))
    }
}

/// What a handler can fail with. Each becomes a plain page.
#[derive(Debug)]
pub enum WebError {
    /// Bad input (400).
    BadRequest(String),
    /// Not allowed: CSRF, session, path confinement (403).
    Forbidden(String),
    /// No such thing (404).
    NotFound(String),
    /// Not possible in the current state, such as cancelling a job that has
    /// ended (409).
    Conflict(String),
    /// The FTP server or the repository failed (502); the message is shown.
    Upstream(String),
    /// Anything else (500); the details go to the log only.
    Internal(String),
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebError::BadRequest(m)
            | WebError::Forbidden(m)
            | WebError::NotFound(m)
            | WebError::Conflict(m)
            | WebError::Upstream(m) => f.write_str(m),
            WebError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A minimal page that needs no template (errors must render even when the
/// templates cannot).
pub fn plain_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · bk backups</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><header class=\"top\"><a class=\"brand\" href=\"/\">bk <span>backups</span></a></header><main><h1>{t}</h1><p class=\"error\">{m}</p><p><a href=\"/\">Back to the start page</a></p></main></body></html>",
        t = escape(title),
        m = escape(message)
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Upstream(_) => StatusCode::BAD_GATEWAY,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, msg) = match self {
            WebError::BadRequest(m) => ("That did not work", m.as_str()),
            WebError::Forbidden(m) => ("Not allowed", m.as_str()),
            WebError::NotFound(m) => ("Not found", m.as_str()),
            WebError::Conflict(m) => ("That cannot be done now", m.as_str()),
            WebError::Upstream(m) => ("The server or the repository failed", m.as_str()),
            WebError::Internal(m) => {
                eprintln!("bk web: internal error: {m}");
                (
                    "Something went wrong",
                    "The server met an internal error; its log has the details.",
                )
            }
        };
        // Whoever wrote the message, the page names no command-line flag
        // and no OS error number.
        plain_page(self.status_code(), title, &crate::words::plain(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_escape() {
        let t = Templates::new().unwrap();
        let r = t
            .page(
                StatusCode::OK,
                "login.html",
                minijinja::context! { csrf => "x", error => "<script>alert(1)</script>" },
            )
            .unwrap();
        let body = actix_web::body::to_bytes(r.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let s = String::from_utf8_lossy(&body);
        assert!(s.contains("&lt;script&gt;"), "{s}");
        assert!(!s.contains("<script>alert"));
    }

    #[test]
    fn escape_html() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
