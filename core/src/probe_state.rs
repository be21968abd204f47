//! A probe's state, shared by the probe state machine ([`crate::probes`], collector only)
//! and the flag engine that reads it (in the collector and in the browser).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A probe's state: what the hysteresis machine decided, what flags read, what the SDK
/// shows. The one vocabulary for it in every runtime (wire names `up`, `down`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    Unknown,
    Up,
    Down,
}

impl ProbeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeState::Unknown => "unknown",
            ProbeState::Up => "up",
            ProbeState::Down => "down",
        }
    }

    /// Reads a served state: `"up"`, `"down"`, or `{"state": "up", ...}`. Anything else
    /// (a missing probe, an unknown word) is `Unknown`, which never disables a flag.
    pub fn from_served(value: &Value) -> ProbeState {
        let name = value
            .as_str()
            .or_else(|| value.get("state").and_then(Value::as_str));
        match name {
            Some("up") => ProbeState::Up,
            Some("down") => ProbeState::Down,
            _ => ProbeState::Unknown,
        }
    }
}
