//! Hostile input over real TCP: NUL and 8-bit bytes in commands, huge
//! arguments, floods of pipelined commands, garbage after QUIT and every
//! SMTP smuggling variant under both `bare_lf` settings. Each gets the
//! right reply and the session keeps its footing.

mod common;

use common::{split_trace, Client, TestServer};
use maildoor::config::BareLf;

/// Asserts that `r` starts with `prefix` (code and enhanced code).
fn expect(r: &common::Reply, prefix: &str) {
    assert!(r.text.starts_with(prefix), "want {prefix}, got {:?}", r.text);
}

/// Greeting and EHLO.
fn hello(c: &mut Client) {
    assert_eq!(c.reply().code, 220);
    assert_eq!(c.cmd("EHLO client.test").code, 250);
}

/// Sends a raw command line (CRLF added) and reads its reply.
fn raw(c: &mut Client, line: &[u8]) -> common::Reply {
    let mut bytes = line.to_vec();
    bytes.extend_from_slice(b"\r\n");
    c.send(&bytes);
    c.reply()
}

#[test]
fn nul_and_control_bytes_in_commands_get_501() {
    let srv = TestServer::with(|s| s.max_errors = 100);
    let mut c = srv.client();
    hello(&mut c);
    for line in [
        &b"NOOP\0"[..],
        b"\0",
        b"\0\0\0\0",
        b"EHLO a\0b.example",
        b"MAIL FROM:<a\0@example.org>",
        b"MAIL\0FROM:<a@example.org>",
        b"RSET\0",
        b"QUIT\0",
        b"VRFY \0root",
        // Bare CR inside a line (found by the command_parser fuzz target).
        b"VRFY a\rb",
        b"NOOP\rQUIT",
        b"EHLO x\x1b[2J",
    ] {
        expect(&raw(&mut c, line), "501 5.5.4");
        // The session keeps its footing after each one.
        expect(&c.cmd("NOOP"), "250 2.0.0");
    }
    // QUIT with a NUL was refused, not obeyed: a transaction still works.
    expect(&c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<u@localhost>"), "250 2.1.5");
}

#[test]
fn eight_bit_commands_without_smtputf8() {
    let srv = TestServer::with(|s| s.max_errors = 100);
    let mut c = srv.client();
    hello(&mut c);
    // Not UTF-8 at all (Latin-1 and stray bytes): a syntax error.
    for line in [
        &b"MAIL FROM:<j\xf6rg@example.org>"[..],
        b"EHLO caf\xe9.example",
        b"RCPT TO:<\xff\xfe@localhost>",
        b"\xff\xff\xff\xff",
    ] {
        expect(&raw(&mut c, line), "501 5.5.4");
        expect(&c.cmd("NOOP"), "250 2.0.0");
    }
    // NOOP's argument is ignored (RFC 5321 §4.1.1.9), whatever its bytes.
    expect(&raw(&mut c, b"NOOP \xc3"), "250 2.0.0");
    // UTF-8 addresses without SMTPUTF8: 550 5.6.7 at MAIL, 553 5.6.7 at
    // RCPT (RFC 6531 §3.5).
    expect(
        &raw(&mut c, "MAIL FROM:<jörg@example.org>".as_bytes()),
        "550 5.6.7",
    );
    expect(&c.cmd("NOOP"), "250 2.0.0");
    expect(&c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0");
    expect(&raw(&mut c, "RCPT TO:<jörg@localhost>".as_bytes()), "553 5.6.7");
    expect(&c.cmd("NOOP"), "250 2.0.0");
    // The transaction survived the refused recipient.
    expect(&c.cmd("RCPT TO:<u@localhost>"), "250 2.1.5");
    expect(&c.cmd("RSET"), "250 2.0.0");
    // With SMTPUTF8 the same addresses are fine.
    expect(
        &raw(&mut c, "MAIL FROM:<jörg@example.org> SMTPUTF8".as_bytes()),
        "250 2.1.0",
    );
    expect(&raw(&mut c, "RCPT TO:<jörg@localhost>".as_bytes()), "250 2.1.5");
}

#[test]
fn huge_ehlo_arguments() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    // 512 octets with CRLF is the limit (RFC 5321 §4.5.3.1.4): a line
    // that long is read as a command, but no domain name is that long
    // (255 octets, 63 per label): 501 5.5.4, and the reply is short.
    let at_limit = format!("EHLO {}", "a".repeat(512 - 2 - 5));
    let r = c.cmd(&at_limit);
    expect(&r, "501 5.5.4");
    assert!(r.text.len() < 100, "{}", r.text);
    let label = "a".repeat(63);
    let longest = [label.as_str(); 4].join(".");
    assert_eq!(c.cmd(&format!("EHLO {longest}")).code, 250);
    assert_eq!(c.cmd(&format!("NOOP {}", "n".repeat(512 - 2 - 5))).code, 250);
    // One more octet: 500 5.5.2 (syntax error).
    let over = format!("EHLO {}", "a".repeat(512 - 2 - 5 + 1));
    expect(&c.cmd(&over), "500 5.5.2");
    expect(&c.cmd("NOOP"), "250 2.0.0");
    // 100 kB in one write: one reply, then the session resynchronises.
    let huge = format!("EHLO {}\r\nNOOP\r\n", "b".repeat(100_000));
    c.send(huge.as_bytes());
    expect(&c.reply(), "500 5.5.2");
    expect(&c.reply(), "250 2.0.0");
    // A 100 kB host name made of labels, and a huge address literal.
    let labels = format!("EHLO {}", "abc.".repeat(25_000));
    expect(&c.cmd(&labels), "500 5.5.2");
    let literal = format!("EHLO [{}]", "1".repeat(50_000));
    expect(&c.cmd(&literal), "500 5.5.2");
    assert_eq!(c.cmd("EHLO ok.example").code, 250);
}

#[test]
fn mail_lines_have_room_for_their_parameters() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    assert_eq!(c.cmd("EHLO c.example").code, 250);
    // SIZE, BODY and SMTPUTF8 widen the MAIL limit by 26 + 16 + 10 octets
    // (RFC 1870 §3, RFC 6152 §2, RFC 6531): 564 with CRLF.
    let params = " SIZE=100 BODY=8BITMIME SMTPUTF8";
    let pad = |total: usize| "a".repeat(total - 2 - "MAIL FROM:<@localhost>".len() - params.len());
    let at_limit = format!("MAIL FROM:<{}@localhost>{params}", pad(564));
    assert_eq!(at_limit.len() + 2, 564);
    expect(&c.cmd(&at_limit), "250 2.1.0");
    assert_eq!(c.cmd("RSET").code, 250);
    let over = format!("MAIL FROM:<{}@localhost>{params}", pad(565));
    expect(&c.cmd(&over), "500 5.5.2");
    // Other commands keep the 512-octet limit.
    let rcpt = format!(
        "RCPT TO:<{}@localhost>",
        "r".repeat(513 - 2 - "RCPT TO:<@localhost>".len())
    );
    expect(&c.cmd(&rcpt), "500 5.5.2");
    expect(&c.cmd("NOOP"), "250 2.0.0");
}

