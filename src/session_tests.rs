//! The driver's use of [`Transport::ack_now`], over an in-memory pipe, and
//! the TCP implementation against the kernel.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use super::*;
use crate::smtp::state::Policy;

/// A pipe that counts the driver's requests to acknowledge at once, and
/// the octets it has read.
struct Counting {
    pipe: DuplexStream,
    acks: Arc<AtomicUsize>,
    read: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.pipe).poll_read(cx, buf);
        self.read.fetch_add(buf.filled().len() - before, Ordering::SeqCst);
        polled
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

impl Transport for Counting {
    fn ack_now(&self) {
        self.acks.fetch_add(1, Ordering::SeqCst);
    }
}

fn shared(root: &std::path::Path) -> Arc<Shared> {
    shared_with(root, |_| {})
}

/// As [`shared`], with its limits changed by `f`.
fn shared_with(root: &std::path::Path, f: impl FnOnce(&mut SessionLimits)) -> Arc<Shared> {
    let limit = Duration::from_secs(30);
    let mut limits = SessionLimits {
        command_timeout: limit,
        data_timeout: limit,
        data_end_timeout: limit,
        max_session_time: limit,
        min_data_rate: 0,
        rate_grace: limit,
        greet_delay: Duration::ZERO,
        bare_lf: BareLf::Reject,
        reject_long_lines: false,
    };
    f(&mut limits);
    Arc::new(Shared {
        policy: Arc::new(Policy {
            hostname: "mx.test".into(),
            domains: vec!["test".into()],
            max_message_size: 1 << 20,
            max_recipients: 10,
            max_errors: 10,
            starttls: false,
            per_recipient: false,
            recipient_delimiter: None,
            existing_mailboxes: None,
        }),
        store: Arc::new(Store::open(root, "mx.test").expect("maildir")),
        limits,
        tls: None,
    })
}

/// Reads until the reply in progress is complete; returns its last line.
/// Gives up (fails the test) after 20 s, so a session that hangs cannot
/// hang the test.
async fn reply(rd: &mut (impl AsyncRead + Unpin), seen: &mut Vec<u8>) -> String {
    tokio::time::timeout(Duration::from_secs(20), reply_unbounded(rd, seen))
        .await
        .expect("no reply within 20 s")
}

async fn reply_unbounded(rd: &mut (impl AsyncRead + Unpin), seen: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = seen.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = seen.drain(..end + 2).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
            continue;
        }
        let mut chunk = [0u8; 1024];
        let n = rd.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed early");
        seen.extend_from_slice(&chunk[..n]);
    }
}

/// A client's view of a session: the session task, the two halves of
/// the client's end of the pipe, what it has read but not consumed, and
/// the server's phase (shutdown) as the session sees it.
struct Client {
    session: tokio::task::JoinHandle<End>,
    rd: tokio::io::ReadHalf<DuplexStream>,
    wr: tokio::io::WriteHalf<DuplexStream>,
    seen: Vec<u8>,
    phase: watch::Sender<ServerPhase>,
}

impl Client {
    async fn reply(&mut self) -> String {
        reply(&mut self.rd, &mut self.seen).await
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.expect("write");
    }

    /// The session's end, after a last reply: nothing more comes.
    async fn ended(mut self) -> End {
        let end = self.session.await.expect("session");
        let mut rest = Vec::new();
        self.rd.read_to_end(&mut rest).await.expect("read");
        assert!(
            rest.is_empty() && self.seen.is_empty(),
            "more after the last reply: {rest:?}"
        );
        end
    }
}

/// Starts a session on `stream`, whose other end is `client`, and takes
/// it through EHLO, MAIL, RCPT and DATA to the start of a message body.
async fn up_to_body(
    stream: impl Transport + Send + 'static,
    client: DuplexStream,
    shared: Arc<Shared>,
) -> Client {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let conn = Conn {
        peer,
        local: "127.0.0.1:25".parse().expect("addr"),
        id: 1,
        tls: None,
    };
    let (phase, phase_rx) = watch::channel(ServerPhase::Running);
    let session = tokio::spawn(run(stream, conn, shared, phase_rx, false));
    let (rd, wr) = tokio::io::split(client);
    let mut c = Client {
        session,
        rd,
        wr,
        seen: Vec::new(),
        phase,
    };
    assert!(c.reply().await.starts_with("220"));
    for cmd in ["EHLO c.test", "MAIL FROM:<a@test>", "RCPT TO:<b@test>", "DATA"] {
        c.send(format!("{cmd}\r\n").as_bytes()).await;
        c.reply().await;
    }
    c
}

