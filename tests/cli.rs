//! The `maildoor` binary as a user runs it: --help, bad settings, the
//! start-up log line, delivery, logs with the 4-tuple, SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{queue_id, Client};

const BIN: &str = env!("CARGO_BIN_EXE_maildoor");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to a server just spawned on `port`, once it listens (within
/// 10 s).
fn connect_when_up(port: u16) -> Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Client::connect(addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {addr}");
}

/// A server process that is killed if the test fails before stopping
/// it, so that no failure leaves one behind.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `maildoor ARGS --listen 127.0.0.1:PORT --maildir MD` (RUST_LOG
/// unset) with its log on a pipe; returns it, the port and the log.
fn spawn_logged(args: &[&str], md: &std::path::Path) -> (Server, u16, BufReader<std::process::ChildStderr>) {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--maildir"])
        .arg(md)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = BufReader::new(child.stderr.take().unwrap());
    (Server(child), port, log)
}

#[test]
fn help_tells_the_truth() {
    // `serve` is what maildoor does without a subcommand, with the same flags.
    for args in [&["--help"][..], &["serve", "--help"]] {
        help_lists_the_server_flags(args);
    }
}

fn help_lists_the_server_flags(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--maildir",
        "--domain",
        "--hostname",
        "--config",
        "--max-message-size",
        "--log-level",
        "--tls-cert",
        "--tls-key",
    ] {
        assert!(help.contains(flag), "{args:?} lacks {flag}:\n{help}");
    }
    if args == ["--help"] {
        assert!(help.contains("MAILDOOR_"), "{help}");
    }
}

#[test]
fn bad_settings_fail_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("md");
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--maildir"])
        .arg(&md)
        .env("MAILDOOR_MAX_MESSAGE_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_message_size"), "{err}");
    assert!(!md.exists(), "nothing may be created on a settings error");

    let out = Command::new(BIN)
        .args(["--listen", "localhost:twenty-five"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));

    // A word that is not a level would silence every log line: refused.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "bogus",
            "--maildir",
        ])
        .arg(&md)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log_level"));
    assert!(!md.exists(), "nothing may be created on a settings error");
}

#[test]
fn port_in_use_is_explained() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--listen", &addr.to_string(), "--maildir"])
        .arg(dir.path().join("md"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{addr} is taken by pid {}", std::process::id())),
        "{err}"
    );
    assert_eq!(err.matches("is taken by").count(), 1, "said once: {err}");
    assert!(!dir.path().join("md").exists(), "nothing made on disk: {err}");
}

#[test]
fn unusable_tls_files_are_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .arg("--maildir")
        .arg(dir.path().join("md"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls_cert") && err.contains("missing.pem"), "{err}");
}

#[test]
fn a_maildir_others_can_read_is_named_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("md");
    std::fs::create_dir(&md).unwrap();
    std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_child, _, mut log) = spawn_logged(&[], &md);
    let startup = until_listening(&mut log);
    assert!(
        startup.contains("readable by others") && startup.contains("mode=0644"),
        "{startup}"
    );
}

