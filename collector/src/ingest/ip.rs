//! The client IP: from the socket, or from the forwarding header of a proxy the collector is
//! told it sits behind; then anonymized (IPv4 /24, IPv6 /48), kept, or dropped. Also the key
//! per-IP limits count by: an IPv4 address, or an IPv6 /64 (every IPv6 host has a /64 to pick
//! addresses from).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hyper::header::HeaderMap;
use serde::Deserialize;

/// What to store of the client IP.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpMode {
    #[default]
    Anonymize,
    Keep,
    Drop,
}

/// How many proxies in front of the collector are trusted to report the client's address, as
/// Express's `trust proxy` takes it: `false` (0, the default: the socket's address), `true`
/// (1: the proxy right in front), or a number of hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hops(pub usize);

impl FromStr for Hops {
    type Err = String;
    fn from_str(s: &str) -> Result<Hops, String> {
        match s {
            "true" => Ok(Hops(1)),
            "false" => Ok(Hops(0)),
            n => n
                .parse()
                .map(Hops)
                .map_err(|_| format!("{s:?}: expected true, false or a number of proxies")),
        }
    }
}

impl<'de> Deserialize<'de> for Hops {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hops, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Flag(bool),
            Count(usize),
        }
        Ok(match Given::deserialize(d)? {
            Given::Flag(b) => Hops(usize::from(b)),
            Given::Count(n) => Hops(n),
        })
    }
}

/// The header trusted proxies report the client in.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`
    Forwarded,
}

/// Which proxies to believe, and where they say who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrustProxy {
    pub hops: Hops,
    pub header: ProxyHeader,
}

/// The client's address. Each proxy appends the address it received the request from, so the
/// entries a client writes itself come first: with `hops` trusted proxies, the client is the
/// `hops`-th entry from the right (or the left-most, when there are fewer). Entries that are not
/// addresses stop the walk; with none to believe, the socket's address is the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trust: TrustProxy) -> IpAddr {
    let hops = trust.hops.0;
    if hops == 0 {
        return canonical(peer);
    }
    let mut client = None;
    let (name, for_only) = match trust.header {
        ProxyHeader::XForwardedFor => ("x-forwarded-for", false),
        ProxyHeader::Forwarded => ("forwarded", true),
    };
    let entries = headers
        .get_all(name)
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','))
        .map(|e| if for_only { forwarded_for(e) } else { Some(e) });
    for entry in entries.take(hops) {
        match entry.and_then(parse_addr) {
            Some(ip) => client = Some(ip),
            None => break,
        }
    }
    canonical(client.unwrap_or(peer))
}

/// The `for=` value of one element of a `Forwarded` header.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v)
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally in quotes.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split(']')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    s.parse().ok().or_else(|| {
        let (host, port) = s.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The key per-IP limits count by: an IPv4 address, or the /64 of an IPv6 one.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
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

    fn trust(hops: usize, header: ProxyHeader) -> TrustProxy {
        TrustProxy {
            hops: Hops(hops),
            header,
        }
    }

    #[test]
    fn forwarded_for_is_read_from_the_trusted_end() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.1, 198.51.100.7, 10.0.0.1".parse().unwrap(),
        );
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let xff =
            |h: &HeaderMap, n| client_ip(peer, h, trust(n, ProxyHeader::XForwardedFor)).to_string();
        assert_eq!(xff(&h, 0), "127.0.0.1", "not trusted");
        assert_eq!(xff(&h, 1), "10.0.0.1");
        assert_eq!(xff(&h, 2), "198.51.100.7");
        assert_eq!(xff(&h, 3), "203.0.113.1");
        assert_eq!(
            xff(&h, 9),
            "203.0.113.1",
            "fewer entries than hops: the left-most"
        );
        h.append("x-forwarded-for", "192.0.2.9:4711".parse().unwrap());
        assert_eq!(
            xff(&h, 1),
            "192.0.2.9",
            "a second header line comes after the first"
        );
        h.insert(
            "x-forwarded-for",
            "203.0.113.1, garbage, 10.0.0.1".parse().unwrap(),
        );
        assert_eq!(
            xff(&h, 3),
            "10.0.0.1",
            "the walk stops at what is not an address"
        );
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(xff(&h, 1), "127.0.0.1");
    }

    #[test]
    fn the_forwarded_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#
                .parse()
                .unwrap(),
        );
        h.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let fwd =
            |h: &HeaderMap, n| client_ip(peer, h, trust(n, ProxyHeader::Forwarded)).to_string();
        assert_eq!(fwd(&h, 1), "2001:db8:cafe::17");
        assert_eq!(fwd(&h, 2), "192.0.2.60");
        h.insert("forwarded", "for=unknown".parse().unwrap());
        assert_eq!(fwd(&h, 1), "127.0.0.1");
    }

    #[test]
    fn hops_from_flags_and_files() {
        assert_eq!("true".parse::<Hops>(), Ok(Hops(1)));
        assert_eq!("false".parse::<Hops>(), Ok(Hops(0)));
        assert_eq!("3".parse::<Hops>(), Ok(Hops(3)));
        assert!("maybe".parse::<Hops>().is_err());
        #[derive(Deserialize)]
        struct F {
            a: Hops,
            b: Hops,
        }
        let f: F = toml::from_str("a = true\nb = 2\n").unwrap();
        assert_eq!((f.a, f.b), (Hops(1), Hops(2)));
    }

    #[test]
    fn limits_key_ipv6_on_the_64() {
        let k = |s: &str| limit_key(s.parse().unwrap()).to_string();
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:ffff::9"), "2001:db8:1:2::");
        assert_eq!(k("203.0.113.9"), "203.0.113.9");
        assert_eq!(k("::ffff:203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn modes() {
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(apply(IpMode::Keep, ip), Some(ip));
        assert_eq!(apply(IpMode::Drop, ip), None);
    }
}
