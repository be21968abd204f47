//! ProbeState probes that switch features off and back on by themselves.
//!
//! A probe's results (pass/fail with a UTC end time) feed a pure state machine with
//! hysteresis: it goes **down** when the pass rate over the short `disable_window` falls
//! below `disable_below`, and comes back **up** only when the pass rate over the longer
//! `enable_window` reaches `enable_at_least`, each with at least `min_samples` results.
//! A manual override beats the machine. Time is passed in.

use crate::error::FieldError;
use crate::time::{MS_PER_MINUTE, MS_PER_SECOND};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Defined with the flag engine, which reads it (and builds without this module).
pub use crate::probe_state::ProbeState;

/// An operator's override of the automatic decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Override {
    Auto,
    ForceUp,
    ForceDown,
}

fn default_method() -> String {
    "GET".into()
}
fn default_status() -> [u16; 2] {
    [200, 299]
}
fn default_timeout() -> u32 {
    5_000
}
fn default_interval() -> u32 {
    20
}
fn default_disable_below() -> f64 {
    0.10
}
fn default_disable_window() -> i64 {
    5 * MS_PER_MINUTE
}
fn default_enable_at_least() -> f64 {
    0.90
}
fn default_enable_window() -> i64 {
    15 * MS_PER_MINUTE
}
fn default_min_samples() -> u32 {
    3
}

/// Expect a JSON value at a pointer of the response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCheck {
    pub pointer: String,
    pub equals: Value,
}

/// A probe, as staged in the versioned config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDef {
    pub key: String,
    #[serde(default)]
    pub description: String,
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Plain headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header name -> name of a Worker secret holding its value (never the value itself).
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
    /// Inclusive status range that passes.
    #[serde(default = "default_status")]
    pub expect_status: [u16; 2],
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub body_json: Option<JsonCheck>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Seconds between runs within each minute (10, 12, 15, 20, 30 or 60).
    #[serde(default = "default_interval")]
    pub interval_s: u32,
    #[serde(default = "default_disable_below")]
    pub disable_below: f64,
    #[serde(default = "default_disable_window")]
    pub disable_window_ms: i64,
    #[serde(default = "default_enable_at_least")]
    pub enable_at_least: f64,
    #[serde(default = "default_enable_window")]
    pub enable_window_ms: i64,
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
}

/// Probes may send only Worker secrets whose names start with this: the admin key, the
/// probe key, ingest keys and the alert webhook can never leave through a probe.
pub const PROBE_SECRET_PREFIX: &str = "PROBE_SECRET_";

/// Whether a probe may read the Worker secret `name`.
pub fn probe_secret_allowed(name: &str) -> bool {
    name.len() > PROBE_SECRET_PREFIX.len()
        && name.starts_with(PROBE_SECRET_PREFIX)
        && name
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Most headers one probe sends.
pub const MAX_HEADERS: usize = 20;

/// An HTTP header name (RFC 9110 token), at most 64 characters.
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The longest decision window: a day.
pub const MAX_WINDOW_MS: i64 = 24 * 60 * MS_PER_MINUTE;
/// The probe intervals: each divides a minute, so a schedule repeats every cron minute.
pub const INTERVALS_S: [u32; 6] = [10, 12, 15, 20, 30, 60];

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new("invalid_value", field, message)
}

