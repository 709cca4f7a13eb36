//! The per-connection driver: moves bytes between the socket and the
//! sans-IO core.
//!
//! It reads with hard limits on line length and time, answers every
//! command already buffered before it flushes (RFC 2920 pipelining), feeds
//! message bodies through the DATA decoder into the store, and sends 250
//! only after the store reports the message durable. Generic over any
//! [`Transport`], so TCP, TLS or an in-memory pipe all fit.
//!
//! STARTTLS (RFC 3207) ends the plain driver: whatever the client sent
//! after the command is thrown away with the plain buffer, the handshake
//! runs on the bare stream, and a fresh driver over the TLS stream goes on
//! with the state machine reset. The plain path never pays for TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::bufpool::BufPool;
use crate::config::BareLf;
use crate::server::Phase as ServerPhase;
use crate::smtp::command;
use crate::smtp::data::{DataDecoder, Progress};
use crate::smtp::reply::{codes, Reply};
use crate::smtp::state::{bare_lf_reply, DataOutcome, Next, Policy, Session};
use crate::store::trace::{self, TraceInfo};
use crate::store::{is_storage_full, Delivery, Store, UniqueId};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest MAIL command line: each MAIL parameter maildoor offers widens
/// the limit by the room its keyword and value take, SIZE by 26 octets
/// (RFC 1870 §3), BODY by 16 (RFC 6152 §2) and SMTPUTF8 by 10 (RFC
/// 6531).
pub const MAX_MAIL_LINE: usize = MAX_COMMAND_LINE + 26 + 16 + 10;

/// The length limit of a command line that starts with `start`.
fn line_limit(start: &[u8]) -> usize {
    match start.get(..5) {
        Some(verb) if verb.eq_ignore_ascii_case(b"MAIL ") => MAX_MAIL_LINE,
        _ => MAX_COMMAND_LINE,
    }
}

/// Read buffer of a session between messages: room for several pipelined
/// command lines, and small, so that 10,000 idle sessions stay cheap.
const COMMAND_BUF: usize = 1024;
/// Read buffer once a session has sent a message (DATA streams through it).
const DATA_BUF: usize = 32 * 1024;
/// Read buffer for a fast sender of a big message: one that fills
/// [`DATA_BUF`] in a single read. Fewer, larger reads (about 10% more
/// throughput at 1 MiB); it goes to [`BIG_READS`] when the message ends.
const BIG_DATA_BUF: usize = 128 * 1024;

/// Big read buffers, kept for the next big message rather than freed
/// (see [`crate::bufpool`]).
static BIG_READS: BufPool = BufPool::new(BIG_DATA_BUF, 16);

/// What every session of a server shares.
#[derive(Debug)]
pub struct Shared {
    /// Protocol policy for the state machine.
    pub policy: Arc<Policy>,
    /// Where messages go.
    pub store: Arc<Store>,
    /// Time and content limits.
    pub limits: SessionLimits,
    /// TLS for STARTTLS and implicit-TLS listeners; `None`: no TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The limits a session enforces (see config/default.toml for each).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Wait for each complete command line (RFC 5321 §4.5.3.2.7: 5 min).
    pub command_timeout: Duration,
    /// Wait for each block of DATA (RFC 5321 §4.5.3.2.5: 3 min).
    pub data_timeout: Duration,
    /// Longest the store may take to make a message durable before the
    /// client, waiting for the reply to its final dot, is told 421
    /// (RFC 5321 §4.5.3.2.6: 10 min).
    pub data_end_timeout: Duration,
    /// Longest a session may last, whatever it does.
    pub max_session_time: Duration,
    /// Slowest average DATA rate in octets/s, checked once `rate_grace`
    /// has passed since 354.
    pub min_data_rate: u64,
    /// Time a DATA transfer may run before its average rate is checked.
    pub rate_grace: Duration,
    /// Silence required from the client before the greeting.
    pub greet_delay: Duration,
    /// Bare LF policy.
    pub bare_lf: BareLf,
    /// Whether message lines over 1000 octets are refused.
    pub reject_long_lines: bool,
}

