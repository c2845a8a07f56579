// tidy: long file: the robustness test: one randomized run of damage, kills and restores with its own fault helpers
//! Random actions against a model (issue 9, acceptance point 3), in the
//! spirit of kopia's robustness suite: random changes to a dataset, backups
//! (some killed with SIGKILL), restores, and corruptions of the repository,
//! with a checker that compares every restore against the model.
//!
//! The model holds, for every committed snapshot, the manifest of the
//! dataset taken right before its backup ran (nothing changes the dataset
//! during a backup). What must hold:
//!
//! 1. Without corruption, every committed snapshot restores exactly and
//!    `check --read-data` passes; a killed backup leaves either no snapshot
//!    or one that restores exactly, never damages earlier ones, and the next
//!    backup succeeds.
//! 2. After a corruption, `check --read-data` fails and names the problem
//!    (a stray file costs no data: check must name it, its exit code is
//!    not asserted); a restore either succeeds and is exact, or fails (3 =
//!    partial, 1 = nothing) and every file it wrote without naming it in an
//!    error is identical to the model. A backup after a pack went missing
//!    or short, or after the check, restores exactly (items 1, 2 and 7).
//! 3. After `check --read-data`, `repair index`, a backup and `repair
//!    snapshots --forget-damaged`: the new snapshot restores exactly, the
//!    check passes, and every snapshot restores with exit 0 to a subset of
//!    its model, every present entry identical (exactly, when only index
//!    files were damaged). A stray file is removed by hand instead.
//!
//! A fixed seed list keeps CI deterministic (kill delays aside). To replay
//! or hunt: `BK_ROBUST_SEED=N` runs one seed, `BK_ROBUST_STEPS=M` more steps.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use bk_core::Repository;
use bk_core::id::Id;
use bk_core::repo::layout::pack_name;
use bk_core::tree::{NodeKind, display_path};
use chrono::{DateTime, FixedOffset};

use crate::common::*;

const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const STEPS: usize = 30;
/// `bk repair index` and `bk repair snapshots` exist. Without them a
/// corrupted repository is put back from a copy taken before the damage.
const REPAIR: bool = true;
const DS: &str = "ds";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Above this many bytes of file content the dataset only gets small files.
const DATASET_CAP: u64 = 5 * MIB as u64;

