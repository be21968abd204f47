//! # telltale/engine
//!
//! The flag engine the collector runs (`telltale_core::flags`), compiled to WebAssembly
//! for the browser: the SDK's local mode loads it on demand (`import('telltale/engine')`),
//! and tools, tests and server-side rendering can use it directly.
//!
//! ```js
//! import initEngine, { FlagEngine } from 'telltale/engine';
//! await initEngine();
//! const engine = new FlagEngine(await (await fetch(rulesetUrl)).text());
//! engine.evaluate('new-checkout', { user_id: 'u-1' }, undefined, Date.now());
//! ```
//!
//! `evaluate`, `evaluateAll` and `evaluateRuleset` are JavaScript (sdk/js/engine.js) over
//! the packed decisions below: one path decides, and no decision is serialized here.
//!
//! It is a separate download so that the SDK's remote mode (the default) never pays for
//! the engine and its JSON machinery.
//!
//! **The fast path** keeps JSON off the per-decision boundary: `setContext` parses a
//! context once and keeps it in wasm; `decide(index, now)` and `decideAll(now)` return
//! packed numbers ([`pack`]); `tables()` gives, once per ruleset, what the numbers index
//! (keys, each flag's variant values, rule ids, required probes), and the SDK's
//! `decodeDecision` turns a number back into a decision object.
//!
//! ```js
//! const tables = engine.tables();
//! engine.setContext({ user_id: 'u-1' }, undefined);
//! const index = engine.indexOf('new-checkout');
//! const packed = engine.decide(index, Date.now());
//! const value = tables.variants[index]?.[(packed % 65536) - 1]?.[1];
//! ```

use js_sys::JSON;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use telltale_core::flags::engine::{Context, DecisionError, Outcome, Reason};
use telltale_core::flags::{compile, Engine, ProbeState, ProbeStates, Ruleset};
use wasm_bindgen::prelude::*;

