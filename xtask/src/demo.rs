//! `cargo xtask demo`: the README's first command. Builds bk, backs up a
//! small sample dataset twice (with a change in between) into a local
//! repository, restores both snapshots and checks them byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use xtask::util;
use xtask::util::build::{Profile, build_bk};

pub fn run(args: Vec<String>) -> Result<()> {
    ensure!(args.is_empty(), "demo takes no options");
    let root = util::workspace_root();
    let bk = build_bk(&root, Profile::Debug)?;
    let dir = util::target_dir(&root).join("demo");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let data = dir.join("dataset");
    let repo = dir.join("repo");
    fs::create_dir_all(data.join("annotations/train")).context("creating the sample dataset")?;
    fs::create_dir_all(data.join("empty dir"))?;
    fs::write(data.join("README.txt"), "a sample dataset\n")?;
    for i in 0..50 {
        fs::write(
            data.join(format!("annotations/train/item {i:03}.json")),
            format!("{{\"id\": {i}, \"label\": \"cat\"}}\n").repeat(20 + i),
        )?;
    }
    std::os::unix::fs::symlink("README.txt", data.join("latest"))?;

    say(&format!(
        "backing up {} into {}",
        data.display(),
        repo.display()
    ));
    bk_run(&bk, &["backup"], &[&data], &repo)?;
    let v0 = snapshot(&data)?;
    fs::write(
        data.join("annotations/train/item 007.json"),
        "{\"id\": 7, \"label\": \"dog\"}\n",
    )?;
    fs::remove_file(data.join("annotations/train/item 008.json"))?;
    fs::write(data.join("new file.txt"), "added in version 1\n")?;
    say("changed one file, deleted one, added one; backing up again");
    bk_run(&bk, &["backup"], &[&data], &repo)?;
    let v1 = snapshot(&data)?;
    bk_run(&bk, &["snapshots"], &[], &repo)?;

    for (id, expected) in [("0", &v0), ("1", &v1)] {
        let out = dir.join(format!("restored-{id}"));
        say(&format!("restoring snapshot {id} into {}", out.display()));
        bk_run(
            &bk,
            &["restore", "dataset", "--id", id, "--to"],
            &[&out],
            &repo,
        )?;
        let got = snapshot(&out)?;
        if &got != expected {
            bail!("restored snapshot {id} differs from the dataset as it was backed up");
        }
    }
    say(&format!(
        "OK: both snapshots restored byte for byte (see {})",
        dir.display()
    ));
    Ok(())
}

fn say(s: &str) {
    eprintln!("demo: {s}");
}

fn bk_run(bk: &Path, args: &[&str], paths: &[&Path], repo: &Path) -> Result<()> {
    let mut c = Command::new(bk);
    c.args(args).args(paths).arg("--repo").arg(repo);
    let st = c
        .status()
        .with_context(|| format!("running {}", bk.display()))?;
    ensure!(st.success(), "bk {args:?} failed with {st}");
    Ok(())
}

/// Relative path → (kind, content or link target).
fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, (char, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            let rel = p.strip_prefix(root)?.to_path_buf();
            let m = fs::symlink_metadata(&p)?;
            let v = if m.is_dir() {
                stack.push(p.clone());
                ('d', Vec::new())
            } else if m.file_type().is_symlink() {
                (
                    'l',
                    fs::read_link(&p)?.into_os_string().into_encoded_bytes(),
                )
            } else {
                ('f', fs::read(&p)?)
            };
            out.insert(rel, v);
        }
    }
    Ok(out)
}
