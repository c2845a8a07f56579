//! What a recovery form carries from page to page: the backup, the
//! selection, the output. Every page of the flow (form, selection tree,
//! folder picker, confirmation) reads it from its query or body and passes
//! it on in hidden fields, so the flow works without JavaScript.

use crate::names::{self, RawQuery};
use crate::render::WebError;

/// The recovery's choices so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ask {
    pub csrf: String,
    pub dataset: String,
    /// `id` (one of the listed backups) or `before` (a date and time).
    pub which: String,
    pub id: String,
    pub before_date: String,
    pub before_time: String,
    /// The date and time converted to UTC by the browser (RFC 3339).
    pub before_utc: String,
    /// `all` or `some`.
    pub scope: String,
    /// The selected paths (bytes), when `scope` is `some`.
    pub paths: Vec<Vec<u8>>,
    /// `local` or `ftp`.
    pub dest: String,
    pub out: String,
    /// "Replace its contents" is ticked.
    pub replace: bool,
}

fn text(q: &RawQuery, name: &str) -> String {
    q.text(name).unwrap_or_default().to_string()
}

/// A path in its parameter form (a form field's value), as text.
fn decoded_text(v: &[u8]) -> Result<String, WebError> {
    let s = std::str::from_utf8(v).map_err(|_| bad_escape())?;
    let b = names::decode(s).map_err(|_| bad_escape())?;
    String::from_utf8(b).map_err(|_| {
        WebError::BadRequest(
            "That folder's name is not text (UTF-8), so it cannot be used as the output folder. Choose or type another one.".into(),
        )
    })
}

fn bad_escape() -> WebError {
    WebError::BadRequest("The address holds a broken %-escape.".into())
}

impl Ask {
    /// Read the choices from a query string or a form body.
    pub fn parse(raw: &str) -> Result<Ask, WebError> {
        let q = RawQuery::parse(raw).map_err(|_| bad_escape())?;
        let mut paths = Vec::new();
        for p in q.all("path") {
            let s = std::str::from_utf8(p).map_err(|_| bad_escape())?;
            let b = names::decode(s).map_err(|_| bad_escape())?;
            if !b.is_empty() && !paths.contains(&b) {
                paths.push(b);
            }
        }
        let mut a = Ask {
            csrf: text(&q, "csrf"),
            dataset: text(&q, "dataset"),
            which: text(&q, "which"),
            id: text(&q, "id"),
            before_date: text(&q, "before_date"),
            before_time: text(&q, "before_time"),
            before_utc: text(&q, "before_utc"),
            scope: text(&q, "scope"),
            paths,
            dest: text(&q, "dest"),
            out: text(&q, "out"),
            replace: matches!(q.text("replace"), Some("yes" | "on")),
        };
        // The folder picker's buttons: "Recover here" and "… a new folder".
        if let Some(side) = q.text("side").filter(|s| !s.is_empty())
            && (q.get("here").is_some() || q.get("into").is_some())
        {
            a.dest = side.to_string();
        }
        if let Some(h) = q.get("here") {
            a.out = decoded_text(h)?;
        } else if let Some(dir) = q.get("into") {
            let dir = decoded_text(dir)?;
            let new = text(&q, "new");
            let new = new.trim();
            if new.contains('/') || new == ".." || new == "." {
                return Err(WebError::BadRequest(
                    "A new folder's name cannot hold a slash, or be \".\" or \"..\".".into(),
                ));
            }
            a.out = if new.is_empty() {
                dir
            } else {
                format!("{}/{new}", dir.trim_end_matches('/'))
            };
        }
        if a.scope != "some" {
            a.scope = "all".into();
        }
        Ok(a)
    }

    /// Every choice as form fields (name, value): the hidden inputs of
    /// the next page. Paths are in their parameter form.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("dataset", self.dataset.clone()),
            ("which", self.which.clone()),
            ("id", self.id.clone()),
            ("before_date", self.before_date.clone()),
            ("before_time", self.before_time.clone()),
            ("before_utc", self.before_utc.clone()),
            ("scope", self.scope.clone()),
            ("dest", self.dest.clone()),
            ("out", self.out.clone()),
        ];
        for p in &self.paths {
            v.push(("path", names::encode(p)));
        }
        v
    }

    /// The fields except those named in `skip`.
    pub fn fields_but(&self, skip: &[&str]) -> Vec<(&'static str, String)> {
        self.fields()
            .into_iter()
            .filter(|(k, _)| !skip.contains(k))
            .collect()
    }

    /// The choices as a query string (for a link back to the form).
    pub fn query(&self) -> String {
        self.fields()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", names::encode(v.as_bytes())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_survive_the_hidden_fields_and_links() {
        let a = Ask {
            dataset: "my ds".into(),
            which: "before".into(),
            before_date: "2026-12-01".into(),
            before_time: "20:14".into(),
            scope: "some".into(),
            paths: vec![b"a b/c%d".to_vec(), b"bad\xff\n".to_vec()],
            dest: "local".into(),
            out: "/x/y z".into(),
            ..Default::default()
        };
        let b = Ask::parse(&a.query()).unwrap();
        assert_eq!(b.fields(), a.fields());
        // As a browser sends a form: each value form-encoded once more.
        let body: String = a
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={}", names::encode(v.as_bytes())))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(Ask::parse(&body).unwrap().paths, a.paths);
        // The picker's buttons set the output.
        let c = Ask::parse("dest=ftp&side=local&here=%2Ftmp%2Fa%2520b").unwrap();
        assert_eq!((c.dest.as_str(), c.out.as_str()), ("local", "/tmp/a b"));
        let c = Ask::parse("side=ftp&into=/r&new=+new+one+").unwrap();
        assert_eq!((c.dest.as_str(), c.out.as_str()), ("ftp", "/r/new one"));
        assert!(Ask::parse("side=ftp&into=/r&new=a/b").is_err());
        assert_eq!(Ask::parse("").unwrap().scope, "all");
    }
}
