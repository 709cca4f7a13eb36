//! The whole session driver (line framing, pipelining, overlong lines,
//! DATA, the store) over an in-memory pipe, fed arbitrary client bytes.
//!
//! Checked: no panic; the session ends when the client closes; everything
//! the server wrote is a sequence of well-formed reply lines
//! (`ddd[ -]text CRLF`); and nothing is left in `tmp/` (a finished or
//! abandoned message never leaves a file behind). The Maildir lives on
//! /dev/shm when there is one, so fsync costs nothing; it is emptied after
//! every input, and its three empty directories stay behind
//! (`maildoor-fuzz-<pid>`).
//!
//! Input layout: byte 0 picks the settings (bare_lf, error limit); the
//! rest is what the client sends, all at once, then it half-closes.

#![no_main]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use maildoor::config::BareLf;
use maildoor::server::Phase;
use maildoor::session::{self, Conn, End, SessionLimits, Shared};
use maildoor::smtp::state::Policy;
use maildoor::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    rt: tokio::runtime::Runtime,
    root: PathBuf,
    store: Arc<Store>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("maildoor-fuzz-{}", std::process::id()));
        let store = Arc::new(Store::open(&root, "fuzz.test").expect("maildir"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        World { rt, root, store }
    })
}

/// Asserts that `out` is a sequence of reply lines and returns their codes.
fn reply_codes(out: &[u8]) -> Vec<u16> {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "output does not end in CRLF"
    );
    let mut codes = Vec::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("bare LF in a reply");
        assert!(!line.contains(&b'\r'), "bare CR in reply {line:?}");
        assert!(line.len() >= 4, "short reply line {line:?}");
        let code = std::str::from_utf8(&line[..3])
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
            .expect("reply code");
        assert!((200..600).contains(&code), "code {code}");
        assert!(line[3] == b' ' || line[3] == b'-', "separator in {line:?}");
        codes.push(code);
    }
    codes
}

fuzz_target!(|data: &[u8]| {
    let Some((&p, input)) = data.split_first() else {
        return;
    };
    let w = world();
    let shared = Arc::new(Shared {
        policy: Arc::new(Policy {
            hostname: "mx.test".into(),
            domains: vec!["localhost".into()],
            max_message_size: 2000,
            max_recipients: 3,
            max_errors: u32::from(p & 0x0f) + 1,
            starttls: false,
            per_recipient: p & 0x20 != 0,
            recipient_delimiter: Some('+'),
            existing_mailboxes: None,
        }),
        store: Arc::clone(&w.store),
        limits: SessionLimits {
            command_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(60),
            data_end_timeout: Duration::from_secs(60),
            max_session_time: Duration::from_secs(3600),
            min_data_rate: 0,
            rate_grace: Duration::from_secs(30),
            greet_delay: Duration::ZERO,
            bare_lf: if p & 0x10 != 0 {
                BareLf::Reject
            } else {
                BareLf::Normalize
            },
            reject_long_lines: p & 0x40 != 0,
        },
        tls: None,
    });
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:25".parse().unwrap();
    let conn = Conn {
        peer,
        local,
        id: 1,
        tls: None,
    };
    let input = input.to_vec();
    let (end, out) = w.rt.block_on(async move {
        let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Running);
        let (client, server) = tokio::io::duplex(8 * 1024);
        let (mut rd, mut wr) = tokio::io::split(client);
        let session = tokio::spawn(session::run(server, conn, shared, phase_rx, false));
        // A well-behaved client waits for the greeting (an early talker is
        // refused with 554, which is tested elsewhere).
        let (greeted_tx, greeted_rx) = tokio::sync::oneshot::channel::<()>();
        let write = async move {
            let _ = greeted_rx.await;
            // The server may close first (QUIT, error limit): ignore EPIPE.
            let _ = wr.write_all(&input).await;
            let _ = wr.shutdown().await;
        };
        let read = async move {
            let mut out = Vec::new();
            let mut greeted = Some(greeted_tx);
            let mut chunk = [0u8; 4096];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                }
                if out.ends_with(b"\r\n") {
                    if let Some(tx) = greeted.take() {
                        let _ = tx.send(());
                    }
                }
            }
            out
        };
        let ((), out) = tokio::join!(write, read);
        let end = tokio::time::timeout(Duration::from_secs(30), session)
            .await
            .expect("session did not end after the client closed")
            .expect("session task panicked");
        drop(phase_tx);
        (end, out)
    });
    let codes = reply_codes(&out);
    assert_eq!(codes.first(), Some(&220), "no greeting");
    assert!(
        matches!(
            end,
            End::Quit | End::Disconnected | End::ErrorLimit | End::IoError
        ),
        "ended with {end:?}"
    );
    let tmp: Vec<_> = std::fs::read_dir(w.root.join("tmp")).unwrap().flatten().collect();
    assert!(
        tmp.is_empty(),
        "left in tmp/: {:?}",
        tmp.iter().map(|e| e.file_name()).collect::<Vec<_>>()
    );
    // Keep the Maildir small: delivered messages are not needed.
    for e in std::fs::read_dir(w.root.join("new")).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
});
