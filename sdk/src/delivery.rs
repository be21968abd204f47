//! Getting events to the collector without losing them: retries that keep the batch id,
//! backoff and `Retry-After`, offline awareness, a persisted per-tab queue that survives
//! reloads and crashes (and is adopted by another tab if its own tab is gone), page-hide
//! beacons, and consent. Storage work happens after `track()` returns, never inside it.

use crate::browser::{now_ms, random_uuid};
use crate::{Flush, Inner, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, PAGE_HIDE_MAX_BYTES};
use gloo_timers::callback::Timeout;
use serde_json::Value;
use std::rc::Rc;
use telltale_core::delivery::{after_send, AfterSend};
use telltale_core::flags::hash::murmur3_32;
use telltale_core::queue::{batch_body, QueuedEvent};

/// A batch that failed: it is retried with the same id and events (so the collector's
/// dedup makes delivery exactly-once).
pub struct RetryBatch {
    pub batch_id: String,
    pub events: Vec<QueuedEvent>,
    pub attempts: u32,
    pub retry_at: f64,
}

const OPT_OUT_KEY: &str = "telltale:optout";
/// A tab whose persisted queue has not been touched for this long is gone.
const ORPHAN_AFTER_MS: f64 = 30_000.0;

fn queue_prefix(inner: &Inner) -> String {
    let mut p = String::from("telltale:q:");
    p.push_str(&format!(
        "{:08x}",
        murmur3_32(inner.config.key.as_bytes(), 0)
    ));
    p.push(':');
    p
}

fn queue_key(inner: &Inner) -> String {
    let mut k = queue_prefix(inner);
    k.push_str(&inner.state.borrow().tab_id);
    k
}

fn parse_events(value: &Value) -> Vec<QueuedEvent> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(QueuedEvent {
                id: e.get("id")?.as_str()?.to_string(),
                json: e.to_string(),
            })
        })
        .collect()
}

/// At start: consent, this tab's persisted queue, and queues of tabs that are gone.
pub fn restore(inner: &Rc<Inner>) {
    let opted_out = inner.browser.load_item(OPT_OUT_KEY).as_deref() == Some("1")
        || (inner.config.respect_do_not_track && inner.browser.privacy_signal());
    let tab_id = inner.browser.tab_id();
    {
        let mut state = inner.state.borrow_mut();
        state.opted_out = opted_out;
        state.tab_id = tab_id;
    }
    inner.browser.on_online(Rc::downgrade(inner), |inner| {
        // Back online: a batch waiting out a network backoff goes now.
        if let Some(retry) = inner.state.borrow_mut().retry.as_mut() {
            retry.retry_at = 0.0;
        }
        let inner = Rc::clone(inner);
        wasm_bindgen_futures::spawn_local(async move {
            inner.send(Flush::All).await;
        });
    });
    if opted_out {
        return;
    }
    let own = queue_key(inner);
    let now = now_ms();
    let mut adopted = 0;
    for key in inner.browser.storage_keys(&queue_prefix(inner)) {
        let Some(text) = inner.browser.load_item(&key) else {
            continue;
        };
        let Ok(saved) = serde_json::from_str::<Value>(&text) else {
            inner.browser.remove_item(&key);
            continue;
        };
        let fresh = saved["ts"]
            .as_f64()
            .is_some_and(|ts| now - ts < ORPHAN_AFTER_MS);
        if key != own && fresh {
            continue; // another live tab's queue
        }
        let mut state = inner.state.borrow_mut();
        if let Some(batch_id) = saved["retry_batch"].as_str() {
            let events = parse_events(&saved["retry"]);
            if !events.is_empty() && state.retry.is_none() {
                state.retry = Some(RetryBatch {
                    batch_id: batch_id.to_string(),
                    events,
                    attempts: 0,
                    retry_at: 0.0,
                });
            } else {
                for e in events {
                    state.queue.push(e);
                }
            }
        }
        for e in parse_events(&saved["events"]) {
            state.queue.push(e);
            adopted += 1;
        }
        drop(state);
        if key != own {
            inner.browser.remove_item(&key);
        }
    }
    if adopted > 0 {
        schedule_save(inner);
        let inner = Rc::clone(inner);
        wasm_bindgen_futures::spawn_local(async move {
            inner.send(Flush::All).await;
        });
    }
}

