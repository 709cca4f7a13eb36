//! The PROXY protocol, versions 1 and 2 (HAProxy's "The PROXY protocol",
//! revision 2.x): a load balancer sends one header before the SMTP bytes
//! to tell us the real client's address.
//!
//! Sans-IO: [`parse`] looks at the bytes read so far and says either how
//! many more bytes it needs at least, or what the header says and how long
//! it was. It never asks for a byte past the end of the header, so the
//! caller can read exactly what is needed and leave the SMTP dialogue
//! untouched in the socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The v1 signature (spec §2.1): `PROXY` and a space.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 line, CRLF included (spec §2.1: 107 bytes).
pub const V1_MAX: usize = 107;
/// Shortest v1 line: `PROXY UNKNOWN\r\n`.
const V1_MIN: usize = 15;
/// The 12-byte v2 signature (spec §2.2).
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Fixed part of a v2 header: signature, version/command, family, length.
const V2_FIXED: usize = 16;
/// Most address and TLV bytes we accept after the fixed part of a v2
/// header. The spec allows 65535; real proxies send the addresses (at most
/// 216 bytes for AF_UNIX) and a few small TLVs, so anything far larger is
/// refused rather than buffered.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed connection: the real client (`source`) and the address it
    /// connected to (`destination`).
    Proxied {
        /// The client's address and port.
        source: SocketAddr,
        /// The address and port the client connected to.
        destination: SocketAddr,
    },
    /// The proxy's own connection (v2 `LOCAL`, e.g. a health check), or a
    /// family it could not name (v1 `UNKNOWN`, v2 `AF_UNSPEC`/`AF_UNIX`):
    /// keep the addresses of the TCP connection itself.
    Local,
}

/// Where parsing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// The header is not complete: at least `need` more bytes are required
    /// (and reading exactly that many can never go past its end).
    Incomplete {
        /// Bytes to read next, at least 1.
        need: usize,
    },
    /// The header is complete and `len` bytes long.
    Done {
        /// What it says.
        header: Header,
        /// Its length in bytes.
        len: usize,
    },
}

/// Why a header was refused; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Neither a v1 nor a v2 signature.
    #[error("no PROXY protocol signature")]
    NoSignature,
    /// A v1 line longer than 107 bytes (spec §2.1).
    #[error("PROXY v1 line longer than {V1_MAX} bytes")]
    V1TooLong,
    /// A v1 line that does not follow the grammar.
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    /// A v2 version other than 2 or a command other than LOCAL/PROXY.
    #[error("unsupported PROXY v2 version or command {0:#04x}")]
    V2Command(u8),
    /// A v2 header whose length field is over [`V2_MAX_PAYLOAD`].
    #[error("PROXY v2 header of {0} bytes is over the limit of {V2_MAX_PAYLOAD}")]
    V2TooLong(usize),
    /// A v2 header too short for the addresses its family needs.
    #[error("PROXY v2 header too short for its address family")]
    V2Short,
    /// A v2 address family or transport the spec leaves unassigned (§2.2:
    /// "must be rejected as invalid by receivers").
    #[error("PROXY v2 address family and protocol {0:#04x} are not defined")]
    V2Family(u8),
    /// TLVs after the addresses that do not end where the header ends (a
    /// length that overruns it, or a cut-off TLV), as HAProxy refuses them.
    #[error("PROXY v2 TLVs overrun the header")]
    V2Tlv,
}

/// Parses the start of a connection as a PROXY header (spec §2.1, §2.2).
pub fn parse(input: &[u8]) -> Result<Parse, ProxyError> {
    let matches = |sig: &[u8]| {
        let n = input.len().min(sig.len());
        input.get(..n) == sig.get(..n)
    };
    match input.first() {
        // Either version may follow; v1's minimum is the smaller, so
        // reading it never goes past a header.
        None => Ok(Parse::Incomplete { need: V1_MIN }),
        Some(b'\r') if matches(V2_SIG) => parse_v2(input),
        Some(_) if matches(V1_PREFIX) => parse_v1(input),
        Some(_) => Err(ProxyError::NoSignature),
    }
}

