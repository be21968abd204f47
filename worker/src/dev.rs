//! Development hooks, all in one place, each inert unless its var is set:
//! - fault injection (`FAULT_INJECTION=on`): D1 or queue failures and scripted ingest
//!   answers, set through `GET|PUT /v1/admin/faults`;
//! - evaluation overrides (`EVAL_OVERRIDES=on`): `now` and `probes` in
//!   `POST /v1/flags/evaluate` (the shared flag vectors use them);
//! - private probe targets (`PROBES_ALLOW_PRIVATE=on`): probes may call loopback and
//!   private addresses, for local partner servers in tests and the demo;
//! - the demo (`DEMO_INGEST_KEY`, written by `npm start`): `/demo-config.json` and a
//!   partner endpoint whose health an operator can switch.
//!
//! `wrangler.toml` ships every var off. With a var off, its hook reads nothing: the check
//! is one environment lookup, before any KV read (`tests/e2e/security.test.mjs` proves
//! that fault keys planted in KV change nothing then).

use crate::apps::DEMO_APP_ID;
use crate::auth::require_admin;
use crate::http::{env_string, internal, json, read_json, ApiError, ApiResult};
use crate::store::kv;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use telltale_core::flags::ProbeState;
use telltale_core::targets::{check_probe_target, TargetPolicy};
use telltale_core::FieldError;
use worker::{Env, Request};

fn var_on(env: &Env, name: &str) -> bool {
    env_string(env, name).as_deref() == Some("on")
}

fn fault_injection_enabled(env: &Env) -> bool {
    var_on(env, "FAULT_INJECTION")
}

/// A storage fault a test can switch on.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Every D1 write of the event pipeline fails.
    D1,
    /// Every queue send fails.
    Queue,
}

impl Fault {
    fn kv_key(self) -> &'static str {
        match self {
            Fault::D1 => "fault:d1",
            Fault::Queue => "fault:queue",
        }
    }
}

/// Whether a fault is injected now (never unless `FAULT_INJECTION=on`).
pub async fn fault_active(env: &Env, fault: Fault) -> bool {
    if !fault_injection_enabled(env) {
        return false;
    }
    match kv(env) {
        Ok(store) => matches!(store.get(fault.kv_key()).text().await, Ok(Some(v)) if v == "on"),
        Err(_) => false,
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Faults {
    #[serde(default)]
    d1: bool,
    #[serde(default)]
    queue: bool,
    /// The next ingest requests, one entry each: `500`, `503`, `429` (with Retry-After: 1)
    /// answer that status without storing; `"store_then_500"` stores, then answers 500
    /// (a lost response: the client must retry and the dedup must absorb it).
    #[serde(default)]
    ingest: Vec<IngestFault>,
    /// The archive run stops (as a crash would) at this step, once: one of
    /// [`ARCHIVE_FAULT_STEPS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    archive: Option<String>,
}

/// Where an archive run can be made to stop: after planning an object, after writing it,
/// after reading it back, or inside the delete transaction (which then rolls back whole).
pub const ARCHIVE_FAULT_STEPS: [&str; 4] =
    ["after_plan", "after_write", "after_verify", "in_delete"];
const ARCHIVE_FAULT_KEY: &str = "fault:archive";

/// Whether the archive should stop at `step` now; a fault that fires is used up.
pub async fn take_archive_fault(env: &Env, step: &str) -> bool {
    if !fault_injection_enabled(env) {
        return false;
    }
    let Ok(store) = kv(env) else { return false };
    match store.get(ARCHIVE_FAULT_KEY).text().await {
        Ok(Some(armed)) if armed == step => store.delete(ARCHIVE_FAULT_KEY).await.is_ok(),
        _ => false,
    }
}

/// One scripted ingest answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum IngestFault {
    Status(u16),
    Mode(IngestFaultMode),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum IngestFaultMode {
    #[serde(rename = "store_then_500")]
    StoreThen500,
}

const SCRIPTABLE_STATUSES: [u16; 3] = [429, 500, 503];

impl Faults {
    /// Checks the whole request before anything is written.
    fn validate(&self) -> Result<(), ApiError> {
        match self
            .ingest
            .iter()
            .enumerate()
            .find(|(_, f)| matches!(f, IngestFault::Status(s) if !SCRIPTABLE_STATUSES.contains(s)))
        {
            Some((i, bad)) => Err(ApiError::new(
                400,
                "invalid_value",
                format!("ingest faults are 429, 500, 503 or \"store_then_500\", not {bad:?}"),
            )
            .with_field(format!("ingest[{i}]"))),
            None => Ok(()),
        }?;
        match &self.archive {
            Some(step) if !ARCHIVE_FAULT_STEPS.contains(&step.as_str()) => Err(ApiError::new(
                400,
                "invalid_value",
                format!(
                    "archive faults are one of {}",
                    ARCHIVE_FAULT_STEPS.join(", ")
                ),
            )
            .with_field("archive")),
            _ => Ok(()),
        }
    }
}

/// Takes the next scripted ingest answer, if fault injection is on and one is queued.
pub async fn next_ingest_fault(env: &Env) -> Option<IngestFault> {
    if !fault_injection_enabled(env) {
        return None;
    }
    let store = kv(env).ok()?;
    let mut list: Vec<IngestFault> = store.get("fault:ingest").json().await.ok()??;
    if list.is_empty() {
        return None;
    }
    let next = list.remove(0);
    let text = serde_json::to_string(&list).ok()?;
    store.put("fault:ingest", text).ok()?.execute().await.ok()?;
    Some(next)
}

fn require_fault_injection(env: &Env) -> Result<(), ApiError> {
    if fault_injection_enabled(env) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "not_found",
            "path",
            "fault injection is off (set FAULT_INJECTION=on in development)",
        ))
    }
}

