//! The flags half of the `Telltale` class, and `evaluateRuleset` for local tooling.

use crate::browser::now_ms;
use crate::flags::{backoff_ms, DecisionView, FlagMode, RemoteAnswer};
use crate::{Inner, Telltale};
use gloo_timers::callback::Interval;
use js_sys::{Array, Function, Object, Reflect};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::rc::Rc;
use telltale_core::flags::engine::ProbeState;
use telltale_core::flags::{compile, ProbeStates, Ruleset};
use wasm_bindgen::prelude::*;

/// Rust -> JS through JSON text: `JSON.parse` builds objects faster than field-by-field
/// conversion, and keeps one serializer (serde_json) in the binary.
pub(crate) fn to_js<T: Serialize>(value: &T) -> JsValue {
    serde_json::to_string(value)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

/// JS -> Rust through `JSON.stringify` (functions and undefined drop out, as in JSON).
pub(crate) fn from_js(value: &JsValue) -> Option<Value> {
    if value.is_undefined() {
        return None;
    }
    let text = js_sys::JSON::stringify(value).ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedDecisions {
    etag: Option<String>,
    decisions: BTreeMap<String, DecisionView>,
}

/// Loads cached decisions, starts the first refresh, the refresh timer and the
/// refresh-on-visible hook.
pub(crate) fn start(inner: &Rc<Inner>) {
    if inner.config.flag_mode == FlagMode::Off {
        return;
    }
    load_cached(inner);
    let first = Rc::clone(inner);
    wasm_bindgen_futures::spawn_local(async move {
        refresh(first, true).await;
    });
    if inner.config.flag_refresh_ms > 0 {
        let weak = Rc::downgrade(inner);
        let timer = Interval::new(inner.config.flag_refresh_ms, move || {
            if let Some(inner) = weak.upgrade() {
                wasm_bindgen_futures::spawn_local(async move {
                    refresh(inner, false).await;
                });
            }
        });
        *inner.flag_timer.borrow_mut() = Some(timer);
    }
    inner.browser.on_visible(Rc::downgrade(inner), |inner| {
        let inner = Rc::clone(inner);
        wasm_bindgen_futures::spawn_local(async move {
            refresh(inner, false).await;
        });
    });
}

/// Shows cached decisions for the current context at once (no flicker on reload).
fn load_cached(inner: &Rc<Inner>) {
    let key = inner.flags.borrow().cache_key();
    let Some(text) = inner.browser.load_item(&key) else {
        return;
    };
    if let Ok(cached) = serde_json::from_str::<CachedDecisions>(&text) {
        let changed = {
            let mut flags = inner.flags.borrow_mut();
            flags.etag = cached.etag;
            flags.replace(cached.decisions)
        };
        notify(inner, &changed);
    }
}

fn save_cache(inner: &Inner) {
    let flags = inner.flags.borrow();
    let cached = CachedDecisions {
        etag: flags.etag.clone(),
        decisions: flags.decisions.clone(),
    };
    if let Ok(text) = serde_json::to_string(&cached) {
        inner.browser.save_item(&flags.cache_key(), &text);
    }
}

fn notify(inner: &Inner, changed: &[String]) {
    if changed.is_empty() {
        return;
    }
    let keys: Array = changed.iter().map(|k| JsValue::from_str(k)).collect();
    let listeners = inner.flag_listeners.borrow().clone();
    for listener in listeners {
        if listener.call1(&JsValue::NULL, &keys).is_err() {
            inner.report("an onChange listener threw");
        }
    }
}

fn notify_probes(inner: &Inner, changed: &[String]) {
    if changed.is_empty() {
        return;
    }
    let listeners = inner.probe_listeners.borrow().clone();
    for name in changed {
        let state = inner.flags.borrow().probe(name).to_string();
        for listener in &listeners {
            if listener
                .call2(
                    &JsValue::NULL,
                    &JsValue::from_str(name),
                    &JsValue::from_str(&state),
                )
                .is_err()
            {
                inner.report("an onProbeChange listener threw");
            }
        }
    }
}

/// Fetches decisions (remote) or the ruleset (local). Unless `force`d, it waits out the
/// backoff after failures. Returns whether the refresh succeeded.
pub(crate) async fn refresh(inner: Rc<Inner>, force: bool) -> bool {
    let now = now_ms();
    let (mode, etag, context) = {
        let flags = inner.flags.borrow();
        if !force && now < flags.next_fetch_at {
            return false;
        }
        (flags.mode, flags.etag.clone(), flags.context.clone())
    };
    let answer = match mode {
        FlagMode::Off => return false,
        FlagMode::Remote => {
            let body = serde_json::json!({ "context": context }).to_string();
            inner
                .browser
                .request(
                    &inner.config.url("/v1/flags/evaluate"),
                    &inner.config.key,
                    Some(&body),
                    etag.as_deref(),
                )
                .await
        }
        FlagMode::Local => {
            inner
                .browser
                .request(
                    &inner.config.url("/v1/flags/ruleset"),
                    &inner.config.key,
                    None,
                    etag.as_deref(),
                )
                .await
        }
    };
    let mut changed_probes: Vec<String> = Vec::new();
    let outcome: Result<Option<BTreeMap<String, DecisionView>>, String> = match answer {
        Ok(a) if a.status == 304 => {
            if mode == FlagMode::Local {
                Ok(inner.flags.borrow().evaluate_locally(now as i64))
            } else {
                Ok(None)
            }
        }
        Ok(a) if a.status == 200 => {
            let mut flags = inner.flags.borrow_mut();
            flags.etag = a.etag;
            let loaded = match mode {
                FlagMode::Local => flags
                    .load_ruleset(&a.body)
                    .map(|changed| (flags.evaluate_locally(now as i64), changed)),
                _ => serde_json::from_str::<RemoteAnswer>(&a.body)
                    .map(|r| {
                        let changed = flags.replace_probes(r.probes);
                        (Some(r.flags), changed)
                    })
                    .map_err(|e| e.to_string()),
            };
            loaded.map(|(decisions, probes_changed)| {
                changed_probes = probes_changed;
                decisions
            })
        }
        Ok(a) => Err(["flags request answered ", &a.status.to_string()].concat()),
        Err(message) => Err(message),
    };
    match outcome {
        Ok(next) => {
            let changed = {
                let mut flags = inner.flags.borrow_mut();
                flags.failures = 0;
                flags.next_fetch_at = 0.0;
                next.map(|n| flags.replace(n)).unwrap_or_default()
            };
            save_cache(&inner);
            notify(&inner, &changed);
            notify_probes(&inner, &changed_probes);
            true
        }
        Err(message) => {
            {
                let mut flags = inner.flags.borrow_mut();
                flags.failures += 1;
                let jitter = 1.0 + js_sys::Math::random() * 0.2;
                flags.next_fetch_at = now + backoff_ms(flags.failures) * jitter;
            }
            inner.report(&["flag refresh failed: ", &message, "; backing off"].concat());
            false
        }
    }
}

impl Inner {
    /// The decision for `key`, recording an exposure the first time in this session.
    fn decision(self: &Rc<Self>, key: &str) -> Option<DecisionView> {
        let decision = self.flags.borrow().decisions.get(key).cloned()?;
        if let Some(variant) = &decision.variant {
            if self.flags.borrow_mut().first_exposure(key, variant) {
                let props = Object::new();
                let _ = Reflect::set(&props, &"flag".into(), &key.into());
                let _ = Reflect::set(&props, &"variant".into(), &variant.into());
                let _ = Reflect::set(&props, &"version".into(), &decision.version.as_str().into());
                let _ = Reflect::set(&props, &"reason".into(), &decision.reason.as_str().into());
                self.enqueue("track", "$exposure", &props.into());
            }
        }
        Some(decision)
    }
}

#[wasm_bindgen]
impl Telltale {
    /// Whether a boolean flag is on; `defaultValue` when unknown or not a boolean.
    #[wasm_bindgen(js_name = isEnabled)]
    pub fn is_enabled(&self, key: &str, default_value: bool) -> bool {
        self.inner
            .decision(key)
            .and_then(|d| d.value.as_bool())
            .unwrap_or(default_value)
    }

    /// The variant served for a flag, if known.
    pub fn variant(&self, key: &str) -> Option<String> {
        self.inner.decision(key).and_then(|d| d.variant)
    }

    /// A flag's value; `defaultValue` when unknown or of another type than the default.
    pub fn value(&self, key: &str, default_value: JsValue) -> JsValue {
        let Some(d) = self.inner.decision(key) else {
            return default_value;
        };
        let value = to_js(&d.value);
        let same_type = default_value.is_undefined()
            || default_value.is_null()
            || value.js_typeof() == default_value.js_typeof()
                && Array::is_array(&value) == Array::is_array(&default_value);
        if same_type {
            value
        } else {
            default_value
        }
    }

    /// Everything known about a decision: value, variant, reason, error code, version.
    pub fn details(&self, key: &str) -> JsValue {
        match self.inner.decision(key) {
            Some(d) => {
                let out = to_js(&d);
                let _ = Reflect::set(&out, &"key".into(), &key.into());
                out
            }
            None => to_js(
                &serde_json::json!({"key": key, "value": null, "reason": "ERROR", "error_code": "FLAG_NOT_FOUND"}),
            ),
        }
    }

    /// Replaces the evaluation context (user, role, course, ...) and refreshes decisions.
    /// Resolves to whether the refresh succeeded.
    #[wasm_bindgen(js_name = setContext)]
    pub fn set_context(&self, context: JsValue) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        let parsed = match from_js(&context) {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => Map::new(),
            _ => {
                inner.report("setContext() needs a plain object");
                return js_sys::Promise::resolve(&JsValue::FALSE);
            }
        };
        let changed = {
            let mut flags = inner.flags.borrow_mut();
            flags.context = parsed;
            match flags.evaluate_locally(now_ms() as i64) {
                Some(next) if flags.mode == FlagMode::Local => flags.replace(next),
                _ => {
                    flags.etag = None; // decisions for another context
                    Vec::new()
                }
            }
        };
        notify(&inner, &changed);
        load_cached(&inner);
        wasm_bindgen_futures::future_to_promise(async move {
            Ok(JsValue::from_bool(refresh(inner, true).await))
        })
    }

    /// Calls `listener(changedKeys)` whenever decisions change.
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, listener: Function) {
        self.inner.flag_listeners.borrow_mut().push(listener);
    }

    /// A probe's health as the collector last reported it: `up`, `down` or `unknown`.
    pub fn probe(&self, name: &str) -> String {
        self.inner.flags.borrow().probe(name).to_string()
    }

    /// Calls `listener(name, state)` whenever a probe's state changes.
    #[wasm_bindgen(js_name = onProbeChange)]
    pub fn on_probe_change(&self, listener: Function) {
        self.inner.probe_listeners.borrow_mut().push(listener);
    }

    /// Refreshes decisions now. Resolves to whether it succeeded.
    #[wasm_bindgen(js_name = refreshFlags)]
    pub fn refresh_flags(&self) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            Ok(JsValue::from_bool(refresh(inner, true).await))
        })
    }
}

