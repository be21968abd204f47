//! No input reaches a panic: a mutation fuzzer, run by `cargo test` (and so `npm test`)
//! for a fixed time budget per parser, throws mutated versions of valid inputs at every
//! pure parser the collector exposes to clients and admins. A panic in the Worker stalls
//! the isolate, so each one found here is a denial of service that did not ship.
//!
//! The budget is `TELLTALE_FUZZ_MS` per target (default 1,500 ms); the generator is seeded
//! (`TELLTALE_FUZZ_SEED`, printed on failure) so any finding replays exactly.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use telltale_core::config::{revision_id, validate_snapshot, Kind, Snapshot};
use telltale_core::flags::engine::{validate_flag, validate_segment};
use telltale_core::flags::{compile, Context, ProbeStates, Ruleset};
use telltale_core::ids::SplitMix64;
use telltale_core::ingest::{parse_batch, Limits};
use telltale_core::probes::validate_probe;
use telltale_core::stats::parse_stats_query;
use telltale_core::targets::{check_probe_target, TargetPolicy};
use telltale_core::time::parse_api_time;

const NOW: i64 = 1_795_849_200_000;

/// Values that break parsers: extremes, wrong types, odd text.
const NASTY: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "-0",
    "0.0000001",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"ＡＢＣ\"",
    "\"𝕏𝕏𝕏\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "\"9999-12-31T23:59:59Z\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"2026-02-30T00:00:00Z\"",
    "\"1.0.0-alpha+build\"",
    "\"999999999999999999999.1.1\"",
    "100.000001",
    "-1",
];

struct Fuzzer {
    rng: SplitMix64,
    seed: u64,
}

impl Fuzzer {
    fn new() -> Fuzzer {
        let seed = std::env::var("TELLTALE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64)
            });
        Fuzzer {
            rng: SplitMix64::new(seed),
            seed,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    /// Replaces, drops or duplicates a random JSON value inside `v`.
    fn mutate_value(&mut self, v: &mut Value, depth: usize) {
        let nasty = |f: &mut Fuzzer| -> Value {
            serde_json::from_str(NASTY[f.below(NASTY.len())]).unwrap_or(Value::Null)
        };
        match v {
            Value::Object(map) if !map.is_empty() && depth < 6 => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = keys[self.below(keys.len())].clone();
                match self.below(5) {
                    0 => {
                        map.remove(&key);
                    }
                    1 => {
                        map.insert(format!("{key}x"), nasty(self));
                    }
                    _ => {
                        if let Some(inner) = map.get_mut(&key) {
                            self.mutate_value(inner, depth + 1);
                        }
                    }
                }
            }
            Value::Array(items) if !items.is_empty() && depth < 6 => {
                let i = self.below(items.len());
                match self.below(4) {
                    0 => {
                        items.remove(i);
                    }
                    1 => {
                        let copy = items[i].clone();
                        items.push(copy);
                    }
                    _ => self.mutate_value(&mut items[i], depth + 1),
                }
            }
            _ => *v = nasty(self),
        }
    }

    fn mutated(&mut self, seed: &Value) -> Value {
        let mut v = seed.clone();
        for _ in 0..=self.below(3) {
            self.mutate_value(&mut v, 0);
        }
        v
    }

    /// Text-level damage: byte flips, cuts and splices of the JSON.
    fn mangled_text(&mut self, seed: &Value) -> Vec<u8> {
        let mut bytes = self.mutated(seed).to_string().into_bytes();
        for _ in 0..=self.below(3) {
            if bytes.is_empty() {
                break;
            }
            let i = self.below(bytes.len());
            match self.below(3) {
                0 => bytes[i] = (self.rng.next_u64() & 0xff) as u8,
                1 => bytes.truncate(i),
                _ => {
                    let splice = NASTY[self.below(NASTY.len())].as_bytes().to_vec();
                    bytes.splice(i..i, splice);
                }
            }
        }
        bytes
    }
}

/// Runs `case` on fuzzed inputs for the time budget; fails with the seed on a panic.
fn fuzz(name: &str, mut case: impl FnMut(&mut Fuzzer)) {
    let budget = Duration::from_millis(
        std::env::var("TELLTALE_FUZZ_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_500),
    );
    let mut f = Fuzzer::new();
    let seed = f.seed;
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut f)));
        assert!(
            outcome.is_ok(),
            "{name} panicked after {runs} inputs; replay with TELLTALE_FUZZ_SEED={seed}"
        );
        runs += 1;
    }
    eprintln!("{name}: {runs} inputs in {budget:?}, no panic (seed {seed})");
    assert!(runs > 0);
}

