//! The listeners: bind every configured address, accept connections,
//! read the PROXY header where a listener expects one, enforce the
//! connection limits, run one session task per connection, and shut down
//! in order (stop accepting, let messages in flight finish within the
//! grace period, then 421 to the rest).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use tracing::{error, info, warn};

use crate::bind::{explain_bind_error, listen};
use crate::cidr::Cidr;
use crate::config::{Listener, Settings};
use crate::proxy::{self, Header, Parse};
use crate::session::{self, Conn, SessionLimits, Shared};
use crate::smtp::reply::{codes, Reply};
use crate::smtp::state::Policy;
use crate::store::Store;

/// Where the server is in its life; sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// Shutting down: idle sessions close, sessions in DATA go on.
    Draining,
    /// Grace period over: every session closes.
    Abort,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Maildir could not be created or opened.
    #[error("cannot use maildir {path}: {source}")]
    Maildir {
        /// The configured path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("cannot use TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {why}")]
    Bind {
        /// The address that failed.
        addr: SocketAddr,
        /// What went wrong and what to do.
        why: String,
    },
}

/// A server with its sockets bound, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    listeners: Vec<(TcpListener, Listener)>,
    shared: Arc<Shared>,
    settings: Settings,
}

impl Server {
    /// Loads the TLS certificate and key (if set), opens the Maildir and
    /// binds every listener. Fails before anything is served if any of
    /// them cannot be used.
    pub async fn bind(settings: Settings) -> Result<Server, StartError> {
        Self::bind_store(settings, false).await
    }

    /// Like [`Server::bind`], but every accepted message is thrown away
    /// instead of stored (see `Store::discarding`): the protocol's cost
    /// alone, for `maildoor-load --serve-discard` to compare with
    /// `smtp-sink`. Never reachable from settings or the command line.
    #[doc(hidden)]
    pub async fn bind_discarding(settings: Settings) -> Result<Server, StartError> {
        Self::bind_store(settings, true).await
    }

    async fn bind_store(settings: Settings, discard: bool) -> Result<Server, StartError> {
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::load_config(cert, key)?),
            _ => None,
        };
        // Sockets first: when one cannot be bound, nothing has been made
        // on disk yet.
        let mut listeners = Vec::new();
        for opts in settings.listeners() {
            let addr = opts.address;
            let listener = listen(addr, settings.reuse_port).map_err(|e| StartError::Bind {
                addr,
                why: explain_bind_error(addr, &e),
            })?;
            listeners.push((listener, opts));
        }
        let store =
            Store::open(&settings.maildir, &settings.hostname).map_err(|source| StartError::Maildir {
                path: settings.maildir.display().to_string(),
                source,
            })?;
        let store = if discard { store.discarding() } else { store };
        let mode = store.maildir().message_mode();
        if mode & 0o044 != 0 {
            // Mail is private by default (a Maildir made by maildoor is
            // 0700); one made before, or by hand, says otherwise.
            info!(
                maildir = %settings.maildir.display(),
                mode = format_args!("{mode:04o}"),
                "new messages will be readable by others than the owner (the Maildir's own mode); chmod 700 it to keep mail private"
            );
        }
        if store.early_flush {
            info!("ext4 without a journal: a big message's tmp/ file is flushed once as soon as it is made");
        }
        match store.maildir().clean_tmp(Duration::from_secs(36 * 3600)) {
            Ok(0) => {}
            Ok(n) => info!(
                removed = n,
                "removed stale files from tmp/ (and per-recipient tmp/): older than 36 hours, or left by a process of this host that is gone"
            ),
            Err(e) => warn!(error = %e, "could not clean tmp/"),
        }
        let policy = Policy {
            hostname: settings.hostname.clone(),
            domains: settings.domains.clone(),
            max_message_size: settings.max_message_size,
            max_recipients: settings.max_recipients,
            max_errors: settings.max_errors,
            starttls: tls.is_some(),
            per_recipient: settings.per_recipient,
            recipient_delimiter: settings.recipient_delimiter,
            existing_mailboxes: settings.existing_mailboxes_only.then(|| {
                Arc::new(crate::route::MailboxDirs::new(store.maildir().root()))
                    as Arc<dyn crate::route::Mailboxes>
            }),
        };
        let shared = Arc::new(Shared {
            policy: Arc::new(policy),
            store: Arc::new(store),
            limits: SessionLimits {
                command_timeout: settings.command_timeout,
                data_timeout: settings.data_timeout,
                data_end_timeout: settings.data_end_timeout,
                max_session_time: settings.max_session_time,
                min_data_rate: settings.min_data_rate,
                rate_grace: settings.data_rate_grace,
                greet_delay: settings.greet_delay,
                bare_lf: settings.bare_lf,
                reject_long_lines: settings.reject_long_lines,
            },
            tls,
        });
        Ok(Server {
            listeners,
            shared,
            settings,
        })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then shuts down in order.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_until(shutdown, std::future::pending()).await;
    }

    /// As [`Server::run`]; if `hurry` completes during the grace period
    /// (a second SIGINT/SIGTERM), the remaining sessions are closed at
    /// once instead of at its end.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>, hurry: impl Future<Output = ()>) {
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let limits = Arc::new(Limits {
            total: self.settings.max_connections,
            per_ip: self.settings.max_connections_per_ip,
            exempt: self.settings.limit_exempt.clone(),
            counts: Mutex::new(HashMap::new()),
            active: AtomicU64::new(0),
        });
        let ids = Arc::new(AtomicU64::new(1));
        let pid = std::process::id();
        let mut accept_tasks = Vec::new();
        let trusted = Arc::new(self.settings.proxy_trusted.clone());
        for (listener, opts) in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                info!(
                    listen = %addr,
                    pid,
                    implicit_tls = opts.implicit_tls,
                    proxy_protocol = opts.proxy_protocol,
                    reuse_port = self.settings.reuse_port,
                    "listening on {addr} (pid {pid})"
                );
            }
            let ctx = Arc::new(AcceptCtx {
                shared: Arc::clone(&self.shared),
                limits: Arc::clone(&limits),
                ids: Arc::clone(&ids),
                phase: phase_rx.clone(),
                done: done_tx.clone(),
                opts,
                trusted: Arc::clone(&trusted),
                proxy_timeout: self.settings.proxy_timeout,
            });
            accept_tasks.push(tokio::spawn(accept_loop(listener, ctx)));
        }
        drop(done_tx);
        shutdown.await;
        info!(
            active = limits.active.load(Ordering::Relaxed),
            "shutting down: no new connections"
        );
        for t in &accept_tasks {
            t.abort();
        }
        for t in accept_tasks {
            let _ = t.await;
        }
        let _ = phase_tx.send(Phase::Draining);
        let grace = self.settings.shutdown_grace;
        let finished = tokio::select! {
            done = tokio::time::timeout(grace, done_rx.recv()) => {
                if done.is_err() {
                    warn!(
                        grace_secs = grace.as_secs_f64(),
                        "grace period over: closing remaining sessions"
                    );
                }
                done.is_ok()
            }
            () = hurry => {
                warn!("asked again to stop: closing remaining sessions now");
                false
            }
        };
        if !finished {
            let _ = phase_tx.send(Phase::Abort);
            let _ = tokio::time::timeout(Duration::from_secs(5), done_rx.recv()).await;
        }
        // Files made ahead of need (see store::spare) go with the server.
        self.shared.store.maildir().drop_spares();
        info!("stopped");
    }
}

