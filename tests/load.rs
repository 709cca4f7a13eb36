//! `maildoor-load` end to end: small loads against a server from the
//! library, read back through its JSON report. Counts only, never timings.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;

const LOAD: &str = env!("CARGO_BIN_EXE_maildoor-load");

/// Waits for `child` at most `secs` seconds, killing it after that.
fn wait_bounded(child: &mut Child, secs: u64) -> ExitStatus {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("maildoor-load did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs maildoor-load with `args` and `--json`; its exit code and report.
fn load(args: &[&str]) -> (i32, Value) {
    let mut child = Command::new(LOAD)
        .args(args)
        .args(["--json", "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run maildoor-load");
    let status = wait_bounded(&mut child, 60);
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (status.code().unwrap_or(-1), report)
}

fn assert_fields(r: &Value) {
    for key in [
        "server",
        "connections",
        "messages",
        "size",
        "sent",
        "delivered",
        "failed",
        "elapsed_s",
        "messages_per_s",
        "mib_per_s",
        "latency",
        "errors",
        "check",
        "lost",
    ] {
        assert!(r.get(key).is_some(), "no {key} in {r}");
    }
    for key in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(r["latency"][key].is_number(), "no latency.{key} in {r}");
    }
}

fn check_delivers_all(extra: &[&str]) {
    let server = TestServer::start();
    let addr = server.addr.to_string();
    let maildir = server.maildir();
    let mut args = vec![
        "--server",
        &addr,
        "--connections",
        "5",
        "--messages",
        "50",
        "--size",
        "2000",
        "--maildir",
        maildir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let (code, r) = load(&args);
    assert_eq!(code, 0, "{r}");
    assert_fields(&r);
    assert_eq!(r["sent"], 50, "{r}");
    assert_eq!(r["delivered"], 50, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["size"], 2000, "{r}");
    assert_eq!(r["check"]["checked"], 50, "{r}");
    assert_eq!(r["check"]["found"], 50, "{r}");
    assert_eq!(r["check"]["missing"], 0, "{r}");
    assert_eq!(server.files("new").len(), 50);
    assert!(server.files("tmp").is_empty());
}

#[test]
fn one_connection_per_message() {
    check_delivers_all(&[]);
}

#[test]
fn one_connection_per_message_pipelined() {
    check_delivers_all(&["--pipeline"]);
}

#[test]
fn reused_connections() {
    check_delivers_all(&["--reuse"]);
}

#[test]
fn reused_connections_pipelined() {
    check_delivers_all(&["--reuse", "--pipeline"]);
}

#[test]
fn messages_missing_from_the_maildir_are_lost() {
    let server = TestServer::start();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let (code, r) = load(&[
        "--server",
        &server.addr.to_string(),
        "--connections",
        "2",
        "--messages",
        "6",
        "--maildir",
        elsewhere.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["delivered"], 6, "{r}");
    assert_eq!(r["lost"], 6, "{r}");
    assert_eq!(r["check"]["missing"], 6, "{r}");
}

#[test]
fn refusals_are_counted_by_kind() {
    let server = TestServer::start();
    let (code, r) = load(&[
        "--server",
        &server.addr.to_string(),
        "--messages",
        "4",
        "--to",
        "someone@elsewhere.example",
    ]);
    assert_eq!(code, 3, "nothing delivered: {r}");
    assert_eq!(r["delivered"], 0, "{r}");
    assert_eq!(r["errors"]["rcpt 550"], 4, "{r}");
}

#[test]
fn connection_errors_are_counted_not_fatal() {
    // A port nobody listens on: bind one, learn its number, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (code, r) = load(&["--server", &format!("127.0.0.1:{port}"), "--messages", "3"]);
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["errors"]["connect ConnectionRefused"], 3, "{r}");
}

#[test]
fn discarding_server_accepts_and_stores_nothing() {
    let mut server = Command::new(LOAD)
        .args(["--serve-discard", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run maildoor-load --serve-discard");
    let mut line = String::new();
    BufReader::new(server.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("first line");
    // "maildoor-load: discarding server on 127.0.0.1:PORT (pid N); ..."
    let addr = line
        .split_whitespace()
        .nth(4)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let (code, r) = load(&[
        "--server",
        &addr,
        "--connections",
        "3",
        "--messages",
        "12",
        "--size",
        "300000",
        "--reuse",
        "--pipeline",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["delivered"], 12, "{r}");
    let dir = std::env::temp_dir().join(format!("maildoor-discard-{}", server.id()));
    for sub in ["tmp", "new"] {
        let n = std::fs::read_dir(dir.join(sub)).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "the discarding server wrote into {sub}/");
    }
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    assert!(wait_bounded(&mut server, 20).success());
    assert!(!Path::new(&dir).exists(), "{} left behind", dir.display());
}
