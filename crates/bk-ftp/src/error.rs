//! Typed errors carrying the reply code, the server's text and the path.

use std::fmt;

/// What kind of failure this is; decides whether a retry can help.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Login refused (530 and friends). Never retried.
    Auth,
    /// No such file or directory (550 on a path). Never retried.
    NotFound,
    /// Permission denied. Never retried.
    PermissionDenied,
    /// Quota or disk full (552, 452). Never retried.
    Quota,
    /// The server refused this many connections (421 at connect).
    TooManyConnections,
    /// A temporary failure (4xx, connection reset, timeout): retry may help.
    Transient,
    /// A permanent failure the server reported (other 5xx).
    Permanent,
    /// TLS negotiation or verification failed.
    Tls,
    /// The command is not supported by the server.
    Unsupported,
    /// Local I/O failed (reading or writing a local file).
    LocalIo,
    /// Bad input (URL, path, option).
    Invalid,
    /// The server said something bk-ftp could not understand.
    Protocol,
    /// The target exists already (exclusive create).
    AlreadyExists,
    /// The port answered with no FTP greeting in time, or in another
    /// protocol: not an FTP server. Never retried.
    NotFtp,
}

/// An FTP error: the operation, the path, and what the server said.
#[derive(Debug)]
pub struct Error {
    pub(crate) kind: ErrorKind,
    pub(crate) op: &'static str,
    pub(crate) path: Option<String>,
    pub(crate) code: Option<u32>,
    pub(crate) text: String,
    pub(crate) source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, op: &'static str, text: impl Into<String>) -> Error {
        Error {
            kind,
            op,
            path: None,
            code: None,
            text: text.into(),
            source: None,
        }
    }

    pub(crate) fn path(mut self, p: impl Into<String>) -> Error {
        self.path = Some(p.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The FTP reply code, when the server answered.
    pub fn code(&self) -> Option<u32> {
        self.code
    }
    /// The server's reply text (or the local error's message).
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The remote or local path involved.
    pub fn path_str(&self) -> Option<&str> {
        self.path.as_deref()
    }
    /// The operation ("uploading", "listing" …).
    pub fn op(&self) -> &'static str {
        self.op
    }
    /// Whether retrying (after reconnecting) can help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Transient | ErrorKind::TooManyConnections
        )
    }

    /// Whether the server (or the network) did not answer in time: a
    /// connect, greeting or reply timeout, as opposed to a refusal.
    pub fn is_timeout(&self) -> bool {
        let mut e: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(x) = e {
            if let Some(io) = x.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                )
            {
                return true;
            }
            e = x.source();
        }
        false
    }

    /// Mark this error as a timeout ([`Error::is_timeout`]).
    pub(crate) fn timed_out(mut self) -> Error {
        self.source = Some(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)));
        self
    }

    /// From a suppaftp error.
    pub(crate) fn ftp(op: &'static str, path: Option<&str>, e: suppaftp::FtpError) -> Error {
        use suppaftp::FtpError as F;
        let mut err = match e {
            F::UnexpectedResponse(resp) => {
                let body = String::from_utf8_lossy(&resp.body).trim().to_string();
                let code = body
                    .get(..3)
                    .and_then(|c| c.parse::<u32>().ok())
                    .or(Some(resp.status.code()).filter(|&c| c != 0));
                let text = match code {
                    Some(c) => body
                        .strip_prefix(&c.to_string())
                        .map(|t| t.trim_start_matches(['-', ' ']).to_string())
                        .unwrap_or(body.clone()),
                    None => body.clone(),
                };
                let kind = kind_of_code(code.unwrap_or(0), &text, op);
                Error {
                    kind,
                    op,
                    path: None,
                    code,
                    text,
                    source: None,
                }
            }
            F::ConnectionError(io) => Error {
                kind: ErrorKind::Transient,
                op,
                path: None,
                code: None,
                text: io.to_string(),
                source: Some(Box::new(io)),
            },
            F::SecureError(s) => Error::new(ErrorKind::Tls, op, s),
            F::BadResponse => {
                Error::new(ErrorKind::Transient, op, "malformed reply from the server")
            }
            F::InvalidAddress(a) => Error::new(
                ErrorKind::Protocol,
                op,
                format!("invalid address in reply: {a}"),
            ),
            F::DataConnectionAlreadyOpen => {
                Error::new(ErrorKind::Protocol, op, "a data connection is already open")
            }
        };
        if let Some(p) = path {
            err.path = Some(p.to_string());
        }
        err
    }

    pub(crate) fn local(op: &'static str, path: &std::path::Path, e: std::io::Error) -> Error {
        Error {
            kind: ErrorKind::LocalIo,
            op,
            path: Some(path.display().to_string()),
            code: None,
            text: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    pub(crate) fn io(op: &'static str, path: &str, e: std::io::Error) -> Error {
        Error {
            kind: ErrorKind::Transient,
            op,
            path: Some(path.to_string()),
            code: None,
            text: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

fn kind_of_code(code: u32, text: &str, op: &str) -> ErrorKind {
    let lower = text.to_ascii_lowercase();
    match code {
        530 | 331 | 332 | 430 if op == "logging in" => ErrorKind::Auth,
        530 => ErrorKind::Auth,
        421 if lower.contains("too many") || lower.contains("connections") => {
            ErrorKind::TooManyConnections
        }
        552 | 452 => ErrorKind::Quota,
        550 | 553 | 450
            if lower.contains("permission")
                || lower.contains("denied")
                || lower.contains("not allowed") =>
        {
            ErrorKind::PermissionDenied
        }
        550 => ErrorKind::NotFound,
        500 | 502 | 504 => ErrorKind::Unsupported,
        400..=499 => ErrorKind::Transient,
        // A positive reply where another was expected, or a reply cut off
        // mid-line: the session is out of step; a fresh connection fixes it.
        0..=399 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op)?;
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        f.write_str(": ")?;
        if let Some(c) = self.code {
            write!(f, "{c} ")?;
        }
        f.write_str(&self.text)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
