//! Shared helpers for the integration tests: a server started from the
//! library on 127.0.0.1 port 0 with a temporary Maildir, and a tiny
//! blocking SMTP client with read timeouts so no test can hang.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use maildoor::{Server, Settings};

/// A running server; stops (and waits) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub addrs: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    maildir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// Starts a server with test defaults, adjusted by `f`.
    pub fn with(f: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Settings::defaults();
        s.listen = vec!["127.0.0.1:0".parse().unwrap()];
        s.maildir = dir.path().join("maildir");
        s.hostname = "mx.test".into();
        s.domains = vec!["localhost".into(), "example.org".into()];
        s.shutdown_grace = Duration::from_secs(2);
        f(&mut s);
        let maildir = s.maildir.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(Server::bind(s)).expect("bind");
        let addrs = server.local_addrs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(server.run(async {
                let _ = rx.await;
            }));
        });
        TestServer {
            addr: addrs[0],
            addrs,
            dir,
            maildir,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn maildir(&self) -> PathBuf {
        self.maildir.clone()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Files in `sub` (tmp, new, cur) of the Maildir, sorted.
    pub fn files(&self, sub: &str) -> Vec<PathBuf> {
        files(&self.maildir().join(sub))
    }

    /// The file in `sub` of the message with queue id `id`. (File names
    /// sort by text, which is not delivery order: look them up by id.)
    pub fn file_of(&self, sub: &str, id: &str) -> PathBuf {
        self.files(sub)
            .into_iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{id}.")))
            })
            .unwrap_or_else(|| panic!("no file for {id} in {sub}/"))
    }

    /// Waits (bounded) until `sub` holds `n` files.
    pub fn wait_files(&self, sub: &str, n: usize) -> Vec<PathBuf> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let f = self.files(sub);
            if f.len() == n || Instant::now() > end {
                return f;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tells the server to shut down (as SIGTERM does) without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// True once the server has finished running.
    pub fn is_stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the server and waits for it to finish.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A blocking SMTP client for tests.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

/// One reply: the code, and all its lines joined by `\n`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { reader, stream }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one (possibly multiline) reply; panics on EOF or timeout.
    pub fn reply(&mut self) -> Reply {
        self.try_reply().expect("reply expected")
    }

    /// Reads one reply; `None` on EOF.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .expect("reply code");
            text.push_str(line.trim_end());
            if line.as_bytes().get(3) == Some(&b' ') {
                return Some(Reply { code, text });
            }
            text.push('\n');
        }
    }

    /// Sends a command line (CRLF added) and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends `chunk` every `pause`, at most `times` times, until the
    /// server says something; returns what it said (`None`: nothing).
    pub fn trickle_until_reply(&mut self, chunk: &[u8], pause: Duration, times: usize) -> Option<Reply> {
        for _ in 0..times {
            if self.stream.write_all(chunk).is_err() {
                break;
            }
            std::thread::sleep(pause);
            self.stream.set_nonblocking(true).ok()?;
            let mut peek = [0u8; 1];
            let got = self.stream.peek(&mut peek);
            self.stream.set_nonblocking(false).ok()?;
            if matches!(got, Ok(n) if n > 0) {
                return self.try_reply();
            }
        }
        None
    }

    /// Reads everything until the server closes (bounded by the timeout).
    pub fn read_to_end(&mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }

    /// Greeting, `EHLO x`, `MAIL FROM:<a@b.c>`, `RCPT TO:<u@localhost>`,
    /// `DATA`: a transaction open for its body.
    pub fn open_data(&mut self) {
        self.reply();
        self.cmd("EHLO x");
        self.cmd("MAIL FROM:<a@b.c>");
        self.cmd("RCPT TO:<u@localhost>");
        self.cmd("DATA");
    }

    /// Greeting, EHLO, MAIL, RCPT..., DATA, body, end; returns the final reply.
    pub fn deliver(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> Reply {
        assert_eq!(self.reply().code, 220);
        assert_eq!(self.cmd("EHLO client.test").code, 250);
        assert_eq!(self.cmd(&format!("MAIL FROM:<{from}>")).code, 250);
        for r in rcpts {
            assert_eq!(self.cmd(&format!("RCPT TO:<{r}>")).code, 250);
        }
        assert_eq!(self.cmd("DATA").code, 354);
        self.send(body);
        self.send(b"\r\n.\r\n");
        self.reply()
    }
}

/// The queue id from a `250 2.0.0 Ok: queued as <id>` reply.
pub fn queue_id(r: &Reply) -> String {
    assert_eq!(r.code, 250, "{}", r.text);
    r.text.rsplit(' ').next().unwrap().to_string()
}

/// Splits a stored message into (trace headers we added, the rest).
pub fn split_trace(stored: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(stored);
    assert!(text.starts_with("Return-Path: "), "{text}");
    // Our trace block: Return-Path line, then Received with its folded lines.
    let mut idx = 0;
    let mut seen_received = false;
    for line in stored.split_inclusive(|&b| b == b'\n') {
        let starts_fold = line.first().is_some_and(|&b| b == b'\t' || b == b' ');
        if idx == 0 || starts_fold || (!seen_received && line.starts_with(b"Received:")) {
            seen_received |= line.starts_with(b"Received:");
            idx += line.len();
        } else {
            break;
        }
    }
    (
        String::from_utf8_lossy(&stored[..idx]).into_owned(),
        stored[idx..].to_vec(),
    )
}

/// True when `program` is on PATH. Otherwise a skip that says so, or a
/// panic when MAILDOOR_REQUIRE_CLIENTS=1 (as in CI).
pub fn have_tool(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("MAILDOOR_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("{program} is required (MAILDOOR_REQUIRE_CLIENTS=1) but not installed");
        }
        eprintln!("SKIP: {program} not installed; set MAILDOOR_REQUIRE_CLIENTS=1 to make this a failure");
    }
    found
}

/// Turns LF line ends into CRLF, as SMTP wants them on the wire.
pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}
