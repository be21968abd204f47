//! The published state, and its one owner: which commit is live (the manifest), its
//! compiled engine and wire ruleset, its probe definitions, and the probes' states.
//!
//! Writers: `config` publishes a manifest ([`publish_manifest`]); `probes` records state
//! changes ([`publish_probe_states`]). Readers: `flags` and `ofrep` (decisions), `probes`
//! (what to run). This module depends on none of them.
//!
//! Every app has its own. Storage is KV only: `flags:manifest:<app>` names the published
//! commit and its revisions, `rev:<id>` holds each immutable body (shared: content-
//! addressed), `probes:states:<app>` the probes' states. Each isolate keeps each app's
//! compiled engine and re-reads its manifest at most every [`MANIFEST_TTL_MS`], so a
//! decision costs no KV read on the hot path, and a new publication only fetches the
//! revisions it changed.

use crate::http::{etag_for, internal, now_ms, ApiError};
use crate::store::kv;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use telltale_core::config::{ruleset_of, Snapshot};
use telltale_core::flags::{compile, Engine, ProbeState, ProbeStates};
use telltale_core::probes::{validate_probe, ProbeDef};
use worker::Env;

fn manifest_key(app: &str) -> String {
    format!("flags:manifest:{app}")
}

fn probe_states_key(app: &str) -> String {
    format!("probes:states:{app}")
}

/// Before apps had their own config, the one published config lived under these keys;
/// it is the demo app's now (migration 0004), read until the demo app publishes again.
const LEGACY_APP: &str = "demo";
const LEGACY_MANIFEST_KEY: &str = "flags:manifest";
const LEGACY_PROBE_STATES_KEY: &str = "probes:states";
/// How long an isolate trusts its copy of the manifest and of the probe states.
pub const MANIFEST_TTL_MS: i64 = 10_000;

/// What is published: a commit and its snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub commit: String,
    pub published_at: i64,
    pub snapshot: Snapshot,
}

/// The published config, compiled. Cheap to clone (shared parts).
#[derive(Clone)]
pub struct Published {
    pub commit: String,
    pub engine: Rc<Engine>,
    pub probes: Rc<Vec<ProbeDef>>,
    /// The compiled engine as base64 (`Engine::to_wire`), served to the engine module.
    pub compiled: Rc<String>,
    /// The wire ruleset served to SDKs for local evaluation (kept as a value: each
    /// answer adds the current probe states to a copy).
    pub ruleset: Rc<Value>,
}

struct Cached {
    published: Published,
    checked_at: i64,
}

type StatesAt = (BTreeMap<String, ProbeState>, i64);

thread_local! {
    // Per app: the compiled published config and when its manifest was last checked.
    static PUBLISHED: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    // Per app: probe states (name -> state) and when they were last read from KV.
    static PROBE_STATES: RefCell<HashMap<String, StatesAt>> = RefCell::new(HashMap::new());
    // Revisions are immutable, so they are cached for the isolate's life.
    static REVISIONS: RefCell<HashMap<String, Value>> = RefCell::new(HashMap::new());
}

/// Publishes a commit: its revision bodies that readers do not have yet, then the
/// manifest (so a reader never sees a manifest naming a revision not in KV yet), then
/// this isolate's cache, so the next decision here needs no KV read.
pub async fn publish_manifest(
    env: &Env,
    app: &str,
    manifest: Manifest,
    new_bodies: &HashMap<String, Value>,
) -> Result<(), ApiError> {
    let store = kv(env)?;
    for (id, body) in new_bodies {
        store
            .put(&format!("rev:{id}"), body.to_string())?
            .execute()
            .await?;
    }
    let text = serde_json::to_string(&manifest).map_err(internal)?;
    store.put(&manifest_key(app), text)?.execute().await?;
    warm(env, app, manifest).await
}

