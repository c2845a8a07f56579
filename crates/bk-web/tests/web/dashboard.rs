//! Issue 11: Home as a dashboard ("Back up now", running and failed jobs),
//! the words of the pages, and the repository never backed up into itself.

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::Repository;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;

#[actix_web::test]
async fn issue11_back_up_now_from_home_repeats_the_last_backup() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("ds");
    make_dataset(&ds);
    std::os::unix::fs::symlink("a.txt", ds.join("link")).unwrap();
    let repo_dir = tmp.path().join("repo");
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(repo_dir.clone()))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;

    // The words: Folders browses, Datasets lists what is backed up.
    let r = b.get(&app, "/browse").await;
    assert!(r.body.contains("<h1>Folders</h1>"), "{}", r.body);
    for nav in [
        "<a href=\"/\">Home</a>",
        "<a href=\"/browse\" aria-current=\"page\">Folders</a>",
        "<a href=\"/backups\">Datasets</a>",
        "<a href=\"/jobs\">Jobs</a>",
    ] {
        assert!(r.body.contains(nav), "{nav} in {}", r.body);
    }
    let r = b.get(&app, "/").await;
    assert!(r.body.contains("id=\"home-jobs\""), "{}", r.body);
    assert!(r.body.contains("No backups yet"), "{}", r.body);

    // The first backup, through the form.
    let path = ds.display().to_string();
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &path), ("dataset", "ds")],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    // Entries and "added" count the same things: 2 files and a link.
    let facts = j.summary.unwrap().facts;
    assert!(
        facts.contains(&("Entries".into(), "3 (2 files, 1 link or pipe)".into())),
        "{facts:?}"
    );
    assert!(facts.contains(&("Added".into(), "3".into())), "{facts:?}");

    // Home: the dataset's card with its last backup and "Back up now".
    let home = b.get(&app, "/").await;
    let card = &home.body[home
        .body
        .find("<section class=\"card dataset-card\" data-dataset=\"ds\">")
        .expect(&home.body)..];
    let card = &card[..card.find("</section>").unwrap()];
    for want in [
        "#0, <time datetime=\"20",
        " UTC</time>",
        "<dd class=\"result\">complete</dd>",
        "<dd>3 (2 files, 1 link or pipe)</dd>",
        "<form class=\"backup-now\" method=\"post\" action=\"/backup-now\">",
        "<input type=\"hidden\" name=\"dataset\" value=\"ds\">",
        "<button type=\"submit\">Back up now</button>",
        "href=\"/backups?dataset=ds\"",
    ] {
        assert!(card.contains(want), "{want} in {card}");
    }
    let snap0 = b.get(&app, "/backups?dataset=ds").await;
    assert!(
        snap0
            .body
            .contains("<td class=\"num\">3 (2 files, 1 link or pipe)</td>"),
        "{}",
        snap0.body
    );

    // "Back up now": a second backup of the same folder, incremental.
    std::fs::write(ds.join("a.txt"), "version 2\n").unwrap();
    tick();
    let r = b.post(&app, "/backup-now", &[("dataset", "ds")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r.job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let repo = Repository::open_local(&repo_dir).unwrap();
    let snaps = repo.snapshots(Some("ds")).unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1].source, snaps[0].source);
    assert_eq!(snaps[1].source, path);
    assert!(
        !snaps[1].full,
        "the first was full only because it was the first"
    );
    assert_eq!((snaps[1].stats.modified, snaps[1].stats.added), (1, 0));

    // A failed job shows on Home, in plain words: a second folder backed
    // up under the same dataset name.
    let other = root.join("other");
    std::fs::create_dir(&other).unwrap();
    let id = b
        .post(
            &app,
            "/backup",
            &[
                ("side", "local"),
                ("path", other.to_str().unwrap()),
                ("dataset", "ds"),
            ],
        )
        .await
        .job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "failed");
    let msg = j.error.unwrap();
    assert!(msg.contains("was last backed up from"), "{msg}");
    assert!(!msg.contains("--"), "{msg}");
    let home = b.get(&app, "/").await.body;
    let jobs = &home[home.find("id=\"home-jobs\"").unwrap()..];
    let jobs = &jobs[..jobs.find("</section>").unwrap()];
    assert!(
        jobs.contains(&format!("<a href=\"/jobs/{id}\">Backup job {id}</a>")),
        "{jobs}"
    );
    assert!(jobs.contains("state-failed"), "{jobs}");
    assert!(!jobs.contains("--"), "{jobs}");

    // A dataset from an FTP server this session is not connected to.
    let mut remote = snaps[0].clone();
    remote.dataset = "remote".into();
    remote.source = "ftp://alice@127.0.0.1:2121/data".into();
    repo.commit_snapshot(&remote).unwrap();
    let r = b.post(&app, "/backup-now", &[("dataset", "remote")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body
            .contains("comes from the FTP server 127.0.0.1:2121, and you are not connected to it"),
        "{}",
        r.body
    );
    // The Datasets list names both.
    let r = b.get(&app, "/backups").await;
    assert!(r.body.contains("<h1>Datasets</h1>"), "{}", r.body);
    assert!(r.body.contains("data-dataset=\"remote\"") && r.body.contains("data-dataset=\"ds\""));
}

/// The README's old example: the allowed folder holds the repository.
/// Backing that folder up leaves the repository out and says so on the
/// job page; the next backup does not grow by the previous one.
#[actix_web::test]
async fn issue11_the_repository_is_never_backed_up_into_itself() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("home")).unwrap();
    let home = tmp.path().join("home").canonicalize().unwrap();
    make_dataset(&home.join("data"));
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(home.join("backups")))
            .allow_root(&home),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;
    b.get(&app, "/").await;
    let path = home.display().to_string();
    let mut stored = Vec::new();
    for _ in 0..2 {
        let id = b
            .post(
                &app,
                "/backup",
                &[("side", "local"), ("path", &path), ("dataset", "home")],
            )
            .await
            .job_id();
        let j = wait_job(&st, id);
        assert_eq!(j.state, "done", "{:?}", j.error);
        let facts = j.summary.unwrap().facts;
        let note = facts
            .iter()
            .find(|f| f.0 == "Note")
            .unwrap_or_else(|| panic!("{facts:?}"));
        assert!(
            note.1.starts_with("left out: the repository itself") && note.1.ends_with("at backups"),
            "{note:?}"
        );
        let page = b.get(&app, &format!("/jobs/{id}")).await.body;
        assert!(page.contains("left out: the repository itself"), "{page}");
        stored.push(
            facts
                .iter()
                .find(|f| f.0 == "Entries")
                .map(|f| f.1.clone())
                .unwrap(),
        );
        tick();
    }
    // Both backups hold the two data files only.
    assert_eq!(stored, vec!["2 (2 files)", "2 (2 files)"]);
    let repo = Repository::open_local(&home.join("backups")).unwrap();
    let snaps = repo.snapshots(Some("home")).unwrap();
    assert_eq!(snaps[1].stats.stored_bytes, 0, "{:?}", snaps[1].stats);
    assert_eq!(snaps[1].tree, snaps[0].tree);
}
