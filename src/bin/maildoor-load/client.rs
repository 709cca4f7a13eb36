//! The SMTP client side of the load: one task per connection slot, each
//! taking message numbers from a shared counter until all are sent.
//!
//! Every step is bounded by the reply timeout, and every failure becomes a
//! counted [`Fail`] (never a panic), after which the connection is dropped
//! and the next message starts on a fresh one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Longest reply line we read before calling the reply malformed.
const MAX_REPLY_LINE: usize = 4096;

/// What every connection task needs to know; shared read-only.
pub struct Job {
    /// The server under load.
    pub server: SocketAddr,
    /// Messages to send in all.
    pub messages: u64,
    /// Many messages per connection instead of one.
    pub reuse: bool,
    /// MAIL, RCPT and DATA in one write (RFC 2920).
    pub pipeline: bool,
    /// Envelope sender.
    pub from: String,
    /// Envelope recipient.
    pub to: String,
    /// Bound on connecting and on waiting for each reply.
    pub timeout: Duration,
    /// Makes the messages.
    pub message: Message,
}

/// The message template: a per-message header of fixed length (so every
/// message has exactly the same size) followed by a shared body.
pub struct Message {
    /// Identifies this run in every message (`X-Load-Run`).
    pub run: String,
    from: String,
    to: String,
    /// The body after the header, ending in CRLF, plus the `.` CRLF terminator.
    body: Vec<u8>,
    /// Bytes of one message as sent, terminator excluded.
    pub size: usize,
}

impl Message {
    /// A template for messages of `size` bytes (at least the header's length).
    pub fn new(run: String, from: &str, to: &str, size: usize) -> Message {
        let mut m = Message {
            run,
            from: from.to_string(),
            to: to.to_string(),
            body: Vec::new(),
            size: 0,
        };
        let header_len = m.header(0).len();
        let mut left = size.saturating_sub(header_len);
        if left == 1 {
            left = 0; // a body must end in CRLF: round a 1-byte body down
        }
        while left > 0 {
            // Lines of at most 78 octets of text; never one starting with a dot.
            let text = left.saturating_sub(2).min(78);
            m.body.extend(std::iter::repeat_n(b'x', text));
            m.body.extend_from_slice(b"\r\n");
            left -= text + 2;
        }
        m.size = header_len + m.body.len();
        m.body.extend_from_slice(b".\r\n");
        m
    }

    /// The body every message carries after its header, as sent (CRLF
    /// line ends, without the terminator).
    pub fn body(&self) -> &[u8] {
        self.body.strip_suffix(b".\r\n").unwrap_or(&self.body)
    }

    /// The header of message `seq`; its length does not depend on `seq`.
    pub fn header(&self, seq: u64) -> String {
        format!(
            "From: <{from}>\r\nTo: <{to}>\r\nSubject: maildoor-load {seq:010}\r\n\
             Message-ID: <{run}.{seq:010}@maildoor-load>\r\n\
             X-Load-Run: {run}\r\nX-Load-Seq: {seq:010}\r\n\r\n",
            from = self.from,
            to = self.to,
            run = self.run,
        )
    }
}

/// One message the server answered 250.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its number (`X-Load-Seq`).
    pub seq: u64,
    /// The queue id: the last word of the 250 reply.
    pub queue_id: String,
    /// From the moment `.` CRLF was written to the 250.
    pub latency: Duration,
}

/// What one connection task did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages attempted.
    pub sent: u64,
    /// Messages answered 250 after DATA.
    pub delivered: Vec<Delivered>,
    /// Failures by kind, e.g. `data-end 451` or `connect ConnectionRefused`.
    pub errors: BTreeMap<String, u64>,
}