/// Withdraws an app's published config and probe states (the app was deleted).
pub async fn unpublish(env: &Env, app: &str) -> Result<(), ApiError> {
    let store = kv(env)?;
    store.delete(&manifest_key(app)).await?;
    store.delete(&probe_states_key(app)).await?;
    if app == LEGACY_APP {
        store.delete(LEGACY_MANIFEST_KEY).await?;
        store.delete(LEGACY_PROBE_STATES_KEY).await?;
    }
    PUBLISHED.with(|p| p.borrow_mut().remove(app));
    PROBE_STATES.with(|p| p.borrow_mut().remove(app));
    Ok(())
}

/// Reads an app's KV value, falling back to the pre-tenancy key for the demo app.
async fn read_app_json<T: serde::de::DeserializeOwned>(
    env: &Env,
    app: &str,
    key: &str,
    legacy: &str,
) -> Result<Option<T>, ApiError> {
    let store = kv(env)?;
    if let Some(value) = store.get(key).json::<T>().await? {
        return Ok(Some(value));
    }
    if app == LEGACY_APP {
        return Ok(store.get(legacy).json::<T>().await?);
    }
    Ok(None)
}

/// Compiles a manifest into this isolate's cache, fetching only unknown revisions.
async fn warm(env: &Env, app: &str, manifest: Manifest) -> Result<(), ApiError> {
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
    let ruleset_value = serde_json::to_value(&ruleset).map_err(internal)?;
    // The compiled engine, for the browser's engine module: it decides, and compiles nothing.
    let compiled = telltale_core::flags::engine::base64(&engine.to_wire());
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
    let published = Published {
        commit: manifest.commit,
        engine: Rc::new(engine),
        probes: Rc::new(probes),
        ruleset: Rc::new(ruleset_value),
        compiled: Rc::new(compiled),
    };
    PUBLISHED.with(|p| {
        p.borrow_mut().insert(
            app.to_string(),
            Cached {
                published,
                checked_at: now_ms(),
            },
        )
    });
    Ok(())
}

fn cached(app: &str, fresh_after: i64) -> Option<Published> {
    PUBLISHED.with(|p| {
        p.borrow()
            .get(app)
            .filter(|c| c.checked_at > fresh_after)
            .map(|c| c.published.clone())
    })
}

/// An app's published config, from the isolate cache when fresh.
pub async fn current(env: &Env, app: &str) -> Result<Published, ApiError> {
    let now = now_ms();
    if let Some(hit) = cached(app, now - MANIFEST_TTL_MS) {
        return Ok(hit);
    }
    let manifest = read_app_json::<Manifest>(env, app, &manifest_key(app), LEGACY_MANIFEST_KEY)
        .await?
        // Nothing published yet: an empty ruleset, not an error.
        .unwrap_or(Manifest {
            commit: String::new(),
            published_at: 0,
            snapshot: Snapshot::default(),
        });
    let unchanged = PUBLISHED.with(|p| {
        let mut cache = p.borrow_mut();
        match cache.get_mut(app) {
            Some(c) if c.published.commit == manifest.commit => {
                c.checked_at = now;
                true
            }
            _ => false,
        }
    });
    if !unchanged {
        warm(env, app, manifest).await?;
    }
    cached(app, i64::MIN).ok_or_else(|| internal("the published-state cache is empty"))
}

/// Records every probe's state of an app for readers (KV, and this isolate at once).
pub async fn publish_probe_states(
    env: &Env,
    app: &str,
    states: BTreeMap<String, ProbeState>,
) -> Result<(), ApiError> {
    let text = serde_json::to_string(&states).map_err(internal)?;
    kv(env)?
        .put(&probe_states_key(app), text)?
        .execute()
        .await?;
    PROBE_STATES.with(|p| p.borrow_mut().insert(app.to_string(), (states, now_ms())));
    Ok(())
}