/// Concurrent-connection limits, in all and per client IP.
#[derive(Debug)]
struct Limits {
    total: usize,
    per_ip: usize,
    exempt: Vec<Cidr>,
    counts: Mutex<HashMap<IpAddr, usize>>,
    active: AtomicU64,
}

/// Holds one connection's place in [`Limits`]; gives it back on drop.
struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

/// Which limit refused a connection (for the log: the client hears the
/// same 421 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// `max_connections`, in all.
    Total(usize),
    /// `max_connections_per_ip`, from this client's address.
    PerIp(usize),
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::Total(n) => write!(f, "{n} connections in all (max_connections)"),
            Full::PerIp(n) => write!(f, "{n} connections from this address (max_connections_per_ip)"),
        }
    }
}

impl Limits {
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if self.active.load(Ordering::Relaxed) as usize >= self.total {
            return Err(Full::Total(self.total));
        }
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.per_ip && !self.exempt.iter().any(|c| c.contains(ip)) {
            return Err(Full::PerIp(self.per_ip));
        }
        *n += 1;
        self.active.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
        self.limits.active.fetch_sub(1, Ordering::Relaxed);
    }
}

struct AcceptCtx {
    shared: Arc<Shared>,
    limits: Arc<Limits>,
    ids: Arc<AtomicU64>,
    phase: watch::Receiver<Phase>,
    done: mpsc::Sender<()>,
    opts: Listener,
    trusted: Arc<Vec<Cidr>>,
    proxy_timeout: Duration,
}

async fn accept_loop(listener: TcpListener, ctx: Arc<AcceptCtx>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let local = stream
            .local_addr()
            .map(|l| SocketAddr::new(l.ip().to_canonical(), l.port()))
            .unwrap_or(peer);
        let id = ctx.ids.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            peer,
            local,
            id,
            tls: None,
        };
        if !ctx.opts.proxy_protocol {
            start_session(stream, conn, None, &ctx);
            continue;
        }
        if !ctx.trusted.iter().any(|c| c.contains(peer.ip())) {
            warn!(session = id, peer = %peer, local = %local, "connection closed: not a trusted proxy (proxy_trusted)");
            continue;
        }
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let mut stream = stream;
            let mut phase = ctx.phase.clone();
            let header = tokio::select! {
                h = tokio::time::timeout(ctx.proxy_timeout, read_proxy_header(&mut stream)) => h,
                // Shutting down: no session will start, so stop waiting
                // (this task holds up the shutdown while it runs).
                _ = phase.wait_for(|p| *p != Phase::Running) => return,
            };
            let conn = match header {
                Ok(Ok(Header::Proxied { source, destination })) => Conn {
                    peer: SocketAddr::new(source.ip().to_canonical(), source.port()),
                    local: SocketAddr::new(destination.ip().to_canonical(), destination.port()),
                    ..conn
                },
                Ok(Ok(Header::Local)) => conn,
                Ok(Err(e)) => {
                    warn!(session = id, peer = %peer, local = %local, error = %e, "connection closed: bad PROXY header");
                    return;
                }
                Err(_) => {
                    warn!(session = id, peer = %peer, local = %local, "connection closed: no PROXY header in time");
                    return;
                }
            };
            // The socket's own 4-tuple, beside the one the header gives.
            start_session(stream, conn, Some((peer, local)), &ctx);
        });
    }
}

