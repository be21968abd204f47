//! The flags client: decisions from the collector (remote mode) or from the published
//! ruleset evaluated here by the same core engine (local mode), with bootstrap values,
//! a localStorage cache keyed by a context hash, ETag refreshes with backoff, change
//! listeners, and `$exposure` events once per flag, variant and session.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use telltale_core::config::canonical_json;
use telltale_core::flags::hash::murmur3_32;
use telltale_core::flags::{compile, Decision, Engine, ProbeState, ProbeStates, Ruleset};

/// Where decisions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMode {
    Remote,
    Local,
    Off,
}

/// One decision as the SDK keeps it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct DecisionView {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default)]
    pub version: String,
}

impl From<&Decision> for DecisionView {
    fn from(d: &Decision) -> Self {
        DecisionView {
            value: d.value.clone(),
            variant: d.variant.clone(),
            reason: d.reason.to_string(),
            error_code: d.error_code.map(str::to_string),
            version: d.version.clone(),
        }
    }
}

/// What the collector's `/v1/flags/evaluate` answers.
#[derive(Deserialize)]
pub struct RemoteAnswer {
    #[serde(default)]
    pub flags: BTreeMap<String, DecisionView>,
    /// Probe name -> `up`, `down` or `unknown`.
    #[serde(default)]
    pub probes: BTreeMap<String, String>,
}

/// Retry delays after failed refreshes: 1 s doubling to 5 min, with jitter added by the caller.
pub fn backoff_ms(failures: u32) -> f64 {
    let exp = failures.saturating_sub(1).min(9);
    (1_000.0 * f64::from(1u32 << exp)).min(300_000.0)
}

/// Keys added, removed, or whose entry differs by `same`.
fn changed_keys<V>(
    old: &BTreeMap<String, V>,
    next: &BTreeMap<String, V>,
    same: impl Fn(&V, &V) -> bool,
) -> Vec<String> {
    let mut changed: Vec<String> = next
        .iter()
        .filter(|(k, v)| old.get(*k).is_none_or(|o| !same(o, v)))
        .map(|(k, _)| k.clone())
        .collect();
    changed.extend(old.keys().filter(|k| !next.contains_key(*k)).cloned());
    changed
}

pub struct FlagState {
    pub mode: FlagMode,
    pub context: Map<String, Value>,
    pub decisions: BTreeMap<String, DecisionView>,
    pub etag: Option<String>,
    pub engine: Option<Engine>,
    pub exposed: HashSet<String>,
    pub failures: u32,
    pub next_fetch_at: f64,
    /// Probe name -> `up`, `down` or `unknown`, as last reported by the collector.
    pub probes: BTreeMap<String, String>,
}

impl FlagState {
    pub fn new(mode: FlagMode, context: Map<String, Value>, bootstrap: Map<String, Value>) -> Self {
        let decisions = bootstrap
            .into_iter()
            .map(|(k, value)| {
                (
                    k,
                    DecisionView {
                        value,
                        variant: None,
                        reason: "BOOTSTRAP".into(),
                        error_code: None,
                        version: String::new(),
                    },
                )
            })
            .collect();
        FlagState {
            mode,
            context,
            decisions,
            etag: None,
            engine: None,
            exposed: HashSet::new(),
            failures: 0,
            next_fetch_at: 0.0,
            probes: BTreeMap::new(),
        }
    }

    /// The localStorage key of the cached decisions for the current context.
    pub fn cache_key(&self) -> String {
        let material = canonical_json(&Value::Object(self.context.clone()));
        let mode = if self.mode == FlagMode::Local {
            "l"
        } else {
            "r"
        };
        let mut key = String::from("telltale:flags:");
        key.push_str(mode);
        key.push(':');
        key.push_str(&format!("{:08x}", murmur3_32(material.as_bytes(), 0)));
        key
    }

    /// Replaces the decisions; returns the keys whose value or variant changed.
    pub fn replace(&mut self, next: BTreeMap<String, DecisionView>) -> Vec<String> {
        let changed = changed_keys(&self.decisions, &next, |old, new| {
            old.value == new.value && old.variant == new.variant
        });
        self.decisions = next;
        changed
    }

    /// Compiles a ruleset (local mode); its `probes` field carries the probe states.
    /// Returns the probes whose state changed.
    pub fn load_ruleset(&mut self, ruleset_json: &str) -> Result<Vec<String>, String> {
        let mut raw: Value = serde_json::from_str(ruleset_json).map_err(|e| e.to_string())?;
        let probes: BTreeMap<String, String> = raw
            .as_object_mut()
            .and_then(|o| o.remove("probes"))
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        let ruleset: Ruleset = serde_json::from_value(raw).map_err(|e| e.to_string())?;
        self.engine = Some(compile(&ruleset));
        Ok(self.replace_probes(probes))
    }

