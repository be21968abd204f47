//! The flag engine's `setContext` with the context deserialized by serde-wasm-bindgen
//! (field by field through `Reflect`), for `npm run bench` to time beside the engine's
//! own crossing (sdk-engine: attribute values encoded into wasm memory by JavaScript).

use serde_json::{Map, Value};
use std::hint::black_box;
use telltale_core::flags::{compile, Engine, Ruleset};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub struct Crossing {
    engine: Engine,
}

#[wasm_bindgen]
impl Crossing {
    #[wasm_bindgen(constructor)]
    pub fn new(ruleset_json: &str) -> Result<Crossing, JsError> {
        let raw = telltale_core::json::parse(ruleset_json)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let ruleset = Ruleset::from_value(&raw).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Crossing {
            engine: compile(&ruleset),
        })
    }

    /// Deserializes `context` with serde-wasm-bindgen and resolves it against the
    /// ruleset's attributes, as `setContext` does; returns how many members it had.
    #[wasm_bindgen(js_name = viaSerdeWasmBindgen)]
    pub fn via_serde_wasm_bindgen(&self, context: JsValue) -> usize {
        let map: Map<String, Value> = serde_wasm_bindgen::from_value(context).unwrap_or_default();
        black_box(self.engine.resolve(&map));
        map.len()
    }
}
