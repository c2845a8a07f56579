//! The two pickers of the recovery form: the selection tree (tick files
//! and folders of the chosen backup) and the output folder browser (local
//! roots and the FTP server). Both carry the form's other choices along.

use super::super::*;
use super::ask::Ask;
use super::check::{self, shown_list};
use crate::names::{self, RawQuery};

#[derive(Serialize)]
struct TreeEntry {
    /// HTML, escapes marked.
    name: minijinja::Value,
    /// Plain text, for `data-name`.
    plain: String,
    kind: &'static str,
    size: String,
    /// Parameter form of the full path (a checkbox's value).
    path: String,
    checked: bool,
}

fn parent_of(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[..i],
        None => b"",
    }
}

/// The selection tree at folder `dir` of the chosen backup.
pub(super) async fn select_page(
    st: &AppState,
    ctx: &Ctx,
    conn: &Connection,
    a: &Ask,
    dir: &[u8],
    error: Option<String>,
) -> Res {
    let select = match check::selection(a) {
        Ok(s) => s,
        Err(m) => {
            return super::form_page(st, ctx, conn, StatusCode::BAD_REQUEST, a, Some(m)).await;
        }
    };
    let repo = conn.repo.clone();
    let ds = a.dataset.clone();
    let d = dir.to_vec();
    let found = blocking(move || {
        let snaps = repo.snapshots(Some(&ds)).map_err(core_err)?;
        let Ok(snap) = bk_core::snapshot::select(&ds, &snaps, select).cloned() else {
            return Ok(None);
        };
        let idx = repo.index().map_err(core_err)?;
        let mut tree = repo.read_tree(&idx, &snap.tree).map_err(core_err)?;
        for c in d.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let sub = tree
                .find(c)
                .filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree);
            tree = match sub {
                Some(s) => repo.read_tree(&idx, &s).map_err(core_err)?,
                None => {
                    return Err(WebError::NotFound(format!(
                        "Backup #{} has no folder {}.",
                        snap.id,
                        names::shown(&d)
                    )));
                }
            };
        }
        Ok(Some((snap, tree.nodes)))
    })
    .await?;
    let Some((snap, nodes)) = found else {
        // No such backup: the form says why.
        return match check::choose(conn, a).await? {
            Err(m) => super::form_page(st, ctx, conn, StatusCode::BAD_REQUEST, a, Some(m)).await,
            Ok(_) => Err(WebError::NotFound("There is no such backup.".into())),
        };
    };
    let entries: Vec<TreeEntry> = nodes
        .iter()
        .map(|n| {
            let full = bk_core::tree::join(dir, &n.name);
            TreeEntry {
                name: names::html_value(&n.name),
                plain: names::shown(&n.name),
                kind: match n.kind {
                    NodeKind::Dir => "dir",
                    NodeKind::File => "file",
                    NodeKind::Symlink => "link",
                    NodeKind::Fifo => "fifo",
                },
                size: if n.kind == NodeKind::File {
                    human(n.size)
                } else {
                    String::new()
                },
                checked: a.paths.contains(&full),
                path: names::encode(&full),
            }
        })
        .collect();
    // Ticks elsewhere in the tree travel as hidden fields.
    let mut hidden = a.fields_but(&[
        "which",
        "id",
        "before_date",
        "before_time",
        "before_utc",
        "scope",
        "path",
    ]);
    hidden.push(("which", "id".into()));
    hidden.push(("id", snap.id.to_string()));
    hidden.push(("scope", "some".into()));
    for p in a.paths.iter().filter(|p| parent_of(p) != dir) {
        hidden.push(("path", names::encode(p)));
    }
    let mut crumbs = Vec::new();
    let mut acc: Vec<u8> = Vec::new();
    for c in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        acc = bk_core::tree::join(&acc, c);
        crumbs.push(context! { name => names::html_value(c), path => names::encode(&acc) });
    }
    st.render(
        ctx,
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "restore_select.html",
        context! {
            nav => "home",
            error,
            dataset => a.dataset,
            id => snap.id,
            time => rfc3339_utc(&snap.time),
            time_utc => snap.time.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
            dir => (!dir.is_empty()).then(|| names::encode(dir)),
            parent => (!dir.is_empty()).then(|| names::encode(parent_of(dir))),
            crumbs,
            entries,
            hidden,
            selected => shown_list(&a.paths),
        },
    )
}

fn open_of(q: &RawQuery) -> Result<Vec<u8>, WebError> {
    let bad = || WebError::BadRequest("The address holds a broken %-escape.".into());
    let raw = q.get("open").unwrap_or_default();
    let b = names::decode(std::str::from_utf8(raw).map_err(|_| bad())?).map_err(|_| bad())?;
    let comps: Vec<&[u8]> = b
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if comps.iter().any(|c| *c == b".." || c.contains(&0)) {
        return Err(WebError::BadRequest(
            "That is not a folder of the backup.".into(),
        ));
    }
    Ok(comps.join(&b'/'))
}

