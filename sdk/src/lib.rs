//! # telltale (browser SDK, wasm core)
//!
//! The decisions of the npm package `telltale`, compiled to WebAssembly: event ids,
//! sampling, consent, and the outbox (queue with count and byte budgets, one
//! batch out at a time that keeps its id across retries, backoff and `Retry-After`,
//! the persisted form, page-hide chunks). The package's JS shell (`js/telltale.js`) does
//! the browser I/O around it (fetch, sendBeacon, storage, DOM events), checks options and
//! props where the JS values are, and passes the time in. The logic itself lives in
//! `telltale-core` and is tested on the host.
//!
//! Nothing here formats with `format!` or parses JSON: both would link megabytes of
//! machinery per user into a download whose budget is 18 KiB.

// On wasm32 the crate is `no_std`: a panic (which the code avoids) traps instead of
// formatting a message, which keeps core::fmt out of the download.
//
// The `std` feature (off in the package) links std instead, for the wasm-bindgen-test
// suites in tests/, whose harness needs it.
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]
extern crate alloc;

#[cfg(all(target_arch = "wasm32", not(test), not(feature = "std")))]
#[panic_handler]
fn trap_on_panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// std is not linked on wasm32, so the allocator is named here: Talc, smaller than the
/// dlmalloc std would bring.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use alloc::rc::Rc;
use alloc::string::String;
use telltale_core::capture::queue_handed_over;
use telltale_core::delivery::{after_send, backoff_ms, sampled, AfterSend};
use telltale_core::hash::murmur3_32;
use telltale_core::ids::{push_hex, MonotonicUuidV7, SplitMix64};
use telltale_core::outbox::{parse_persisted, BatchLimits, Next, Outbox};
use wasm_bindgen::prelude::*;

/// Largest body sent with `sendBeacon` / keepalive fetch: browsers cap in-flight
/// keepalive bodies at 64 KiB.
pub const PAGE_HIDE_MAX_BYTES: usize = 60 * 1024;
/// Largest body of a regular batch (the collector accepts 512 KiB).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The longest wait between flag refreshes after failures.
pub const MAX_REFRESH_BACKOFF_MS: f64 = 300_000.0;
/// A tab whose persisted queue has not been written for this long is gone (live tabs
/// rewrite theirs every few seconds while they hold events).
pub const ORPHAN_AFTER_MS: f64 = 30_000.0;

/// What [`Core::settle`] did with the batch.
#[wasm_bindgen]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered = 0,
    Retry = 1,
    Dropped = 2,
}

/// The wasm core of one `Telltale` client. Not for direct use: the package's `Telltale`
/// class wraps it.
#[wasm_bindgen]
pub struct Core {
    flush_at: usize,
    sample_rate: f64,
    outbox: Outbox,
    ids: MonotonicUuidV7,
    rng: SplitMix64,
    sampled: bool,
    opted_out: bool,
    closed: bool,
    last_settled: usize,
}

/// The next UUIDv7 from this client's clock-ordered generator and seeded randomness.
fn new_id(ids: &mut MonotonicUuidV7, rng: &mut SplitMix64, now_ms: f64) -> String {
    ids.next(now_ms.max(0.0) as u64, rng.next_u64())
}

/// `n` as 8 lowercase hex digits.
fn hex8(n: u32) -> String {
    let mut hex = String::with_capacity(8);
    push_hex(&mut hex, &n.to_be_bytes());
    hex
}

