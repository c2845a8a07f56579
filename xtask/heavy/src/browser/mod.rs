//! `cargo xtask e2e-web`: the web UI in a real browser. Headless Chromium
//! (Debian's `chromium` and `chromium-driver`), driven over WebDriver by
//! fantoccini, against `bk web` (over HTTPS with the certificate it
//! generates) and an FTP server started on 127.0.0.1, with a counting proxy
//! between them. Every screen is saved as a PNG.
//!
//! [`browser_scenario`] is the scenario itself (its steps are in
//! [`scenario`]), run by `cargo xtask e2e` against its own server and by
//! `cargo xtask e2e-web` (which starts everything it needs);
//! [`perf_scenario`] times a backup started from the UI. This module holds
//! the harness: `bk web`, chromedriver and the page helpers.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bk_testkit::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};
use xtask::util::dataset;
use xtask::util::process::ChildGuard;

use crate::counting_proxy::CountingProxy;

mod scenario;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, what: &str, guard: &mut ChildGuard) -> Result<()> {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        guard.check_alive(what)?;
        if t.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn locate(names: &[&str]) -> Option<PathBuf> {
    for n in names {
        for dir in ["/usr/bin", "/usr/lib/chromium", "/usr/local/bin"] {
            let p = Path::new(dir).join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Results of the browser scenario: check name → passed.
pub(crate) type Checks = Vec<(String, bool)>;

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(
                    e.path().strip_prefix(dir)?.to_path_buf(),
                    fs::read(e.path())?,
                );
            }
        }
    }
    Ok(out)
}

fn make_dataset(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir.join("a/deeper"))?;
    fs::create_dir_all(dir.join("lmao"))?;
    fs::write(dir.join("file1.txt"), "first file, version 1\n")?;
    fs::write(dir.join("file2.txt"), "second file\n")?;
    fs::write(dir.join("a/notes.md"), "# notes\n\nkept as they are\n")?;
    // A few MB so that the job runs long enough to show progress.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..6 {
        let data: Vec<u8> = (0..2_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        fs::write(dir.join(format!("a/deeper/blob{i}.bin")), data)?;
    }
    Ok(())
}

/// A running `bk web`: its process, address and the login URL it printed.
pub(crate) struct Web {
    pub(crate) guard: ChildGuard,
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub(crate) base: String,
    /// The one-time login address (`…/login?token=…`).
    pub(crate) login_url: String,
    /// Its stderr, for the checks on what it logs.
    pub(crate) stderr: PathBuf,
}

