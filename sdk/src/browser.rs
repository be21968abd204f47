//! The browser edge: clock, randomness, storage, DOM listeners and transport. Every call
//! that can throw in some browser or webview is caught here and turned into a value.

use js_sys::{Array, Function, Object, Reflect};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use telltale_core::ids::MonotonicUuidV7;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Document, Element, Event, Headers, RequestInit, Response, Storage, Window};

const ANONYMOUS_ID_KEY: &str = "telltale:anonymous_id";
const USER_ID_KEY: &str = "telltale:user_id";
const MAX_URL_CHARS: usize = 2048;

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

thread_local! {
    static IDS: RefCell<MonotonicUuidV7> = RefCell::new(MonotonicUuidV7::default());
}

/// A UUIDv7 from the clock and `crypto.getRandomValues`, monotonic within this page.
pub fn random_uuid() -> String {
    let mut random = [0u8; 10];
    if getrandom::fill(&mut random).is_err() {
        // No Web Crypto (very old webviews): Math.random still gives unique-enough ids.
        for b in random.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    IDS.with(|ids| ids.borrow_mut().next(now_ms() as u64, random))
}

/// A POST with the ingest key and a string body.
fn post_init(key: &str, content_type: &str, body: &str) -> Option<RequestInit> {
    let headers = Headers::new().ok()?;
    headers.set("Content-Type", content_type).ok()?;
    headers
        .set("Authorization", &["Bearer ", key].concat())
        .ok()?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    Some(init)
}

/// What a request answered.
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
    pub etag: Option<String>,
    pub retry_after: Option<String>,
}

pub struct Browser {
    window: Option<Window>,
    document: Option<Document>,
    storage: Option<Storage>,
}

impl Browser {
    pub fn new() -> Self {
        let window = web_sys::window();
        let document = window.as_ref().and_then(Window::document);
        // localStorage access throws where storage is disabled; then ids live in memory.
        let storage = window
            .as_ref()
            .and_then(|w| w.local_storage().ok().flatten());
        Browser {
            window,
            document,
            storage,
        }
    }

    fn load(&self, key: &str) -> Option<String> {
        self.storage
            .as_ref()?
            .get_item(key)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
    }

    fn save(&self, key: &str, value: Option<&str>) {
        if let Some(storage) = &self.storage {
            // A full or blocked storage must never break the page.
            let _ = match value {
                Some(v) => storage.set_item(key, v),
                None => storage.remove_item(key),
            };
        }
    }

    pub fn load_or_create_anonymous_id(&self) -> String {
        self.load(ANONYMOUS_ID_KEY).unwrap_or_else(|| {
            let id = random_uuid();
            self.save(ANONYMOUS_ID_KEY, Some(&id));
            id
        })
    }

    pub fn save_anonymous_id(&self, id: &str) {
        self.save(ANONYMOUS_ID_KEY, Some(id));
    }

    pub fn load_user_id(&self) -> Option<String> {
        self.load(USER_ID_KEY)
    }

    pub fn save_user_id(&self, id: Option<&str>) {
        self.save(USER_ID_KEY, id);
    }

    pub fn current_url(&self) -> Option<String> {
        let href = self.window.as_ref()?.location().href().ok()?;
        Some(href.chars().take(MAX_URL_CHARS).collect())
    }

    /// Props of a page view: path, title and referrer.
    pub fn page_props(&self) -> JsValue {
        let props = Object::new();
        if let Some(window) = &self.window {
            if let Ok(path) = window.location().pathname() {
                let _ = Reflect::set(&props, &"path".into(), &path.into());
            }
        }
        if let Some(document) = &self.document {
            let _ = Reflect::set(&props, &"title".into(), &document.title().into());
            let referrer = document.referrer();
            if !referrer.is_empty() {
                let _ = Reflect::set(&props, &"referrer".into(), &referrer.into());
            }
        }
        props.into()
    }

    /// Copies a props argument into a fresh flat object, refusing nested values.
    pub fn flat_props(&self, props: &JsValue) -> Result<JsValue, String> {
        let out = Object::new();
        if props.is_undefined() || props.is_null() {
            return Ok(out.into());
        }
        if !props.is_object() || Array::is_array(props) {
            return Err("props must be a plain object".into());
        }
        for entry in Object::entries(props.unchecked_ref::<Object>()).iter() {
            let pair: Array = entry.unchecked_into();
            let (key, value) = (pair.get(0), pair.get(1));
            let flat = value.is_string()
                || value.is_null()
                || value.as_bool().is_some()
                || value.as_f64().is_some_and(f64::is_finite);
            if value.is_undefined() {
                continue;
            }
            if !flat {
                let name = key.as_string().unwrap_or_default();
                return Err([
                    "prop `",
                    &name,
                    "` must be a string, finite number, boolean or null",
                ]
                .concat());
            }
            let _ = Reflect::set(&out, &key, &value);
        }
        Ok(out.into())
    }

