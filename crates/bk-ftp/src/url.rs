//! `ftp://user@host:port/path` and `ftps://…` URLs that never show a password.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// Plain FTP or explicit FTPS (AUTH TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `ftp://`
    Ftp,
    /// `ftps://`: explicit TLS on the control and data connections.
    Ftps,
}

/// A password. Its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a password.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The password itself, for the login command only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A parsed FTP URL. Display and Debug never include the password.
#[derive(Clone, PartialEq, Eq)]
pub struct FtpUrl {
    /// ftp or ftps.
    pub scheme: Scheme,
    /// User name (default `anonymous`).
    pub user: String,
    /// Password, if one was given in the URL or set later.
    pub password: Option<Secret>,
    /// Host name or address.
    pub host: String,
    /// Port (default 21).
    pub port: u16,
    /// Absolute remote path (`/` when none is given).
    pub path: String,
}

impl FtpUrl {
    /// A server typed as an address: `host`, `host:port` or `[v6]:port`,
    /// optionally with `ftp://` or `ftps://` in front (which then decides
    /// TLS, else `tls` does). Anonymous login, path `/`; no user, password
    /// or path may be given this way.
    pub fn server(address: &str, tls: bool) -> Result<FtpUrl> {
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
            return Err(Error::new(
                ErrorKind::Invalid,
                "parsing server address",
                "expected host or host:port".to_string(),
            ));
        }
        let scheme = if tls { "ftps" } else { "ftp" };
        FtpUrl::parse(&format!("{scheme}://{a}/"))
    }

    /// Parse `ftp://[user[:password]@]host[:port][/path]` or `ftps://…`.
    /// Percent-escapes in the user, password and path are decoded.
    pub fn parse(s: &str) -> Result<FtpUrl> {
        let bad = |why: &str| {
            // Never echo the input: it may hold a password.
            Error::new(ErrorKind::Invalid, "parsing URL", why.to_string())
        };
        let (scheme, rest) = if let Some(r) = s.strip_prefix("ftp://") {
            (Scheme::Ftp, r)
        } else if let Some(r) = s.strip_prefix("ftps://") {
            (Scheme::Ftps, r)
        } else {
            return Err(bad("the URL must start with ftp:// or ftps://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => ("anonymous".to_string(), None),
            Some(ui) => match ui.find(':') {
                Some(i) => (
                    decode(&ui[..i]).ok_or_else(|| bad("bad escape in the user name"))?,
                    Some(Secret(
                        decode(&ui[i + 1..]).ok_or_else(|| bad("bad escape in the password"))?,
                    )),
                ),
                None => (
                    decode(ui).ok_or_else(|| bad("bad escape in the user name"))?,
                    None,
                ),
            },
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let end = h.find(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match &h[end + 1..] {
                "" => 21,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("bad port"))?,
            };
            (h[..end].to_string(), port)
        } else {
            match hostport.rfind(':') {
                Some(i) => (
                    hostport[..i].to_string(),
                    hostport[i + 1..].parse().map_err(|_| bad("bad port"))?,
                ),
                None => (hostport.to_string(), 21),
            }
        };
        if host.is_empty() {
            return Err(bad("the URL has no host"));
        }
        if user.is_empty() {
            return Err(bad("the user name is empty"));
        }
        let path = decode(path).ok_or_else(|| bad("bad escape in the path"))?;
        if path.contains(['\r', '\n', '\0']) {
            return Err(bad("the path contains a line break or NUL"));
        }
        Ok(FtpUrl {
            scheme,
            user,
            password,
            host,
            port,
            path: normalize(&path),
        })
    }

    /// The same server with another path.
    pub fn with_path(&self, path: &str) -> FtpUrl {
        FtpUrl {
            path: normalize(path),
            ..self.clone()
        }
    }

    /// Set the password (from an environment variable, a file or a prompt).
    pub fn set_password(&mut self, p: impl Into<String>) {
        self.password = Some(Secret(p.into()));
    }

    /// `host:port` for connecting.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Ftp => "ftp",
            Scheme::Ftps => "ftps",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{}@{host}", self.user)?;
        if self.port != 21 {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

impl fmt::Debug for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FtpUrl({self})")
    }
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Make a path absolute, collapse `//` and `.`, drop a trailing `/`.
pub fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Join a remote directory and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent of a remote path (`/` for top-level entries).
pub fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// The last component of a remote path.
pub fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let u = FtpUrl::server("127.0.0.1:2121", false).unwrap();
        assert_eq!(u.addr(), "127.0.0.1:2121");
        assert_eq!((u.user.as_str(), u.scheme), ("anonymous", Scheme::Ftp));
        let u = FtpUrl::server(" ftps://example.org/ ", false).unwrap();
        assert_eq!((u.port, u.scheme), (21, Scheme::Ftps));
        assert_eq!(FtpUrl::server("h", true).unwrap().scheme, Scheme::Ftps);
        for bad in ["user@host", "host:notaport", "", "h/path", "ftp://u:pw@h"] {
            assert!(FtpUrl::server(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_and_never_shows_the_password() {
        let u = FtpUrl::parse("ftps://bob:s3cr%40t@example.org:2121/data/set%201").unwrap();
        assert_eq!(u.scheme, Scheme::Ftps);
        assert_eq!(u.user, "bob");
        assert_eq!(u.password.as_ref().unwrap().expose(), "s3cr@t");
        assert_eq!(u.host, "example.org");
        assert_eq!(u.port, 2121);
        assert_eq!(u.path, "/data/set 1");
        for shown in [
            u.to_string(),
            format!("{u:?}"),
            format!("{:?}", u.password),
            format!("{:#?}", u),
        ] {
            assert!(!shown.contains("s3cr"), "{shown}");
        }
        assert_eq!(u.to_string(), "ftps://bob@example.org:2121/data/set 1");
        let a = FtpUrl::parse("ftp://host").unwrap();
        assert_eq!(
            (a.user.as_str(), a.port, a.path.as_str()),
            ("anonymous", 21, "/")
        );
        let v6 = FtpUrl::parse("ftp://u@[::1]:2100/x/").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.addr().as_str(), v6.path.as_str()),
            ("::1", "[::1]:2100", "/x")
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "http://u:pw@h/",
            "ftp://u:pw@:21/",
            "ftp://u:pw@h:notaport/",
            "ftp://u:pw@h/a%zz",
            "ftp://u:pw@h/a%0Ab",
        ] {
            let e = FtpUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(normalize("a//b/./c/"), "/a/b/c");
        assert_eq!(normalize("/a/../b"), "/b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(file_name("/a/b c"), "b c");
    }
}
