//! Operator endpoints: the pipeline's health, and draining the spool on demand.

use crate::apps::require_app;
use crate::args;
use crate::audit::audit;
use crate::auth::{actor, require_admin};
use crate::http::{json, ApiError, ApiResult, Query};
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
            // TOTAL never fails on overflow (SUM does); each report is bounded at ingest.
            "SELECT app, CAST(MIN(TOTAL(dropped), 9.0e18) AS INTEGER) AS dropped FROM client_drops GROUP BY app ORDER BY app",
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

/// `DELETE /v1/admin/pipeline/client-drops?app=`: forgets one app's client-drop reports
/// (junk from a misbehaving client). The app must be named; there is no "all".
pub async fn reset_client_drops(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["app"])?;
    let who = actor(&req)?;
    let app = query
        .get("app")
        .ok_or_else(|| ApiError::new(400, "required", "name the app (`app`)").with_field("app"))?;
    require_app(env, app).await?;
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let db = Db::open(env)?;
    let removed = db
        .first::<Count>(
            "counting client drops",
            "SELECT COUNT(*) AS n FROM client_drops WHERE app = ?1",
            args![app],
        )
        .await?
        .map_or(0, |c| c.n);
    db.batch(
        "removing client drops",
        vec![
            db.stmt("DELETE FROM client_drops WHERE app = ?1", args![app])?,
            audit(
                &db,
                app,
                &who,
                "pipeline.client_drops.reset",
                &format!("apps/{app}/client_drops"),
                &serde_json::json!({ "reports": removed }),
                &serde_json::Value::Null,
            )?,
        ],
    )
    .await?;
    json(
        200,
        &serde_json::json!({"app": app, "removed_reports": removed}),
    )
}