/// An app's probe states, re-read from KV at most every [`MANIFEST_TTL_MS`]. Only probes
/// of the published config are served: a removed probe leaves the map.
pub async fn probe_states(env: &Env, app: &str) -> Result<BTreeMap<String, ProbeState>, ApiError> {
    let now = now_ms();
    let fresh = PROBE_STATES.with(|p| {
        p.borrow()
            .get(app)
            .filter(|(_, at)| now - at < MANIFEST_TTL_MS)
            .map(|(m, _)| m.clone())
    });
    let states = match fresh {
        Some(states) => states,
        None => {
            let stored = read_app_json::<Map<String, Value>>(
                env,
                app,
                &probe_states_key(app),
                LEGACY_PROBE_STATES_KEY,
            )
            .await?
            .unwrap_or_default();
            let states: BTreeMap<String, ProbeState> = stored
                .iter()
                .map(|(name, state)| (name.clone(), ProbeState::from_served(state)))
                .collect();
            PROBE_STATES.with(|p| {
                p.borrow_mut()
                    .insert(app.to_string(), (states.clone(), now))
            });
            states
        }
    };
    let published = current(env, app).await?;
    Ok(served_probe_states(&published.probes, &states))
}

/// The states of the published probes; one without a recorded state is `unknown`.
fn served_probe_states(
    probes: &[ProbeDef],
    recorded: &BTreeMap<String, ProbeState>,
) -> BTreeMap<String, ProbeState> {
    probes
        .iter()
        .map(|def| {
            let state = recorded
                .get(&def.key)
                .copied()
                .unwrap_or(ProbeState::Unknown);
            (def.key.clone(), state)
        })
        .collect()
}

/// Probe states as the engine takes them.
pub fn engine_probe_states(states: &BTreeMap<String, ProbeState>) -> ProbeStates {
    states.iter().map(|(k, s)| (k.clone(), *s)).collect()
}

/// The ETag of a decision answer. Decisions are a function of the config version, the
/// request (context, flags asked for), the probes' states and the time; time enters only
/// at schedule boundaries, so the tag includes the latest one passed: it changes when a
/// decision can change, and not otherwise.
pub fn decision_etag(
    published: &Published,
    now_ms: i64,
    request: Value,
    probes: &BTreeMap<String, ProbeState>,
) -> String {
    etag_for(
        published.engine.version(),
        &json!({
            "request": request,
            "probes": probes,
            "schedule_epoch": published.engine.schedule_epoch(now_ms),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use telltale_core::flags::Ruleset;

    #[test]
    fn only_published_probes_are_served() {
        let def = |key: &str| {
            validate_probe(&json!({"key": key, "url": "https://partner.example/health"})).unwrap()
        };
        let recorded = BTreeMap::from([
            ("partner".to_string(), ProbeState::Down),
            ("removed".to_string(), ProbeState::Up),
        ]);
        let served = served_probe_states(&[def("partner"), def("fresh")], &recorded);
        assert_eq!(
            served,
            BTreeMap::from([
                ("fresh".to_string(), ProbeState::Unknown),
                ("partner".to_string(), ProbeState::Down),
            ])
        );
    }

    #[test]
    fn the_decision_etag_changes_at_a_schedule_boundary() {
        let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let ruleset = Ruleset {
            version: "c1".into(),
            flags: vec![
                json!({"key": "launch", "variants": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                "default_variant": "on", "off_variant": "off", "schedule": {"from": "2026-01-01T00:00:00Z"}}),
            ],
            segments: vec![],
        };
        let published = Published {
            commit: "c1".into(),
            engine: Rc::new(compile(&ruleset)),
            probes: Rc::new(vec![]),
            ruleset: Rc::new(Value::Null),
            compiled: Rc::new(String::new()),
        };
        let tag =
            |now: i64| decision_etag(&published, now, json!({"context": {}}), &BTreeMap::new());
        assert_eq!(tag(start - 60_000), tag(start - 1));
        assert_ne!(tag(start - 1), tag(start));
        assert_eq!(tag(start), tag(start + 3_600_000));
        let down = BTreeMap::from([("p".to_string(), ProbeState::Down)]);
        assert_ne!(
            tag(start),
            decision_etag(&published, start, json!({"context": {}}), &down)
        );
    }
}
