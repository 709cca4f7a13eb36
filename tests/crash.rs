//! Crash safety of the real binary: kill -9 in the middle of concurrent
//! deliveries loses nothing that was answered 250 and leaves no partial
//! message in `new/` (DESIGN.md, decision 3); and at start the server
//! removes `tmp/` files older than 36 hours, keeping fresh ones, and the
//! ones a killed server of this host left, whatever their age.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{files, split_trace};

const BIN: &str = env!("CARGO_BIN_EXE_maildoor");
/// Kill cycles in one test run.
const CYCLES: usize = 3;
/// Concurrent delivering clients.
const CLIENTS: usize = 8;

/// A running `maildoor` process and the log lines it wrote so far.
/// SIGKILLed when dropped, so a failing test leaves no server behind.
struct Proc {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts the binary on a free loopback port with `maildir`, and waits
    /// (bounded) for its "listening on" line. Tries another port if someone
    /// took the free one in between.
    fn start(maildir: &Path) -> Proc {
        for _ in 0..3 {
            if let Some(p) = Self::try_start(maildir) {
                return p;
            }
        }
        panic!("maildoor did not start three times in a row");
    }

    fn try_start(maildir: &Path) -> Option<Proc> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(BIN)
            .args([
                "--listen",
                &addr.to_string(),
                "--hostname",
                "mx.test",
                "--domain",
                "localhost",
            ])
            .arg("--maildir")
            .arg(maildir)
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start maildoor");
        // Drain stderr all the time, so logging never blocks the server.
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut proc = Proc { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !proc.logged("listening on") {
            if let Ok(Some(status)) = proc.child.try_wait() {
                eprintln!("maildoor exited ({status}): {:?}", proc.log.lock().unwrap());
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "no start-up line: {:?}",
                proc.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(proc)
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The body a client sends for message `seq`, lines without endings.
/// Every fourth message is large enough (~340 kB, over
/// `maildoor::store::SPOOL_CHUNK`) to be spilled to `tmp/`
/// before it ends; one line is dot-stuffed on the wire.
fn body_lines(seq: u64) -> Vec<String> {
    let mut lines = vec![
        format!("Subject: crash test {seq}"),
        format!("X-Seq: {seq}"),
        String::new(),
    ];
    let n = if seq.is_multiple_of(4) { 4000 } else { 3 + seq % 7 };
    for i in 0..n {
        lines.push(format!("message {seq} line {i} {}", "z".repeat(60)));
    }
    lines.push(format!(".dotted line {seq}"));
    lines.push(format!("end of message {seq}"));
    lines
}

/// What the Maildir must hold after the trace headers for message `seq`.
fn stored_body(seq: u64) -> Vec<u8> {
    body_lines(seq)
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

/// The same message on the wire: CRLF, dot-stuffed, CRLF.CRLF at the end.
fn wire_body(seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for l in body_lines(seq) {
        if l.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A client that gives up (returns `None`) on any error instead of
/// panicking: the server may die under it at any moment.
struct Sender {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Sender {
    fn connect(addr: SocketAddr) -> Option<Sender> {
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let reader = BufReader::new(stream.try_clone().ok()?);
        let mut s = Sender { reader, stream };
        s.expect(220)?;
        s.stream.write_all(b"EHLO crash.test\r\n").ok()?;
        s.expect(250)?;
        Some(s)
    }

    /// Reads one reply; `Some(last line)` if its code is `code`.
    fn expect(&mut self, code: u16) -> Option<String> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line
                    .starts_with(&code.to_string())
                    .then(|| line.trim_end().to_string());
            }
        }
    }

    /// MAIL, RCPT and DATA pipelined; `Some` once the 354 came.
    fn open_data(&mut self) -> Option<()> {
        self.stream
            .write_all(b"MAIL FROM:<load@example.org>\r\nRCPT TO:<u@localhost>\r\nDATA\r\n")
            .ok()?;
        self.expect(250)?;
        self.expect(250)?;
        self.expect(354)?;
        Some(())
    }

    /// Sends message `seq`; its queue id if the server answered 250.
    fn deliver(&mut self, seq: u64) -> Option<String> {
        self.open_data()?;
        self.stream.write_all(&wire_body(seq)).ok()?;
        let line = self.expect(250)?;
        let id = line.strip_prefix("250 2.0.0 Ok: queued as ")?;
        Some(id.to_string())
    }

    /// Starts a message and sends `len` bytes of its body, but not its end.
    fn start_partial(&mut self, len: usize) -> Option<()> {
        self.open_data()?;
        let mut body = b"Subject: never finished\r\nX-Seq: partial\r\n\r\n".to_vec();
        while body.len() < len {
            body.extend_from_slice(format!("partial line {}\r\n", "p".repeat(70)).as_bytes());
        }
        self.stream.write_all(&body).ok()
    }
}

/// Queue id → sequence number of every message answered 250.
type Accepted = Arc<Mutex<HashMap<String, u64>>>;

/// Runs `CLIENTS` delivering threads against `addr` until the server dies
/// or `stop` is set. Sequence numbers come from `next_seq`.
fn load(
    addr: SocketAddr,
    accepted: &Accepted,
    next_seq: &Arc<Mutex<u64>>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|_| {
            let (accepted, next_seq, stop) = (Arc::clone(accepted), Arc::clone(next_seq), Arc::clone(stop));
            std::thread::spawn(move || {
                let Some(mut s) = Sender::connect(addr) else {
                    return;
                };
                // A few messages per connection, then a new connection.
                let mut on_this_conn = 0;
                while !stop.load(Ordering::Relaxed) {
                    let seq = {
                        let mut n = next_seq.lock().unwrap();
                        *n += 1;
                        *n
                    };
                    let Some(id) = s.deliver(seq) else { return };
                    accepted.lock().unwrap().insert(id, seq);
                    on_this_conn += 1;
                    if on_this_conn == 5 {
                        let _ = s.stream.write_all(b"QUIT\r\n");
                        let Some(fresh) = Sender::connect(addr) else {
                            return;
                        };
                        s = fresh;
                        on_this_conn = 0;
                    }
                }
            })
        })
        .collect()
}

/// The queue id and size a Maildir file name claims: `<id>.<host>,S=<size>`.
fn parse_name(path: &Path) -> (String, u64) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (id, rest) = name
        .split_once(".mx.test")
        .unwrap_or_else(|| panic!("odd name {name}"));
    let size = rest
        .strip_prefix(",S=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no S= in {name}"));
    (id.to_string(), size)
}

/// Checks every file in `new/`: its size matches `S=`, and its body is
/// exactly the message its X-Seq names. Returns queue id → sequence number.
fn check_new(maildir: &Path) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    for path in files(&maildir.join("new")) {
        let (id, size) = parse_name(&path);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, size, "S= of {}", path.display());
        let (_, body) = split_trace(&bytes);
        let text = String::from_utf8_lossy(&body);
        let seq: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Seq: "))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no X-Seq in {}", path.display()));
        assert!(
            body == stored_body(seq),
            "partial or damaged message in {}",
            path.display()
        );
        assert!(found.insert(id, seq).is_none(), "queue id twice in new/");
    }
    found
}

