//! File-system helpers: warming, sizing, removing, reading fully, secrets.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Reads every regular file below `dir` once, to warm the page cache.
pub fn warm(dir: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let mut f =
                    File::open(e.path()).with_context(|| format!("{}", e.path().display()))?;
                while f.read(&mut buf)? > 0 {}
            }
        }
    }
    Ok(())
}

/// Sum of the sizes of the regular files below `dir`.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                total += e.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// Removes a file, link or directory tree; nothing there is fine.
pub fn remove_path(p: &Path) -> Result<()> {
    let res = match fs::symlink_metadata(p) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    };
    res.with_context(|| format!("cannot remove {}", p.display()))
}

/// Makes `work` the work directory of `cargo xtask TASK`: refuses a non-empty
/// directory without the `tag` file (not made by us), empties it but for the
/// entries named in `keep`, and (re)writes the tag.
pub fn claim_work_dir(work: &Path, tag: &str, task: &str, keep: &[&str]) -> Result<()> {
    if work.exists() {
        let nonempty = fs::read_dir(work)
            .with_context(|| format!("{}", work.display()))?
            .next()
            .is_some();
        if nonempty && !work.join(tag).exists() {
            bail!(
                "{} is not empty and was not made by `cargo xtask {task}`; refusing to wipe it",
                work.display()
            );
        }
        for e in fs::read_dir(work)? {
            let e = e?;
            if e.file_name() != tag && !keep.iter().any(|k| e.file_name() == *k) {
                remove_path(&e.path())?;
            }
        }
    }
    fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let kept = if keep.is_empty() {
        String::new()
    } else {
        format!(" but {}", keep.join(", "))
    };
    fs::write(
        work.join(tag),
        format!("work directory of `cargo xtask {task}`; everything in it{kept} is wiped by it\n"),
    )?;
    Ok(())
}

/// Reads until `buf` is full or the end of the file.
pub fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `text` into a new file of mode 600 (replacing an old one).
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_only_its_own_work_dir_and_keeps_what_it_is_told() {
        let base = std::env::temp_dir().join(format!("xtask-files-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let foreign = base.join("foreign");
        fs::create_dir_all(&foreign).unwrap();
        fs::write(foreign.join("precious"), "x").unwrap();
        let e = claim_work_dir(&foreign, ".tag", "t", &[]).unwrap_err();
        assert!(e.to_string().contains("refusing to wipe it"), "{e}");
        assert!(foreign.join("precious").exists());

        let work = base.join("work");
        claim_work_dir(&work, ".tag", "t", &["input"]).unwrap();
        fs::create_dir_all(work.join("input")).unwrap();
        fs::write(work.join("input/a"), "a").unwrap();
        fs::write(work.join("old-log"), "b").unwrap();
        claim_work_dir(&work, ".tag", "t", &["input"]).unwrap();
        assert!(work.join("input/a").exists());
        assert!(!work.join("old-log").exists());
        claim_work_dir(&work, ".tag", "t", &[]).unwrap();
        assert!(!work.join("input").exists());
        assert!(work.join(".tag").exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
