//! # telltale-core
//!
//! The pure logic of Telltale, shared by the browser SDK (compiled to wasm) and the edge
//! collector (a Cloudflare Worker). Nothing here touches a clock, a random source, the
//! network or storage: callers pass time (`now_ms`) and randomness in, which keeps every
//! rule testable on the host with no sleeps.
//!
//! ```
//! use telltale_core::ingest::{parse_batch, Limits};
//!
//! let now_ms = 1_767_225_600_000; // 2026-01-01T00:00:00Z
//! let body = br#"{"sent_at": 1767225599000, "events": [
//!     {"id": "0190f3b2-7c4e-7a41-9c2d-3f5e8a1b2c3d", "type": "track", "name": "search",
//!      "ts": 1767225598000, "anonymous_id": "anon-1", "props": {"query": "rust"}}
//! ]}"#;
//! let batch = parse_batch(body, now_ms, &Limits::default()).unwrap();
//! assert_eq!(batch.accepted.len(), 1);
//! // The client clock ran 1 s behind; `sent_at` corrects it.
//! assert_eq!(batch.accepted[0].ts, 1_767_225_599_000);
//! ```

// Without `full` the crate is `no_std` (with `alloc`): the SDK's wasm and the flag engine's
// (feature `engine` alone) then link no std panic machinery and no dlmalloc.
#![cfg_attr(not(feature = "full"), no_std)]
extern crate alloc;

// Always built: what the browser SDK links. No dependencies, no formatting machinery,
// so the SDK's wasm stays small.
pub mod capture;
pub mod delivery;
pub mod hash;
pub mod ids;
pub mod outbox;
pub mod queue;
pub mod time;

// The collector's and the flag engine's logic (feature `full`, on by default).
#[cfg(feature = "full")]
pub mod apps;
#[cfg(feature = "full")]
pub mod archive;
#[cfg(feature = "full")]
pub mod auth;
#[cfg(feature = "full")]
pub mod config;
#[cfg(feature = "engine")]
pub mod error;
#[cfg(feature = "full")]
pub mod experiment;
#[cfg(feature = "full")]
pub mod experiments;
#[cfg(feature = "engine")]
pub mod flags;
#[cfg(feature = "full")]
pub mod gzip;
#[cfg(feature = "full")]
pub mod ingest;
#[cfg(feature = "engine")]
pub mod json;
#[cfg(feature = "engine")]
pub mod probe_state;
#[cfg(feature = "full")]
pub mod probes;
#[cfg(feature = "full")]
pub mod segment;
#[cfg(feature = "full")]
pub mod stats;
#[cfg(feature = "full")]
pub mod targets;

#[cfg(feature = "engine")]
pub use error::FieldError;

/// What std's prelude gives and a `no_std` build must import: the engine's modules glob
/// it, so that one source builds with std (the collector) and without (the wasm engine).
#[cfg(feature = "engine")]
#[allow(unused_imports)]
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}
#[cfg(feature = "full")]
pub use error::IngestError;
