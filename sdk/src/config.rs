//! Client options, read from a plain JS object. Unknown or mistyped options are refused
//! at construction, so a typo such as `flushAfter` cannot silently keep the default.

use crate::flags::FlagMode;
use js_sys::{Function, Object, Reflect};
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};

const OPTIONS: [&str; 16] = [
    "endpoint",
    "key",
    "flushAt",
    "flushIntervalMs",
    "maxQueue",
    "autocapture",
    "capturePageviews",
    "onError",
    "flagMode",
    "context",
    "bootstrap",
    "flagRefreshMs",
    "maxStorageBytes",
    "sampleRate",
    "beforeSend",
    "respectDoNotTrack",
];

pub struct Config {
    pub endpoint: String,
    pub key: String,
    pub flush_at: usize,
    pub flush_interval_ms: u32,
    pub max_queue: usize,
    pub autocapture: bool,
    pub capture_pageviews: bool,
    pub on_error: Option<Function>,
    pub flag_mode: FlagMode,
    pub context: Map<String, Value>,
    pub bootstrap: Map<String, Value>,
    /// 0 turns periodic refreshes off.
    pub flag_refresh_ms: u32,
    /// Byte budget of queued (and persisted) events; the oldest are evicted beyond it.
    pub max_storage_bytes: usize,
    /// Share of anonymous ids whose events are collected (0 to 1).
    pub sample_rate: f64,
    pub before_send: Option<Function>,
    pub respect_do_not_track: bool,
}

fn object(options: &JsValue, name: &str) -> Result<Map<String, Value>, String> {
    match get(options, name) {
        None => Ok(Map::new()),
        Some(v) => match crate::flag_api::from_js(&v) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(format!("telltale: option `{name}` must be a plain object")),
        },
    }
}

fn get(options: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(options, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn number(options: &JsValue, name: &str, default: f64, min: f64, max: f64) -> Result<f64, String> {
    match get(options, name) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(n) if n.fract() == 0.0 && (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "telltale: option `{name}` must be an integer from {min} to {max}"
            )),
        },
    }
}

fn boolean(options: &JsValue, name: &str) -> Result<bool, String> {
    match get(options, name) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("telltale: option `{name}` must be a boolean")),
    }
}

fn string(options: &JsValue, name: &str) -> Result<String, String> {
    get(options, name)
        .and_then(|v| v.as_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!("telltale: option `{name}` is required and must be a non-empty string")
        })
}

impl Config {
    pub fn parse(options: &JsValue) -> Result<Config, String> {
        if !options.is_object() {
            return Err("telltale: pass an options object: new Telltale({ endpoint, key })".into());
        }
        for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
            let key = key.as_string().unwrap_or_default();
            if !OPTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "telltale: unknown option `{key}`; known: {}",
                    OPTIONS.join(", ")
                ));
            }
        }
        let endpoint = string(options, "endpoint")?
            .trim_end_matches('/')
            .to_string();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err("telltale: option `endpoint` must be an http(s) URL".into());
        }
        let on_error = match get(options, "onError") {
            None => None,
            Some(f) => Some(
                f.dyn_into::<Function>()
                    .map_err(|_| "telltale: option `onError` must be a function".to_string())?,
            ),
        };
        Ok(Config {
            endpoint,
            key: string(options, "key")?,
            flush_at: number(options, "flushAt", 20.0, 1.0, 500.0)? as usize,
            flush_interval_ms: number(options, "flushIntervalMs", 5_000.0, 50.0, 3_600_000.0)?
                as u32,
            max_queue: number(options, "maxQueue", 1_000.0, 1.0, 100_000.0)? as usize,
            autocapture: boolean(options, "autocapture")?,
            capture_pageviews: boolean(options, "capturePageviews")?,
            on_error,
            flag_mode: match get(options, "flagMode")
                .and_then(|v| v.as_string())
                .as_deref()
            {
                None | Some("remote") => FlagMode::Remote,
                Some("local") => FlagMode::Local,
                Some("off") => FlagMode::Off,
                Some(_) => {
                    return Err("telltale: option `flagMode` must be remote, local or off".into())
                }
            },
            context: object(options, "context")?,
            bootstrap: object(options, "bootstrap")?,
            flag_refresh_ms: number(options, "flagRefreshMs", 60_000.0, 0.0, 86_400_000.0)? as u32,
            max_storage_bytes: number(
                options,
                "maxStorageBytes",
                1_000_000.0,
                1_000.0,
                50_000_000.0,
            )? as usize,
            sample_rate: match get(options, "sampleRate") {
                None => 1.0,
                Some(v) => v
                    .as_f64()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or("telltale: option `sampleRate` must be a number from 0 to 1")?,
            },
            before_send: match get(options, "beforeSend") {
                None => None,
                Some(f) => {
                    Some(f.dyn_into::<Function>().map_err(|_| {
                        "telltale: option `beforeSend` must be a function".to_string()
                    })?)
                }
            },
            respect_do_not_track: match get(options, "respectDoNotTrack") {
                None => true,
                Some(v) => v
                    .as_bool()
                    .ok_or("telltale: option `respectDoNotTrack` must be a boolean")?,
            },
        })
    }

    /// `path` under the collector's endpoint.
    pub fn url(&self, path: &str) -> String {
        let mut url = self.endpoint.clone();
        url.push_str(path);
        url
    }

    pub fn events_url(&self) -> String {
        let mut url = self.endpoint.clone();
        url.push_str("/v1/events");
        url
    }

    /// Beacons cannot set headers, so the (public, write-only) ingest key rides in the URL.
    pub fn beacon_url(&self) -> String {
        let mut url = self.events_url();
        url.push_str("?key=");
        url.push_str(&String::from(js_sys::encode_uri_component(&self.key)));
        url
    }
}
