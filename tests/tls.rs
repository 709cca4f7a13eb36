//! STARTTLS (RFC 3207) and implicit TLS (RFC 8314) over real TCP, with a
//! rustls client that trusts the server's self-signed certificate.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{queue_id, split_trace, Client, TestServer};
use maildoor::config::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A self-signed pair for `mx.test`, written into a temporary directory.
pub struct Certs {
    _dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pem: String,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let (pem, key) = maildoor::tls::self_signed("mx.test").unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, &pem).unwrap();
    std::fs::write(&k, key).unwrap();
    Certs {
        _dir: dir,
        cert: c,
        key: k,
        pem,
    }
}

fn tls_server(certs: &Certs, f: impl FnOnce(&mut maildoor::Settings)) -> TestServer {
    let (c, k) = (certs.cert.clone(), certs.key.clone());
    TestServer::with(move |s| {
        s.tls_cert = Some(c);
        s.tls_key = Some(k);
        f(s);
    })
}

struct TlsClient {
    r: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// Runs the client handshake on `tcp`, trusting only `certs`.
    fn handshake(tcp: TcpStream, certs: &Certs) -> std::io::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(certs.pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("mx.test").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            r: BufReader::new(stream),
        })
    }

    fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
        self.r.get_mut().flush().unwrap();
    }

    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(self.r.read_line(&mut line).unwrap() > 0, "EOF after {text:?}");
            text.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return (line[..3].parse().unwrap(), text);
            }
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn deliver(&mut self) -> String {
        assert_eq!(self.cmd("MAIL FROM:<alice@example.net>").0, 250);
        assert_eq!(self.cmd("RCPT TO:<user@localhost>").0, 250);
        assert_eq!(self.cmd("DATA").0, 354);
        self.send(b"Subject: secret\r\n\r\nover TLS\r\n.\r\n");
        let (code, text) = self.reply();
        let r = common::Reply {
            code,
            text: text.trim_end().to_string(),
        };
        queue_id(&r)
    }
}

/// Plain greeting and EHLO, then STARTTLS and the handshake.
fn start_tls(srv: &TestServer, certs: &Certs) -> TlsClient {
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.text.contains("STARTTLS"), "{}", ehlo.text);
    let r = c.cmd("STARTTLS");
    assert_eq!(r.text, "220 2.0.0 Ready to start TLS");
    TlsClient::handshake(c.stream, certs).expect("handshake")
}

fn stored_trace(srv: &TestServer) -> String {
    let new = srv.wait_files("new", 1);
    assert_eq!(new.len(), 1);
    split_trace(&std::fs::read(&new[0]).unwrap()).0
}

#[test]
fn starttls_restarts_the_session_and_records_the_cipher() {
    let certs = certs();
    let srv = tls_server(&certs, |_| {});
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    assert_eq!(c.cmd("EHLO client.test").code, 250);
    assert_eq!(c.cmd("STARTTLS now").code, 501);
    assert_eq!(c.cmd("MAIL FROM:<a@example.net>").code, 250);
    // Not with a transaction open: the restart would drop it unseen.
    assert_eq!(
        c.cmd("STARTTLS").text,
        "503 5.5.1 Error: mail transaction in progress; RSET first"
    );
    assert_eq!(c.cmd("RSET").code, 250);
    assert_eq!(c.cmd("STARTTLS").code, 220);
    let mut t = TlsClient::handshake(c.stream, &certs).unwrap();
    // Everything before is forgotten: EHLO first, and no transaction.
    assert_eq!(t.cmd("RCPT TO:<user@localhost>").0, 503);
    let (code, ehlo) = t.cmd("EHLO client.test");
    assert_eq!(code, 250);
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(t.cmd("STARTTLS").0, 503);
    let id = t.deliver();
    assert_eq!(t.cmd("QUIT").0, 221);
    let trace = stored_trace(&srv);
    assert!(trace.contains("with ESMTPS id"), "{trace}");
    assert!(trace.contains(&id));
    assert!(trace.contains("(using TLSv1.3 with cipher TLS13_"), "{trace}");
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let certs = certs();
    let srv = tls_server(&certs, |_| {});
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    // CVE-2011-0411: the injected commands ride in the same segment.
    c.send(b"EHLO client.test\r\nSTARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<user@localhost>\r\n");
    assert_eq!(c.reply().code, 250);
    assert_eq!(c.reply().text, "220 2.0.0 Ready to start TLS");
    // Nothing else was answered in clear, or the handshake would fail.
    let mut t = TlsClient::handshake(c.stream, &certs).unwrap();
    // Had they run, this would be 250 (EHLO and MAIL done).
    assert_eq!(t.cmd("RCPT TO:<user@localhost>").0, 503);
    assert_eq!(t.cmd("EHLO client.test").0, 250);
    assert_eq!(t.cmd("RCPT TO:<user@localhost>").0, 503);
    assert_eq!(t.cmd("DATA").0, 503);
    assert_eq!(t.cmd("QUIT").0, 221);
    assert!(srv.files("new").is_empty());
}