#[test]
fn kill_9_loses_no_accepted_message() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let started = Instant::now();
    let accepted: Accepted = Arc::default();
    let next_seq = Arc::new(Mutex::new(0u64));
    let mut kills_mid_data = 0;
    let mut proc = Proc::start(&maildir);
    for cycle in 0..CYCLES {
        let before = accepted.lock().unwrap().len();
        // Vary the moment of the kill a little from cycle to cycle.
        let kill_after = before + 80 + 20 * cycle;
        let stop = Arc::new(AtomicBool::new(false));
        let threads = load(proc.addr, &accepted, &next_seq, &stop);
        let deadline = Instant::now() + Duration::from_secs(20);
        while accepted.lock().unwrap().len() < kill_after {
            assert!(Instant::now() < deadline, "cycle {cycle}: load too slow");
            std::thread::sleep(Duration::from_millis(2));
        }
        // One more client is half-way through a long message, far enough
        // for the server to have spilled it to tmp/, when the kill comes.
        let mut straggler = Sender::connect(proc.addr).expect("connect");
        straggler
            .start_partial(2 * maildoor::store::SPOOL_CHUNK)
            .expect("partial message");
        let deadline = Instant::now() + Duration::from_secs(10);
        let partial = loop {
            let spilled = files(&maildir.join("tmp"))
                .into_iter()
                .find(|p| std::fs::read(p).is_ok_and(|b| b.windows(14).any(|w| w == b"X-Seq: partial")));
            if let Some(p) = spilled {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no tmp/ file for the partial message"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        proc.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        drop(straggler);
        // What the killed server left mid-write stays in tmp/, never new/,
        // until the next start removes it: its writer is gone.
        assert!(partial.exists(), "the partial message left tmp/");
        kills_mid_data += files(&maildir.join("tmp")).len();
        proc = Proc::start(&maildir);
        assert!(
            !partial.exists(),
            "cycle {cycle}: the restart kept the killed server's tmp/ file"
        );
        let found = check_new(&maildir);
        let accepted = accepted.lock().unwrap();
        for (id, seq) in accepted.iter() {
            assert_eq!(
                found.get(id),
                Some(seq),
                "message {seq} ({id}) was answered 250 but is not in new/"
            );
        }
        eprintln!(
            "cycle {cycle}: {} accepted so far, {} complete in new/, {} in tmp/ after the kill",
            accepted.len(),
            found.len(),
            files(&maildir.join("tmp")).len()
        );
    }
    // The last server still delivers.
    let mut s = Sender::connect(proc.addr).expect("restarted server answers");
    let seq = 1_000_000;
    let id = s.deliver(seq).expect("delivery after the last restart");
    assert_eq!(check_new(&maildir).get(&id), Some(&seq));
    eprintln!(
        "{CYCLES} kill -9 cycles, {} messages answered 250 and verified, {kills_mid_data} partial messages left in tmp/ by the kills, {:?}",
        accepted.lock().unwrap().len(),
        started.elapsed()
    );
}

#[test]
fn stale_tmp_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let hours = |h: u64| SystemTime::now() - Duration::from_secs(h * 3600);
    let aged = |name: &str, mtime: SystemTime| -> PathBuf {
        let path = maildir.join("tmp").join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"partial message").unwrap();
        f.set_modified(mtime).unwrap();
        path
    };
    let stale = aged("1700000000.M1P1Q1.old", hours(37));
    let younger = aged("1700000000.M1P1Q2.old", hours(35));
    let fresh = aged("1700000000.M1P1Q3.new", SystemTime::now());
    let proc = Proc::start(&maildir);
    assert!(!stale.exists(), "a tmp/ file 37 hours old survived the start");
    assert!(younger.exists(), "a tmp/ file 35 hours old was removed");
    assert!(fresh.exists(), "a fresh tmp/ file was removed");
    let log = proc.log.lock().unwrap().join("\n");
    assert!(
        log.contains("removed stale files from tmp/") && log.contains("removed=1"),
        "{log}"
    );
}
