//! Every path a browser sends is resolved and confined here.
//!
//! - Local paths must lie under one of the allowed roots after every
//!   symlink is resolved (`canonicalize`), and may not contain `..`. They
//!   are checked against the roots as written first, before anything is
//!   looked up on disk, so a path outside gets the same "forbidden" answer
//!   whether or not it exists (no oracle of what lies outside).
//! - FTP paths are made absolute and normalized; `..` is refused outright,
//!   so a path can never climb above the server's root.
//! - Paths inside a snapshot are checked name by name, and must exist.
//!
//! Local and snapshot paths are bytes (any byte but NUL in a name); FTP
//! paths are text, as the FTP client gives them. Messages show paths with
//! [`crate::names::shown`] and name no command-line flag.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::names::shown;

/// Why a path was refused. The message is meant for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// It does not exist.
    NotFound(String),
    /// It lies outside what this server may touch.
    Forbidden(String),
    /// It is malformed.
    Invalid(String),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::NotFound(p) => write!(f, "{p} does not exist"),
            PathError::Forbidden(p) => write!(
                f,
                "{p} is outside the folders this server may use (the person who started bk web chooses which folders it may use)"
            ),
            PathError::Invalid(why) => f.write_str(why),
        }
    }
}

fn has_dotdot(p: &Path) -> bool {
    p.components().any(|c| matches!(c, Component::ParentDir))
}

fn under_roots(p: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

/// An existing local path, canonicalized and required to lie under one of
/// `roots` (which must be canonical).
pub fn confine_existing(
    raw: &(impl AsRef<OsStr> + ?Sized),
    roots: &[PathBuf],
) -> Result<PathBuf, PathError> {
    let raw = raw.as_ref();
    let p = Path::new(raw);
    if raw.is_empty() || !p.is_absolute() {
        return Err(PathError::Invalid(format!(
            "\"{}\" is not a full folder path (one that starts with /)",
            shown(raw.as_bytes())
        )));
    }
    if has_dotdot(p) || raw.as_bytes().contains(&0) || !under_roots(p, roots) {
        return Err(PathError::Forbidden(shown(raw.as_bytes())));
    }
    let c = p
        .canonicalize()
        .map_err(|_| PathError::NotFound(shown(raw.as_bytes())))?;
    if !under_roots(&c, roots) {
        return Err(PathError::Forbidden(shown(raw.as_bytes())));
    }
    Ok(c)
}

/// A local path that may not exist yet (a restore's output directory): its
/// deepest existing ancestor is canonicalized and must lie under one of
/// `roots`; the missing rest may contain only plain names.
pub fn confine_new(
    raw: &(impl AsRef<OsStr> + ?Sized),
    roots: &[PathBuf],
) -> Result<PathBuf, PathError> {
    let raw = raw.as_ref();
    let p = Path::new(raw);
    if raw.is_empty() || !p.is_absolute() {
        return Err(PathError::Invalid(format!(
            "\"{}\" is not a full folder path (one that starts with /)",
            shown(raw.as_bytes())
        )));
    }
    if has_dotdot(p) || raw.as_bytes().contains(&0) || !under_roots(p, roots) {
        return Err(PathError::Forbidden(shown(raw.as_bytes())));
    }
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if std::fs::symlink_metadata(&existing).is_ok() {
            break;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return Err(PathError::Forbidden(shown(raw.as_bytes()))),
        }
    }
    let mut c = existing
        .canonicalize()
        .map_err(|_| PathError::NotFound(shown(raw.as_bytes())))?;
    if !under_roots(&c, roots) {
        return Err(PathError::Forbidden(shown(raw.as_bytes())));
    }
    for n in rest.into_iter().rev() {
        c.push(n);
    }
    if roots.iter().any(|r| r == &c) {
        return Err(PathError::Invalid(
            "recover into a new folder inside an allowed directory, not into the allowed directory itself".into(),
        ));
    }
    Ok(c)
}

