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

// Without `full` the crate is `no_std` (with `alloc`): the SDK's wasm then links no
// panic-formatting machinery.
#![cfg_attr(not(feature = "full"), no_std)]
extern crate alloc;

// Always built: what the browser SDK links. No dependencies, no formatting machinery,
// so the SDK's wasm stays small.
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
pub mod auth;
#[cfg(feature = "full")]
pub mod config;
#[cfg(feature = "full")]
pub mod error;
#[cfg(feature = "full")]
pub mod flags;
#[cfg(feature = "full")]
pub mod gzip;
#[cfg(feature = "full")]
pub mod ingest;
#[cfg(feature = "full")]
pub mod json;
#[cfg(feature = "full")]
pub mod probes;
#[cfg(feature = "full")]
pub mod segment;
#[cfg(feature = "full")]
pub mod stats;
#[cfg(feature = "full")]
pub mod targets;

#[cfg(feature = "full")]
pub use error::{FieldError, IngestError};
