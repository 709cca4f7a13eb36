//! Many instances: two maildoor processes (the real binary) share one port
//! with SO_REUSEPORT and deliver into one Maildir under concurrent load.
//! No two messages may share a name and none may be lost: every queue id
//! a 250 reply gave is a file in new/.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::{queue_id, Client};

const BIN: &str = env!("CARGO_BIN_EXE_maildoor");
const THREADS: usize = 10;
const PER_THREAD: usize = 20;

/// A maildoor process; sent SIGTERM (by its pid) and reaped when dropped.
struct Instance(Child);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn start(port: u16, maildir: &std::path::Path) -> Instance {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--hostname",
            "scale.test",
            "--maildir",
        ])
        .arg(maildir)
        .env("MAILDOOR_REUSE_PORT", "true")
        .env("MAILDOOR_MAX_CONNECTIONS_PER_IP", "1000")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start maildoor");
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let want = format!("listening on 127.0.0.1:{port} (pid {})", child.id());
    // Owned before any assertion, so a failure still stops the process.
    let instance = Instance(child);
    let mut startup = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        if log.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        startup.push_str(&line);
        if line.contains(&want) {
            break;
        }
    }
    assert!(startup.contains(&want), "{startup}");
    // Keep draining the log so the process never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while log.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    instance
}

#[test]
fn two_processes_share_a_port_and_a_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("md");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = start(port, &maildir);
    let b = start(port, &maildir);
    let pids = [a.0.id(), b.0.id()];
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let addr = Arc::new(addr);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let addr = Arc::clone(&addr);
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        // A new connection each time, so the kernel chooses
                        // a process for each message.
                        let mut c = Client::connect(*addr);
                        let body = format!("Subject: {t}/{i}\r\n\r\nmessage {t}/{i}");
                        let id =
                            queue_id(&c.deliver("load@example.net", &["user@localhost"], body.as_bytes()));
                        assert_eq!(c.cmd("QUIT").code, 221);
                        id
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let ids: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    assert_eq!(ids.len(), THREADS * PER_THREAD);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a queue id was given twice");

    let names: Vec<String> = common::files(&maildir.join("new"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), ids.len(), "messages lost or duplicated in new/");
    for id in &ids {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("{id}."))),
            "250 for {id} but no file in new/"
        );
    }
    assert!(common::files(&maildir.join("tmp")).is_empty());
    // Both processes took a share (queue ids carry the pid: ...P<pid>Q<n>).
    for pid in pids {
        assert!(
            ids.iter().any(|id| id.contains(&format!("P{pid}Q"))),
            "process {pid} delivered nothing"
        );
    }
    drop((a, b));
}
