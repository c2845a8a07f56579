//! Issue 11, acceptance 2: names with a backslash, a tab, a newline,
//! quotes, bytes that are not UTF-8 and unicode: each file downloads with
//! its exact bytes, each folder browses (Folders and the snapshot tree),
//! one folder backs up alone and recovers alone, and compare shows them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

/// The parameter form the pages use (bk-web's `names::encode`), written
/// out again here so that a change of the address format fails this test.
pub fn enc(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~/".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// How an encoded path appears inside an HTML attribute (the template
/// escapes `/`).
fn in_attr(e: &str) -> String {
    e.replace('/', "&#x2f;")
}

fn bytes_of(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

const FILES: &[&[u8]] = &[
    b"a\\b.txt",
    b"tab\there.txt",
    b"new\nline.txt",
    b"quote\"s'.txt",
    b"bad\xffutf8.txt",
    "café ☃.txt".as_bytes(),
];
const ODD_DIR: &[u8] = b"dir\twith\\odd";
const INNER: &[&[u8]] = &[b"inner\xfe.bin", b"x \\n.txt"];

/// What each name looks like on a page (escapes marked).
fn shown_html(name: &[u8]) -> String {
    match name {
        b"a\\b.txt" => "a\\b.txt".into(),
        b"tab\there.txt" => "tab<span class=\"esc\">\\t</span>here.txt".into(),
        b"new\nline.txt" => "new<span class=\"esc\">\\n</span>line.txt".into(),
        b"quote\"s'.txt" => "quote&quot;s&#x27;.txt".into(),
        b"bad\xffutf8.txt" => "bad<span class=\"esc\">\\xFF</span>utf8.txt".into(),
        b"dir\twith\\odd" => "dir<span class=\"esc\">\\t</span>with\\odd".into(),
        b"inner\xfe.bin" => "inner<span class=\"esc\">\\xFE</span>.bin".into(),
        b"x \\n.txt" => "x \\n.txt".into(),
        n => String::from_utf8(n.to_vec()).unwrap(),
    }
}

fn content(i: usize) -> Vec<u8> {
    bytes(100 + i as u64, 1000 + 777 * i)
}

fn make_tree(ds: &Path) -> PathBuf {
    std::fs::create_dir_all(ds).unwrap();
    for (i, n) in FILES.iter().enumerate() {
        std::fs::write(ds.join(OsStr::from_bytes(n)), content(i)).unwrap();
    }
    let odd = ds.join(OsStr::from_bytes(ODD_DIR));
    std::fs::create_dir(&odd).unwrap();
    for (i, n) in INNER.iter().enumerate() {
        std::fs::write(odd.join(OsStr::from_bytes(n)), content(10 + i)).unwrap();
    }
    std::os::unix::fs::symlink("a\\b.txt", ds.join("link")).unwrap();
    odd
}

#[actix_web::test]
async fn issue11_every_name_downloads_browses_backs_up_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("names");
    let odd = make_tree(&ds);
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(tmp.path().join("repo")))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let r = b.post(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Folders: every name shown, every folder link browses.
    let r = b
        .get(
            &app,
            &format!("/browse?side=local&path={}", enc(bytes_of(&ds))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for n in FILES {
        assert!(
            r.body.contains(&format!("<span>{}</span>", shown_html(n))),
            "{:?} in {}",
            String::from_utf8_lossy(n),
            r.body
        );
    }
    let odd_enc = enc(bytes_of(&odd));
    let odd_link = format!("/browse?side=local&amp;path={}", in_attr(&odd_enc));
    assert!(r.body.contains(&odd_link), "{odd_link} in {}", r.body);
    assert!(
        r.body.contains(&format!(">{}/</a>", shown_html(ODD_DIR))),
        "{}",
        r.body
    );
    let r = b
        .get(&app, &format!("/browse?side=local&path={odd_enc}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for n in INNER {
        assert!(r.body.contains(&shown_html(n)), "{}", r.body);
    }
    assert!(
        r.body.contains(&format!(
            "/backup?side=local&amp;path={}",
            in_attr(&odd_enc)
        )),
        "{}",
        r.body
    );

    // Back up the whole tree; the counts agree (8 files and a link).
    let id = b
        .post(
            &app,
            "/backup",
            &[
                ("side", "local"),
                ("path", &enc(bytes_of(&ds))),
                ("dataset", "names"),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let facts = j.summary.unwrap().facts;
    assert!(
        facts.contains(&("Entries".into(), "9 (8 files, 1 link or pipe)".into())),
        "{facts:?}"
    );
    assert!(facts.contains(&("Added".into(), "9".into())), "{facts:?}");
    assert!(!facts.iter().any(|f| f.0 == "Files"), "{facts:?}");

    // The snapshot tree: every name, with links that download it.
    let r = b.get(&app, "/snapshot?dataset=names&id=0").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for (i, n) in FILES.iter().enumerate() {
        let link = format!(
            "/download?dataset=names&amp;id=0&amp;path={}\" download>{}</a>",
            in_attr(&enc(n)),
            shown_html(n)
        );
        assert!(r.body.contains(&link), "{link} in {}", r.body);
        let d = b
            .get(
                &app,
                &format!("/download?dataset=names&id=0&path={}", enc(n)),
            )
            .await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
        assert_eq!(d.bytes, content(i), "{:?}", String::from_utf8_lossy(n));
        let cd = d
            .headers
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap();
        let (fallback, star) = cd
            .strip_prefix("attachment; filename=\"")
            .and_then(|r| r.split_once("\"; filename*=UTF-8''"))
            .unwrap_or_else(|| panic!("{cd}"));
        assert!(
            fallback
                .bytes()
                .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\'),
            "{cd}"
        );
        // filename* is the name as UTF-8 (a byte that is not UTF-8 is U+FFFD).
        let utf8 = String::from_utf8_lossy(n);
        let mut want = String::new();
        for c in utf8.bytes() {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                want.push(c as char);
            } else {
                want.push_str(&format!("%{c:02X}"));
            }
        }
        assert_eq!(star, want, "{cd}");
    }
    assert!(r.body.contains("link &rarr; a\\b.txt"), "{}", r.body);
    // The odd folder in the snapshot tree, and its files.
    let tree_link = format!(
        "/snapshot?dataset=names&amp;id=0&amp;path={}\">{}/</a>",
        in_attr(&enc(ODD_DIR)),
        shown_html(ODD_DIR)
    );
    assert!(r.body.contains(&tree_link), "{tree_link} in {}", r.body);
    let r = b
        .get(
            &app,
            &format!("/snapshot?dataset=names&id=0&path={}", enc(ODD_DIR)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for (i, n) in INNER.iter().enumerate() {
        let mut p = ODD_DIR.to_vec();
        p.push(b'/');
        p.extend_from_slice(n);
        assert!(r.body.contains(&in_attr(&enc(&p))), "{}", r.body);
        let d = b
            .get(
                &app,
                &format!("/download?dataset=names&id=0&path={}", enc(&p)),
            )
            .await;
        assert_eq!(d.bytes, content(10 + i));
    }
    // A crumb back to the folder, the name shown.
    assert!(r.body.contains(&shown_html(ODD_DIR)), "{}", r.body);

    // The odd folder backed up alone, through the form's own field.
    let r = b
        .get(&app, &format!("/backup?side=local&path={odd_enc}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let field = format!("name=\"path\" value=\"{}\"", in_attr(&odd_enc));
    assert!(r.body.contains(&field), "{field} in {}", r.body);
    assert!(
        r.body.contains(&format!(
            "<code id=\"backup-folder\">{}/{}</code>",
            root.join("names").display(),
            shown_html(ODD_DIR)
        )),
        "{}",
        r.body
    );
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &odd_enc), ("dataset", "odd")],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let r = b.get(&app, "/snapshot?dataset=odd&id=0").await;
    for n in INNER {
        assert!(r.body.contains(&shown_html(n)), "{}", r.body);
    }
    // ... and recovered alone: the same bytes under the same names.
    let out = root.join("recovered");
    let id = b
        .post(
            &app,
            "/restore",
            &[
                ("dataset", "odd"),
                ("dest", "local"),
                ("out", out.to_str().unwrap()),
                ("which", "id"),
                ("id", "0"),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let got = read_tree(&out);
    assert_eq!(got, read_tree(&odd));
    assert_eq!(got.len(), 2);

    // Compare: an added and a deleted name, shown with their escapes.
    std::fs::remove_file(ds.join(OsStr::from_bytes(b"new\nline.txt"))).unwrap();
    std::fs::write(ds.join(OsStr::from_bytes(b"more\x01.txt")), "m").unwrap();
    tick();
    let id = b
        .post(
            &app,
            "/backup",
            &[
                ("side", "local"),
                ("path", &enc(bytes_of(&ds))),
                ("dataset", "names"),
            ],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");
    let r = b.get(&app, "/compare?dataset=names&a=0&b=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let added = r.body.find("Added (1)").expect(&r.body);
    let deleted = r.body.find("Deleted (1)").expect(&r.body);
    let more = r
        .body
        .find("<code>more<span class=\"esc\">\\x01</span>.txt</code>")
        .expect(&r.body);
    let gone = r
        .body
        .find(&format!("<code>{}</code>", shown_html(b"new\nline.txt")))
        .expect(&r.body);
    assert!(
        added < more && more < deleted && deleted < gone,
        "{}",
        r.body
    );
}

/// Addresses that cannot name a file get plain words, never an OS error
/// number or a command-line flag.
#[actix_web::test]
async fn bad_names_and_paths_are_refused_in_plain_words() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(tmp.path().join("repo")))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;
    let long = format!("{}/{}", root.display(), "n".repeat(300));
    let outside = tmp.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    for (uri, status) in [
        (
            format!("/browse?side=local&path={}", enc(long.as_bytes())),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/browse?side=local&path={}", enc(bytes_of(&outside))),
            StatusCode::FORBIDDEN,
        ),
        // A sibling of the root: outside, whether it exists or not.
        (
            format!("/browse?side=local&path={}%FFx", enc(bytes_of(&root))),
            StatusCode::FORBIDDEN,
        ),
        // Missing, inside the root.
        (
            format!("/browse?side=local&path={}/gone%FFx", enc(bytes_of(&root))),
            StatusCode::NOT_FOUND,
        ),
        (
            "/browse?side=local&path=%G1".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/snapshot?dataset=none&id=0&path=a/../b".to_string(),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let r = b.get(&app, &uri).await;
        assert_eq!(r.status, status, "{uri}: {}", r.body);
        assert!(!r.body.contains("os error"), "{uri}: {}", r.body);
        assert!(!r.body.contains("--"), "{uri}: {}", r.body);
    }
    let r = b
        .get(
            &app,
            &format!("/browse?side=local&path={}%FFx", enc(bytes_of(&root))),
        )
        .await;
    assert!(r.body.contains("\\xFFx"), "{}", r.body);
}
