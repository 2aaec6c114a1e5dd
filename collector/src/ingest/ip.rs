//! The client IP: from the socket, or from X-Forwarded-For when the collector is told it sits
//! behind a proxy it trusts; then anonymized (IPv4 /24, IPv6 /48), kept, or dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hyper::header::HeaderMap;

use crate::config::IpMode;

/// The client's address. X-Forwarded-For is only believed when `trust_proxy` is set: its
/// leftmost valid address is the client as the proxy chain reports it.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trust_proxy: bool) -> IpAddr {
    if trust_proxy {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|s| s.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return canonical(ip);
        }
    }
    canonical(peer)
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Zero the host part: IPv4 keeps /24, IPv6 keeps /48.
pub fn anonymize(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// The address to store under the configured mode.
pub fn apply(mode: IpMode, ip: IpAddr) -> Option<IpAddr> {
    match mode {
        IpMode::Anonymize => Some(anonymize(ip)),
        IpMode::Keep => Some(canonical(ip)),
        IpMode::Drop => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymizes_v4_v6_and_mapped() {
        assert_eq!(
            anonymize("203.0.113.77".parse().unwrap()).to_string(),
            "203.0.113.0"
        );
        assert_eq!(
            anonymize("2001:db8:abcd:12:1:2:3:4".parse().unwrap()).to_string(),
            "2001:db8:abcd::"
        );
        assert_eq!(
            anonymize("::ffff:198.51.100.9".parse().unwrap()).to_string(),
            "198.51.100.0"
        );
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "garbage, 198.51.100.7, 10.0.0.1".parse().unwrap(),
        );
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &h, false), peer);
        assert_eq!(client_ip(peer, &h, true).to_string(), "198.51.100.7");
    }

    #[test]
    fn modes() {
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(apply(IpMode::Keep, ip), Some(ip));
        assert_eq!(apply(IpMode::Drop, ip), None);
    }
}
