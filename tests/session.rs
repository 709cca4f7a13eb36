//! Integration tests over real TCP: a server from the library on
//! 127.0.0.1 port 0, clients speaking SMTP to it, and the Maildir checked.

mod common;

use std::time::Duration;

use common::{files, queue_id, split_trace, Client, TestServer};

#[test]
fn full_dialogue_stores_the_message() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let greet = c.reply();
    assert_eq!(greet.code, 220);
    assert!(greet.text.contains("mx.test"));
    let ehlo = c.cmd("EHLO client.test");
    assert_eq!(ehlo.code, 250);
    for ext in [
        "250-PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
    ] {
        assert!(ehlo.text.contains(ext), "{ext}: {}", ehlo.text);
    }
    assert_eq!(c.cmd("MAIL FROM:<alice@example.net>").text, "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").text, "250 2.1.5 Ok");
    let r = c.cmd("DATA");
    assert_eq!(r.code, 354);
    c.send(
        b"Subject: hello\r\nFrom: alice@example.net\r\n\r\nHi Bob,\r\n..dotted\r\n\r\n-- \r\nAlice\r\n.\r\n",
    );
    let done = c.reply();
    assert!(done.text.starts_with("250 2.0.0 Ok: queued as "), "{}", done.text);
    let id = queue_id(&done);
    assert_eq!(c.cmd("QUIT").text, "221 2.0.0 Bye");
    assert!(c.read_to_end().is_empty());

    let new = srv.files("new");
    assert_eq!(new.len(), 1);
    assert!(srv.files("tmp").is_empty());
    let name = new[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("{id}.mx.test,S=")), "{name}");
    let stored = std::fs::read(&new[0]).unwrap();
    let size: u64 = name.rsplit("S=").next().unwrap().parse().unwrap();
    assert_eq!(size, stored.len() as u64);
    let (trace, body) = split_trace(&stored);
    assert_eq!(
        body,
        b"Subject: hello\nFrom: alice@example.net\n\nHi Bob,\n.dotted\n\n-- \nAlice\n"
    );
    let local_port = c.stream.local_addr().unwrap().port();
    assert!(
        trace
            .starts_with("Return-Path: <alice@example.net>\nReceived: from client.test ([127.0.0.1]) (port "),
        "{trace}"
    );
    assert!(
        trace.contains(&format!("([127.0.0.1]) (port {local_port})")),
        "{trace}"
    );
    assert!(
        trace.contains(&format!("by mx.test (maildoor) with ESMTP id <{id}@mx.test>")),
        "{trace}"
    );
    assert!(trace.contains("for <bob@localhost>;"), "{trace}");
    assert!(!stored.contains(&b'\r'));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    c.send(b"EHLO p.test\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u1@localhost>\r\nRCPT TO:<x@relay.example>\r\nRCPT TO:<u2@example.org>\r\nDATA\r\n");
    let codes: Vec<u16> = (0..6).map(|_| c.reply().code).collect();
    assert_eq!(codes, vec![250, 250, 250, 550, 250, 354]);
    // Body, end of data and the next transaction in one write.
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 354);
    c.send(b"second\r\n.\r\nQUIT\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().code, 221);
    assert_eq!(srv.files("new").len(), 2);
}

#[test]
fn multiple_recipients_share_one_file() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let r = c.deliver(
        "a@b.c",
        &["one@localhost", "two@example.org", "postmaster"],
        b"Subject: m\r\n\r\nx",
    );
    assert_eq!(r.code, 250);
    let new = srv.files("new");
    assert_eq!(new.len(), 1);
    let (trace, body) = split_trace(&std::fs::read(&new[0]).unwrap());
    assert!(
        trace.contains("(envelope recipients: <one@localhost>,\n\t <two@example.org>,\n\t <postmaster>);"),
        "{trace}"
    );
    assert_eq!(body, b"Subject: m\n\nx\n");
}

#[test]
fn relay_is_refused() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.reply();
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@b.c>");
    let r = c.cmd("RCPT TO:<victim@gmail.com>");
    assert_eq!(r.code, 550);
    assert!(r.text.starts_with("550 5.7.1 "), "{}", r.text);
    assert_eq!(c.cmd("RCPT TO:<postmaster>").code, 250);
    assert_eq!(c.cmd("DATA").code, 354);
}

