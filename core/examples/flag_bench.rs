//! Native flag evaluation throughput: `cargo run --release -p telltale-core --example flag_bench`.
//! Prints one JSON line; `npm run bench` runs it beside the wasm and GrowthBook figures,
//! using the same ruleset (tests/spec/flags/bench-ruleset.json) and contexts.

use serde_json::{json, Value};
use std::time::Instant;
use telltale_core::flags::{compile, Context, ProbeStates, Ruleset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ruleset: Ruleset =
        serde_json::from_str(include_str!("../../tests/spec/flags/bench-ruleset.json"))?;
    let engine = compile(&ruleset);
    let keys: Vec<String> = engine.keys().map(str::to_string).collect();
    let contexts: Vec<Context> = (0..1_000)
        .map(|i| {
            let role = if i % 5 == 0 { "teacher" } else { "student" };
            json!({"user_id": format!("user-{i}"), "role": role, "course_id": format!("course-{}", i % 37)})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let probes = ProbeStates::new();
    let rounds = 200;
    let mut on = 0u64;
    let started = Instant::now();
    for _ in 0..rounds {
        for ctx in &contexts {
            for key in &keys {
                if engine.evaluate(key, ctx, &probes, 1_767_225_600_000).value == Value::Bool(true)
                {
                    on += 1;
                }
            }
        }
    }
    let evaluations = (rounds * contexts.len() * keys.len()) as f64;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"evaluations": evaluations, "seconds": seconds, "per_second": (evaluations / seconds).round(), "ns_per_evaluation": (seconds * 1e9 / evaluations).round(), "on": on})
    );
    Ok(())
}