/// Longest text line of a message, CRLF excluded (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 998;

/// The connection a session runs on: both ends, and its id for the log.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The client's address and port.
    pub peer: SocketAddr,
    /// Our address and port that the client connected to.
    pub local: SocketAddr,
    /// Session number, unique within this process.
    pub id: u64,
    /// Once TLS is up: its version and cipher, as the `Received:` header
    /// says them (see [`crate::tls::describe`]).
    pub tls: Option<String>,
}

/// Why a session ended (for the close log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client sent QUIT.
    Quit,
    /// The client closed the connection.
    Disconnected,
    /// A read timed out.
    Timeout,
    /// Too many errors.
    ErrorLimit,
    /// The server is shutting down.
    Shutdown,
    /// A socket error.
    IoError,
    /// The client sent before the greeting.
    EarlyTalker,
    /// The TLS handshake failed or timed out.
    TlsFailed,
    /// STARTTLS was accepted: the driver goes on over TLS. Internal to
    /// this module; never the reason a session is reported closed with.
    StartTls,
}

enum Read {
    Data,
    Eof,
    Timeout,
    Shutdown,
    Error,
}

/// A byte stream a session can run on: TCP, TLS over TCP, or an
/// in-memory pipe in tests.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Acknowledges at once everything received so far, and leaves the
    /// delayed-ACK mode that command/reply traffic puts a TCP socket in.
    ///
    /// Called after each read that leaves a message body unfinished. A
    /// client that sends with Nagle's algorithm on (Postfix's
    /// `smtp-source`, among others) holds back the last, short segment of
    /// a body until its earlier segments are acknowledged; the kernel,
    /// having seen a request/reply pattern, delays that ACK by up to 40 ms
    /// hoping to piggyback it on a reply that only comes after the last
    /// segment. Without this call 5-20 of 200 one-MiB messages stalled
    /// 40 ms each (TCP_QUICKACK in tcp(7)).
    fn ack_now(&self) {}
}

impl Transport for tokio::net::TcpStream {
    fn ack_now(&self) {
        // Only a hint: a socket that refuses it still works, a little slower.
        let _ = socket2::SockRef::from(self).set_tcp_quickack(true);
    }
}

impl<S: Transport> Transport for tokio_rustls::server::TlsStream<S> {
    fn ack_now(&self) {
        self.get_ref().0.ack_now();
    }
}

/// Tests and the fuzzer drive sessions over an in-memory pipe.
impl Transport for tokio::io::DuplexStream {}

/// A session's read buffer: given back to [`BIG_READS`] when replaced or
/// dropped (kept there if it is a big one).
struct ReadBuf(Vec<u8>);

impl Drop for ReadBuf {
    fn drop(&mut self) {
        BIG_READS.give(std::mem::take(&mut self.0));
    }
}

impl std::ops::Deref for ReadBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for ReadBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Bytes in from the client and replies out, with the buffer between.
struct Wire<S> {
    stream: S,
    buf: ReadBuf,
    lo: usize,
    hi: usize,
    out: Vec<u8>,
    shutdown: watch::Receiver<ServerPhase>,
    /// How long a write may wait for a client that does not read.
    write_timeout: Duration,
    /// The end of the whole connection (`max_session_time`).
    session_end: Instant,
}

impl<S: Transport> Wire<S> {
    fn new(stream: S, shutdown: watch::Receiver<ServerPhase>, cx: &Connection<'_>) -> Self {
        Wire {
            stream,
            buf: ReadBuf(vec![0; COMMAND_BUF]),
            lo: 0,
            hi: 0,
            out: Vec::new(),
            shutdown,
            write_timeout: cx.shared.limits.command_timeout,
            session_end: cx.session_end,
        }
    }