#[test]
fn size_limits() {
    let srv = TestServer::with(|s| s.max_message_size = 2000);
    let mut c = srv.client();
    c.reply();
    assert!(c.cmd("EHLO x").text.contains("SIZE 2000"));
    let r = c.cmd("MAIL FROM:<a@b.c> SIZE=2001");
    assert!(r.text.starts_with("552 5.3.4"), "{}", r.text);
    assert_eq!(c.cmd("MAIL FROM:<a@b.c> SIZE=100").code, 250);
    c.cmd("RCPT TO:<u@localhost>");
    assert_eq!(c.cmd("DATA").code, 354);
    // Lie about the size: the limit is enforced while streaming.
    let line = "x".repeat(98) + "\r\n";
    for _ in 0..100 {
        c.send(line.as_bytes());
    }
    c.send(b".\r\n");
    let r = c.reply();
    assert!(r.text.starts_with("552 5.3.4"), "{}", r.text);
    assert!(srv.files("new").is_empty());
    assert!(srv.files("tmp").is_empty());
    // The session goes on.
    assert_eq!(c.cmd("NOOP").code, 250);
}

#[test]
fn a_refused_spilled_message_is_gone_from_tmp_before_the_reply() {
    // Bodies of several spool chunks are on disk before the refusal is
    // known; the client hears it only once they are removed.
    let srv = TestServer::with(|s| {
        s.max_message_size = 600_000;
        s.bare_lf = maildoor::config::BareLf::Reject;
    });
    let mut c = srv.client();
    c.reply();
    c.cmd("EHLO x");
    let line = "y".repeat(78) + "\r\n";
    for (tail, code) in [("", 552), ("bare\nx\r\n", 550)] {
        for _ in 0..3 {
            c.cmd("MAIL FROM:<a@b.c>");
            c.cmd("RCPT TO:<u@localhost>");
            assert_eq!(c.cmd("DATA").code, 354);
            let lines = if code == 552 { 12_000 } else { 7_000 };
            c.send(line.repeat(lines).as_bytes());
            c.send(format!("{tail}.\r\n").as_bytes());
            assert_eq!(c.reply().code, code);
            assert!(srv.files("tmp").is_empty(), "{code}");
        }
    }
    assert!(srv.files("new").is_empty());
}

#[test]
fn big_message_streams_through() {
    let srv = TestServer::start();
    let mut c = srv.client();
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    for i in 0..40_000 {
        body.extend_from_slice(
            format!("line {i:08} of a message that is larger than any buffer\r\n").as_bytes(),
        );
    }
    let r = c.deliver("a@b.c", &["u@localhost"], &body);
    assert_eq!(r.code, 250, "{}", r.text);
    let new = srv.files("new");
    let (_, stored) = split_trace(&std::fs::read(&new[0]).unwrap());
    let mut want: Vec<u8> = body.iter().copied().filter(|&b| b != b'\r').collect();
    want.push(b'\n');
    assert_eq!(stored.len(), want.len());
    assert!(stored == want);
}

#[test]
fn data_without_a_header_section_is_stored_as_the_body() {
    // What `curl -T` of a text file or smtplib's sendmail("...") send.
    let srv = TestServer::start();
    for data in [
        &b"Hello Bob,\r\nthis is a test.\r\n"[..],
        b"From me Sat Dec  5 2026\r\nSubject: x\r\n\r\nb\r\n",
        b"Subject: s\r\n\r\nb\r\n",
    ] {
        assert_eq!(srv.client().deliver("a@b.c", &["u@localhost"], data).code, 250);
    }
    let mut bodies: Vec<String> = srv
        .wait_files("new", 3)
        .iter()
        .map(|p| String::from_utf8(split_trace(&std::fs::read(p).unwrap()).1).unwrap())
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            "\nFrom me Sat Dec  5 2026\nSubject: x\n\nb\n\n",
            "\nHello Bob,\nthis is a test.\n\n",
            "Subject: s\n\nb\n\n",
        ]
    );
}