    /// Calls `onError` with an Error, or warns on the console. Never throws.
    pub fn report_error(&self, on_error: Option<&Function>, message: &str) {
        let full = ["telltale: ", message].concat();
        match on_error {
            Some(callback) => {
                let _ = callback.call1(&JsValue::NULL, &js_sys::Error::new(&full));
            }
            None => web_sys::console::warn_1(&full.into()),
        }
    }

    /// A request with the ingest key: POST when there is a body, else GET. Resolves to
    /// the status, the body text and the ETag.
    pub async fn request(
        &self,
        url: &str,
        key: &str,
        body: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<HttpAnswer, String> {
        let window = self.window.as_ref().ok_or("no window")?;
        let init = match body {
            Some(body) => post_init(key, "application/json", body).ok_or("no Headers")?,
            None => {
                let headers = Headers::new().map_err(|_| "no Headers")?;
                let _ = headers.set("Authorization", &["Bearer ", key].concat());
                let init = RequestInit::new();
                init.set_method("GET");
                init.set_headers(&headers);
                init
            }
        };
        if let Some(etag) = if_none_match {
            if let Ok(headers) = Reflect::get(&init, &"headers".into()) {
                let _ = headers
                    .unchecked_into::<Headers>()
                    .set("If-None-Match", etag);
            }
        }
        let promise = window.fetch_with_str_and_init(url, &init);
        let response = JsFuture::from(promise).await.map_err(|e| {
            e.dyn_ref::<js_sys::Error>()
                .map(|err| String::from(err.message()))
                .unwrap_or_else(|| "fetch failed".into())
        })?;
        let response: Response = response.dyn_into().map_err(|_| "not a Response")?;
        let etag = response.headers().get("ETag").ok().flatten();
        let retry_after = response.headers().get("Retry-After").ok().flatten();
        let text = match response.text() {
            Ok(p) => JsFuture::from(p)
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        Ok(HttpAnswer {
            status: response.status(),
            body: text,
            etag,
            retry_after,
        })
    }

    /// Writes to localStorage; false when it is full or blocked.
    pub fn try_save_item(&self, key: &str, value: &str) -> bool {
        self.storage
            .as_ref()
            .is_some_and(|s| s.set_item(key, value).is_ok())
    }

    pub fn remove_item(&self, key: &str) {
        if let Some(storage) = &self.storage {
            let _ = storage.remove_item(key);
        }
    }

    /// localStorage keys starting with `prefix`.
    pub fn storage_keys(&self, prefix: &str) -> Vec<String> {
        let Some(storage) = &self.storage else {
            return Vec::new();
        };
        let n = storage.length().unwrap_or(0);
        (0..n)
            .filter_map(|i| storage.key(i).ok().flatten())
            .filter(|k| k.starts_with(prefix))
            .collect()
    }

    /// This page's id, kept in sessionStorage so a reload of the same tab keeps it.
    pub fn tab_id(&self) -> String {
        let session = self
            .window
            .as_ref()
            .and_then(|w| w.session_storage().ok().flatten());
        if let Some(id) = session
            .as_ref()
            .and_then(|s| s.get_item("telltale:tab").ok().flatten())
        {
            return id;
        }
        let id = random_uuid();
        if let Some(s) = session {
            let _ = s.set_item("telltale:tab", &id);
        }
        id
    }

    /// `navigator.onLine` (true where unknown).
    pub fn is_online(&self) -> bool {
        self.window
            .as_ref()
            .and_then(|w| Reflect::get(&w.navigator(), &"onLine".into()).ok())
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
    }

    /// Do Not Track or Global Privacy Control is on.
    pub fn privacy_signal(&self) -> bool {
        let Some(window) = &self.window else {
            return false;
        };
        let navigator: JsValue = window.navigator().into();
        let get = |target: &JsValue, name: &str| {
            Reflect::get(target, &name.into()).unwrap_or(JsValue::UNDEFINED)
        };
        get(&navigator, "doNotTrack").as_string().as_deref() == Some("1")
            || get(window, "doNotTrack").as_string().as_deref() == Some("1")
            || get(&navigator, "globalPrivacyControl").as_bool() == Some(true)
    }

    /// Runs `f` when the browser goes back online.
    pub fn on_online<T: 'static>(&self, target: Weak<T>, f: fn(&Rc<T>)) {
        let Some(window) = &self.window else {
            return;
        };
        let on_online = Closure::<dyn FnMut(Event)>::new(move |_| {
            if let Some(t) = target.upgrade() {
                f(&t);
            }
        });
        let _ =
            window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
        on_online.forget();
    }

    /// Reads a value from localStorage (None where storage is unavailable).
    pub fn load_item(&self, key: &str) -> Option<String> {
        self.load(key)
    }

    /// Writes a value to localStorage; a full or blocked storage is ignored.
    pub fn save_item(&self, key: &str, value: &str) {
        self.save(key, Some(value));
    }

    /// Hands a body to the browser for delivery after the page is gone: `sendBeacon`,
    /// else `fetch` with `keepalive`. Returns false when neither accepted it.
    pub fn beacon(&self, url: &str, key: &str, body: &str) -> bool {
        let Some(window) = &self.window else {
            return false;
        };
        let navigator = window.navigator();
        let has_beacon = Reflect::has(&navigator, &"sendBeacon".into()).unwrap_or(false);
        if has_beacon
            && navigator
                .send_beacon_with_opt_str(url, Some(body))
                .unwrap_or(false)
        {
            return true;
        }
        let Some(init) = post_init(key, "text/plain", body) else {
            return false;
        };
        // web-sys has no setter for `keepalive`; RequestInit is a plain dictionary.
        let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
        let promise = window.fetch_with_str_and_init(url, &init);
        // The promise settles after the page is gone; a rejection must not surface.
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
        true
    }

    /// Runs `f` when the page is hidden or unloaded (tab switch, close, navigation).
    pub fn on_page_hide<T: 'static>(&self, target: Weak<T>, f: fn(&T)) {
        let (Some(window), Some(document)) = (&self.window, &self.document) else {
            return;
        };
        let doc = document.clone();
        let weak = target.clone();
        let on_visibility = Closure::<dyn FnMut(Event)>::new(move |_| {
            if doc.visibility_state() == web_sys::VisibilityState::Hidden {
                if let Some(t) = weak.upgrade() {
                    f(&t);
                }
            }
        });
        let on_pagehide = Closure::<dyn FnMut(Event)>::new(move |_| {
            if let Some(t) = target.upgrade() {
                f(&t);
            }
        });
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visibility.as_ref().unchecked_ref(),
        );
        let _ = window
            .add_event_listener_with_callback("pagehide", on_pagehide.as_ref().unchecked_ref());
        // Listeners live as long as the page; the weak reference ends their effect.
        on_visibility.forget();
        on_pagehide.forget();
    }

    /// Runs `f` when the page becomes visible again (a returning user).
    pub fn on_visible<T: 'static>(&self, target: Weak<T>, f: fn(&Rc<T>)) {
        let Some(document) = &self.document else {
            return;
        };
        let doc = document.clone();
        let on_visibility = Closure::<dyn FnMut(Event)>::new(move |_| {
            if doc.visibility_state() == web_sys::VisibilityState::Visible {
                if let Some(t) = target.upgrade() {
                    f(&t);
                }
            }
        });
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visibility.as_ref().unchecked_ref(),
        );
        on_visibility.forget();
    }

    /// Runs `f(name, props)` for clicks inside an element with `data-track="name"`; its
    /// `data-track-*` attributes become props.
    pub fn on_tracked_click<T: 'static>(&self, target: Weak<T>, f: fn(&Rc<T>, String, JsValue)) {
        let Some(document) = &self.document else {
            return;
        };
        let on_click = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            let Some(t) = target.upgrade() else {
                return;
            };
            let element = event
                .target()
                .and_then(|t| t.dyn_into::<Element>().ok())
                .and_then(|el| el.closest("[data-track]").ok().flatten());
            let Some(element) = element else {
                return;
            };
            let name = element.get_attribute("data-track").unwrap_or_default();
            let props = Object::new();
            for attr in element.get_attribute_names().iter() {
                let attr = attr.as_string().unwrap_or_default();
                if let Some(prop) = attr.strip_prefix("data-track-") {
                    let value = element.get_attribute(&attr).unwrap_or_default();
                    let _ = Reflect::set(&props, &prop.replace('-', "_").into(), &value.into());
                }
            }
            f(&t, name, props.into());
        });
        let _ = document.add_event_listener_with_callback_and_bool(
            "click",
            on_click.as_ref().unchecked_ref(),
            true,
        );
        on_click.forget();
    }

    /// Runs `f` after SPA navigations: `history.pushState`, `replaceState` (when the
    /// path changes) and back/forward (`popstate`).
    pub fn on_route_change<T: 'static>(&self, target: Weak<T>, f: fn(&Rc<T>)) {
        let Some(window) = &self.window else {
            return;
        };
        let Ok(history) = window.history() else {
            return;
        };
        let history_js: JsValue = history.into();
        for method in ["pushState", "replaceState"] {
            let Some(original) = Reflect::get(&history_js, &method.into())
                .ok()
                .and_then(|v| v.dyn_into::<Function>().ok())
            else {
                continue;
            };
            let weak = target.clone();
            let this = history_js.clone();
            let location = window.location();
            let wrapper = Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> JsValue>::new(
                move |state, title, url| {
                    let before = location.pathname().unwrap_or_default();
                    let result = original
                        .call3(&this, &state, &title, &url)
                        .unwrap_or(JsValue::UNDEFINED);
                    let after = location.pathname().unwrap_or_default();
                    if before != after {
                        if let Some(t) = weak.upgrade() {
                            f(&t);
                        }
                    }
                    result
                },
            );
            let _ = Reflect::set(&history_js, &method.into(), wrapper.as_ref());
            wrapper.forget();
        }
        let on_pop = Closure::<dyn FnMut(Event)>::new(move |_| {
            if let Some(t) = target.upgrade() {
                f(&t);
            }
        });
        let _ =
            window.add_event_listener_with_callback("popstate", on_pop.as_ref().unchecked_ref());
        on_pop.forget();
    }
}
