// tidy: long file: the Debian FTP servers (pure-ftpd, vsftpd, proftpd): one config writer and launcher each, side by side so they stay alike
//! pure-ftpd, vsftpd and proftpd as child processes.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{Handle, Layout, NotReady, ServerKind, Setup, StartError, Started};

/// `nobody`/`nogroup` on Debian: pure-ftpd's and proftpd's session user.
const NOBODY: (u32, u32) = (65534, 65534);
/// `daemon`: vsftpd's anonymous user (its home must exist, unlike nobody's).
const DAEMON: (u32, u32) = (1, 1);

/// A located daemon binary.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    bin: PathBuf,
    /// pure-pw, for pure-ftpd.
    helper: Option<PathBuf>,
    /// `LD_LIBRARY_PATH` entries when the binary was unpacked with `dpkg -x`.
    lib_dirs: Vec<PathBuf>,
}

/// Finds the daemon for `kind` (never for the embedded server).
pub(crate) fn locate(kind: ServerKind) -> Option<Daemon> {
    let (bin, helper) = match kind {
        ServerKind::Embedded => return None,
        ServerKind::PureFtpd => ("pure-ftpd", Some("pure-pw")),
        ServerKind::Vsftpd => ("vsftpd", None),
        ServerKind::Proftpd => ("proftpd", None),
    };
    let (bin, mut lib_dirs) = find_program(bin)?;
    let helper = match helper {
        Some(name) => {
            let (path, libs) = find_program(name)?;
            lib_dirs.extend(libs);
            Some(path)
        }
        None => None,
    };
    Some(Daemon {
        bin,
        helper,
        lib_dirs,
    })
}

/// Looks on PATH and in the sbin directories, then below `$BK_FTP_SERVERS_ROOT`.
fn find_program(name: &str) -> Option<(PathBuf, Vec<PathBuf>)> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p)) {
        return Some((found, Vec::new()));
    }
    let root = PathBuf::from(std::env::var_os("BK_FTP_SERVERS_ROOT").filter(|v| !v.is_empty())?);
    let found = ["usr/sbin", "usr/bin", "sbin", "bin"]
        .iter()
        .map(|d| root.join(d).join(name))
        .find(|p| is_executable(p))?;
    Some((found, lib_dirs(&root)))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The library directories of an unpacked package tree, e.g. `usr/lib/x86_64-linux-gnu`.
fn lib_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in ["usr/lib", "lib"] {
        let base = root.join(base);
        if let Ok(entries) = std::fs::read_dir(&base) {
            let mut multiarch: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().ends_with("-linux-gnu"))
                })
                .collect();
            multiarch.sort();
            dirs.extend(multiarch);
        }
        if base.is_dir() {
            dirs.push(base);
        }
    }
    dirs
}

