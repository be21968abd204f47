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
//! **It decides; it does not compile.** The collector compiles and validates a ruleset
//! (it does so anyway, to publish it) and serves the compiled engine beside the JSON, as
//! bytes in the `compiled` field ([`telltale_core::flags::Engine::to_wire`]). This module
//! reads those bytes back, so no flag readers, validation or compile step are in it.
//!
//! `evaluate`, `evaluateAll` and `evaluateRuleset` are JavaScript (sdk/js/engine.js) over
//! the packed decisions below: one path decides, and no decision is serialized here.
//!
//! **Small:** it reads no JSON at all: a context's object and array values arrive in
//! core's wire form (written by sdk/js/engine.js), and probe states as name/state pairs.
//! Nothing is serialized in Rust (variant values reach JavaScript from its own
//! `JSON.parse` of the ruleset, by the position [`FlagEngine::source`] gives).
//!
//! It is a separate download so that the SDK's remote mode (the default) never pays for
//! the engine.
//!
//! **The fast path** keeps JSON off the per-decision boundary: `setContext` reads a
//! context once and keeps it in wasm; `decide(index, now)` and `decideAll(now)` return
//! packed numbers ([`pack`]); the JavaScript `tables()` gives, once per ruleset, what the
//! numbers index (keys, each flag's variant values, rule ids, required probes), built from
//! the per-flag accessors below, and `decodeDecision` turns a number back into a decision
//! object.
//!
//! ```js
//! const tables = engine.tables();
//! engine.setContext({ user_id: 'u-1' }, undefined);
//! const index = engine.indexOf('new-checkout');
//! const packed = engine.decide(index, Date.now());
//! const value = tables.variants[index]?.[(packed % 65536) - 1]?.[1];
//! ```

// On wasm32 the crate is `no_std`, as the SDK's core is: a panic (which the code avoids)
// traps instead of formatting a message, and Talc replaces std's dlmalloc. The `std`
// feature links std instead, for the wasm-bindgen-test suite in tests/.
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]
extern crate alloc;

#[cfg(all(target_arch = "wasm32", not(test), not(feature = "std")))]
#[panic_handler]
fn trap_on_panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use telltale_core::flags::engine::read_wire_value;
use telltale_core::flags::engine::{DecisionError, Outcome, Reason, Resolved};
use telltale_core::flags::{Engine, ProbeState, ProbeStates};
use telltale_core::json::{Number, Value};
use wasm_bindgen::prelude::*;

/// A JavaScript number as JSON carries it to serde_json: a safe integer (`-0` too) is an
/// integer (`u64`, or `i64` when negative), anything else finite an `f64`, and what is not
/// finite null (absent). JavaScript sends integers beyond 2^53 in the wire form instead,
/// typed from the digits `JSON.stringify` writes for them.
fn number_from_js(n: f64) -> Option<Value> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    if !n.is_finite() {
        return None;
    }
    // In the safe range, an integer survives the cast to i64 and back (core has no `trunc`).
    let number = if (0.0..=SAFE).contains(&n.abs()) && n as i64 as f64 == n {
        if n > -1.0 {
            Number::from(n as u64)
        } else {
            Number::from(n as i64)
        }
    } else {
        Number::from_f64(n)?
    };
    Some(Value::Number(number))
}

/// Tags of the context encoding that sdk/js/engine.js writes (`encodeContext`): per
/// attribute, in [`telltale_core::flags::Engine::attribute_names`] order, a tag byte and
/// its payload (an f64, or the byte length of a text), little-endian; then the texts, one
/// after another (JavaScript encodes them in one call).
mod tag {
    pub const ABSENT: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    /// 8 bytes: an f64.
    pub const NUMBER: u8 = 3;
    /// 4 bytes: the UTF-8 length of a string among the texts.
    pub const STRING: u8 = 4;
    /// 4 bytes: the length of an object or array value, in core's wire form
    /// (`telltale_core::flags::engine::read_wire_value`), among the values after the texts.
    pub const JSON: u8 = 5;
}

