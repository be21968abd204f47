//! Native flag evaluation throughput:
//! `cargo run --release -p telltale-core --example flag_bench -- contexts.json`.
//! Prints one JSON line; `npm run bench` runs it beside the wasm, GrowthBook and Unleash
//! figures on the same ruleset (tests/spec/flags/bench-ruleset.json) and the contexts it
//! writes to the file named as the argument.

use serde_json::json;
use std::time::Instant;
use telltale_core::flags::{compile, Context, ProbeStates, Ruleset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("name the contexts file (a JSON array of objects)")?;
    let contexts: Vec<Context> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let ruleset = Ruleset::from_value(&serde_json::from_str(include_str!(
        "../../tests/spec/flags/bench-ruleset.json"
    ))?)?;
    let engine = compile(&ruleset);
    let keys: Vec<String> = engine.keys().map(str::to_string).collect();
    let probes = ProbeStates::new();
    let now = 1_767_225_600_000;
    let rounds = 20;
    let evaluations = (rounds * contexts.len() * keys.len()) as f64;

    let started = Instant::now();
    let mut with_value = 0u64;
    for _ in 0..rounds {
        for ctx in &contexts {
            for key in &keys {
                with_value += u64::from(!engine.evaluate(key, ctx, &probes, now).value.is_null());
            }
        }
    }
    let evaluate_ns = started.elapsed().as_secs_f64() * 1e9 / evaluations;

    // As the wasm engine's setContext + decide: each context resolved once, then every flag.
    let started = Instant::now();
    let mut decided = 0u64;
    for _ in 0..rounds {
        for ctx in &contexts {
            let resolved = engine.resolve(ctx);
            for index in 0..engine.len() {
                let outcome = engine.decide_resolved(index, &resolved, &probes, now);
                decided += u64::from(outcome.variant.is_some());
            }
        }
    }
    let decide_ns = started.elapsed().as_secs_f64() * 1e9 / evaluations;
    if decided != with_value {
        return Err("decide and evaluate disagree".into());
    }
    println!(
        "{}",
        json!({"evaluations": evaluations, "evaluate_ns": evaluate_ns.round(), "decide_ns": decide_ns.round()})
    );
    Ok(())
}
