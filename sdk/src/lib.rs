//! # telltale (browser SDK)
//!
//! Batched product analytics for web apps and mobile webviews, compiled to WebAssembly.
//! The queue, batch assembly and ids come from `telltale-core`; this crate adapts them to
//! the browser: `fetch`, `sendBeacon`, timers, DOM events and `localStorage`.
//!
//! ```js
//! import init, { Telltale } from 'telltale';
//! await init();
//! const tt = new Telltale({ endpoint: 'https://collect.example.com', key: 'tt_ik_...' });
//! tt.track('search', { query: 'rust' });
//! await tt.flush();
//! ```

mod browser;
mod config;
mod delivery;
mod flag_api;
mod flags;

use crate::browser::{now_ms, random_uuid, Browser};
use crate::config::Config;
use gloo_timers::callback::Interval;
use js_sys::{Object, Reflect, JSON};
use std::cell::RefCell;
use std::rc::Rc;
use telltale_core::queue::{EventQueue, QueuedEvent};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Largest body sent with `sendBeacon` / keepalive fetch: browsers cap in-flight
/// keepalive bodies at 64 KiB.
pub(crate) const PAGE_HIDE_MAX_BYTES: usize = 60 * 1024;
/// Largest body of a regular batch (the collector accepts 512 KiB).
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Largest batch (the collector accepts 500 events).
pub(crate) const MAX_BATCH_EVENTS: usize = 500;

/// What a send drains.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Everything queued (timer, `flush()`, `shutdown()`).
    All,
    /// Only full batches (the queue reached `flushAt`); the rest waits for the timer.
    FullBatches,
}

struct State {
    queue: EventQueue,
    anonymous_id: String,
    user_id: Option<String>,
    timer: Option<Interval>,
    closed: bool,
    /// A batch that failed and waits to be retried with the same id and events.
    retry: Option<delivery::RetryBatch>,
    retry_timer: Option<gloo_timers::callback::Timeout>,
    save_scheduled: bool,
    storage_warned: bool,
    opted_out: bool,
    /// This page's id: its persisted queue is `telltale:q:<key>:<tab>`.
    tab_id: String,
}

pub(crate) struct Inner {
    config: Config,
    browser: Browser,
    state: RefCell<State>,
    flags: RefCell<flags::FlagState>,
    flag_listeners: RefCell<Vec<js_sys::Function>>,
    probe_listeners: RefCell<Vec<js_sys::Function>>,
    flag_timer: RefCell<Option<Interval>>,
}

/// The Telltale client. One per page is typical.
#[wasm_bindgen]
pub struct Telltale {
    pub(crate) inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Telltale {
    /// Creates a client. Options: `endpoint` and `key` (required), `flushAt` (events per
    /// batch, default 20), `flushIntervalMs` (default 5000), `maxQueue` (default 1000),
    /// `autocapture` (clicks on `[data-track]` elements, default false), `capturePageviews`
    /// (initial view and SPA route changes, default false), `onError` (a callback).
    /// Throws only for invalid options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Telltale, JsError> {
        let config = Config::parse(&options).map_err(|e| JsError::new(&e))?;
        let browser = Browser::new();
        let anonymous_id = browser.load_or_create_anonymous_id();
        let user_id = browser.load_user_id();
        let flag_state = flags::FlagState::new(
            config.flag_mode,
            config.context.clone(),
            config.bootstrap.clone(),
        );
        let inner = Rc::new(Inner {
            flags: RefCell::new(flag_state),
            flag_listeners: RefCell::new(Vec::new()),
            probe_listeners: RefCell::new(Vec::new()),
            flag_timer: RefCell::new(None),
            state: RefCell::new(State {
                queue: EventQueue::new(config.max_queue, config.max_storage_bytes),
                retry: None,
                retry_timer: None,
                save_scheduled: false,
                storage_warned: false,
                opted_out: false,
                tab_id: String::new(),
                anonymous_id,
                user_id,
                timer: None,
                closed: false,
            }),
            config,
            browser,
        });
        let client = Telltale { inner };
        delivery::restore(&client.inner);
        client.start_timer();
        client
            .inner
            .browser
            .on_page_hide(Rc::downgrade(&client.inner), |inner| {
                inner.flush_on_page_hide()
            });
        if client.inner.config.autocapture {
            client.inner.browser.on_tracked_click(
                Rc::downgrade(&client.inner),
                |inner, name, props| {
                    inner.enqueue("click", &name, &props);
                },
            );
        }
        flag_api::start(&client.inner);
        if client.inner.config.capture_pageviews {
            client
                .inner
                .browser
                .on_route_change(Rc::downgrade(&client.inner), |inner| inner.page_view());
            client.inner.page_view();
        }
        Ok(client)
    }

    /// Records a custom event. `props` is a flat object of strings, numbers, booleans.
    pub fn track(&self, name: &str, props: JsValue) {
        self.inner.enqueue("track", name, &props);
    }

    /// Records a page view of the current URL (call it on SPA route changes, or set
    /// `capturePageviews`).
    pub fn page(&self) {
        self.inner.page_view();
    }

    /// Links later events to a known user and records their traits.
    pub fn identify(&self, user_id: &str, traits: JsValue) {
        if user_id.is_empty() {
            self.inner.report("identify() needs a non-empty user id");
            return;
        }
        self.inner.state.borrow_mut().user_id = Some(user_id.to_string());
        self.inner.browser.save_user_id(Some(user_id));
        self.inner.enqueue("identify", "$identify", &traits);
    }

