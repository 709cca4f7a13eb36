//! `maildoor mailbox` as a user runs it, on a Maildir filled by real SMTP
//! deliveries (a server from the library on 127.0.0.1 port 0), and the
//! same Maildir read by other programs: Python's `mailbox.Maildir` and
//! mblaze. A missing program is a skip that says so, or a failure when
//! MAILDOOR_REQUIRE_CLIENTS=1 (as in CI).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{crlf, have_tool, queue_id, TestServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_maildoor");

/// A MIME message: encoded-word headers, a quoted-printable UTF-8 body
/// with a soft line break, and a base64 attachment of the bytes 0..200.
const MIME: &str = "From: =?UTF-8?Q?J=C3=BCrgen_Gr=C3=BC=C3=9Fe?= <juergen@example.net>
To: =?UTF-8?B?w5xtbGF1dA==?= <bob@localhost>
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4g4oCTIFByw7xmdW5nIOKckw==?=
Date: Wed, 25 Nov 2026 12:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"=_b1\"

--=_b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln! Diese Zeile ist lang und wird mit einem weic=
hen Zeilenumbruch fortgesetzt.
Preis: 5 =E2=82=AC
--=_b1
Content-Type: application/octet-stream; name=\"daten.bin\"
Content-Disposition: attachment; filename=\"daten.bin\"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4
OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx
cnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmq
q6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsc=
--=_b1--
";
const MIME_SUBJECT: &str = "Grüße aus Köln – Prüfung ✓";
const MIME_FROM: &str = "Jürgen Grüße <juergen@example.net>";
const MIME_TEXT: &str =
    "Grüße aus Köln! Diese Zeile ist lang und wird mit einem weichen Zeilenumbruch fortgesetzt.\nPreis: 5 €";

/// Runs `maildoor mailbox ARGS --maildir MD`.
fn mailbox(md: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("mailbox")
        .args(args)
        .arg("--maildir")
        .arg(md)
        .output()
        .expect("run maildoor")
}