/// Checks a probe definition as staged; field paths are relative to the probe.
pub fn validate_probe(raw: &Value) -> Result<ProbeDef, FieldError> {
    let def: ProbeDef = serde_json::from_value(raw.clone())
        .map_err(|e| FieldError::new("invalid_probe", "", e.to_string()))?;
    crate::flags::engine::validate_key(&def.key)?;
    if !(def.url.starts_with("http://") || def.url.starts_with("https://")) || def.url.len() > 2048
    {
        return Err(invalid(
            "url",
            "url must be an http(s) URL of at most 2,048 characters",
        ));
    }
    if !matches!(def.method.as_str(), "GET" | "HEAD" | "POST") {
        return Err(invalid("method", "method must be GET, HEAD or POST"));
    }
    if def.headers.len() + def.secret_headers.len() > MAX_HEADERS {
        return Err(invalid("headers", format!("at most {MAX_HEADERS} headers")));
    }
    for (name, value) in def
        .headers
        .iter()
        .map(|(n, v)| (n, Some(v)))
        .chain(def.secret_headers.keys().map(|n| (n, None)))
    {
        let group = if value.is_some() {
            "headers"
        } else {
            "secret_headers"
        };
        if !header_name_ok(name) {
            return Err(invalid(
                &format!("{group}.{name}"),
                "a header name is 1 to 64 letters, digits or !#$%&'*+-.^_`|~",
            ));
        }
        if value.is_some_and(|v| v.len() > 1024 || v.chars().any(|c| c.is_control() && c != '\t')) {
            return Err(invalid(
                &format!("{group}.{name}"),
                "a header value is at most 1,024 characters, without line breaks or control characters",
            ));
        }
    }
    for (name, secret) in &def.secret_headers {
        if def.headers.contains_key(name) {
            return Err(invalid(
                &format!("secret_headers.{name}"),
                "a header is either plain or secret, not both",
            ));
        }
        if !probe_secret_allowed(secret) {
            return Err(FieldError::new(
                "secret_not_allowed",
                format!("secret_headers.{name}"),
                format!("a probe may only send Worker secrets named {PROBE_SECRET_PREFIX}* (A-Z, 0-9, _)"),
            ));
        }
    }
    let [low, high] = def.expect_status;
    if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
        return Err(invalid(
            "expect_status",
            "expect_status is [low, high] within 100..599",
        ));
    }
    if let Some(check) = &def.body_json {
        if !(check.pointer.is_empty() || check.pointer.starts_with('/')) {
            return Err(invalid("body_json.pointer", "a JSON pointer starts with /"));
        }
    }
    if !(100..=20_000).contains(&def.timeout_ms) {
        return Err(invalid("timeout_ms", "timeout_ms must be 100 to 20,000"));
    }
    if !INTERVALS_S.contains(&def.interval_s) {
        return Err(invalid(
            "interval_s",
            "interval_s must divide a minute: 10, 12, 15, 20, 30 or 60",
        ));
    }
    for (field, rate) in [
        ("disable_below", def.disable_below),
        ("enable_at_least", def.enable_at_least),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(invalid(field, "rates are fractions from 0 to 1"));
        }
    }
    if def.disable_below >= def.enable_at_least {
        return Err(invalid(
            "enable_at_least",
            "enable_at_least must be above disable_below (hysteresis)",
        ));
    }
    // Each window is checked on its own, so the error names the field that is wrong.
    for (field, window) in [
        ("disable_window_ms", def.disable_window_ms),
        ("enable_window_ms", def.enable_window_ms),
    ] {
        if !(MS_PER_SECOND..=MAX_WINDOW_MS).contains(&window) {
            return Err(invalid(field, "windows are 1 s to 24 h"));
        }
    }
    if def.enable_window_ms <= def.disable_window_ms {
        return Err(invalid(
            "enable_window_ms",
            "the enable window must be longer than the disable window",
        ));
    }
    if def.min_samples == 0 || def.min_samples > 1_000 {
        return Err(invalid("min_samples", "min_samples must be 1 to 1,000"));
    }
    Ok(def)
}