fn parse_v1(input: &[u8]) -> Result<Parse, ProxyError> {
    let Some(lf) = memchr::memchr(b'\n', input) else {
        if input.len() >= V1_MAX {
            return Err(ProxyError::V1TooLong);
        }
        let need = if input.len() < V1_MIN {
            V1_MIN - input.len()
        } else if input.last() == Some(&b'\r') {
            1
        } else {
            2
        };
        return Ok(Parse::Incomplete { need });
    };
    let len = lf + 1;
    if len > V1_MAX {
        return Err(ProxyError::V1TooLong);
    }
    let line = input
        .get(..lf)
        .and_then(|l| l.strip_suffix(b"\r"))
        .ok_or(ProxyError::V1Malformed("line does not end in CRLF"))?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::V1Malformed("not ASCII"))?;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY", checked by the caller
    let header = match fields.next() {
        Some("UNKNOWN") => Header::Local, // the rest of the line is ignored (spec §2.1)
        Some(proto @ ("TCP4" | "TCP6")) => {
            let mut next = || fields.next().ok_or(ProxyError::V1Malformed("missing field"));
            let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
            if fields.next().is_some() {
                return Err(ProxyError::V1Malformed("too many fields"));
            }
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let bad = ProxyError::V1Malformed("bad address");
                if proto == "TCP4" {
                    Ipv4Addr::from_str(s).map(IpAddr::V4).map_err(|_| bad)
                } else {
                    Ipv6Addr::from_str(s).map(IpAddr::V6).map_err(|_| bad)
                }
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                // Digits only, and no leading zero (spec §2.1).
                let leading_zero = s.len() > 1 && s.starts_with('0');
                if s.is_empty() || s.len() > 5 || leading_zero || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ProxyError::V1Malformed("bad port"));
                }
                s.parse().map_err(|_| ProxyError::V1Malformed("bad port"))
            };
            Header::Proxied {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(ProxyError::V1Malformed("unknown protocol")),
    };
    Ok(Parse::Done { header, len })
}

fn parse_v2(input: &[u8]) -> Result<Parse, ProxyError> {
    let Some(fixed) = input.get(..V2_FIXED) else {
        return Ok(Parse::Incomplete {
            need: V2_FIXED - input.len(),
        });
    };
    let (ver_cmd, family) = match fixed {
        [.., vc, fam, _, _] => (*vc, *fam),
        _ => return Err(ProxyError::V2Short),
    };
    let payload = match fixed {
        [.., hi, lo] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err(ProxyError::V2Short),
    };
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(ProxyError::V2Command(ver_cmd));
    }
    let local = ver_cmd & 0x0f == 0;
    // Families UNSPEC, INET, INET6, UNIX; protocols UNSPEC, STREAM, DGRAM.
    // LOCAL ignores the family, whatever it says (spec §2.2).
    if !local && (family >> 4 > 3 || family & 0x0f > 2) {
        return Err(ProxyError::V2Family(family));
    }
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::V2TooLong(payload));
    }
    let len = V2_FIXED + payload;
    let Some(body) = input.get(V2_FIXED..len) else {
        return Ok(Parse::Incomplete {
            need: len - input.len(),
        });
    };
    // LOCAL (spec §2.2: "the receiver must ... use the real connection
    // endpoints"), and families we do not route: keep the real addresses.
    if local {
        return Ok(Parse::Done {
            header: Header::Local,
            len,
        });
    }
    let header = match family >> 4 {
        1 => {
            let a = body.get(..12).ok_or(ProxyError::V2Short)?;
            check_tlvs(body.get(12..).unwrap_or_default())?;
            let ip = |o: usize| -> IpAddr {
                let b: [u8; 4] = a.get(o..o + 4).and_then(|s| s.try_into().ok()).unwrap_or([0; 4]);
                IpAddr::V4(Ipv4Addr::from(b))
            };
            Header::Proxied {
                source: SocketAddr::new(ip(0), port_at(a, 8)),
                destination: SocketAddr::new(ip(4), port_at(a, 10)),
            }
        }
        2 => {
            let a = body.get(..36).ok_or(ProxyError::V2Short)?;
            check_tlvs(body.get(36..).unwrap_or_default())?;
            let ip = |o: usize| -> IpAddr {
                let b: [u8; 16] = a
                    .get(o..o + 16)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([0; 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            Header::Proxied {
                source: SocketAddr::new(ip(0), port_at(a, 32)),
                destination: SocketAddr::new(ip(16), port_at(a, 34)),
            }
        }
        // AF_UNSPEC and AF_UNIX: the rest (and all TLVs) is skipped.
        _ => Header::Local,
    };
    Ok(Parse::Done { header, len })
}

/// Walks the TLVs (type, 16-bit length, value; spec §2.2.7) that follow
/// the addresses: they are skipped, but must fill the rest exactly.
fn check_tlvs(mut rest: &[u8]) -> Result<(), ProxyError> {
    while let Some((&[_, hi, lo], after)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        rest = after.get(len..).ok_or(ProxyError::V2Tlv)?;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ProxyError::V2Tlv)
    }
}

fn port_at(a: &[u8], o: usize) -> u16 {
    match a.get(o..o + 2) {
        Some([hi, lo]) => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
