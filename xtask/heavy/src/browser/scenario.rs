//! The browser scenario's steps, in order, each depending on the one before:
//!
//! 1. locked: without the printed login URL nothing is visible;
//! 2. log in with the URL (the token leaves the address bar);
//! 3. connect to the FTP server (through the counting proxy): a wrong
//!    password first, then the right one;
//! 4. Folders → back up `folder2`; change it; "Back up now" from Home;
//! 5. the backups view, a comparison, a snapshot, the jobs;
//! 6. recover a selection (two files and a folder) "before" a time typed to
//!    the minute, the chosen backup shown before it starts; bytes compared;
//! 7. replace the contents of a non-empty folder through the confirmation;
//! 8. cancel a running backup: no snapshot is made;
//! 9. every page on a 390×844 window is no wider than the screen;
//! 10. the session logs in once per pool (folders, repository) and its jobs
//!     reuse those connections;
//! 11. log out.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bk_testkit::TestServer;

use super::{Session, text_of, tree};
use crate::counting_proxy::CountingProxy;

/// What the scenario works with.
pub(super) struct Ctx<'a> {
    pub(super) server: &'a TestServer,
    pub(super) password: &'a str,
    /// The address the UI is given for the FTP server: the counting proxy.
    pub(super) ftp_addr: String,
    pub(super) proxy: &'a CountingProxy,
    /// The FTP server's base folder (`""` or `/some/dir`).
    pub(super) base: &'a str,
    /// `folder2` on the server's disk.
    pub(super) dataset: &'a Path,
    /// The folder `bk web --allow-root` allows on this machine.
    pub(super) local_root: &'a Path,
    pub(super) login_url: &'a str,
    pub(super) bk: &'a Path,
}

/// Parallel connections of each of the session's pools (bk-ftp's default).
const POOL: u64 = 4;

fn now_ms() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64)
}

