//! The Datasets list, the backups view, a snapshot's tree, downloads, and
//! comparing two snapshots. Paths inside a snapshot travel as bytes in
//! parameter form ([`crate::names`]).

use super::*;
use crate::names::{self, RawQuery};
use crate::words;
use std::sync::Arc;

fn raw_query(req: &HttpRequest) -> Result<RawQuery, WebError> {
    RawQuery::parse(req.query_string())
        .map_err(|e| WebError::BadRequest(format!("The address is malformed: {e}.")))
}

/// A dataset and its last backup, for Home and the Datasets list.
#[derive(Serialize)]
pub(super) struct DatasetRow {
    pub(super) name: String,
    pub(super) count: usize,
    /// The last backup: number, RFC 3339 UTC time, size, entries.
    pub(super) last_id: u64,
    pub(super) latest: String,
    pub(super) size: String,
    pub(super) entries: String,
    /// "complete" or "with N warnings".
    pub(super) result: String,
    pub(super) warnings: usize,
    /// Where it was backed up from (a path or a URL without password).
    pub(super) source: String,
}

pub(super) fn dataset_rows(snaps: &[Snapshot]) -> Vec<DatasetRow> {
    let mut rows: Vec<DatasetRow> = Vec::new();
    for s in snaps {
        let i = match rows.iter().position(|r| r.name == s.dataset) {
            Some(i) => i,
            None => {
                rows.push(DatasetRow {
                    name: s.dataset.clone(),
                    count: 0,
                    last_id: s.id,
                    latest: String::new(),
                    size: String::new(),
                    entries: String::new(),
                    result: String::new(),
                    warnings: 0,
                    source: String::new(),
                });
                rows.len() - 1
            }
        };
        let r = &mut rows[i];
        r.count += 1;
        if r.count == 1 || s.id >= r.last_id {
            r.last_id = s.id;
            r.latest = rfc3339_utc(&s.time);
            r.size = human(s.stats.bytes);
            r.entries = words::entries(s.stats.files, s.stats.others);
            r.warnings = s.warnings.len();
            r.result = match s.warnings.len() {
                0 => "complete".into(),
                1 => "complete, with 1 warning".into(),
                n => format!("complete, with {n} warnings"),
            };
            r.source = s.source.clone();
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

#[derive(Serialize)]
pub(super) struct SnapRow {
    pub(super) id: u64,
    pub(super) time: String,
    pub(super) full: bool,
    pub(super) files: u64,
    /// Files, links and pipes, as "added" counts them.
    pub(super) entries: String,
    pub(super) size: String,
    pub(super) added: u64,
    pub(super) modified: u64,
    pub(super) deleted: u64,
    pub(super) stored: String,
    pub(super) warnings: usize,
}

pub(super) fn snap_rows(snaps: &[Snapshot]) -> Vec<SnapRow> {
    let mut v: Vec<SnapRow> = snaps
        .iter()
        .map(|s| SnapRow {
            id: s.id,
            time: rfc3339_utc(&s.time),
            full: s.full,
            files: s.stats.files,
            entries: words::entries(s.stats.files, s.stats.others),
            size: human(s.stats.bytes),
            added: s.stats.added,
            modified: s.stats.modified,
            deleted: s.stats.deleted,
            stored: human(s.stats.stored_bytes),
            warnings: s.warnings.len(),
        })
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.id));
    v
}

async fn load_snapshots(repo: Arc<Repository>, dataset: String) -> Result<Vec<Snapshot>, WebError> {
    blocking(move || {
        let s = repo.snapshots(Some(&dataset)).map_err(core_err)?;
        if s.is_empty() {
            return Err(WebError::NotFound(format!(
                "There are no backups of a dataset named \"{dataset}\"."
            )));
        }
        Ok(s)
    })
    .await
}

/// `/backups?dataset=NAME`: its backups; `/backups` alone: every dataset.
pub(super) async fn backups(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let q = raw_query(&req)?;
    let Some(dataset) = q.text("dataset").filter(|d| !d.is_empty()) else {
        let repo = conn.repo.clone();
        let snaps = blocking(move || repo.snapshots(None).map_err(core_err)).await?;
        return st.render(
            &ctx,
            StatusCode::OK,
            "datasets.html",
            context! { nav => "datasets", datasets => dataset_rows(&snaps) },
        );
    };
    let snaps = load_snapshots(conn.repo.clone(), dataset.to_string()).await?;
    st.render(
        &ctx,
        StatusCode::OK,
        "backups.html",
        context! { nav => "datasets", dataset, snapshots => snap_rows(&snaps) },
    )
}

/// `dataset`, `id` and `path` (raw bytes) of a snapshot address.
pub(super) struct SnapQ {
    dataset: String,
    id: u64,
    path: Vec<u8>,
}

impl SnapQ {
    fn of(req: &HttpRequest) -> Result<SnapQ, WebError> {
        let q = raw_query(req)?;
        let dataset = q
            .text("dataset")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| WebError::BadRequest("The address names no dataset.".into()))?
            .to_string();
        let id = q
            .text("id")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| WebError::BadRequest("The address names no backup number.".into()))?;
        Ok(SnapQ {
            dataset,
            id,
            path: q.get("path").unwrap_or_default().to_vec(),
        })
    }
}

