//! Orderly shutdown (what SIGINT/SIGTERM trigger): no new connections,
//! idle sessions get 421 4.3.2 at once, a message in DATA may finish
//! within the grace period, later ones are cut off, and nothing
//! half-written stays in tmp/.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

#[test]
fn data_in_flight_finishes_idle_sessions_are_told() {
    let mut srv = TestServer::with(|s| s.shutdown_grace = Duration::from_secs(10));
    let mut idle = srv.client();
    assert_eq!(idle.reply().code, 220);
    let mut busy = srv.client();
    busy.reply();
    busy.cmd("EHLO x");
    busy.cmd("MAIL FROM:<a@b.c>");
    busy.cmd("RCPT TO:<u@localhost>");
    assert_eq!(busy.cmd("DATA").code, 354);
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n");
    srv.begin_stop();
    let r = idle.reply();
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    // New connections are refused (the listener is closed).
    let end = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(srv.addr).is_ok() {
        assert!(Instant::now() < end, "still accepting after shutdown began");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The message in DATA completes and is stored.
    busy.send(b"second half\r\n.\r\n");
    assert_eq!(busy.reply().code, 250);
    // Then that session too is told to go.
    let r = busy.reply();
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    srv.stop();
    assert_eq!(srv.files("new").len(), 1);
    assert!(srv.files("tmp").is_empty());
}

#[test]
fn grace_period_ends_unfinished_messages() {
    let mut srv = TestServer::with(|s| s.shutdown_grace = Duration::from_millis(300));
    let mut slow = srv.client();
    slow.open_data();
    // More than a spool chunk, so a tmp file exists.
    slow.send(&vec![b'z'; maildoor::store::SPOOL_CHUNK * 2]);
    srv.begin_stop();
    let r = slow.reply();
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    let end = Instant::now() + Duration::from_secs(10);
    while !srv.is_stopped() {
        assert!(Instant::now() < end, "server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.stop();
    assert!(srv.files("new").is_empty());
    assert!(srv.files("tmp").is_empty(), "half-written message left in tmp/");
}