    /// Replaces the probe states; returns the probes whose state changed.
    pub fn replace_probes(&mut self, next: BTreeMap<String, String>) -> Vec<String> {
        let changed = changed_keys(&self.probes, &next, |old, new| old == new);
        self.probes = next;
        changed
    }

    /// A probe's state: `up`, `down` or `unknown`.
    pub fn probe(&self, name: &str) -> &str {
        self.probes.get(name).map_or("unknown", String::as_str)
    }

    /// Local mode: decisions for the current context from the compiled ruleset.
    pub fn evaluate_locally(&self, now_ms: i64) -> Option<BTreeMap<String, DecisionView>> {
        let engine = self.engine.as_ref()?;
        let probes: ProbeStates = self
            .probes
            .iter()
            .map(|(k, v)| {
                let state = match v.as_str() {
                    "up" => ProbeState::Up,
                    "down" => ProbeState::Down,
                    _ => ProbeState::Unknown,
                };
                (k.clone(), state)
            })
            .collect();
        Some(
            engine
                .evaluate_all(&self.context, &probes, now_ms)
                .iter()
                .map(|d| (d.key.clone(), d.into()))
                .collect(),
        )
    }

    /// Whether this (flag, variant) still needs an exposure event in this session.
    pub fn first_exposure(&mut self, key: &str, variant: &str) -> bool {
        let mut id = String::with_capacity(key.len() + variant.len() + 1);
        id.push_str(key);
        id.push('\u{1f}');
        id.push_str(variant);
        self.exposed.insert(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(v: Value, variant: &str) -> DecisionView {
        DecisionView {
            value: v,
            variant: Some(variant.into()),
            reason: "STATIC".into(),
            error_code: None,
            version: "1".into(),
        }
    }

    #[test]
    fn reports_changed_keys() {
        let mut s = FlagState::new(FlagMode::Remote, Map::new(), Map::new());
        assert_eq!(
            s.replace(BTreeMap::from([("a".into(), view(json!(true), "on"))])),
            ["a"]
        );
        assert!(s
            .replace(BTreeMap::from([("a".into(), view(json!(true), "on"))]))
            .is_empty());
        assert_eq!(
            s.replace(BTreeMap::from([("b".into(), view(json!(1), "x"))])),
            ["b", "a"]
        );
    }

    #[test]
    fn cache_key_depends_on_context_not_key_order() {
        let ctx = |v: Value| v.as_object().cloned().unwrap();
        let a = FlagState::new(
            FlagMode::Remote,
            ctx(json!({"user_id": "u", "role": "t"})),
            Map::new(),
        );
        let b = FlagState::new(
            FlagMode::Remote,
            ctx(json!({"role": "t", "user_id": "u"})),
            Map::new(),
        );
        let c = FlagState::new(FlagMode::Remote, ctx(json!({"user_id": "v"})), Map::new());
        assert_eq!(a.cache_key(), b.cache_key());
        assert_ne!(a.cache_key(), c.cache_key());
    }

    #[test]
    fn local_rulesets_carry_probe_states() {
        let mut s = FlagState::new(FlagMode::Local, Map::new(), Map::new());
        let ruleset = r#"{"version": "v1", "flags": [{"key": "w", "variants": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "default_variant": "on", "off_variant": "off", "requires_probe": "api"}], "segments": [], "probes": {"api": "down"}}"#;
        assert_eq!(s.load_ruleset(ruleset).unwrap(), ["api"]);
        assert_eq!(s.probe("api"), "down");
        assert_eq!(s.probe("other"), "unknown");
        let decisions = s.evaluate_locally(0).unwrap();
        assert_eq!(decisions["w"].reason, "DISABLED");
    }

    #[test]
    fn backs_off_exponentially_with_a_cap() {
        assert_eq!(backoff_ms(1), 1_000.0);
        assert_eq!(backoff_ms(3), 4_000.0);
        assert_eq!(backoff_ms(30), 300_000.0);
    }

    #[test]
    fn exposures_once_per_flag_and_variant() {
        let mut s = FlagState::new(FlagMode::Remote, Map::new(), Map::new());
        assert!(s.first_exposure("f", "on"));
        assert!(!s.first_exposure("f", "on"));
        assert!(s.first_exposure("f", "off"));
    }
}
