//! Serving flag decisions: `POST|GET /v1/flags/evaluate` and `GET /v1/flags/ruleset`.
//!
//! Readers use KV only: `flags:manifest` names the published commit and its revisions,
//! and `rev:<id>` holds each immutable body. Each isolate keeps the compiled engine and
//! re-reads the manifest at most every [`MANIFEST_TTL_MS`], so a decision costs no KV read
//! on the hot path, and a new publication only fetches the revisions it changed.

use crate::apps::kv;
use crate::config::ruleset_of;
use crate::http::{env_string, json, now_ms, query_pairs, ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use telltale_core::config::{canonical_json, sha256_hex, Snapshot};
use telltale_core::flags::engine::ProbeState;
use telltale_core::flags::{compile, Engine, ProbeStates};
use telltale_core::probes::{validate_probe, ProbeDef};
use worker::{Env, Headers, Request, Response};

const MANIFEST_KEY: &str = "flags:manifest";
/// How long an isolate trusts its copy of the manifest.
pub const MANIFEST_TTL_MS: i64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub commit: String,
    pub published_at: i64,
    pub snapshot: Snapshot,
}

struct Published {
    commit: String,
    engine: Rc<Engine>,
    probes: Rc<Vec<ProbeDef>>,
    /// The wire ruleset served to SDKs for local evaluation (kept as a value: each
    /// answer adds the current probe states to a copy).
    ruleset: Rc<Value>,
    checked_at: i64,
}

thread_local! {
    static PUBLISHED: RefCell<Option<Published>> = const { RefCell::new(None) };
    // Probe states (name -> up/down/unknown) and when they were last read from KV.
    static PROBE_STATES: RefCell<Option<(Map<String, Value>, i64)>> = const { RefCell::new(None) };
    // Revisions are immutable, so they are cached for the isolate's life.
    static REVISIONS: RefCell<HashMap<String, Value>> = RefCell::new(HashMap::new());
}

pub async fn write_manifest(env: &Env, manifest: &Manifest) -> Result<(), ApiError> {
    let text = serde_json::to_string(manifest)
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    kv(env)?.put(MANIFEST_KEY, text)?.execute().await?;
    Ok(())
}

/// Compiles a manifest into this isolate's cache, fetching only unknown revisions.
pub async fn warm(env: &Env, manifest: Manifest) -> Result<(), ApiError> {
    let store = kv(env)?;
    let missing: Vec<String> = manifest
        .snapshot
        .revisions()
        .into_iter()
        .filter(|r| REVISIONS.with(|c| !c.borrow().contains_key(*r)))
        .map(str::to_string)
        .collect();
    for id in missing {
        let body = store
            .get(&format!("rev:{id}"))
            .json::<Value>()
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    503,
                    "config_unavailable",
                    format!("published revision {id} is not readable yet"),
                )
            })?;
        REVISIONS.with(|c| c.borrow_mut().insert(id, body));
    }
    let bodies: HashMap<String, Value> = REVISIONS.with(|c| {
        let cache = c.borrow();
        manifest
            .snapshot
            .revisions()
            .into_iter()
            .filter_map(|r| cache.get(r).map(|b| (r.to_string(), b.clone())))
            .collect()
    });
    let ruleset = ruleset_of(&manifest.commit, &manifest.snapshot, &bodies);
    let engine = compile(&ruleset);
    for w in engine.warnings() {
        worker::console_warn!(
            "published config {}: {} ({})",
            manifest.commit,
            w.field,
            w.message
        );
    }
    let ruleset_value = serde_json::to_value(&ruleset)
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    let probes: Vec<ProbeDef> = manifest
        .snapshot
        .probes
        .values()
        .filter_map(|rev| bodies.get(rev))
        .filter_map(|body| match validate_probe(body) {
            Ok(def) => Some(def),
            Err(e) => {
                worker::console_warn!("published probe skipped: {} ({})", e.field, e.message);
                None
            }
        })
        .collect();
    PUBLISHED.with(|p| {
        *p.borrow_mut() = Some(Published {
            commit: manifest.commit,
            engine: Rc::new(engine),
            probes: Rc::new(probes),
            ruleset: Rc::new(ruleset_value),
            checked_at: now_ms(),
        })
    });
    Ok(())
}

/// The published probe definitions.
pub async fn published_probes(env: &Env) -> Result<Vec<ProbeDef>, ApiError> {
    published(env).await?;
    Ok(PUBLISHED.with(|p| {
        p.borrow()
            .as_ref()
            .map(|p| p.probes.as_ref().clone())
            .unwrap_or_default()
    }))
}

