//! libunftp + unftp-sbe-fs on a thread of the test process.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use libunftp::ServerBuilder;
use libunftp::options::Shutdown;
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};
use unftp_sbe_fs::Filesystem;

use crate::{Handle as AnyHandle, Layout, NotReady, Setup, StartError, Started};

/// Stops the embedded server when dropped or on [`Handle::stop`].
pub(crate) struct Handle {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    pub(crate) fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Accepts exactly one user + password.
#[derive(Debug)]
struct OneUser {
    user: String,
    password: String,
}

#[async_trait]
impl Authenticator for OneUser {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        if username != self.user {
            return Err(AuthenticationError::BadUser);
        }
        if creds.password.as_deref() != Some(self.password.as_str()) {
            return Err(AuthenticationError::BadPassword);
        }
        Ok(Principal {
            username: username.to_owned(),
        })
    }
}

pub(crate) fn start(setup: &Setup<'_>) -> Result<(Layout, Started), StartError> {
    let kind = setup.kind;
    let root = setup.dir.join("root");
    std::fs::create_dir(&root).map_err(|source| StartError::Io {
        kind,
        what: "creating the root directory".to_owned(),
        source,
    })?;
    let auth = Arc::new(OneUser {
        user: setup.opts.user.clone(),
        password: setup.opts.password.clone(),
    });
    let mut last_error = String::new();
    for _attempt in 0..5 {
        let port = crate::free_port().map_err(|source| StartError::Io {
            kind,
            what: "finding a free port".to_owned(),
            source,
        })?;
        let nonce = crate::nonce(kind, port);
        // libunftp wants a &'static greeting: leak a few bytes per server.
        let greeting: &'static str = Box::leak(nonce.clone().into_boxed_str());
        let fs_root = root.clone();
        let mut builder = ServerBuilder::with_authenticator(
            Box::new(move || {
                Filesystem::new(fs_root.clone()).expect("root directory of the embedded FTP server")
            }),
            auth.clone(),
        )
        .greeting(greeting)
        .passive_ports(setup.passive.clone())
        .idle_session_timeout(600);
        if let Some(cert) = &setup.cert {
            builder = builder.ftps(cert.cert.clone(), cert.key.clone());
        }
        if let Some(addr) = setup.opts.passive_address {
            builder = builder.passive_host(addr);
        }
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        builder = builder.shutdown_indicator(async move {
            // Sent, or the sender dropped: both mean stop.
            let _ = shutdown_rx.await;
            Shutdown::new().grace_period(Duration::from_secs(2))
        });
        let server = builder.build().map_err(|e| StartError::Failed {
            kind,
            message: format!("libunftp build: {e}"),
        })?;
        let (err_tx, err_rx) = mpsc::channel::<String>();
        let thread = std::thread::Builder::new()
            .name(format!("bk-testkit-unftp-{port}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = err_tx.send(format!("tokio runtime: {e}"));
                        return;
                    }
                };
                let result = runtime.block_on(server.listen(format!("{}:{port}", crate::HOST)));
                let _ = err_tx.send(match result {
                    Ok(()) => "server stopped".to_owned(),
                    Err(e) => format!("listen on port {port}: {e:?}"),
                });
            })
            .map_err(|source| StartError::Io {
                kind,
                what: "spawning the server thread".to_owned(),
                source,
            })?;
        let mut handle = Handle {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        };
        let mut alive = || match err_rx.try_recv() {
            Ok(msg) => Err(msg),
            Err(mpsc::TryRecvError::Empty) => Ok(()),
            Err(mpsc::TryRecvError::Disconnected) => Err("server thread ended".to_owned()),
        };
        match crate::wait_for_greeting(port, &nonce, setup.opts.startup_timeout, &mut alive) {
            Ok(()) => {
                let layout = Layout {
                    user: setup.opts.user.clone(),
                    root,
                    remote_base: "/".to_owned(),
                    log_file: None,
                    owner: None,
                };
                return Ok((
                    layout,
                    Started {
                        port,
                        handle: AnyHandle::Embedded(handle),
                    },
                ));
            }
            Err(NotReady::PortTaken) => last_error = format!("port {port} was taken"),
            // A failed bind: try another port.
            Err(NotReady::Exited(msg)) => last_error = msg,
            Err(NotReady::Timeout(msg)) => {
                handle.stop_inner();
                return Err(StartError::Failed {
                    kind,
                    message: format!("no greeting within {:?}: {msg}", setup.opts.startup_timeout),
                });
            }
        }
        handle.stop_inner();
    }
    Err(StartError::Failed {
        kind,
        message: last_error,
    })
}
