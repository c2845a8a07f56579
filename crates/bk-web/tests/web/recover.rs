//! The recovery flow as a person goes through it without JavaScript: the
//! form, the selection tree, the folder picker, the confirmation that
//! names the backup and what a non-empty folder's contents become, and
//! the checks that refuse before a job starts (no backup before a time,
//! a folder outside the allowed ones, the repository itself).

use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

/// Percent-encoding of every byte but the unreserved ones and `/`, as
/// the UI's parameter form (`names::encode`) does.
pub(crate) fn enc(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// A text field's value in a query string (encoded once, as a browser does).
pub(crate) fn q(bytes: &[u8]) -> String {
    enc(bytes)
}

/// minijinja writes `/` as `&#x2f;` in HTML.
pub(crate) fn unhtml(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
}

/// A dataset `ds` under an allowed root, backed up twice into a
/// repository that also lies under that root.
async fn setup() -> (
    Setup,
    std::sync::Arc<bk_web::AppState>,
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    Browser,
) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("ds");
    std::fs::create_dir_all(ds.join("docs/deep")).unwrap();
    std::fs::create_dir_all(ds.join("other")).unwrap();
    std::fs::write(ds.join("one.txt"), "one\n").unwrap();
    std::fs::write(ds.join("two.bin"), bytes(2, 70_000)).unwrap();
    std::fs::write(ds.join("three.txt"), "three").unwrap();
    std::fs::write(ds.join("docs/a.md"), "# a").unwrap();
    std::fs::write(ds.join("docs/deep/b.md"), bytes(3, 5_000)).unwrap();
    std::fs::write(ds.join("other/c.txt"), "c").unwrap();
    let repo = root.join("backups/repo");
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(repo.clone()))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    let r = b.post(&app, "/connect", &[("address", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    b.get(&app, "/").await;
    let p = ds.display().to_string();
    for _ in 0..2 {
        let id = b
            .post(
                &app,
                "/backup",
                &[("side", "local"), ("path", &p), ("dataset", "ds")],
            )
            .await
            .job_id();
        assert_eq!(wait_job(&st, id).state, "done");
        tick();
    }
    (
        Setup {
            _tmp: tmp,
            root,
            repo,
        },
        st,
        app,
        b,
    )
}

fn files_under(p: &Path) -> Vec<(String, Vec<u8>)> {
    read_tree(p)
        .into_iter()
        .map(|(p, b)| (p.display().to_string(), b))
        .collect()
}

#[actix_web::test]
async fn a_selection_of_two_files_and_a_folder_recovers_only_those() {
    let (s, st, app, mut b) = setup().await;
    // The form: the backups listed, the latest preselected, and the
    // contract's fields.
    let form = b.get(&app, "/restore?dataset=ds").await;
    assert_eq!(form.status, StatusCode::OK);
    let f = &form.body;
    for want in [
        "id=\"restore\"",
        "name=\"which\" value=\"id\" checked",
        "name=\"id\" value=\"1\" id=\"backup-1\" checked",
        "name=\"id\" value=\"0\" id=\"backup-0\" aria",
        "name=\"which\" value=\"before\"",
        "type=\"date\" name=\"before_date\"",
        "type=\"time\" name=\"before_time\" value=\"\" aria-label",
        "name=\"scope\" value=\"all\" checked",
        "name=\"scope\" value=\"some\"",
        "name=\"dest\" value=\"local\" checked",
        "name=\"out\"",
        "id=\"choose-folder\"",
        "id=\"restore-next\"",
        " UTC</time>",
    ] {
        assert!(f.contains(want), "{want} in {f}");
    }
    assert!(!f.contains("step="), "no seconds demanded: {f}");

    // "Only some": Next leads to the selection tree of the chosen backup.
    let out = s.root.join("picked");
    let base = format!(
        "dataset=ds&which=id&id=1&scope=some&dest=local&out={}",
        q(out.display().to_string().as_bytes())
    );
    let r = b.get(&app, &format!("/restore/next?{base}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = unhtml(&r.body);
    assert!(body.contains("id=\"restore-select\""), "{body}");
    for n in ["one.txt", "two.bin", "three.txt", "docs", "other"] {
        assert!(
            body.contains(&format!("name=\"path\" value=\"{n}\" data-name=\"{n}\"")),
            "{n} in {body}"
        );
    }
    // Into a folder: a tick made above travels along as a hidden field.
    let r = b
        .get(
            &app,
            &format!("/restore/select?{base}&path=one.txt&open=docs"),
        )
        .await;
    let body = unhtml(&r.body);
    assert!(
        body.contains("name=\"path\" value=\"docs/a.md\" data-name=\"a.md\">"),
        "{body}"
    );
    assert!(
        body.contains("<input type=\"hidden\" name=\"path\" value=\"one.txt\">"),
        "{body}"
    );
    // Two files and a folder, one file inside the ticked folder too.
    let sel = "&path=one.txt&path=two.bin&path=docs&path=docs%252Fa.md";
    let r = b.get(&app, &format!("/restore/next?{base}{sel}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = unhtml(&r.body);
    let chosen = &body[body.find("id=\"chosen-backup\"").expect("chosen backup")..];
    let chosen = &chosen[..chosen.find("</p>").unwrap()];
    assert!(chosen.contains("#1"), "{chosen}");
    // one.txt (4) + two.bin (70,000) + docs/a.md (3) + docs/deep/b.md (5,000)
    assert!(chosen.contains("4 files"), "{chosen}");
    assert!(chosen.contains(&out.display().to_string()), "{chosen}");
    assert!(body.contains("id=\"restore-start\""), "{body}");
    assert!(
        !body.contains("id=\"replace-confirm\""),
        "an empty folder: {body}"
    );
    // Start: the confirmation's form, as the browser sends it.
    let fields = hidden_fields(&body);
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| *k != "csrf")
        .collect();
    let id = b.post(&app, "/restore", &form).await.job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert_eq!(
        files_under(&out),
        vec![
            ("docs/a.md".to_string(), b"# a".to_vec()),
            ("docs/deep/b.md".to_string(), bytes(3, 5_000)),
            ("one.txt".to_string(), b"one\n".to_vec()),
            ("two.bin".to_string(), bytes(2, 70_000)),
        ]
    );
    assert!(!out.join("other").exists() && !out.join("three.txt").exists());
    let _ = s.repo;
}

/// The hidden and checked fields of the page's form, decoded from HTML.
pub(crate) fn hidden_fields(body: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for part in body.split("<input type=\"hidden\" ").skip(1) {
        let name = between(part, "name=\"", "\"");
        let value = between(part, "value=\"", "\"");
        v.push((name, value));
    }
    v
}

pub(crate) fn between(s: &str, a: &str, b: &str) -> String {
    let i = s.find(a).unwrap() + a.len();
    s[i..i + s[i..].find(b).unwrap()].to_string()
}

#[actix_web::test]
async fn a_non_empty_folder_is_replaced_only_when_confirmed() {
    let (s, st, app, mut b) = setup().await;
    let out = s.root.join("busy");
    std::fs::create_dir_all(out.join("docs")).unwrap();
    std::fs::write(out.join("one.txt"), "changed since").unwrap();
    std::fs::write(out.join("mine.txt"), "keep me").unwrap();
    std::fs::write(out.join("docs/local.txt"), "keep me too").unwrap();
    let base = format!(
        "dataset=ds&which=id&id=1&scope=all&dest=local&out={}",
        q(out.display().to_string().as_bytes())
    );
    let r = b.get(&app, &format!("/restore/next?{base}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = unhtml(&r.body);
    let confirm = &body[body.find("id=\"replace-confirm\"").expect("confirmation")..];
    let replaced = between(confirm, "id=\"will-replace\">", "</ul>");
    let kept = between(confirm, "id=\"will-keep\">", "</ul>");
    assert_eq!(replaced, "<li>docs</li><li>one.txt</li>");
    assert_eq!(kept, "<li>mine.txt</li>");
    assert!(confirm.contains("id=\"replace-ok\""), "{confirm}");
    assert!(!confirm.contains("--"), "no command-line words: {confirm}");
    // Without the tick: refused in plain words, nothing touched.
    let fields = hidden_fields(&body);
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| *k != "csrf")
        .collect();
    let n_jobs = b
        .get(&app, "/jobs")
        .await
        .body
        .matches("href=\"/jobs/")
        .count();
    let r = b.post(&app, "/restore", &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let body = unhtml(&r.body);
    assert!(
        body.contains("is not empty. To recover into it, tick"),
        "{body}"
    );
    assert!(!body.contains("overwrite"), "{body}");
    assert_eq!(
        std::fs::read(out.join("one.txt")).unwrap(),
        b"changed since"
    );
    assert_eq!(
        b.get(&app, "/jobs")
            .await
            .body
            .matches("href=\"/jobs/")
            .count(),
        n_jobs,
        "no job started"
    );
    // With it: replaced and kept as the page said.
    let mut form = form.clone();
    form.push(("replace", "yes"));
    let id = b.post(&app, "/restore", &form).await.job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    assert_eq!(std::fs::read(out.join("one.txt")).unwrap(), b"one\n");
    assert_eq!(
        std::fs::read(out.join("two.bin")).unwrap(),
        bytes(2, 70_000)
    );
    assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read(out.join("docs/local.txt")).unwrap(),
        b"keep me too"
    );
    assert_eq!(
        std::fs::read(out.join("docs/deep/b.md")).unwrap(),
        bytes(3, 5_000)
    );
}

#[actix_web::test]
async fn a_recovery_into_the_repository_is_refused_before_it_starts() {
    let (s, _st, app, mut b) = setup().await;
    let n_jobs = b
        .get(&app, "/jobs")
        .await
        .body
        .matches("href=\"/jobs/")
        .count();
    for out in [
        s.repo.clone(),
        s.repo.join("snapshots"),
        s.repo.join("new/inside"),
        s.root.join("backups"),
    ] {
        let o = out.display().to_string();
        let base = format!(
            "dataset=ds&which=id&id=1&dest=local&out={}",
            q(o.as_bytes())
        );
        let r = b.get(&app, &format!("/restore/next?{base}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{o}: {}", r.body);
        assert!(
            r.body.contains("where the backups themselves are kept"),
            "{o}: {}",
            r.body
        );
        let r = b
            .post(
                &app,
                "/restore",
                &[
                    ("dataset", "ds"),
                    ("which", "id"),
                    ("id", "1"),
                    ("dest", "local"),
                    ("out", &o),
                    ("replace", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{o}: {}", r.body);
        assert!(r.body.contains("where the backups themselves are kept"));
    }
    assert_eq!(
        b.get(&app, "/jobs")
            .await
            .body
            .matches("href=\"/jobs/")
            .count(),
        n_jobs,
        "no job started"
    );
    // The repository is still whole: both backups open.
    let r = bk_core::Repository::open_local(&s.repo).unwrap();
    assert_eq!(r.snapshots(Some("ds")).unwrap().len(), 2);
    assert!(!s.repo.join("new").exists());
    // Outside the allowed folders: plain words, no command-line flag.
    let r = b
        .get(
            &app,
            "/restore/next?dataset=ds&which=id&id=1&dest=local&out=%2Fetc%2Fx",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("outside the folders this server may write to"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"restore\""), "on the form: {}", r.body);
    assert!(!r.body.contains("--allow-root"), "{}", r.body);
}

#[actix_web::test]
async fn a_time_to_the_minute_picks_a_backup_shown_before_it_starts() {
    let (s, _st, app, mut b) = setup().await;
    let out = q(s.root.join("dated").display().to_string().as_bytes());
    // Two minutes from now, in the server's zone, to the minute: the latest.
    let later = chrono::Local::now() + chrono::Duration::minutes(2);
    let (d, t) = (
        later.format("%Y-%m-%d").to_string(),
        later.format("%H:%M").to_string(),
    );
    let r = b
        .get(
            &app,
            &format!(
                "/restore/next?dataset=ds&which=before&before_date={d}&before_time={}&dest=local&out={out}",
                q(t.as_bytes())
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = unhtml(&r.body);
    let chosen = between(&body, "id=\"chosen-backup\"", "</p>");
    assert!(chosen.contains("<strong>#1</strong>"), "{chosen}");
    assert!(chosen.contains("6 files"), "{chosen}");
    // The start button carries the resolved number, not the time.
    assert!(body.contains("name=\"which\" value=\"id\""), "{body}");
    assert!(body.contains("name=\"id\" value=\"1\""), "{body}");
    // Before every backup: said on the form, with the first one named.
    let r = b
        .get(
            &app,
            &format!(
                "/restore/next?dataset=ds&which=before&before_date=2001-01-01&before_time=08%3A30&dest=local&out={out}"
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("There is no backup of") && r.body.contains("The first one is #0"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("id=\"restore\""),
        "the form again: {}",
        r.body
    );
    // "8:30 PM" is no time: said so, not a silent nothing.
    let r = b
        .get(
            &app,
            &format!(
                "/restore/next?dataset=ds&which=before&before_date={d}&before_time=8%3A30+PM&dest=local&out={out}"
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("hours and minutes"), "{}", r.body);
    // The live hint's JSON.
    let utc = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let r = b
        .get(
            &app,
            &format!("/restore/which?dataset=ds&before_utc={}", q(utc.as_bytes())),
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["id"], 1, "{v}");
    assert_eq!(v["files"], 6, "{v}");
    let r = b
        .get(
            &app,
            "/restore/which?dataset=ds&before_utc=2001-01-01T00%3A00%3A00Z",
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["id"].is_null(), "{v}");
    assert!(v["message"].as_str().unwrap().contains("no backup"), "{v}");
}

#[actix_web::test]
async fn the_folder_picker_lists_folders_and_sets_the_output() {
    let (s, _st, app, mut b) = setup().await;
    std::fs::create_dir_all(s.root.join("restores/old")).unwrap();
    let r = b
        .get(&app, "/restore/pick?dataset=ds&which=id&id=0&dest=local")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = unhtml(&r.body);
    assert!(
        body.contains(&format!(">{}/</a>", s.root.display())),
        "{body}"
    );
    let r = b
        .get(
            &app,
            &format!(
                "/restore/pick?dataset=ds&which=id&id=0&dest=local&side=local&at={}",
                enc(enc(s.root.join("restores").display().to_string().as_bytes()).as_bytes())
            ),
        )
        .await;
    let body = unhtml(&r.body);
    assert!(body.contains(">old/</a>"), "{body}");
    assert!(body.contains("id=\"pick-here\""), "{body}");
    assert!(body.contains("id=\"pick-new\""), "{body}");
    // "Recover into a new folder here": the confirmation names it.
    let fields = hidden_fields(&between(&body, "id=\"pick-new-form\"", "</form>"));
    let mut qs: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v.as_bytes())))
        .collect();
    qs.push("new=fresh+one".into());
    let r = b
        .get(&app, &format!("/restore/next?{}", qs.join("&")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = unhtml(&r.body);
    let chosen = between(&body, "id=\"chosen-backup\"", "</p>");
    assert!(chosen.contains("<strong>#0</strong>"), "{chosen}");
    assert!(
        chosen.contains(&format!("{}/fresh one", s.root.join("restores").display())),
        "{chosen}"
    );
}