/// Reads the encoded attribute values into `context`, in place; `None` (and `context`
/// partly written) when the bytes are not a whole encoding. After the headers come the
/// strings' UTF-8 (one after another), then the object and array values in wire form.
fn decode_context(bytes: &[u8], context: &mut Resolved<'static>, count: usize) -> Option<()> {
    // Where the texts begin (after every header), and how long they are in all.
    let mut texts_at: usize = 0;
    let mut texts_length: usize = 0;
    for _ in 0..count {
        let header = bytes.get(texts_at..)?;
        texts_at += match *header.first()? {
            tag::ABSENT | tag::FALSE | tag::TRUE => 1,
            tag::NUMBER => 9,
            tag::STRING => {
                texts_length += u32::from_le_bytes(header.get(1..5)?.try_into().ok()?) as usize;
                5
            }
            tag::JSON => 5,
            _ => return None,
        };
    }
    let mut texts = bytes.get(texts_at..texts_at.checked_add(texts_length)?)?;
    let mut values = bytes.get(texts_at + texts_length..)?;
    let mut at: usize = 0;
    let mut take = |n: usize| {
        let taken = bytes.get(at..at + n);
        at += n;
        taken
    };
    for attribute in 0..count {
        match *take(1)?.first()? {
            tag::FALSE => context.set(attribute, Some(Value::Bool(false))),
            tag::TRUE => context.set(attribute, Some(Value::Bool(true))),
            tag::NUMBER => {
                let number = f64::from_le_bytes(take(8)?.try_into().ok()?);
                context.set(attribute, number_from_js(number));
            }
            tag::STRING => {
                let length = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                context.set_text(attribute, core::str::from_utf8(texts.get(..length)?).ok()?);
                texts = texts.get(length..)?;
            }
            tag::JSON => {
                let length = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                // A value the reader refuses (nested too deep) is absent, as JSON it could
                // not read was before.
                context.set(attribute, read_wire_value(values.get(..length)?));
                values = values.get(length..)?;
            }
            _ => context.set(attribute, None),
        }
    }
    (texts.is_empty() && values.is_empty()).then_some(())
}

/// Probe states from `[name, state, name, state, ...]` (`state` as served: `up`, `down`,
/// anything else unknown).
fn probe_states(pairs: &[String]) -> ProbeStates {
    pairs
        .chunks_exact(2)
        .map(|pair| {
            let state = match pair[1].as_str() {
                "up" => ProbeState::Up,
                "down" => ProbeState::Down,
                _ => ProbeState::Unknown,
            };
            (pair[0].clone(), state)
        })
        .collect()
}

/// A compiled ruleset (what `GET /v1/flags/compiled` serves), evaluated by the same engine
/// the collector runs.
#[wasm_bindgen]
pub struct FlagEngine {
    engine: Engine,
    /// The probe states the ruleset was served with (its `probes` field).
    served_probes: ProbeStates,
    /// The context `setContext` parsed, resolved against the ruleset's attributes, and
    /// the probe states it was given (`None`: as served, which spares copying them on
    /// every `setContext`).
    context: Resolved<'static>,
    probes: Option<ProbeStates>,
    /// Where JavaScript writes the next context's encoded values ([`FlagEngine::context_buffer`]).
    input: Vec<u8>,
}

/// For Rust callers (the wasm test suite): `setContextEncoded` from bytes already encoded.
impl FlagEngine {
    pub fn set_context_bytes(&mut self, bytes: &[u8], probes: Option<Vec<String>>) {
        self.input.clear();
        self.input.extend_from_slice(bytes);
        self.set_context_encoded(bytes.len(), probes);
    }
}

/// The reasons in the order [`pack`] numbers them (and `reasons()` lists them).
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

#[wasm_bindgen]
impl FlagEngine {
    /// Reads a compiled ruleset: the bytes of the served ruleset's `compiled` field
    /// (`GET /v1/flags/compiled`, or `POST /v1/flags/compile` for a ruleset of one's own),
    /// and the probe states it was served with (`[name, state, ...]`), used when a call
    /// passes none. Throws when the bytes are not a compiled
    /// ruleset. Nothing is compiled or validated here: the collector did that.
    #[wasm_bindgen(constructor)]
    pub fn new(compiled: &[u8], served_probes: Vec<String>) -> Result<FlagEngine, JsError> {
        // The reason alone: formatting the offset would link number formatting.
        let engine = Engine::from_wire(compiled)
            .map_err(|e| JsError::new(&(String::from("not a compiled ruleset: ") + e.reason)))?;
        let served_probes = probe_states(&served_probes);
        Ok(FlagEngine {
            context: engine.blank_context(),
            engine,
            served_probes,
            probes: None,
            input: Vec::new(),
        })
    }

    /// The config version the decisions report.
    pub fn version(&self) -> String {
        self.engine.version().to_string()
    }

