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
    /// The collector's own host (as requests reach it), refused unless `allow_private`.
    pub own_host: Option<String>,
}

fn refused(message: impl Into<String>) -> FieldError {
    FieldError::new("target_not_allowed", "url", message)
}

/// The parts of an http(s) URL the policy looks at.
struct Target<'a> {
    host: String,
    path: &'a str,
}

fn split_url(url: &str) -> Result<Target<'_>, FieldError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| FieldError::new("invalid_value", "url", "url must be http(s)"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(refused("a url may not carry credentials (user@host)"));
    }
    if authority.contains(['\\', '%']) {
        return Err(refused("the host has characters a host cannot have"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| refused("unclosed IPv6 address"))?;
        &v6[..close]
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(refused("the url has no host"));
    }
    let path = tail.split(['?', '#']).next().unwrap_or_default();
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
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (segments[0] == 0x64 && segments[1] == 0xff9b) // NAT64 of any IPv4
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
    let path = target.path.to_ascii_lowercase();
    if path.starts_with("/__scheduled") || path.starts_with("/cdn-cgi/") {
        return Err(refused("a probe may not call the runtime's own hooks"));
    }
    if policy.allow_private {
        return Ok(());
    }
    let host = target.host.as_str();
    let own = policy
        .own_host
        .as_deref()
        .map(|h| h.split(':').next().unwrap_or(h).trim_end_matches('.'));
    if own.is_some_and(|own| own.eq_ignore_ascii_case(host)) {
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
            own_host: Some("collect.example.com".into()),
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
            "http://user@partner.example/",
            "http://256.1.1.1/",
            "http://1.2.3.4.5/",
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
            own_host: Some("127.0.0.1:8787".into()),
        };
        assert!(check_probe_target("http://127.0.0.1:9999/health", &dev).is_ok());
        assert!(check_probe_target("http://127.0.0.1:8787/demo-partner/health", &dev).is_ok());
    }

    #[test]
    fn the_runtime_hooks_are_never_a_target() {
        let dev = TargetPolicy {
            allow_private: true,
            own_host: None,
        };
        for url in [
            "http://127.0.0.1:8787/__scheduled?cron=*",
            "http://127.0.0.1:8787/__SCHEDULED",
            "https://partner.example/cdn-cgi/handler/scheduled",
        ] {
            assert!(check_probe_target(url, &dev).is_err(), "{url}");
        }
    }
}