/// Replaces this isolate's probe states (after a transition decided here).
pub fn set_probe_states(states: Map<String, Value>) {
    PROBE_STATES.with(|p| *p.borrow_mut() = Some((states, now_ms())));
}

/// Probe states from KV, re-read at most every [`MANIFEST_TTL_MS`].
pub async fn probe_state_map(env: &Env) -> Result<Map<String, Value>, ApiError> {
    let now = now_ms();
    if let Some(fresh) = PROBE_STATES.with(|p| {
        p.borrow()
            .as_ref()
            .filter(|(_, at)| now - at < MANIFEST_TTL_MS)
            .map(|(m, _)| m.clone())
    }) {
        return Ok(fresh);
    }
    let states = match kv(env)?
        .get(crate::probes::STATES_KEY)
        .json::<Map<String, Value>>()
        .await?
    {
        Some(map) => map,
        None => Map::new(),
    };
    set_probe_states(states.clone());
    Ok(states)
}

/// The published engine, from the isolate cache when fresh.
pub async fn published(env: &Env) -> Result<(Rc<Engine>, Rc<Value>), ApiError> {
    let now = now_ms();
    let fresh = PUBLISHED.with(|p| {
        p.borrow()
            .as_ref()
            .filter(|p| now - p.checked_at < MANIFEST_TTL_MS)
            .map(|p| (Rc::clone(&p.engine), Rc::clone(&p.ruleset)))
    });
    if let Some(hit) = fresh {
        return Ok(hit);
    }
    match kv(env)?.get(MANIFEST_KEY).json::<Manifest>().await? {
        None => {
            // Nothing published yet: an empty ruleset, not an error.
            let empty = Manifest {
                commit: String::new(),
                published_at: 0,
                snapshot: Snapshot::default(),
            };
            warm(env, empty).await?;
        }
        Some(manifest) => {
            let same = PUBLISHED.with(|p| {
                p.borrow()
                    .as_ref()
                    .is_some_and(|p| p.commit == manifest.commit)
            });
            if same {
                PUBLISHED.with(|p| {
                    if let Some(p) = p.borrow_mut().as_mut() {
                        p.checked_at = now;
                    }
                });
            } else {
                warm(env, manifest).await?;
            }
        }
    }
    PUBLISHED.with(|p| {
        p.borrow()
            .as_ref()
            .map(|p| (Rc::clone(&p.engine), Rc::clone(&p.ruleset)))
            .ok_or_else(|| ApiError::new(500, "internal", "flag cache is empty"))
    })
}

pub async fn authenticate(req: &Request, env: &Env) -> Result<(), ApiError> {
    let origin = req.headers().get("Origin")?;
    crate::ingest::authenticate(req, env, origin.as_deref())
        .await
        .map(|_| ())
}

/// Probe states as the engine needs them: the state machine's (via KV), then, in
/// development only, the request's overrides.
pub async fn probe_states(
    env: &Env,
    overrides: Option<&Map<String, Value>>,
) -> Result<ProbeStates, ApiError> {
    let mut states: ProbeStates = probe_state_map(env)
        .await?
        .iter()
        .map(|(k, v)| (k.clone(), parse_probe_state(v)))
        .collect();
    for (name, state) in overrides.into_iter().flatten() {
        states.insert(name.clone(), parse_probe_state(state));
    }
    Ok(states)
}

fn parse_probe_state(v: &Value) -> ProbeState {
    match v
        .as_str()
        .or_else(|| v.get("state").and_then(Value::as_str))
    {
        Some("up") => ProbeState::Up,
        Some("down") => ProbeState::Down,
        _ => ProbeState::Unknown,
    }
}

fn overrides_enabled(env: &Env) -> bool {
    env_string(env, "EVAL_OVERRIDES").as_deref() == Some("on")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    #[serde(default)]
    context: Map<String, Value>,
    /// Only these flags (each must exist); default all.
    #[serde(default)]
    flags: Option<Vec<String>>,
    /// Development only (`EVAL_OVERRIDES=on`): evaluate at this time (RFC 3339 or ms).
    #[serde(default)]
    now: Option<Value>,
    /// Development only: probe states to assume.
    #[serde(default)]
    probes: Option<Map<String, Value>>,
}

