//! Operator endpoints: pipeline health and (in development only) fault injection.

use crate::apps::{kv, require_admin};
use crate::http::{d1, db, fault_injection_enabled, json, read_json, ApiError, ApiResult};
use crate::pipeline::{drain_spool, spool_depth};
use serde::{Deserialize, Serialize};
use worker::{Env, Request};

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Faults {
    /// Every D1 write fails.
    #[serde(default)]
    d1: bool,
    /// Every queue send fails.
    #[serde(default)]
    queue: bool,
    /// The next ingest requests, one entry each: `500`, `503`, `429` (with Retry-After: 1)
    /// answer that status without storing; `"store_then_500"` stores, then answers 500
    /// (a lost response: the client must retry and the dedup must absorb it).
    #[serde(default)]
    ingest: Vec<IngestFault>,
}

/// One scripted ingest answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum IngestFault {
    Status(u16),
    Mode(IngestFaultMode),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum IngestFaultMode {
    #[serde(rename = "store_then_500")]
    StoreThen500,
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

fn injection_enabled(env: &Env) -> Result<(), ApiError> {
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
        d1: store.get("fault:d1").text().await?.as_deref() == Some("on"),
        queue: store.get("fault:queue").text().await?.as_deref() == Some("on"),
        ingest: store.get("fault:ingest").json().await?.unwrap_or_default(),
    })
}

/// `GET /v1/admin/faults`
pub async fn get_faults(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    injection_enabled(env)?;
    json(200, &read_faults(env).await?)
}

/// `PUT /v1/admin/faults {"d1": bool, "queue": bool}`
pub async fn put_faults(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    injection_enabled(env)?;
    let faults: Faults = read_json(&mut req).await?;
    let store = kv(env)?;
    for (name, on) in [("d1", faults.d1), ("queue", faults.queue)] {
        let key = format!("fault:{name}");
        if on {
            store.put(&key, "on")?.execute().await?;
        } else {
            store.delete(&key).await?;
        }
    }
    if let Some(bad) = faults
        .ingest
        .iter()
        .find(|f| matches!(f, IngestFault::Status(s) if ![429, 500, 503].contains(s)))
    {
        return Err(ApiError::new(
            400,
            "invalid_value",
            format!("ingest faults are 429, 500, 503 or \"store_then_500\", not {bad:?}"),
        )
        .with_field("ingest"));
    }
    let text = serde_json::to_string(&faults.ingest)
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    store.put("fault:ingest", text)?.execute().await?;
    json(200, &read_faults(env).await?)
}

/// `GET /v1/admin/pipeline`: what waits in the spool.
pub async fn pipeline(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    #[derive(Deserialize)]
    struct DropRow {
        app: String,
        dropped: f64,
    }
    let drops = d1(
        "reading client drops",
        db(env)?
            .prepare(
                "SELECT app, SUM(dropped) AS dropped FROM client_drops GROUP BY app ORDER BY app",
            )
            .all()
            .await,
    )?
    .results::<DropRow>()?;
    let client_dropped: serde_json::Map<String, serde_json::Value> = drops
        .into_iter()
        .map(|r| (r.app, serde_json::json!(r.dropped as u64)))
        .collect();
    json(
        200,
        &serde_json::json!({
            "spooled_parts": spool_depth(env).await?,
            // Events clients evicted (storage budget) and reported, per app.
            "client_dropped": client_dropped,
        }),
    )
}

/// `POST /v1/admin/pipeline/drain`: drain the spool now instead of waiting for cron.
pub async fn drain(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    json(200, &drain_spool(env, 100).await?)
}