/// Sends one message whose body goes out in `parts`, waiting for the
/// server to take each part before the next; returns how many times the
/// driver asked for an immediate ACK, and the reply to the final dot.
async fn acks_for(parts: &[&[u8]]) -> (usize, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let acks = Arc::new(AtomicUsize::new(0));
    let read = Arc::new(AtomicUsize::new(0));
    let (client, server) = tokio::io::duplex(64 * 1024);
    let stream = Counting {
        pipe: server,
        acks: Arc::clone(&acks),
        read: Arc::clone(&read),
    };
    let mut c = up_to_body(stream, client, shared(dir.path())).await;
    let before = acks.load(Ordering::SeqCst);
    let mut sent = read.load(Ordering::SeqCst);
    for part in parts {
        c.send(part).await;
        sent += part.len();
        // The session reads this part on its own before the next is sent.
        for _ in 0..5000 {
            if read.load(Ordering::SeqCst) >= sent {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            read.load(Ordering::SeqCst),
            sent,
            "the session did not read the part"
        );
    }
    let end = c.reply().await;
    let during = acks.load(Ordering::SeqCst) - before;
    c.send(b"QUIT\r\n").await;
    assert!(c.reply().await.starts_with("221"));
    assert_eq!(c.ended().await, End::Quit);
    (during, end)
}

#[tokio::test]
async fn a_body_read_in_parts_is_acknowledged_at_once() {
    let (acks, end) = acks_for(&[b"Subject: t\r\n\r\nfirst half\r\n", b"second half\r\n", b".\r\n"]).await;
    assert!(end.starts_with("250"), "{end}");
    // The two reads that did not end the body; the last read did.
    assert_eq!(acks, 2);
}

#[tokio::test]
async fn a_body_read_whole_leaves_the_ack_to_the_reply() {
    let (acks, end) = acks_for(&[b"Subject: t\r\n\r\nall at once\r\n.\r\n"]).await;
    assert!(end.starts_with("250"), "{end}");
    assert_eq!(acks, 0);
}

/// A session over an in-memory pipe, with its limits changed by `f`,
/// taken to the start of a message body; its Maildir's directory and its
/// store (to stall) come with it.
async fn session_to_body(f: impl FnOnce(&mut SessionLimits)) -> (tempfile::TempDir, Arc<Store>, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = shared_with(dir.path(), f);
    let store = Arc::clone(&shared.store);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let c = up_to_body(server, client, shared).await;
    (dir, store, c)
}

/// Waits (boundedly) until `dir` holds `n` entries.
async fn entries_become(dir: &std::path::Path, n: usize) -> usize {
    let count = || std::fs::read_dir(dir).expect("dir").count();
    for _ in 0..500 {
        if count() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    count()
}

#[tokio::test]
async fn a_store_slower_than_data_end_timeout_gets_421_and_the_session_ends() {
    let (dir, store, mut c) = session_to_body(|l| l.data_end_timeout = Duration::from_millis(50)).await;
    let stalled = store.stall();
    c.send(b"Subject: t\r\n\r\nbody\r\n.\r\n").await;
    let end = c.reply().await;
    assert!(
        end.starts_with("421 4.4.2 mx.test Error: timeout exceeded"),
        "{end}"
    );
    assert_eq!(c.ended().await, End::Timeout);
    // The commit goes on once the store moves again: the client's retry
    // may duplicate the message, but it is never lost.
    drop(stalled);
    assert_eq!(entries_become(&dir.path().join("new"), 1).await, 1);
}

#[tokio::test]
async fn a_store_stalled_mid_body_is_bounded_by_data_timeout() {
    let (dir, store, mut c) = session_to_body(|l| l.data_timeout = Duration::from_millis(100)).await;
    let stalled = store.stall();
    // Two chunks: the second waits for the first, whose write is stuck.
    let body = vec![b'x'; 2 * crate::store::SPOOL_CHUNK + 10];
    let mut wr = c.wr;
    let sender = tokio::spawn(async move {
        // The session stops reading; this write may never finish.
        let _ = wr.write_all(&body).await;
        wr
    });
    let end = reply(&mut c.rd, &mut c.seen).await;
    assert!(end.starts_with("421 4.4.2"), "{end}");
    assert_eq!(c.session.await.expect("session"), End::Timeout);
    sender.abort();
    // Once the store moves, the abandoned chunk's file goes from tmp/.
    // The chunk's write is made only now: wait for it to end (it holds
    // the Maildir until then), or tmp/ could be seen empty before it.
    drop(stalled);
    for _ in 0..500 {
        if Arc::strong_count(store.maildir()) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        Arc::strong_count(store.maildir()),
        1,
        "the chunk write never ended"
    );
    assert_eq!(entries_become(&dir.path().join("tmp"), 0).await, 0);
    assert_eq!(entries_become(&dir.path().join("new"), 0).await, 0);
}

#[tokio::test]
async fn a_second_signal_does_not_wait_for_a_stalled_store() {
    let (_dir, store, mut c) = session_to_body(|_| {}).await;
    let stalled = store.stall();
    c.send(b"Subject: t\r\n\r\nbody\r\n.\r\n").await;
    // The session now waits on the store; the grace period is cut short.
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.phase.send(ServerPhase::Draining).expect("phase");
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.phase.send(ServerPhase::Abort).expect("phase");
    let end = c.reply().await;
    assert!(end.starts_with("421 4.3.2"), "{end}");
    drop(stalled);
    assert_eq!(c.ended().await, End::Shutdown);
}

#[tokio::test]
async fn tcp_ack_now_leaves_delayed_ack_mode() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (mut server, _) = listener.accept().await.expect("accept");
    // Command/reply traffic puts the server's socket in delayed-ACK mode.
    for _ in 0..3 {
        client.write_all(b"NOOP\r\n").await.expect("write");
        let mut line = [0u8; 6];
        server.read_exact(&mut line).await.expect("read");
        server.write_all(b"250 OK\r\n").await.expect("write");
        let mut ok = [0u8; 8];
        client.read_exact(&mut ok).await.expect("read");
    }
    let quick = |s: &tokio::net::TcpStream| socket2::SockRef::from(s).tcp_quickack().expect("getsockopt");
    assert!(
        !quick(&server),
        "expected delayed-ACK mode after a request/reply exchange"
    );
    server.ack_now();
    assert!(quick(&server));
}

#[test]
fn client_text_in_a_log_field_cannot_pose_as_more_fields() {
    assert_eq!(log_field("<alice@example.net>"), "<alice@example.net>");
    assert_eq!(
        log_field("<\"x rcpts=root@localhost size=1\"@b.test>"),
        r#""<\"x rcpts=root@localhost size=1\"@b.test>""#
    );
    assert_eq!(log_field("<a=b@c>"), r#""<a=b@c>""#);
}