#[test]
fn runs_delivers_logs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", "--hostname", "cli.test", "--log-level", "debug"];
    let (mut child, port, mut log) = spawn_logged(&args, &dir.path().join("md"));
    // The start-up lines, up to the one naming the socket and the pid.
    let startup = until_listening(&mut log);
    let want = format!("listening on 127.0.0.1:{port} (pid {})", child.0.id());
    assert!(startup.contains(&want), "{startup}");
    assert!(startup.contains("open file limit"), "{startup}");
    // A Maildir made here is private: nothing to say about it.
    assert!(!startup.contains("readable by others"), "{startup}");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr);
    let id = queue_id(&c.deliver("a@b.c", &["user@cli.test"], b"Subject: cli\r\n\r\nhi"));
    let client_port = c.stream.local_addr().unwrap().port();
    // A client that leaves mid-DATA: its message is cut off, and the log
    // says so.
    let mut cut = Client::connect(addr);
    cut.open_data();
    cut.send(b"Subject: cut\r\n\r\nhalf a bo");
    let cut_port = cut.stream.local_addr().unwrap().port();
    drop(cut);
    // An idle session is told about the shutdown.
    let mut idle = Client::connect(addr);
    assert_eq!(idle.reply().code, 220);
    std::thread::sleep(Duration::from_millis(100));
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let r = idle.reply();
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    let r = c.reply();
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    let code = child.0.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
    assert!(rest.contains("connection opened"), "{rest}");
    assert!(rest.contains(&format!("peer=127.0.0.1:{client_port}")), "{rest}");
    assert!(rest.contains(&format!("local=127.0.0.1:{port}")), "{rest}");
    assert!(rest.contains(&format!("queue_id={id}")), "{rest}");
    assert!(rest.contains("message accepted"), "{rest}");
    assert!(rest.contains("connection closed"), "{rest}");
    let cut_off = rest.lines().find(|l| {
        l.contains("message cut off before its end") && l.contains(&format!("peer=127.0.0.1:{cut_port}"))
    });
    assert!(cut_off.is_some_and(|l| l.contains("received=25")), "{rest}");
    // Every line of a session, down to the debug dialogue, names its
    // connection: with two sessions interleaved, each line is still theirs.
    let ours = format!("peer=127.0.0.1:{client_port} local=127.0.0.1:{port}");
    for needle in [
        "C: line=MAIL FROM:<a@b.c>",
        "S: reply=250 2.1.0",
        "message accepted",
        "connection closed",
    ] {
        let line = rest
            .lines()
            .find(|l| l.contains(needle) && l.contains(&ours))
            .unwrap_or_else(|| panic!("no {needle:?} line with {ours}:\n{rest}"));
        assert!(line.contains("session="), "{line}");
    }
    for line in rest.lines().filter(|l| l.contains("maildoor::session")) {
        assert!(line.contains(&format!("local=127.0.0.1:{port}")), "{line}");
    }
    assert_eq!(common::files(&dir.path().join("md/new")).len(), 1);
    assert!(common::files(&dir.path().join("md/tmp")).is_empty());
}