/// Persists the queue soon (once per turn of the event loop), off the `track()` path.
pub fn schedule_save(inner: &Rc<Inner>) {
    {
        let mut state = inner.state.borrow_mut();
        if state.save_scheduled || state.opted_out {
            return;
        }
        state.save_scheduled = true;
    }
    let weak = Rc::downgrade(inner);
    Timeout::new(0, move || {
        if let Some(inner) = weak.upgrade() {
            inner.state.borrow_mut().save_scheduled = false;
            save_now(&inner);
        }
    })
    .forget();
}

fn save_now(inner: &Inner) {
    let key = queue_key(inner);
    let text = {
        let state = inner.state.borrow();
        if state.opted_out {
            return;
        }
        if state.queue.is_empty() && state.retry.is_none() {
            None
        } else {
            let join = |events: &mut dyn Iterator<Item = &QueuedEvent>| {
                let mut out = String::from("[");
                for (i, e) in events.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&e.json);
                }
                out.push(']');
                out
            };
            let mut text = String::from("{\"ts\":");
            text.push_str(&now_ms().to_string());
            if let Some(retry) = &state.retry {
                text.push_str(",\"retry_batch\":\"");
                text.push_str(&retry.batch_id);
                text.push_str("\",\"retry\":");
                text.push_str(&join(&mut retry.events.iter()));
            }
            text.push_str(",\"events\":");
            text.push_str(&join(&mut state.queue.iter()));
            text.push('}');
            Some(text)
        }
    };
    match text {
        None => inner.browser.remove_item(&key),
        Some(text) => {
            if !inner.browser.try_save_item(&key, &text) {
                let first = !std::mem::replace(&mut inner.state.borrow_mut().storage_warned, true);
                if first {
                    inner.report(
                        "storage is full or blocked; queued events are kept in memory only",
                    );
                }
            }
        }
    }
}

/// Opting out discards what is queued and persisted; the choice itself is persisted.
pub fn set_opt_out(inner: &Rc<Inner>, out: bool) {
    let key = queue_key(inner);
    {
        let mut state = inner.state.borrow_mut();
        state.opted_out = out;
        if out {
            state.queue.drain_all();
            state.retry = None;
            state.retry_timer = None;
        }
    }
    if out {
        inner.browser.remove_item(&key);
        inner.browser.save_item(OPT_OUT_KEY, "1");
    } else {
        inner.browser.remove_item(OPT_OUT_KEY);
    }
}