    /// When a write started now must have finished: a client that stops
    /// reading cannot hold the session past the command timeout, nor past
    /// the session's end. (A write that can complete at once always does:
    /// the deadline is only checked once the write has to wait.)
    fn write_deadline(&self) -> Instant {
        (Instant::now() + self.write_timeout).min(self.session_end)
    }

    /// Enlarges the read buffer to at least `size` octets. The big one
    /// comes from [`BIG_READS`].
    fn grow(&mut self, size: usize) {
        if self.buf.len() >= size {
            return;
        }
        let mut buf = if size == BIG_DATA_BUF {
            BIG_READS.take()
        } else {
            Vec::new()
        };
        // A kept buffer is initialised already: this only zeroes new ones.
        buf.resize(size, 0);
        self.replace_buf(buf);
    }

    /// Goes back to a read buffer of `size` octets, keeping any pending
    /// bytes (unless more than that are pending); the big one goes to
    /// [`BIG_READS`].
    fn shrink(&mut self, size: usize) {
        if self.buf.len() <= size || self.hi - self.lo > size {
            return;
        }
        self.replace_buf(vec![0; size]);
    }

    /// Moves the pending bytes to the start of `buf` and reads into it
    /// from now on (the old buffer is dropped: see [`ReadBuf`]). A `buf`
    /// too small for them is not used: the old buffer stays.
    fn replace_buf(&mut self, mut buf: Vec<u8>) {
        let pending = self.hi - self.lo;
        match (buf.get_mut(..pending), self.buf.get(self.lo..self.hi)) {
            (Some(to), Some(from)) => to.copy_from_slice(from),
            _ => {
                debug_assert!(false, "a read buffer too small for the pending bytes");
                BIG_READS.give(buf);
                return;
            }
        }
        self.lo = 0;
        self.hi = pending;
        self.buf = ReadBuf(buf);
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.lo..self.hi).unwrap_or_default()
    }

    fn reply(&mut self, r: &Reply) {
        // A multiline reply stays on one log line.
        debug!(reply = %r.to_string().trim_end().replace("\r\n", " | "), "S:");
        r.write_to(&mut self.out);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let deadline = tokio::time::Instant::from_std(self.write_deadline());
            let write = async {
                self.stream.write_all(&self.out).await?;
                self.stream.flush().await
            };
            tokio::time::timeout_at(deadline, write)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            self.out.clear();
        }
        Ok(())
    }

    /// Ends the stream's sending side (TLS: close_notify), within the
    /// write deadline.
    async fn close(&mut self) {
        let deadline = tokio::time::Instant::from_std(self.write_deadline());
        let _ = tokio::time::timeout_at(deadline, self.stream.shutdown()).await;
    }

    /// Reads what has already arrived, without waiting (and without a
    /// timer, whose 1 ms granularity would delay every greeting);
    /// [`Read::Timeout`] when nothing is there.
    fn fill_now(&mut self) -> Read {
        let Some(space) = self.buf.get_mut(self.hi..) else {
            return Read::Error;
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut buf = tokio::io::ReadBuf::new(space);
        match std::pin::Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            std::task::Poll::Pending => Read::Timeout,
            std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => Read::Eof,
            std::task::Poll::Ready(Ok(())) => {
                self.hi += buf.filled().len();
                Read::Data
            }
            std::task::Poll::Ready(Err(_)) => Read::Error,
        }
    }

    /// Waits for `work` (the store, while the client waits on us) until
    /// `deadline`, or until the server's phase reaches `stop_at`; `Err`
    /// with the reason (`Timeout` or `Shutdown`) when it did not finish.
    async fn wait_on<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
        deadline: Instant,
        stop_at: ServerPhase,
    ) -> Result<T, Read> {
        let shutdown = self.shutdown.wait_for(|p| *p >= stop_at);
        tokio::select! {
            r = tokio::time::timeout_at(deadline.into(), work) => r.map_err(|_| Read::Timeout),
            _ = shutdown => Err(Read::Shutdown),
        }
    }

    /// Reads more bytes, waiting until `deadline` at most. `stop_at` says
    /// from which server phase on the read gives up for shutdown.
    async fn fill(&mut self, deadline: Instant, stop_at: ServerPhase) -> Read {
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        } else if self.hi == self.buf.len() {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if self.hi == self.buf.len() {
            // Full of unprocessed bytes: make room rather than read nothing.
            self.grow(self.buf.len() * 2);
        }
        if *self.shutdown.borrow() >= stop_at {
            return Read::Shutdown;
        }
        let Some(space) = self.buf.get_mut(self.hi..) else {
            return Read::Error;
        };
        // A deadline already past still polls the read once.
        let read = tokio::time::timeout_at(deadline.into(), self.stream.read(space));
        let shutdown = self.shutdown.wait_for(|p| *p >= stop_at);
        tokio::select! {
            r = read => match r {
                Ok(Ok(0)) => Read::Eof,
                Ok(Ok(n)) => {
                    self.hi += n;
                    Read::Data
                }
                Ok(Err(_)) => Read::Error,
                Err(_) => Read::Timeout,
            },
            _ = shutdown => Read::Shutdown,
        }
    }
}

