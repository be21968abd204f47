//! The shared flag vectors through the engine compiled to wasm, as JavaScript drives it:
//! the ruleset compiled by core (as the collector does) and read back from its wire form
//! in wasm, each context through `setContext`, each decision one packed number. No browser needed: `npm test` runs it
//! with `wasm-pack test --node --mode no-install sdk-engine`.
#![cfg(target_arch = "wasm32")]

use serde_json::Value;
use telltale_core::time::parse_rfc3339;
use telltale_engine::FlagEngine;
use wasm_bindgen_test::wasm_bindgen_test;

/// A packed decision as JSON texts of variant, reason, rule, bucket and error code ("-"
/// when absent), read as sdk/js/engine.js `decodeDecision` reads it.
fn decoded(engine: &FlagEngine, index: Option<u32>, packed: f64) -> [String; 5] {
    let n = packed as u64;
    let (variant, reason, error) = (n & 0xffff, (n >> 16) & 7, (n >> 19) & 3);
    let (bucket, rule) = ((n >> 22) & 0x1_ffff, n >> 39);
    let quoted = |s: &str| Value::String(s.to_string()).to_string();
    let (variants, rules) = match index {
        Some(i) => (engine.variant_keys(i), engine.rule_ids(i)),
        None => (Vec::new(), Vec::new()),
    };
    let pick = |list: &[String], n: u64| match n {
        0 => "-".to_string(),
        n => list.get(n as usize - 1).map_or("?".into(), |s| quoted(s)),
    };
    [
        pick(&variants, variant),
        quoted(&FlagEngine::reasons()[reason as usize]),
        pick(&rules, rule),
        if bucket == 0 {
            "-".into()
        } else {
            (bucket - 1).to_string()
        },
        match error {
            0 => "-".into(),
            1 => quoted("FLAG_NOT_FOUND"),
            _ => quoted("PARSE_ERROR"),
        },
    ]
}

/// A context encoded as sdk/js/engine.js `encodeContext` writes it: per attribute a tag and
/// its payload, then the strings' UTF-8, then object and array values in wire form.
fn encoded(names: &[String], context: &Value) -> Vec<u8> {
    let (mut head, mut texts, mut values): (Vec<u8>, Vec<u8>, Vec<u8>) =
        (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        match context.get(name) {
            None | Some(Value::Null) => head.push(0),
            Some(Value::Bool(b)) => head.push(if *b { 2 } else { 1 }),
            Some(Value::Number(n))
                if n.as_f64()
                    .is_some_and(|f| f.abs() < 9_007_199_254_740_992.0) =>
            {
                head.push(3);
                head.extend(n.as_f64().unwrap().to_le_bytes());
            }
            Some(Value::String(s)) => {
                head.push(4);
                head.extend((s.len() as u32).to_le_bytes());
                texts.extend(s.as_bytes());
            }
            Some(other) => {
                let wire = telltale_core::flags::engine::write_wire_value(other);
                head.push(5);
                head.extend((wire.len() as u32).to_le_bytes());
                values.extend(wire);
            }
        }
    }
    head.extend(texts);
    head.extend(values);
    head
}

/// What a case expects, in the same terms.
fn expected(expect: &Value) -> [String; 5] {
    let text = |key: &str| {
        expect
            .get(key)
            .filter(|v| !v.is_null())
            .map_or("-".to_string(), Value::to_string)
    };
    [
        text("variant"),
        text("reason"),
        text("rule"),
        text("bucket"),
        text("error_code"),
    ]
}

#[wasm_bindgen_test]
fn every_shared_vector_decides_in_wasm_as_in_core() {
    let doc: Value =
        serde_json::from_str(include_str!("../../tests/spec/flags/cases.json")).unwrap();
    let ruleset = telltale_core::flags::Ruleset::from_value(
        &telltale_core::json::parse(&doc["ruleset"].to_string()).unwrap(),
    )
    .unwrap();
    let compiled = telltale_core::flags::compile(&ruleset).to_wire();
    let Ok(mut engine) = FlagEngine::new(&compiled, Vec::new()) else {
        panic!("the vectors' compiled ruleset reads back");
    };
    let keys = engine.keys();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let now = case.get("now").unwrap_or(&doc["now"]).as_str().unwrap();
        let now = parse_rfc3339(now).unwrap() as f64;
        let probes: Vec<String> = case
            .get("probes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(name, state)| {
                let state = state.as_str().or_else(|| state.get("state")?.as_str());
                [name.clone(), state.unwrap_or("unknown").to_string()]
            })
            .collect();
        let names = engine.attribute_names();
        engine.set_context_bytes(&encoded(&names, &case["context"]), Some(probes));
        let flag = case["flag"].as_str().unwrap();
        let index = keys.iter().position(|k| k == flag).map(|i| i as u32);
        let packed = engine.decide(index.unwrap_or(u32::MAX), now);
        assert_eq!(
            decoded(&engine, index, packed),
            expected(&case["expect"]),
            "{name}"
        );
    }
    let mut warnings = engine.warnings();
    assert_eq!(warnings.len() % 3, 0);
    let mut fields: Vec<String> = warnings.drain(..).skip(1).step_by(3).collect();
    fields.sort();
    let mut want: Vec<String> = doc["expected_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(fields, want);
}

#[wasm_bindgen_test]
fn bytes_that_are_not_a_compiled_ruleset_are_refused() {
    let good = telltale_core::flags::compile(&telltale_core::flags::Ruleset::default()).to_wire();
    assert!(FlagEngine::new(&good, Vec::new()).is_ok());
    for bad in [
        &b""[..],
        b"{\"flags\": []}",
        b"TTE1",
        &good[..good.len() - 1],
    ] {
        assert!(FlagEngine::new(bad, Vec::new()).is_err(), "{bad:?}");
    }
}
