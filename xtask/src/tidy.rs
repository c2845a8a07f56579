//! The repository's rules as a test (`cargo test --workspace` runs it):
//!
//! - **long files**: a `.rs` file under `crates/` or `xtask/` has at most
//!   [`MAX_LINES`] lines, unless a line `// tidy: long file: <reason>` within
//!   its first [`MARKER_WITHIN`] lines says why (a marker without a reason
//!   does not count);
//! - **frontends and bk-ftp**: `crates/bk-cli/src` never names `bk_ftp`;
//!   `crates/bk-web/src` only in the files of [`WEB_FTP_ALLOWED`], where the
//!   web UI browses an FTP server; neither reaches bk-ftp through bk-core
//!   (`bk_core::bk_ftp`);
//! - **owned crates**: `blake3` is used only by [`BLAKE3_OWNERS`], `suppaftp`
//!   only by [`SUPPAFTP_OWNERS`].
//!
//! The lists are paths relative to the workspace root, one a line: update
//! them when files move. Each checker has a unit test on a small example.

use std::fs;
use std::path::Path;

/// Lines a source file may have without a reason.
const MAX_LINES: usize = 600;
/// The long-file marker must stand within this many lines from the top.
const MARKER_WITHIN: usize = 40;
const LONG_MARKER: &str = "// tidy: long file:";

/// Files of `crates/bk-web/src` that may name `bk_ftp` (with why).
const WEB_FTP_ALLOWED: &[(&str, &str)] = &[
    (
        "crates/bk-web/src/routes/datasets.rs",
        "lists an FTP server's directories for the dataset picker",
    ),
    (
        "crates/bk-web/src/routes/connect.rs",
        "the connect form opens the FTP browsing session and reports its errors",
    ),
    (
        "crates/bk-web/src/session.rs",
        "a browsing session holds its FTP connection pool",
    ),
    (
        "crates/bk-web/src/lib.rs",
        "WebOptions carries the FTP settings the UI browses with, and the UI password as a Secret",
    ),
    (
        "crates/bk-web/src/routes/mod.rs",
        "the shared route helpers open, list and name entries of the session's FTP server",
    ),
];

/// The module that owns hashing (blob, tree and pack ids).
const BLAKE3_OWNERS: &[&str] = &["crates/bk-core/src/id.rs"];

/// The modules of bk-ftp that wrap suppaftp, and the one test outside it.
const SUPPAFTP_OWNERS: &[&str] = &[
    // the FTP client: the only place that talks to suppaftp's API
    "crates/bk-ftp/src/client.rs",
    // converts suppaftp's errors into bk-ftp's
    "crates/bk-ftp/src/error.rs",
    // checks the test servers with an independent client (not bk-ftp, which they test)
    "crates/bk-testkit/tests/smoke.rs",
];

/// This file: its examples name what the rules forbid.
const SELF: &str = "xtask/src/tidy.rs";

/// One broken rule in one file.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    rule: &'static str,
    detail: String,
}

impl Violation {
    fn new(file: &str, rule: &'static str, detail: String) -> Self {
        Violation {
            file: file.to_string(),
            rule,
            detail,
        }
    }
}

/// The line without a `//` comment (crudely: from the first `//` on).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Rule (a): more than [`MAX_LINES`] lines need a marker with a reason.
fn check_long_file(file: &str, text: &str) -> Option<Violation> {
    let lines = text.lines().count();
    if lines <= MAX_LINES {
        return None;
    }
    let marker = text
        .lines()
        .take(MARKER_WITHIN)
        .find_map(|l| l.trim_start().strip_prefix(LONG_MARKER));
    let detail = match marker {
        Some(reason) if reason.trim().chars().any(char::is_alphabetic) => return None,
        Some(_) => format!(
            "{lines} lines; its `{LONG_MARKER}` marker gives no reason (write one after the colon)"
        ),
        None => format!(
            "{lines} lines (more than {MAX_LINES}): split it, or say why not in a line \
             `{LONG_MARKER} <reason>` within its first {MARKER_WITHIN} lines"
        ),
    };
    Some(Violation::new(file, "long file", detail))
}