/// Runs one SMTP session to its end. With `implicit_tls` the TLS
/// handshake comes first (RFC 8314 §3.3) and the greeting goes over TLS.
pub async fn run<S>(
    stream: S,
    conn: Conn,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<ServerPhase>,
    implicit_tls: bool,
) -> End
where
    S: Transport,
{
    let started = Instant::now();
    let mut cx = Connection {
        state: Session::new(Arc::clone(&shared.policy), conn.local.ip()),
        conn,
        shared: &shared,
        messages: 0,
        // One bound for the whole connection: STARTTLS does not restart it.
        session_end: started + shared.limits.max_session_time,
    };
    let end = if implicit_tls {
        Box::pin(tls_session(stream, &mut cx, shutdown, true)).await
    } else {
        let mut wire = Wire::new(stream, shutdown.clone(), &cx);
        match drive(&mut wire, &mut cx, true).await {
            End::StartTls => {
                // The 220 goes out in clear; anything the client pipelined
                // behind STARTTLS stays in the plain buffer and is dropped
                // with it, never executed (RFC 3207 §4.2, CVE-2011-0411).
                let flushed = wire.flush().await;
                let discarded = wire.pending().len();
                if discarded > 0 {
                    warn!(
                        discarded,
                        "discarded bytes sent after STARTTLS before the TLS handshake"
                    );
                }
                match flushed {
                    Err(_) => End::IoError,
                    Ok(()) => Box::pin(tls_session(wire.stream, &mut cx, shutdown, false)).await,
                }
            }
            end => {
                // Closing the socket when the session ends sends the FIN;
                // a shutdown() first would only cost one more system call.
                let _ = wire.flush().await;
                end
            }
        }
    };
    let conn = &cx.conn;
    info!(
        tls = conn.tls.as_deref().map(tracing::field::display),
        messages = cx.messages,
        duration_ms = started.elapsed().as_millis() as u64,
        reason = ?end,
        "connection closed"
    );
    end
}

/// One connection's session as it carries on across STARTTLS: the state
/// machine, who talks to whom, the server's shared state, the messages
/// stored so far and the moment the connection must end by.
struct Connection<'a> {
    state: Session,
    conn: Conn,
    shared: &'a Shared,
    messages: u64,
    session_end: Instant,
}

/// Runs the server side of the TLS handshake, bounded by the command
/// timeout; on success records the version and cipher in `conn`. A
/// failure is logged and ends only this session.
async fn handshake<S>(
    stream: S,
    conn: &mut Conn,
    shared: &Shared,
) -> Result<tokio_rustls::server::TlsStream<S>, End>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(config) = &shared.tls else {
        // The state machine only offers STARTTLS when TLS is configured.
        return Err(End::TlsFailed);
    };
    let acceptor = TlsAcceptor::from(Arc::clone(config));
    match tokio::time::timeout(shared.limits.command_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let desc = crate::tls::describe(tls.get_ref().1);
            info!(tls = %desc, "TLS established");
            conn.tls = Some(desc);
            Ok(tls)
        }
        Ok(Err(e)) => {
            warn!(error = %e, "TLS handshake failed");
            Err(End::TlsFailed)
        }
        Err(_) => {
            warn!("TLS handshake timed out");
            Err(End::TlsFailed)
        }
    }
}