/// An absolute, normalized FTP path (`/` alone for the root). `..` is
/// refused, as are line breaks and NUL (they would end the FTP command).
pub fn ftp_path(raw: &str) -> Result<String, PathError> {
    if raw.contains(['\r', '\n', '\0']) {
        return Err(PathError::Invalid(
            "the path contains a line break or NUL".into(),
        ));
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::Forbidden(shown(raw.as_bytes()))),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The components of a path inside a snapshot (`/`-separated bytes,
/// relative). `..` and NUL are refused; empty and `.` components dropped.
pub fn snapshot_components(raw: &[u8]) -> Result<Vec<Vec<u8>>, PathError> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(PathError::Forbidden(shown(raw))),
            c if c.contains(&0) => {
                return Err(PathError::Invalid("the path contains NUL".into()));
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_confined() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("ds/sub")).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let roots = vec![root.canonicalize().unwrap()];
        let r = |s: &Path| s.to_str().unwrap().to_string();
        assert!(confine_existing(&r(&root.join("ds/sub")), &roots).is_ok());
        assert!(matches!(
            confine_existing(&r(&root.join("ds/../../outside")), &roots),
            Err(PathError::Forbidden(_))
        ));
        assert!(matches!(
            confine_existing(&r(&root.join("escape")), &roots),
            Err(PathError::Forbidden(_))
        ));
        assert!(matches!(
            confine_existing(&r(&outside), &roots),
            Err(PathError::Forbidden(_))
        ));
        assert!(matches!(
            confine_existing(&r(&root.join("missing")), &roots),
            Err(PathError::NotFound(_))
        ));
        assert!(matches!(
            confine_existing("relative/path", &roots),
            Err(PathError::Invalid(_))
        ));
        // New paths: under a root, not through a symlink out, not the root.
        assert!(confine_new(&r(&root.join("out/new")), &roots).is_ok());
        assert!(matches!(
            confine_new(&r(&root.join("escape/new")), &roots),
            Err(PathError::Forbidden(_))
        ));
        assert!(matches!(
            confine_new(&r(&outside.join("new")), &roots),
            Err(PathError::Forbidden(_))
        ));
        assert!(confine_new(&r(&root), &roots).is_err());
        // Names with any byte but NUL and `/`.
        let odd = root.join(OsStr::from_bytes(b"bad\xff \\ \t\n\"'"));
        std::fs::create_dir(&odd).unwrap();
        assert_eq!(
            confine_existing(odd.as_os_str(), &roots).unwrap(),
            odd.canonicalize().unwrap()
        );
        let e = confine_existing(OsStr::from_bytes(b"/no\xffwhere"), &roots).unwrap_err();
        assert!(e.to_string().contains("\\xFF"), "{e}");
        assert!(!e.to_string().contains("--"), "{e}");
    }

    /// A path outside the roots is forbidden whether or not it exists, so
    /// the answer tells nothing about what lies outside.
    #[test]
    fn outside_paths_are_forbidden_before_they_are_looked_up() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir(t.path().join("there")).unwrap();
        let roots = vec![root.canonicalize().unwrap()];
        let there = t.path().join("there").display().to_string();
        let missing = t.path().join("missing").display().to_string();
        for p in [there.as_str(), missing.as_str(), "/no/such/dir"] {
            assert_eq!(
                confine_existing(p, &roots),
                Err(PathError::Forbidden(p.to_string())),
                "{p}"
            );
            let new = format!("{p}/out");
            assert_eq!(
                confine_new(&new, &roots),
                Err(PathError::Forbidden(new.clone())),
                "{new}"
            );
        }
    }

    #[test]
    fn ftp_paths_cannot_climb() {
        assert_eq!(ftp_path("").unwrap(), "/");
        assert_eq!(ftp_path("a//b/./c/").unwrap(), "/a/b/c");
        assert!(matches!(
            ftp_path("/a/../../etc"),
            Err(PathError::Forbidden(_))
        ));
        assert!(ftp_path("/a\r\nDELE x").is_err());
    }

    #[test]
    fn snapshot_paths() {
        assert_eq!(
            snapshot_components(b"/a/b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(snapshot_components(b"a/../b").is_err());
        assert_eq!(
            snapshot_components(b"d\tx/bad\xff\\n").unwrap(),
            vec![b"d\tx".to_vec(), b"bad\xff\\n".to_vec()]
        );
    }
}