#[test]
fn random_actions_against_a_model() {
    let seeds: Vec<u64> = match std::env::var("BK_ROBUST_SEED") {
        Ok(s) => vec![s.parse().expect("BK_ROBUST_SEED is a number")],
        Err(_) => SEEDS.to_vec(),
    };
    let steps = std::env::var("BK_ROBUST_STEPS")
        .map(|s| s.parse().expect("BK_ROBUST_STEPS is a number"))
        .unwrap_or(STEPS);
    let mut failures = Vec::new();
    for seed in seeds {
        let log = RefCell::new(Vec::new());
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            World::new(seed, &log).run(steps)
        }));
        if let Err(p) = run {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!(
                "seed {seed} failed: {why}\nreplay: BK_ROBUST_SEED={seed} BK_ROBUST_STEPS={steps} \
                 cargo test -p bk-cli --test cli robust\naction log of seed {seed}:\n{}",
                log.borrow().join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// What a committed snapshot must restore to.
struct Snap {
    model: Manifest,
    time: DateTime<FixedOffset>,
    /// `bk repair snapshots --forget-damaged` left files out of it: its
    /// restores say so and exit 3 (issue 9 item 12).
    partial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Corruption {
    DeletePack,
    TruncatePack,
    FlipByte,
    DropIndex,
    TruncateIndex,
    StrayIndex,
    StraySnapshot,
}

const CORRUPTIONS: [Corruption; 7] = [
    Corruption::DeletePack,
    Corruption::TruncatePack,
    Corruption::FlipByte,
    Corruption::DropIndex,
    Corruption::TruncateIndex,
    Corruption::StrayIndex,
    Corruption::StraySnapshot,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ft {
    File(u64),
    Dir,
    Symlink,
    Fifo,
}

/// Where blobs live and which ones the snapshots use, read before a
/// corruption so that it hits data a snapshot needs.
struct Facts {
    /// blob → every (pack, offset, length, index file) that holds it.
    locs: BTreeMap<Id, Vec<(Id, u64, u64, String)>>,
    /// Blobs (data and trees) referenced by committed snapshots.
    used: BTreeSet<Id>,
}

struct World<'l> {
    seed: u64,
    rng: Rng,
    log: &'l RefCell<Vec<String>>,
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    repo: PathBuf,
    snaps: BTreeMap<u64, Snap>,
    /// Counter for fresh names and output directories.
    n: u64,
    corruptions: usize,
    step: usize,
    stats: Stats,
}

/// What a seed did, printed at its end.
#[derive(Debug, Default)]
struct Stats {
    backups: usize,
    kills_midway: usize,
    kills_committed: usize,
    kills_after_exit: usize,
    restores: usize,
    corruptions: Vec<Corruption>,
}

impl<'l> World<'l> {
    fn new(seed: u64, log: &'l RefCell<Vec<String>>) -> World<'l> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let src = root.join(DS);
        fs::create_dir(&src).unwrap();
        World {
            seed,
            rng: Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F)),
            log,
            _tmp: tmp,
            repo: root.join("repo"),
            src,
            root,
            snaps: BTreeMap::new(),
            n: 0,
            corruptions: 0,
            step: 0,
            stats: Stats::default(),
        }
    }

    fn note(&self, s: impl Into<String>) {
        self.log.borrow_mut().push(s.into());
    }

    fn what(&self, s: &str) -> String {
        format!("seed {} step {}: {s}", self.seed, self.step)
    }

    fn run(&mut self, steps: usize) {
        let start = std::time::Instant::now();
        self.note("setup:");
        self.init();
        for _ in 0..12 {
            self.fs_change();
        }
        self.backup(false);
        for step in 1..=steps {
            self.step = step;
            self.note(format!("step {step}:"));
            // Every seed meets at least one corruption.
            if self.corruptions == 0 && step * 3 >= steps * 2 {
                self.corrupt();
                continue;
            }
            match self.rng.below(100) {
                0..40 => {
                    for _ in 0..1 + self.rng.below(4) {
                        self.fs_change();
                    }
                }
                40..58 => {
                    let full = self.rng.chance(20);
                    self.backup(full);
                }
                58..70 => self.killed_backup(),
                70..84 => self.random_restore(),
                84..89 => self.check_clean(),
                _ if self.corruptions < 3 => self.corrupt(),
                _ => self.backup(false),
            }
        }
        self.step = steps + 1;
        self.note("finish:");
        self.fs_change();
        self.backup(false);
        self.assert_listed_snapshots();
        self.restore_all_exact("at the end");
        self.check_clean();
        println!(
            "seed {}: {} steps in {:.1} s, {} snapshots, {:?}",
            self.seed,
            steps,
            start.elapsed().as_secs_f64(),
            self.snaps.len(),
            self.stats
        );
    }

    // ---- running bk ----

    fn bk(&self, args: &[&OsStr]) -> Output {
        let o = bk()
            .args(args)
            .arg("--repo")
            .arg(&self.repo)
            .output()
            .unwrap();
        let shown: Vec<String> = args.iter().map(|a| self.shorten(a)).collect();
        self.note(format!(
            "  bk {} -> exit {:?}",
            shown.join(" "),
            o.status.code()
        ));
        o
    }

    fn shorten(&self, a: &OsStr) -> String {
        let s = format!("{:?}", a.to_string_lossy());
        s.replace(&*self.root.to_string_lossy(), "$T")
    }

    fn expect(&self, o: &Output, code: i32, what: &str) {
        assert_eq!(
            o.status.code(),
            Some(code),
            "{}: exit code; stderr:\n{}",
            self.what(what),
            stderr(o)
        );
    }

    fn init(&mut self) {
        let o = self.bk(&[os("init")]);
        self.expect(&o, 0, "bk init");
        // Small packs and chunks, so that a corruption hits part of the data.
        let path = self.repo.join("config");
        let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        c["pack_size"] = serde_json::json!(256 * KIB);
        c["chunker"] = serde_json::json!({"min": 64 * KIB, "avg": 256 * KIB, "max": MIB});
        fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// `bk snapshots --json`: id → time.
    fn listed_snapshots(&self) -> BTreeMap<u64, DateTime<FixedOffset>> {
        let o = self.bk(&[os("snapshots"), os("--dataset"), os(DS), os("--json")]);
        self.expect(&o, 0, "bk snapshots");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_u64().unwrap(),
                    DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    fn assert_listed_snapshots(&self) {
        let listed: Vec<u64> = self.listed_snapshots().into_keys().collect();
        let known: Vec<u64> = self.snaps.keys().copied().collect();
        assert_eq!(listed, known, "{}", self.what("the snapshots bk lists"));
    }

    fn fresh_out(&mut self) -> PathBuf {
        self.n += 1;
        self.root.join(format!("out-{}", self.n))
    }

    // ---- backups ----

    fn backup(&mut self, full: bool) {
        let model = manifest(&self.src);
        let mut args = vec![os("backup"), self.src.as_os_str(), os("--json")];
        if full {
            args.push(os("--full"));
        }
        let o = self.bk(&args);
        self.expect(&o, 0, "bk backup");
        self.stats.backups += 1;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = v["id"].as_u64().unwrap();
        let next = self.snaps.keys().next_back().map_or(0, |i| i + 1);
        assert_eq!(id, next, "{}", self.what("number of the new snapshot"));
        let time = DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
        self.note(format!(
            "  snapshot {id}: {} entries, stored {} B in {} ms",
            model.entries.len(),
            v["stored_bytes"],
            v["duration_ms"]
        ));
        self.snaps.insert(
            id,
            Snap {
                model,
                time,
                partial: false,
            },
        );
        self.restore_exact(
            Some(id),
            None,
            &format!("snapshot {id} right after its backup"),
        );
    }

    /// A backup killed with SIGKILL after a random delay; then the lock, the
    /// snapshot list, the earlier snapshots and the next backup.
    fn killed_backup(&mut self) {
        if self.rng.chance(50) {
            // New data, so that the backup has something to write when killed.
            let f = self.fresh_name();
            let size = MIB + self.rng.below(2 * MIB as u64) as usize;
            let data = self.content(size);
            fs::write(self.src.join(OsStr::from_bytes(&f)), data).unwrap();
            self.note(format!("  fs: created {:?}, {size} B", display_path(&f)));
        }
        let model = manifest(&self.src);
        let full = self.rng.chance(30);
        // Most backups here take 10 to 150 ms: aim there more often.
        let delay_us = match self.rng.below(4) {
            0 | 1 => self.rng.below(30_000),
            2 => self.rng.below(150_000),
            _ => self.rng.below(400_001),
        };
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("bk"));
        c.arg("backup")
            .arg(&self.src)
            .arg("--repo")
            .arg(&self.repo)
            .env_remove("BK_REPO")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if full {
            c.arg("--full");
        }
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(delay_us));
        let finished = child.try_wait().unwrap();
        let _ = child.kill();
        let status = child.wait().unwrap();
        self.note(format!(
            "  bk backup{} killed after {:.1} ms: {}",
            if full { " --full" } else { "" },
            delay_us as f64 / 1000.0,
            match finished {
                Some(s) => format!("had finished, {s}"),
                None => format!("{status}"),
            }
        ));
        if let Some(s) = finished {
            assert!(
                s.success(),
                "{}",
                self.what("a backup that finished before the kill failed")
            );
        }
        if finished.is_some() {
            self.stats.kills_after_exit += 1;
        } else {
            self.stats.kills_midway += 1;
        }
        let lock_left = self.repo.join("locks/exclusive").exists();
        let listed = self.listed_snapshots();
        let new: Vec<u64> = listed
            .keys()
            .filter(|i| !self.snaps.contains_key(i))
            .copied()
            .collect();
        let next = self.snaps.keys().next_back().map_or(0, |i| i + 1);
        match new[..] {
            [] => self.note(format!("  no snapshot committed; lock left: {lock_left}")),
            [id] => {
                if finished.is_none() {
                    self.stats.kills_committed += 1;
                }
                assert_eq!(
                    id,
                    next,
                    "{}",
                    self.what("number of the killed backup's snapshot")
                );
                self.note(format!("  snapshot {id} committed; lock left: {lock_left}"));
                self.snaps.insert(
                    id,
                    Snap {
                        model,
                        time: listed[&id],
                        partial: false,
                    },
                );
                self.restore_exact(Some(id), None, &format!("snapshot {id} of a killed backup"));
            }
            _ => panic!(
                "{}",
                self.what(&format!("a killed backup left snapshots {new:?}"))
            ),
        }
        self.assert_listed_snapshots();
        if let Some(&last) = self
            .snaps
            .keys()
            .rfind(|&&i| Some(i) != new.first().copied())
        {
            self.restore_exact(
                Some(last),
                None,
                &format!("snapshot {last} after a killed backup"),
            );
        }
        // A dead local process's lock is stale: `unlock` clears it without
        // --force, and otherwise the next check or backup does.
        if self.rng.chance(40) {
            let o = self.bk(&[os("unlock")]);
            self.expect(&o, 0, "bk unlock after a killed backup");
            assert!(
                !self.repo.join("locks/exclusive").exists(),
                "{}",
                self.what("bk unlock left the dead backup's lock")
            );
        }
        if self.rng.chance(25) {
            self.check_clean();
        }
        if self.rng.chance(50) {
            self.fs_change();
        }
        let full = self.rng.chance(20);
        self.backup(full);
    }

    // ---- restores ----

    fn restore_args(id: Option<u64>, path: Option<&[u8]>) -> Vec<OsString> {
        let mut a = Vec::new();
        if let Some(id) = id {
            a.push("--id".into());
            a.push(id.to_string().into());
        }
        if let Some(p) = path {
            // `--path=P`: a name may begin with `-`.
            let mut arg = OsString::from("--path=");
            arg.push(OsStr::from_bytes(p));
            a.push(arg);
        }
        a
    }

    fn run_restore(&mut self, extra: &[OsString]) -> (Output, PathBuf) {
        let out = self.fresh_out();
        let mut args = vec![os("restore"), os(DS), os("--to"), out.as_os_str()];
        args.extend(extra.iter().map(|a| a.as_os_str()));
        let o = self.bk(&args);
        (o, out)
    }

    /// Restore snapshot `id` (the latest for `None`), optionally one path of
    /// it, and compare it with the model.
    /// A restore of snapshot `id` ended as it must: 0, or 3 for a snapshot
    /// that repair left files out of (a `--path` may miss what it lacks).
    fn expect_restored(&self, o: &Output, id: u64, path: Option<&[u8]>, what: &str) {
        let ok: &[i32] = match (self.snaps[&id].partial, path) {
            (false, _) => &[0],
            (true, None) => &[3],
            (true, Some(_)) => &[0, 3],
        };
        assert!(
            o.status.code().is_some_and(|c| ok.contains(&c)),
            "{}: exit code {:?}, expected one of {ok:?}; stderr:\n{}",
            self.what(what),
            o.status.code(),
            stderr(o)
        );
    }

    fn restore_exact(&mut self, id: Option<u64>, path: Option<&[u8]>, what: &str) {
        let (o, out) = self.run_restore(&Self::restore_args(id, path));
        self.stats.restores += 1;
        let id = id.unwrap_or_else(|| *self.snaps.keys().next_back().unwrap());
        self.expect_restored(&o, id, path, what);
        self.compare_exact(id, path, &out, what);
        fs::remove_dir_all(&out).unwrap();
    }

    fn compare_exact(&self, id: u64, path: Option<&[u8]>, out: &Path, what: &str) {
        let what = self.what(&format!("{what} (snapshot {id})"));
        let model = &self.snaps[&id].model;
        let actual = manifest(out);
        match path {
            None => assert_same(model, &actual, &what),
            Some(p) => {
                // The selected path with its subtree, under its parents.
                assert_same(
                    &manifest_under(model, p),
                    &manifest_under(&actual, p),
                    &what,
                );
                let mut parents = BTreeSet::new();
                let mut at = 0;
                while let Some(i) = p[at..].iter().position(|&b| b == b'/') {
                    parents.insert(p[..at + i].to_vec());
                    at += i + 1;
                }
                for (q, e) in &actual.entries {
                    if parents.contains(q) {
                        assert_eq!(e.kind, Kind::Dir, "{what}: parent {:?}", display_path(q));
                    } else {
                        assert!(
                            manifest_under(model, p).entries.contains_key(q),
                            "{what}: {:?} restored outside --path",
                            display_path(q)
                        );
                    }
                }
                assert_eq!(
                    parents.len(),
                    actual
                        .entries
                        .keys()
                        .filter(|q| parents.contains(*q))
                        .count(),
                    "{what}: parents of {:?}",
                    display_path(p)
                );
            }
        }
    }

    fn restore_all_exact(&mut self, when: &str) {
        let ids: Vec<u64> = self.snaps.keys().copied().collect();
        for id in ids {
            self.restore_exact(Some(id), None, &format!("restore {when}"));
        }
    }

    fn random_restore(&mut self) {
        let ids: Vec<u64> = self.snaps.keys().copied().collect();
        let id = *self.rng.pick(&ids);
        match self.rng.below(100) {
            0..20 => self.restore_exact(None, None, "restore of the latest"),
            20..45 => self.restore_exact(Some(id), None, "restore --id"),
            45..70 => {
                // Just after snapshot `id`: the newest one before that time.
                let t = self.snaps[&id].time + chrono::Duration::nanoseconds(1);
                let expected = self
                    .snaps
                    .iter()
                    .filter(|(_, s)| s.time < t)
                    .max_by_key(|(i, s)| (s.time, **i))
                    .map(|(i, _)| *i)
                    .unwrap();
                let ts = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false);
                let (o, out) = self.run_restore(&["--before".into(), ts.clone().into()]);
                self.expect_restored(&o, expected, None, &format!("restore --before {ts}"));
                self.compare_exact(expected, None, &out, &format!("restore --before {ts}"));
                fs::remove_dir_all(&out).unwrap();
            }
            70..75 => {
                let first = self.snaps.values().map(|s| s.time).min().unwrap();
                let ts = (first - chrono::Duration::seconds(1)).to_rfc3339();
                let (o, out) = self.run_restore(&["--before".into(), ts.clone().into()]);
                self.expect(
                    &o,
                    1,
                    &format!("restore --before {ts}, before every snapshot"),
                );
                assert!(
                    !out.exists(),
                    "{}",
                    self.what("a restore that selected nothing created its output directory")
                );
            }
            _ => {
                let paths: Vec<Vec<u8>> = self.snaps[&id].model.entries.keys().cloned().collect();
                if paths.is_empty() {
                    return self.restore_exact(Some(id), None, "restore --id");
                }
                let p = self.rng.pick(&paths).clone();
                self.restore_exact(Some(id), Some(&p), "restore --path");
            }
        }
    }

    fn check_clean(&mut self) {
        let o = self.bk(&[os("check"), os("--read-data")]);
        self.expect(&o, 0, "bk check --read-data on a sound repository");
    }

    // ---- corruptions ----

    fn facts(&self) -> Facts {
        let repo = Repository::open_local(&self.repo).unwrap();
        let mut locs: BTreeMap<Id, Vec<(Id, u64, u64, String)>> = BTreeMap::new();
        for f in self.index_files() {
            let bytes = fs::read(self.repo.join(&f)).unwrap();
            for (pack, entries) in bk_core::index::decode(&f, &bytes).unwrap() {
                for e in entries {
                    locs.entry(e.id).or_default().push((
                        pack,
                        e.offset as u64,
                        e.length as u64,
                        f.clone(),
                    ));
                }
            }
        }
        let idx = repo.load_index().unwrap();
        let mut used = BTreeSet::new();
        let mut trees: Vec<Id> = repo
            .snapshots(Some(DS))
            .unwrap()
            .iter()
            .map(|s| s.tree)
            .collect();
        while let Some(t) = trees.pop() {
            if !used.insert(t) {
                continue;
            }
            for n in repo.read_tree(&idx, &t).unwrap().nodes {
                match n.kind {
                    NodeKind::Dir => trees.extend(n.subtree),
                    NodeKind::File => used.extend(n.content),
                    _ => {}
                }
            }
        }
        Facts { locs, used }
    }

    fn index_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.repo.join("index"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".tmp-"))
            .map(|n| format!("index/{n}"))
            .collect();
        v.sort();
        v
    }

    /// A used blob stored in one place only, so that damaging that place
    /// loses it.
    fn victim(&mut self, facts: &Facts) -> (Id, Id, u64, u64, String) {
        let single: Vec<_> = facts
            .used
            .iter()
            .filter_map(|b| match &facts.locs.get(b)?[..] {
                [l] => Some((*b, l.clone())),
                _ => None,
            })
            .collect();
        assert!(
            !single.is_empty(),
            "{}",
            self.what("no used blob to damage")
        );
        let (b, (pack, off, len, idx)) = self.rng.pick(&single).clone();
        (b, pack, off, len, idx)
    }

    fn corrupt(&mut self) {
        let kind = CORRUPTIONS[(self.seed as usize + self.corruptions) % CORRUPTIONS.len()];
        self.corruptions += 1;
        self.stats.corruptions.push(kind);
        let saved = self.root.join(format!("saved-{}", self.corruptions));
        if !REPAIR {
            copy_dir(&self.repo, &saved);
        }
        let facts = self.facts();
        let before: BTreeSet<u64> = self.snaps.keys().copied().collect();
        let snap_labels: Vec<String> = self
            .snaps
            .keys()
            .map(|i| format!("snapshot {i} of \"{DS}\""))
            .collect();
        // What `check` must mention, any one of them.
        let mut clues: Vec<String> = Vec::new();
        let mut stray: Option<PathBuf> = None;
        let mut data_lost = true;
        let mut healed = false;
        match kind {
            Corruption::DeletePack | Corruption::TruncatePack | Corruption::FlipByte => {
                let (blob, pack, off, len, _) = self.victim(&facts);
                let file = self.repo.join(pack_name(&pack));
                let size = fs::metadata(&file).unwrap().len();
                match kind {
                    Corruption::DeletePack => {
                        fs::remove_file(&file).unwrap();
                        self.note(format!("  corrupt: deleted pack {}", pack.short()));
                    }
                    Corruption::TruncatePack => {
                        let to = off + self.rng.below(len);
                        fs::OpenOptions::new()
                            .write(true)
                            .open(&file)
                            .unwrap()
                            .set_len(to)
                            .unwrap();
                        self.note(format!(
                            "  corrupt: truncated pack {} from {size} to {to} B (cuts blob {})",
                            pack.short(),
                            blob.short()
                        ));
                    }
                    _ => {
                        let at = off + self.rng.below(len);
                        let bit = 1u8 << self.rng.below(8);
                        let f = fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&file)
                            .unwrap();
                        let mut b = [0u8];
                        f.read_exact_at(&mut b, at).unwrap();
                        f.write_all_at(&[b[0] ^ bit], at).unwrap();
                        self.note(format!(
                            "  corrupt: flipped bit {bit:#x} at {at} of pack {} (blob {})",
                            pack.short(),
                            blob.short()
                        ));
                    }
                }
                clues.push(pack.short());
                // Item 1: a backup after a pack went missing or short stores
                // the lost blobs again, so that its snapshot restores.
                if kind != Corruption::FlipByte && self.rng.chance(50) {
                    self.note("  backup before any check or repair:");
                    let full = self.rng.chance(30);
                    self.backup(full);
                    healed = true;
                }
            }
            Corruption::DropIndex | Corruption::TruncateIndex => {
                data_lost = false;
                let (_, _, _, _, index) = self.victim(&facts);
                let file = self.repo.join(&index);
                if kind == Corruption::DropIndex {
                    fs::remove_file(&file).unwrap();
                    self.note(format!("  corrupt: deleted {index}"));
                } else {
                    let size = fs::metadata(&file).unwrap().len();
                    let to = self.rng.below(size);
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&file)
                        .unwrap()
                        .set_len(to)
                        .unwrap();
                    self.note(format!(
                        "  corrupt: truncated {index} from {size} to {to} B"
                    ));
                    clues.push(index.clone());
                }
                for l in facts.locs.values().flatten().filter(|l| l.3 == index) {
                    clues.push(l.0.short());
                }
                clues.extend(snap_labels.iter().cloned());
            }
            Corruption::StrayIndex | Corruption::StraySnapshot => {
                data_lost = false;
                let (name, bytes): (String, Vec<u8>) = if kind == Corruption::StrayIndex {
                    match self.rng.below(3) {
                        0 => ("index/README".into(), b"index files live here\n".to_vec()),
                        1 => (format!("index/{}", "0".repeat(64)), b"{}".to_vec()),
                        _ => (format!("index/{}", "a".repeat(64)), Vec::new()),
                    }
                } else {
                    let first = format!(
                        "snapshots/{DS}/{:010}.json",
                        self.snaps.keys().next().unwrap()
                    );
                    match self.rng.below(3) {
                        0 => (format!("snapshots/{DS}/README"), b"notes\n".to_vec()),
                        1 => (
                            format!(
                                "snapshots/{DS}/{:010} (copy).json",
                                self.snaps.keys().next().unwrap()
                            ),
                            fs::read(self.repo.join(&first)).unwrap(),
                        ),
                        _ => (format!("snapshots/{DS}/empty.json"), Vec::new()),
                    }
                };
                let p = self.repo.join(&name);
                fs::write(&p, bytes).unwrap();
                self.note(format!("  corrupt: stray file {name:?}"));
                clues.push(name.rsplit('/').next().unwrap().to_string());
                stray = Some(p);
            }
        }

        // 2. check fails and names the problem; no restore is silently wrong.
        // A stray file costs no data: whether check then fails is a choice
        // (issue 9 item 7 says only "reports it and goes on"); it must name it.
        let o = self.bk(&[os("check"), os("--read-data")]);
        let err = stderr(&o);
        for l in err.lines().filter(|l| l.starts_with("bk: error: ")).take(3) {
            self.note(format!("    {l}"));
        }
        // A backup after a pack went missing or short may have stored
        // every lost blob again (the files still exist): then the
        // repository is whole and check rightly passes.
        let whole_again = healed && o.status.success();
        if stray.is_none() && !whole_again {
            assert_ne!(
                o.status.code(),
                Some(0),
                "{}: stderr:\n{err}",
                self.what(&format!("bk check --read-data passed after {kind:?}"))
            );
        }
        assert!(
            whole_again || clues.iter().any(|c| err.contains(c.as_str())),
            "{}: expected one of {clues:?}; stderr:\n{err}",
            self.what(&format!(
                "bk check --read-data after {kind:?} does not name it"
            ))
        );
        let ids: Vec<u64> = self.snaps.keys().copied().collect();
        for id in &ids {
            self.restore_damaged(*id, kind);
        }
        // Once check has recorded the damage, the next backup stores again
        // what was lost (items 1 and 7), with or without `repair index`.
        let backup_first = !REPAIR || self.rng.chance(50);
        if backup_first {
            self.note("  backup after the check, before any repair:");
            self.backup(false);
        }

        // 3. Recovery.
        if let Some(p) = stray {
            fs::remove_file(&p).unwrap();
            self.note("  removed the stray file");
            if saved.exists() {
                fs::remove_dir_all(&saved).unwrap();
            }
        } else if !REPAIR {
            fs::remove_dir_all(&self.repo).unwrap();
            copy_dir(&saved, &self.repo);
            fs::remove_dir_all(&saved).unwrap();
            self.snaps.retain(|id, _| before.contains(id));
            self.note("  REPAIR is off: put the repository back from its copy");
        } else {
            let o = self.bk(&[os("repair"), os("index")]);
            self.expect(&o, 0, "bk repair index");
            if !backup_first {
                self.backup(false);
            }
            let fresh = *self.snaps.keys().next_back().unwrap();
            let o = self.bk(&[os("repair"), os("snapshots"), os("--forget-damaged")]);
            self.expect(&o, 0, "bk repair snapshots --forget-damaged");
            self.check_clean();
            self.assert_listed_snapshots();
            for id in self.snaps.keys().copied().collect::<Vec<_>>() {
                let what = format!("snapshot {id} after repair of {kind:?}");
                if id == fresh || !data_lost {
                    self.restore_exact(Some(id), None, &what);
                    continue;
                }
                let (o, out) = self.run_restore(&Self::restore_args(Some(id), None));
                let actual = manifest(&out);
                assert_subset(&self.snaps[&id].model, &actual, &self.what(&what));
                let lost = self.snaps[&id].model.entries.len() - actual.entries.len();
                // A snapshot that lost files says so: exit 3, naming them.
                let partial = lost > 0 || self.snaps[&id].partial;
                self.expect(&o, if partial { 3 } else { 0 }, &what);
                if lost > 0 {
                    self.note(format!("  snapshot {id} lost {lost} entries in the repair"));
                    assert!(
                        stderr(&o).contains("removed by `bk repair snapshots`"),
                        "{}: {}",
                        self.what(&what),
                        stderr(&o)
                    );
                }
                // From now on it must restore to what it restores to now.
                let snap = self.snaps.get_mut(&id).unwrap();
                snap.model = actual;
                snap.partial |= lost > 0;
                fs::remove_dir_all(&out).unwrap();
            }
        }
        self.check_clean();
        self.restore_all_exact(&format!("after recovering from {kind:?}"));
    }

    /// Invariant 2: a restore from a damaged repository is exact, or fails
    /// and names every file it did not write identically.
    fn restore_damaged(&mut self, id: u64, kind: Corruption) {
        let what = format!("restore --id {id} after {kind:?}");
        let (o, out) = self.run_restore(&Self::restore_args(Some(id), None));
        let err = stderr(&o);
        for l in err.lines().filter(|l| l.starts_with("bk: error: ")).take(5) {
            self.note(format!("    {l}"));
        }
        match o.status.code() {
            Some(0) => self.compare_exact(id, None, &out, &what),
            Some(1 | 3) => {
                let named: Vec<String> = err
                    .lines()
                    .filter_map(|l| l.strip_prefix("bk: error: "))
                    .filter_map(|l| l.split(": ").next())
                    .map(str::to_string)
                    .collect();
                let covers = |p: &[u8]| {
                    let d = display_path(p);
                    named
                        .iter()
                        .any(|n| *n == d || n == "." || d.starts_with(&format!("{n}/")))
                };
                assert_no_silent_damage(
                    &self.snaps[&id].model,
                    &manifest_if_exists(&out),
                    covers,
                    &self.what(&what),
                );
            }
            c => panic!("{}: exit {c:?}; stderr:\n{err}", self.what(&what)),
        }
        if out.exists() {
            fs::remove_dir_all(&out).unwrap();
        }
    }

    // ---- changes to the dataset ----

    /// Every entry under the dataset, sorted, with the root as "".
    fn list(&self) -> Vec<(Vec<u8>, Ft)> {
        let mut out = vec![(Vec::new(), Ft::Dir)];
        let mut stack = vec![Vec::<u8>::new()];
        while let Some(d) = stack.pop() {
            let mut names: Vec<Vec<u8>> = fs::read_dir(path_of(&self.src, &d))
                .unwrap()
                .map(|e| e.unwrap().file_name().as_bytes().to_vec())
                .collect();
            names.sort();
            for n in names {
                let rel = join(&d, &n);
                let m = fs::symlink_metadata(path_of(&self.src, &rel)).unwrap();
                let ft = if m.is_dir() {
                    stack.push(rel.clone());
                    Ft::Dir
                } else if m.file_type().is_symlink() {
                    Ft::Symlink
                } else if m.is_file() {
                    Ft::File(m.len())
                } else {
                    Ft::Fifo
                };
                out.push((rel, ft));
            }
        }
        out
    }

    fn fresh_name(&mut self) -> Vec<u8> {
        self.n += 1;
        let n = self.n;
        match self.rng.below(9) {
            0 => format!("with space {n}").into_bytes(),
            1 => format!("new\nline {n}").into_bytes(),
            2 => {
                let mut v = b"bad\xff\xfe ".to_vec();
                v.extend_from_slice(n.to_string().as_bytes());
                v
            }
            3 => format!("ünï-{n}.txt").into_bytes(),
            4 => format!(".hidden{n}").into_bytes(),
            5 => format!("-dash{n}").into_bytes(),
            6 => format!("tab\t{n}").into_bytes(),
            _ => format!("f{n}").into_bytes(),
        }
    }

    fn size(&mut self, total: u64) -> usize {
        let small = total > DATASET_CAP;
        match self.rng.below(100) {
            0..5 => 0,
            5..35 => self.rng.below(4 * KIB as u64) as usize,
            r if r < 70 || small => self.rng.below(256 * KIB as u64) as usize,
            _ => 256 * KIB + self.rng.below((3 * MIB - 256 * KIB) as u64) as usize,
        }
    }

    fn content(&mut self, size: usize) -> Vec<u8> {
        let seed = self.rng.next();
        if self.rng.chance(50) {
            random_bytes(seed, size)
        } else {
            compressible(seed, size)
        }
    }

    fn fs_change(&mut self) {
        let ents = self.list();
        let files: Vec<(Vec<u8>, u64)> = ents
            .iter()
            .filter_map(|(p, t)| match t {
                Ft::File(n) => Some((p.clone(), *n)),
                _ => None,
            })
            .collect();
        let dirs: Vec<Vec<u8>> = ents
            .iter()
            .filter(|(_, t)| *t == Ft::Dir)
            .map(|(p, _)| p.clone())
            .collect();
        let nondirs: Vec<Vec<u8>> = ents
            .iter()
            .filter(|(_, t)| *t != Ft::Dir)
            .map(|(p, _)| p.clone())
            .collect();
        let total: u64 = files.iter().map(|f| f.1).sum();
        let op = self.rng.below(100);
        let src = self.src.clone();
        let p = |rel: &[u8]| path_of(&src, rel);
        let nonempty: Vec<(Vec<u8>, u64)> = files.iter().filter(|f| f.1 > 0).cloned().collect();
        match op {
            20..28 if !nonempty.is_empty() => {
                let (f, len) = self.rng.pick(&nonempty).clone();
                let at = self.rng.below(len);
                let n = 1 + self.rng.below((len - at).min(64 * KIB as u64)) as usize;
                let data = self.content(n);
                let h = fs::OpenOptions::new().write(true).open(p(&f)).unwrap();
                h.write_all_at(&data, at).unwrap();
                self.note(format!(
                    "  fs: overwrote {n} B at {at} of {:?}",
                    display_path(&f)
                ));
            }
            28..34 if !files.is_empty() => {
                let (f, _) = self.rng.pick(&files).clone();
                let n = 1 + self.rng.below(128 * KIB as u64) as usize;
                let data = self.content(n);
                use std::io::Write;
                fs::OpenOptions::new()
                    .append(true)
                    .open(p(&f))
                    .unwrap()
                    .write_all(&data)
                    .unwrap();
                self.note(format!("  fs: appended {n} B to {:?}", display_path(&f)));
            }
            34..40 if !nonempty.is_empty() => {
                let (f, len) = self.rng.pick(&nonempty).clone();
                let to = self.rng.below(len);
                fs::OpenOptions::new()
                    .write(true)
                    .open(p(&f))
                    .unwrap()
                    .set_len(to)
                    .unwrap();
                self.note(format!(
                    "  fs: truncated {:?} from {len} to {to} B",
                    display_path(&f)
                ));
            }
            40..48 if !nondirs.is_empty() => {
                let f = self.rng.pick(&nondirs).clone();
                fs::remove_file(p(&f)).unwrap();
                self.note(format!("  fs: deleted {:?}", display_path(&f)));
            }
            48..54 => {
                let mut d = self.rng.pick(&dirs).clone();
                for _ in 0..1 + self.rng.below(3) {
                    d = join(&d, &self.fresh_name());
                    fs::create_dir(p(&d)).unwrap();
                }
                let with_file = self.rng.chance(50);
                if with_file {
                    let f = join(&d, &self.fresh_name());
                    let size = self.rng.below(8 * KIB as u64) as usize;
                    let data = self.content(size);
                    fs::write(p(&f), data).unwrap();
                }
                self.note(format!(
                    "  fs: made directories down to {:?}{}",
                    display_path(&d),
                    if with_file { " with a file" } else { ", empty" }
                ));
            }
            54..60 if ents.len() > 1 => {
                let (e, _) = self.rng.pick(&ents[1..]).clone();
                let targets: Vec<Vec<u8>> = dirs
                    .iter()
                    .filter(|d| **d != e && !d.starts_with(&join(&e, b"")))
                    .cloned()
                    .collect();
                let d = self.rng.pick(&targets).clone();
                let base = e.rsplit(|&b| b == b'/').next().unwrap().to_vec();
                let keep = self.rng.chance(30) && !p(&join(&d, &base)).exists();
                let name = if keep { base } else { self.fresh_name() };
                let to = join(&d, &name);
                fs::rename(p(&e), p(&to)).unwrap();
                self.note(format!(
                    "  fs: renamed {:?} to {:?}",
                    display_path(&e),
                    display_path(&to)
                ));
            }
            60..65 => {
                let d = self.rng.pick(&dirs).clone();
                let l = join(&d, &self.fresh_name());
                let target: Vec<u8> = match self.rng.below(5) {
                    0 if ents.len() > 1 => self.rng.pick(&ents[1..]).0.clone(),
                    1 => b"../outside".to_vec(),
                    2 => b"/etc/hostname".to_vec(),
                    3 => b"t\xff\n".to_vec(),
                    _ => b"dangling/x".to_vec(),
                };
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), p(&l)).unwrap();
                self.note(format!(
                    "  fs: symlink {:?} -> {:?}",
                    display_path(&l),
                    display_path(&target)
                ));
            }
            65..70 if !files.is_empty() => {
                let (f, _) = self.rng.pick(&files).clone();
                let d = self.rng.pick(&dirs).clone();
                let l = join(&d, &self.fresh_name());
                fs::hard_link(p(&f), p(&l)).unwrap();
                self.note(format!(
                    "  fs: hard link {:?} to {:?}",
                    display_path(&l),
                    display_path(&f)
                ));
            }
            70..76 if !nondirs.is_empty() || dirs.len() > 1 => {
                let (e, mode) = if dirs.len() > 1 && self.rng.chance(30) {
                    let d = self.rng.pick(&dirs[1..]).clone();
                    (d, *self.rng.pick(&[0o700, 0o755, 0o750, 0o711]))
                } else if !files.is_empty() {
                    let f = self.rng.pick(&files).0.clone();
                    let modes = [0o600, 0o644, 0o755, 0o400, 0o640, 0o4755, 0o2711, 0o1644];
                    (f, *self.rng.pick(&modes))
                } else {
                    return self.fs_change();
                };
                fs::set_permissions(p(&e), fs::Permissions::from_mode(mode)).unwrap();
                self.note(format!("  fs: chmod {mode:o} {:?}", display_path(&e)));
            }
            76..81 if !nonempty.is_empty() => {
                // Issue 9 item 5: a same-size rewrite whose mtime is put
                // back (`touch -r`, `cp -p`, `rsync --inplace -a`).
                let (f, len) = self.rng.pick(&nonempty).clone();
                let m = fs::metadata(p(&f)).unwrap();
                let atime = filetime::FileTime::from_last_access_time(&m);
                let mtime = filetime::FileTime::from_last_modification_time(&m);
                let mut data = fs::read(p(&f)).unwrap();
                let at = self.rng.below(len) as usize;
                data[at] ^= 0x5a;
                fs::write(p(&f), &data).unwrap();
                filetime::set_file_times(p(&f), atime, mtime).unwrap();
                self.note(format!(
                    "  fs: same-size rewrite of {:?} (byte {at}), mtime put back",
                    display_path(&f)
                ));
            }
            81..85 if ents.len() > 1 => {
                let (e, _) = self.rng.pick(&ents[1..]).clone();
                let t = filetime::FileTime::from_unix_time(
                    1_000_000_000 + self.rng.below(700_000_000) as i64,
                    self.rng.below(1_000_000_000) as u32,
                );
                filetime::set_symlink_file_times(p(&e), t, t).unwrap();
                self.note(format!(
                    "  fs: set the mtime of {:?} to {t}",
                    display_path(&e)
                ));
            }
            85..88 if dirs.len() > 1 => {
                let d = self.rng.pick(&dirs[1..]).clone();
                fs::remove_dir_all(p(&d)).unwrap();
                self.note(format!(
                    "  fs: removed directory tree {:?}",
                    display_path(&d)
                ));
            }
            88..91 => {
                let d = self.rng.pick(&dirs).clone();
                let f = join(&d, &self.fresh_name());
                mkfifo(&p(&f));
                self.note(format!("  fs: fifo {:?}", display_path(&f)));
            }
            91..95 if !files.is_empty() => {
                let (f, _) = self.rng.pick(&files).clone();
                let d = self.rng.pick(&dirs).clone();
                let to = join(&d, &self.fresh_name());
                fs::copy(p(&f), p(&to)).unwrap();
                self.note(format!(
                    "  fs: copied {:?} to {:?}",
                    display_path(&f),
                    display_path(&to)
                ));
            }
            95.. if !files.is_empty() => {
                let (f, _) = self.rng.pick(&files).clone();
                let size = self.size(total);
                let data = self.content(size);
                fs::write(p(&f), data).unwrap();
                self.note(format!(
                    "  fs: rewrote {:?} with {size} B",
                    display_path(&f)
                ));
            }
            _ => {
                let d = self.rng.pick(&dirs).clone();
                let f = join(&d, &self.fresh_name());
                let size = self.size(total);
                let data = self.content(size);
                fs::write(p(&f), data).unwrap();
                self.note(format!("  fs: created {:?}, {size} B", display_path(&f)));
            }
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    bk_core::tree::join(dir, name)
}

/// Text-like bytes that compress well.
fn compressible(seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!("{seed:016x} record {i:08} value {}\n", (i * 7919) % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

/// `cp -a`, so that a copy keeps the repository's bytes and names.
fn copy_dir(from: &Path, to: &Path) {
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "cp -a: {}", stderr(&o));
}