/// What a path of a snapshot names.
pub(super) enum Found {
    Root,
    Node(Box<Node>),
}

/// The snapshot, the index, and the node at `comps` (which must exist).
fn resolve(
    repo: &Repository,
    dataset: &str,
    id: u64,
    comps: &[Vec<u8>],
) -> Result<(Snapshot, Arc<Index>, Found), WebError> {
    let snap = repo
        .find_snapshot(dataset, Select::Id(id))
        .map_err(core_err)?;
    let idx = repo.index().map_err(core_err)?;
    if comps.is_empty() {
        return Ok((snap, idx, Found::Root));
    }
    let missing = || {
        WebError::NotFound(format!(
            "{} does not exist in backup {id} of {dataset}.",
            names::shown(&comps.join(&b'/'))
        ))
    };
    let mut tree = repo.read_tree(&idx, &snap.tree).map_err(core_err)?;
    for (i, c) in comps.iter().enumerate() {
        bk_core::tree::check_name(c).map_err(|e| WebError::BadRequest(e.to_string()))?;
        let node = tree.find(c).cloned().ok_or_else(missing)?;
        if i + 1 == comps.len() {
            return Ok((snap, idx, Found::Node(Box::new(node))));
        }
        let sub = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(s)) => s,
            _ => return Err(missing()),
        };
        tree = repo.read_tree(&idx, &sub).map_err(core_err)?;
    }
    Err(missing())
}

/// One entry of a snapshot's folder: names as HTML, paths in parameter
/// form.
#[derive(Serialize)]
pub(super) struct TreeEntry {
    name: minijinja::Value,
    kind: &'static str,
    size: String,
    mtime: String,
    path: String,
    target: minijinja::Value,
}

#[derive(Serialize)]
pub(super) struct Crumb {
    name: minijinja::Value,
    path: String,
}

pub(super) async fn snapshot(req: HttpRequest, st: St) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let q = SnapQ::of(&req)?;
    let comps = paths::snapshot_components(&q.path).map_err(path_err)?;
    let repo = conn.repo.clone();
    let (dataset, id) = (q.dataset.clone(), q.id);
    let c2 = comps.clone();
    let (snap, entries) = blocking(move || {
        let (snap, idx, found) = resolve(&repo, &dataset, id, &c2)?;
        let sub = match found {
            Found::Root => Some(snap.tree),
            Found::Node(n) if n.kind == NodeKind::Dir => n.subtree,
            Found::Node(_) => {
                return Err(WebError::BadRequest(
                    "That is a file, not a directory.".into(),
                ));
            }
        };
        let nodes = match sub {
            Some(t) => repo.read_tree(&idx, &t).map_err(core_err)?.nodes,
            None => Vec::new(),
        };
        let prefix = c2.join(&b'/');
        let entries: Vec<TreeEntry> = nodes
            .iter()
            .map(|n| TreeEntry {
                name: names::html_value(&n.name),
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
                mtime: mtime_utc(n),
                path: names::encode(&bk_core::tree::join(&prefix, &n.name)),
                target: names::html_value(&n.target),
            })
            .collect();
        Ok((snap, entries))
    })
    .await?;
    let mut crumbs = Vec::new();
    let mut acc: Vec<u8> = Vec::new();
    for c in &comps {
        acc = bk_core::tree::join(&acc, c);
        crumbs.push(Crumb {
            name: names::html_value(c),
            path: names::encode(&acc),
        });
    }
    let parent = (!comps.is_empty()).then(|| names::encode(&comps[..comps.len() - 1].join(&b'/')));
    st.render(
        &ctx,
        StatusCode::OK,
        "tree.html",
        context! {
            nav => "datasets",
            dataset => q.dataset,
            id => q.id,
            time => rfc3339_utc(&snap.time),
            crumbs,
            parent,
            entries,
        },
    )
}