fn probe_states(probes: JsValue) -> ProbeStates {
    let mut states = ProbeStates::new();
    if let Some(Value::Object(map)) = from_js(&probes) {
        for (name, state) in map {
            let state = match state.as_str() {
                Some("up") => ProbeState::Up,
                Some("down") => ProbeState::Down,
                _ => ProbeState::Unknown,
            };
            states.insert(name, state);
        }
    }
    states
}

/// A compiled ruleset (the JSON `/v1/flags/ruleset` serves), evaluated by the same engine
/// the collector runs: for tools, tests and server-side rendering.
#[wasm_bindgen]
pub struct FlagEngine {
    engine: telltale_core::flags::Engine,
}

#[wasm_bindgen]
impl FlagEngine {
    /// Compiles a ruleset; throws only when it is not JSON of the right shape.
    #[wasm_bindgen(constructor)]
    pub fn new(ruleset_json: &str) -> Result<FlagEngine, JsError> {
        let ruleset: Ruleset =
            serde_json::from_str(ruleset_json).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(FlagEngine {
            engine: compile(&ruleset),
        })
    }

    /// Decides `key` for `context`; `probes` maps probe names to up/down/unknown.
    pub fn evaluate(&self, key: &str, context: JsValue, probes: JsValue, now_ms: f64) -> JsValue {
        let context = match from_js(&context) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        to_js(
            &self
                .engine
                .evaluate(key, &context, &probe_states(probes), now_ms as i64),
        )
    }

    /// Decides every flag for one context: `{key: decision}` (one boundary crossing for
    /// the context, as the SDK's local mode does on `setContext`).
    #[wasm_bindgen(js_name = evaluateAll)]
    pub fn evaluate_all(&self, context: JsValue, probes: JsValue, now_ms: f64) -> JsValue {
        let context = match from_js(&context) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let decisions: BTreeMap<String, telltale_core::flags::Decision> = self
            .engine
            .evaluate_all(&context, &probe_states(probes), now_ms as i64)
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