/// Whether a response passes the probe's checks; the error says why not.
pub fn check_response(def: &ProbeDef, status: u16, body: &str) -> Result<(), String> {
    let [low, high] = def.expect_status;
    if status < low || status > high {
        return Err(format!("status {status} outside {low}-{high}"));
    }
    if let Some(needle) = &def.body_contains {
        if !body.contains(needle.as_str()) {
            return Err(format!("body lacks `{needle}`"));
        }
    }
    if let Some(check) = &def.body_json {
        let parsed: Value =
            serde_json::from_str(body).map_err(|_| "body is not JSON".to_string())?;
        match parsed.pointer(&check.pointer) {
            Some(v) if *v == check.equals => {}
            // The response's content is never echoed: it may hold what the endpoint
            // keeps private, and errors are shown in the API.
            Some(_) => {
                return Err(format!(
                    "{} did not equal the expected value",
                    check.pointer
                ))
            }
            None => return Err(format!("{} is missing", check.pointer)),
        }
    }
    Ok(())
}

/// One result, as the state machine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub end_ms: i64,
    pub ok: bool,
}

/// Pass rate and count of the samples in `(now - window, now]`.
pub fn window_stats(samples: &[Sample], now_ms: i64, window_ms: i64) -> (Option<f64>, u32) {
    let in_window = samples
        .iter()
        .filter(|s| s.end_ms > now_ms - window_ms && s.end_ms <= now_ms);
    let (mut n, mut ok) = (0u32, 0u32);
    for s in in_window {
        n += 1;
        ok += u32::from(s.ok);
    }
    ((n > 0).then(|| f64::from(ok) / f64::from(n)), n)
}

/// The outcome of one decision step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub state: ProbeState,
    pub changed: bool,
    pub disable_rate: Option<f64>,
    pub disable_samples: u32,
    pub enable_rate: Option<f64>,
    pub enable_samples: u32,
    /// Why the state is what it is.
    pub reason: String,
}

/// Decides the next state from the current one and the samples.
pub fn decide(
    def: &ProbeDef,
    current: ProbeState,
    mode: Override,
    samples: &[Sample],
    now_ms: i64,
) -> Verdict {
    let (disable_rate, disable_samples) = window_stats(samples, now_ms, def.disable_window_ms);
    let (enable_rate, enable_samples) = window_stats(samples, now_ms, def.enable_window_ms);
    let enough_short = disable_samples >= def.min_samples;
    let enough_long = enable_samples >= def.min_samples;
    let falling = enough_short && disable_rate.is_some_and(|r| r < def.disable_below);
    let recovered = enough_long && enable_rate.is_some_and(|r| r >= def.enable_at_least);
    let (state, reason) = match (mode, current) {
        (Override::ForceUp, _) => (ProbeState::Up, "forced up by an operator".to_string()),
        (Override::ForceDown, _) => (ProbeState::Down, "forced down by an operator".to_string()),
        (Override::Auto, ProbeState::Unknown) if falling => {
            (ProbeState::Down, "pass rate below disable_below".into())
        }
        (Override::Auto, ProbeState::Unknown) if enough_short => {
            (ProbeState::Up, "enough passing samples".into())
        }
        (Override::Auto, ProbeState::Unknown) => {
            (ProbeState::Unknown, "not enough samples yet".into())
        }
        (Override::Auto, ProbeState::Up) if falling => {
            (ProbeState::Down, "pass rate below disable_below".into())
        }
        (Override::Auto, ProbeState::Up) => (ProbeState::Up, "pass rate holds".into()),
        (Override::Auto, ProbeState::Down) if recovered => {
            (ProbeState::Up, "pass rate reached enable_at_least".into())
        }
        (Override::Auto, ProbeState::Down) => (
            ProbeState::Down,
            "not recovered over the enable window".into(),
        ),
    };
    Verdict {
        state,
        changed: state != current,
        disable_rate,
        disable_samples,
        enable_rate,
        enable_samples,
        reason,
    }
}

/// One round of a cron minute: the second it starts at, and the probes due then (indices
/// into the list given to [`cron_rounds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub offset_s: u32,
    pub due: Vec<usize>,
}

