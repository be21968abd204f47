//! Compiles a ruleset of one's own into the served form the browser's engine module reads:
//! `cargo run -q -p telltale-core --example compile_ruleset < ruleset.json > served.json`.
//! The same as the collector's `POST /v1/flags/compile`, offline: the ruleset (`{version,
//! flags, segments, probes?}`) with `compiled` (the compiled engine, base64) and the compile
//! `warnings`. A ruleset that is not of that shape is an error naming the field.

use std::io::Read;
use telltale_core::flags::engine::compiled_form;
use telltale_core::flags::Ruleset;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let raw: serde_json::Value = serde_json::from_str(&text)?;
    let (ruleset, probes) =
        Ruleset::from_served(&raw).map_err(|e| format!("{}: {}", e.field, e.message))?;
    println!("{}", compiled_form(&ruleset, probes));
    Ok(())
}