/// Kills the daemon and every session process it forked. vsftpd's sessions
/// call setsid(), so the process group is not enough: the process tree is
/// frozen with SIGSTOP (no more forks), collected from /proc, then killed.
pub(crate) fn stop(mut child: Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let mut tree = vec![pid];
        signal(pid, libc::SIGSTOP);
        // Twice: a process may have forked before it was stopped.
        for _ in 0..2 {
            for p in descendants(pid) {
                if !tree.contains(&p) {
                    signal(p, libc::SIGSTOP);
                    tree.push(p);
                }
            }
        }
        for &p in &tree {
            signal(p, libc::SIGKILL);
        }
        // The group we created at spawn (process_group(0)).
        signal(-pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; the pids are the
    // daemon we spawned and its descendants (or its process group).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// All descendants of `root`, from the parent pids in /proc/PID/stat.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.filter_map(Result::ok) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may contain spaces and parens.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|s| s.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, pp)| pp == parent)
                .map(|&(p, _)| p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Starts `daemon` for `setup.kind`, retrying with another port when the
/// chosen one was taken in the meantime.
pub(crate) fn start(setup: &Setup<'_>, daemon: &Daemon) -> Result<(Layout, Started), StartError> {
    let kind = setup.kind;
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source| StartError::Io { kind, what, source }
    };
    check_names(setup)?;
    let dir = &setup.dir;
    let log_file = dir.join("server.log");
    let as_root = is_root();

    let layout = match kind {
        ServerKind::PureFtpd | ServerKind::Proftpd => {
            let home = dir.join("home");
            make_dir(&home, 0o777, as_root.then_some(NOBODY))
                .map_err(io_err("creating the home directory"))?;
            Layout {
                user: setup.opts.user.clone(),
                root: home,
                remote_base: "/".to_owned(),
                log_file: Some(log_file.clone()),
                owner: Some(NOBODY),
            }
        }
        ServerKind::Vsftpd => {
            let anon = dir.join("anon");
            // vsftpd refuses a writable anonymous root.
            make_dir(&anon, 0o755, None).map_err(io_err("creating the anonymous root"))?;
            make_dir(&anon.join("upload"), 0o777, as_root.then_some(DAEMON))
                .map_err(io_err("creating the upload directory"))?;
            make_dir(&dir.join("empty"), 0o755, None)
                .map_err(io_err("creating secure_chroot_dir"))?;
            set_mode(&anon, 0o555).map_err(io_err("chmod of the anonymous root"))?;
            Layout {
                user: "anonymous".to_owned(),
                root: anon,
                remote_base: "/upload".to_owned(),
                log_file: Some(log_file.clone()),
                owner: Some(DAEMON),
            }
        }
        ServerKind::Embedded => unreachable!("the embedded server is not external"),
    };

    // Once per server: password database, certificate bundle.
    match kind {
        ServerKind::PureFtpd => prepare_pure_ftpd(setup, daemon, &layout.root)?,
        ServerKind::Proftpd => prepare_proftpd(setup, &layout.root)?,
        _ => {}
    }

    let mut last_error = String::new();
    for _attempt in 0..5 {
        let port = crate::free_port().map_err(io_err("finding a free port"))?;
        let nonce = crate::nonce(kind, port);
        let args = match kind {
            ServerKind::PureFtpd => {
                pure_ftpd_args(setup, port, &nonce).map_err(io_err("writing the greeting"))?
            }
            ServerKind::Vsftpd => {
                let conf = dir.join("vsftpd.conf");
                std::fs::write(
                    &conf,
                    vsftpd_conf(setup, port, &nonce, &layout.root, &log_file),
                )
                .map_err(io_err("writing vsftpd.conf"))?;
                vec![conf.to_string_lossy().into_owned()]
            }
            ServerKind::Proftpd => {
                let conf = dir.join("proftpd.conf");
                std::fs::write(&conf, proftpd_conf(setup, port, &nonce, &log_file))
                    .map_err(io_err("writing proftpd.conf"))?;
                vec![
                    "-n".to_owned(),
                    "-c".to_owned(),
                    conf.to_string_lossy().into_owned(),
                ]
            }
            ServerKind::Embedded => unreachable!(),
        };
        let mut child =
            spawn(daemon, &daemon.bin, &args, &log_file).map_err(io_err("spawning the daemon"))?;
        let mut alive = || match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log:\n{}",
                daemon.bin.display(),
                tail_of(&log_file)
            )),
            Err(e) => Err(format!("waiting for {}: {e}", daemon.bin.display())),
        };
        match crate::wait_for_greeting(port, &nonce, setup.opts.startup_timeout, &mut alive) {
            Ok(()) => {
                return Ok((
                    layout,
                    Started {
                        port,
                        handle: Handle::Child(child),
                    },
                ));
            }
            Err(NotReady::PortTaken) => last_error = format!("port {port} was taken"),
            Err(NotReady::Exited(msg)) => {
                last_error = msg;
                // Only a lost race for the port is worth another try.
                let log = crate::read_lossy(&log_file).to_ascii_lowercase();
                if !(log.contains("address already in use") || log.contains("bind")) {
                    stop(child);
                    break;
                }
            }
            Err(NotReady::Timeout(msg)) => {
                stop(child);
                return Err(StartError::Failed {
                    kind,
                    message: format!(
                        "no greeting within {:?}: {msg}; log:\n{}",
                        setup.opts.startup_timeout,
                        tail_of(&log_file)
                    ),
                });
            }
        }
        stop(child);
    }
    Err(StartError::Failed {
        kind,
        message: last_error,
    })
}

fn spawn(daemon: &Daemon, program: &Path, args: &[String], log_file: &Path) -> io::Result<Child> {
    let log = File::options().create(true).append(true).open(log_file)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    if !daemon.lib_dirs.is_empty() {
        cmd.env(
            "LD_LIBRARY_PATH",
            crate::prepend_path_var("LD_LIBRARY_PATH", &daemon.lib_dirs),
        );
    }
    cmd.spawn()
}

/// Runs a helper to completion; its output goes to the log.
fn run(daemon: &Daemon, program: &Path, args: &[String], log_file: &Path) -> Result<(), String> {
    let status = spawn(daemon, program, args, log_file)
        .and_then(|mut c| c.wait())
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {args:?} failed ({status}); log:\n{}",
            program.display(),
            tail_of(log_file)
        ))
    }
}

fn tail_of(path: &Path) -> String {
    let text = crate::read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn make_dir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    std::fs::create_dir(path)?;
    set_mode(path, mode)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    crate::set_mode(path, mode)
}

