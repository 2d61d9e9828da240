//! Which IP addresses the outbound client may connect to.
//!
//! Webhook and integration URLs are chosen by users of the Flagstaff API, so
//! every request the server makes on their behalf is a potential server-side
//! request forgery (SSRF): a URL such as `http://169.254.169.254/latest/meta-data`
//! would otherwise let an API user read cloud credentials, and
//! `http://127.0.0.1:5432/` would let them probe services that trust the
//! loopback interface. The policy here is deliberately a *deny-list of
//! non-public ranges with an explicit operator allow-list*, and it is applied
//! to the concrete address the socket is about to connect to (see
//! [`crate::client`]), never to the host name in the URL, because names can
//! resolve (or later re-resolve) to anything.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Name of the repeatable command-line flag that extends the allow-list.
pub const ALLOW_OUTBOUND_FLAG: &str = "--allow-outbound";
/// Name of the environment variable (comma-separated CIDRs) that extends the
/// allow-list.
pub const ALLOW_OUTBOUND_ENV: &str = "FLAGSTAFF_ALLOW_OUTBOUND";

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

/// IPv4 ranges that are never reachable from the public internet (or are
/// not unicast at all). Order matters only for the label reported: the more
/// specific `255.255.255.255/32` is listed before `240.0.0.0/4`.
const BLOCKED_V4: &[(Ipv4Net, &str)] = &[
    // Linux treats a connect() to 0.0.0.0 as a connect to the local host.
    (v4(0, 0, 0, 0, 8), "\"this network\""),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    // 169.254.169.254 is the AWS/GCP/Azure/OpenStack metadata service.
    (v4(169, 254, 0, 0, 16), "link-local / cloud metadata"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

/// IPv6 ranges that are never public unicast destinations.
///
/// `::ffff:0:0/96` (IPv4-mapped) is *not* listed: such an address is the
/// embedded IPv4 address at the socket level, so it is judged as that IPv4
/// address instead (see [`OutboundPolicy::check`]).
const BLOCKED_V6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    // Deprecated IPv4-compatible addresses (RFC 4291 §2.5.5.1). Nothing
    // legitimate uses them, and some stacks route them to the embedded
    // IPv4 address, so the whole /96 is refused.
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        "IPv4-compatible (deprecated)",
    ),
    // Local-use NAT64 prefix (RFC 8215): the translator is on the operator's
    // network, so whatever it reaches is internal by definition.
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    // Includes the AWS IPv6 metadata endpoint fd00:ec2::254.
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local / cloud metadata",
    ),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site-local (deprecated)",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// Well-known NAT64 prefix (RFC 6052): the last 32 bits are an IPv4 address
/// that a NAT64 gateway will connect to on our behalf.
const NAT64_WELL_KNOWN: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
/// 6to4 (RFC 3056): bits 16..48 are an IPv4 address a relay will deliver to.
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// Every blocked range with its label, IPv4 first. Exposed for documentation
/// (e.g. a `--help` text or an admin page) and for tests.
pub fn blocked_ranges() -> Vec<(IpNet, &'static str)> {
    BLOCKED_V4
        .iter()
        .map(|(net, label)| (IpNet::V4(*net), *label))
        .chain(
            BLOCKED_V6
                .iter()
                .map(|(net, label)| (IpNet::V6(*net), *label)),
        )
        .collect()
}

/// How a blocked IPv4 address was reached from an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`: the kernel connects to `a.b.c.d` directly.
    Ipv4Mapped,
    /// `64:ff9b::a.b.c.d`: a NAT64 gateway connects to `a.b.c.d`.
    Nat64,
    /// `2002:AABB:CCDD::/48`: a 6to4 relay delivers to `AA.BB.CC.DD`.
    SixToFour,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Embedding::Ipv4Mapped => "IPv4-mapped IPv6",
            Embedding::Nat64 => "NAT64",
            Embedding::SixToFour => "6to4",
        })
    }
}