impl Inner {
    /// Sends batches until the queue is empty (or, for a size trigger, until less than a
    /// full batch is left), or a send fails and is scheduled for retry. Returns events
    /// delivered.
    pub(crate) async fn send(self: Rc<Self>, mode: Flush) -> usize {
        let mut delivered = 0;
        let batch_size = self.config.flush_at.min(MAX_BATCH_EVENTS);
        loop {
            if !self.browser.is_online() {
                return delivered; // the `online` event resumes
            }
            let now = now_ms();
            let (batch_id, events, attempts, dropped) = {
                let mut state = self.state.borrow_mut();
                if state.opted_out {
                    return delivered;
                }
                match state.retry.take() {
                    Some(r) if r.retry_at > now => {
                        // Wait out the backoff / Retry-After. Re-arm the timer: timers may
                        // fire a little before the clock says the time has come.
                        drop(state);
                        self.schedule_retry(r);
                        return delivered;
                    }
                    Some(r) => (r.batch_id, r.events, r.attempts, 0),
                    None => {
                        if mode == Flush::FullBatches && state.queue.len() < batch_size {
                            return delivered;
                        }
                        let events = state.queue.take_batch(batch_size, MAX_BATCH_BYTES);
                        if events.is_empty() {
                            return delivered;
                        }
                        (random_uuid(), events, 0, state.queue.dropped())
                    }
                }
            };
            let body = batch_body(now as i64, &batch_id, dropped, &events);
            let answer = self
                .browser
                .request(
                    &self.config.events_url(),
                    &self.config.key,
                    Some(&body),
                    None,
                )
                .await;
            let (status, retry_after) = match &answer {
                Ok(a) => (Some(a.status), a.retry_after.as_deref()),
                Err(_) => (None, None),
            };
            let jitter = js_sys::Math::random();
            match after_send(status, retry_after, attempts + 1, now_ms(), jitter) {
                AfterSend::Delivered => {
                    delivered += events.len();
                    self.state.borrow_mut().queue.acknowledge_dropped(dropped);
                    schedule_save(&self);
                }
                AfterSend::RetryAt(at) => {
                    let why = match &answer {
                        Ok(a) => ["collector answered ", &a.status.to_string()].concat(),
                        Err(e) => ["network error: ", e].concat(),
                    };
                    self.report(&[&why, "; will retry"].concat());
                    self.schedule_retry(RetryBatch {
                        batch_id,
                        events,
                        attempts: attempts + 1,
                        retry_at: at,
                    });
                    return delivered;
                }
                AfterSend::Drop(why) => {
                    self.report(
                        &[&why, "; ", &events.len().to_string(), " events dropped"].concat(),
                    );
                    schedule_save(&self);
                }
            }
        }
    }

    fn schedule_retry(self: &Rc<Self>, batch: RetryBatch) {
        let wait = (batch.retry_at - now_ms())
            .max(0.0)
            .min(f64::from(u32::MAX)) as u32;
        let weak = Rc::downgrade(self);
        let timer = Timeout::new(wait, move || {
            if let Some(inner) = weak.upgrade() {
                wasm_bindgen_futures::spawn_local(async move {
                    inner.send(Flush::All).await;
                });
            }
        });
        {
            let mut state = self.state.borrow_mut();
            state.retry = Some(batch);
            state.retry_timer = Some(timer);
        }
        schedule_save(self);
    }

    /// On page hide: hand everything to `sendBeacon` (or keepalive fetch) in chunks that
    /// fit the browser's keepalive budget. The persisted copy stays until a later page
    /// confirms delivery (resends are deduplicated by event id), so a beacon that never
    /// arrives loses nothing; offline, nothing is attempted.
    pub(crate) fn flush_on_page_hide(&self) {
        if !self.browser.is_online() || self.state.borrow().opted_out {
            return;
        }
        if let Some(retry) = self.state.borrow_mut().retry.take() {
            let body = batch_body(now_ms() as i64, &retry.batch_id, 0, &retry.events);
            if !self
                .browser
                .beacon(&self.config.beacon_url(), &self.config.key, &body)
            {
                self.state.borrow_mut().retry = Some(retry);
                return;
            }
        }
        loop {
            let (batch, dropped) = {
                let mut state = self.state.borrow_mut();
                let batch = state
                    .queue
                    .take_batch(MAX_BATCH_EVENTS, PAGE_HIDE_MAX_BYTES);
                (batch, state.queue.dropped())
            };
            if batch.is_empty() {
                return;
            }
            let body = batch_body(now_ms() as i64, &random_uuid(), dropped, &batch);
            if self
                .browser
                .beacon(&self.config.beacon_url(), &self.config.key, &body)
            {
                self.state.borrow_mut().queue.acknowledge_dropped(dropped);
            } else {
                self.state.borrow_mut().queue.requeue_front(batch);
                return;
            }
        }
    }
}