/// Rust -> JS through JSON text: `JSON.parse` builds objects faster than field-by-field
/// conversion, and keeps one serializer (serde_json) in the binary.
fn to_js<T: Serialize>(value: &T) -> JsValue {
    serde_json::to_string(value)
        .ok()
        .and_then(|text| JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

/// JS -> Rust through `JSON.stringify` (functions and undefined drop out, as in JSON).
fn from_js(value: &JsValue) -> Option<Value> {
    if value.is_undefined() {
        return None;
    }
    let text = JSON::stringify(value).ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

fn context_of(value: &JsValue) -> Map<String, Value> {
    match from_js(value) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A compiled ruleset (the JSON `/v1/flags/ruleset` serves), evaluated by the same engine
/// the collector runs.
#[wasm_bindgen]
pub struct FlagEngine {
    engine: Engine,
    /// The probe states the ruleset was served with (its `probes` field).
    served_probes: BTreeMap<String, ProbeState>,
    /// The context `setContext` parsed, and the probe states it was given.
    context: Context,
    probes: ProbeStates,
}

/// The reasons in the order [`pack`] numbers them (and `tables().reasons` lists them).
const REASONS: [Reason; 7] = Reason::ALL;

/// An outcome as one number, exact in an f64 (53 bits), so that a decision crosses the
/// boundary without an allocation:
/// - bits 0–15: variant index + 1 (0: no value);
/// - bits 16–18: reason, as numbered in [`REASONS`];
/// - bits 19–20: error (0 none, 1 flag not found, 2 parse error);
/// - bit 21: the flag's required probe is down;
/// - bits 22–38: bucket + 1 (0: none; buckets are below 100,000 < 2^17);
/// - bits 39–52: rule index + 1 (0: none).
///
/// Indexes beyond a field's width read as none; compile keeps flags within it
/// ([`telltale_core::flags::engine::MAX_VARIANTS`], [`telltale_core::flags::engine::MAX_RULES`]).
pub fn pack(outcome: &Outcome) -> f64 {
    let field = |value: Option<usize>, bits: u32| {
        value
            .map(|v| v as u64 + 1)
            .filter(|v| *v < 1 << bits)
            .unwrap_or(0)
    };
    let reason = REASONS
        .iter()
        .position(|r| *r == outcome.reason)
        .unwrap_or(0) as u64;
    let error = match outcome.error {
        None => 0,
        Some(DecisionError::FlagNotFound) => 1,
        Some(DecisionError::ParseError) => 2,
    };
    let bits = field(outcome.variant, 16)
        | reason << 16
        | error << 19
        | u64::from(outcome.probe_down) << 21
        | field(outcome.bucket.map(|b| b as usize), 17) << 22
        | field(outcome.rule, 14) << 39;
    bits as f64
}

// The packing's field widths hold every index compile allows.
const _: () = assert!(
    telltale_core::flags::engine::MAX_VARIANTS < 1 << 16
        && telltale_core::flags::engine::MAX_RULES < 1 << 14
);

/// Flag tables for the packed decisions, serialized once per ruleset.
#[derive(Serialize)]
struct Tables<'a> {
    version: &'a str,
    keys: Vec<&'a str>,
    /// Per flag: `[[variant key, value], ...]`, by variant index.
    variants: Vec<&'a [(String, Value)]>,
    /// Per flag: rule ids, by rule index.
    rules: Vec<Vec<&'a str>>,
    /// Per flag: the probe it requires, or null.
    probes: Vec<Option<&'a str>>,
    /// Per flag: why it did not compile, or null.
    problems: Vec<Option<&'a str>>,
    reasons: Vec<&'static str>,
}

#[wasm_bindgen]
impl FlagEngine {
    /// Compiles a ruleset; throws only when it is not JSON of the right shape. A `probes`
    /// field (`{name: "up" | "down" | "unknown"}`, as the collector serves it) gives the
    /// probe states used when a call passes none.
    #[wasm_bindgen(constructor)]
    pub fn new(ruleset_json: &str) -> Result<FlagEngine, JsError> {
        let mut raw: Value =
            serde_json::from_str(ruleset_json).map_err(|e| JsError::new(&e.to_string()))?;
        let served_probes = match raw.as_object_mut().and_then(|o| o.remove("probes")) {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, state)| (name.clone(), ProbeState::from_served(state)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let ruleset: Ruleset =
            serde_json::from_value(raw).map_err(|e| JsError::new(&e.to_string()))?;
        let probes = served_probes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Ok(FlagEngine {
            engine: compile(&ruleset),
            served_probes,
            context: Context::new(),
            probes,
        })
    }

    /// What the packed decisions index, for this ruleset: `{version, keys, variants,
    /// rules, probes, problems, reasons}` (see the module docs). Read it once.
    pub fn tables(&self) -> JsValue {
        let engine = &self.engine;
        let flags = 0..engine.len();
        to_js(&Tables {
            version: engine.version(),
            keys: engine.keys().collect(),
            variants: flags.clone().map(|i| engine.variants(i)).collect(),
            rules: flags
                .clone()
                .map(|i| {
                    (0..)
                        .map_while(|r| engine.rule_id(i, r))
                        .collect::<Vec<_>>()
                })
                .collect(),
            probes: flags.clone().map(|i| engine.required_probe(i)).collect(),
            problems: flags.map(|i| engine.problem(i)).collect(),
            reasons: REASONS.iter().map(|r| r.as_str()).collect(),
        })
    }

    /// Parses `context` once and keeps it for `decide` and `decideAll`, with `probes`
    /// (`{name: state}`; undefined: the states the ruleset was served with).
    #[wasm_bindgen(js_name = setContext)]
    pub fn set_context(&mut self, context: JsValue, probes: JsValue) {
        self.context = context_of(&context);
        self.probes = self.probe_states(&probes);
    }

    /// Decides flag `index` (its position in `tables().keys`) for the context set last:
    /// one packed number (see [`pack`]).
    pub fn decide(&self, index: u32, now_ms: f64) -> f64 {
        pack(
            &self
                .engine
                .decide(index as usize, &self.context, &self.probes, now_ms as i64),
        )
    }

    /// Decides every flag for the context set last: packed numbers in index order.
    #[wasm_bindgen(js_name = decideAll)]
    pub fn decide_all(&self, now_ms: f64) -> Vec<f64> {
        (0..self.engine.len())
            .map(|i| {
                pack(
                    &self
                        .engine
                        .decide(i, &self.context, &self.probes, now_ms as i64),
                )
            })
            .collect()
    }

    /// The probe states the ruleset was served with: `{name: state}`.
    #[wasm_bindgen(js_name = servedProbes)]
    pub fn served_probes(&self) -> JsValue {
        to_js(&self.served_probes)
    }

    fn probe_states(&self, probes: &JsValue) -> ProbeStates {
        match from_js(probes) {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, state)| (name.clone(), ProbeState::from_served(state)))
                .collect(),
            _ => self
                .served_probes
                .iter()
                .map(|(name, state)| (name.clone(), *state))
                .collect(),
        }
    }

    /// Compile warnings: `[{code, field, message}]`.
    pub fn warnings(&self) -> JsValue {
        let list: Vec<Value> = self
            .engine
            .warnings()
            .iter()
            .map(|w| serde_json::json!({"code": w.code, "field": w.field, "message": w.message}))
            .collect();
        to_js(&list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            variant: None,
            reason: Reason::Static,
            error: None,
            rule: None,
            bucket: None,
            probe_down: false,
        }
    }

    /// The JS side's reading of a packed number (sdk/js/telltale.js `decodeDecision`).
    fn unpack(packed: f64) -> (u64, u64, u64, u64, u64, u64) {
        let n = packed as u64;
        (
            n & 0xffff,
            (n >> 16) & 7,
            (n >> 19) & 3,
            (n >> 21) & 1,
            (n >> 22) & 0x1_ffff,
            n >> 39,
        )
    }

    #[test]
    fn packing_is_exact_at_every_field_edge() {
        assert_eq!(unpack(pack(&outcome())), (0, 0, 0, 0, 0, 0));
        let full = Outcome {
            variant: Some(65_534),
            reason: Reason::PrerequisiteFailed,
            error: Some(DecisionError::ParseError),
            rule: Some(16_382),
            bucket: Some(99_999),
            probe_down: true,
        };
        let packed = pack(&full);
        assert!(packed < 2f64.powi(53), "exact in an f64");
        assert_eq!(unpack(packed), (65_535, 6, 2, 1, 100_000, 16_383));
        // Beyond a field's width reads as none rather than spilling into the next field.
        let over = Outcome {
            variant: Some(70_000),
            rule: Some(20_000),
            ..outcome()
        };
        assert_eq!(unpack(pack(&over)), (0, 0, 0, 0, 0, 0));
        for (i, reason) in REASONS.iter().enumerate() {
            let packed = pack(&Outcome {
                reason: *reason,
                ..outcome()
            });
            assert_eq!(unpack(packed).1, i as u64);
        }
    }
}
