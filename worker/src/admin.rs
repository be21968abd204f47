//! Operator endpoints: pipeline health and (in development only) fault injection.

use crate::apps::{kv, require_admin};
use crate::http::{fault_injection_enabled, json, read_json, ApiError, ApiResult};
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
    json(200, &read_faults(env).await?)
}

/// `GET /v1/admin/pipeline`: what waits in the spool.
pub async fn pipeline(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    #[derive(Serialize)]
    struct Status {
        spooled_parts: usize,
    }
    json(
        200,
        &Status {
            spooled_parts: spool_depth(env).await?,
        },
    )
}

/// `POST /v1/admin/pipeline/drain`: drain the spool now instead of waiting for cron.
pub async fn drain(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    json(200, &drain_spool(env, 100).await?)
}
