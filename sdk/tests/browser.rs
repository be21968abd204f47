//! The SDK's wasm core in real Chromium, through wasm-bindgen-test: the outbox and the id
//! generator as compiled for the package (with std linked for the harness), the persisted
//! form round-tripped through the page's real localStorage (web-sys), and a retry timed
//! with real timers (gloo-timers). `npm test` runs it with
//! `wasm-pack test --headless --chrome --mode no-install sdk -- --features std`.
#![cfg(target_arch = "wasm32")]

use gloo_timers::future::TimeoutFuture;
use telltale_wasm::{Core, Settled};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The page's clock: time is passed in, as the shell does.
fn now() -> f64 {
    js_sys::Date::now()
}

/// A whole event as the shell hands over a `beforeSend` result (after -1).
fn event(i: usize) -> String {
    format!(r#"-1,{{"id":"{i}","type":"track","name":"e","ts":1,"anonymous_id":"a","props":{{}}}}"#)
}

/// One hand-over: the shell's JSON array.
fn hand_over(events: &[String]) -> String {
    format!("[{}]", events.join(","))
}

#[wasm_bindgen_test]
fn ids_are_uuid_v7_and_increase_within_a_millisecond() {
    let mut core = Core::new(20, 100, 100_000, 1.0, 7, 9);
    let t = now();
    let ids: Vec<String> = (0..32).map(|_| core.next_id(t)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids
        .iter()
        .all(|id| id.len() == 36 && &id[14..15] == "7" && id.matches('-').count() == 4));
}

#[wasm_bindgen_test]
fn the_outbox_batches_sends_one_at_a_time_and_keeps_a_retried_batch_whole() {
    let mut core = Core::new(3, 100, 100_000, 1.0, 1, 2);
    let events: Vec<String> = (0..5).map(event).collect();
    assert!(
        core.push_events(hand_over(&events)),
        "a full batch of 3 waits"
    );
    let t = now();
    let first = core.next_body(t, true).unwrap();
    assert_eq!(first.matches("\"name\":\"e\"").count(), 3);
    assert!(core.next_body(t, true).is_none(), "one batch out at a time");
    // A 503 schedules a retry of the same batch (same body, same batch id).
    assert!(core.settle(503, f64::NAN, t, 0.0) == Settled::Retry);
    assert!(core.retry_at() > t);
    core.retry_now();
    let again = core.next_body(t, true).unwrap();
    let batch_id = |body: &str| {
        body.split("\"batch_id\":\"")
            .nth(1)
            .map(|s| s[..36].to_string())
    };
    assert_eq!(batch_id(&again), batch_id(&first));
    assert!(core.settle(202, f64::NAN, t, 0.0) == Settled::Delivered);
    assert_eq!(core.last_settled(), 3);
    assert_eq!(core.queue_length(), 2);
}

#[wasm_bindgen_test]
fn the_persisted_queue_survives_the_real_local_storage() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let mut core = Core::new(20, 100, 100_000, 1.0, 3, 4);
    core.push_events(hand_over(&[event(1), event(2)]));
    let t = now();
    storage
        .set_item("telltale:test:queue", &core.persist(t).unwrap())
        .unwrap();
    // A reload: a new core adopts what the page kept.
    let text = storage.get_item("telltale:test:queue").unwrap().unwrap();
    let mut reloaded = Core::new(20, 100, 100_000, 1.0, 5, 6);
    assert_eq!(reloaded.adopt(&text, t, true), 2);
    assert_eq!(reloaded.queue_length(), 2);
    // Another live tab's queue is left alone; a gone tab's is taken.
    let mut other = Core::new(20, 100, 100_000, 1.0, 7, 8);
    assert_eq!(other.adopt(&text, t + 1_000.0, false), -1);
    assert_eq!(other.adopt(&text, t + 60_000.0, false), 2);
    assert_eq!(reloaded.adopt("not a queue", t, true), -2);
    storage.remove_item("telltale:test:queue").unwrap();
}

#[wasm_bindgen_test]
async fn a_retry_after_is_honoured_by_the_clock() {
    let mut core = Core::new(1, 10, 100_000, 1.0, 1, 2);
    core.push_events(hand_over(&[event(1)]));
    let t = now();
    assert!(core.next_body(t, false).is_some());
    assert!(core.settle(429, 1_000.0, t, 0.0) == Settled::Retry);
    assert!(
        core.next_body(now(), false).is_none(),
        "not before Retry-After"
    );
    TimeoutFuture::new(1_100).await;
    assert!(
        core.next_body(now(), false).is_some(),
        "after it, the batch goes again"
    );
}
