//! Where the collector may call out to: probe targets are checked before they are staged,
//! imported or called. By default a probe may not reach private, loopback, link-local or
//! otherwise internal addresses (in any spelling: decimal, hex or octal IPv4, IPv6 with
//! an embedded IPv4), internal names, or the collector itself; a development switch
//! allows local servers. The runtime's own hooks (`/__scheduled`, `/cdn-cgi/`) are never
//! allowed, so a probe cannot make the collector run its cron from inside its cron.

use crate::error::FieldError;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a deployment allows probes to reach.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Development only: loopback and private addresses are allowed (local test servers).
    pub allow_private: bool,
    /// The collector's own hosts (the one a request came in on, and every name the
    /// deployment lists), refused unless `allow_private`.
    pub own_hosts: Vec<String>,
}

fn refused(message: impl Into<String>) -> FieldError {
    FieldError::new("target_not_allowed", "url", message)
}

/// The parts of an http(s) URL the policy looks at.
struct Target<'a> {
    host: String,
    path: &'a str,
}

/// Decodes `%XX` escapes (invalid ones stay as they are), so `%2e` and `%5f` cannot hide
/// a dot segment or a hook path from the checks.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split_url(url: &str) -> Result<Target<'_>, FieldError> {
    // URL parsers drop tabs and newlines and map fullwidth characters to ASCII, so the
    // host the collector would call could differ from the text checked here. A probe URL
    // is therefore plain printable ASCII (internationalised hosts in punycode).
    if !url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(refused(
            "a probe url is printable ASCII without spaces (write international hosts in punycode)",
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| FieldError::new("invalid_value", "url", "url must be http(s)"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(refused("a url may not carry credentials (user@host)"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| refused("unclosed IPv6 address"))?;
        let port = v6[close + 1..].strip_prefix(':');
        if !v6[..close]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(refused(
                "the IPv6 address has characters an address cannot have",
            ));
        }
        (&v6[..close], port)
    } else {
        let mut parts = authority.splitn(2, ':');
        let host = parts.next().unwrap_or_default();
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(refused("the host has characters a host cannot have"));
        }
        (host, parts.next())
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(refused("the port is not a number"));
    }
    if host.is_empty() {
        return Err(refused("the url has no host"));
    }
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    // `.` and `..` segments (also as `%2e`) are resolved by URL parsers: refuse them, so
    // the path checked is the path called.
    if percent_decoded(path)
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(refused(
            "a probe url may not have `.` or `..` path segments",
        ));
    }
    Ok(Target {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        path,
    })
}

/// Parses an IPv4 address the way URL parsers and `inet_aton` do: 1 to 4 parts, each
/// decimal, `0x` hex or `0` octal (`2130706433`, `0x7f.1`, `0177.0.0.1` are all
/// 127.0.0.1). `None` when the host is not numeric; `Some(Err)` when it is numeric but
/// not an address.
fn parse_ipv4_loose(host: &str) -> Option<Result<Ipv4Addr, ()>> {
    let parts: Vec<&str> = host.split('.').collect();
    let numeric = |p: &str| {
        !p.is_empty()
            && (p.bytes().all(|c| c.is_ascii_digit())
                || ((p.starts_with("0x") || p.starts_with("0X"))
                    && p[2..].bytes().all(|c| c.is_ascii_hexdigit())))
    };
    if !parts.iter().all(|p| numeric(p)) {
        return None;
    }
    let value = |p: &str| -> Option<u64> {
        if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if hex.is_empty() {
                return Some(0);
            }
            u64::from_str_radix(hex, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let Some(values) = parts.iter().map(|p| value(p)).collect::<Option<Vec<u64>>>() else {
        return Some(Err(()));
    };
    let (last, head) = values.split_last()?;
    if parts.len() > 4 || head.iter().any(|v| *v > 255) {
        return Some(Err(()));
    }
    let last_bits = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << last_bits {
        return Some(Err(()));
    }
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i);
    }
    addr |= last;
    Some(u32::try_from(addr).map(Ipv4Addr::from).map_err(|_| ()))
}

fn ipv4_internal(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn ipv6_internal(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_internal(v4);
    }
    let segments = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        ipv4_internal(Ipv4Addr::new(a, b, c, d))
    };
    // IPv4 inside IPv6: IPv4-translated (::ffff:0:a.b.c.d) and 6to4 (2002:AABB:CCDD::).
    if segments[..5] == [0, 0, 0, 0, 0xffff] || segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return embedded(segments[6], segments[7]);
    }
    if segments[4..6] == [0xffff, 0] && segments[..4] == [0, 0, 0, 0] {
        return embedded(segments[6], segments[7]);
    }
    if segments[0] == 0x2002 && embedded(segments[1], segments[2]) {
        return true;
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (segments[0] == 0x64 && segments[1] == 0xff9b) // NAT64 of any IPv4
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo: an IPv4 behind a relay
}

