//! Binding listening sockets: the socket options a mail server wants
//! (SO_REUSEADDR, IPV6_V6ONLY, optionally SO_REUSEPORT), and errors that
//! say why a bind failed and what to do about it.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;

/// Binds one listener with SO_REUSEADDR (so a restart is not blocked by
/// connections in TIME_WAIT) and a deep accept backlog. IPv6 sockets are
/// IPV6_V6ONLY, so `[::]:25` and `0.0.0.0:25` bind side by side and each
/// family is logged as itself. `reuse_port` sets SO_REUSEPORT: several
/// processes may then bind the same address and the kernel spreads new
/// connections between them.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Says why a bind failed and what to do about it.
pub fn explain_bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "permission denied: binding port {} needs root or CAP_NET_BIND_SERVICE; or use --listen 127.0.0.1:2525",
            addr.port()
        ),
        io::ErrorKind::AddrInUse => {
            let holder = port_holder(addr.port())
                .map(|(pid, name)| format!(" by pid {pid} ({name})"))
                .unwrap_or_default();
            format!(
                "address already in use: {addr} is taken{holder}; stop that process or choose another --listen address"
            )
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("address not available: {} is not an address of this host", addr.ip())
        }
        _ => e.to_string(),
    }
}

/// Finds the process listening on TCP `port`, from /proc (Linux only;
/// `None` where /proc does not tell, e.g. another user's process).
pub fn port_holder(port: u16) -> Option<(u32, String)> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let lport = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if lport == Some(port) && *st == "0A" && *inode != "0" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_dir.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if inodes.iter().any(|i| Path::new(i) == target) {
                let name = std::fs::read_to_string(proc_dir.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Some((pid, name));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ipv6_listeners_are_v6only() {
        let Ok(l) = listen("[::1]:0".parse().unwrap(), false) else {
            eprintln!("SKIP: no IPv6 loopback on this machine");
            return;
        };
        assert_eq!(socket2::SockRef::from(&l).only_v6().ok(), Some(true));
        let v4 = listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
        assert_eq!(socket2::SockRef::from(&v4).reuse_port().ok(), Some(false));
    }

    #[tokio::test]
    async fn reuse_port_lets_two_sockets_share_a_port() {
        let a = listen("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = a.local_addr().unwrap();
        let b = listen(addr, true).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        drop(b);
        // Without it the second bind fails, as it should.
        let e = listen(addr, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
