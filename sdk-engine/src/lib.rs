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
//! It is a separate download so that the SDK's remote mode (the default) never pays for
//! the engine and its JSON machinery.

use js_sys::JSON;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use telltale_core::flags::{compile, Decision, Engine, ProbeState, ProbeStates, Ruleset};
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
        Ok(FlagEngine {
            engine: compile(&ruleset),
            served_probes,
        })
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

    /// Decides `key` for `context`. `probes` maps probe names to up/down/unknown
    /// (undefined: the states the ruleset was served with).
    pub fn evaluate(&self, key: &str, context: JsValue, probes: JsValue, now_ms: f64) -> JsValue {
        let probes = self.probe_states(&probes);
        to_js(
            &self
                .engine
                .evaluate(key, &context_of(&context), &probes, now_ms as i64),
        )
    }

    /// Decides every flag for one context: `{key: decision}` (one boundary crossing for
    /// the context, as the SDK's local mode does on `setContext`).
    #[wasm_bindgen(js_name = evaluateAll)]
    pub fn evaluate_all(&self, context: JsValue, probes: JsValue, now_ms: f64) -> JsValue {
        let probes = self.probe_states(&probes);
        let decisions: BTreeMap<String, Decision> = self
            .engine
            .evaluate_all(&context_of(&context), &probes, now_ms as i64)
            .into_iter()
            .map(|d| (d.key.clone(), d))
            .collect();
        to_js(&decisions)
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

/// Evaluates one flag of a ruleset in one call (compiles each time; keep a
/// [`FlagEngine`] to evaluate many).
#[wasm_bindgen(js_name = evaluateRuleset)]
pub fn evaluate_ruleset(
    ruleset_json: &str,
    key: &str,
    context: JsValue,
    probes: JsValue,
    now_ms: f64,
) -> Result<JsValue, JsError> {
    Ok(FlagEngine::new(ruleset_json)?.evaluate(key, context, probes, now_ms))
}