/// Rule (b): a frontend source file that names bk-ftp.
fn check_frontend_ftp(file: &str, text: &str) -> Vec<Violation> {
    let web_allowed = WEB_FTP_ALLOWED.iter().any(|(f, _)| *f == file);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let c = code(line);
        let through_core = c.contains("bk_core::bk_ftp");
        let names = through_core || c.contains("bk_ftp::") || c.contains("use bk_ftp");
        if !names {
            continue;
        }
        let detail = if through_core {
            format!(
                "line {}: reaches bk-ftp through bk-core (`bk_core::bk_ftp`)",
                n + 1
            )
        } else if file.starts_with("crates/bk-cli/") {
            format!("line {}: bk-cli names bk-ftp (`bk_ftp`)", n + 1)
        } else if !web_allowed {
            format!(
                "line {}: names bk-ftp outside the FTP-browsing files of WEB_FTP_ALLOWED",
                n + 1
            )
        } else {
            continue;
        };
        out.push(Violation::new(file, "frontend names bk-ftp", detail));
    }
    out
}

/// Rule (c): `krate` used (`krate::`, `use krate`) outside its `owners`.
fn check_owned(file: &str, text: &str, krate: &str, owners: &[&str]) -> Vec<Violation> {
    if owners.contains(&file) {
        return Vec::new();
    }
    let path = format!("{krate}::");
    let import = format!("use {krate}");
    let ext = format!("extern crate {krate}");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let c = code(line);
        let used = c.contains(&path) || c.trim_start().starts_with(&import) || c.contains(&ext);
        if used {
            out.push(Violation::new(
                file,
                if krate == "blake3" {
                    "blake3 outside its owner"
                } else {
                    "suppaftp outside its owners"
                },
                format!("line {}: uses {krate}; only {owners:?} may", n + 1),
            ));
        }
    }
    out
}

/// Every rule on one file (`file` relative to the workspace root).
fn check_file(file: &str, text: &str) -> Vec<Violation> {
    if file == SELF {
        return check_long_file(file, text).into_iter().collect();
    }
    let mut out: Vec<Violation> = check_long_file(file, text).into_iter().collect();
    if file.starts_with("crates/bk-cli/src/") || file.starts_with("crates/bk-web/src/") {
        out.extend(check_frontend_ftp(file, text));
    }
    out.extend(check_owned(file, text, "blake3", BLAKE3_OWNERS));
    out.extend(check_owned(file, text, "suppaftp", SUPPAFTP_OWNERS));
    out
}