async fn read_faults(env: &Env) -> Result<Faults, ApiError> {
    let store = kv(env)?;
    Ok(Faults {
        d1: store.get(Fault::D1.kv_key()).text().await?.as_deref() == Some("on"),
        queue: store.get(Fault::Queue.kv_key()).text().await?.as_deref() == Some("on"),
        ingest: store.get("fault:ingest").json().await?.unwrap_or_default(),
        archive: store.get(ARCHIVE_FAULT_KEY).text().await?,
    })
}

/// `GET /v1/admin/faults`
pub async fn get_faults(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    require_fault_injection(env)?;
    json(200, &read_faults(env).await?)
}

/// `PUT /v1/admin/faults {"d1": bool, "queue": bool, "ingest": [...]}`: validated whole,
/// then written; a refused request changes nothing.
pub async fn put_faults(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    require_fault_injection(env)?;
    let faults: Faults = read_json(&mut req).await?;
    faults.validate()?;
    let store = kv(env)?;
    for (fault, on) in [(Fault::D1, faults.d1), (Fault::Queue, faults.queue)] {
        if on {
            store.put(fault.kv_key(), "on")?.execute().await?;
        } else {
            store.delete(fault.kv_key()).await?;
        }
    }
    let text = serde_json::to_string(&faults.ingest).map_err(internal)?;
    store.put("fault:ingest", text)?.execute().await?;
    match &faults.archive {
        Some(step) => {
            store
                .put(ARCHIVE_FAULT_KEY, step.as_str())?
                .execute()
                .await?
        }
        None => store.delete(ARCHIVE_FAULT_KEY).await?,
    }
    json(200, &read_faults(env).await?)
}

/// Where probes may call in this deployment. `req` (when there is one) names the
/// collector's own host, which a probe may not call.
pub fn probe_target_policy(env: &Env, req: Option<&Request>) -> Result<TargetPolicy, ApiError> {
    // Every name the collector answers to (workers.dev and custom domains) is listed in
    // `COLLECTOR_HOSTS`; the host a request came in on counts too.
    let mut own_hosts: Vec<String> = env_string(env, "COLLECTOR_HOSTS")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if let Some(req) = req {
        own_hosts.extend(req.url()?.host_str().map(str::to_string));
    }
    Ok(TargetPolicy {
        allow_private: var_on(env, "PROBES_ALLOW_PRIVATE"),
        own_hosts,
    })
}

/// Checks a probe URL against this deployment's policy, as written and as the URL
/// parser that makes the call reads it (which resolves dots, drops tabs and maps
/// fullwidth characters): both must pass.
pub fn check_probe_url(env: &Env, req: Option<&Request>, url: &str) -> Result<(), FieldError> {
    let policy = probe_target_policy(env, req)
        .map_err(|e| FieldError::new("invalid_value", "url", e.message))?;
    check_probe_target(url, &policy)?;
    let parsed = worker::Url::parse(url)
        .map_err(|e| FieldError::new("invalid_value", "url", format!("url does not parse: {e}")))?;
    check_probe_target(parsed.as_str(), &policy)
}

