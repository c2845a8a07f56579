//! Child processes: a guard that kills and reaps a child on drop, a timed run
//! with its output in log files, and a shell-like rendering of command lines.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Kills and reaps the child when dropped before it was waited for.
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", show(cmd)))?;
        Ok(ChildGuard(Some(child)))
    }

    /// Fails if the child has exited already (`what` names it in the message).
    pub fn check_alive(&mut self, what: &str) -> Result<()> {
        let child = self.0.as_mut().context("child already reaped")?;
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited early ({st})");
        }
        Ok(())
    }

    /// Waits with `wait4`; returns the exit status and the child's peak RSS in KiB.
    pub fn wait(&mut self) -> Result<(ExitStatus, u64)> {
        let child = self.0.as_ref().context("child already reaped")?;
        let pid = libc::pid_t::try_from(child.id())?;
        let mut status: libc::c_int = 0;
        // SAFETY: `rusage` is a plain C struct; all-zero bytes are a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `pid` is our own child, not reaped yet; `status` and `ru`
            // are valid for writes for the duration of the call.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if r == pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            if r == -1 && err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(anyhow::Error::new(err).context("wait4"));
        }
        // Reaped: the pid may be reused from now on, so never signal it again.
        // (Dropping a `Child` neither waits nor kills.)
        self.0 = None;
        Ok((
            ExitStatus::from_raw(status),
            u64::try_from(ru.ru_maxrss).unwrap_or(0),
        ))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What [`exec`] saw of one command.
#[derive(Debug)]
pub struct Outcome {
    pub cmd: String,
    pub status: ExitStatus,
    pub secs: f64,
    pub max_rss_kib: u64,
    pub stdout: String,
    pub stderr_tail: String,
}

impl Outcome {
    pub fn check(&self) -> Result<()> {
        if self.status.success() {
            return Ok(());
        }
        let mut msg = format!("{} failed ({})", self.cmd, self.status);
        if !self.stderr_tail.trim().is_empty() {
            msg.push_str(":\n");
            msg.push_str(self.stderr_tail.trim_end());
        } else if !self.stdout.trim().is_empty() {
            msg.push_str(":\n");
            msg.push_str(tail(&self.stdout, 4000).trim_end());
        }
        bail!(msg)
    }
}

/// Runs `cmd` with stdout and stderr going to `PREFIX.out` / `PREFIX.err`,
/// timing it from spawn to reap.
pub fn exec(cmd: &mut Command, prefix: &Path) -> Result<Outcome> {
    let with_ext = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (out_path, err_path) = (with_ext(".out"), with_ext(".err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).with_context(|| format!("{}", out_path.display()))?)
        .stderr(File::create(&err_path).with_context(|| format!("{}", err_path.display()))?);
    let start = Instant::now();
    let (status, max_rss_kib) = ChildGuard::spawn(cmd)?.wait()?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&fs::read(&out_path)?).into_owned();
    let stderr_tail = file_tail(&err_path, 4000)?;
    Ok(Outcome {
        cmd: show(cmd),
        status,
        secs,
        max_rss_kib,
        stdout,
        stderr_tail,
    })
}

fn file_tail(path: &Path, n: u64) -> Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The last `n` bytes of `s` (fewer, to start on a character boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// A shell-like rendering of a command line (without its environment).
pub fn show(cmd: &Command) -> String {
    let mut s = String::new();
    if let Some(d) = cmd.get_current_dir() {
        let _ = write!(s, "cd {} && ", shell_quote(&d.to_string_lossy()));
    }
    s.push_str(&shell_quote(&cmd.get_program().to_string_lossy()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(&a.to_string_lossy()));
    }
    s
}

pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The first line of `exe ARG`'s stdout (`--version`, or restic's `version`);
/// fails when the command does.
pub fn version_line(exe: &Path, arg: &str) -> Result<String> {
    let out = Command::new(exe)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!("{} {arg} failed ({})", exe.display(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// The first executable file called `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_commands_quoted_and_tails_on_char_boundaries() {
        let mut c = Command::new("echo");
        c.args(["a b", "it's", "plain-1"]).current_dir("/tmp");
        assert_eq!(show(&c), r"cd /tmp && echo 'a b' 'it'\''s' plain-1");
        assert_eq!(tail("abcdé", 1), "");
        assert_eq!(tail("abcdé", 2), "é");
        assert_eq!(tail("ab", 10), "ab");
    }

    #[test]
    fn guard_kills_its_child_when_dropped() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let mut g = ChildGuard::spawn(&mut c).unwrap();
        g.check_alive("sleep").unwrap();
        let pid = g.0.as_ref().unwrap().id();
        drop(g);
        // Reaped by the guard: no such process any more.
        // SAFETY: signal 0 only checks that the pid exists.
        let r = unsafe { libc::kill(libc::pid_t::try_from(pid).unwrap(), 0) };
        assert_eq!(r, -1);
    }
}