/// Reads exactly one PROXY header off the socket, never a byte of the
/// SMTP dialogue behind it. Buffers at most the header's size bound.
async fn read_proxy_header(stream: &mut TcpStream) -> io::Result<Header> {
    let mut buf = Vec::with_capacity(proxy::V1_MAX);
    loop {
        match proxy::parse(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
            Parse::Done { header, .. } => return Ok(header),
            Parse::Incomplete { need } => {
                // Whatever has come, up to `need`: a client that sends
                // something else than a header (an SMTP command) is told
                // apart by its first bytes, without waiting for more.
                let have = buf.len();
                buf.resize(have + need, 0);
                let Some(more) = buf.get_mut(have..) else {
                    return Err(io::ErrorKind::InvalidData.into());
                };
                let n = stream.read(more).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.truncate(have + n);
            }
        }
    }
}

/// Takes a place in the limits for the (real) client and runs its session,
/// or answers 421 when the limits are reached. `via` is the socket's own
/// pair of addresses when a proxy relayed the connection: the proxy's,
/// and ours that it connected to (logged as `via=PROXY:PORT->OURS:PORT`).
fn start_session(stream: TcpStream, conn: Conn, via: Option<(SocketAddr, SocketAddr)>, ctx: &AcceptCtx) {
    let (id, peer, local) = (conn.id, conn.peer, conn.local);
    let via = via.map(|(proxy, ours)| tracing::field::display(format!("{proxy}->{ours}")));
    if *ctx.phase.borrow() != Phase::Running {
        // A PROXY header that arrived after shutdown began: no new session.
        return;
    }
    let slot = match ctx.limits.acquire(peer.ip()) {
        Ok(slot) => slot,
        Err(full) => {
            warn!(session = id, peer = %peer, local = %local, via, limit = %full, "connection refused: too many connections");
            if ctx.opts.implicit_tls {
                // A plain 421 would be garbage to a client starting TLS: just close.
                drop(stream);
            } else {
                tokio::spawn(refuse(stream, ctx.shared.policy.hostname.clone()));
            }
            return;
        }
    };
    // Every line the session logs, down to the debug dialogue, names its
    // connection through this span. Its level is ERROR and its target the
    // session's so that it is on whenever any session line is: with
    // `warn`, or `warn,maildoor::session=debug`, as much as with `info`.
    let span = tracing::error_span!(target: "maildoor::session", "conn", session = id, peer = %peer, local = %local, via);
    span.in_scope(|| info!("connection opened"));
    let shared = Arc::clone(&ctx.shared);
    let phase = ctx.phase.clone();
    let done = ctx.done.clone();
    let implicit_tls = ctx.opts.implicit_tls;
    tokio::spawn(
        async move {
            session::run(stream, conn, shared, phase, implicit_tls).await;
            drop(slot);
            drop(done);
        }
        .instrument(span),
    );
}

async fn refuse(mut stream: TcpStream, host: String) {
    let mut out = Vec::new();
    Reply::new(
        421,
        codes::POLICY_TEMP,
        format!("{host} Error: too many connections, try again later"),
    )
    .write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit,
/// so that `max_connections` sessions fit; returns the soft limit in force.
/// Each session needs one descriptor, plus one per message being written,
/// and up to 64 spare files are kept under load (see `store::spare`).
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum || limit.maximum.is_none() {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_say_which_one_refused_and_give_places_back() {
        let limits = Arc::new(Limits {
            total: 3,
            per_ip: 2,
            exempt: vec!["127.0.0.9/32".parse().unwrap()],
            counts: Mutex::default(),
            active: AtomicU64::new(0),
        });
        let (a, b, exempt): (IpAddr, IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "127.0.0.9".parse().unwrap(),
        );
        let first = limits.acquire(a).unwrap();
        let _second = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).err(), Some(Full::PerIp(2)));
        let _other = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(exempt).err(), Some(Full::Total(3)));
        assert!(Full::PerIp(2).to_string().contains("max_connections_per_ip"));
        drop(first);
        assert!(limits.acquire(a).is_ok());
    }
}