/// `GET /restore/select?…&open=DIR`: the selection tree.
pub(in crate::routes) async fn restore_select(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let a = Ask::parse(req.query_string())?;
    let q = RawQuery::parse(req.query_string())
        .map_err(|_| WebError::BadRequest("The address holds a broken %-escape.".into()))?;
    let dir = open_of(&q)?;
    select_page(&st, &ctx, &conn, &a, &dir, None).await
}

#[derive(Serialize)]
struct Folder {
    name: minijinja::Value,
    /// The picker's address for this folder.
    href: String,
}

/// `GET /restore/pick?…&side=local|ftp&at=DIR`: the output folder picker.
pub(in crate::routes) async fn restore_pick(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let a = Ask::parse(req.query_string())?;
    let q = RawQuery::parse(req.query_string())
        .map_err(|_| WebError::BadRequest("The address holds a broken %-escape.".into()))?;
    let sides = sides(&st, &conn);
    let want = q
        .text("side")
        .filter(|s| !s.is_empty())
        .unwrap_or(a.dest.as_str());
    let side = sides
        .iter()
        .find(|s| s.side == want)
        .or(sides.first())
        .map(|s| s.side)
        .ok_or_else(|| {
            WebError::BadRequest("There is no folder this server may recover into.".into())
        })?;
    let at = match q.get("at") {
        Some(v) => {
            let s = std::str::from_utf8(v)
                .map_err(|_| WebError::BadRequest("The address holds a broken %-escape.".into()))?;
            let b = names::decode(s)
                .map_err(|_| WebError::BadRequest("The address holds a broken %-escape.".into()))?;
            String::from_utf8(b).map_err(|_| {
                WebError::BadRequest("That folder's name is not text (UTF-8).".into())
            })?
        }
        None => String::new(),
    };
    let base = a.query();
    let href = |side: &str, p: &str| {
        format!(
            "/restore/pick?{base}&side={side}&at={}",
            names::encode(names::encode(p.as_bytes()).as_bytes())
        )
    };
    // (current folder, its parent, its subfolders)
    let (current, parent, folders): (Option<String>, Option<String>, Vec<Folder>) = if side == "ftp"
    {
        let p = paths::ftp_path(if at.is_empty() { "/" } else { &at }).map_err(path_err)?;
        let pool = conn.pool.clone().expect("ftp side has a pool");
        let dir = p.clone();
        let listed = blocking(move || Ok(pool.run(true, |c| c.list(&dir)))).await?;
        let mut list = listed.map_err(|e| {
            WebError::Upstream(format!(
                "Listing {p} on the FTP server failed: {}",
                e.text()
            ))
        })?;
        list.retain(|e| e.kind == EntryKind::Dir && e.name != "." && e.name != "..");
        list.sort_by(|x, y| x.name.cmp(&y.name));
        let folders = list
            .into_iter()
            .map(|e| Folder {
                name: names::html_value(e.name.as_bytes()),
                href: href("ftp", &ftp_url::join(&p, &e.name)),
            })
            .collect();
        let parent = (p != "/").then(|| href("ftp", ftp_url::parent(&p)));
        (Some(p), parent, folders)
    } else if at.is_empty() {
        let folders = st
            .roots
            .iter()
            .map(|r| Folder {
                name: names::html_value(r.display().to_string().as_bytes()),
                href: href("local", &r.display().to_string()),
            })
            .collect();
        (None, None, folders)
    } else {
        let p = paths::confine_existing(&at, &st.roots).map_err(|e| match e {
            PathError::Forbidden(_) => WebError::Forbidden(format!(
                "{at} is outside the folders this server may write to."
            )),
            e => path_err(e),
        })?;
        let dir = p.clone();
        let mut subs: Vec<String> = blocking(move || {
            let rd = std::fs::read_dir(&dir).map_err(|_| {
                WebError::Forbidden(format!("The folder {} cannot be read.", dir.display()))
            })?;
            Ok(rd
                .flatten()
                .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect())
        })
        .await?;
        subs.sort();
        let shown = p.display().to_string();
        let folders = subs
            .iter()
            .map(|n| Folder {
                name: names::html_value(n.as_bytes()),
                href: href("local", &format!("{}/{n}", shown.trim_end_matches('/'))),
            })
            .collect();
        let parent = if st.roots.contains(&p) {
            Some(format!("/restore/pick?{base}&side=local"))
        } else {
            p.parent().map(|x| href("local", &x.display().to_string()))
        };
        (Some(shown), parent, folders)
    };
    let tabs: Vec<_> = sides
        .iter()
        .map(|s| context! { side => s.side, label => s.label, href => format!("/restore/pick?{base}&side={}", s.side), current => s.side == side })
        .collect();
    st.render(
        &ctx,
        StatusCode::OK,
        "restore_pick.html",
        context! {
            nav => "home",
            dataset => a.dataset,
            tabs,
            side,
            current_enc => current.as_ref().map(|c| names::encode(c.as_bytes())),
            // Not the FTP server's top folder, nor an allowed folder itself.
            here_ok => current.as_ref().is_some_and(|c| {
                if side == "ftp" { c != "/" } else { !st.roots.iter().any(|r| r.as_os_str() == c.as_str()) }
            }),
            current,
            parent,
            folders,
            hidden => a.fields(),
            back => format!("/restore?{base}"),
        },
    )
}
