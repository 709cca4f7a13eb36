//! The per-connection driver: moves bytes between the socket and the
//! sans-IO core.
//!
//! It reads with hard limits on line length and time, answers every
//! command already buffered before it flushes (RFC 2920 pipelining), feeds
//! message bodies through the DATA decoder into the store, and sends 250
//! only after the store reports the message durable. Generic over any
//! `AsyncRead + AsyncWrite`, so TCP, TLS or an in-memory pipe all fit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::BareLf;
use crate::server::Phase as ServerPhase;
use crate::smtp::command;
use crate::smtp::data::{DataDecoder, Progress};
use crate::smtp::reply::{codes, Reply};
use crate::smtp::state::{bare_lf_reply, DataOutcome, Next, Policy, Session};
use crate::store::trace::{self, TraceInfo};
use crate::store::{is_storage_full, Delivery, Store};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Size of a session's read buffer.
const READ_BUF: usize = 32 * 1024;

/// What every session of a server shares.
#[derive(Debug)]
pub struct Shared {
    /// Protocol policy for the state machine.
    pub policy: Arc<Policy>,
    /// Where messages go.
    pub store: Arc<Store>,
    /// Wait for each command line.
    pub command_timeout: Duration,
    /// Wait for each block of DATA.
    pub data_timeout: Duration,
    /// Bare LF policy.
    pub bare_lf: BareLf,
}

/// The connection a session runs on: both ends, and its id for the log.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client's address and port.
    pub peer: SocketAddr,
    /// Our address and port that the client connected to.
    pub local: SocketAddr,
    /// Session number, unique within this process.
    pub id: u64,
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
}

enum Read {
    Data,
    Eof,
    Timeout,
    Shutdown,
    Error,
}

/// Bytes in from the client and replies out, with the buffer between.
struct Wire<S> {
    stream: S,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    out: Vec<u8>,
    shutdown: watch::Receiver<ServerPhase>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn pending(&self) -> &[u8] {
        self.buf.get(self.lo..self.hi).unwrap_or_default()
    }