/// The names end up in passwd-style files and config files.
fn check_names(setup: &Setup<'_>) -> Result<(), StartError> {
    let bad = |s: &str| {
        s.is_empty()
            || s.chars()
                .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    };
    if setup.kind != ServerKind::Vsftpd && (bad(&setup.opts.user) || bad(&setup.opts.password)) {
        return Err(StartError::Failed {
            kind: setup.kind,
            message: "user and password must be non-empty, without ':' or whitespace".to_owned(),
        });
    }
    if !crate::plain_path(&setup.dir) {
        return Err(StartError::Failed {
            kind: setup.kind,
            message: format!("unusable temporary directory {}", setup.dir.display()),
        });
    }
    Ok(())
}

/// A crypt(3) SHA-512 hash (`$6$`): cheap to check, unlike pure-pw's argon2
/// (about 1 s per login), and understood by glibc's crypt in both daemons.
fn sha512_crypt(kind: ServerKind, password: &str) -> Result<String, StartError> {
    let fail = |message: String| StartError::Failed { kind, message };
    let out = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .output_with_input(password);
    let out = match out {
        Ok(out) => out,
        // perl-base is Essential on Debian; its crypt() is glibc's.
        Err(_) => {
            let salt = format!("bk{:x}", std::process::id());
            Command::new("perl")
                .args([
                    "-e",
                    "print crypt($ARGV[0], '$6$' . $ARGV[1] . '$')",
                    password,
                    &salt,
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| fail(format!("neither openssl nor perl can hash a password: {e}")))?
        }
    };
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$6$") {
        return Err(fail(format!(
            "hashing the password failed: {hash} {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(hash)
}

trait OutputWithInput {
    fn output_with_input(&mut self, input: &str) -> io::Result<std::process::Output>;
}

impl OutputWithInput for Command {
    fn output_with_input(&mut self, input: &str) -> io::Result<std::process::Output> {
        use std::io::Write;
        let mut child = self.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
            stdin.write_all(b"\n")?;
        }
        child.wait_with_output()
    }
}

// ---------------------------------------------------------------------------
// pure-ftpd

fn prepare_pure_ftpd(setup: &Setup<'_>, daemon: &Daemon, home: &Path) -> Result<(), StartError> {
    let kind = setup.kind;
    let dir = &setup.dir;
    let hash = sha512_crypt(kind, &setup.opts.password)?;
    // The format pure-pw writes; "/./" at the end of the home = chroot there.
    let line = format!(
        "{}:{hash}:{}:{}::{}/./::::::::::::\n",
        setup.opts.user,
        NOBODY.0,
        NOBODY.1,
        home.display()
    );
    let passwd = dir.join("pureftpd.passwd");
    let pdb = dir.join("pureftpd.pdb");
    let io_err = |what: &'static str| {
        move |source| StartError::Io {
            kind,
            what: what.to_owned(),
            source,
        }
    };
    std::fs::write(&passwd, line).map_err(io_err("writing pureftpd.passwd"))?;
    set_mode(&passwd, 0o600).map_err(io_err("chmod of pureftpd.passwd"))?;
    let pure_pw = daemon
        .helper
        .as_deref()
        .ok_or(StartError::NotInstalled(kind))?;
    let args = [
        "mkdb".to_owned(),
        pdb.to_string_lossy().into_owned(),
        "-f".to_owned(),
        passwd.to_string_lossy().into_owned(),
    ];
    run(daemon, pure_pw, &args, &dir.join("server.log"))
        .map_err(|message| StartError::Failed { kind, message })?;
    if let Some(cert) = &setup.cert {
        let mut bundle = std::fs::read(&cert.cert).map_err(io_err("reading cert.pem"))?;
        bundle.extend(std::fs::read(&cert.key).map_err(io_err("reading key.pem"))?);
        let path = dir.join("certkey.pem");
        std::fs::write(&path, bundle).map_err(io_err("writing certkey.pem"))?;
        set_mode(&path, 0o600).map_err(io_err("chmod of certkey.pem"))?;
    }
    Ok(())
}

fn pure_ftpd_args(setup: &Setup<'_>, port: u16, nonce: &str) -> io::Result<Vec<String>> {
    let dir = &setup.dir;
    // The greeting shows a "fortune" from this file: our nonce.
    let fortune = dir.join("fortune");
    std::fs::write(&fortune, format!("{nonce}\n"))?;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "-S".into(),
        format!("{},{port}", crate::HOST),
        "-l".into(),
        format!("puredb:{}", dir.join("pureftpd.pdb").display()),
        "-E".into(), // no anonymous logins
        "-A".into(), // chroot everyone
        "-H".into(), // no reverse DNS
        "-p".into(),
        format!("{}:{}", setup.passive.start(), setup.passive.end()),
        "-P".into(),
        setup
            .opts
            .passive_address
            .map_or_else(|| crate::HOST.to_string(), |a| a.to_string()),
        "-F".into(),
        path(fortune),
    ];
    if setup.cert.is_some() {
        args.extend([
            "-Y".into(),
            "1".into(),
            "-2".into(),
            path(dir.join("certkey.pem")),
        ]);
    }
    args.extend(setup.opts.extra_config.iter().cloned());
    Ok(args)
}

// ---------------------------------------------------------------------------
// vsftpd

fn vsftpd_conf(
    setup: &Setup<'_>,
    port: u16,
    nonce: &str,
    anon_root: &Path,
    log_file: &Path,
) -> String {
    let dir = setup.dir.display();
    let mut conf = format!(
        "listen=YES
listen_ipv6=NO
listen_address={host}
listen_port={port}
background=NO
ftpd_banner={nonce}
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
anon_root={anon}
no_anon_password=NO
ftp_username=daemon
secure_chroot_dir={dir}/empty
pasv_enable=YES
pasv_address={host}
pasv_min_port={lo}
pasv_max_port={hi}
connect_from_port_20=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
use_localtime=NO
mdtm_write=YES
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file={log}
log_ftp_protocol=YES
",
        host = crate::HOST,
        anon = anon_root.display(),
        lo = setup.passive.start(),
        hi = setup.passive.end(),
        log = log_file.display(),
    );
    if let Some(cert) = &setup.cert {
        let _ = write!(
            conf,
            "ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_ciphers=HIGH
rsa_cert_file={}
rsa_private_key_file={}
require_ssl_reuse={}
",
            cert.cert.display(),
            cert.key.display(),
            if setup.opts.vsftpd_require_ssl_reuse {
                "YES"
            } else {
                "NO"
            },
        );
    }
    for line in &setup.opts.extra_config {
        conf.push_str(line);
        conf.push('\n');
    }
    conf
}

// ---------------------------------------------------------------------------
// proftpd

fn prepare_proftpd(setup: &Setup<'_>, home: &Path) -> Result<(), StartError> {
    let kind = setup.kind;
    let io_err = |what: &'static str| {
        move |source| StartError::Io {
            kind,
            what: what.to_owned(),
            source,
        }
    };
    // mod_auth_file checks with crypt(3), so any glibc format works.
    let hash = sha512_crypt(kind, &setup.opts.password)?;
    let user = &setup.opts.user;
    let passwd = setup.dir.join("ftpd.passwd");
    let group = setup.dir.join("ftpd.group");
    std::fs::write(
        &passwd,
        format!(
            "{user}:{hash}:{}:{}::{}:/bin/false\n",
            NOBODY.0,
            NOBODY.1,
            home.display()
        ),
    )
    .map_err(io_err("writing ftpd.passwd"))?;
    std::fs::write(&group, format!("nogroup:x:{}:{user}\n", NOBODY.1))
        .map_err(io_err("writing ftpd.group"))?;
    set_mode(&passwd, 0o600).map_err(io_err("chmod of ftpd.passwd"))?;
    set_mode(&group, 0o644).map_err(io_err("chmod of ftpd.group"))?;
    Ok(())
}