/// Why an address was refused: the blocked range it falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The address that was checked.
    pub addr: IpAddr,
    /// The blocked range that matched (an IPv4 range when the address embeds
    /// a blocked IPv4 address).
    pub range: IpNet,
    /// Human-readable name of the range, e.g. `"loopback"`.
    pub label: &'static str,
    /// Set when the match was on an IPv4 address embedded in `addr`.
    pub embedded: Option<Embedding>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is in {} ({}", self.addr, self.range, self.label)?;
        if let Some(embedding) = self.embedded {
            write!(f, ", via {embedding}")?;
        }
        f.write_str(")")
    }
}

/// An allow-list entry that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {origin} entry '{entry}': {detail}; expected an IP address or CIDR such as 127.0.0.0/8 or ::1/128"
)]
pub struct PolicyError {
    /// Where the entry came from: [`ALLOW_OUTBOUND_FLAG`] or [`ALLOW_OUTBOUND_ENV`].
    pub origin: &'static str,
    /// The offending entry, verbatim (allow-list entries are not secret).
    pub entry: String,
    /// What is wrong with it.
    pub detail: String,
}

/// Parse one allow-list entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare
/// address, which means just that address (`/32` or `/128`). Host bits set
/// below the prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`), which is what
/// an operator writing that almost certainly meant.
pub fn parse_cidr(entry: &str) -> Result<IpNet, String> {
    let trimmed = entry.trim();
    if trimmed.is_empty() {
        return Err("empty entry".to_owned());
    }
    match trimmed.split_once('/') {
        None => trimmed
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| "not an IP address".to_owned()),
        Some((addr, prefix)) => {
            let addr = addr
                .parse::<IpAddr>()
                .map_err(|_| "the part before '/' is not an IP address".to_owned())?;
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the prefix length after '/' must be a number".to_owned());
            }
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = u8::from_str(prefix)
                .ok()
                .filter(|len| *len <= max)
                .ok_or_else(|| format!("prefix length must be between 0 and {max}"))?;
            IpNet::new(addr, len)
                .map(|net| net.trunc())
                .map_err(|_| format!("prefix length must be between 0 and {max}"))
        }
    }
}

/// The connect-time address policy: everything is permitted except the
/// blocked ranges, and an operator-supplied allow-list overrides the blocks.
///
/// The default policy has an empty allow-list, i.e. it is the strict one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow: Vec<IpNet>,
}

impl OutboundPolicy {
    /// A policy whose allow-list is exactly `allow`.
    pub fn with_allowed(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Build from `--allow-outbound` values (one CIDR or address each).
    pub fn from_cidrs(cidrs: &[String]) -> Result<Self, PolicyError> {
        let mut allow = Vec::with_capacity(cidrs.len());
        for entry in cidrs {
            allow.push(parse_entry(ALLOW_OUTBOUND_FLAG, entry)?);
        }
        Ok(Self { allow })
    }

    /// Build from the union of `--allow-outbound` values and the
    /// comma-separated `FLAGSTAFF_ALLOW_OUTBOUND` value. Empty items in the
    /// environment value (`"a,,b,"`) are ignored so that shell-assembled
    /// lists work; an empty command-line value is an error because it is
    /// almost certainly a mistake.
    pub fn from_env_and_args(args: &[String], env: Option<&str>) -> Result<Self, PolicyError> {
        let mut policy = Self::from_cidrs(args)?;
        if let Some(env) = env {
            for entry in env.split(',').filter(|e| !e.trim().is_empty()) {
                policy.allow.push(parse_entry(ALLOW_OUTBOUND_ENV, entry)?);
            }
        }
        Ok(policy)
    }

    /// The operator's allow-list.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    fn allow_listed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Whether `ip` may be connected to.
    pub fn is_permitted(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }

    /// Check one concrete destination address.
    ///
    /// An allow-listed address is always permitted. IPv4-mapped IPv6
    /// addresses are judged (including against the allow-list) as the IPv4
    /// address they are, because that is where the kernel connects. NAT64
    /// and 6to4 addresses are refused when the embedded IPv4 address is
    /// blocked, since the gateway/relay would deliver there; they are only
    /// permitted by allow-listing the IPv6 address itself, because
    /// allow-listing `127.0.0.0/8` for a local test receiver must not open
    /// a path to some gateway's loopback.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        if self.allow_listed(ip) {
            return Ok(());
        }
        match ip {
            IpAddr::V4(v4) => classify_v4(v4).map_err(|(range, label)| Blocked {
                addr: ip,
                range: IpNet::V4(range),
                label,
                embedded: None,
            }),
            IpAddr::V6(v6) => {
                if let Some(mapped) = v6.to_ipv4_mapped() {
                    if self.allow_listed(IpAddr::V4(mapped)) {
                        return Ok(());
                    }
                    return classify_v4(mapped).map_err(|(range, label)| Blocked {
                        addr: ip,
                        range: IpNet::V4(range),
                        label,
                        embedded: Some(Embedding::Ipv4Mapped),
                    });
                }
                classify_v6(v6).map_err(|(range, label, embedded)| Blocked {
                    addr: ip,
                    range,
                    label,
                    embedded,
                })
            }
        }
    }
}

