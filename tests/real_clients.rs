//! Real SMTP clients (swaks, curl, Python's smtplib) deliver to a server,
//! in clear and over STARTTLS (swaks --tls, curl --ssl-reqd),
//! started from the library; the stored message is read back byte-exact.
//! A missing client is a skip that says so, or a failure when
//! MAILDOOR_REQUIRE_CLIENTS=1 (as in CI).

mod common;

use std::process::Command;

use common::{split_trace, TestServer};

/// A message with dot-leading lines, 8-bit UTF-8 text and an empty line.
const MESSAGE: &str = "From: Sender <sender@example.net>\nTo: user@localhost\nSubject: real client test\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHello from a real client.\n.leading dot\n..two dots\n\nGrüße, ünïcödé\n";

fn have(program: &str) -> bool {
    common::have_tool(program)
}

/// Checks that exactly one message arrived and that its body (after our
/// trace headers) is `MESSAGE` byte for byte.
fn check_stored(srv: &TestServer, client: &str) {
    let new = srv.wait_files("new", 1);
    assert_eq!(new.len(), 1, "{client}: expected one message");
    let stored = std::fs::read(&new[0]).unwrap();
    let (trace, body) = split_trace(&stored);
    assert!(trace.contains("for <user@localhost>"), "{client}: {trace}");
    assert_eq!(String::from_utf8_lossy(&body), MESSAGE, "{client}: body differs");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `MESSAGE` with swaks (`--tls`: over STARTTLS).
fn swaks(srv: &TestServer, tls: bool) {
    // swaks ends the data with CRLF . CRLF itself, after the last line.
    let file = srv.dir.path().join("msg.eml");
    std::fs::write(&file, MESSAGE.trim_end_matches('\n').replace('\n', "\r\n")).unwrap();
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &srv.addr.to_string()])
        .args(["--from", "sender@example.net", "--to", "user@localhost"])
        .args(["--helo", "swaks.test", "--timeout", "20", "--data"])
        .arg(&file);
    if tls {
        cmd.arg("--tls");
    }
    run(&mut cmd, if tls { "swaks --tls" } else { "swaks" });
}

/// Uploads `MESSAGE` with curl (`--ssl-reqd`: over STARTTLS).
fn curl(srv: &TestServer, tls: bool) {
    let file = srv.dir.path().join("msg.eml");
    std::fs::write(&file, MESSAGE.replace('\n', "\r\n")).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "20"]);
    if tls {
        cmd.args(["--ssl-reqd", "--insecure"]);
    }
    cmd.arg(format!("smtp://{}/curl.test", srv.addr))
        .args([
            "--mail-from",
            "sender@example.net",
            "--mail-rcpt",
            "user@localhost",
        ])
        .arg("--upload-file")
        .arg(&file);
    run(&mut cmd, if tls { "curl --ssl-reqd" } else { "curl" });
}

#[test]
fn swaks_delivers() {
    if !have("swaks") {
        return;
    }
    let srv = TestServer::start();
    swaks(&srv, false);
    check_stored(&srv, "swaks");
}

#[test]
fn curl_delivers() {
    if !have("curl") {
        return;
    }
    let srv = TestServer::start();
    curl(&srv, false);
    check_stored(&srv, "curl");
}

#[test]
fn python_smtplib_delivers() {
    if !have("python3") {
        return;
    }
    let srv = TestServer::start();
    let script = r#"
import smtplib, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
with smtplib.SMTP(host, port, timeout=20) as s:
    code, _ = s.ehlo("python.test")
    assert code == 250
    assert s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("8bitmime")
    refused = s.sendmail("sender@example.net", ["user@localhost"], data)
    assert not refused, refused
"#;
    let file = srv.dir.path().join("msg.eml");
    std::fs::write(&file, MESSAGE.replace('\n', "\r\n")).unwrap();
    run(
        Command::new("python3")
            .args([
                "-c",
                script,
                &srv.addr.ip().to_string(),
                &srv.addr.port().to_string(),
            ])
            .arg(&file),
        "python3 smtplib",
    );
    check_stored(&srv, "smtplib");
}

/// A server with STARTTLS, its certificate made by `maildoor gen-cert`.
fn tls_server() -> TestServer {
    let certs = tempfile::tempdir().unwrap();
    run(
        Command::new(env!("CARGO_BIN_EXE_maildoor"))
            .args(["gen-cert", "--hostname", "mx.test", "--out"])
            .arg(certs.path()),
        "maildoor gen-cert",
    );
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let srv = TestServer::with(|s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
    });
    drop(certs); // the server read both files at start
    srv
}

/// Checks the stored message came over TLS.
fn check_tls(srv: &TestServer, client: &str) {
    check_stored(srv, client);
    let new = srv.files("new");
    let (trace, _) = split_trace(&std::fs::read(&new[0]).unwrap());
    assert!(trace.contains("with ESMTPS"), "{client}: {trace}");
    assert!(trace.contains("(using TLSv1."), "{client}: {trace}");
}

#[test]
fn swaks_delivers_over_starttls() {
    if !have("swaks") {
        return;
    }
    let srv = tls_server();
    swaks(&srv, true);
    check_tls(&srv, "swaks --tls");
}

#[test]
fn curl_delivers_over_starttls() {
    if !have("curl") {
        return;
    }
    let srv = tls_server();
    curl(&srv, true);
    check_tls(&srv, "curl --ssl-reqd");
}
