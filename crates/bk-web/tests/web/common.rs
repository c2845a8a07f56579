//! A tiny browser for `actix_web::test`: one cookie, the page's CSRF token,
//! and checks that every response carries the security headers and never
//! shows a secret. It names the server as a browser would (`Host:
//! 127.0.0.1:8080`) and, unless made with [`Browser::stranger`], first
//! opens the sign-in address with [`TOKEN`], as the user does with the one
//! `bk web` prints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test;
use bk_web::{AppState, CSP, WebOptions};

pub use actix_web::App;

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    /// The job number of a redirect to `/jobs/N`.
    pub fn job_id(&self) -> u64 {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        self.location()
            .strip_prefix("/jobs/")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a job redirect: {}", self.location()))
    }
}

/// The sign-in token of the servers [`state`] makes.
pub const TOKEN: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e70042";

/// Browser state: the session cookie, the last CSRF token seen, and the
/// secrets that must never come back.
#[derive(Debug)]
pub struct Browser {
    pub cookie: Option<String>,
    pub csrf: String,
    pub secrets: Vec<String>,
    /// The Host header sent.
    pub host: String,
    /// Open `/login?token=TOKEN` before the first request.
    pub sign_in: bool,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            cookie: None,
            csrf: String::new(),
            secrets: vec![TOKEN.to_string()],
            host: "127.0.0.1:8080".into(),
            sign_in: true,
        }
    }
}

fn csrf_of(body: &str) -> Option<String> {
    let i = body.find("name=\"csrf\" value=\"")?;
    let rest = &body[i + "name=\"csrf\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Asserts the headers every response must have.
pub fn assert_security_headers(h: &HeaderMap) {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(get("content-security-policy"), CSP);
    assert_eq!(get("x-content-type-options"), "nosniff");
    assert_eq!(get("referrer-policy"), "same-origin");
}

impl Browser {
    pub fn new() -> Browser {
        Browser::default()
    }

    /// A browser that never got the sign-in address.
    pub fn stranger() -> Browser {
        Browser {
            sign_in: false,
            ..Browser::default()
        }
    }

    pub fn secret(mut self, s: &str) -> Browser {
        self.secrets.push(s.to_string());
        self
    }

    pub async fn send<S, B>(&mut self, app: &S, mut req: test::TestRequest) -> Resp
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        if self.sign_in && self.cookie.is_none() {
            self.sign_in = false;
            let login = test::TestRequest::get().uri(&format!("/login?token={TOKEN}"));
            Box::pin(self.send(app, login)).await;
        }
        req = req.insert_header(("host", self.host.clone()));
        if let Some(c) = &self.cookie {
            req = req.insert_header(("cookie", c.clone()));
        }
        let resp = test::call_service(app, req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = test::read_body(resp).await.to_vec();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let r = Resp {
            status,
            headers,
            body,
            bytes,
        };
        assert_security_headers(&r.headers);
        for c in r.set_cookies() {
            for s in &self.secrets {
                assert!(!c.contains(s.as_str()), "a secret in Set-Cookie: {c}");
            }
            let v = c.split(';').next().unwrap_or("").to_string();
            if v.ends_with('=') {
                self.cookie = None;
            } else {
                self.cookie = Some(v);
            }
        }
        for s in &self.secrets {
            assert!(
                !r.body.contains(s.as_str()),
                "a secret in the page: {}",
                r.body
            );
            for (_, v) in r.headers.iter() {
                assert!(!v.to_str().unwrap_or("").contains(s.as_str()));
            }
        }
        if let Some(t) = csrf_of(&r.body) {
            self.csrf = t;
        }
        r
    }

    pub async fn get<S, B>(&mut self, app: &S, uri: &str) -> Resp
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        self.send(app, test::TestRequest::get().uri(uri)).await
    }

    /// POST a form with this browser's CSRF token added.
    pub async fn post<S, B>(&mut self, app: &S, uri: &str, form: &[(&str, &str)]) -> Resp
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let csrf = self.csrf.clone();
        let mut f: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(form);
        self.post_raw(app, uri, &f).await
    }

    /// POST exactly this form.
    pub async fn post_raw<S, B>(&mut self, app: &S, uri: &str, form: &[(&str, &str)]) -> Resp
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let f: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.send(app, test::TestRequest::post().uri(uri).set_form(f))
            .await
    }
}

/// A state with these options, and the sign-in token [`TOKEN`] when there
/// is no UI password.
pub fn state(mut opts: WebOptions) -> Arc<AppState> {
    if opts.ui_password.is_none() && opts.token.is_none() {
        opts = opts.token(TOKEN);
    }
    AppState::new(opts).expect("valid options")
}

/// Wait until job `id` ends; returns its final view.
pub fn wait_job(st: &AppState, id: u64) -> bk_web::JobView {
    let t = Instant::now();
    loop {
        let v = st.job(id).expect("job exists");
        if v.state != "running" {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "job {id} hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `root` with its bytes, by relative path.
pub fn read_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &p, out);
            } else if ft.is_file() {
                out.push((
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Deterministic bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A small dataset: text, a binary file in a subdirectory, an empty dir.
pub fn make_dataset(root: &Path) {
    std::fs::create_dir_all(root.join("sub/empty")).unwrap();
    std::fs::write(root.join("a.txt"), "version 1\n").unwrap();
    std::fs::write(root.join("sub/b.bin"), bytes(1, 300_000)).unwrap();
}

/// Sleep past the second boundary, so two backups get distinct times.
pub fn tick() {
    std::thread::sleep(Duration::from_millis(1100));
}