#[wasm_bindgen]
impl Core {
    /// A core for options the shell has checked (see js/telltale.js), seeded with two
    /// words from `crypto.getRandomValues`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        flush_at: u32,
        max_queue: u32,
        max_storage_bytes: u32,
        sample_rate: f64,
        seed_high: u32,
        seed_low: u32,
    ) -> Core {
        Core {
            flush_at: flush_at.max(1) as usize,
            sample_rate,
            outbox: Outbox::new(max_queue as usize, max_storage_bytes as usize),
            ids: MonotonicUuidV7::default(),
            rng: SplitMix64::new((u64::from(seed_high) << 32) | u64::from(seed_low)),
            sampled: true,
            opted_out: false,
            closed: false,
            last_settled: 0,
        }
    }

    /// A new UUIDv7, monotonic within this page: an anonymous id, a tab's id, a
    /// `beforeSend` event's id.
    #[wasm_bindgen(js_name = nextId)]
    pub fn next_id(&mut self, now_ms: f64) -> String {
        new_id(&mut self.ids, &mut self.rng, now_ms)
    }

    /// Sets the anonymous id (loaded or new); sampling is decided per id. Returns whether
    /// `track()` records anything now: not shut down, not opted out, sampled in (the shell
    /// keeps the answer until consent, the id or shutdown change it).
    #[wasm_bindgen(js_name = setAnonymousId)]
    pub fn set_anonymous_id(&mut self, id: &str) -> bool {
        self.sampled = sampled(id, self.sample_rate);
        !self.closed && !self.opted_out && self.sampled
    }

    /// Opting out forgets what is queued (the shell removes the persisted copy).
    #[wasm_bindgen(js_name = setOptedOut)]
    pub fn set_opted_out(&mut self, out: bool) {
        self.opted_out = out;
        if out {
            self.outbox.clear();
        }
    }

    #[wasm_bindgen(getter, js_name = optedOut)]
    pub fn opted_out(&self) -> bool {
        self.opted_out
    }

    /// After `shutdown()`: no more events are accepted.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Queues the events `track()` recorded during a task, handed over in one crossing as
    /// one JSON array (`telltale_core::capture::queue_handed_over`): a time in ms for the
    /// events after it (`1767225600123`), the parts they share as the one object of an
    /// array (`[{"type":"track","name":"search",...}]`), each event's props
    /// (`{"q":"rust"}`), which get their id here and stay a place in this text until
    /// `persist` gives the event its own JSON, and `-1` before a `beforeSend` result,
    /// whole. The shell is the only caller, and hands over what it gathered since the
    /// last call. Returns true when the queue holds a full batch (a send under way just
    /// finds nothing more to start).
    #[wasm_bindgen(js_name = pushEvents)]
    pub fn push_events(&mut self, events: String) -> bool {
        let outbox = &mut self.outbox;
        queue_handed_over(Rc::new(events), &mut self.ids, &mut self.rng, |event| {
            outbox.push(event);
        });
        self.outbox.len() >= self.flush_at
    }

    /// The next body to POST, or undefined (nothing to send, a send in flight, or a retry
    /// that waits: see `retryAt`). With `onlyFull`, only a full batch starts.
    #[wasm_bindgen(js_name = nextBody)]
    pub fn next_body(&mut self, now_ms: f64, only_full: bool) -> Option<String> {
        let limits = BatchLimits {
            max_events: self.flush_at,
            max_bytes: MAX_BATCH_BYTES,
        };
        if self.opted_out {
            return None;
        }
        let (ids, rng) = (&mut self.ids, &mut self.rng);
        match self
            .outbox
            .next(now_ms, limits, only_full, || new_id(ids, rng, now_ms))
        {
            Next::Send(body) => Some(body),
            Next::WaitUntil(_) | Next::Busy | Next::Idle => None,
        }
    }

    /// When the batch that waits may be retried (ms since the epoch; 0 when none waits).
    #[wasm_bindgen(js_name = retryAt)]
    pub fn retry_at(&self) -> f64 {
        self.outbox.retry_at().unwrap_or(0.0)
    }

    /// Applies the answer to the body `nextBody` gave: `status` 0 for a network error,
    /// `retryAfterMs` the wait its `Retry-After` asks for (NaN when none or unreadable),
    /// `jitter` a random number in [0, 1).
    pub fn settle(
        &mut self,
        status: u16,
        retry_after_ms: f64,
        now_ms: f64,
        jitter: f64,
    ) -> Settled {
        let status = (status != 0).then_some(status);
        let attempt = self.outbox.attempts() + 1;
        let outcome = after_send(status, Some(retry_after_ms), attempt, now_ms, jitter);
        self.last_settled = self.outbox.settle(&outcome);
        match outcome {
            AfterSend::Delivered => Settled::Delivered,
            AfterSend::RetryAt(_) => Settled::Retry,
            AfterSend::Drop(_) => Settled::Dropped,
        }
    }

    /// Events the last `settle` delivered or dropped.
    #[wasm_bindgen(getter, js_name = lastSettled)]
    pub fn last_settled(&self) -> u32 {
        self.last_settled as u32
    }

    /// Back online: a batch that waits goes at once.
    #[wasm_bindgen(js_name = retryNow)]
    pub fn retry_now(&mut self) {
        self.outbox.retry_now();
    }

    /// On page hide, the next body for `sendBeacon` (chunks fit the browser's keepalive
    /// budget); undefined when nothing is left. Answer each with `beaconDone`.
    #[wasm_bindgen(js_name = nextBeaconBody)]
    pub fn next_beacon_body(&mut self, now_ms: f64) -> Option<String> {
        if self.opted_out {
            return None;
        }
        let (ids, rng) = (&mut self.ids, &mut self.rng);
        self.outbox
            .next_beacon(now_ms, PAGE_HIDE_MAX_BYTES, || new_id(ids, rng, now_ms))
    }

    /// Whether the browser took the body `nextBeaconBody` gave (a refused one stays queued).
    #[wasm_bindgen(js_name = beaconDone)]
    pub fn beacon_done(&mut self, accepted: bool) {
        self.outbox.beacon_done(accepted);
    }

    /// The text to persist (undefined: nothing to keep, remove the stored copy).
    pub fn persist(&mut self, now_ms: f64) -> Option<String> {
        if self.opted_out {
            return None;
        }
        self.outbox.persist(now_ms)
    }

    /// Takes in a persisted queue found at start. `own` is this tab's (a reload); another
    /// tab's is taken only when that tab is gone. Returns the events taken, -1 when the
    /// queue belongs to a live tab (leave it), -2 when the text is not a queue (remove it).
    pub fn adopt(&mut self, text: &str, now_ms: f64, own: bool) -> i32 {
        let Some(saved) = parse_persisted(text) else {
            return -2;
        };
        if !own && now_ms - (saved.saved_at_ms as f64) < ORPHAN_AFTER_MS {
            return -1;
        }
        if self.opted_out {
            return 0;
        }
        self.outbox.adopt(saved) as i32
    }

    /// Events not yet delivered (queued, in flight or waiting to be retried).
    #[wasm_bindgen(getter, js_name = queueLength)]
    pub fn queue_length(&self) -> u32 {
        self.outbox.len() as u32
    }

    /// Events evicted by the budget and not yet reported to the collector.
    #[wasm_bindgen(getter, js_name = droppedCount)]
    pub fn dropped_count(&self) -> f64 {
        self.outbox.dropped() as f64
    }

    /// Whether there is something to send or persist.
    #[wasm_bindgen(getter, js_name = hasWork)]
    pub fn has_work(&self) -> bool {
        !self.outbox.is_empty()
    }
}