#[test]
fn verbs_known_but_not_offered_get_502() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    for verb in [
        "TURN",
        "ETRN example.org",
        "AUTH PLAIN",
        "BDAT 10 LAST",
        "SAML FROM:<a@b>",
    ] {
        expect(&c.cmd(verb), "502 5.5.1");
    }
    expect(&c.cmd("XYZZY"), "500 5.5.2");
}

#[test]
fn ten_thousand_pipelined_rsets() {
    const N: usize = 10_000;
    let srv = TestServer::start();
    let mut c = srv.client();
    hello(&mut c);
    expect(&c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0");
    // All in one write, from another thread so neither side can block the
    // other; HELP at the end shows the replies are in order.
    let mut flood = "RSET\r\n".repeat(N).into_bytes();
    flood.extend_from_slice(b"HELP\r\n");
    let mut writer = c.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&flood).unwrap();
    });
    for i in 0..N {
        let r = c.reply();
        assert_eq!(r.text, "250 2.0.0 Ok", "reply {i}");
    }
    expect(&c.reply(), "214 2.0.0");
    sender.join().unwrap();
    // RSET is no error: the error limit was not touched, and the
    // transaction opened before the flood is gone.
    expect(&c.cmd("RCPT TO:<u@localhost>"), "503 5.5.1");
    expect(&c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0");
}