/// The `.rs` files below `dir` (skipping `target` and hidden directories),
/// as paths relative to `root` with `/` separators, sorted.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ft = e.file_type().expect("a file type");
        if ft.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(root, &e.path(), out);
            }
        } else if ft.is_file() && name.ends_with(".rs") {
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("below the root")
                .to_owned();
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// One line per file, rule and message; the line numbers of a message that
/// repeats in a file are listed together.
fn report(violations: &[Violation]) -> String {
    let mut rows: Vec<(&str, &str, String, Vec<&str>)> = Vec::new();
    for v in violations {
        let (at, msg) = match v.detail.strip_prefix("line ") {
            Some(rest) => rest
                .split_once(": ")
                .map_or((None, v.detail.as_str()), |(n, m)| (Some(n), m)),
            None => (None, v.detail.as_str()),
        };
        match rows.last_mut() {
            Some((f, r, m, lines)) if *f == v.file && *r == v.rule && m == msg && at.is_some() => {
                lines.extend(at);
            }
            _ => rows.push((&v.file, v.rule, msg.to_string(), at.into_iter().collect())),
        }
    }
    let files: std::collections::BTreeSet<_> = violations.iter().map(|v| &v.file).collect();
    let mut s = format!(
        "repository rules broken in {} file(s) (rules and owner lists: {SELF}):\n",
        files.len()
    );
    for (file, rule, msg, lines) in rows {
        match lines.as_slice() {
            [] => s.push_str(&format!("  {file}: {rule}: {msg}\n")),
            [one] => s.push_str(&format!("  {file}: {rule}: line {one}: {msg}\n")),
            many => s.push_str(&format!(
                "  {file}: {rule}: lines {}: {msg}\n",
                many.join(", ")
            )),
        }
    }
    s
}

#[test]
fn repository_rules_hold() {
    let root = crate::util::workspace_root();
    let mut files = Vec::new();
    for top in ["crates", "xtask"] {
        rust_files(&root, &root.join(top), &mut files);
    }
    assert!(
        files.iter().any(|f| f == SELF),
        "the walk found no {SELF}; is the root right?"
    );
    for owner in BLAKE3_OWNERS
        .iter()
        .chain(SUPPAFTP_OWNERS)
        .chain(WEB_FTP_ALLOWED.iter().map(|(f, _)| f))
    {
        assert!(
            root.join(owner).is_file(),
            "{owner} is in a tidy list but does not exist: update the list in {SELF}"
        );
    }
    let mut violations = Vec::new();
    for f in &files {
        let text = fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("reading {f}: {e}"));
        violations.extend(check_file(f, &text));
    }
    assert!(violations.is_empty(), "{}", report(&violations));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, head: &str) -> String {
        let mut s = format!("{head}\n");
        for i in 1..n {
            s.push_str(&format!("let x{i} = {i};\n"));
        }
        s
    }

    #[test]
    fn long_files_need_a_marker_with_a_reason() {
        assert_eq!(
            check_long_file("a.rs", &lines(MAX_LINES, "//! short")),
            None
        );
        let v = check_long_file("a.rs", &lines(MAX_LINES + 1, "//! long")).unwrap();
        assert_eq!((v.file.as_str(), v.rule), ("a.rs", "long file"));
        assert!(v.detail.starts_with("601 lines"), "{}", v.detail);
        let ok = "//! long\n// tidy: long file: one state machine, split would scatter it";
        assert_eq!(check_long_file("a.rs", &lines(MAX_LINES + 1, ok)), None);
        let empty = check_long_file("a.rs", &lines(MAX_LINES + 1, "// tidy: long file:  "));
        assert!(empty.unwrap().detail.contains("gives no reason"));
        // A marker far below the top does not count.
        let mut late = lines(MAX_LINES, "//! long");
        late.push_str("// tidy: long file: a reason, but too late\n");
        assert!(check_long_file("a.rs", &late).is_some());
    }

    #[test]
    fn frontends_do_not_name_bk_ftp() {
        let cli = "use bk_ftp::FtpUrl;\n// bk_ftp:: in a comment is fine\nfn f() {}\n";
        let v = check_frontend_ftp("crates/bk-cli/src/main.rs", cli);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].detail.starts_with("line 1: bk-cli names"),
            "{}",
            v[0].detail
        );

        let core = "let u = bk_core::bk_ftp::FtpUrl::parse(s)?;\n";
        let v = check_frontend_ftp("crates/bk-cli/src/main.rs", core);
        assert!(v[0].detail.contains("through bk-core"));

        let web = "fn list(p: &bk_ftp::Pool) {}\n";
        let (allowed, _) = WEB_FTP_ALLOWED[0];
        assert!(check_frontend_ftp(allowed, web).is_empty());
        let v = check_frontend_ftp("crates/bk-web/src/jobs.rs", web);
        assert!(v[0].detail.contains("WEB_FTP_ALLOWED"), "{}", v[0].detail);
        // Even an allowed file may not go through bk-core.
        assert_eq!(check_frontend_ftp(allowed, core).len(), 1);
    }

    #[test]
    fn owned_crates_are_used_by_their_owners_only() {
        let text = "//! a blake3 of the header\nuse blake3::Hasher;\nlet h = blake3::hash(b);\n";
        let v = check_owned("crates/bk-core/src/pack.rs", text, "blake3", BLAKE3_OWNERS);
        let at: Vec<_> = v
            .iter()
            .map(|v| v.detail.split(':').next().unwrap())
            .collect();
        assert_eq!(at, ["line 2", "line 3"]);
        assert!(check_owned(BLAKE3_OWNERS[0], text, "blake3", BLAKE3_OWNERS).is_empty());

        let ftp = "fn c(e: suppaftp::FtpError) {}\n";
        let v = check_owned(
            "crates/bk-core/src/backend.rs",
            ftp,
            "suppaftp",
            SUPPAFTP_OWNERS,
        );
        assert_eq!(v[0].rule, "suppaftp outside its owners");
        assert!(check_owned(SUPPAFTP_OWNERS[0], ftp, "suppaftp", SUPPAFTP_OWNERS).is_empty());
    }

    #[test]
    fn the_report_names_each_file_and_rule_once_per_message() {
        let v = check_file(
            "crates/bk-cli/src/main.rs",
            "use bk_ftp::A;\nuse bk_ftp::B;\n",
        );
        assert_eq!(
            report(&v),
            format!(
                "repository rules broken in 1 file(s) (rules and owner lists: {SELF}):\n  \
                 crates/bk-cli/src/main.rs: frontend names bk-ftp: lines 1, 2: bk-cli names bk-ftp (`bk_ftp`)\n"
            )
        );
    }

    #[test]
    fn the_whole_file_check_skips_frontend_rules_elsewhere() {
        let text = "use bk_ftp::FtpUrl;\n";
        assert!(check_file("crates/bk-core/src/location.rs", text).is_empty());
        assert_eq!(check_file("crates/bk-cli/src/cmd/backup.rs", text).len(), 1);
        assert!(check_file("crates/bk-cli/tests/cli/ftp.rs", text).is_empty());
    }
}