fn flag_seed() -> Value {
    json!({"key": "checkout", "description": "d", "enabled": true,
    "variants": [{"key": "on", "value": true}, {"key": "off", "value": false}, {"key": "b", "value": {"x": [1, 2]}}],
    "default_variant": "off", "off_variant": "off", "salt": "s", "requires_probe": "partner",
    "schedule": {"from": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
    "prerequisites": [{"flag": "base", "variants": ["on"]}],
    "rules": [
        {"id": "r1", "segments": ["beta"], "conditions": [
            {"attribute": "version", "op": "semver_gte", "value": "2.1.0"},
            {"attribute": "plan", "op": "in", "values": ["pro", "team"]},
            {"attribute": "age", "op": "gt", "value": 18},
            {"attribute": "signup", "op": "before", "value": "2026-06-01T00:00:00Z"}],
         "serve": {"variant": "on", "rollout_percent": 30.5, "stickiness": "user_id"}},
        {"serve": {"split": [{"variant": "on", "weight": 33.333}, {"variant": "off", "weight": 33.333}, {"variant": "b", "weight": 33.334}]}}
    ]})
}

#[test]
fn ingest_batches_never_panic() {
    let seed = json!({"sent_at": NOW, "batch_id": "b-1", "dropped": 3, "events": [
        {"id": "0190f3b2-7c4e-7a41-9c2d-3f5e8a1b2c3d", "type": "track", "name": "search", "ts": NOW - 1000,
         "anonymous_id": "a-1", "user_id": "u-1", "props": {"q": "rust", "n": 1.5, "ok": true, "none": null},
         "url": "https://example.com/x"},
        {"id": "0190f3b2-7c4e-7a41-9c2d-3f5e8a1b2c3e", "type": "identify", "name": "identify", "ts": NOW,
         "anonymous_id": "a-1", "user_id": "u-2"}]});
    let limits = Limits::default();
    fuzz("parse_batch", |f| {
        let body = if f.below(2) == 0 {
            f.mutated(&seed).to_string().into_bytes()
        } else {
            f.mangled_text(&seed)
        };
        let _ = parse_batch(&body, NOW, &limits);
    });
}

#[test]
fn stats_queries_never_panic() {
    let names = [
        "app", "event", "from", "to", "interval", "by", "limit", "format", "source", "x",
    ];
    let values = [
        "demo",
        "",
        "hour",
        "day",
        "csv",
        "raw",
        "9223372036854775807",
        "253402300799999",
        "0",
        "-1",
        "2026-11-22",
        "9999-12-31T23:59:59.999Z",
        "0000-01-01T00:00:00Z",
        "2026-11-22T07:00:00+14:00",
        "100",
        "101",
        "\u{0}",
    ];
    fuzz("parse_stats_query", |f| {
        let pairs: Vec<(String, String)> = (0..f.below(9))
            .map(|_| {
                (
                    names[f.below(names.len())].to_string(),
                    values[f.below(values.len())].to_string(),
                )
            })
            .collect();
        if let Ok(q) = parse_stats_query(&pairs, None, NOW) {
            // Bucket arithmetic must stay bounded for any accepted range.
            assert!(q.buckets().take(2_000).count() <= 1_000);
            let _ = q.covered_end_ms();
        }
    });
}

#[test]
fn api_times_never_panic() {
    fuzz("parse_api_time", |f| {
        let text =
            String::from_utf8_lossy(&f.mangled_text(&json!("2026-11-22T07:00:00.250+01:00")))
                .into_owned();
        let _ = parse_api_time(text.trim_matches('"'));
    });
}

#[test]
fn flag_and_segment_definitions_never_panic() {
    let flag = flag_seed();
    let segment =
        json!({"key": "beta", "conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}]});
    fuzz("validate_flag/compile/evaluate", |f| {
        let body = f.mutated(&flag);
        let _ = validate_flag(&body, &["beta"], &["checkout", "base"]);
        let _ = validate_segment(&f.mutated(&segment));
        let ruleset = Ruleset {
            version: "v".into(),
            flags: vec![body, f.mutated(&flag)],
            segments: vec![f.mutated(&segment)],
        };
        let engine = compile(&ruleset);
        let mut ctx = Context::new();
        for key in ["user_id", "plan", "version", "age", "signup"] {
            ctx.insert(
                key.into(),
                serde_json::from_str(NASTY[f.below(NASTY.len())]).unwrap_or(Value::Null),
            );
        }
        let _ = engine.evaluate_all(&ctx, &ProbeStates::new(), NOW);
        let _ = engine.schedule_epoch(NOW);
    });
}

#[test]
fn probe_definitions_and_targets_never_panic() {
    let probe = json!({"key": "partner", "url": "https://partner.example/health", "method": "GET",
        "headers": {"Accept": "application/json"}, "secret_headers": {"X-Token": "PROBE_SECRET_PARTNER"},
        "expect_status": [200, 299], "body_json": {"pointer": "/status", "equals": "green"},
        "timeout_ms": 1000, "interval_s": 20, "disable_below": 0.1, "disable_window_ms": 300000,
        "enable_at_least": 0.9, "enable_window_ms": 900000, "min_samples": 3});
    let policy = TargetPolicy {
        allow_private: false,
        own_hosts: vec!["collect.example.com".into()],
    };
    fuzz("validate_probe/check_probe_target", |f| {
        let _ = validate_probe(&f.mutated(&probe));
        let url =
            String::from_utf8_lossy(&f.mangled_text(&json!("http://[::ffff:7f00:1]:80/x?y#z")))
                .into_owned();
        let _ = check_probe_target(url.trim_matches('"'), &policy);
    });
}

#[test]
fn whole_configs_never_panic() {
    let flag = flag_seed();
    let base = json!({"key": "base", "variants": [{"key": "on", "value": true}], "default_variant": "on",
        "prerequisites": [{"flag": "checkout", "variants": ["on"]}]});
    let segment =
        json!({"key": "beta", "conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}]});
    let probe = json!({"key": "partner", "url": "https://partner.example/health"});
    fuzz("validate_snapshot", |f| {
        let mut snapshot = Snapshot::default();
        let mut bodies = HashMap::new();
        for (kind, body) in [
            (Kind::Flags, f.mutated(&flag)),
            (Kind::Flags, f.mutated(&base)),
            (Kind::Segments, f.mutated(&segment)),
            (Kind::Probes, f.mutated(&probe)),
        ] {
            let key = body
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or("../../x")
                .to_string();
            let rev = revision_id(&body);
            snapshot.entries_mut(kind).insert(key, rev.clone());
            if f.below(8) > 0 {
                bodies.insert(rev, body);
            }
        }
        let _ = validate_snapshot(&snapshot, &bodies);
    });
}