/// RFC 5987 encoding for `filename*`.
pub(super) fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// The Content-Disposition of a download of a file named `name` (RFC
/// 6266): `filename*` carries the name as UTF-8 (a byte that is not UTF-8
/// becomes U+FFFD), `filename` an ASCII fallback for old clients with
/// every byte that could end or break the header replaced by `_`.
pub(super) fn content_disposition(name: &[u8]) -> String {
    let utf8 = String::from_utf8_lossy(name);
    let ascii: String = utf8
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        pct(&utf8)
    )
}

pub(super) async fn download(req: HttpRequest, st: St) -> Res {
    let (_ctx, conn) = gate!(st.gate_conn(&req));
    let q = SnapQ::of(&req)?;
    let comps = paths::snapshot_components(&q.path).map_err(path_err)?;
    if comps.is_empty() {
        return Err(WebError::BadRequest("Choose a file to download.".into()));
    }
    let repo = conn.repo.clone();
    let (dataset, id) = (q.dataset.clone(), q.id);
    let c2 = comps.clone();
    let (idx, node) = blocking(move || {
        let (_, idx, found) = resolve(&repo, &dataset, id, &c2)?;
        match found {
            Found::Node(n) if n.kind == NodeKind::File => Ok((idx, *n)),
            _ => Err(WebError::BadRequest("Only files can be downloaded.".into())),
        }
    })
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let repo = conn.repo.clone();
    let size = node.size;
    let disposition = content_disposition(&node.name);
    std::thread::Builder::new()
        .name("bk-web-download".into())
        .spawn(move || {
            for id in &node.content {
                let r = repo
                    .read_blob(&idx, id)
                    .map(Bytes::from)
                    .map_err(|e| std::io::Error::other(e.to_string()));
                let stop = r.is_err();
                if tx.blocking_send(r).is_err() || stop {
                    return;
                }
            }
        })
        .map_err(|e| WebError::Internal(format!("starting a download thread: {e}")))?;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .body(actix_web::body::SizedStream::new(size, stream)))
}

#[derive(Deserialize)]
pub(super) struct CompareQ {
    dataset: String,
    a: u64,
    b: u64,
}

#[derive(Serialize)]
pub(super) struct ChangeGroup {
    kind: &'static str,
    label: &'static str,
    /// Paths as HTML (escapes marked), folders ending in `/`.
    paths: Vec<minijinja::Value>,
}

pub(super) async fn compare(req: HttpRequest, st: St, q: web::Query<CompareQ>) -> Res {
    let (ctx, conn) = gate!(st.gate_conn(&req));
    let repo = conn.repo.clone();
    let (dataset, a, b) = (q.dataset.clone(), q.a, q.b);
    let groups = blocking(move || {
        let sa = repo
            .find_snapshot(&dataset, Select::Id(a))
            .map_err(core_err)?;
        let sb = repo
            .find_snapshot(&dataset, Select::Id(b))
            .map_err(core_err)?;
        let changes = bk_core::diff_snapshots(&repo, &sa, &sb).map_err(core_err)?;
        let mut g = [
            ChangeGroup {
                kind: "added",
                label: "Added",
                paths: Vec::new(),
            },
            ChangeGroup {
                kind: "modified",
                label: "Modified",
                paths: Vec::new(),
            },
            ChangeGroup {
                kind: "deleted",
                label: "Deleted",
                paths: Vec::new(),
            },
        ];
        for (c, p, n) in changes {
            let mut name = names::shown_html(&p);
            if n.kind == NodeKind::Dir {
                name.push('/');
            }
            let name = minijinja::Value::from_safe_string(name);
            let i = match c {
                bk_core::Change::Added => 0,
                bk_core::Change::Modified => 1,
                bk_core::Change::Deleted => 2,
            };
            g[i].paths.push(name);
        }
        Ok(g.into_iter()
            .filter(|g| !g.paths.is_empty())
            .collect::<Vec<_>>())
    })
    .await?;
    st.render(
        &ctx,
        StatusCode::OK,
        "compare.html",
        context! { nav => "datasets", dataset => q.dataset, a => q.a, b => q.b, changes => groups },
    )
}