/// MurmurHash3 (x86, 32-bit) of a string's UTF-8 bytes, as 8 hex digits: names storage
/// keys (flag caches per context) without storing the context.
#[wasm_bindgen(js_name = hashKey)]
pub fn hash_key(text: &str) -> String {
    hex8(murmur3_32(text.as_bytes(), 0))
}

/// Delay before the next flag refresh after `failures` failed ones: 1 s doubling to
/// 5 min (the shell adds up to 20% jitter).
#[wasm_bindgen(js_name = refreshBackoffMs)]
pub fn refresh_backoff_ms(failures: u32) -> f64 {
    backoff_ms(failures, MAX_REFRESH_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys() {
        assert_eq!(hex8(0), "00000000");
        assert_eq!(hex8(0xdead_beef), "deadbeef");
        assert_eq!(hash_key(""), "00000000");
    }

    #[test]
    fn whole_events_are_queued_one_each_and_a_full_batch_is_reported() {
        let mut core = Core::new(3, 10, 10_000, 1.0, 1, 2);
        assert!(!core.push_events("[-1,{\"a\":1}]".into()));
        assert!(
            core.push_events("[-1,{\"b\":2},-1,{\"c\":3}]".into()),
            "the third event fills a batch of 3"
        );
        assert!(
            core.push_events("[-1,{\"d\":4}]".into()),
            "still a full batch waiting"
        );
        let saved = core.persist(0.0).unwrap();
        assert_eq!(
            saved.lines().count(),
            5,
            "a header and four events: {saved}"
        );
    }

    #[test]
    fn props_without_ids_get_them_and_shared_parts_hold_for_the_props_after_them() {
        let mut core = Core::new(20, 10, 10_000, 1.0, 1, 2);
        // As the shell writes them: the time and the parts when they change, then each
        // event's props (a beforeSend result whole, after -1).
        let handover = "[1767225600123,[{\"type\":\"track\",\"name\":\"x\",\"anonymous_id\":\"a-1\"}],{\"q\":1},\
                        -1,{\"id\":\"whole\"},{},1767225600124,\
                        [{\"type\":\"identify\",\"name\":\"$identify\",\"anonymous_id\":\"a-1\",\"user_id\":\"u\"}],{}]";
        assert!(!core.push_events(handover.into()));
        let saved = core.persist(0.0).unwrap();
        let events: Vec<&str> = saved.lines().skip(1).collect();
        assert_eq!(events.len(), 4, "{saved}");
        assert!(events[0].starts_with("{\"id\":\"019b"), "{}", events[0]);
        let track = "\"type\":\"track\",\"name\":\"x\",\"anonymous_id\":\"a-1\"}";
        assert_eq!(
            &events[0][43..],
            format!("\",\"ts\":1767225600123,\"props\":{{\"q\":1}},{track}")
        );
        assert_eq!(events[1], "{\"id\":\"whole\"}");
        assert_eq!(
            &events[2][43..],
            format!("\",\"ts\":1767225600123,\"props\":{{}},{track}")
        );
        assert_eq!(&events[3][43..], "\",\"ts\":1767225600124,\"props\":{},\"type\":\"identify\",\"name\":\"$identify\",\"anonymous_id\":\"a-1\",\"user_id\":\"u\"}");
        assert!(
            events[0][7..43] < events[2][7..43] && events[2][7..43] < events[3][7..43],
            "ids in order"
        );
    }

    #[test]
    fn ids_stay_monotonic() {
        let mut core = Core::new(3, 10, 10_000, 1.0, 1, 2);
        let ids: Vec<String> = (0..5).map(|_| core.next_id(1_700_000_000_000.0)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|id| id.len() == 36 && &id[14..15] == "7"));
    }

    #[test]
    fn refresh_backs_off_exponentially_with_a_cap() {
        assert_eq!(refresh_backoff_ms(1), 1_000.0);
        assert_eq!(refresh_backoff_ms(3), 4_000.0);
        assert_eq!(refresh_backoff_ms(30), 300_000.0);
    }
}