/// The login URL `bk web` prints at start, once it is in `log`.
fn login_url_in(log: &str) -> Option<String> {
    log.split_whitespace()
        .find(|w| {
            (w.starts_with("http://") || w.starts_with("https://"))
                && w.contains("/login?token=")
                && w.rsplit("token=")
                    .next()
                    .is_some_and(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(str::to_string)
}

/// `bk web` on a free port of 127.0.0.1, with `extra` arguments, logging
/// into `logs/TAG.{out,err}`; waits for its login URL.
fn start_web(
    bk: &Path,
    repo: Option<&Path>,
    root: &Path,
    logs: &Path,
    tag: &str,
    extra: &[&str],
) -> Result<Web> {
    let port = free_port()?;
    let mut c = Command::new(bk);
    if let Some(r) = repo {
        c.arg("--repo").arg(r);
    }
    let stderr = logs.join(format!("{tag}.err"));
    c.args([
        "web",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--allow-root",
    ])
    .arg(root)
    .args(extra)
    .stdin(Stdio::null())
    .stdout(fs::File::create(logs.join(format!("{tag}.out")))?)
    .stderr(fs::File::create(&stderr)?);
    let mut g = ChildGuard::spawn(&mut c).context("starting bk web")?;
    wait_port(port, "bk web", &mut g)?;
    let t = Instant::now();
    let login_url = loop {
        if let Some(u) = login_url_in(&fs::read_to_string(&stderr).unwrap_or_default()) {
            break u;
        }
        g.check_alive("bk web")?;
        if t.elapsed() > Duration::from_secs(10) {
            bail!(
                "bk web printed no login URL within 10 s (see {})",
                stderr.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let base = login_url[..login_url.find("/login").expect("checked")].to_string();
    Ok(Web {
        guard: g,
        base,
        login_url,
        stderr,
    })
}

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    _driver: ChildGuard,
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Browser {
    fn start(work: &Path, logs: &Path) -> Result<Browser> {
        let chromium = locate(&["chromium", "chromium-browser", "google-chrome"])
            .context("chromium not found (apt-get install chromium chromium-driver)")?;
        let driver = locate(&["chromedriver"])
            .context("chromedriver not found (apt-get install chromium-driver)")?;
        let port = free_port()?;
        // At a lower priority (Chromium inherits it): a user's browser
        // normally runs on another machine than `bk web`; here it shares
        // the 2 cores with the backup it watches, and must not be what
        // the UI-vs-CLI timing measures. `nice` execs, so the pid stays.
        let mut c = Command::new("nice");
        c.args(["-n", "10"])
            .arg(&driver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdin(Stdio::null())
            .stdout(fs::File::create(logs.join("chromedriver.out"))?)
            .stderr(fs::File::create(logs.join("chromedriver.err"))?);
        let mut g = ChildGuard::spawn(&mut c).context("starting chromedriver")?;
        wait_port(port, "chromedriver", &mut g)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let profile = work.join("chromium-profile");
        let caps = serde_json::json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    "--window-size=1280,900", "--force-device-scale-factor=1",
                    // `bk web --tls` serves a certificate it generated itself.
                    "--ignore-certificate-errors",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object literal")
        };
        let client = rt.block_on(async {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .context("starting a Chromium session through chromedriver")
        })?;
        Ok(Browser {
            _driver: g,
            rt,
            client,
        })
    }

    fn close(self) {
        let c = self.client;
        let _ = self.rt.block_on(async move { c.close().await });
    }
}

/// The scenario: `bk web` (started here, over HTTPS with the certificate
/// it generates, its repository on the FTP server, which it reaches through
/// a counting proxy) and Chromium (started here) against `server`.
pub(crate) fn browser_scenario(
    bk: &Path,
    server: &TestServer,
    password: &str,
    work: &Path,
    shots: &Path,
) -> Result<Checks> {
    fs::create_dir_all(shots)?;
    let logs = work.join("logs");
    fs::create_dir_all(&logs)?;

    let ftp_base = server.remote_base().trim_end_matches('/').to_string();
    let dataset = server.local_path(&format!("{ftp_base}/datasets/folder2"));
    make_dataset(&dataset)?;
    fs::create_dir_all(server.local_path(&format!("{ftp_base}/datasets/folder1")))?;
    // External daemons run as another user, who must write the repository
    // and the recovered folder.
    server
        .hand_over()
        .context("handing the dataset over to the FTP user")?;
    let local_root = work.join("local");
    fs::create_dir_all(&local_root)?;
    let state_dir = work.join("state");
    let proxy = CountingProxy::start(
        format!("{}:{}", server.host(), server.port())
            .parse()
            .context("the FTP server's address")?,
    )?;

    let state = state_dir.display().to_string();
    let mut web = start_web(
        bk,
        None,
        &local_root,
        &logs,
        "bk-web",
        &["--tls", "--state-dir", &state],
    )?;
    let browser = Browser::start(work, &logs)?;
    let mut s = Session {
        c: browser.client.clone(),
        base: web.base.clone(),
        shots: shots.to_path_buf(),
        checks: Vec::new(),
    };
    let ctx = scenario::Ctx {
        server,
        password,
        ftp_addr: format!("127.0.0.1:{}", proxy.port()),
        proxy: &proxy,
        base: &ftp_base,
        dataset: &dataset,
        local_root: &local_root,
        login_url: &web.login_url,
        bk,
    };
    let r = browser.rt.block_on(s.scenario(&ctx));
    browser.close();
    web.guard
        .check_alive("bk web")
        .context("bk web died during the scenario")?;
    r?;
    let mut checks = s.checks;
    let err = fs::read_to_string(&web.stderr).unwrap_or_default();
    let out = fs::read_to_string(logs.join("bk-web.out")).unwrap_or_default();
    checks.push((
        "the FTP password appears in no log of bk web".into(),
        !err.contains(password) && !out.contains(password),
    ));
    checks.push((
        "bk web served HTTPS and printed its certificate's fingerprint".into(),
        web.base.starts_with("https://") && err.contains("fingerprint"),
    ));
    let token = web.login_url.rsplit("token=").next().unwrap_or_default();
    checks.push((
        "the login token appears once in bk web's log: where it was printed".into(),
        err.matches(token).count() == 1 && !out.contains(token),
    ));
    Ok(checks)
}

/// Engine time of the newest snapshot in `repo` (`bk snapshots --json`).
fn duration_ms(bk: &Path, repo: &Path) -> Result<u64> {
    let o = Command::new(bk)
        .arg("--repo")
        .arg(repo)
        .args(["snapshots", "--json"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .with_context(|| format!("bk snapshots --json in {}", repo.display()))?;
    v.as_array()
        .and_then(|a| a.last())
        .and_then(|s| s["duration_ms"].as_u64())
        .context("no snapshot with a duration")
}

fn sync() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
}

/// Acceptance 3 of the web UI issue: a backup started from the UI takes at
/// most 1.1× the time of the same `bk backup`, and its page updates at least
/// once a second. Generates the bench dataset at `scale` under an allowed
/// root; runs CLI, UI, CLI (each into a fresh local repository, after a
/// sync) and compares the UI's engine time with the mean of the two CLI runs.
pub(crate) fn perf_scenario(bk: &Path, root: &Path, work: &Path, scale: f64) -> Result<Checks> {
    let logs = work.join("logs");
    fs::create_dir_all(&logs)?;
    let local = work.join("local");
    let data = local.join("perf");
    fs::create_dir_all(&local)?;
    let st = dataset::gen_command(root, 1, &data, scale)
        .status()
        .context("running tests/bench/gen_dataset.py")?;
    if !st.success() {
        bail!("generating the dataset failed ({st})");
    }
    let cli = |n: u32| -> Result<u64> {
        let repo = work.join(format!("repo-cli-{n}"));
        sync();
        let st = Command::new(bk)
            .arg("--repo")
            .arg(&repo)
            .arg("backup")
            .arg(&data)
            .args(["--dataset", "perf"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("bk backup failed ({st})");
        }
        duration_ms(bk, &repo)
    };
    let cli1 = cli(1)?;
    let ui_repo = work.join("repo-ui");
    let web = start_web(bk, Some(&ui_repo), &local, &logs, "bk-web-perf", &[])?;
    let browser = Browser::start(work, &logs)?;
    let c = browser.client.clone();
    let base = web.base.clone();
    let login = web.login_url.clone();
    let path = data.display().to_string();
    sync();
    let samples = browser.rt.block_on(async {
        c.goto(&login).await?;
        c.find(Locator::Css("#connect button[type=submit]"))
            .await?
            .click()
            .await?;
        c.goto(&format!("{base}/backup?side=local&path={path}"))
            .await?;
        c.find(Locator::Css("form[action='/backup'] button[type=submit]"))
            .await?
            .click()
            .await?;
        // The page records when its byte count changes (in sessionStorage,
        // which survives the reload at the end); the harness only looks once
        // a second, so that it takes no CPU from the backup.
        c.execute(
            "const el = document.querySelector('[data-field=bytes_done_h]');
             sessionStorage.setItem('changes', JSON.stringify([performance.timeOrigin + performance.now()]));
             new MutationObserver(() => {
               const a = JSON.parse(sessionStorage.getItem('changes'));
               a.push(performance.timeOrigin + performance.now());
               sessionStorage.setItem('changes', JSON.stringify(a));
             }).observe(el, {childList: true, characterData: true, subtree: true});",
            vec![],
        )
        .await?;
        let t = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            // The page reloads itself when the job ends: a lookup may miss.
            let Some(state) = text_of(&c, "[data-field=state]").await else {
                continue;
            };
            let state = state.to_lowercase();
            if state != "running" {
                anyhow::ensure!(state == "done", "the UI backup ended {state}");
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(1800),
                "the UI backup hangs"
            );
        }
        let v = c
            .execute("return sessionStorage.getItem('changes');", vec![])
            .await?;
        let times: Vec<f64> = serde_json::from_str(v.as_str().unwrap_or("[]"))?;
        anyhow::Ok(times)
    });
    browser.close();
    let times = samples?;
    let ui = duration_ms(bk, &ui_repo)?;
    let cli2 = cli(2)?;
    let cli_mean = (cli1 + cli2) as f64 / 2.0;
    let ratio = ui as f64 / cli_mean;
    // The longest time the page showed the same bytes while the job ran
    // (the last change is the final count, just before the reload).
    let max_gap = times
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1000.0)
        .fold(0.0f64, f64::max);
    let running = match (times.first(), times.last()) {
        (Some(a), Some(b)) => (b - a) / 1000.0,
        _ => 0.0,
    };
    println!(
        "perf: CLI {cli1} ms and {cli2} ms, UI {ui} ms: ratio {ratio:.3}; the page changed its byte count at least every {max_gap:.2} s over {running:.1} s of running"
    );
    Ok(vec![
        (
            format!("a UI backup takes at most 1.1x the CLI's time (ratio {ratio:.3})"),
            ratio <= 1.1,
        ),
        (
            format!("the job page updates at least once a second (longest still: {max_gap:.2} s)"),
            running >= 2.0 && max_gap <= 1.1,
        ),
    ])
}

/// The text of the element `css`, or `None` while the page is (re)loading.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

pub(crate) struct Session {
    c: Client,
    base: String,
    shots: PathBuf,
    checks: Checks,
}

impl Session {
    fn check(&mut self, name: &str, ok: bool) {
        self.checks.push((name.to_string(), ok));
    }

    async fn goto(&self, path: &str) -> Result<()> {
        self.c.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }

    async fn shot(&self, name: &str) -> Result<()> {
        let png = self.c.screenshot().await?;
        fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }

    /// Waits (up to 60 s) until an element matching `css` is on the page.
    async fn wait_for(&self, css: &str) -> Result<()> {
        self.c
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for {css}"))?;
        Ok(())
    }

    async fn source(&self) -> Result<String> {
        Ok(self.c.source().await?)
    }

    async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let e = self.c.find(Locator::Css(css)).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    async fn click(&self, css: &str) -> Result<()> {
        self.c
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("finding {css}"))?
            .click()
            .await?;
        Ok(())
    }

    async fn click_link(&self, text: &str) -> Result<()> {
        self.c
            .find(Locator::LinkText(text))
            .await
            .with_context(|| format!("finding the link {text:?}"))?
            .click()
            .await?;
        Ok(())
    }

    /// Waits for the job page to say done (or failed); returns the states
    /// and the file counters seen while it ran, one sample each 200 ms.
    async fn wait_job(&self) -> Result<(String, Vec<String>)> {
        let t = Instant::now();
        let mut seen = Vec::new();
        loop {
            // The page reloads itself when the job ends: a lookup may miss.
            if let Some(state) = text_of(&self.c, "[data-field=state]").await {
                if let Some(b) = text_of(&self.c, "[data-field=bytes_done_h]").await {
                    seen.push(b);
                }
                let state = state.to_lowercase();
                if state != "running" {
                    // The script reloads the page to show the outcome.
                    self.wait_for(match state.as_str() {
                        "done" => "#summary",
                        "cancelled" => "#cancelled",
                        _ => "p.error",
                    })
                    .await?;
                    return Ok((state, seen));
                }
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("the job did not end within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
