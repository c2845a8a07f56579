//! The generated benchmark dataset (tests/bench/gen_dataset.py) and the work
//! directory that keeps it between runs of `cargo xtask bench` and
//! `cargo xtask bench --ftp`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use serde_json::{Value, json};

use super::files::claim_work_dir;
use super::process::{Outcome, exec};

/// bk's dataset name.
pub const DATASET: &str = "ds";
/// Marks a work directory as ours, so that it may be wiped.
const WORK_TAG: &str = ".xtask-bench";
/// Seed, scale and state of the generated dataset.
pub const MARKER: &str = "dataset.json";
pub const DATASET_DIR: &str = "dataset";

/// `python3 tests/bench/SCRIPT` (gen_dataset.py, verify_tree.py).
pub fn script(root: &Path, script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(root.join("tests").join("bench").join(script));
    c
}

/// `gen_dataset.py gen --seed SEED --out OUT --scale SCALE`.
pub fn gen_command(root: &Path, seed: u64, out: &Path, scale: f64) -> Command {
    let mut c = script(root, "gen_dataset.py");
    c.args(["gen", "--seed", &seed.to_string(), "--out"])
        .arg(out)
        .args(["--scale", &scale.to_string()]);
    c
}

/// A benchmark run: its work directory, logs and dataset.
#[derive(Debug)]
pub struct Ctx {
    pub root: PathBuf,
    pub work: PathBuf,
    pub logs: PathBuf,
    pub n_log: usize,
    /// The dataset directory (absolute; the same path for every backup).
    pub src: PathBuf,
    pub seed: u64,
    pub scale: f64,
}

impl Ctx {
    pub fn python(&self, name: &str) -> Command {
        script(&self.root, name)
    }

    pub fn exec(&mut self, cmd: &mut Command, name: &str) -> Result<Outcome> {
        self.n_log += 1;
        let prefix = self.logs.join(format!("{:02}-{name}", self.n_log));
        exec(cmd, &prefix)
    }

    pub fn exec_ok(&mut self, cmd: &mut Command, name: &str) -> Result<Outcome> {
        let o = self.exec(cmd, name)?;
        o.check()?;
        Ok(o)
    }

    pub fn set_marker(&self, state: &str) -> Result<()> {
        let m = json!({"seed": self.seed, "scale": self.scale, "state": state});
        fs::write(self.work.join(MARKER), serde_json::to_string_pretty(&m)?)?;
        Ok(())
    }

    pub fn stats(&mut self, name: &str) -> Result<String> {
        let mut c = self.python("gen_dataset.py");
        c.arg("stats").arg(&self.src);
        Ok(self.exec_ok(&mut c, name)?.stdout.trim().to_string())
    }

    pub fn mutate(&mut self, version: u32) -> Result<String> {
        let mut c = self.python("gen_dataset.py");
        c.args([
            "mutate",
            "--seed",
            &self.seed.to_string(),
            "--version",
            &version.to_string(),
        ]);
        c.arg(&self.src);
        let o = self.exec_ok(&mut c, &format!("mutate-v{version}"))?;
        let line = o.stdout.trim().to_string();
        eprintln!("{line} ({:.1} s)", o.secs);
        Ok(line)
    }
}

/// Generates the dataset into `ctx.src`, unless an unmutated one of the same
/// seed and scale is `reuse`d.
pub fn generate(ctx: &mut Ctx, reuse: bool) -> Result<()> {
    let scale_s = ctx.scale.to_string();
    if reuse {
        eprintln!(
            "reusing the dataset in {} (seed {}, scale {scale_s})",
            ctx.src.display(),
            ctx.seed
        );
    } else {
        eprintln!(
            "generating the dataset (seed {}, scale {scale_s}) in {}",
            ctx.seed,
            ctx.src.display()
        );
        let mut c = gen_command(&ctx.root, ctx.seed, &ctx.src, ctx.scale);
        let o = ctx.exec_ok(&mut c, "gen")?;
        eprintln!("{} ({:.1} s)", o.stdout.trim(), o.secs);
        ctx.set_marker("pristine")?;
    }
    Ok(())
}

/// Empties the work directory, keeping an unmutated dataset of the same seed
/// and scale. Returns whether that dataset is reused.
pub fn prepare_work(work: &Path, seed: u64, scale: f64) -> Result<bool> {
    let reuse = match fs::read_to_string(work.join(MARKER)) {
        Ok(text) => {
            let m: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            m["seed"].as_u64() == Some(seed)
                && m["scale"].as_f64() == Some(scale)
                && m["state"] == "pristine"
                && work.join(DATASET_DIR).join(DATASET).is_dir()
        }
        Err(_) => false,
    };
    if work.exists() && !reuse {
        eprintln!("wiping {}", work.display());
    }
    let keep: &[&str] = if reuse { &[DATASET_DIR, MARKER] } else { &[] };
    claim_work_dir(work, WORK_TAG, "bench", keep)?;
    Ok(reuse)
}
