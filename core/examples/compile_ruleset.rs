//! Compiles a ruleset of one's own into the served form the browser's engine module reads:
//! `cargo run -q -p telltale-core --example compile_ruleset < ruleset.json > served.json`.
//! The same as the collector's `POST /v1/flags/compile`, offline: the ruleset (`{version,
//! flags, segments, probes?}`) with `compiled` (the compiled engine, base64) and the compile
//! `warnings`. A ruleset that is not of that shape is an error naming the field.

use std::io::Read;
use telltale_core::flags::engine::base64;
use telltale_core::flags::{compile, Ruleset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let raw: serde_json::Value = serde_json::from_str(&text)?;
    let (ruleset, probes) =
        Ruleset::from_served(&raw).map_err(|e| format!("{}: {}", e.field, e.message))?;
    let engine = compile(&ruleset);
    let mut served = serde_json::to_value(&ruleset)?;
    if let Some(probes) = probes {
        served["probes"] = probes.clone();
    }
    served["compiled"] = serde_json::Value::String(base64(&engine.to_wire()));
    served["warnings"] = engine
        .warnings()
        .iter()
        .map(|w| serde_json::json!({"code": w.code, "field": w.field, "message": w.message}))
        .collect();
    println!("{served}");
    Ok(())
}
