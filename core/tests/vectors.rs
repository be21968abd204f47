#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Runs the shared ingest vectors (tests/spec/ingest/events.json) against core's
//! validation. The Worker end-to-end suite runs the same file over HTTP.

use serde_json::{json, Value};
use telltale_core::ingest::{parse_batch, Limits};

const NOW: i64 = 1_767_225_600_000;

fn materialize(fields: &Value, now: i64) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (k, v) in fields.as_object().unwrap() {
        if k == "ts_offset_ms" {
            out.insert("ts".into(), json!(now + v.as_i64().unwrap()));
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[test]
fn ingest_vectors() {
    let doc: Value =
        serde_json::from_str(include_str!("../../tests/spec/ingest/events.json")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let mut event = materialize(&doc["base_event"], NOW);
        if let Some(patch) = case.get("patch") {
            event.extend(materialize(patch, NOW));
        }
        for field in case
            .get("remove")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            event.remove(field.as_str().unwrap());
        }
        let body = json!({ "sent_at": NOW, "events": [event] }).to_string();
        let batch = parse_batch(body.as_bytes(), NOW, &Limits::default()).unwrap();
        let name = case["name"].as_str().unwrap();
        let expect = &case["expect"];
        if expect["accepted"].as_bool().unwrap() {
            assert_eq!(batch.accepted.len(), 1, "{name}: {:?}", batch.rejected);
        } else {
            assert_eq!(batch.rejected.len(), 1, "{name}: expected a rejection");
            assert_eq!(
                batch.rejected[0].code,
                expect["code"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                batch.rejected[0].field,
                expect["field"].as_str().unwrap(),
                "{name}"
            );
        }
    }
}