fn parse_entry(origin: &'static str, entry: &str) -> Result<IpNet, PolicyError> {
    parse_cidr(entry).map_err(|detail| PolicyError {
        origin,
        entry: entry.to_owned(),
        detail,
    })
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), (Ipv4Net, &'static str)> {
    match BLOCKED_V4.iter().find(|(net, _)| net.contains(&ip)) {
        Some((net, label)) => Err((*net, label)),
        None => Ok(()),
    }
}

type V6Block = (IpNet, &'static str, Option<Embedding>);

fn classify_v6(ip: Ipv6Addr) -> Result<(), V6Block> {
    if let Some((net, label)) = BLOCKED_V6.iter().find(|(net, _)| net.contains(&ip)) {
        return Err((IpNet::V6(*net), label, None));
    }
    let bits = u128::from(ip);
    let embedded = if NAT64_WELL_KNOWN.contains(&ip) {
        Some((Ipv4Addr::from(bits as u32), Embedding::Nat64))
    } else if SIX_TO_FOUR.contains(&ip) {
        Some((Ipv4Addr::from((bits >> 80) as u32), Embedding::SixToFour))
    } else {
        None
    };
    match embedded {
        Some((v4, how)) => {
            classify_v4(v4).map_err(|(net, label)| (IpNet::V4(net), label, Some(how)))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn strict() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    #[test]
    fn explicit_ipv4_boundaries() {
        let p = strict();
        let blocked = [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.0",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.0.0",
            "169.254.169.254",
            "169.254.255.255",
            "172.16.0.0",
            "172.31.255.255",
            "192.0.0.0",
            "192.0.0.255",
            "192.0.2.0",
            "192.0.2.255",
            "192.168.0.0",
            "192.168.255.255",
            "198.18.0.0",
            "198.19.255.255",
            "198.51.100.0",
            "198.51.100.255",
            "203.0.113.0",
            "203.0.113.255",
            "224.0.0.0",
            "239.255.255.255",
            "240.0.0.0",
            "255.255.255.254",
            "255.255.255.255",
        ];
        for addr in blocked {
            assert!(!p.is_permitted(ip(addr)), "{addr} should be blocked");
        }
        let permitted = [
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "191.255.255.255",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
            "8.8.8.8",
        ];
        for addr in permitted {
            assert!(p.is_permitted(ip(addr)), "{addr} should be permitted");
        }
    }

    #[test]
    fn explicit_ipv6_boundaries() {
        let p = strict();
        let blocked = [
            "::",
            "::1",
            "::2",
            "::ffff",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b:1::",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            "100::",
            "100::ffff:ffff:ffff:ffff",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "fc00::",
            "fd00:ec2::254",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::",
            "fe80::1",
            "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fec0::",
            "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "ff00::",
            "ff02::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for addr in blocked {
            assert!(!p.is_permitted(ip(addr)), "{addr} should be blocked");
        }
        let permitted = [
            "::1:0:0",
            "64:ff9b:2::",
            "100:0:0:1::",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2606:4700:4700::1111",
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe00::",
            "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for addr in permitted {
            assert!(p.is_permitted(ip(addr)), "{addr} should be permitted");
        }
    }

    /// Table-driven: the first and last address of every blocked range is
    /// refused with that range (or a more specific one) reported, and the
    /// neighbours just outside are permitted unless another range covers them.
    #[test]
    fn every_range_boundary() {
        let p = strict();
        let ranges = blocked_ranges();
        let covered = |addr: IpAddr| ranges.iter().any(|(net, _)| net.contains(&addr));
        for (net, label) in &ranges {
            for edge in [net.network(), net.broadcast()] {
                let err = p.check(edge).expect_err("edge must be blocked");
                assert!(
                    err.range == *net || net.contains(&err.range),
                    "{edge}: reported {} but expected {net} ({label})",
                    err.range
                );
            }
            let (below, above) = match net {
                IpNet::V4(n) => {
                    let lo = u32::from(n.network());
                    let hi = u32::from(n.broadcast());
                    (
                        lo.checked_sub(1).map(|x| IpAddr::V4(x.into())),
                        hi.checked_add(1).map(|x| IpAddr::V4(x.into())),
                    )
                }
                IpNet::V6(n) => {
                    let lo = u128::from(n.network());
                    let hi = u128::from(n.broadcast());
                    (
                        lo.checked_sub(1).map(|x| IpAddr::V6(x.into())),
                        hi.checked_add(1).map(|x| IpAddr::V6(x.into())),
                    )
                }
            };
            for outside in [below, above].into_iter().flatten() {
                let embedded_block = match outside {
                    IpAddr::V6(v6) => {
                        v6.to_ipv4_mapped().is_some()
                            || NAT64_WELL_KNOWN.contains(&v6)
                            || SIX_TO_FOUR.contains(&v6)
                    }
                    IpAddr::V4(_) => false,
                };
                if !covered(outside) && !embedded_block {
                    assert!(
                        p.is_permitted(outside),
                        "{outside} (just outside {net}) should be permitted"
                    );
                }
            }
        }
    }

    #[test]
    fn ipv4_mapped_is_judged_as_ipv4() {
        let p = strict();
        let err = p.check(ip("::ffff:127.0.0.1")).unwrap_err();
        assert_eq!(err.range, "127.0.0.0/8".parse::<IpNet>().unwrap());
        assert_eq!(err.embedded, Some(Embedding::Ipv4Mapped));
        assert!(err.to_string().contains("via IPv4-mapped IPv6"));
        assert!(!p.is_permitted(ip("::ffff:169.254.169.254")));
        assert!(!p.is_permitted(ip("::ffff:10.0.0.1")));
        assert!(!p.is_permitted(ip("::ffff:0.0.0.0")));
        assert!(p.is_permitted(ip("::ffff:8.8.8.8")));

        let allow = OutboundPolicy::from_cidrs(&["127.0.0.0/8".into()]).unwrap();
        assert!(allow.is_permitted(ip("::ffff:127.0.0.1")));
        assert!(allow.is_permitted(ip("127.0.0.1")));
        assert!(!allow.is_permitted(ip("::1")));
    }

    #[test]
    fn nat64_embedding() {
        let p = strict();
        let err = p.check(ip("64:ff9b::127.0.0.1")).unwrap_err();
        assert_eq!(err.embedded, Some(Embedding::Nat64));
        assert_eq!(err.label, "loopback");
        assert!(!p.is_permitted(ip("64:ff9b::a9fe:a9fe"))); // 169.254.169.254
        assert!(!p.is_permitted(ip("64:ff9b::10.0.0.1")));
        assert!(p.is_permitted(ip("64:ff9b::8.8.8.8")));
        // Allow-listing the IPv4 range does not open the NAT64 path to it.
        let allow = OutboundPolicy::from_cidrs(&["127.0.0.0/8".into()]).unwrap();
        assert!(!allow.is_permitted(ip("64:ff9b::127.0.0.1")));
        let allow6 = OutboundPolicy::from_cidrs(&["64:ff9b::/96".into()]).unwrap();
        assert!(allow6.is_permitted(ip("64:ff9b::127.0.0.1")));
    }

    #[test]
    fn six_to_four_embedding() {
        let p = strict();
        let err = p.check(ip("2002:7f00:1::1")).unwrap_err();
        assert_eq!(err.embedded, Some(Embedding::SixToFour));
        assert!(!p.is_permitted(ip("2002:a9fe:a9fe::")));
        assert!(!p.is_permitted(ip("2002:c0a8:0101::")));
        assert!(p.is_permitted(ip("2002:808:808::1")));
    }

    #[test]
    fn allow_list_overrides_blocks() {
        let p = OutboundPolicy::from_cidrs(&["10.1.0.0/16".into(), "fd00::/8".into()]).unwrap();
        assert!(p.is_permitted(ip("10.1.2.3")));
        assert!(!p.is_permitted(ip("10.2.0.1")));
        assert!(p.is_permitted(ip("fd00:ec2::254")));
        assert!(!p.is_permitted(ip("fc00::1")));
        assert!(p.is_permitted(ip("8.8.8.8")));
    }

    #[test]
    fn blocked_display_names_range() {
        let err = strict().check(ip("169.254.169.254")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "169.254.169.254 is in 169.254.0.0/16 (link-local / cloud metadata)"
        );
        let err = strict().check(ip("255.255.255.255")).unwrap_err();
        assert_eq!(err.label, "broadcast");
    }

    #[test]
    fn cidr_parser_accepts_good_input() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" 127.0.0.0/8 ", "127.0.0.0/8"),
            ("127.0.0.1", "127.0.0.1/32"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("::1/128", "::1/128"),
            ("fd00::/8", "fd00::/8"),
            ("fd00:ec2::254/64", "fd00:ec2::/64"),
            ("::/0", "::/0"),
            ("::ffff:127.0.0.1/128", "::ffff:127.0.0.1/128"),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_cidr(input).unwrap(),
                want.parse::<IpNet>().unwrap(),
                "{input}"
            );
        }
    }

    #[test]
    fn cidr_parser_rejects_bad_input() {
        let cases = [
            "",
            "   ",
            "banana",
            "10.0.0/8",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/8/9",
            "10.0.0.0/ 8",
            "10.0.0.0/+8",
            "::/129",
            "::1/999",
            "[::1]",
            "256.0.0.0/8",
            "example.com",
            "10.0.0.0/8,",
        ];
        for input in cases {
            assert!(parse_cidr(input).is_err(), "{input:?} should be rejected");
        }
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err(),
            "prefix length must be between 0 and 32"
        );
        assert_eq!(
            parse_cidr("::/129").unwrap_err(),
            "prefix length must be between 0 and 128"
        );
    }

    #[test]
    fn policy_errors_name_the_entry_and_origin() {
        let err = OutboundPolicy::from_cidrs(&["127.0.0.0/8".into(), "nope/8".into()]).unwrap_err();
        assert_eq!(err.origin, ALLOW_OUTBOUND_FLAG);
        assert_eq!(err.entry, "nope/8");
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid --allow-outbound entry 'nope/8':"),
            "{msg}"
        );

        let err =
            OutboundPolicy::from_env_and_args(&[], Some("127.0.0.0/8, 10.0.0.0/40")).unwrap_err();
        assert_eq!(err.origin, ALLOW_OUTBOUND_ENV);
        assert!(
            err.to_string()
                .contains("FLAGSTAFF_ALLOW_OUTBOUND entry ' 10.0.0.0/40'")
        );
        assert!(err.to_string().contains("between 0 and 32"));
    }

    #[test]
    fn env_and_args_are_merged() {
        let p = OutboundPolicy::from_env_and_args(
            &["127.0.0.0/8".into()],
            Some(" ::1/128 ,, 10.9.0.0/16,"),
        )
        .unwrap();
        let want: Vec<IpNet> = ["127.0.0.0/8", "::1/128", "10.9.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(p.allowed(), want.as_slice());

        let empty = OutboundPolicy::from_env_and_args(&[], Some("")).unwrap();
        assert!(empty.allowed().is_empty());
        let none = OutboundPolicy::from_env_and_args(&[], None).unwrap();
        assert_eq!(none, OutboundPolicy::default());
        assert!(OutboundPolicy::from_cidrs(&[String::new()]).is_err());
    }
}