    /// Every flag key, sorted: a flag's index is its position here.
    pub fn keys(&self) -> Vec<String> {
        self.engine.keys().map(str::to_string).collect()
    }

    /// Flag `index`'s position in the ruleset's `flags` list (-1: no such flag).
    pub fn source(&self, index: u32) -> i32 {
        self.engine
            .source(index as usize)
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(-1)
    }

    /// The variant keys flag `index` serves, by variant index (a broken flag: only the
    /// default it declared, if it can be read).
    #[wasm_bindgen(js_name = variantKeys)]
    pub fn variant_keys(&self, index: u32) -> Vec<String> {
        let variants = self.engine.variants(index as usize);
        variants.iter().map(|(key, _)| key.clone()).collect()
    }

    /// Flag `index`'s rule ids, by rule index.
    #[wasm_bindgen(js_name = ruleIds)]
    pub fn rule_ids(&self, index: u32) -> Vec<String> {
        let index = index as usize;
        (0..)
            .map_while(|r| self.engine.rule_id(index, r))
            .map(str::to_string)
            .collect()
    }

    /// The probe flag `index` requires, if any.
    #[wasm_bindgen(js_name = requiredProbe)]
    pub fn required_probe(&self, index: u32) -> Option<String> {
        self.engine
            .required_probe(index as usize)
            .map(str::to_string)
    }

    /// Why flag `index` did not compile, if it did not.
    pub fn problem(&self, index: u32) -> Option<String> {
        self.engine.problem(index as usize).map(str::to_string)
    }

    /// The reasons' names, in the order [`pack`] numbers them.
    pub fn reasons() -> Vec<String> {
        REASONS.iter().map(|r| r.as_str().to_string()).collect()
    }

    /// Room for `bytes` bytes in wasm memory, where JavaScript encodes the next context's
    /// attribute values (strings by `TextEncoder.encodeInto`, native) before
    /// `setContextEncoded`. The pointer is valid until the next call into wasm.
    #[wasm_bindgen(js_name = contextBuffer)]
    pub fn context_buffer(&mut self, bytes: usize) -> *mut u8 {
        if self.input.len() < bytes {
            self.input.resize(bytes, 0);
        }
        self.input.as_mut_ptr()
    }

    /// The attributes the rules read, in the order `setContextEncoded` takes their values.
    #[wasm_bindgen(js_name = attributeNames)]
    pub fn attribute_names(&self) -> Vec<String> {
        self.engine.attribute_names().to_vec()
    }

    /// `setContext` with the context's attribute values encoded (see [`tag`]) in the
    /// first `length` bytes of the buffer `contextBuffer` gave: no JSON for a flat
    /// context, and nothing read that no rule reads. A malformed encoding is an empty
    /// context.
    #[wasm_bindgen(js_name = setContextEncoded)]
    pub fn set_context_encoded(&mut self, length: usize, probes: Option<Vec<String>>) {
        let count = self.engine.attribute_names().len();
        let bytes = self.input.get(..length).unwrap_or_default();
        if decode_context(bytes, &mut self.context, count).is_none() {
            self.context.clear();
        }
        self.engine.reread_versions(&mut self.context);
        self.probes = probes.map(|pairs| probe_states(&pairs));
    }

    /// Decides flag `index` (its position in `keys()`) for the context set last: one
    /// packed number (see [`pack`]).
    pub fn decide(&self, index: u32, now_ms: f64) -> f64 {
        let probes = self.probes.as_ref().unwrap_or(&self.served_probes);
        pack(
            &self
                .engine
                .decide_resolved(index as usize, &self.context, probes, now_ms as i64),
        )
    }

    /// Decides every flag for the context set last: packed numbers in index order.
    #[wasm_bindgen(js_name = decideAll)]
    pub fn decide_all(&self, now_ms: f64) -> Vec<f64> {
        let probes = self.probes.as_ref().unwrap_or(&self.served_probes);
        (0..self.engine.len())
            .map(|i| {
                let outcome = self
                    .engine
                    .decide_resolved(i, &self.context, probes, now_ms as i64);
                pack(&outcome)
            })
            .collect()
    }

    /// The probe states the ruleset was served with, as `[name, state, name, state, ...]`.
    #[wasm_bindgen(js_name = servedProbes)]
    pub fn served_probes(&self) -> Vec<String> {
        self.served_probes
            .iter()
            .flat_map(|(name, state)| [name.clone(), state.as_str().to_string()])
            .collect()
    }