pub fn etag_for(version: &str, request: &Value) -> String {
    format!(
        "\"{}\"",
        &sha256_hex(&format!("{version}\n{}", canonical_json(request)))[..32]
    )
}

pub fn not_modified(req: &Request, etag: &str) -> Result<bool, ApiError> {
    Ok(req
        .headers()
        .get("If-None-Match")?
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")))
}

pub fn with_etag(mut response: Response, etag: &str) -> ApiResult {
    response.headers_mut().set("ETag", etag)?;
    response
        .headers_mut()
        .set("Cache-Control", "private, no-cache")?;
    Ok(response)
}

pub fn empty_304(etag: &str) -> ApiResult {
    let headers = Headers::new();
    headers.set("ETag", etag)?;
    Ok(Response::empty()?.with_status(304).with_headers(headers))
}

/// `POST /v1/flags/evaluate {context, flags?}` or `GET /v1/flags/evaluate?attr=value...`
pub async fn evaluate(mut req: Request, env: &Env) -> ApiResult {
    authenticate(&req, env).await?;
    let input: EvaluateRequest = if req.method() == worker::Method::Get {
        let mut context = Map::new();
        for (k, v) in query_pairs(&req)? {
            context.insert(k, Value::String(v));
        }
        EvaluateRequest {
            context,
            ..Default::default()
        }
    } else {
        crate::http::read_json(&mut req).await?
    };
    if (input.now.is_some() || input.probes.is_some()) && !overrides_enabled(env) {
        return Err(ApiError::new(
            400,
            "overrides_disabled",
            "`now` and `probes` are only accepted in development (EVAL_OVERRIDES=on)",
        )
        .with_field(if input.now.is_some() { "now" } else { "probes" }));
    }
    let now = match &input.now {
        None => now_ms(),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            ApiError::new(400, "invalid_value", "now must be integer ms").with_field("now")
        })?,
        Some(Value::String(s)) => telltale_core::time::parse_api_time(s).ok_or_else(|| {
            ApiError::new(400, "invalid_value", "now must be RFC 3339 or integer ms")
                .with_field("now")
        })?,
        Some(_) => {
            return Err(
                ApiError::new(400, "invalid_type", "now must be RFC 3339 or integer ms")
                    .with_field("now"),
            )
        }
    };
    let (engine, _) = published(env).await?;
    let probes = probe_states(env, input.probes.as_ref()).await?;
    let keys: Vec<String> = match &input.flags {
        None => engine.keys().map(str::to_string).collect(),
        Some(keys) => {
            if let Some(unknown) = keys
                .iter()
                .find(|k| !engine.keys().any(|e| e == k.as_str()))
            {
                return Err(ApiError::not_found(
                    "unknown_flag",
                    "flags",
                    format!("no flag `{unknown}` is published"),
                ));
            }
            keys.clone()
        }
    };
    let probe_view: Map<String, Value> = probes
        .iter()
        .map(|(k, s)| {
            (
                k.clone(),
                json!(match s {
                    ProbeState::Up => "up",
                    ProbeState::Down => "down",
                    ProbeState::Unknown => "unknown",
                }),
            )
        })
        .collect();
    // The answer is a function of these: a 304 is decided before any evaluation.
    let etag = etag_for(
        engine.version(),
        &json!({"context": input.context, "flags": input.flags, "now": input.now, "probes": probe_view}),
    );
    if not_modified(&req, &etag)? && input.now.is_none() {
        return empty_304(&etag);
    }
    let decisions: Map<String, Value> = keys
        .iter()
        .map(|k| {
            (
                k.clone(),
                serde_json::to_value(engine.evaluate(k, &input.context, &probes, now))
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    let body = json!({"version": engine.version(), "flags": decisions, "probes": probe_view});
    with_etag(json(200, &body)?, &etag)
}

/// `GET /v1/flags/ruleset`: the published ruleset plus current probe states, for
/// evaluation in the SDK. The ETag changes with either.
pub async fn ruleset(req: Request, env: &Env) -> ApiResult {
    authenticate(&req, env).await?;
    let (engine, ruleset) = published(env).await?;
    let states = probe_state_map(env).await?;
    let etag = etag_for(
        engine.version(),
        &json!({"ruleset": true, "probes": states}),
    );
    if not_modified(&req, &etag)? {
        return empty_304(&etag);
    }
    let mut body = Value::clone(&ruleset);
    body["probes"] = Value::Object(states);
    with_etag(json(200, &body)?, &etag)
}