/// Names that resolve inside a network, never on the internet.
fn internal_name(host: &str) -> bool {
    host == "localhost"
        || [
            ".localhost",
            ".local",
            ".internal",
            ".lan",
            ".home.arpa",
            ".intranet",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix))
        || !host.contains('.')
}

/// Checks a probe's URL against the policy; the error names `url`.
pub fn check_probe_target(url: &str, policy: &TargetPolicy) -> Result<(), FieldError> {
    let target = split_url(url)?;
    let path = percent_decoded(target.path).to_ascii_lowercase();
    if path.starts_with("/__scheduled") || path.starts_with("/cdn-cgi/") {
        return Err(refused("a probe may not call the runtime's own hooks"));
    }
    if policy.allow_private {
        return Ok(());
    }
    let host = target.host.as_str();
    let is_own = policy.own_hosts.iter().any(|own| {
        let own = own.split(':').next().unwrap_or(own).trim_end_matches('.');
        own.eq_ignore_ascii_case(host)
    });
    if is_own {
        return Err(refused("a probe may not call the collector itself"));
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return if ipv6_internal(v6) {
            Err(refused(format!("{host} is an internal address")))
        } else {
            Ok(())
        };
    }
    match parse_ipv4_loose(host) {
        Some(Ok(v4)) if ipv4_internal(v4) => {
            Err(refused(format!("{host} is an internal address ({v4})")))
        }
        Some(Ok(_)) => Ok(()),
        Some(Err(())) => Err(refused(format!("{host} is not a valid address"))),
        None if internal_name(host) => Err(refused(format!("{host} is an internal name"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy {
            allow_private: false,
            own_hosts: vec![
                "collect.example.com".into(),
                "telltale.acme.workers.dev".into(),
            ],
        }
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        for url in [
            "http://127.0.0.1/x",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.8/",
            "http://172.20.1.1/",
            "http://192.168.1.1/",
            "http://100.100.100.200/",
            "http://localhost:8787/",
            "http://api.localhost/",
            "http://metadata.google.internal/",
            "http://intranet/",
            "http://COLLECT.example.com./health",
            "https://telltale.acme.workers.dev/v1/stats",
            "http://user@partner.example/",
            "http://256.1.1.1/",
            "http://1.2.3.4.5/",
            "http://１２７.０.０.１/fullwidth",
            "http://127.0.0.\t1/tab",
            "http://127.0.0.1\n:80/nl",
            "http://127\u{3002}0.0.1/ideographic",
            "http://127.0.0.1 /space",
            "http://[::ffff:0:7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[2001:0:4136:e378::1]/",
            "http://partner.example:80x/",
        ] {
            let e = check_probe_target(url, &strict()).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_str()),
                ("target_not_allowed", "url"),
                "{url}"
            );
        }
    }

    #[test]
    fn public_hosts_pass_and_development_allows_local_servers() {
        for url in [
            "https://partner.example/health",
            "https://93.184.216.34/",
            "https://[2606:4700::1111]/",
            "http://partner.example:8080/status?x=1",
        ] {
            assert!(check_probe_target(url, &strict()).is_ok(), "{url}");
        }
        let dev = TargetPolicy {
            allow_private: true,
            own_hosts: vec!["127.0.0.1:8787".into()],
        };
        assert!(check_probe_target("http://127.0.0.1:9999/health", &dev).is_ok());
        assert!(check_probe_target("http://127.0.0.1:8787/demo-partner/health", &dev).is_ok());
    }

    #[test]
    fn the_runtime_hooks_are_never_a_target() {
        let dev = TargetPolicy {
            allow_private: true,
            own_hosts: Vec::new(),
        };
        for url in [
            "http://127.0.0.1:8787/__scheduled?cron=*",
            "http://127.0.0.1:8787/__SCHEDULED",
            "https://partner.example/cdn-cgi/handler/scheduled",
            "http://127.0.0.1:8787/./__scheduled",
            "http://127.0.0.1:8787/x/../__scheduled",
            "http://127.0.0.1:8787/%2e/__scheduled",
            "http://127.0.0.1:8787/%5F%5Fscheduled",
        ] {
            assert!(check_probe_target(url, &dev).is_err(), "{url}");
        }
    }
}