    /// Compile warnings, as `[code, field, message, code, field, message, ...]`.
    pub fn warnings(&self) -> Vec<String> {
        self.engine
            .warnings()
            .iter()
            .flat_map(|w| [w.code.to_string(), w.field.clone(), w.message.clone()])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telltale_core::flags::engine::write_wire_value;
    use telltale_core::json;

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

    /// What JSON would carry for each number: its `JSON.stringify` text, read by core.
    #[test]
    fn numbers_cross_as_json_would_carry_them() {
        let cases: [(f64, &str); 9] = [
            (0.0, "0"),
            (-0.0, "0"),
            (42.0, "42"),
            (-7.0, "-7"),
            (0.5, "0.5"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            (-9_007_199_254_740_991.0, "-9007199254740991"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-1.5e-7, "-1.5e-7"),
        ];
        for (n, text) in cases {
            let expected = json::parse(text).unwrap();
            let ours = number_from_js(n).unwrap();
            assert_eq!(ours, expected, "{n}");
            let (a, b) = (ours.as_number().unwrap(), expected.as_number().unwrap());
            assert_eq!((a.is_u64(), a.is_i64()), (b.is_u64(), b.is_i64()), "{n}");
        }
        assert_eq!(number_from_js(f64::NAN), None);
        assert_eq!(number_from_js(f64::INFINITY), None);
    }

    #[test]
    fn decodes_what_the_javascript_encoder_writes_and_refuses_the_rest() {
        let ruleset = r#"{"flags": [{"key": "f", "variants": [{"key": "on", "value": true}],
            "default_variant": "on", "rules": [{"conditions": [
            {"attribute": "a", "op": "eq", "value": 1}, {"attribute": "b", "op": "eq", "value": 1},
            {"attribute": "c", "op": "eq", "value": 1}, {"attribute": "d", "op": "eq", "value": 1}],
            "serve": {"variant": "on"}}]}]}"#;
        let engine = telltale_core::flags::compile(
            &telltale_core::flags::Ruleset::from_value(&json::parse(ruleset).unwrap()).unwrap(),
        );
        // user_id, anonymous_id, a, b, c, d
        assert_eq!(engine.attribute_names().len(), 6);
        let mut bytes = vec![tag::ABSENT, tag::TRUE, tag::FALSE, tag::NUMBER];
        bytes.extend(3.0f64.to_le_bytes());
        bytes.push(tag::STRING);
        bytes.extend(5u32.to_le_bytes());
        let listed = write_wire_value(&json::parse(r#"[1,"a"]"#).unwrap());
        bytes.push(tag::JSON);
        bytes.extend((listed.len() as u32).to_le_bytes());
        // The strings' UTF-8, then the values in wire form.
        bytes.extend("héé".as_bytes());
        bytes.extend(&listed);
        let mut context = engine.blank_context();
        decode_context(&bytes, &mut context, 6).unwrap();
        let mut expected = engine.blank_context();
        expected.set(1, Some(Value::Bool(true)));
        expected.set(2, Some(Value::Bool(false)));
        expected.set(3, Some(Value::from(3u64)));
        expected.set_text(4, "héé");
        expected.set(5, Some(json::parse(r#"[1,"a"]"#).unwrap()));
        assert_eq!(format!("{context:?}"), format!("{expected:?}"));
        // Too few values, bytes left over, a cut text, an unknown tag, bad UTF-8, a length
        // beyond the end: all refused.
        let mut scratch = engine.blank_context();
        assert!(decode_context(&bytes, &mut scratch, 7).is_none());
        assert!(decode_context(&bytes, &mut scratch, 5).is_none());
        assert!(decode_context(&bytes[..bytes.len() - 1], &mut scratch, 6).is_none());
        assert!(decode_context(&[9], &mut scratch, 1).is_none());
        assert!(decode_context(&[tag::STRING, 1, 0, 0, 0, 0xff], &mut scratch, 1).is_none());
        assert!(decode_context(&[tag::STRING, 0xff, 0xff, 0xff, 0xff], &mut scratch, 1).is_none());
        // A value the wire reader refuses (an unknown tag) is absent, not the whole context.
        let mut odd = engine.blank_context();
        decode_context(&[tag::JSON, 1, 0, 0, 0, 9], &mut odd, 1).unwrap();
        assert_eq!(format!("{odd:?}"), format!("{:?}", engine.blank_context()));
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
