//! `delivery = "per-recipient"`: each local recipient's own Maildir at
//! `maildir/<domain>/<local-part>/`, one hard-linked file that names no
//! recipient (Bcc privacy), and unsafe mailbox names refused at RCPT.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{files, split_trace, TestServer};

fn server() -> TestServer {
    TestServer::with(|s| {
        s.per_recipient = true;
        s.recipient_delimiter = Some('+');
    })
}

#[test]
fn each_recipient_gets_a_private_copy() {
    let srv = server();
    let r = srv.client().deliver(
        "sender@example.net",
        &[
            "alice@localhost",
            "Bob@Example.ORG",
            "bob+news@example.org",
            "postmaster",
        ],
        b"Subject: to several\r\nTo: alice@localhost\r\n\r\nhello all",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let root = srv.maildir();
    let boxes = ["localhost/alice", "example.org/bob", "localhost/postmaster"];
    let mut inodes = Vec::new();
    let mut bodies = Vec::new();
    for b in boxes {
        let new = files(&root.join(b).join("new"));
        assert_eq!(new.len(), 1, "{b}: {new:?}");
        for sub in ["tmp", "cur"] {
            assert!(root.join(b).join(sub).is_dir(), "{b}/{sub}");
        }
        let meta = std::fs::metadata(&new[0]).unwrap();
        let name = new[0].file_name().unwrap().to_string_lossy().into_owned();
        let size: u64 = name.rsplit("S=").next().unwrap().parse().unwrap();
        assert_eq!(size, meta.len(), "{name}");
        inodes.push(meta.ino());
        bodies.push(std::fs::read(&new[0]).unwrap());
    }
    // One write, hard-linked: same inode everywhere, and no recipient
    // named in the trace headers.
    assert!(inodes.iter().all(|&i| i == inodes[0]));
    let (trace, body) = split_trace(&bodies[0]);
    assert!(
        !trace.contains("alice") && !trace.contains("bob") && !trace.contains("postmaster"),
        "{trace}"
    );
    assert!(!trace.contains(" for <"), "{trace}");
    assert_eq!(body, b"Subject: to several\nTo: alice@localhost\n\nhello all\n");
    // The shared Maildir itself stays empty.
    assert!(srv.files("new").is_empty());
    assert!(srv.files("tmp").is_empty());
    // The reader finds bob+news where the server put it, given the same
    // recipient delimiter.
    let count = |delimiter: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_maildoor"))
            .args(["mailbox", "--user", "Bob+News@example.org", "count", "--maildir"])
            .arg(&root)
            .env("MAILDOOR_RECIPIENT_DELIMITER", delimiter)
            .output()
            .expect("run maildoor mailbox");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(count("+"), "1 total, 1 new, 0 seen\n");
    assert_eq!(count(""), "0 total, 0 new, 0 seen\n");
    // Without --user, the reader says where per-recipient mail is.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maildoor"))
        .args(["mailbox", "count", "--maildir"])
        .arg(&root)
        .env("MAILDOOR_DELIVERY", "per-recipient")
        .output()
        .expect("run maildoor mailbox");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("delivery is per-recipient") && err.contains("--user"),
        "{err}"
    );
}

#[test]
fn unsafe_local_parts_get_553() {
    let srv = server();
    let mut c = srv.client();
    c.reply();
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@b.c> SMTPUTF8");
    let overlong = format!("RCPT TO:<{}@localhost>", "a".repeat(65));
    for rcpt in [
        "RCPT TO:<\"../../etc\"@localhost>",
        "RCPT TO:<\"..\"@localhost>",
        "RCPT TO:<\"a/b\"@localhost>",
        "RCPT TO:<%2e%2e@localhost>",
        "RCPT TO:<\".hidden\"@localhost>",
        "RCPT TO:<\"with space\"@localhost>",
        overlong.as_str(),
    ] {
        let r = c.cmd(rcpt);
        assert!(r.text.starts_with("553 5.1.3"), "{rcpt}: {}", r.text);
    }
    // Control characters never get that far: the parser refuses the line.
    assert!(c
        .cmd("RCPT TO:<\"a\u{1}b\"@localhost>")
        .text
        .starts_with("501 5.5.4"));
    // UTF-8 local parts (with SMTPUTF8) are fine and case-folded.
    assert_eq!(c.cmd("RCPT TO:<Jürgen@localhost>").code, 250);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(b"Subject: utf8\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(files(&srv.maildir().join("localhost/jürgen/new")).len(), 1);
    // Nothing escaped the Maildir root.
    assert!(!srv.dir.path().join("etc").exists());
}

#[test]
fn existing_mailboxes_only_accepts_known_recipients_and_creates_nothing() {
    let srv = TestServer::with(|s| {
        s.per_recipient = true;
        s.existing_mailboxes_only = true;
    });
    let alice = srv.maildir().join("localhost/alice");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(alice.join(sub)).unwrap();
    }
    let mut c = srv.client();
    c.reply();
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@b.c>");
    let r = c.cmd("RCPT TO:<bob@localhost>");
    assert!(r.text.starts_with("550 5.1.1"), "{}", r.text);
    assert_eq!(c.cmd("RCPT TO:<alice@localhost>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<postmaster>").code, 250);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(b"Subject: known\r\n\r\nhi\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(files(&alice.join("new")).len(), 1);
    assert_eq!(files(&srv.maildir().join("localhost/postmaster/new")).len(), 1);
    assert!(!srv.maildir().join("localhost/bob").exists());
}