/// Why a message did not get its 250.
#[derive(Debug)]
pub enum Fail {
    /// A socket error at `stage`.
    Io(&'static str, std::io::ErrorKind),
    /// No reply within the timeout at `stage`.
    Timeout(&'static str),
    /// The server closed the connection at `stage`.
    Closed(&'static str),
    /// A reply that is not SMTP at `stage`.
    Malformed(&'static str),
    /// An SMTP reply other than the expected one at `stage`.
    Reply(&'static str, u16),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Io(stage, kind) => write!(f, "{stage} {kind:?}"),
            Fail::Timeout(stage) => write!(f, "{stage} timeout"),
            Fail::Closed(stage) => write!(f, "{stage} closed"),
            Fail::Malformed(stage) => write!(f, "{stage} malformed reply"),
            Fail::Reply(stage, code) => write!(f, "{stage} {code}"),
        }
    }
}

/// One SMTP connection, greeted and past EHLO.
struct Session {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    timeout: Duration,
    /// The server advertised SIZE (RFC 1870): announce each message's size.
    size_ext: bool,
}

impl Session {
    async fn open(job: &Job) -> Result<Session, Fail> {
        let stream = match tokio::time::timeout(job.timeout, TcpStream::connect(job.server)).await {
            Err(_) => return Err(Fail::Timeout("connect")),
            Ok(Err(e)) => return Err(Fail::Io("connect", e.kind())),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let mut s = Session {
            rd: BufReader::new(rd),
            wr,
            timeout: job.timeout,
            size_ext: false,
        };
        s.expect("greeting", 220).await?;
        s.write("ehlo", b"EHLO maildoor-load.localhost\r\n").await?;
        let text = s.expect("ehlo", 250).await?;
        s.size_ext = text
            .lines()
            .any(|l| l.get(4..).is_some_and(|c| c.starts_with("SIZE")));
        Ok(s)
    }

    async fn write(&mut self, stage: &'static str, bytes: &[u8]) -> Result<(), Fail> {
        match tokio::time::timeout(self.timeout, self.wr.write_all(bytes)).await {
            Err(_) => Err(Fail::Timeout(stage)),
            Ok(Err(e)) => Err(Fail::Io(stage, e.kind())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads one (possibly multiline) reply: its code and its lines.
    async fn reply(&mut self, stage: &'static str) -> Result<(u16, String), Fail> {
        let mut text = String::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let mut limited = AsyncReadExt::take(&mut self.rd, MAX_REPLY_LINE as u64);
            let read = limited.read_until(b'\n', &mut line);
            match tokio::time::timeout(self.timeout, read).await {
                Err(_) => return Err(Fail::Timeout(stage)),
                Ok(Err(e)) => return Err(Fail::Io(stage, e.kind())),
                Ok(Ok(0)) => return Err(Fail::Closed(stage)),
                Ok(Ok(_)) => {}
            }
            let l = String::from_utf8_lossy(&line);
            let code = l.get(..3).and_then(|c| c.parse::<u16>().ok());
            let (Some(code), true) = (code, l.ends_with('\n')) else {
                return Err(Fail::Malformed(stage));
            };
            text.push_str(l.trim_end());
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
            text.push('\n');
        }
    }

    async fn expect(&mut self, stage: &'static str, want: u16) -> Result<String, Fail> {
        match self.reply(stage).await? {
            (code, text) if code == want => Ok(text),
            (code, _) => Err(Fail::Reply(stage, code)),
        }
    }

    /// MAIL, RCPT, DATA, the message, and its 250.
    async fn send(&mut self, job: &Job, seq: u64) -> Result<Delivered, Fail> {
        let msg = &job.message;
        let mut mail = format!("MAIL FROM:<{}>", job.from);
        if self.size_ext {
            mail.push_str(&format!(" SIZE={}", msg.size));
        }
        let mail = format!("{mail}\r\n");
        let rcpt = format!("RCPT TO:<{}>\r\n", job.to);
        if job.pipeline {
            self.write("mail", format!("{mail}{rcpt}DATA\r\n").as_bytes())
                .await?;
            // Read all three replies to stay in step, then judge them in order.
            let replies = [
                ("mail", 250, self.reply("mail").await?.0),
                ("rcpt", 250, self.reply("rcpt").await?.0),
                ("data", 354, self.reply("data").await?.0),
            ];
            if let Some((stage, _, code)) = replies.into_iter().find(|(_, want, code)| want != code) {
                return Err(Fail::Reply(stage, code));
            }
        } else {
            self.write("mail", mail.as_bytes()).await?;
            self.expect("mail", 250).await?;
            self.write("rcpt", rcpt.as_bytes()).await?;
            self.expect("rcpt", 250).await?;
            self.write("data", b"DATA\r\n").await?;
            self.expect("data", 354).await?;
        }
        let header = msg.header(seq);
        if msg.body.len() <= 64 * 1024 {
            let mut all = Vec::with_capacity(header.len() + msg.body.len());
            all.extend_from_slice(header.as_bytes());
            all.extend_from_slice(&msg.body);
            self.write("body", &all).await?;
        } else {
            self.write("body", header.as_bytes()).await?;
            self.write("body", &msg.body).await?;
        }
        let sent = Instant::now();
        let text = self.expect("data-end", 250).await?;
        let latency = sent.elapsed();
        let queue_id = text.rsplit(' ').next().unwrap_or_default().to_string();
        Ok(Delivered {
            seq,
            queue_id,
            latency,
        })
    }

    /// QUIT, waiting (briefly) for the 221 so the server sees a clean end.
    async fn quit(mut self) {
        self.timeout = self.timeout.min(Duration::from_secs(5));
        if self.write("quit", b"QUIT\r\n").await.is_ok() {
            let _ = self.reply("quit").await;
        }
    }
}

/// One connection slot: sends messages until the shared counter reaches
/// the total, reconnecting after any failure (and after every message
/// unless `reuse`).
pub async fn worker(job: Arc<Job>, next: Arc<AtomicU64>) -> Outcome {
    let mut out = Outcome::default();
    let mut session: Option<Session> = None;
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= job.messages {
            break;
        }
        out.sent += 1;
        let result = match session.take() {
            Some(s) => Ok(s),
            None => Session::open(&job).await,
        };
        let mut s = match result {
            Ok(s) => s,
            Err(f) => {
                *out.errors.entry(f.to_string()).or_default() += 1;
                continue;
            }
        };
        match s.send(&job, seq).await {
            Ok(d) => {
                out.delivered.push(d);
                if job.reuse {
                    session = Some(s);
                } else {
                    s.quit().await;
                }
            }
            Err(f) => {
                *out.errors.entry(f.to_string()).or_default() += 1;
                s.quit().await;
            }
        }
    }
    if let Some(s) = session {
        s.quit().await;
    }
    out
}