#[test]
fn big_messages_one_after_another_keep_their_own_bytes() {
    // Big buffers are reused from message to message (and session to
    // session): nothing of one message may show up in the next.
    let srv = TestServer::start();
    let body = |tag: char, lines: usize| {
        let mut b = format!("X-Tag: {tag}\r\n\r\n").into_bytes();
        for i in 0..lines {
            b.extend_from_slice(format!("{tag}{i:07}{}\r\n", tag.to_string().repeat(70)).as_bytes());
        }
        b
    };
    // Longest first: a shorter message written into a reused buffer must
    // not carry the longer one's tail.
    let sent = [
        body('a', 30_000),
        body('b', 9_000),
        body('c', 200),
        body('d', 5_000),
    ];
    {
        // Two in one session.
        let mut c = srv.client();
        assert_eq!(c.deliver("a@b.c", &["u@localhost"], &sent[0]).code, 250);
        assert_eq!(c.cmd("MAIL FROM:<a@b.c>").code, 250);
        assert_eq!(c.cmd("RCPT TO:<u@localhost>").code, 250);
        assert_eq!(c.cmd("DATA").code, 354);
        c.send(&sent[1]);
        c.send(b"\r\n.\r\n");
        assert_eq!(c.reply().code, 250);
    }
    for b in &sent[2..] {
        let mut c = srv.client();
        assert_eq!(c.deliver("a@b.c", &["u@localhost"], b).code, 250);
    }
    let mut stored: Vec<Vec<u8>> = srv
        .files("new")
        .iter()
        .map(|p| split_trace(&std::fs::read(p).unwrap()).1)
        .collect();
    let mut want: Vec<Vec<u8>> = sent
        .iter()
        .map(|b| {
            let mut w: Vec<u8> = b.iter().copied().filter(|&x| x != b'\r').collect();
            w.push(b'\n');
            w
        })
        .collect();
    stored.sort();
    want.sort();
    assert_eq!(stored.len(), 4);
    for (s, w) in stored.iter().zip(&want) {
        assert_eq!(s.len(), w.len());
        assert!(s == w, "a stored message differs from what was sent");
    }
}

#[test]
fn smuggling_does_not_end_data() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.open_data();
    c.send(b"Subject: real\r\n\r\nreal body\n.\nMAIL FROM:<admin@example.org>\r\nRCPT TO:<u@localhost>\r\nDATA\r\n\r.\rSubject: smuggled\r\n\r\n.\r\n");
    let r = c.reply();
    assert_eq!(r.code, 250, "{}", r.text);
    // Exactly one reply for the whole thing: nothing was run as a command.
    assert_eq!(c.cmd("NOOP").code, 250);
    let new = srv.files("new");
    assert_eq!(new.len(), 1);
    let stored = String::from_utf8(std::fs::read(&new[0]).unwrap()).unwrap();
    assert!(stored.contains("MAIL FROM:<admin@example.org>"));
    assert!(stored.contains("Subject: smuggled"));
}

#[test]
fn disconnect_mid_data_leaves_nothing() {
    let srv = TestServer::start();
    {
        let mut c = srv.client();
        c.open_data();
        // More than one spool chunk, so a tmp file exists when we vanish.
        c.send(&vec![b'a'; maildoor::store::SPOOL_CHUNK * 2]);
        c.send(b"\r\nno end");
    }
    // The server notices the EOF and removes its tmp file.
    assert!(srv.wait_files("tmp", 0).is_empty());
    assert!(srv.files("new").is_empty());
    // And still serves.
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"ok");
    assert_eq!(r.code, 250);
}

#[test]
fn fifty_concurrent_clients() {
    let srv = TestServer::with(|s| s.max_connections_per_ip = 100);
    let addr = srv.addr;
    let handles: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let body = format!("Subject: n{i}\r\n\r\nmessage {i}");
                queue_id(&c.deliver("a@b.c", &["u@localhost"], body.as_bytes()))
            })
        })
        .collect();
    let mut ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let new = srv.files("new");
    assert_eq!(new.len(), 50);
    for id in ids {
        assert!(new.iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{id}."))));
    }
}

#[test]
fn long_lines_bare_lf_and_garbage() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.reply();
    let long = format!("NOOP {}\r\n", "x".repeat(600));
    c.send(long.as_bytes());
    let r = c.reply();
    assert!(r.text.starts_with("500 5.5.2"), "{}", r.text);
    // A huge line split over several reads gets one reply, then resync.
    c.send(&vec![b'y'; 5000]);
    c.send(b"\r\nNOOP\r\n");
    assert!(c.reply().text.starts_with("500 5.5.2"));
    assert_eq!(c.reply().code, 250);
    // Bare LF ends a command line (tolerated by default).
    c.send(b"EHLO lf.test\n");
    assert_eq!(c.reply().code, 250);
    let r = c.cmd("FROB");
    assert!(r.text.starts_with("500 5.5.2"), "{}", r.text);
    let r = c.cmd("MAIL FROM:<a@b.c> FOO=BAR");
    assert!(r.text.starts_with("555 5.5.4"), "{}", r.text);
    let r = c.cmd("MAIL FROM:broken");
    assert!(r.text.starts_with("501 5.1.7"), "{}", r.text);
    let r = c.cmd("MAIL broken");
    assert!(r.text.starts_with("501 5.5.4"), "{}", r.text);
    let r = c.cmd("RCPT TO:<u@localhost>");
    assert!(r.text.starts_with("503 5.5.1"), "{}", r.text);
    assert!(c.cmd("VRFY u").text.starts_with("252 2.5.0"));
    assert!(c.cmd("HELP").text.starts_with("214 2.0.0"));
    // Garbage after QUIT is never answered.
    c.send(b"QUIT\r\nNOOP\r\nNOOP\r\n");
    assert_eq!(c.reply().code, 221);
    assert!(c.try_reply().is_none());
}