/// The snapshots of `repo` (a directory), as `bk snapshots --json` lists them.
fn snapshots(bk: &Path, repo: &Path) -> Result<Vec<serde_json::Value>> {
    let o = Command::new(bk)
        .arg("--repo")
        .arg(repo)
        .args(["snapshots", "--json"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .with_context(|| format!("bk snapshots --json in {}", repo.display()))?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

impl Session {
    async fn js(&self, script: &str, args: Vec<serde_json::Value>) -> Result<serde_json::Value> {
        Ok(self.c.execute(script, args).await?)
    }

    /// Sets an input's value as a user's typing would, events included.
    async fn set_value(&self, css: &str, value: &str) -> Result<()> {
        self.js(
            "const e = document.querySelector(arguments[0]);
             e.value = arguments[1];
             e.dispatchEvent(new Event('input', {bubbles: true}));
             e.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![css.into(), value.into()],
        )
        .await?;
        Ok(())
    }

    async fn url(&self) -> Result<String> {
        Ok(self.c.current_url().await?.to_string())
    }

    /// The page's width on the current window, and the window's.
    async fn widths(&self) -> Result<(u64, u64)> {
        let v = self
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await?;
        Ok((v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0)))
    }

    pub(super) async fn scenario(&mut self, x: &Ctx<'_>) -> Result<()> {
        let base = x.base;
        let repo = format!("{base}/backups");
        let repo_disk = x.server.local_path(&repo);
        let datasets_dir = format!("{base}/datasets");
        let recovered = format!("{base}/datasets/folder2_recovered");

        // 1. Locked: a browser without the login URL sees nothing.
        self.goto("/").await?;
        let page = self.source().await?;
        self.check(
            "without the login URL the start page shows no connect form, only how to get in",
            !page.contains("action=\"/connect\"") && page.contains("printed"),
        );
        self.shot("00-locked").await?;
        self.goto("/jobs").await?;
        let page = self.source().await?;
        self.check(
            "without the login URL the jobs page shows no job list",
            !page.contains("href=\"/jobs/"),
        );

        // 2. Log in with the URL bk web printed.
        self.c.goto(x.login_url).await?;
        self.wait_for("form#connect").await?;
        let url = self.url().await?;
        self.check(
            "the login URL leads to the connect page and the token leaves the address bar",
            !url.contains("token"),
        );
        self.shot("01-connect").await?;

        // 3. Connect: first a wrong password, then the right one.
        self.fill("input[name=address]", &x.ftp_addr).await?;
        self.fill("input[name=user]", x.server.user()).await?;
        if x.server.checks_password() {
            self.fill("input[name=password]", "wrong password").await?;
            self.fill("input[name=repo_path]", &repo).await?;
            self.click("#connect button[type=submit]").await?;
            self.wait_for("p.error").await?;
            let page = self.source().await?;
            self.check(
                "a wrong password is reported on the connect page",
                page.contains("refused the user name or password"),
            );
            self.shot("02-connect-wrong-password").await?;
        }
        // From here on, every login counts.
        let before_connect = x.proxy.peek().logins();
        let connections_before = x.proxy.peek().connections;
        self.fill("input[name=password]", x.password).await?;
        self.fill("input[name=repo_path]", &repo).await?;
        let busy = self
            .js(
                "return document.querySelector('#connect').dataset.busy || '';",
                vec![],
            )
            .await?;
        self.check(
            "the connect form says it is connecting while it waits",
            busy.as_str().is_some_and(|b| !b.is_empty()),
        );
        self.click("#connect button[type=submit]").await?;
        self.wait_for("header nav").await?;
        let page = self.source().await?;
        self.check(
            "connected: the home page names the repository",
            page.contains("/backups"),
        );
        self.shot("03-home-empty").await?;

        // 4. Folders: one level at a time, then "Back up this folder".
        self.click_link("Folders").await?;
        if base.is_empty() {
            self.click_link("datasets/").await?;
            self.wait_for("a[href*='folder2']").await?;
        } else {
            self.goto(&format!("/browse?side=ftp&path={datasets_dir}"))
                .await?;
        }
        let page = self.source().await?;
        self.check(
            "the Folders view lists the FTP server's folders",
            page.contains("folder1/") && page.contains("folder2/"),
        );
        let logins = x.proxy.peek().logins() - before_connect;
        // One login for the dataset server's pool, one for the repository's
        // (kept apart: a backup holds dataset connections while it writes).
        self.check(
            &format!(
                "connecting and browsing logged in once for the folders and once for the repository ({logins} logins)"
            ),
            logins == 2,
        );
        self.click_link("folder2/").await?;
        self.shot("04-folders-view").await?;
        self.click("a[href^='/backup?']").await?;
        self.shot("05-backup-form").await?;
        let v1 = tree(x.dataset)?;
        self.click("form[action='/backup'] button[type=submit]")
            .await?;
        // Live progress: the JS updates the counters without a reload.
        let (state, seen) = self.wait_job().await?;
        self.check("the first backup job ends done", state == "done");
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        println!("     bytes shown while running: {seen:?}");
        self.check(
            "the job page shows the bytes done",
            !seen.is_empty() && distinct.iter().all(|b| b.ends_with('B')),
        );
        self.shot("06-backup-job-done").await?;

        // The next minute: a time typed to the minute falls between the
        // first backup and the next.
        let minute_ms = (now_ms()? / 60_000 + 1) * 60_000;
        let wait = minute_ms + 1500 - now_ms()?;
        println!(
            "     waiting {:.1} s for the next minute",
            wait as f64 / 1000.0
        );
        tokio::time::sleep(Duration::from_millis(wait)).await;

        // Change the dataset on the server; "Back up now" from Home.
        fs::write(
            x.dataset.join("file1.txt"),
            "first file, version 2 (longer)\n",
        )?;
        fs::remove_file(x.dataset.join("file2.txt"))?;
        fs::write(x.dataset.join("lmao/new.txt"), "a new file\n")?;
        let v2 = tree(x.dataset)?;
        self.goto("/").await?;
        self.wait_for(".dataset-card[data-dataset=folder2] form.backup-now")
            .await?;
        self.shot("07-home-dashboard").await?;
        self.click(".dataset-card[data-dataset=folder2] form.backup-now button")
            .await?;
        let (state, _) = self.wait_job().await?;
        let page = self.source().await?;
        self.check(
            "\"Back up now\" from Home runs a backup that ends done",
            state == "done",
        );
        self.check(
            "its summary counts the changes",
            page.contains("<dt>Modified</dt><dd>1</dd>")
                && page.contains("<dt>Deleted</dt><dd>1</dd>"),
        );
        self.shot("08-second-backup-summary").await?;
        let snaps = snapshots(x.bk, &repo_disk)?;
        self.check(
            "\"Back up now\" backed up the same source into the same dataset",
            snaps.len() == 2 && snaps.iter().all(|s| s["dataset"] == "folder2"),
        );

        // 5. Backups view, a comparison, a snapshot, the job list.
        self.goto("/backups?dataset=folder2").await?;
        let page = self.source().await?;
        let local_times = self
            .js(
                "return [...document.querySelectorAll('time')].every(t => t.textContent !== t.getAttribute('datetime'));",
                vec![],
            )
            .await?;
        self.check(
            "the backups view lists both backups, times in the browser's zone",
            page.contains("incremental") && local_times == serde_json::json!(true),
        );
        self.shot("09-backups-view").await?;
        self.click("form[action='/compare'] button[type=submit]")
            .await?;
        self.wait_for("ul.changes").await?;
        let page = self.source().await?;
        self.check(
            "the comparison names the added, modified and deleted files",
            page.contains("lmao/new.txt")
                && page.contains("file1.txt")
                && page.contains("file2.txt"),
        );
        self.shot("10-compare").await?;
        self.goto("/snapshot?dataset=folder2&id=0&path=a").await?;
        self.shot("11-snapshot-tree").await?;
        self.goto("/jobs").await?;
        self.shot("12-jobs").await?;

        // 6. Recover two files and a folder of the state "before" the
        // minute, onto the FTP server.
        self.recover_selection(minute_ms, &recovered).await?;
        let got = tree(&x.server.local_path(&recovered))?;
        let want: std::collections::BTreeMap<_, _> = v1
            .iter()
            .filter(|(p, _)| {
                p.as_path() == Path::new("file1.txt")
                    || p.as_path() == Path::new("file2.txt")
                    || p.starts_with("a")
            })
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect();
        self.check(
            "the selection recovered exactly the two files and the folder, byte for byte, as they were before the minute",
            got == want && !x.server.local_path(&recovered).join("lmao").exists(),
        );

        // 7. Replace the contents of a non-empty folder.
        self.replace_contents(x, &v2).await?;

        // 8. Cancel a running backup.
        self.cancel_backup(x, &repo_disk).await?;

        // 9. A phone-sized window: no page is wider than the screen.
        self.c.set_window_size(390, 844).await?;
        let pages = [
            ("/", "22-phone-home"),
            (
                &format!("/browse?side=ftp&path={datasets_dir}") as &str,
                "23-phone-folders",
            ),
            ("/backups?dataset=folder2", "24-phone-backups-view"),
            ("/snapshot?dataset=folder2&id=1", "25-phone-snapshot"),
            ("/compare?dataset=folder2&a=0&b=1", "26-phone-compare"),
            ("/restore?dataset=folder2", "27-phone-recovery-form"),
            ("/jobs", "28-phone-jobs"),
            ("/jobs/1", "29-phone-job"),
        ];
        let mut wide = Vec::new();
        for (path, shot) in pages {
            self.goto(path).await?;
            let (w, inner) = self.widths().await?;
            if w > 390 || inner > 390 {
                wide.push(format!("{path} ({w} px in a {inner} px window)"));
            }
            self.shot(shot).await?;
        }
        self.check(
            &format!(
                "on a 390x844 window no page is wider than the screen{}",
                if wide.is_empty() {
                    String::new()
                } else {
                    format!(": {}", wide.join(", "))
                }
            ),
            wide.is_empty(),
        );
        self.c.set_window_size(1280, 900).await?;

        // 10. One login for the session, plus the pool's connections.
        let c = x.proxy.peek();
        let logins = c.logins() - before_connect;
        println!(
            "     FTP over the session: {logins} logins on {} connections; {}",
            c.connections,
            c.verbs_text()
        );
        self.check(
            &format!(
                "the session's logins are its two pools' connections, {POOL} each at most, reused by every job ({logins} logins on {} connections)",
                c.connections
            ),
            logins <= 2 * POOL && logins == c.connections - connections_before,
        );

        // 11. Logging out forgets the connection.
        self.click(".logout button").await?;
        self.goto("/browse").await?;
        let page = self.source().await?;
        self.check(
            "after logging out the Folders view is gone",
            !page.contains("folder2/"),
        );
        Ok(())
    }

    /// Step 6: the recovery form, "before" a date and a time to the minute,
    /// a selection of `file1.txt`, `file2.txt` and `a/`, into `out` on the
    /// FTP server; the chosen backup (#0) shown before it starts.
    async fn recover_selection(&mut self, minute_ms: u64, out: &str) -> Result<()> {
        self.goto("/restore?dataset=folder2").await?;
        self.wait_for("form#restore").await?;
        self.click("input[name=which][value=before]").await?;
        // The date and the time as the browser shows them (its own zone),
        // to the minute.
        let v = self
            .js(
                "const d = new Date(arguments[0]); const p = n => String(n).padStart(2, '0');
                 return [d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()),
                         p(d.getHours()) + ':' + p(d.getMinutes())];",
                vec![serde_json::json!(minute_ms)],
            )
            .await?;
        let (date, time) = (
            v[0].as_str().unwrap_or_default().to_string(),
            v[1].as_str().unwrap_or_default().to_string(),
        );
        self.set_value("input[name=before_date]", &date).await?;
        self.set_value("input[name=before_time]", &time).await?;
        self.click("input[name=dest][value=ftp]").await?;
        self.fill("input[name=out]", out).await?;
        self.click("input[name=scope][value=some]").await?;
        self.js("window.scrollTo(0, 0);", vec![]).await?;
        self.shot("13-recovery-form").await?;
        self.click("#restore-next").await?;
        // The selection: tick two files and a folder.
        self.wait_for("input[type=checkbox][name=path]").await?;
        for name in ["file1.txt", "file2.txt", "a"] {
            self.click(&format!(
                "input[type=checkbox][name=path][data-name='{name}']"
            ))
            .await
            .with_context(|| format!("ticking {name}"))?;
        }
        self.shot("14-recovery-selection").await?;
        self.click("#select-next").await?;
        self.wait_for("#chosen-backup").await?;
        let chosen = text_of(&self.c, "#chosen-backup").await.unwrap_or_default();
        self.check(
            &format!("the backup \"before {date} {time}\" is shown before it starts: {chosen:?}"),
            chosen.contains("#0"),
        );
        self.shot("15-recovery-confirm").await?;
        self.click("#restore-start").await?;
        let (state, _) = self.wait_job().await?;
        self.check("the recovery of the selection ends done", state == "done");
        self.shot("16-recovery-job-done").await?;
        Ok(())
    }

    /// Step 7: recover the latest backup into a local folder that holds
    /// files: refused without the confirmation, done with it.
    async fn replace_contents(
        &mut self,
        x: &Ctx<'_>,
        v2: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    ) -> Result<()> {
        let dir = x.local_root.join("replace-here");
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("file1.txt"),
            "a local file that will be replaced\n",
        )?;
        fs::write(dir.join("keep.txt"), "not in the backup\n")?;
        self.goto("/restore?dataset=folder2").await?;
        self.wait_for("form#restore").await?;
        self.click("input[name=which][value=id]").await?;
        self.click("input[name=dest][value=local]").await?;
        self.fill("input[name=out]", &dir.display().to_string())
            .await?;
        self.click("#restore-next").await?;
        self.wait_for("#replace-confirm").await?;
        let page = self.source().await?;
        self.check(
            "recovering into a folder with files asks first, naming what is replaced and what kept",
            page.contains("file1.txt") && page.contains("keep.txt"),
        );
        self.shot("17-replace-confirm").await?;
        // Without ticking the box nothing happens to the folder.
        self.click("#restore-start").await?;
        let url = self.url().await?;
        let untouched =
            fs::read_to_string(dir.join("file1.txt"))? == "a local file that will be replaced\n";
        self.check(
            "without the confirmation ticked, no job starts and the folder is untouched",
            !url.contains("/jobs/") && untouched,
        );
        if !url.contains("/jobs/") {
            self.wait_for("#replace-ok").await?;
            self.click("#replace-ok").await?;
            self.click("#restore-start").await?;
        }
        let (state, _) = self.wait_job().await?;
        self.check("the replacing recovery ends done", state == "done");
        let got = tree(&dir)?;
        let mut want = v2.clone();
        want.insert("keep.txt".into(), b"not in the backup\n".to_vec());
        self.check(
            "the folder now holds the backup's files, and keeps what the backup does not have",
            got == want,
        );
        Ok(())
    }

    /// Step 8: a backup of a large (sparse) file on this machine, cancelled
    /// from its job page while it runs.
    async fn cancel_backup(&mut self, x: &Ctx<'_>, repo_disk: &Path) -> Result<()> {
        let big = x.local_root.join("big");
        fs::create_dir_all(&big)?;
        // 64 GiB of holes: minutes to read, no disk used.
        fs::File::create(big.join("huge.bin"))?.set_len(64 << 30)?;
        let enc: String = big
            .display()
            .to_string()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        self.goto(&format!("/backup?side=local&path={enc}")).await?;
        self.click("form[action='/backup'] button[type=submit]")
            .await?;
        self.wait_for("#cancel button").await?;
        let t = Instant::now();
        // Until it has read something: it is really running.
        loop {
            let b = text_of(&self.c, "[data-field=bytes_done_h]")
                .await
                .unwrap_or_default();
            if !b.is_empty() && !b.starts_with("0 ") {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("the large backup showed no progress within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.click("#cancel button").await?;
        let (state, _) = self.wait_job().await?;
        self.check(
            &format!(
                "a running backup is cancelled from its page ({state} after {:.1} s)",
                t.elapsed().as_secs_f64()
            ),
            state == "cancelled",
        );
        self.shot("21-job-cancelled").await?;
        let snaps = snapshots(x.bk, repo_disk)?;
        self.check(
            "the cancelled backup made no snapshot",
            !snaps.iter().any(|s| s["dataset"] == "big"),
        );
        Ok(())
    }
}
