//! Helpers: run bk, build trees, compare trees byte for byte.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub fn bk() -> Command {
    let mut c = Command::cargo_bin("bk").expect("bk binary");
    c.env_remove("BK_REPO");
    c
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `bk backup PATH --repo REPO --json [extra]`, asserting exit code `code`;
/// returns the parsed JSON summary.
pub fn backup(repo: &Path, path: &Path, extra: &[&str], code: i32) -> serde_json::Value {
    let mut c = bk();
    c.arg("backup")
        .arg(path)
        .arg("--repo")
        .arg(repo)
        .arg("--json")
        .args(extra);
    let o = c.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(code),
        "bk backup exit code; stderr:\n{}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

pub fn restore(repo: &Path, dataset: &str, out: &Path, extra: &[&OsStr]) -> Output {
    bk().arg("restore")
        .arg(dataset)
        .arg("--repo")
        .arg(repo)
        .arg("--to")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Everything a restore must reproduce about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub mtime: (i64, i64),
}

/// A tree's manifest: relative path → entry, plus hard-link groups.
#[derive(Debug, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    pub links: BTreeSet<Vec<Vec<u8>>>,
}

pub fn manifest(root: &Path) -> Manifest {
    let mut entries = BTreeMap::new();
    let mut by_inode: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    walk(root, root, &mut entries, &mut by_inode);
    let links = by_inode
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    Manifest { entries, links }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, Entry>,
    by_inode: &mut HashMap<u64, Vec<Vec<u8>>>,
) {
    for ent in fs::read_dir(dir).unwrap() {
        let ent = ent.unwrap();
        let p = ent.path();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            walk(root, &p, out, by_inode);
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec())
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            if m.nlink() > 1 {
                by_inode.entry(m.ino()).or_default().push(rel.clone());
            }
            Kind::File(fs::read(&p).unwrap())
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode,
                mtime: (m.mtime(), m.mtime_nsec()),
            },
        );
    }
}

/// Assert two manifests are equal, with a readable first difference.
pub fn assert_same(expected: &Manifest, actual: &Manifest, what: &str) {
    for (p, e) in &expected.entries {
        let name = String::from_utf8_lossy(p);
        let a = actual
            .entries
            .get(p)
            .unwrap_or_else(|| panic!("{what}: {name:?} missing from the restore"));
        assert_eq!(
            std::mem::discriminant(&e.kind),
            std::mem::discriminant(&a.kind),
            "{what}: kind of {name:?}"
        );
        assert!(
            e.kind == a.kind,
            "{what}: content or target of {name:?} differs"
        );
        assert_eq!(e.mode, a.mode, "{what}: mode of {name:?}");
        assert_eq!(e.mtime, a.mtime, "{what}: mtime of {name:?}");
    }
    for p in actual.entries.keys() {
        assert!(
            expected.entries.contains_key(p),
            "{what}: unexpected {:?} in the restore",
            String::from_utf8_lossy(p)
        );
    }
    assert_eq!(expected.links, actual.links, "{what}: hard-link groups");
}

/// Deterministic pseudo-random bytes (xorshift).
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

pub fn path_of(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o640) },
        0,
        "mkfifo {p:?}"
    );
}