fn proftpd_conf(setup: &Setup<'_>, port: u16, nonce: &str, log_file: &Path) -> String {
    let dir = setup.dir.display();
    let mut conf = format!(
        "ServerName \"bk-testkit proftpd\"
ServerIdent on \"{nonce}\"
ServerType standalone
DefaultServer on
Port {port}
DefaultAddress {host}
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
Umask 022
MaxInstances 100
ScoreboardFile {dir}/proftpd.scoreboard
PidFile {dir}/proftpd.pid
DelayTable {dir}/proftpd.delay
WtmpLog off
UseReverseDNS off
SystemLog {log}
TransferLog {dir}/xfer.log
AuthOrder mod_auth_file.c
AuthUserFile {dir}/ftpd.passwd
AuthGroupFile {dir}/ftpd.group
RequireValidShell off
DefaultRoot ~
PassivePorts {lo} {hi}
AllowOverwrite on
AllowStoreRestart on
AllowRetrieveRestart on
<IfModule mod_delay.c>
  DelayEngine off
</IfModule>
<IfModule mod_ident.c>
  IdentLookups off
</IfModule>
",
        host = crate::HOST,
        lo = setup.passive.start(),
        hi = setup.passive.end(),
        log = log_file.display(),
    );
    for line in &setup.opts.extra_config {
        conf.push_str(line);
        conf.push('\n');
    }
    conf
}