/// What a development evaluation may assume.
pub struct EvalOverrides {
    pub now_ms: Option<i64>,
    pub probes: BTreeMap<String, ProbeState>,
}

/// `now` and `probes` of an evaluation request: refused (400) unless
/// `EVAL_OVERRIDES=on`; `None` when the request has neither.
pub fn eval_overrides(
    env: &Env,
    now: Option<&Value>,
    probes: Option<&Map<String, Value>>,
) -> Result<Option<EvalOverrides>, ApiError> {
    if now.is_none() && probes.is_none() {
        return Ok(None);
    }
    if !var_on(env, "EVAL_OVERRIDES") {
        return Err(ApiError::new(
            400,
            "overrides_disabled",
            "`now` and `probes` are only accepted in development (EVAL_OVERRIDES=on)",
        )
        .with_field(if now.is_some() { "now" } else { "probes" }));
    }
    let now_ms = match now {
        None => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
            ApiError::new(400, "invalid_value", "now must be integer ms").with_field("now")
        })?),
        Some(Value::String(s)) => {
            Some(telltale_core::time::parse_api_time(s).ok_or_else(|| {
                ApiError::new(400, "invalid_value", "now must be RFC 3339 or integer ms")
                    .with_field("now")
            })?)
        }
        Some(_) => {
            return Err(
                ApiError::new(400, "invalid_type", "now must be RFC 3339 or integer ms")
                    .with_field("now"),
            )
        }
    };
    let probes = probes
        .into_iter()
        .flatten()
        .map(|(name, state)| (name.clone(), ProbeState::from_served(state)))
        .collect();
    Ok(Some(EvalOverrides { now_ms, probes }))
}

fn demo_key(env: &Env) -> Result<String, ApiError> {
    env_string(env, "DEMO_INGEST_KEY")
        .ok_or_else(|| ApiError::not_found("not_found", "path", "no demo app is configured"))
}

/// `GET /demo-config.json`: the demo page's settings. Ingest keys are public by design
/// (they ship in pages, are write-only, and are bound to origins).
pub fn demo_config(req: &Request, env: &Env) -> ApiResult {
    let key = demo_key(env)?;
    let url = req.url()?;
    json(
        200,
        &serde_json::json!({
            "app": DEMO_APP_ID,
            "key": key,
            "endpoint": url.origin().ascii_serialization(),
        }),
    )
}

const DEMO_PARTNER_DOWN: &str = "demo:partner-down";

/// `GET /demo-partner/health`: a stand-in partner API for the demo, whose health an
/// operator can switch, so the probe, the flag and the demo page's banner can be watched.
pub async fn demo_partner(env: &Env) -> ApiResult {
    demo_key(env)?;
    let healthy = kv(env)?.get(DEMO_PARTNER_DOWN).text().await?.is_none();
    if healthy {
        json(200, &serde_json::json!({"status": "green"}))
    } else {
        json(503, &serde_json::json!({"status": "red"}))
    }
}

/// `PUT /demo-partner/health {"healthy": bool}` (admin key).
pub async fn set_demo_partner(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    demo_key(env)?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Switch {
        healthy: bool,
    }
    let switch: Switch = read_json(&mut req).await?;
    let store = kv(env)?;
    if switch.healthy {
        store.delete(DEMO_PARTNER_DOWN).await?;
    } else {
        store.put(DEMO_PARTNER_DOWN, "1")?.execute().await?;
    }
    json(200, &serde_json::json!({"healthy": switch.healthy}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ingest_fault_is_refused_before_anything_is_written() {
        let faults: Faults =
            serde_json::from_value(serde_json::json!({"d1": true, "ingest": [500, 418]})).unwrap();
        let e = faults.validate().unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("ingest[1]")));
        let ok: Faults =
            serde_json::from_value(serde_json::json!({"ingest": [429, "store_then_500"]})).unwrap();
        assert!(ok.validate().is_ok());
        let archive: Faults =
            serde_json::from_value(serde_json::json!({"archive": "after_write"})).unwrap();
        assert!(archive.validate().is_ok());
        let bad: Faults = serde_json::from_value(serde_json::json!({"archive": "later"})).unwrap();
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("archive")
        );
    }
}