#[test]
fn bare_lf_reject_setting() {
    let srv = TestServer::with(|s| s.bare_lf = maildoor::config::BareLf::Reject);
    let mut c = srv.client();
    c.reply();
    c.send(b"EHLO x\n");
    assert!(c.reply().text.starts_with("550 5.5.2"));
    // A CR left before the CRLF is a bare CR: refused here too.
    c.send(b"NOOP\r\r\n");
    assert!(c.reply().text.starts_with("550 5.5.2"));
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@b.c>");
    c.cmd("RCPT TO:<u@localhost>");
    c.cmd("DATA");
    c.send(b"a\nb\r\n.\r\n");
    assert!(c.reply().text.starts_with("550 5.5.2"));
    assert!(srv.files("new").is_empty());
    assert!(srv.files("tmp").is_empty());
}

#[test]
fn storage_error_gives_451_and_recovers() {
    let srv = TestServer::start();
    let new = srv.maildir().join("new");
    std::fs::remove_dir(&new).unwrap();
    std::fs::write(&new, b"not a directory").unwrap();
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"x");
    assert!(r.text.starts_with("451 4.3.0"), "{}", r.text);
    assert!(srv.files("tmp").is_empty());
    std::fs::remove_file(&new).unwrap();
    std::fs::create_dir(&new).unwrap();
    let r = srv.client().deliver("a@b.c", &["u@localhost"], b"x");
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(files(&new).len(), 1);
}

#[test]
fn timeouts_and_error_limit_close_with_421() {
    let srv = TestServer::with(|s| s.command_timeout = Duration::from_millis(300));
    let mut c = srv.client();
    c.reply();
    let r = c.reply();
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert!(c.try_reply().is_none());

    let srv = TestServer::start();
    let mut c = srv.client();
    c.reply();
    for _ in 0..9 {
        assert_eq!(c.cmd("BOGUS").code, 500);
    }
    assert_eq!(c.cmd("BOGUS").code, 500);
    let r = c.reply();
    assert!(r.text.starts_with("421 4.7.0"), "{}", r.text);
    assert!(c.try_reply().is_none());
}