    fn reply(&mut self, r: &Reply) {
        debug!(reply = %r, "S:");
        r.write_to(&mut self.out);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads more bytes, waiting at most `limit`. `stop_at` says from which
    /// server phase on the read gives up for shutdown.
    async fn fill(&mut self, limit: Duration, stop_at: ServerPhase) -> Read {
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        } else if self.hi == self.buf.len() {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if *self.shutdown.borrow() >= stop_at {
            return Read::Shutdown;
        }
        let Some(space) = self.buf.get_mut(self.hi..) else {
            return Read::Error;
        };
        let read = tokio::time::timeout(limit, self.stream.read(space));
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

/// Runs one SMTP session to its end.
pub async fn run<S>(stream: S, conn: Conn, shared: Arc<Shared>, shutdown: watch::Receiver<ServerPhase>) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut wire = Wire {
        stream,
        buf: vec![0; READ_BUF],
        lo: 0,
        hi: 0,
        out: Vec::with_capacity(1024),
        shutdown,
    };
    let mut state = Session::new(Arc::clone(&shared.policy), conn.local.ip());
    let mut messages = 0u64;
    let end = drive(&mut wire, &mut state, &conn, &shared, &mut messages).await;
    let _ = wire.flush().await;
    let _ = wire.stream.shutdown().await;
    info!(
        session = conn.id,
        peer = %conn.peer,
        local = %conn.local,
        messages,
        duration_ms = started.elapsed().as_millis() as u64,
        reason = ?end,
        "connection closed"
    );
    end
}

async fn drive<S>(
    wire: &mut Wire<S>,
    state: &mut Session,
    conn: &Conn,
    shared: &Shared,
    messages: &mut u64,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = state.greeting();
    wire.reply(&greeting);
    if wire.flush().await.is_err() {
        return End::IoError;
    }
    let reject_bare_lf = shared.bare_lf == BareLf::Reject;
    // After an overlong line, bytes are dropped up to the next LF.
    let mut discarding = false;
    loop {
        while let Some(nl) = memchr::memchr(b'\n', wire.pending()) {
            let start = wire.lo;
            wire.lo += nl + 1;
            if std::mem::take(&mut discarding) {
                continue;
            }
            let raw = wire.buf.get(start..start + nl).unwrap_or_default();
            let (line, bare_lf) = match raw.strip_suffix(b"\r") {
                Some(l) => (l, false),
                None => (raw, true),
            };
            let step = if nl + 1 > MAX_COMMAND_LINE {
                state.line_too_long()
            } else if bare_lf && reject_bare_lf {
                state.bare_lf_command()
            } else {
                debug!(line = %String::from_utf8_lossy(line), "C:");
                state.command(command::parse(line))
            };
            wire.reply(&step.reply);
            let mut next = step.next;
            if next == Next::ReceiveData {
                if wire.flush().await.is_err() {
                    return End::IoError;
                }
                let outcome = match receive_data(wire, state, conn, shared).await {
                    Ok(outcome) => outcome,
                    Err(end) => return end,
                };
                if matches!(outcome, DataOutcome::Stored(_)) {
                    *messages += 1;
                }
                let step = state.data_done(outcome);
                wire.reply(&step.reply);
                next = step.next;
            }
            match next {
                Next::Continue | Next::ReceiveData => {}
                Next::Close => return End::Quit,
                Next::CloseWith(r) => {
                    wire.reply(&r);
                    return End::ErrorLimit;
                }
                Next::StartTls => {
                    // Only reachable when the policy offers STARTTLS, which
                    // this transport does not; close rather than go on in clear.
                    return End::IoError;
                }
            }
        }
        if !discarding && wire.pending().len() >= MAX_COMMAND_LINE {
            let step = state.line_too_long();
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
        match wire.fill(shared.command_timeout, ServerPhase::Draining).await {
            Read::Data => {}
            Read::Eof => return End::Disconnected,
            Read::Error => return End::IoError,
            Read::Timeout => {
                wire.reply(&timeout_reply(&shared.policy.hostname));
                return End::Timeout;
            }
            Read::Shutdown => {
                wire.reply(&shutdown_reply(&shared.policy.hostname));
                return End::Shutdown;
            }
        }
    }
}

fn timeout_reply(host: &str) -> Reply {
    Reply::new(421, codes::TIMEOUT, format!("{host} Error: timeout exceeded"))
}

fn shutdown_reply(host: &str) -> Reply {
    Reply::new(
        421,
        codes::SHUTTING_DOWN,
        format!("{host} Service shutting down, try again later"),
    )
}

/// Receives one message body after 354 and stores it. `Err` means the
/// session must end (the reply, if any, is already queued).
async fn receive_data<S>(
    wire: &mut Wire<S>,
    state: &Session,
    conn: &Conn,
    shared: &Shared,
) -> Result<DataOutcome, End>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(env) = state.envelope() else {
        return Ok(DataOutcome::StoreFailed { full: false });
    };
    let id = shared.store.maildir().next_id();
    let info = TraceInfo {
        hello: state.hello(),
        peer: conn.peer,
        hostname: &shared.policy.hostname,
        queue_id: id.as_str(),
        tls: state.is_tls(),
    };
    let header = trace::headers(&info, env, &env.rcpts, SystemTime::now());
    let mut delivery = Delivery::begin(Arc::clone(&shared.store), id, header);
    let mut decoder = DataDecoder::new();
    let max = shared.policy.max_message_size;
    let mut too_big = false;
    loop {
        if !wire.pending().is_empty() {
            let input = wire.buf.get(wire.lo..wire.hi).unwrap_or_default();
            let out = delivery.buffer();
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
                Progress::NeedMore => wire.lo = wire.hi,
            }
            if !too_big {
                delivery.spill_if_full().await;
            }
        }
        match wire.fill(shared.data_timeout, ServerPhase::Abort).await {
            Read::Data => {}
            Read::Eof => return Err(End::Disconnected),
            Read::Error => return Err(End::IoError),
            Read::Timeout => {
                wire.reply(&timeout_reply(&shared.policy.hostname));
                return Err(End::Timeout);
            }
            Read::Shutdown => {
                wire.reply(&shutdown_reply(&shared.policy.hostname));
                return Err(End::Shutdown);
            }
        }
    }
    if too_big {
        info!(session = conn.id, queue_id = %delivery.id(), size = decoder.wire_size(), max, "message refused: too big");
        return Ok(DataOutcome::TooBig);
    }
    if decoder.saw_bare_lf() && shared.bare_lf == BareLf::Reject {
        info!(session = conn.id, queue_id = %delivery.id(), "message refused: bare LF");
        return Ok(DataOutcome::Rejected(bare_lf_reply()));
    }
    let id = delivery.id().clone();
    let from = env.from.to_string();
    let rcpts: Vec<String> = env.rcpts.iter().map(ToString::to_string).collect();
    match delivery.commit().await {
        Ok(path) => {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            info!(
                session = conn.id,
                queue_id = %id,
                from = %from,
                rcpts = %rcpts.join(","),
                size = decoder.wire_size(),
                file = %file,
                "message accepted"
            );
            Ok(DataOutcome::Stored(id.to_string()))
        }
        Err(e) => {
            warn!(session = conn.id, queue_id = %id, error = %e, maildir = %shared.store.maildir().root().display(), "delivery failed");
            Ok(DataOutcome::StoreFailed {
                full: is_storage_full(&e),
            })
        }
    }
}
