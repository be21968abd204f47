#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Runs the shared flag vectors (tests/spec/flags/) against the core engine on the host.
//! The SDK (wasm, in Chromium) and the Worker (over HTTP) run the same files.

use serde_json::Value;
use telltale_core::flags::{compile, Engine, ProbeState, ProbeStates, Ruleset};
use telltale_core::time::parse_rfc3339;

const CHECKED: [&str; 7] = [
    "value",
    "variant",
    "reason",
    "rule",
    "bucket",
    "error_code",
    "probe",
];

fn probes(case: &Value) -> ProbeStates {
    let mut out = ProbeStates::new();
    for (name, state) in case
        .get("probes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.insert(name.clone(), ProbeState::from_served(state));
    }
    out
}

#[test]
fn flag_vectors() {
    let index: Value =
        serde_json::from_str(include_str!("../../tests/spec/flags/index.json")).unwrap();
    assert_eq!(
        index["files"],
        serde_json::json!(["cases.json"]),
        "a new vector file needs an include_str! here"
    );
    let doc: Value =
        serde_json::from_str(include_str!("../../tests/spec/flags/cases.json")).unwrap();
    let ruleset = Ruleset::from_value(&doc["ruleset"]).unwrap();
    let engine = compile(&ruleset);
    // What the collector serves the browser's engine: the compiled engine as bytes.
    let served = Engine::from_wire(&engine.to_wire()).unwrap();
    let mut warnings: Vec<&str> = engine.warnings().iter().map(|w| w.field.as_str()).collect();
    warnings.sort_unstable();
    let mut expected: Vec<&str> = doc["expected_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    expected.sort_unstable();
    assert_eq!(warnings, expected);

    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let now_text = case.get("now").unwrap_or(&doc["now"]).as_str().unwrap();
        let now = parse_rfc3339(now_text).unwrap();
        let context = case["context"].as_object().unwrap().clone();
        let decision =
            engine.evaluate(case["flag"].as_str().unwrap(), &context, &probes(case), now);
        let got = serde_json::to_value(&decision).unwrap();
        let from_wire =
            served.evaluate(case["flag"].as_str().unwrap(), &context, &probes(case), now);
        assert_eq!(from_wire, decision, "{name}: the wire form decides alike");
        for key in CHECKED {
            let want = case["expect"].get(key).unwrap_or(&Value::Null);
            let have = got.get(key).unwrap_or(&Value::Null);
            assert_eq!(have, want, "{name}: `{key}` (decision {got})");
        }
        assert_eq!(got["version"], "vectors-1", "{name}");
    }
}