/// Sum of the sizes of all pack files in a repository.
pub fn pack_bytes(repo: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![repo.join("packs")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                n += m.len();
            }
        }
    }
    n
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The part of a manifest at `prefix` and below (the whole manifest for an
/// empty prefix), with hard-link groups cut down to the members kept.
pub fn manifest_under(m: &Manifest, prefix: &[u8]) -> Manifest {
    let inside = |p: &[u8]| {
        prefix.is_empty()
            || p == prefix
            || (p.len() > prefix.len() && p.starts_with(prefix) && p[prefix.len()] == b'/')
    };
    Manifest {
        entries: m
            .entries
            .iter()
            .filter(|(p, _)| inside(p))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect(),
        links: restrict_links(&m.links, |p| inside(p)),
    }
}

fn restrict_links(
    links: &BTreeSet<Vec<Vec<u8>>>,
    keep: impl Fn(&[u8]) -> bool,
) -> BTreeSet<Vec<Vec<u8>>> {
    links
        .iter()
        .map(|g| g.iter().filter(|p| keep(p)).cloned().collect::<Vec<_>>())
        .filter(|g| g.len() > 1)
        .collect()
}

/// Assert that `actual` holds only entries of `expected`, each identical
/// (kind, content or target, mode, mtime), and the hard-link groups of
/// `expected` among the entries it kept. Entries may be missing: for a
/// snapshot repaired without the files that could no longer be restored.
pub fn assert_subset(expected: &Manifest, actual: &Manifest, what: &str) {
    for (p, a) in &actual.entries {
        let name = String::from_utf8_lossy(p);
        let e = expected
            .entries
            .get(p)
            .unwrap_or_else(|| panic!("{what}: unexpected {name:?} in the restore"));
        assert!(
            e == a,
            "{what}: {name:?} differs: expected {}, got {}",
            describe(e, a),
            describe(a, e)
        );
    }
    let kept = restrict_links(&expected.links, |p| actual.entries.contains_key(p));
    assert_eq!(kept, actual.links, "{what}: hard-link groups");
}

/// Assert that a restore that reported errors wrote nothing wrong
/// silently: every entry present is one of `expected` with the same kind;
/// every file or symlink that `named` does not cover is identical in
/// content and metadata; a named file, if present, has the right content.
pub fn assert_no_silent_damage(
    expected: &Manifest,
    actual: &Manifest,
    named: impl Fn(&[u8]) -> bool,
    what: &str,
) {
    for (p, a) in &actual.entries {
        let name = String::from_utf8_lossy(p);
        let e = expected
            .entries
            .get(p)
            .unwrap_or_else(|| panic!("{what}: unexpected {name:?} in the restore"));
        assert_eq!(
            std::mem::discriminant(&e.kind),
            std::mem::discriminant(&a.kind),
            "{what}: kind of {name:?}"
        );
        match (&e.kind, named(p)) {
            (Kind::Dir, _) => {}
            (_, false) => assert!(
                e == a,
                "{what}: {name:?} was restored differently without an error naming it: expected {}, got {}",
                describe(e, a),
                describe(a, e)
            ),
            (_, true) => assert!(
                e.kind == a.kind,
                "{what}: {name:?} is present with wrong content (its error does not excuse that)"
            ),
        }
    }
}

/// The manifest of `dir`, or an empty one when it does not exist.
pub fn manifest_if_exists(dir: &Path) -> Manifest {
    if dir.exists() {
        manifest(dir)
    } else {
        Manifest {
            entries: BTreeMap::new(),
            links: BTreeSet::new(),
        }
    }
}

/// One entry in a line: content as its size and where it first differs
/// from `other`'s.
fn describe(e: &Entry, other: &Entry) -> String {
    let kind = match (&e.kind, &other.kind) {
        (Kind::File(b), Kind::File(o)) => match b.iter().zip(o).position(|(x, y)| x != y) {
            Some(at) => format!("file of {} B (differs at byte {at})", b.len()),
            None => format!("file of {} B", b.len()),
        },
        (Kind::File(b), _) => format!("file of {} B", b.len()),
        (Kind::Symlink(t), _) => format!("symlink to {:?}", String::from_utf8_lossy(t)),
        (k, _) => format!("{k:?}"),
    };
    format!(
        "{kind}, mode {:o}, mtime {}.{:09}",
        e.mode, e.mtime.0, e.mtime.1
    )
}

/// A test that cannot run here says so in one line. Under CI (`CI` set, as
/// `.ci/run` runs), where everything is installed, a skip is a failure.
pub fn skipped(line: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{line} (CI installs what every test needs: nothing may be skipped there)"
    );
    println!("{line}");
}

/// A tmpfs mounted for the test's lifetime (lazily unmounted on drop).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mount a 4 MiB tmpfs at `at` (created); `None` where mounting is refused.
    pub fn mount(at: &Path) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; no data pointer beyond the options.
        let r = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                c("size=4m").as_ptr().cast(),
            )
        };
        (r == 0).then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; MNT_DETACH never blocks.
        unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    }
}