/// The rounds of one cron minute. A probe with interval `i` runs at seconds 0, i, 2i, ...
/// below 60, so it runs exactly `60 / i` times a minute whatever the other probes'
/// intervals are; probes due at the same second share a round. Rounds are in time order.
/// An interval outside (0, 60] runs once, at second 0.
pub fn cron_rounds(intervals_s: &[u32]) -> Vec<Round> {
    let mut rounds: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, &interval) in intervals_s.iter().enumerate() {
        let step = if (1..=60).contains(&interval) {
            interval
        } else {
            60
        };
        for offset_s in (0..60).step_by(step as usize) {
            rounds.entry(offset_s).or_default().push(index);
        }
    }
    rounds
        .into_iter()
        .map(|(offset_s, due)| Round { offset_s, due })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def() -> ProbeDef {
        validate_probe(&json!({"key": "partner-api", "url": "https://partner.example/health"}))
            .unwrap()
    }

    #[test]
    fn defaults_follow_the_incident() {
        let d = def();
        assert_eq!((d.disable_below, d.enable_at_least), (0.10, 0.90));
        assert_eq!(
            (d.disable_window_ms, d.enable_window_ms),
            (300_000, 900_000)
        );
        assert_eq!(
            (d.interval_s, d.min_samples, d.expect_status),
            (20, 3, [200, 299])
        );
    }

    #[test]
    fn validation_names_fields() {
        let cases = [
            (json!({"key": "p", "url": "ftp://x"}), "url"),
            (
                json!({"key": "p", "url": "https://x", "interval_s": 7}),
                "interval_s",
            ),
            (
                json!({"key": "p", "url": "https://x", "enable_window_ms": 60000, "disable_window_ms": 60000}),
                "enable_window_ms",
            ),
            (
                json!({"key": "p", "url": "https://x", "disable_below": 0.95}),
                "enable_at_least",
            ),
            (
                json!({"key": "p", "url": "https://x", "secret_headers": {"X-Token": "not a name"}}),
                "secret_headers.X-Token",
            ),
            (
                json!({"key": "p", "url": "https://x", "secret_headers": {"X-Admin-Key": "ADMIN_KEY"}}),
                "secret_headers.X-Admin-Key",
            ),
            (
                json!({"key": "p", "url": "https://x", "headers": {"Bad Header": "x"}}),
                "headers.Bad Header",
            ),
            (
                json!({"key": "p", "url": "https://x", "headers": {"X-Ok": "line\nbreak"}}),
                "headers.X-Ok",
            ),
            (
                json!({"key": "p", "url": "https://x", "expect_status": [300, 200]}),
                "expect_status",
            ),
        ];
        for (raw, field) in cases {
            assert_eq!(validate_probe(&raw).unwrap_err().field, field, "{raw}");
        }
        assert_eq!(
            validate_probe(&json!({"key": "p", "url": "https://x", "token": "s3cret"}))
                .unwrap_err()
                .code,
            "invalid_probe"
        );
    }

    #[test]
    fn checks_status_substring_and_json_pointer() {
        let mut d = def();
        assert!(check_response(&d, 200, "").is_ok());
        assert!(check_response(&d, 503, "").unwrap_err().contains("503"));
        d.body_contains = Some("ok".into());
        assert!(check_response(&d, 200, "all ok").is_ok());
        assert!(check_response(&d, 200, "fail").is_err());
        d.body_contains = None;
        d.body_json = Some(JsonCheck {
            pointer: "/status".into(),
            equals: json!("green"),
        });
        assert!(check_response(&d, 200, r#"{"status":"green"}"#).is_ok());
        // The response is never echoed into the error (it is shown in the API).
        let why = check_response(&d, 200, r#"{"status":"red", "secret": "s3"}"#).unwrap_err();
        assert_eq!(why, "/status did not equal the expected value");
        assert_eq!(
            check_response(&d, 200, r#"{"other": 1}"#).unwrap_err(),
            "/status is missing"
        );
        assert!(check_response(&d, 200, "<html>").is_err());
    }

    fn samples(from_ms: i64, count: i64, every_ms: i64, ok: impl Fn(i64) -> bool) -> Vec<Sample> {
        (0..count)
            .map(|i| Sample {
                end_ms: from_ms + i * every_ms,
                ok: ok(i),
            })
            .collect()
    }

    #[test]
    fn unknown_needs_min_samples() {
        let d = def();
        let two = samples(0, 2, 20_000, |_| true);
        assert_eq!(
            decide(&d, ProbeState::Unknown, Override::Auto, &two, 40_000).state,
            ProbeState::Unknown
        );
        let three = samples(0, 3, 20_000, |_| true);
        assert_eq!(
            decide(&d, ProbeState::Unknown, Override::Auto, &three, 40_000).state,
            ProbeState::Up
        );
        let failing = samples(0, 3, 20_000, |_| false);
        assert_eq!(
            decide(&d, ProbeState::Unknown, Override::Auto, &failing, 40_000).state,
            ProbeState::Down
        );
    }

    #[test]
    fn overrides_beat_the_machine() {
        let d = def();
        let failing = samples(0, 30, 20_000, |_| false);
        let v = decide(&d, ProbeState::Up, Override::ForceUp, &failing, 600_000);
        assert_eq!((v.state, v.changed), (ProbeState::Up, false));
        let healthy = samples(0, 30, 20_000, |_| true);
        assert_eq!(
            decide(&d, ProbeState::Up, Override::ForceDown, &healthy, 600_000).state,
            ProbeState::Down
        );
    }

    #[test]
    fn window_boundaries_are_half_open() {
        let s = [
            Sample {
                end_ms: 100,
                ok: true,
            },
            Sample {
                end_ms: 200,
                ok: false,
            },
        ];
        assert_eq!(window_stats(&s, 200, 100), (Some(0.0), 1));
        assert_eq!(window_stats(&s, 200, 101), (Some(0.5), 2));
        assert_eq!(window_stats(&s, 50, 1000), (None, 0));
    }

    fn runs_per_minute(intervals: &[u32]) -> Vec<usize> {
        let rounds = cron_rounds(intervals);
        (0..intervals.len())
            .map(|i| rounds.iter().filter(|r| r.due.contains(&i)).count())
            .collect()
    }

    #[test]
    fn every_probe_runs_sixty_over_its_interval_times() {
        // The defect: rounds spaced by the smallest interval ran a 12 s probe beside a
        // 10 s one once a minute, and a 30 s one beside a 20 s one once.
        assert_eq!(runs_per_minute(&[10, 12]), vec![6, 5]);
        assert_eq!(runs_per_minute(&[20, 30]), vec![3, 2]);
        assert_eq!(runs_per_minute(&[60, 15, 12]), vec![1, 4, 5]);
        for &i in &INTERVALS_S {
            assert_eq!(runs_per_minute(&[i]), vec![(60 / i) as usize]);
        }
    }

    #[test]
    fn rounds_are_ordered_and_shared() {
        let rounds = cron_rounds(&[20, 30]);
        let offsets: Vec<u32> = rounds.iter().map(|r| r.offset_s).collect();
        assert_eq!(offsets, vec![0, 20, 30, 40]);
        assert_eq!(rounds[0].due, vec![0, 1]);
        assert_eq!(rounds[2].due, vec![1]);
        assert!(cron_rounds(&[]).is_empty());
        // Out-of-range intervals cannot loop or divide by zero: once, at second 0.
        assert_eq!(runs_per_minute(&[0, 600]), vec![1, 1]);
    }

    #[test]
    fn window_errors_name_the_window_that_is_wrong() {
        let mut raw = json!({"key": "p", "url": "https://partner.example/health"});
        raw["enable_window_ms"] = json!(25 * 60 * MS_PER_MINUTE);
        assert_eq!(validate_probe(&raw).unwrap_err().field, "enable_window_ms");
        raw["enable_window_ms"] = json!(15 * MS_PER_MINUTE);
        raw["disable_window_ms"] = json!(10);
        assert_eq!(validate_probe(&raw).unwrap_err().field, "disable_window_ms");
    }
}
