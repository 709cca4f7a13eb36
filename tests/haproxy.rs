//! Real HAProxy in front of maildoor, sending PROXY v1 (`send-proxy`) and
//! v2 (`send-proxy-v2`) headers, on loopback only. The Received: header
//! must name the client's own address and port, not HAProxy's. Skipped
//! (saying so) without haproxy, a failure with MAILDOOR_REQUIRE_CLIENTS=1.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{split_trace, Client, TestServer};
use maildoor::config::Listener;

fn have_haproxy() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v haproxy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("MAILDOOR_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("haproxy is required (MAILDOOR_REQUIRE_CLIENTS=1) but not installed");
        }
        eprintln!("SKIP: haproxy not installed; set MAILDOOR_REQUIRE_CLIENTS=1 to make this a failure");
    }
    found
}

fn free_port(ip: &str) -> Option<u16> {
    let l = std::net::TcpListener::bind((ip, 0)).ok()?;
    Some(l.local_addr().ok()?.port())
}

/// HAProxy in the foreground; killed (by its pid) when dropped.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until `addr` accepts connections.
fn wait_listening(addr: SocketAddr, proxy: &mut Haproxy) {
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = proxy.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = proxy.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("haproxy exited ({status}): {err}");
        }
        assert!(Instant::now() < end, "haproxy did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn haproxy_send_proxy_v1_and_v2() {
    if !have_haproxy() {
        return;
    }
    let srv = TestServer::with(|s| {
        s.listen = vec![];
        s.listener = vec![Listener {
            address: "127.0.0.1:0".parse().unwrap(),
            proxy_protocol: true,
            implicit_tls: false,
        }];
        s.proxy_trusted = vec!["127.0.0.1".parse().unwrap()];
    });
    let v6 = free_port("::1");
    let (p1, p2) = (free_port("127.0.0.1").unwrap(), free_port("127.0.0.1").unwrap());
    let mut cfg = format!(
        "global\n  maxconn 100\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n\
         frontend v1\n  bind 127.0.0.1:{p1}\n  default_backend mx_v1\n\n\
         frontend v2\n  bind 127.0.0.1:{p2}\n  default_backend mx_v2\n\n\
         backend mx_v1\n  server mx {mx} send-proxy\n\n\
         backend mx_v2\n  server mx {mx} send-proxy-v2\n",
        mx = srv.addr
    );
    if let Some(p6) = v6 {
        cfg.push_str(&format!(
            "\nfrontend v6\n  bind [::1]:{p6}\n  default_backend mx_v2\n"
        ));
    }
    let file = srv.dir.path().join("haproxy.cfg");
    std::fs::write(&file, cfg).unwrap();
    let mut proxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy"),
    );
    let mut fronts: Vec<SocketAddr> = vec![
        format!("127.0.0.1:{p1}").parse().unwrap(),
        format!("127.0.0.1:{p2}").parse().unwrap(),
    ];
    if let Some(p6) = v6 {
        fronts.push(format!("[::1]:{p6}").parse().unwrap());
    } else {
        eprintln!("SKIP (IPv6 part): no IPv6 loopback on this machine");
    }
    for a in &fronts {
        wait_listening(*a, &mut proxy);
    }
    let mut expect = Vec::new();
    for (i, a) in fronts.iter().enumerate() {
        let mut c = Client::connect(*a);
        let me = c.stream.local_addr().unwrap();
        let r = c.deliver(
            "a@example.net",
            &["user@localhost"],
            format!("via {i}").as_bytes(),
        );
        assert_eq!(r.code, 250, "{}", r.text);
        assert_eq!(c.cmd("QUIT").code, 221);
        expect.push(maildoor::store::trace::peer_info(me));
    }
    let files = srv.wait_files("new", fronts.len());
    assert_eq!(files.len(), fronts.len());
    let traces: String = files
        .iter()
        .map(|f| split_trace(&std::fs::read(f).unwrap()).0)
        .collect();
    for lit in expect {
        assert!(traces.contains(&lit), "{lit} not in {traces}");
    }
}
