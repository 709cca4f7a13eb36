//! PROXY header tables: v1 and v2, every split, and the refusals.

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxied(src: &str, dst: &str) -> Header {
    Header::Proxied {
        source: addr(src),
        destination: addr(dst),
    }
}

/// Feeds `bytes` the way the server reads them (exactly `need` at a time)
/// and checks the parser never asks for more than the header holds.
fn feed(bytes: &[u8]) -> Result<(Header, usize), ProxyError> {
    let mut have = 0;
    loop {
        match parse(&bytes[..have])? {
            Parse::Done { header, len } => return Ok((header, len)),
            Parse::Incomplete { need } => {
                assert!(need >= 1);
                assert!(have + need <= bytes.len(), "asked past the end: {have}+{need}");
                have += need;
            }
        }
    }
}

#[test]
fn v1_tcp4_tcp6_unknown() {
    let cases: &[(&str, Header)] = &[
        (
            "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
            proxied("192.0.2.1:56324", "198.51.100.2:25"),
        ),
        (
            "PROXY TCP6 2001:db8::1 2001:db8::2 4000 2525\r\n",
            proxied("[2001:db8::1]:4000", "[2001:db8::2]:2525"),
        ),
        ("PROXY UNKNOWN\r\n", Header::Local),
        (
            "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
            Header::Local,
        ),
    ];
    for (line, want) in cases {
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"EHLO x\r\n");
        assert_eq!(feed(&bytes), Ok((*want, line.len())), "{line:?}");
    }
}

#[test]
fn v1_longest_line_fits() {
    let x = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY UNKNOWN {x} {x} 65535 65535\r\n");
    assert_eq!(line.len(), V1_MAX);
    assert_eq!(feed(line.as_bytes()), Ok((Header::Local, 107)));
    let tcp6 = format!("PROXY TCP6 {x} {x} 65535 65535\r\n");
    assert!(matches!(feed(tcp6.as_bytes()), Ok((Header::Proxied { .. }, 104))));
}

#[test]
fn v1_refusals() {
    let bad: &[&str] = &[
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 x\r\n",
        "PROXY TCP4 2001:db8::1 198.51.100.2 1 25\r\n",
        "PROXY TCP6 192.0.2.1 2001:db8::2 1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n",
        // No leading zeros in ports (spec §2.1), as in addresses.
        "PROXY TCP4 192.0.2.1 198.51.100.2 04990 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 4990 025\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 00 25\r\n",
        "PROXY TCP4  192.0.2.1 198.51.100.2 1 25\r\n",
        "PROXY UDP4 192.0.2.1 198.51.100.2 1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 25\n\n\n\n\n",
        "EHLO client.example\r\n",
        "proxy TCP4 192.0.2.1 198.51.100.2 1 25\r\n",
    ];
    for line in bad {
        assert!(feed(line.as_bytes()).is_err(), "accepted {line:?}");
    }
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
    assert_eq!(feed(long.as_bytes()), Err(ProxyError::V1TooLong));
    // Refused as soon as the bytes cannot be a signature.
    assert_eq!(parse(b"EH"), Err(ProxyError::NoSignature));
    assert_eq!(parse(b"\r\n\r\n\0X"), Err(ProxyError::NoSignature));
}

fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut v = V2_SIG.to_vec();
    v.push(0x20 | cmd);
    v.push(fam);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn v2_proxy_ipv4_and_ipv6_with_tlvs_skipped() {
    let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
    body.extend_from_slice(&56324u16.to_be_bytes());
    body.extend_from_slice(&25u16.to_be_bytes());
    // TLVs: PP2_TYPE_ALPN "smtp", PP2_TYPE_UNIQUE_ID: ignored.
    body.extend_from_slice(&[0x01, 0, 4, b's', b'm', b't', b'p', 0x05, 0, 2, 9, 9]);
    let mut bytes = v2(1, 0x11, &body);
    let len = bytes.len();
    bytes.extend_from_slice(b"EHLO x\r\n");
    assert_eq!(
        feed(&bytes),
        Ok((proxied("192.0.2.1:56324", "198.51.100.2:25"), len))
    );

    let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut body = src.octets().to_vec();
    body.extend_from_slice(&dst.octets());
    body.extend_from_slice(&4000u16.to_be_bytes());
    body.extend_from_slice(&2525u16.to_be_bytes());
    let bytes = v2(1, 0x21, &body);
    assert_eq!(
        feed(&bytes),
        Ok((proxied("[2001:db8::1]:4000", "[2001:db8::2]:2525"), bytes.len()))
    );
}

#[test]
fn v2_local_unspec_and_unix_keep_the_connection() {
    let local = v2(0, 0x00, &[]);
    assert_eq!(feed(&local), Ok((Header::Local, 16)));
    // LOCAL with addresses: still the real connection (spec §2.2).
    let local_addr = v2(0, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    assert_eq!(feed(&local_addr), Ok((Header::Local, 28)));
    let unix = v2(1, 0x31, &[0u8; 216]);
    assert_eq!(feed(&unix), Ok((Header::Local, 232)));
    // LOCAL ignores the family, even one that is not assigned (spec §2.2:
    // "discard the protocol block including the family").
    for fam in [0x41, 0x13, 0xff, 0x51] {
        assert_eq!(feed(&v2(0, fam, b"abcd")), Ok((Header::Local, 20)), "{fam:#04x}");
    }
}

#[test]
fn v2_refusals() {
    let mut bad_version = v2(1, 0x11, &[0; 12]);
    bad_version[12] = 0x11;
    assert_eq!(feed(&bad_version), Err(ProxyError::V2Command(0x11)));
    let mut bad_cmd = v2(1, 0x11, &[0; 12]);
    bad_cmd[12] = 0x22;
    assert_eq!(feed(&bad_cmd), Err(ProxyError::V2Command(0x22)));
    // Unassigned family or protocol nibbles in a PROXY command.
    for (cmd, fam) in [(1, 0x13), (1, 0x1f), (1, 0x23), (1, 0x41), (1, 0xf1)] {
        assert_eq!(
            feed(&v2(cmd, fam, &[0; 36])),
            Err(ProxyError::V2Family(fam)),
            "{fam:#04x}"
        );
    }
    assert_eq!(feed(&v2(1, 0x11, &[0; 11])), Err(ProxyError::V2Short));
    // TLVs must end where the header ends: a value that runs past it, or
    // a TLV cut off inside its own type and length.
    for tlvs in [
        &[0x01, 0, 5, b's', b'm', b't', b'p'][..],
        &[0x04, 0, 0, 0x05, 0][..],
    ] {
        let mut body = vec![0; 12];
        body.extend_from_slice(tlvs);
        assert_eq!(feed(&v2(1, 0x11, &body)), Err(ProxyError::V2Tlv), "{tlvs:?}");
        let mut body = vec![0; 36];
        body.extend_from_slice(tlvs);
        assert_eq!(feed(&v2(1, 0x21, &body)), Err(ProxyError::V2Tlv), "{tlvs:?}");
    }
    assert_eq!(feed(&v2(1, 0x21, &[0; 35])), Err(ProxyError::V2Short));
    // The length is checked from the fixed part alone, before buffering.
    let mut huge = V2_SIG.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(parse(&huge), Err(ProxyError::V2TooLong(65535)));
}