#[test]
fn pipelined_garbage_after_quit_is_not_answered() {
    let srv = TestServer::start();
    let mut c = srv.client();
    hello(&mut c);
    let mut input = b"NOOP\r\nQUIT\r\nNOOP\r\nMAIL FROM:<a@example.org>\r\n\0\xff\xfe garbage\r\n".to_vec();
    input.extend_from_slice(&[b'x'; 5000]);
    input.extend_from_slice(b"\r\nDATA\r\n");
    c.send(&input);
    expect(&c.reply(), "250 2.0.0");
    expect(&c.reply(), "221 2.0.0");
    assert_eq!(c.read_to_end(), "", "nothing may follow 221");
    // The server is fine for the next client.
    let mut d = srv.client();
    hello(&mut d);
}

/// The five ways a client can try to end DATA early with bare CR or LF.
const VARIANTS: [&[u8]; 5] = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r\n.\r"];

/// One session that tries to smuggle a second message after `variant`.
/// Returns the reply to DATA; asserts that it is the only one.
fn smuggle(srv: &TestServer, variant: &[u8]) -> common::Reply {
    let mut c = srv.client();
    hello(&mut c);
    expect(&c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<u@localhost>"), "250 2.1.5");
    assert_eq!(c.cmd("DATA").code, 354);
    let mut body = b"Subject: real\r\n\r\nreal body".to_vec();
    body.extend_from_slice(variant);
    body.extend_from_slice(
        b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<u@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n",
    );
    // HELP right behind: if any smuggled command had been run, its reply
    // (250 2.1.0, 250 2.1.5, 354...) would come before the 214.
    body.extend_from_slice(b"HELP\r\n");
    c.send(&body);
    let r = c.reply();
    expect(&c.reply(), "214 2.0.0");
    expect(&c.cmd("QUIT"), "221 2.0.0");
    r
}

#[test]
fn smuggling_with_bare_lf_normalize() {
    let srv = TestServer::with(|s| s.bare_lf = BareLf::Normalize);
    for (i, variant) in VARIANTS.iter().enumerate() {
        let r = smuggle(&srv, variant);
        expect(&r, "250 2.0.0");
        // One message per attempt, with the smuggled text as its content.
        let new = srv.wait_files("new", i + 1);
        assert_eq!(new.len(), i + 1, "{variant:?}");
        let id = common::queue_id(&r);
        let file = srv.file_of("new", &id);
        let (_, stored) = split_trace(&std::fs::read(file).unwrap());
        let stored = String::from_utf8(stored).unwrap();
        assert!(stored.starts_with("Subject: real\n\nreal body"), "{stored:?}");
        assert!(stored.contains("MAIL FROM:<evil@example.org>\nRCPT TO:<u@localhost>\nDATA\n"));
        assert!(
            stored.ends_with("Subject: smuggled\n\nsmuggled body\n"),
            "{stored:?}"
        );
    }
    assert!(srv.files("tmp").is_empty());
}

#[test]
fn smuggling_with_bare_lf_reject() {
    // Every variant holds a bare LF or a bare CR: refused, nothing stored.
    let srv = TestServer::with(|s| s.bare_lf = BareLf::Reject);
    for variant in VARIANTS {
        let r = smuggle(&srv, variant);
        expect(&r, "550 5.5.2");
    }
    assert!(srv.files("new").is_empty());
    assert!(srv.files("tmp").is_empty());
}

#[test]
fn a_client_that_never_reads_its_replies_is_cut_off() {
    use std::io::Write;
    let srv = TestServer::with(|s| s.command_timeout = std::time::Duration::from_millis(500));
    // A small receive buffer so the replies back up quickly.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&srv.addr.into()).unwrap();
    let mut stream: std::net::TcpStream = sock.into();
    // Read the greeting first (talking before it gets 554 and a close).
    let mut greeting = [0u8; 512];
    let n = std::io::Read::read(&mut stream, &mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"220 "));
    // A write that waits this long means the server stopped reading and
    // never gave up on us.
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let noops = b"NOOP\r\n".repeat(10_000);
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    let error = loop {
        match stream.write_all(&noops) {
            Ok(()) => sent += noops.len(),
            Err(e) => break e,
        }
        assert!(
            sent < 1 << 30,
            "the server took 1 GiB of commands without replies being read"
        );
    };
    assert!(
        !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "the server kept the connection open: {error} after {:?}",
        started.elapsed()
    );
    // It was cut off by the write timeout, not at once.
    assert!(sent > 0, "{error}");
}
