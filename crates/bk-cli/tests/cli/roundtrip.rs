//! Property test: random trees with every file kind and name shape →
//! backup → mutate → backup → restore each snapshot → identical trees.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;
use proptest::prelude::*;

use crate::common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn name(rng: &mut Rng, i: usize) -> Vec<u8> {
    let suffix = format!("{i}");
    let mut n: Vec<u8> = match rng.below(10) {
        0 => b"with space ".to_vec(),
        1 => b"new\nline".to_vec(),
        2 => b"back\\slash".to_vec(),
        3 => vec![0xff, 0xfe, b'b', 0x80],
        4 => vec![b'L'; 255 - suffix.len()],
        5 => "ünïcödé-名前".as_bytes().to_vec(),
        6 => b"-leading-dash".to_vec(),
        7 => b".hidden".to_vec(),
        _ => format!("f{}", rng.below(1000)).into_bytes(),
    };
    n.extend_from_slice(suffix.as_bytes());
    n
}

fn file_content(rng: &mut Rng) -> Vec<u8> {
    let size = match rng.below(20) {
        0..=2 => 0,
        3..=9 => rng.below(100) as usize,
        10..=18 => 1000 + rng.below(50_000) as usize,
        _ => 600_000 + rng.below(1_400_000) as usize,
    };
    random_bytes(rng.next(), size)
}

const FILE_MODES: [u32; 5] = [0o644, 0o600, 0o755, 0o444, 0o640];
const DIR_MODES: [u32; 4] = [0o755, 0o700, 0o750, 0o775];

fn build(root: &Path, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
    let mut files: Vec<Vec<u8>> = Vec::new();
    let n = 10 + rng.below(30) as usize;
    for i in 0..n {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let mut rel = parent.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name(&mut rng, i));
        let p = path_of(root, &rel);
        match rng.below(100) {
            0..=44 => {
                fs::write(&p, file_content(&mut rng)).unwrap();
                let mode = FILE_MODES[rng.below(5) as usize];
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                files.push(rel);
            }
            45..=62 => {
                fs::create_dir(&p).unwrap();
                fs::set_permissions(
                    &p,
                    fs::Permissions::from_mode(DIR_MODES[rng.below(4) as usize]),
                )
                .unwrap();
                dirs.push(rel);
            }
            63..=72 => {
                let target: &[u8] = match rng.below(4) {
                    0 => b"/absolute/nowhere",
                    1 => b"dangling target",
                    2 => b"../up/and away",
                    _ => b".",
                };
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).unwrap();
            }
            73..=84 if !files.is_empty() => {
                let src = &files[rng.below(files.len() as u64) as usize];
                fs::hard_link(path_of(root, src), &p).unwrap();
            }
            _ => mkfifo(&p),
        }
    }
    set_times(root, &mut rng);
}

/// Random mtimes with nanoseconds on everything, directories last.
fn set_times(root: &Path, rng: &mut Rng) {
    let m = manifest(root);
    let mut paths: Vec<&Vec<u8>> = m.entries.keys().collect();
    // Deepest first, so setting a child never disturbs a parent set later.
    paths.sort_by_key(|p| std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count()));
    for rel in paths {
        let t = FileTime::from_unix_time(
            1_000_000_000 + rng.below(800_000_000) as i64,
            rng.below(1_000_000_000) as u32,
        );
        filetime::set_symlink_file_times(path_of(root, rel), t, t).unwrap();
    }
}

fn mutate(root: &Path, seed: u64) {
    let mut rng = Rng(seed.rotate_left(17) | 1);
    let m = manifest(root);
    let mut touched_dirs = Vec::new();
    for (rel, e) in &m.entries {
        let p = path_of(root, rel);
        if !p.exists() && fs::symlink_metadata(&p).is_err() {
            continue; // inside a directory renamed earlier in this loop
        }
        match (&e.kind, rng.below(6)) {
            (Kind::File(_), 0) => {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
                fs::write(&p, file_content(&mut rng)).unwrap();
            }
            (Kind::File(old), 1) if !old.is_empty() => {
                // Same size, new content, new mtime.
                let mut c = old.clone();
                let k = rng.below(c.len() as u64) as usize;
                c[k] ^= 0x55;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
                fs::write(&p, &c).unwrap();
            }
            (Kind::File(_) | Kind::Symlink(_) | Kind::Fifo, 2) => fs::remove_file(&p).unwrap(),
            (Kind::File(_), 3) => {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            }
            (Kind::Dir, 4) => {
                let to = p.with_file_name(format!("renamed dir {}", rng.below(1_000_000)));
                fs::rename(&p, &to).unwrap();
                touched_dirs.push(to);
            }
            _ => {}
        }
    }
    for i in 0..3 {
        let p = root.join(format!("added {i} {}", rng.below(100)));
        fs::write(&p, file_content(&mut rng)).unwrap();
    }
    set_times(root, &mut rng);
}

fn round_trip(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    fs::create_dir(&src).unwrap();
    let repo = tmp.path().join("repo");
    build(&src, seed);
    let m0 = manifest(&src);
    let s0 = backup(&repo, &src, &[], 0);
    assert_eq!(s0["id"], 0);
    mutate(&src, seed);
    let m1 = manifest(&src);
    let s1 = backup(&repo, &src, &[], 0);
    assert_eq!(s1["id"], 1);

    for (id, expected) in [("0", &m0), ("1", &m1)] {
        let out = tmp.path().join(format!("out{id}"));
        let o = restore(&repo, "data", &out, &[os("--id"), os(id)]);
        assert!(o.status.success(), "restore {id}: {}", stderr(&o));
        assert_same(
            expected,
            &manifest(&out),
            &format!("seed {seed} snapshot {id}"),
        );
    }
    // A full backup of the unchanged tree yields the same tree again.
    let s2 = backup(&repo, &src, &["--full"], 0);
    let out = tmp.path().join("out2");
    let o = restore(&repo, "data", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(&m1, &manifest(&out), &format!("seed {seed} full snapshot"));
    assert_eq!(s2["added"], 0);
    assert_eq!(s2["modified"], 0);
    assert_eq!(s2["deleted"], 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_round_trip(seed in any::<u64>()) {
        round_trip(seed);
    }
}

#[test]
fn fixed_seeds_round_trip() {
    for seed in [1, 42, 0xdead_beef] {
        round_trip(seed);
    }
}
