//! The writer's lock: who holds it (host, machine, boot, pid, command,
//! since when), breaking a stale one, and `unlock`.

use super::*;

impl Repository {
    /// Take the exclusive lock. A lock whose owner is a dead process on this
    /// machine (the same machine id and boot, not only the same host name:
    /// cloned VMs and containers share host names) is broken, with a note.
    pub fn lock(&self, command: &str) -> Result<RepoLock> {
        let info = LockInfo::new(command);
        let bytes = serde_json::to_vec(&info).expect("lock serializes");
        for _ in 0..3 {
            match self.backend.write(layout::LOCK, &bytes, true) {
                Ok(()) => {
                    return Ok(RepoLock {
                        backend: self.backend.clone(),
                        token: info.token.clone(),
                        released: false,
                    });
                }
                Err(e) if is_already_exists(&e) => match self.lock_holder()? {
                    None => continue,
                    Some(h) if h.is_stale() => {
                        self.note(format!(
                            "removed a stale lock: {} is no longer running on this machine",
                            h.describe()
                        ));
                        let _ = self.backend.remove(layout::LOCK);
                        continue;
                    }
                    Some(h) => {
                        return Err(Error::Locked {
                            holder: h.describe(),
                        });
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Err(Error::Locked {
            holder: "another process (the lock keeps changing hands)".into(),
        })
    }

    /// Who holds the lock, if anyone.
    pub fn lock_holder(&self) -> Result<Option<LockInfo>> {
        match self.backend.read(layout::LOCK) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).unwrap_or(LockInfo {
                host: "?".into(),
                pid: 0,
                command: "unreadable lock file".into(),
                time: "?".into(),
                token: String::new(),
                machine_id: String::new(),
                boot_id: String::new(),
            }))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove the lock. A lock held by a running process on this machine is
    /// only removed with `force`; one whose owner is gone, or one from
    /// another machine (which cannot be checked from here: the caller asked
    /// for it), is removed. Returns who held it.
    pub fn unlock(&self, force: bool) -> Result<Option<LockInfo>> {
        let Some(h) = self.lock_holder()? else {
            return Ok(None);
        };
        if h.is_live_here() && !force {
            return Err(Error::Invalid(format!(
                "the lock is held by {}, which is running on this machine; stop it, or pass --force to remove its lock anyway",
                h.describe()
            )));
        }
        self.backend.remove(layout::LOCK)?;
        Ok(Some(h))
    }

    /// Remove the lock whoever holds it. Returns who held it.
    pub fn force_unlock(&self) -> Result<Option<LockInfo>> {
        self.unlock(true)
    }
}

/// The content of the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// What it is doing.
    pub command: String,
    /// Since when (RFC 3339).
    pub time: String,
    /// Random, one per lock taken: its holder releases only its own lock.
    #[serde(default)]
    pub token: String,
    /// `/etc/machine-id` of the holder's machine (empty if it has none).
    #[serde(default)]
    pub machine_id: String,
    /// The holder's boot (`/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_id: String,
}

impl LockInfo {
    fn new(command: &str) -> LockInfo {
        let mut t = [0u8; 16];
        getrandom::fill(&mut t).expect("the operating system's random source failed");
        LockInfo {
            host: hostname(),
            pid: std::process::id(),
            command: command.to_string(),
            time: Local::now().to_rfc3339(),
            token: hex::encode(t),
            machine_id: machine_id(),
            boot_id: boot_id(),
        }
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host {} (`{}`, since {})",
            self.pid, self.host, self.command, self.time
        )
    }

    /// Whether the lock was taken on this machine: same host name and the
    /// same machine id (a lock without one, from an older bk or a machine
    /// without `/etc/machine-id`, is never taken for this machine's).
    fn is_this_machine(&self) -> bool {
        let here = machine_id();
        !here.is_empty() && self.machine_id == here && self.host == hostname()
    }

    /// Whether its holder is gone for sure: it was taken on this machine,
    /// and either in an earlier boot or by a pid that is not running.
    fn is_stale(&self) -> bool {
        self.is_this_machine() && (self.boot_id != boot_id() || !pid_alive(self.pid))
    }

    /// Whether its holder is running here now.
    fn is_live_here(&self) -> bool {
        self.is_this_machine() && !self.is_stale()
    }
}

/// Held lock; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    token: String,
    released: bool,
}

impl RepoLock {
    /// Release now. Only this lock is removed: if the lock file is someone
    /// else's by now (ours was broken and another process took the lock),
    /// it is left alone.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.remove_own()
    }

    fn remove_own(&self) -> Result<()> {
        let current = match self.backend.read(layout::LOCK) {
            Ok(b) => serde_json::from_slice::<LockInfo>(&b).ok(),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if current.is_some_and(|c| c.token == self.token) {
            self.backend.remove(layout::LOCK)?;
        }
        Ok(())
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.remove_own();
        }
    }
}

fn first_line_of(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This machine's id (`/etc/machine-id`, else D-Bus's copy); empty if none.
pub fn machine_id() -> String {
    let id = first_line_of("/etc/machine-id");
    if id.is_empty() {
        first_line_of("/var/lib/dbus/machine-id")
    } else {
        id
    }
}

/// The id of this boot of the machine; empty if unknown.
fn boot_id() -> String {
    first_line_of("/proc/sys/kernel/random/boot_id")
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates or
    // truncates within it.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_and_stale_lock_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open_or_init_local(dir.path()).unwrap();
        let l = repo.lock("test").unwrap();
        match repo.lock("second") {
            Err(Error::Locked { holder }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        l.release().unwrap();
        // A lock held by a pid that does not exist is stale.
        let mut stale = LockInfo::new("dead");
        stale.pid = i32::MAX as u32 - 7;
        repo.backend()
            .write(layout::LOCK, &serde_json::to_vec(&stale).unwrap(), true)
            .unwrap();
        let l = repo.lock("third").unwrap();
        drop(l);
        assert!(repo.lock_holder().unwrap().is_none());
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Repository::open_or_init_local(dir.path()).unwrap();
        let cfg = dir.path().join("config");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace(
                &format!("\"format_version\": {FORMAT_VERSION}"),
                "\"format_version\": 99",
            ),
        )
        .unwrap();
        let err = Repository::open_local(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NewerFormat { found: 99, .. }), "{err}");
    }
}