#[test]
fn gen_cert_writes_a_usable_pair() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let run = Command::new(BIN)
        .args(["gen-cert", "--hostname", "mx.example.org", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let cert = std::fs::read_to_string(out.join("cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let key = out.join("key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    maildoor::tls::load_config(&out.join("cert.pem"), &key).unwrap();
    // An existing pair is kept unless --force; a bad name is refused.
    let again = |extra: &[&str]| {
        Command::new(BIN)
            .args(["gen-cert", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let kept = again(&["--hostname", "other.example.org"]);
    assert_eq!(kept.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&kept.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(out.join("cert.pem")).unwrap(), cert);
    assert!(again(&["--hostname", "other.example.org", "--force"])
        .status
        .success());
    assert_ne!(std::fs::read_to_string(out.join("cert.pem")).unwrap(), cert);
    for bad in ["", "bad name/x"] {
        assert_eq!(
            again(&["--hostname", bad, "--force"]).status.code(),
            Some(2),
            "{bad:?}"
        );
    }
    // The global flags clap lists under it, and server flags before it,
    // are refused, not ignored.
    for (before, after) in [
        (&[][..], &["--maildir", "/nonexistent"][..]),
        (&[], &["--config", "/nonexistent.toml"]),
        (&["--listen", "127.0.0.1:2525"], &[]),
    ] {
        let ignored = Command::new(BIN)
            .args(before)
            .args(["gen-cert", "--hostname", "mx.example.org", "--force", "--out"])
            .arg(&out)
            .args(after)
            .output()
            .unwrap();
        assert_eq!(ignored.status.code(), Some(2), "{before:?} {after:?}");
        assert!(String::from_utf8_lossy(&ignored.stderr).contains("do not apply"));
    }
    // A bad pair stops the server before it binds, naming the key.
    let port = free_port();
    let bad = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--maildir"])
        .arg(dir.path().join("md"))
        .env("MAILDOOR_TLS_CERT", &key)
        .env("MAILDOOR_TLS_KEY", &key)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tls_cert"));
    assert!(
        !dir.path().join("md").exists(),
        "nothing created before TLS is checked"
    );
    // The pair given by flags: EHLO offers STARTTLS.
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--tls-cert"])
        .arg(out.join("cert.pem"))
        .arg("--tls-key")
        .arg(&key)
        .arg("--maildir")
        .arg(dir.path().join("md"))
        .env_remove("MAILDOOR_TLS_CERT")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = connect_when_up(port);
    assert_eq!(c.reply().code, 220);
    let ehlo = c.cmd("EHLO client.test");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ehlo.text.contains("STARTTLS"), "{}", ehlo.text);
    // One without the other is refused by the argument parser.
    let half = Command::new(BIN)
        .arg("--tls-cert")
        .arg(out.join("cert.pem"))
        .output()
        .unwrap();
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"));
}

#[test]
fn a_second_signal_ends_the_grace_period_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--maildir"])
        .arg(dir.path().join("md"))
        // Far longer than this test waits below.
        .env("MAILDOOR_SHUTDOWN_GRACE", "600")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut child = Server(child);
    let mut c = connect_when_up(port);
    c.open_data();
    c.send(b"Subject: cut short\r\n\r\nthe first half, and then nothing\r\n");
    let kill = || {
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    };
    kill();
    // The first signal: the session in DATA may go on, so nothing comes;
    // the listener closes. Two signals sent at once can merge into one
    // (POSIX signals do not queue): wait for the first to be taken.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after SIGTERM"
    );
    std::thread::sleep(Duration::from_millis(100));
    kill();
    let r = c.reply();
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    let status = exited(&mut child.0);
    assert!(status.success(), "{status:?}");
    assert!(common::files(&dir.path().join("md/new")).is_empty());
    assert!(common::files(&dir.path().join("md/tmp")).is_empty());
}

/// Reads `log` up to the line saying the server listens.
fn until_listening(log: &mut impl BufRead) -> String {
    let mut seen = String::new();
    for _ in 0..20 {
        let mut line = String::new();
        if log.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("listening on") {
            return seen;
        }
    }
    panic!("no start-up line: {seen}");
}

/// SIGTERM, then the exit status within 10 s.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    exited(child)
}

/// The exit status, once the process has ended (within 10 s).
fn exited(child: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("still running 10 s after it was told to stop");
}

#[test]
fn a_closed_log_pipe_costs_the_logs_not_the_sessions() {
    // As `maildoor ... 2>&1 | head -2`: stderr closes after start-up.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, mut log) = spawn_logged(&["--log-level", "debug"], &dir.path().join("md"));
    until_listening(&mut log);
    drop(log);
    let mut c = connect_when_up(port);
    let id = queue_id(&c.deliver("a@b.c", &["user@localhost"], b"Subject: piped\r\n\r\nhi"));
    assert!(!id.is_empty());
    let status = terminate(&mut child.0);
    assert!(status.success(), "{status:?}");
    assert_eq!(common::files(&dir.path().join("md/new")).len(), 1);
}

#[test]
fn session_lines_name_their_connection_at_any_level() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--log-level", "warn,maildoor::session=debug"];
    let (mut child, port, mut log) = spawn_logged(&args, &dir.path().join("md"));
    let mut c = connect_when_up(port);
    c.deliver("a@b.c", &["user@localhost"], b"Subject: levels\r\n\r\nhi");
    let client = c.stream.local_addr().unwrap();
    drop(c);
    assert!(terminate(&mut child.0).success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
    let dialogue: Vec<&str> = rest
        .lines()
        .filter(|l| l.contains("maildoor::session: C:"))
        .collect();
    assert!(!dialogue.is_empty(), "{rest}");
    for line in dialogue {
        assert!(line.contains(&format!("peer={client}")), "{line}");
    }
}

#[test]
fn sighup_is_logged_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, mut log) = spawn_logged(&[], &dir.path().join("md"));
    until_listening(&mut log);
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut line = String::new();
    for _ in 0..20 {
        line.clear();
        if log.read_line(&mut line).unwrap() == 0 || line.contains("SIGHUP") {
            break;
        }
    }
    assert!(line.contains("SIGHUP received"), "{line}");
    let mut c = connect_when_up(port);
    assert_eq!(c.reply().code, 220);
    drop(c);
    assert!(terminate(&mut child.0).success());
}