    /// Stops collection on this device (persisted): nothing is stored or sent until
    /// `optIn()`. What was queued is discarded.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        delivery::set_opt_out(&self.inner, true);
    }

    /// Resumes collection after `optOut()` (or over Do Not Track / GPC, by explicit consent).
    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) {
        delivery::set_opt_out(&self.inner, false);
    }

    /// Whether collection is off (opted out, or Do Not Track / GPC respected).
    #[wasm_bindgen(getter, js_name = optedOut)]
    pub fn opted_out(&self) -> bool {
        self.inner.state.borrow().opted_out
    }

    /// Events dropped (budget eviction) and not yet reported to the collector.
    #[wasm_bindgen(getter, js_name = droppedCount)]
    pub fn dropped_count(&self) -> f64 {
        self.inner.state.borrow().queue.dropped() as f64
    }

    /// Forgets the user (on logout): later events are anonymous again.
    pub fn reset(&self) {
        let mut state = self.inner.state.borrow_mut();
        state.user_id = None;
        state.anonymous_id = random_uuid();
        self.inner.browser.save_user_id(None);
        self.inner.browser.save_anonymous_id(&state.anonymous_id);
    }

    /// The id that groups this browser's events while the user is unknown.
    #[wasm_bindgen(getter, js_name = anonymousId)]
    pub fn anonymous_id(&self) -> String {
        self.inner.state.borrow().anonymous_id.clone()
    }

    /// Events waiting to be sent.
    #[wasm_bindgen(getter, js_name = queueLength)]
    pub fn queue_length(&self) -> usize {
        let state = self.inner.state.borrow();
        state.queue.len() + state.retry.as_ref().map_or(0, |r| r.events.len())
    }

    /// Sends everything queued now. Resolves to the number of events the collector
    /// acknowledged; never rejects (failures go to `onError` and stay queued).
    pub fn flush(&self) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            Ok(JsValue::from(inner.send(Flush::All).await as u32))
        })
    }

    /// Stops timers and listeners' effects and sends what is queued.
    pub fn shutdown(&self) -> js_sys::Promise {
        {
            let mut state = self.inner.state.borrow_mut();
            state.closed = true;
            state.timer = None; // dropping the Interval cancels it
            state.retry_timer = None;
        }
        *self.inner.flag_timer.borrow_mut() = None;
        self.flush()
    }
}

impl Telltale {
    fn start_timer(&self) {
        let weak = Rc::downgrade(&self.inner);
        let timer = Interval::new(self.inner.config.flush_interval_ms, move || {
            if let Some(inner) = weak.upgrade() {
                let state = inner.state.borrow();
                let work = !state.queue.is_empty() || state.retry.is_some();
                drop(state);
                if work {
                    // Also a heartbeat: a live tab's persisted queue is never adopted.
                    delivery::schedule_save(&inner);
                    wasm_bindgen_futures::spawn_local(async move {
                        inner.send(Flush::All).await;
                    });
                }
            }
        });
        self.inner.state.borrow_mut().timer = Some(timer);
    }
}

impl Inner {
    pub(crate) fn report(&self, message: &str) {
        self.browser
            .report_error(self.config.on_error.as_ref(), message);
    }

    /// Runs the `beforeSend` hook: it may return an edited event, or null/false to drop it.
    /// A hook that throws keeps the event (never lose data silently) and is reported.
    fn before_send(&self, event: Object) -> Option<Object> {
        let Some(hook) = &self.config.before_send else {
            return Some(event);
        };
        match hook.call1(&JsValue::NULL, &event) {
            Ok(v) if v.is_null() || v.is_undefined() || v.as_bool() == Some(false) => None,
            Ok(v) if v.is_object() => Some(v.unchecked_into()),
            Ok(_) => Some(event),
            Err(_) => {
                self.report("beforeSend threw; the event is kept as it was");
                Some(event)
            }
        }
    }

    fn page_view(self: &Rc<Self>) {
        let props = self.browser.page_props();
        self.enqueue("page", "$pageview", &props);
    }

    /// Builds the event and queues it: no I/O here, only serialization.
    pub(crate) fn enqueue(self: &Rc<Self>, kind: &str, name: &str, props: &JsValue) {
        {
            let state = self.state.borrow();
            if state.closed
                || state.opted_out
                || !telltale_core::delivery::sampled(&state.anonymous_id, self.config.sample_rate)
            {
                return;
            }
        }
        if name.is_empty() {
            self.report("an event needs a name");
            return;
        }
        let flat_props = match self.browser.flat_props(props) {
            Ok(p) => p,
            Err(message) => {
                self.report(&message);
                return;
            }
        };
        let id = random_uuid();
        let event = Object::new();
        let state = self.state.borrow();
        let set = |k: &str, v: &JsValue| {
            let _ = Reflect::set(&event, &JsValue::from_str(k), v);
        };
        set("id", &JsValue::from_str(&id));
        set("type", &JsValue::from_str(kind));
        set("name", &JsValue::from_str(name));
        set("ts", &JsValue::from_f64(now_ms()));
        set("anonymous_id", &JsValue::from_str(&state.anonymous_id));
        if let Some(user_id) = &state.user_id {
            set("user_id", &JsValue::from_str(user_id));
        }
        set("props", &flat_props);
        if let Some(url) = self.browser.current_url() {
            set("url", &JsValue::from_str(&url));
        }
        drop(state);
        let event = match self.before_send(event) {
            Some(event) => event,
            None => return,
        };
        let json = match JSON::stringify(&event) {
            Ok(s) => String::from(s),
            Err(_) => {
                self.report("event could not be serialized");
                return;
            }
        };
        let length = self.state.borrow_mut().queue.push(QueuedEvent { id, json });
        delivery::schedule_save(self);
        if length == self.config.flush_at {
            let inner = Rc::clone(self);
            wasm_bindgen_futures::spawn_local(async move {
                inner.send(Flush::FullBatches).await;
            });
        }
    }
}