/// Stdout of a run that must succeed, stderr free of panics.
fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Stderr of a run that must fail with status 1 and no panic.
fn fails(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.starts_with("maildoor: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Delivers `body` (LF endings) from alice to `rcpts`; returns the queue id.
fn deliver(srv: &TestServer, rcpts: &[&str], body: &str) -> String {
    let n = srv.files("new").len();
    let id = queue_id(
        &srv.client()
            .deliver("alice@example.net", rcpts, crlf(body).as_bytes()),
    );
    srv.wait_files("new", n + 1);
    id
}

/// A server with three messages: MIME for bob, a plain one for bob and
/// carol (the envelope comment), and one with Cc: dan. Returns the ids.
fn three() -> (TestServer, Vec<String>) {
    let srv = TestServer::start();
    let a = deliver(&srv, &["bob@localhost"], MIME);
    let b = deliver(
        &srv,
        &["bob@localhost", "carol@localhost"],
        "Subject: plain\n\nhello\n",
    );
    let c = deliver(
        &srv,
        &["postmaster@localhost"],
        "To: x@example.org\nCc: Dan <dan@localhost>\nSubject: cc\n\nhi\n",
    );
    (srv, vec![a, b, c])
}

#[test]
fn list_shows_decoded_rows_oldest_first() {
    let (srv, ids) = three();
    let text = ok(mailbox(&srv.maildir(), &["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains(MIME_SUBJECT) && lines[0].contains("Jürgen Grüße"),
        "{text}"
    );
    assert!(lines[0].contains("2026-11-25 11:00"), "Date: in UTC: {text}");
    assert!(lines[1].contains("plain") && lines[2].contains("cc"), "{text}");
    assert!(lines.iter().all(|l| l.ends_with(" new")), "{text}");

    let rows = json_lines(&ok(mailbox(&srv.maildir(), &["list", "--json"])));
    let got: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids);
    assert_eq!(rows[0]["subject"], MIME_SUBJECT);
    assert_eq!(rows[0]["from"], MIME_FROM);
    assert_eq!(rows[0]["to"], "Ümlaut <bob@localhost>");
    assert_eq!(rows[0]["date_unix"], 1_795_604_400);
    assert_eq!(
        rows[1]["envelope_to"],
        serde_json::json!(["bob@localhost", "carol@localhost"])
    );
    // Match rows to files by queue id: file names sort by text, which is
    // not delivery order when the microsecond field changes width.
    for row in &rows {
        let path = srv.file_of("new", row["id"].as_str().unwrap());
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(row["size"], size);
        assert_eq!(row["status"], "new");
        assert_eq!(row["valid"], true);
        assert!(lines
            .iter()
            .any(|l| l.starts_with(row["short"].as_str().unwrap())));
    }
}

#[test]
fn user_filter_and_per_recipient_maildir() {
    let (srv, ids) = three();
    let md = srv.maildir();
    let ids_for = |user: &str| -> Vec<String> {
        let rows = json_lines(&ok(mailbox(&md, &["list", "--json", "--user", user])));
        rows.iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids_for("bob@localhost"), &ids[..2]);
    assert_eq!(ids_for("<Carol@Localhost>"), &ids[1..2]);
    assert_eq!(ids_for("dan@localhost"), &ids[2..]);
    assert!(ids_for("nobody@localhost").is_empty());
    assert_eq!(
        ok(mailbox(&md, &["count", "--user", "bob@localhost"])),
        "2 total, 2 new, 0 seen\n"
    );
    // show and delete filter too: another user's message is not theirs
    // to read or delete.
    let dans = &ids[2];
    for cmd in ["show", "delete"] {
        let err = fails(mailbox(&md, &[cmd, "--user", "bob@localhost", dans]));
        assert!(err.contains("no message"), "{cmd}: {err}");
    }
    assert_eq!(srv.files("new").len(), 3);
    let shown = ok(mailbox(&md, &["show", "--peek", "--user", "dan@localhost", dans]));
    assert!(shown.contains("Subject: cc"), "{shown}");
    // <postmaster@localhost> is the first domain's postmaster.
    assert_eq!(ids_for("postmaster"), &ids[2..]);

    // Per-recipient layout: maildir/<domain>/<local-part>/ is read instead.
    let own = md.join("localhost").join("bob");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(own.join(sub)).unwrap();
    }
    std::fs::write(
        own.join("new/1700000000.M1P1Q1.mx.test,S=22"),
        "Subject: own maildir\n\n",
    )
    .unwrap();
    let rows = json_lines(&ok(mailbox(&md, &["list", "--json", "--user", "bob@localhost"])));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["subject"], "own maildir");
    ok(mailbox(
        &md,
        &["show", "--user", "bob@localhost", "1700000000.M1P1Q1"],
    ));
    assert!(own.join("cur/1700000000.M1P1Q1.mx.test,S=22:2,S").is_file());
    let err = fails(mailbox(&md, &["list", "--user", "../../etc@x"]));
    assert!(err.contains("not a usable address"), "{err}");
}

#[test]
fn show_decodes_and_marks_seen_unless_peek() {
    let (srv, ids) = three();
    let md = srv.maildir();
    let file = srv.file_of("new", &ids[0]);
    let stored = std::fs::read(&file).unwrap();

    let shown = ok(mailbox(&md, &["show", "--peek", &ids[0]]));
    assert!(
        shown.starts_with(&format!(
            "Date: Wed, 25 Nov 2026 12:00:00 +0100\nFrom: {MIME_FROM}\nTo: Ümlaut <bob@localhost>\nSubject: {MIME_SUBJECT}\n\n{MIME_TEXT}\n"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("Attachments:\n  1. daten.bin  application/octet-stream  200 bytes\n"),
        "{shown}"
    );
    assert_eq!(srv.files("new").len(), 3, "--peek leaves it in new/");

    let raw = mailbox(&md, &["show", "--raw", "--peek", &ids[0]]);
    assert!(raw.status.success());
    assert_eq!(raw.stdout, stored, "--raw is the stored bytes");

    let headers = ok(mailbox(&md, &["show", "--headers", "--peek", &ids[0]]));
    assert!(
        headers
            .starts_with("Return-Path: <alice@example.net>\nReceived: from client.test ([127.0.0.1]) (port "),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("\nSubject: {MIME_SUBJECT}\n")),
        "{headers}"
    );
    assert!(
        headers.contains("\nContent-Type: multipart/mixed; boundary=\"=_b1\"\n"),
        "{headers}"
    );

    // By a unique prefix of the queue id: shown, then moved to cur/ with :2,S.
    let prefix = &ids[0][..ids[0].len() - 1];
    ok(mailbox(&md, &["show", prefix]));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(srv.files("cur"), [md.join("cur").join(format!("{name}:2,S"))]);
    assert_eq!(std::fs::read(&srv.files("cur")[0]).unwrap(), stored);
    // Showing it again (now in cur/) changes nothing; the short id works.
    let rows = json_lines(&ok(mailbox(&md, &["list", "--json"])));
    assert_eq!(rows[0]["status"], "seen");
    assert_eq!(rows[0]["folder"], "cur");
    ok(mailbox(&md, &["show", rows[0]["short"].as_str().unwrap()]));
    assert_eq!(srv.files("cur").len(), 1);
    assert_eq!(ok(mailbox(&md, &["count"])), "3 total, 2 new, 1 seen\n");
    let count: Value = serde_json::from_str(&ok(mailbox(&md, &["count", "--json"]))).unwrap();
    assert_eq!(
        count,
        serde_json::json!({"total": 3, "new": 2, "seen": 1, "old": 0})
    );
}

/// A server holding only `body` (delivered to bob), the message's id, and
/// what `show --peek` prints for it.
fn show_one(body: &str) -> (TestServer, String, String) {
    let srv = TestServer::start();
    let id = deliver(&srv, &["bob@localhost"], body);
    let shown = ok(mailbox(&srv.maildir(), &["show", "--peek", &id]));
    (srv, id, shown)
}

#[test]
fn show_prints_an_undecodable_part_as_stored_once() {
    let (_srv, _, shown) = show_one(
        "Subject: bad base64\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64@@@\n",
    );
    let (head, body) = shown.split_once("\n\n").unwrap();
    assert_eq!(head, "Subject: bad base64");
    assert!(
        body.starts_with("[this part could not be decoded (")
            && body.trim_end().ends_with("; shown as stored]\n!!!not base64@@@"),
        "{shown}"
    );
    assert!(
        !shown.contains("Return-Path") && !shown.contains("Received"),
        "{shown}"
    );
}

#[test]
fn delete_and_count() {
    let (srv, ids) = three();
    let md = srv.maildir();
    assert_eq!(ok(mailbox(&md, &["count"])), "3 total, 3 new, 0 seen\n");
    let out = ok(mailbox(&md, &["delete", &ids[1]]));
    assert!(out.starts_with(&format!("deleted {}", ids[1])), "{out}");
    assert_eq!(ok(mailbox(&md, &["count"])), "2 total, 2 new, 0 seen\n");
    let err = fails(mailbox(&md, &["show", &ids[1]]));
    assert!(err.contains("no message with id"), "{err}");
    let err = fails(mailbox(&md, &["delete", &ids[1]]));
    assert!(err.contains(&ids[1]), "{err}");
    // A message another reader moved to cur/ without marking it seen is
    // "old", as `list` says, and counted so.
    let name = std::fs::read_dir(md.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .find(|n| n.to_string_lossy().starts_with(&ids[0]))
        .unwrap();
    let old = format!("{}:2,", name.to_string_lossy());
    std::fs::rename(md.join("new").join(&name), md.join("cur").join(old)).unwrap();
    assert_eq!(ok(mailbox(&md, &["count"])), "2 total, 1 new, 0 seen, 1 old\n");
    let json: Value = serde_json::from_str(&ok(mailbox(&md, &["count", "--json"]))).unwrap();
    assert_eq!(json["old"], 1);
}

#[test]
fn bad_input_is_a_clear_error() {
    let (srv, ids) = three();
    let md = srv.maildir();
    let err = fails(mailbox(&md, &["show", "1"]));
    assert!(
        err.contains("ambiguous") && err.matches(".M").count() >= 3,
        "{err}"
    );
    assert!(fails(mailbox(&md, &["show", "zzzz"])).contains("no message with id \"zzzz\""));
    let not = srv.dir.path().join("not-a-maildir");
    std::fs::create_dir_all(not.join("new")).unwrap();
    for args in [
        &["list"][..],
        &["count"],
        &["show", "x"],
        &["delete", "x"],
        &["watch"],
    ] {
        let err = fails(mailbox(&not, args));
        assert!(err.contains("is not a Maildir"), "{args:?}: {err}");
    }
    assert!(fails(mailbox(&srv.dir.path().join("missing"), &["list"])).contains("missing does not exist"));

    // A file that is not a message is listed with a warning; dot files and
    // tmp/ are ignored.
    std::fs::write(md.join("new/1700000000.M1P1Q1.junk"), b"\x00\x01 not mail").unwrap();
    std::fs::write(md.join("new/.hidden"), b"Subject: hidden\n\n").unwrap();
    std::fs::write(md.join("tmp/1800000000.M1P1Q1.tmp"), b"Subject: tmp\n\n").unwrap();
    let out = mailbox(&md, &["list"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = ok(out);
    assert!(
        err.contains("warning") && err.contains("1700000000.M1P1Q1.junk"),
        "{err}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.lines().next().unwrap().contains("not a valid message"),
        "{text}"
    );
    assert!(!text.contains("hidden") && !text.contains("tmp"), "{text}");
    let err = fails(mailbox(&md, &["show", "1700000000.M1P1Q1"]));
    assert!(err.contains("not a valid message"), "{err}");
    let raw = mailbox(&md, &["show", "--raw", "--peek", "1700000000.M1P1Q1"]);
    assert_eq!(raw.stdout, b"\x00\x01 not mail");
    ok(mailbox(&md, &["delete", "1700000000.M1P1Q1"]));
    assert_eq!(ok(mailbox(&md, &["count"])), "3 total, 3 new, 0 seen\n");

    // Shown, but the move to cur/ fails (a directory has its name): the
    // message is printed, and the error says what did not happen.
    let first = md.join("new").read_dir().unwrap().map(|e| e.unwrap().file_name());
    let first = first
        .map(|n| n.to_string_lossy().into_owned())
        .find(|n| n.starts_with(&ids[0]))
        .unwrap();
    std::fs::create_dir(md.join("cur").join(format!("{first}:2,S"))).unwrap();
    let out = mailbox(&md, &["show", &ids[0]]);
    let err = fails(out.clone());
    assert!(err.contains("shown but could not be marked seen"), "{err}");
    assert!(!out.stdout.is_empty());
}

/// Lines of a child's pipe, through a channel, so reads can time out.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `maildoor mailbox watch`, killed when dropped, so a failing
/// test leaves none behind.
struct Watching(Child);

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `maildoor mailbox watch ARGS --maildir MD`, with `env` set; the child
/// and its stdout and stderr lines.
fn spawn_watch(
    md: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Watching, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["mailbox", "watch"])
        .args(args)
        .arg("--maildir")
        .arg(md)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    (Watching(child), out, err)
}

/// Stops a watch with SIGINT; it must exit with status 0.
fn interrupt(mut watching: Watching) {
    let child = &mut watching.0;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exit = exit.expect("watch stops on SIGINT");
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn watch_prints_arrivals_and_stops_on_sigint() {
    let srv = TestServer::start();
    deliver(&srv, &["bob@localhost"], "Subject: before\n\nold\n");
    let (child, out, err) = spawn_watch(&srv.maildir(), &[], &[]);
    let ready = err.recv_timeout(Duration::from_secs(20)).expect("watch starts");
    assert!(ready.starts_with("watching "), "{ready}");
    let id = deliver(&srv, &["bob@localhost"], MIME);
    let line = out
        .recv_timeout(Duration::from_secs(20))
        .expect("a line for the new message");
    assert!(line.contains(MIME_SUBJECT) && line.ends_with(" new"), "{line}");
    let id2 = deliver(&srv, &["carol@localhost"], "Subject: second\n\nx\n");
    let line2 = out.recv_timeout(Duration::from_secs(20)).expect("a second line");
    assert!(line2.contains("second"), "{line2}");
    assert!(!id.is_empty() && !id2.is_empty());
    // One another reader moves to cur/ at once, before watch looks at
    // new/ again, is still reported, and only once.
    let id3 = deliver(&srv, &["carol@localhost"], "Subject: third\n\nx\n");
    let md = srv.maildir();
    let name = std::fs::read_dir(md.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&id3))
        .expect("delivered into new/");
    std::fs::rename(
        md.join("new").join(&name),
        md.join("cur").join(format!("{name}:2,S")),
    )
    .unwrap();
    let line3 = out.recv_timeout(Duration::from_secs(20)).expect("a third line");
    assert!(line3.contains("third"), "{line3}");

    interrupt(child);
    let rest: Vec<String> = out.try_iter().collect();
    assert!(
        rest.iter().all(|l| !l.contains("before") && !l.contains("third")),
        "old mail is not reported, nor new mail twice: {rest:?}"
    );
}

/// With per-recipient delivery, `watch --user` for a mailbox that does not
/// exist yet waits for it where the server will make it (the local part
/// cut at the delimiter), and reports the message that creates it.
#[test]
fn watch_user_waits_for_a_per_recipient_maildir_to_be_created() {
    let srv = TestServer::with(|s| {
        s.per_recipient = true;
        s.recipient_delimiter = Some('+');
    });
    let md = srv.maildir();
    let own = md.join("localhost").join("newguy");
    let env = [
        ("MAILDOOR_DELIVERY", "per-recipient"),
        ("MAILDOOR_RECIPIENT_DELIMITER", "+"),
    ];
    let (child, out, err) = spawn_watch(&md, &["--user", "NewGuy@localhost", "--json"], &env);
    let waiting = err.recv_timeout(Duration::from_secs(20)).expect("watch starts");
    assert_eq!(
        waiting,
        format!("waiting for {} to be created (Ctrl-C to stop)", own.display())
    );
    let send = |to: &str, subject: &str| {
        let body = format!("Subject: {subject}\r\n\r\nhi\r\n");
        let r = srv.client().deliver("alice@example.net", &[to], body.as_bytes());
        assert_eq!(r.code, 250, "{}", r.text);
    };
    let next_subject = || {
        let line = out.recv_timeout(Duration::from_secs(20)).expect("a message");
        serde_json::from_str::<Value>(&line).unwrap()["subject"].clone()
    };
    send("other@localhost", "not for newguy");
    send("newguy+tag@localhost", "first");
    assert_eq!(next_subject(), "first");
    let watching = err.recv_timeout(Duration::from_secs(20)).expect("watching line");
    assert_eq!(
        watching,
        format!("watching {} (Ctrl-C to stop)", own.join("new").display())
    );
    send("newguy@localhost", "second");
    assert_eq!(next_subject(), "second");
    interrupt(child);
    assert!(out.try_iter().all(|l| !l.contains("not for newguy")));
    // A domain the server does not serve would wait forever: it says so.
    let (child, _out, err) = spawn_watch(&md, &["--user", "newguy@localhost.invalid"], &env);
    let warning = err.recv_timeout(Duration::from_secs(20)).expect("a warning");
    assert!(
        warning.contains("localhost.invalid is not one of the server's domains (localhost"),
        "{warning}"
    );
    interrupt(child);
}

/// Fixtures for the real readers: MIME sent with swaks --data, and a
/// message swaks builds itself (--header with encoded words, --body,
/// --attach, which swaks base64-encodes). Without swaks the MIME message
/// goes through the test client and the second one is left out.
fn real_fixtures(srv: &TestServer) -> usize {
    if !have_tool("swaks") {
        deliver(srv, &["bob@localhost"], MIME);
        return 1;
    }
    let data = srv.dir.path().join("mime.eml");
    std::fs::write(&data, crlf(MIME.trim_end_matches('\n'))).unwrap();
    let notes = srv.dir.path().join("notes.txt");
    std::fs::write(&notes, "Notizen: Äpfel\n").unwrap();
    let server = srv.addr.to_string();
    let swaks = |extra: &[&str], files: &[&PathBuf]| {
        let out = Command::new("swaks")
            .args([
                "--server",
                &server,
                "--from",
                "alice@example.net",
                "--to",
                "bob@localhost",
            ])
            .args(["--helo", "swaks.test", "--timeout", "20"])
            .args(extra)
            .args(files.iter().map(|p| p.as_os_str()))
            .output()
            .expect("run swaks");
        assert!(
            out.status.success(),
            "swaks: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    swaks(&["--data"], &[&data]);
    srv.wait_files("new", 1);
    swaks(
        &[
            "--header",
            "Subject: =?UTF-8?Q?Caf=C3=A9_=E2=98=95_ready?=",
            "--header",
            "From: =?UTF-8?B?w4lsb2RpZQ==?= <elodie@example.net>",
            "--body",
            "Plain body from swaks",
            "--attach-type",
            "text/plain",
            "--attach",
        ],
        &[&notes],
    );
    srv.wait_files("new", 2);
    2
}

/// What every reader must agree on: (subject, from, text, attachments as
/// (name, type, size)).
type Seen = (String, String, String, Vec<(String, String, u64)>);

fn expected(n: usize) -> Vec<Seen> {
    let mut v = vec![(
        MIME_SUBJECT.to_string(),
        MIME_FROM.to_string(),
        MIME_TEXT.to_string(),
        vec![("daten.bin".into(), "application/octet-stream".into(), 200)],
    )];
    if n == 2 {
        v.push((
            "Café ☕ ready".into(),
            "Élodie <elodie@example.net>".into(),
            "Plain body from swaks".into(),
            vec![("notes.txt".into(), "text/plain".into(), 16)],
        ));
    }
    v
}

/// What maildoor reads: list --json for the headers, show --peek for the
/// text and attachment lines.
fn maildoor_reads(md: &Path) -> Vec<Seen> {
    let rows = json_lines(&ok(mailbox(md, &["list", "--json"])));
    rows.iter()
        .map(|r| {
            let shown = ok(mailbox(md, &["show", "--peek", r["id"].as_str().unwrap()]));
            let body = shown.split_once("\n\n").map_or("", |(_, b)| b);
            let (text, atts) = body.split_once("\n\nAttachments:\n").unwrap_or((body, ""));
            let atts = atts
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.trim().split_once(". ").unwrap().1.split("  ").collect();
                    (
                        f[0].to_string(),
                        f[1].to_string(),
                        f[2].trim_end_matches(" bytes").parse().unwrap(),
                    )
                })
                .collect();
            (
                r["subject"].as_str().unwrap().to_string(),
                r["from"].as_str().unwrap().to_string(),
                text.trim_end().to_string(),
                atts,
            )
        })
        .collect()
}

#[test]
fn python_mailbox_reads_what_maildoor_reads() {
    if !have_tool("python3") {
        return;
    }
    let srv = TestServer::start();
    let n = real_fixtures(&srv);
    let md = srv.maildir();
    // Mark the first one seen, so Python sees a cur/ name with :2,S too.
    let first = json_lines(&ok(mailbox(&md, &["list", "--json"])))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(mailbox(&md, &["show", &first]));
    let script = r#"
import json, mailbox, sys
from email import policy
from email.parser import BytesParser
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
rows = []
for key in box.keys():
    meta = box.get_message(key)
    msg = BytesParser(policy=policy.default).parsebytes(box.get_bytes(key))
    body = msg.get_body(preferencelist=("plain",))
    atts = [[a.get_filename(), a.get_content_type(), len(a.get_payload(decode=True))]
            for a in msg.iter_attachments()]
    rows.append({"key": key, "subdir": meta.get_subdir(), "flags": meta.get_flags(),
                 "subject": str(msg["subject"]), "from": str(msg["from"]),
                 "text": body.get_content().rstrip(), "atts": atts, "defects": len(msg.defects)})
print(json.dumps(rows))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&md)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ours = json_lines(&ok(mailbox(&md, &["list", "--json"])));
    assert_eq!(rows.len(), n);
    // Python's key is the unique part of the file name; order as maildoor's.
    let unique = |r: &Value| r["file"].as_str().unwrap().split(':').next().unwrap().to_string();
    rows.sort_by_key(|r| ours.iter().position(|o| unique(o) == r["key"].as_str().unwrap()));
    let python: Vec<Seen> = rows
        .iter()
        .map(|r| {
            let atts = r["atts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a[0].as_str().unwrap().into(),
                        a[1].as_str().unwrap().into(),
                        a[2].as_u64().unwrap(),
                    )
                })
                .collect();
            (
                r["subject"].as_str().unwrap().into(),
                r["from"].as_str().unwrap().into(),
                r["text"].as_str().unwrap().into(),
                atts,
            )
        })
        .collect();
    assert_eq!(python, expected(n));
    assert_eq!(maildoor_reads(&md), expected(n));
    assert_eq!(
        (rows[0]["subdir"].as_str(), rows[0]["flags"].as_str()),
        (Some("cur"), Some("S"))
    );
    assert!(rows.iter().all(|r| r["defects"] == 0), "{rows:?}");
    if n == 2 {
        assert_eq!(
            (rows[1]["subdir"].as_str(), rows[1]["flags"].as_str()),
            (Some("new"), Some(""))
        );
    }
}

/// Runs an mblaze tool with its profile in a temporary directory.
fn mblaze(home: &Path, tool: &str, args: &[&str], files: &[&Path]) -> String {
    let out = Command::new(tool)
        .args(args)
        .args(files)
        .env("MBLAZE", home)
        .env("HOME", home)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn mblaze_lists_and_shows_what_maildoor_reads() {
    if !have_tool("mlist") || !have_tool("mshow") || !have_tool("mscan") {
        return;
    }
    let srv = TestServer::start();
    let n = real_fixtures(&srv);
    let md = srv.maildir();
    let home = srv.dir.path().join("mblaze");
    std::fs::create_dir_all(&home).unwrap();
    let ours = json_lines(&ok(mailbox(&md, &["list", "--json"])));

    // mlist finds the same files maildoor lists, new and then seen.
    let listed = mblaze(&home, "mlist", &[], &[&md]);
    assert_eq!(listed.lines().count(), n, "{listed}");
    for row in &ours {
        assert!(listed.contains(row["file"].as_str().unwrap()), "{listed}");
    }
    let first = ours[0]["id"].as_str().unwrap();
    ok(mailbox(&md, &["show", first]));
    let seen = mblaze(&home, "mlist", &["-S"], &[&md]);
    assert_eq!(seen.lines().count(), 1, "{seen}");
    assert!(seen.trim_end().ends_with(":2,S"), "{seen}");

    let mut files: Vec<PathBuf> = Vec::new();
    for row in json_lines(&ok(mailbox(&md, &["list", "--json"]))) {
        let sub = row["folder"].as_str().unwrap();
        files.push(md.join(sub).join(row["file"].as_str().unwrap()));
    }
    let mblaze_seen: Vec<Seen> = files
        .iter()
        .map(|f| {
            let scan = mblaze(&home, "mscan", &["-f", "%S|%f"], &[f]);
            let (subject, from) = scan.trim_end().split_once('|').unwrap();
            let parts = mblaze(&home, "mshow", &["-t"], &[f]);
            // mshow -N would inline every text part; take the text/plain
            // part that is not an attachment, decoded, with -O.
            let text_part = parts
                .lines()
                .find(|l| l.contains(": text/plain") && !l.contains("name=\""))
                .and_then(|l| l.split(':').next())
                .unwrap()
                .trim()
                .to_string();
            let text = mblaze(&home, "mshow", &["-O"], &[f, Path::new(&text_part)]);
            let text = text.trim_end().to_string();
            // "    3: application/octet-stream size=200 name=\"daten.bin\""
            let atts = parts
                .lines()
                .filter(|l| l.contains("name=\""))
                .map(|l| {
                    let (_, rest) = l.split_once(": ").unwrap();
                    let mut w = rest.split(' ');
                    let mime = w.next().unwrap().to_string();
                    let size = w.next().unwrap().trim_start_matches("size=").parse().unwrap();
                    let name = rest
                        .split_once("name=\"")
                        .unwrap()
                        .1
                        .trim_end_matches('"')
                        .to_string();
                    (name, mime, size)
                })
                .collect();
            (subject.trim().to_string(), from.trim().to_string(), text, atts)
        })
        .collect();
    // mscan's %f is the sender's display name only.
    let mut want = expected(n);
    for w in &mut want {
        w.1 = w.1.split(" <").next().unwrap().to_string();
    }
    assert_eq!(mblaze_seen, want);

    // The attachment mshow extracts is the bytes maildoor counted.
    let blob = Command::new("mshow")
        .args(["-O"])
        .arg(&files[0])
        .arg("3")
        .env("MBLAZE", &home)
        .output()
        .unwrap();
    assert_eq!(blob.stdout, (0u8..200).collect::<Vec<u8>>());
}

/// swaks-style mail: raw UTF-8 in a text/plain part that names no charset.
/// maildoor reads it as UTF-8, and so does mblaze's mshow.
#[test]
fn undeclared_utf8_text_reads_as_utf8_like_mshow() {
    let (srv, id, shown) = show_one(
        "From: Jürgen <j@example.net>\nSubject: Grüße\nContent-Type: text/plain\n\nGrüße aus Köln\n",
    );
    assert_eq!(
        shown.trim_end(),
        "From: Jürgen <j@example.net>\nSubject: Grüße\n\nGrüße aus Köln"
    );
    if !have_tool("mshow") {
        return;
    }
    let home = srv.dir.path().join("mblaze");
    std::fs::create_dir_all(&home).unwrap();
    let file = srv.file_of("new", &id);
    let theirs = mblaze(&home, "mshow", &[], &[&file]);
    let (_, text) = theirs.split_once(" ---\n").expect("mshow's part line");
    let (_, ours) = shown.split_once("\n\n").unwrap();
    assert_eq!(text.trim_end(), ours.trim_end());
}

/// Bonus reader: mutt in batch mode (through `script`, which gives it the
/// terminal it insists on) pipes each message, decoded, to a file. mutt
/// is not in CI's install list, so it is skipped when missing even with
/// MAILDOOR_REQUIRE_CLIENTS=1.
#[test]
fn mutt_reads_what_maildoor_reads() {
    let found = ["mutt", "script", "timeout"].iter().all(|p| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        eprintln!("SKIP: mutt (or script) not installed; this check is optional");
        return;
    }
    let srv = TestServer::start();
    let n = real_fixtures(&srv);
    let md = srv.maildir();
    let work = srv.dir.path().join("mutt");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("muttrc"),
        "set mbox_type=Maildir\nset folder=.\nset pipe_decode=yes\nset wait_key=no\nset mark_old=no\nset move=no\nset charset=utf-8\nset quit=yes\n",
    )
    .unwrap();
    let mut keys = String::from("<first-entry>");
    for i in 0..n {
        keys.push_str(&format!("<pipe-message>cat > out{i}.txt<enter><next-entry>"));
    }
    keys.push_str("<quit>");
    let mutt = format!("mutt -n -F muttrc -f {} -e 'push \"{keys}\"'", md.display());
    let out = Command::new("timeout")
        .args(["30", "script", "-qec", &mutt, "/dev/null"])
        .current_dir(&work)
        .env("HOME", &work)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "mutt via script: {:?}", out.status);
    let mut mutt_seen: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let text =
                std::fs::read_to_string(work.join(format!("out{i}.txt"))).expect("mutt piped the message");
            let (head, body) = text.split_once("\n\n").unwrap();
            let field = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_default()
                    .to_string()
            };
            // mutt shows the text part, then notes about parts it cannot show.
            let body = body.split("\n[-- ").next().unwrap_or_default();
            (field("Subject"), field("From"), body.trim_end().to_string())
        })
        .collect();
    mutt_seen.sort();
    let mut want: Vec<(String, String, String)> = maildoor_reads(&md)
        .into_iter()
        .map(|(s, f, t, _)| (s, f, t))
        .collect();
    want.sort();
    // mutt puts the text attachment inline after the body; compare the start.
    for (m, w) in mutt_seen.iter().zip(&want) {
        assert_eq!((&m.0, &m.1), (&w.0, &w.1));
        assert!(m.2.starts_with(&w.2), "mutt: {:?}\nmaildoor: {:?}", m.2, w.2);
    }
    assert_eq!(mutt_seen.len(), want.len());
    // mutt left the Maildir as it was: maildoor still lists everything new.
    let rows = json_lines(&ok(mailbox(&md, &["list", "--json"])));
    assert!(rows.iter().all(|r| r["status"] == "new"), "{rows:?}");
}
