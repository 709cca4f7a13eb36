//! PROXY protocol listeners over real TCP: the address in the header
//! becomes the peer for the Received: header and the per-IP limits;
//! untrusted senders, malformed and missing headers are closed.

mod common;

use std::time::Duration;

use common::{split_trace, Client, TestServer};
use maildoor::config::Listener;

fn proxy_server(trusted: &str, f: impl FnOnce(&mut maildoor::Settings)) -> TestServer {
    let trusted = trusted.parse().unwrap();
    TestServer::with(move |s| {
        s.listen = vec![];
        s.listener = vec![Listener {
            address: "127.0.0.1:0".parse().unwrap(),
            proxy_protocol: true,
            implicit_tls: false,
        }];
        s.proxy_trusted = vec![trusted];
        f(s);
    })
}

fn v2_ipv4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut v = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v.extend_from_slice(&[0x21, 0x11]);
    let mut body = src.to_vec();
    body.extend_from_slice(&dst);
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&dport.to_be_bytes());
    body.extend_from_slice(&[0x04, 0, 3, 1, 2, 3]); // a TLV (PP2_TYPE_NOOP)
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&body);
    v
}

fn last_trace(srv: &TestServer, n: usize) -> String {
    let files = srv.wait_files("new", n);
    assert_eq!(files.len(), n);
    let mut traces: Vec<String> = files
        .iter()
        .map(|f| split_trace(&std::fs::read(f).unwrap()).0)
        .collect();
    traces.sort();
    traces.join("\n")
}

#[test]
fn v1_and_v2_headers_name_the_real_client() {
    let srv = proxy_server("127.0.0.1/32", |_| {});
    let mut c = srv.client();
    // The header may arrive in pieces; the greeting waits for all of it.
    c.send(b"PROXY TCP4 192.0.2.7 ");
    std::thread::sleep(Duration::from_millis(20));
    c.send(b"198.51.100.9 40001 25\r\n");
    assert_eq!(c.deliver("a@example.net", &["user@localhost"], b"one").code, 250);

    let mut c = srv.client();
    c.send(b"PROXY TCP6 2001:db8::7 2001:db8::25 40002 25\r\n");
    assert_eq!(c.deliver("a@example.net", &["user@localhost"], b"two").code, 250);

    let mut c = srv.client();
    c.send(&v2_ipv4([203, 0, 113, 5], 40003, [198, 51, 100, 9], 25));
    assert_eq!(
        c.deliver("a@example.net", &["user@localhost"], b"three").code,
        250
    );

    let traces = last_trace(&srv, 3);
    assert!(traces.contains("([192.0.2.7]) (port 40001)"), "{traces}");
    assert!(traces.contains("([IPv6:2001:db8::7]) (port 40002)"), "{traces}");
    assert!(traces.contains("([203.0.113.5]) (port 40003)"), "{traces}");
    assert!(!traces.contains("127.0.0.1"), "{traces}");
}

#[test]
fn local_and_unknown_keep_the_connection_address() {
    let srv = proxy_server("127.0.0.1", |_| {});
    let mut c = srv.client();
    let port = c.stream.local_addr().unwrap().port();
    c.send(b"PROXY UNKNOWN\r\n");
    assert_eq!(c.deliver("a@example.net", &["user@localhost"], b"x").code, 250);
    let mut c = srv.client();
    c.send(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    assert_eq!(c.reply().code, 220);
    let traces = last_trace(&srv, 1);
    assert!(
        traces.contains(&format!("([127.0.0.1]) (port {port})")),
        "{traces}"
    );
}

#[test]
fn per_ip_limit_counts_the_real_client() {
    let srv = proxy_server("127.0.0.1/8", |s| s.max_connections_per_ip = 1);
    let mut first = srv.client();
    first.send(b"PROXY TCP4 192.0.2.7 198.51.100.9 40001 25\r\n");
    assert_eq!(first.reply().code, 220);
    let mut same = srv.client();
    same.send(b"PROXY TCP4 192.0.2.7 198.51.100.9 40002 25\r\n");
    assert_eq!(same.reply().code, 421);
    let mut other = srv.client();
    other.send(b"PROXY TCP4 192.0.2.8 198.51.100.9 40003 25\r\n");
    assert_eq!(other.reply().code, 220);
}

#[test]
fn bad_missing_and_untrusted_headers_close() {
    let srv = proxy_server("127.0.0.1/32", |s| s.proxy_timeout = Duration::from_millis(300));
    for bad in [
        &b"EHLO client.test\r\n"[..],
        b"PROXY TCP4 192.0.2.7 198.51.100.9 40001\r\n",
        b"PROXY TCP4 999.0.2.7 198.51.100.9 1 25\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
    ] {
        let mut c = srv.client();
        c.send(bad);
        assert_eq!(c.read_to_end(), "", "{}", String::from_utf8_lossy(bad));
    }
    // A short command, shorter than any header, is refused on its first
    // bytes, not after proxy_timeout.
    let patient = proxy_server("127.0.0.1/32", |s| s.proxy_timeout = Duration::from_secs(600));
    let mut raw = std::net::TcpStream::connect(patient.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::io::Write::write_all(&mut raw, b"EHLO x\r\n").unwrap();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut raw, &mut byte);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected the connection closed at once: {read:?}"
    );

    // No header at all: closed after proxy_timeout, without a greeting.
    let mut silent = srv.client();
    assert_eq!(silent.read_to_end(), "");

    // A listener that trusts another network closes us before any byte.
    let strict = proxy_server("10.0.0.0/8", |_| {});
    let mut c = strict.client();
    c.send(b"PROXY TCP4 192.0.2.7 198.51.100.9 40001 25\r\n");
    assert_eq!(c.read_to_end(), "");
    assert!(strict.files("new").is_empty() && srv.files("new").is_empty());

    // The plain listener next to it is not affected.
    let mixed = proxy_server("127.0.0.1", |s| s.listen = vec!["127.0.0.1:0".parse().unwrap()]);
    let mut plain = Client::connect(mixed.addrs[0]);
    assert_eq!(plain.reply().code, 220);
}

#[test]
fn a_connection_still_owing_its_header_does_not_hold_up_shutdown() {
    let mut srv = proxy_server("127.0.0.1/32", |s| {
        s.proxy_timeout = Duration::from_secs(600);
        s.shutdown_grace = Duration::from_secs(600);
    });
    // Connected, and silent: the server waits for its PROXY header.
    let _silent = std::net::TcpStream::connect(srv.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    srv.begin_stop();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !srv.is_stopped() {
        assert!(
            std::time::Instant::now() < end,
            "shutdown waits on a connection that never became a session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
