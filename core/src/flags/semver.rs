//! Semantic version comparison (SemVer 2.0.0 precedence; build metadata ignored).

#[allow(unused_imports)]
use crate::prelude::*;
use core::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    core: [u64; 3],
    pre: Vec<String>,
}

impl Version {
    /// Its numbers and pre-release identifiers (the compiled engine's wire form).
    pub(crate) fn parts(&self) -> (&[u64; 3], &[String]) {
        (&self.core, &self.pre)
    }

    pub(crate) fn from_parts(core: [u64; 3], pre: Vec<String>) -> Version {
        Version { core, pre }
    }
}

/// Parses `1.2.3`, `v1.2.3`, `1.2.3-beta.1+build`; a missing minor or patch counts as 0.
pub fn parse(text: &str) -> Option<Version> {
    let text = text.trim().strip_prefix('v').unwrap_or(text.trim());
    let without_build = text.split('+').next()?;
    let (core, pre) = match without_build.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (without_build, None),
    };
    // Conditions parse the context's version on every evaluation: no allocation here.
    let mut parts = [0u64; 3];
    for (i, f) in core.split('.').enumerate() {
        if i >= parts.len() || f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        parts[i] = f.parse().ok()?;
    }
    let pre = match pre {
        None => Vec::new(),
        Some(p) if p.split('.').all(|id| !id.is_empty()) => {
            p.split('.').map(str::to_string).collect()
        }
        Some(_) => return None,
    };
    Some(Version { core: parts, pre })
}

fn compare_identifiers(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&other.pre) {
                        let o = compare_identifiers(a, b);
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_precedence() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.2",
            "v1.10.0",
        ];
        for pair in chain.windows(2) {
            assert!(
                parse(pair[0]).unwrap() < parse(pair[1]).unwrap(),
                "{pair:?}"
            );
        }
        assert_eq!(parse("1.0.0+build.5"), parse("1.0.0"));
    }

    #[test]
    fn rejects_non_versions() {
        for bad in ["", "x", "1..2", "1.2.3.4", "1.2.3-", "1.-2"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