/// Runs the TLS handshake on `stream`, forgets everything the session
/// learnt in clear (RFC 3207 §4.2), and drives the rest of it over TLS.
async fn tls_session<S>(
    stream: S,
    cx: &mut Connection<'_>,
    shutdown: watch::Receiver<ServerPhase>,
    greet: bool,
) -> End
where
    S: Transport,
{
    let tls = match handshake(stream, &mut cx.conn, cx.shared).await {
        Ok(tls) => tls,
        Err(end) => return end,
    };
    cx.state.tls_started();
    let mut wire = Wire::new(tls, shutdown, cx);
    let end = match drive(&mut wire, cx, greet).await {
        // Under TLS the state machine answers STARTTLS with 503 itself.
        End::StartTls => End::IoError,
        end => end,
    };
    let _ = wire.flush().await;
    wire.close().await;
    end
}

async fn drive<S>(wire: &mut Wire<S>, cx: &mut Connection<'_>, greet: bool) -> End
where
    S: Transport,
{
    let shared = cx.shared;
    let session_end = cx.session_end;
    let limits = &shared.limits;
    let host = &shared.policy.hostname;
    if greet {
        // RFC 5321 §4.3.1: the client waits for the greeting. One that talks
        // first is a spam engine that does not; it gets 554 and is closed.
        let early = if limits.greet_delay.is_zero() {
            wire.fill_now()
        } else {
            wire.fill(Instant::now() + limits.greet_delay, ServerPhase::Draining)
                .await
        };
        match early {
            Read::Timeout => {}
            Read::Data => {
                wire.reply(&Reply::new(
                    554,
                    codes::BAD_SEQUENCE,
                    format!("{host} Error: SMTP protocol synchronization (sent before the greeting)"),
                ));
                return End::EarlyTalker;
            }
            Read::Eof => return End::Disconnected,
            Read::Error => return End::IoError,
            Read::Shutdown => {
                wire.reply(&shutdown_reply(host));
                return End::Shutdown;
            }
        }
        let greeting = cx.state.greeting();
        wire.reply(&greeting);
        if wire.flush().await.is_err() {
            return End::IoError;
        }
    }
    let reject_bare_lf = limits.bare_lf == BareLf::Reject;
    // The command timeout runs for a whole line, however it trickles in.
    let mut line_deadline = Instant::now() + limits.command_timeout;
    // After an overlong line, bytes are dropped up to the next LF.
    let mut discarding = false;
    loop {
        while let Some(nl) = memchr::memchr(b'\n', wire.pending()) {
            let start = wire.lo;
            wire.lo += nl + 1;
            line_deadline = Instant::now() + limits.command_timeout;
            if std::mem::take(&mut discarding) {
                continue;
            }
            let raw = wire.buf.get(start..start + nl).unwrap_or_default();
            let (line, bare_lf) = match raw.strip_suffix(b"\r") {
                Some(l) => (l, false),
                None => (raw, true),
            };
            let step = if nl + 1 > line_limit(raw) {
                cx.state.line_too_long()
            } else if reject_bare_lf && (bare_lf || line.ends_with(b"\r")) {
                // Strict: a CR left before the CRLF is a bare CR too (the
                // parser drops it otherwise, as line-ending debris).
                cx.state.bare_lf_command()
            } else {
                // Escaped: a client cannot forge log lines with control characters.
                debug!(line = %String::from_utf8_lossy(line).escape_debug(), "C:");
                cx.state.command(command::parse(line))
            };
            wire.reply(&step.reply);
            let mut next = step.next;
            if next == Next::ReceiveData {
                if wire.flush().await.is_err() {
                    return End::IoError;
                }
                // Boxed: its state is only needed while a message streams in, and
                // would otherwise make every idle session's future larger.
                let outcome = match Box::pin(receive_data(wire, cx)).await {
                    Ok(outcome) => outcome,
                    Err(end) => return end,
                };
                if matches!(outcome, DataOutcome::Stored(_)) {
                    cx.messages += 1;
                }
                let step = cx.state.data_done(outcome);
                wire.reply(&step.reply);
                next = step.next;
                // The transfer and the commit may have taken longer than a
                // command timeout: the wait for the next line starts now.
                line_deadline = Instant::now() + limits.command_timeout;
            }
            match next {
                Next::Continue | Next::ReceiveData => {}
                Next::Close => return End::Quit,
                Next::CloseWith(r) => {
                    wire.reply(&r);
                    return End::ErrorLimit;
                }
                Next::StartTls => return End::StartTls,
            }
        }
        if !discarding && wire.pending().len() >= line_limit(wire.pending()) {
            let step = cx.state.line_too_long();
            wire.reply(&step.reply);
            discarding = true;
            if let Next::CloseWith(r) = step.next {
                wire.reply(&r);
                return End::ErrorLimit;
            }
        }
        if discarding {
            wire.lo = wire.hi;
        }
        if wire.flush().await.is_err() {
            return End::IoError;
        }
        match wire
            .fill(line_deadline.min(session_end), ServerPhase::Draining)
            .await
        {
            Read::Data => {}
            Read::Eof => return End::Disconnected,
            Read::Error => return End::IoError,
            Read::Timeout => {
                wire.reply(&timeout_reply(host, session_end));
                return End::Timeout;
            }
            Read::Shutdown => {
                wire.reply(&shutdown_reply(host));
                return End::Shutdown;
            }
        }
    }
}

/// The reply to a sender below `min_data_rate`.
fn rate_reply(host: &str) -> Reply {
    Reply::new(421, codes::TIMEOUT, format!("{host} Error: data rate too low"))
}

fn timeout_reply(host: &str, session_end: Instant) -> Reply {
    let what = if Instant::now() >= session_end {
        "session time limit exceeded"
    } else {
        "timeout exceeded"
    };
    Reply::new(421, codes::TIMEOUT, format!("{host} Error: {what}"))
}

fn shutdown_reply(host: &str) -> Reply {
    Reply::new(
        421,
        codes::SHUTTING_DOWN,
        format!("{host} Service shutting down, try again later"),
    )
}

/// A message whose data is still coming in. Dropped before its end was
/// seen (the client left or went quiet, or the server is stopping), it
/// logs that the message was cut off and nothing of it kept; the line
/// that closes the connection says why.
struct CutOff {
    id: UniqueId,
    received: u64,
    ended: bool,
}

impl Drop for CutOff {
    fn drop(&mut self) {
        if !self.ended {
            info!(queue_id = %self.id, received = self.received, "message cut off before its end: nothing stored");
        }
    }
}

/// Receives one message body after 354 and stores it. `Err` means the
/// session must end (the reply, if any, is already queued).
async fn receive_data<S>(wire: &mut Wire<S>, cx: &Connection<'_>) -> Result<DataOutcome, End>
where
    S: Transport,
{
    let Connection {
        state,
        conn,
        shared,
        session_end,
        ..
    } = cx;
    let session_end = *session_end;
    let Some(env) = state.envelope() else {
        return Ok(DataOutcome::StoreFailed { full: false });
    };
    let id = shared.store.maildir().next_id();
    let info = TraceInfo {
        hello: state.hello(),
        peer: conn.peer,
        hostname: &shared.policy.hostname,
        primary_domain: shared.policy.primary_domain(),
        queue_id: id.as_str(),
        tls: state.is_tls(),
        tls_details: conn.tls.as_deref(),
    };
    let policy = &shared.policy;
    // Per-recipient: one file, hard-linked into each recipient's Maildir,
    // so its header may name none of them (Bcc privacy).
    let (named, targets) = if policy.per_recipient {
        let root = shared.store.maildir().root();
        let mut targets: Vec<_> = env
            .rcpts
            .iter()
            .filter_map(|r| policy.mailbox_key(r).ok())
            .map(|key| key.path(root))
            .collect();
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        (&[][..], targets)
    } else {
        (&env.rcpts[..], Vec::new())
    };
    let header = trace::headers(&info, env, named, SystemTime::now());
    let mut delivery = Delivery::begin(Arc::clone(&shared.store), id, header, targets);
    let mut decoder = DataDecoder::new();
    wire.grow(DATA_BUF);
    let max = shared.policy.max_message_size;
    let limits = &shared.limits;
    let host = &shared.policy.hostname;
    let started = Instant::now();
    let mut too_big = false;
    // Octets as they came, for the rate check (the size counts a bare LF
    // as two and a stuffing dot as none), and for the log should the
    // message be cut off.
    let mut cut = CutOff {
        id: delivery.id().clone(),
        received: 0,
        ended: false,
    };
    loop {
        if !wire.pending().is_empty() {
            cut.received += wire.pending().len() as u64;
            let input = wire.buf.get(wire.lo..wire.hi).unwrap_or_default();
            let out = delivery.buffer(input.len());
            let progress = decoder.feed(input, out);
            if too_big || decoder.wire_size() > max {
                // Keep reading to the end, store nothing.
                too_big = true;
                out.clear();
            }
            match progress {
                Progress::Done(n) => {
                    wire.lo += n;
                    break;
                }
                Progress::NeedMore => {
                    wire.lo = wire.hi;
                    // More of the body is due: acknowledge what came now
                    // (the reply to the final dot acknowledges the rest).
                    wire.stream.ack_now();
                }
            }
            if !too_big {
                // A store that stalls (a hung network file system) must
                // not hold the session past its limits or a shutdown.
                let deadline = (Instant::now() + limits.data_timeout).min(session_end);
                match wire
                    .wait_on(delivery.spill_if_full(), deadline, ServerPhase::Abort)
                    .await
                {
                    Ok(()) => {}
                    Err(Read::Shutdown) => {
                        warn!(queue_id = %delivery.id(), "store stalled at shutdown");
                        wire.reply(&shutdown_reply(host));
                        return Err(End::Shutdown);
                    }
                    Err(_) => {
                        warn!(queue_id = %delivery.id(), "store did not take the message in time");
                        wire.reply(&timeout_reply(host, session_end));
                        return Err(End::Timeout);
                    }
                }
            }
        }
        let mut deadline = (Instant::now() + limits.data_timeout).min(session_end);
        // A sender that goes quiet falls below the minimum rate too: at
        // the moment its average would, if nothing more came (not only
        // when its next bytes arrive, or at data_timeout).
        let received = cut.received + wire.pending().len() as u64;
        let rate_deadline = (limits.min_data_rate > 0)
            .then(|| Duration::from_secs_f64(received as f64 / limits.min_data_rate as f64))
            .and_then(|due| started.checked_add(due.max(limits.rate_grace)));
        let too_slow = rate_deadline.filter(|r| *r < deadline);
        if let Some(r) = too_slow {
            deadline = r;
        }
        match wire.fill(deadline, ServerPhase::Abort).await {
            Read::Timeout if too_slow.is_some() => {
                wire.reply(&rate_reply(host));
                return Err(End::Timeout);
            }
            Read::Data => {
                // One read filled the whole buffer: a fast, big sender.
                if wire.pending().len() >= DATA_BUF {
                    wire.grow(BIG_DATA_BUF);
                }
            }
            Read::Eof => return Err(End::Disconnected),
            Read::Error => return Err(End::IoError),
            Read::Timeout => {
                wire.reply(&timeout_reply(host, session_end));
                return Err(End::Timeout);
            }
            Read::Shutdown => {
                wire.reply(&shutdown_reply(host));
                return Err(End::Shutdown);
            }
        }
        // Slowloris: a trickle that never times out still has to keep up
        // an average rate once the grace period is over.
        let elapsed = started.elapsed();
        let expected = limits.min_data_rate as f64 * elapsed.as_secs_f64();
        let received = cut.received + wire.pending().len() as u64;
        if elapsed > limits.rate_grace && (received as f64) < expected {
            wire.reply(&rate_reply(host));
            return Err(End::Timeout);
        }
    }
    cut.ended = true;
    wire.shrink(DATA_BUF);
    let refusal = if too_big {
        info!(queue_id = %delivery.id(), size = decoder.wire_size(), max, "message refused: too big");
        Some(DataOutcome::TooBig)
    } else if (decoder.saw_bare_lf() || decoder.saw_bare_cr()) && limits.bare_lf == BareLf::Reject {
        // A lone CR is as much a smuggling tool as a lone LF: reject both.
        info!(queue_id = %delivery.id(), "message refused: bare LF or CR");
        Some(DataOutcome::Rejected(bare_lf_reply()))
    } else if limits.reject_long_lines && decoder.longest_line() > MAX_TEXT_LINE {
        info!(queue_id = %delivery.id(), longest = decoder.longest_line(), "message refused: line too long");
        // 554 is the refusal RFC 5321 §4.3.2 lists for the end of DATA.
        Some(DataOutcome::Rejected(Reply::new(
            554,
            codes::MEDIA_ERROR,
            "Error: message has a line longer than 1000 octets",
        )))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        // What was spilled to tmp/ before the refusal is gone before the
        // client hears it (a stalled store is not waited for past the
        // data timeout: its file goes when its write ends).
        let deadline = (Instant::now() + limits.data_timeout).min(session_end);
        let _ = wire
            .wait_on(delivery.abandon(), deadline, ServerPhase::Abort)
            .await;
        return Ok(refusal);
    }
    let id = delivery.id().clone();
    let from = env.from.to_string();
    let rcpts: Vec<String> = env.rcpts.iter().map(ToString::to_string).collect();
    // RFC 5321 §4.5.3.2.6: a client waits 10 minutes for the reply to the
    // final dot. A store stalled longer (a hung NFS server) is answered
    // with 421 rather than left hanging; the commit may still complete,
    // so the client's retry can at worst duplicate, never lose, the mail.
    // A second shutdown signal does not wait for it either.
    let deadline = Instant::now() + limits.data_end_timeout;
    let committed = match wire
        .wait_on(delivery.commit(), deadline, ServerPhase::Abort)
        .await
    {
        Ok(result) => result,
        Err(Read::Shutdown) => {
            warn!(queue_id = %id, "store did not finish before shutdown");
            wire.reply(&shutdown_reply(host));
            return Err(End::Shutdown);
        }
        Err(_) => {
            warn!(queue_id = %id, "store did not finish in time");
            wire.reply(&timeout_reply(host, session_end));
            return Err(End::Timeout);
        }
    };
    match committed {
        Ok(path) => {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            info!(
                queue_id = %id,
                from = %log_field(&from),
                rcpts = %log_field(&rcpts.join(",")),
                size = decoder.wire_size(),
                file = %file,
                "message accepted"
            );
            Ok(DataOutcome::Stored(id.to_string()))
        }
        Err(e) => {
            warn!(queue_id = %id, error = %e, maildir = %shared.store.maildir().root().display(), "delivery failed");
            Ok(DataOutcome::StoreFailed {
                full: is_storage_full(&e),
            })
        }
    }
}

/// Client text as a log field: as it is when it is one plain word, else
/// quoted and escaped (`"\"x rcpts=root@localhost\""`), so that a quoted
/// local part with spaces cannot pose as more `key=value` fields.
fn log_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\' || c == '=')
    {
        format!("{s:?}").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