#[test]
fn failed_handshake_closes_only_that_session() {
    let certs = certs();
    let srv = tls_server(&certs, |_| {});
    let mut idle = srv.client();
    assert_eq!(idle.reply().code, 220);

    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    assert_eq!(c.cmd("EHLO client.test").code, 250);
    assert_eq!(c.cmd("STARTTLS").code, 220);
    c.send(b"this is not a TLS ClientHello\r\n\r\n");
    // The server gives up on this connection (perhaps with a TLS alert).
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut c.reader, &mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("250"));

    // Others are unharmed: the idle one and a new one both go on.
    assert_eq!(idle.cmd("NOOP").code, 250);
    let mut t = start_tls(&srv, &certs);
    assert_eq!(t.cmd("EHLO client.test").0, 250);
    t.deliver();
}

#[test]
fn implicit_tls_listener() {
    let certs = certs();
    let srv = tls_server(&certs, |s| {
        s.listen = vec!["127.0.0.1:0".parse().unwrap()];
        s.listener = vec![Listener {
            address: "127.0.0.1:0".parse().unwrap(),
            proxy_protocol: false,
            implicit_tls: true,
        }];
    });
    assert_eq!(srv.addrs.len(), 2);
    // The plain listener offers STARTTLS ...
    let mut plain = Client::connect(srv.addrs[0]);
    assert_eq!(plain.reply().code, 220);
    assert!(plain.cmd("EHLO x.test").text.contains("STARTTLS"));
    // ... the implicit one speaks TLS from the first byte.
    let tcp = TcpStream::connect(srv.addrs[1]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut t = TlsClient::handshake(tcp, &certs).unwrap();
    assert_eq!(t.reply().0, 220);
    let (code, ehlo) = t.cmd("EHLO client.test");
    assert_eq!(code, 250);
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(t.cmd("STARTTLS").0, 503);
    t.deliver();
    let trace = stored_trace(&srv);
    assert!(
        trace.contains("with ESMTPS") && trace.contains("(using TLSv1."),
        "{trace}"
    );
}

#[test]
fn no_starttls_without_a_certificate() {
    let srv = TestServer::start();
    let mut c = srv.client();
    assert_eq!(c.reply().code, 220);
    assert!(!c.cmd("EHLO client.test").text.contains("STARTTLS"));
    let r = c.cmd("STARTTLS");
    assert!(r.code >= 500, "{}", r.text);
    assert_eq!(c.cmd("NOOP").code, 250);
}

#[test]
fn proxy_header_then_implicit_tls() {
    let certs = certs();
    let srv = tls_server(&certs, |s| {
        s.listen = vec![];
        s.listener = vec![Listener {
            address: "127.0.0.1:0".parse().unwrap(),
            proxy_protocol: true,
            implicit_tls: true,
        }];
        s.proxy_trusted = vec!["127.0.0.1".parse().unwrap()];
    });
    let mut tcp = TcpStream::connect(srv.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(b"PROXY TCP6 2001:db8::7 2001:db8::25 40002 465\r\n")
        .unwrap();
    let mut t = TlsClient::handshake(tcp, &certs).unwrap();
    assert_eq!(t.reply().0, 220);
    assert_eq!(t.cmd("EHLO client.test").0, 250);
    t.deliver();
    let trace = stored_trace(&srv);
    assert!(
        trace.contains("([IPv6:2001:db8::7]) (port 40002)\n\t(using TLSv1."),
        "{trace}"
    );
}
