//! Feature flags: one engine for the browser (wasm) and the edge (Worker).
//!
//! [`model`] is the wire form, [`engine::compile`] turns a published [`model::Ruleset`]
//! into an [`engine::Engine`], and [`engine::Engine::evaluate`] decides a flag for a
//! context, given probe states and the time. [`hash`] documents the bucketing contract.

pub mod engine;
/// Bucketing lives at the crate root (the light SDK build uses it without the engine).
pub use crate::hash;
pub mod model;
pub mod semver;

pub use engine::{compile, Context, Decision, Engine, ProbeState, ProbeStates};
pub use model::Ruleset;
