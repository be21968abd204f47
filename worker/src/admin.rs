//! Operator endpoints: the pipeline's health, and draining the spool on demand.

use crate::auth::require_admin;
use crate::http::{json, ApiResult, Query};
use crate::pipeline::{drain_spool, spool_depth};
use crate::store::Db;
use serde::Deserialize;
use worker::{Env, Request};

/// `GET /v1/admin/pipeline`: what waits in the spool, and what clients reported dropping.
pub async fn pipeline(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    #[derive(Deserialize)]
    struct DropRow {
        app: String,
        dropped: i64,
    }
    let drops: Vec<DropRow> = Db::open(env)?
        .all(
            "reading client drops",
            "SELECT app, SUM(dropped) AS dropped FROM client_drops GROUP BY app ORDER BY app",
            &[],
        )
        .await?;
    let client_dropped: serde_json::Map<String, serde_json::Value> = drops
        .into_iter()
        .map(|r| (r.app, serde_json::json!(r.dropped)))
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
    Query::parse(&req, &[])?;
    json(200, &drain_spool(env, 100).await?)
}
