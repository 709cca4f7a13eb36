//! Address blocks in CIDR notation (`127.0.0.0/8`, `::1/128`, or a bare
//! address), used by settings that name groups of clients.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside this block. IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits - prefix.min(bits));
    if shift >= 128 {
        return true;
    }
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| format!("{s:?} is not an address or address/prefix"))?
            .to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: prefix must be 0..={max}")),
            },
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        assert!(c("127.0.0.0/8").contains("127.1.2.3".parse().unwrap()));
        assert!(!c("127.0.0.0/8").contains("128.0.0.1".parse().unwrap()));
        assert!(c("::1/128").contains("::1".parse().unwrap()));
        assert!(!c("::1").contains("::2".parse().unwrap()));
        assert!(c("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(c("::/0").contains("2001:db8::1".parse().unwrap()));
        assert!(c("10.0.0.0/8").contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!c("10.0.0.0/8").contains("2001:db8::1".parse().unwrap()));
        assert!(c("2001:db8::/32").contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(c("192.0.2.7").contains("192.0.2.7".parse().unwrap()));
        assert_eq!(c("192.0.2.7").to_string(), "192.0.2.7/32");
        assert!(c("[::1]").contains("::1".parse().unwrap()));
    }

    #[test]
    fn errors() {
        for bad in ["", "x", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/a"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