#[test]
fn connection_limit_per_ip() {
    let srv = TestServer::with(|s| {
        s.max_connections_per_ip = 2;
        s.limit_exempt.clear();
    });
    let mut a = srv.client();
    let mut b = srv.client();
    assert_eq!(a.reply().code, 220);
    assert_eq!(b.reply().code, 220);
    let mut c = srv.client();
    let r = c.reply();
    assert!(r.text.starts_with("421 4.7.0"), "{}", r.text);
    assert!(c.try_reply().is_none());
    // Existing sessions keep working; a slot frees when one leaves.
    assert_eq!(a.cmd("NOOP").code, 250);
    assert_eq!(b.cmd("QUIT").code, 221);
    b.read_to_end();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = srv.client();
        if d.reply().code == 220 {
            break;
        }
        assert!(std::time::Instant::now() < end, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ipv6_loopback_listener() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    };
    drop(probe);
    let srv =
        TestServer::with(|s| s.listen = vec!["[::1]:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()]);
    assert_eq!(srv.addrs.len(), 2);
    let mut c = Client::connect(srv.addrs[0]);
    let r = c.deliver("a@b.c", &["u@localhost"], b"v6");
    assert_eq!(r.code, 250);
    let (trace, _) = split_trace(&std::fs::read(&srv.files("new")[0]).unwrap());
    assert!(trace.contains("([IPv6:::1]) (port "), "{trace}");
}

#[test]
fn address_in_use_names_the_holder() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = maildoor::Settings::defaults();
    s.listen = vec![addr];
    s.maildir = dir.path().join("m");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(maildoor::Server::bind(s)).unwrap_err().to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
}

#[test]
fn early_talker_gets_554() {
    let srv = TestServer::with(|s| s.greet_delay = Duration::from_millis(300));
    let mut c = srv.client();
    c.send(b"EHLO eager.test\r\n");
    let r = c.reply();
    assert!(r.text.starts_with("554 5.5.1"), "{}", r.text);
    assert!(c.try_reply().is_none());
    // A patient client is greeted after the delay.
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    assert_eq!(c.cmd("EHLO patient.test").code, 250);
}

#[test]
fn trickling_client_hits_the_session_limit() {
    let srv = TestServer::with(|s| s.max_session_time = Duration::from_millis(600));
    let mut c = srv.client();
    c.reply();
    // One byte every 50 ms never trips the command timeout, but the
    // session as a whole is bounded.
    let r = c.trickle_until_reply(b"N", Duration::from_millis(50), 100);
    let r = r.expect("the server should have closed the session");
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert!(r.text.contains("session time limit"), "{}", r.text);
}

#[test]
fn slow_data_rate_is_cut_off() {
    let srv = TestServer::with(|s| {
        s.min_data_rate = 1_000_000;
        s.data_rate_grace = Duration::from_millis(200);
    });
    let mut c = srv.client();
    c.open_data();
    let closed = c.trickle_until_reply(b"slow line\r\n", Duration::from_millis(20), 100);
    let r = closed.expect("the server should have cut the slow transfer");
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert!(srv.wait_files("tmp", 0).is_empty());
    assert!(srv.files("new").is_empty());
}

#[test]
fn a_sender_that_goes_quiet_is_cut_off_at_the_minimum_rate_not_the_data_timeout() {
    let srv = TestServer::with(|s| {
        s.min_data_rate = 1000;
        s.data_rate_grace = Duration::from_millis(200);
        s.data_timeout = Duration::from_secs(60);
    });
    let mut c = srv.client();
    c.open_data();
    // 500 octets keep up the rate for half a second; then nothing.
    c.send(&b"x".repeat(498));
    c.send(b"\r\n");
    // The test client gives up on a reply after 20 s, well before the
    // 60 s data_timeout: only the rate can end this in time.
    let r = c.reply();
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert!(r.text.contains("data rate too low"), "{}", r.text);
    assert!(srv.wait_files("tmp", 0).is_empty());
    assert!(srv.files("new").is_empty());
}

#[test]
fn long_lines_setting() {
    let long = "y".repeat(1500);
    let body = format!("Subject: long\r\n\r\n{long}\r\nshort");
    let srv = TestServer::start();
    assert_eq!(
        srv.client()
            .deliver("a@b.c", &["u@localhost"], body.as_bytes())
            .code,
        250
    );
    let (_, stored) = split_trace(&std::fs::read(&srv.files("new")[0]).unwrap());
    assert_eq!(stored, format!("Subject: long\n\n{long}\nshort\n").into_bytes());

    let srv = TestServer::with(|s| s.reject_long_lines = true);
    let r = srv.client().deliver("a@b.c", &["u@localhost"], body.as_bytes());
    assert!(r.text.starts_with("554 5.6.0"), "{}", r.text);
    assert!(srv.files("new").is_empty());
    let ok = format!("{}\r\n", "z".repeat(998));
    assert_eq!(
        srv.client()
            .deliver("a@b.c", &["u@localhost"], ok.as_bytes())
            .code,
        250
    );
}

#[test]
fn a_slow_message_does_not_use_up_the_next_command_timeout() {
    let srv = TestServer::with(|s| s.command_timeout = Duration::from_millis(400));
    let mut c = srv.client();
    c.open_data();
    // The body takes longer than one command timeout (each block is quick).
    for _ in 0..8 {
        c.send(b"a line of a slow message\r\n");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.send(b".\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.cmd("NOOP").code, 250);
}

#[test]
fn too_many_recipients_keeps_the_transaction() {
    let srv = TestServer::with(|s| {
        s.max_recipients = 3;
        s.max_errors = 3;
    });
    let mut c = srv.client();
    c.reply();
    c.cmd("EHLO x");
    let mut batch = b"MAIL FROM:<a@b.c>\r\n".to_vec();
    for i in 0..8 {
        batch.extend_from_slice(format!("RCPT TO:<u{i}@localhost>\r\n").as_bytes());
    }
    batch.extend_from_slice(b"DATA\r\n");
    c.send(&batch);
    let codes: Vec<u16> = (0..10).map(|_| c.reply().code).collect();
    assert_eq!(codes, vec![250, 250, 250, 250, 452, 452, 452, 452, 452, 354]);
    c.send(b"Subject: three of eight\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
}
