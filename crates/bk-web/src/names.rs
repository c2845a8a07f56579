//! File names as bytes: in addresses, in forms and on the page.
//!
//! A name may hold any byte but `/` and NUL (a snapshot's paths, local
//! paths, FTP paths alike), so the UI never turns one into a `String` on
//! the way. Three forms:
//!
//! - [`encode`]: the *parameter form*, an ASCII string in which every byte
//!   but the unreserved ones and `/` is percent-encoded (`bad%FFutf8.txt`).
//!   It goes into links as it is (`/download?path=a%5Cb.txt`) and into the
//!   value of a form field (where the browser encodes it once more, and
//!   the form decoder undoes that).
//! - [`decode`]: back to the exact bytes.
//! - [`shown`]: what a person reads. UTF-8 text shows as itself; a byte
//!   that is not UTF-8 shows as `\xFF`, a control character as `\t`, `\n`,
//!   `\r` or `\x1B`. [`shown_html`] is the same, escaped for HTML, with
//!   every such escape in `<span class="esc">` so that it can be told from
//!   a name that holds a backslash.
//!
//! [`RawQuery`] reads a query string whose values are percent-encoded raw
//! bytes (which `web::Query<String>` would refuse when they are not UTF-8).

use std::fmt::Write;

/// Bytes left as they are in the parameter form.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
}

/// The parameter form of `bytes`: ASCII, safe in a URL query or path.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if plain(b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// The bytes of a parameter form (or of any percent-encoded text: bytes
/// not escaped stand for themselves). A `%` not followed by two hex
/// digits is an error.
pub fn decode(s: &str) -> Result<Vec<u8>, BadEscape> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| BadEscape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BadEscape)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A `%` in a parameter not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEscape;

impl std::fmt::Display for BadEscape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the address holds a broken %-escape")
    }
}

impl std::error::Error for BadEscape {}

/// One piece of a shown name: text as it is, or an escape for a byte or
/// character that cannot be shown.
enum Piece<'a> {
    Text(&'a str),
    Escape(String),
}

fn pieces(bytes: &[u8], mut f: impl FnMut(Piece<'_>)) {
    for chunk in bytes.utf8_chunks() {
        let mut start = 0;
        let valid = chunk.valid();
        for (i, c) in valid.char_indices() {
            if c.is_control() {
                if start < i {
                    f(Piece::Text(&valid[start..i]));
                }
                f(Piece::Escape(match c {
                    '\t' => "\\t".into(),
                    '\n' => "\\n".into(),
                    '\r' => "\\r".into(),
                    c if (c as u32) < 0x100 => format!("\\x{:02X}", c as u32),
                    c => format!("\\u{{{:X}}}", c as u32),
                }));
                start = i + c.len_utf8();
            }
        }
        if start < valid.len() {
            f(Piece::Text(&valid[start..]));
        }
        for &b in chunk.invalid() {
            f(Piece::Escape(format!("\\x{b:02X}")));
        }
    }
}

/// `bytes` as a person reads it (plain text).
pub fn shown(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    pieces(bytes, |p| match p {
        Piece::Text(t) => s.push_str(t),
        Piece::Escape(e) => s.push_str(&e),
    });
    s
}

fn push_escaped_html(s: &mut String, t: &str) {
    for c in t.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#x27;"),
            c => s.push(c),
        }
    }
}

/// `bytes` as HTML: text escaped, every escape in `<span class="esc">`.
pub fn shown_html(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    pieces(bytes, |p| match p {
        Piece::Text(t) => push_escaped_html(&mut s, t),
        Piece::Escape(e) => {
            s.push_str("<span class=\"esc\">");
            s.push_str(&e);
            s.push_str("</span>");
        }
    });
    s
}

/// [`shown_html`] as a template value that is not escaped again.
pub fn html_value(bytes: &[u8]) -> minijinja::Value {
    minijinja::Value::from_safe_string(shown_html(bytes))
}

/// A query string read as (name, raw bytes) pairs: `+` is a space, `%XX`
/// a byte. Names are compared as they are written.
#[derive(Debug, Default, Clone)]
pub struct RawQuery(Vec<(String, Vec<u8>)>);

impl RawQuery {
    /// Parse `q` (without the `?`).
    pub fn parse(q: &str) -> Result<RawQuery, BadEscape> {
        let mut v = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            let k = String::from_utf8(decode(&k.replace('+', " "))?).map_err(|_| BadEscape)?;
            v.push((k, decode(&val.replace('+', " "))?));
        }
        Ok(RawQuery(v))
    }

    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Every value named `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value named `name` as text (`None` if absent or not UTF-8).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_through_the_parameter_form() {
        let all: Vec<u8> = (1..=255u8).collect();
        let e = encode(&all);
        assert!(e.is_ascii());
        assert!(!e.contains(['&', '=', '+', '#', '?', ' ', '"', '<']));
        assert_eq!(decode(&e).unwrap(), all);
        assert_eq!(encode(b"dir/a b.txt"), "dir/a%20b.txt");
        assert_eq!(encode(b"bad\xffutf8"), "bad%FFutf8");
        assert!(decode("a%zz").is_err());
        assert!(decode("a%4").is_err());
    }

    #[test]
    fn names_are_shown_readably_and_escapes_marked() {
        assert_eq!(shown(b"a\\b.txt"), "a\\b.txt");
        assert_eq!(shown(b"tab\there"), "tab\\there");
        assert_eq!(shown(b"new\nline"), "new\\nline");
        assert_eq!(shown(b"bad\xffutf8.txt"), "bad\\xFFutf8.txt");
        assert_eq!(
            shown("caf\u{e9} \u{1F600}".as_bytes()),
            "caf\u{e9} \u{1F600}"
        );
        assert_eq!(
            shown_html(b"<a\\b>\xff"),
            "&lt;a\\b&gt;<span class=\"esc\">\\xFF</span>"
        );
        // A backslash in the name and an escape read alike as text, but
        // not as HTML.
        assert_ne!(shown_html(b"a\\xFF"), shown_html(b"a\xff"));
    }

    #[test]
    fn a_raw_query_keeps_bytes() {
        let q = RawQuery::parse("dataset=ds&path=a%5Cb/bad%FF+x&path=two").unwrap();
        assert_eq!(q.text("dataset"), Some("ds"));
        assert_eq!(q.get("path"), Some(&b"a\\b/bad\xff x"[..]));
        assert_eq!(q.all("path").count(), 2);
        assert_eq!(q.text("path"), None, "not UTF-8");
        assert!(q.get("missing").is_none());
        assert!(RawQuery::parse("path=%G0").is_err());
    }
}
