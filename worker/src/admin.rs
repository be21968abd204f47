//! Operator endpoints: the pipeline's health, and draining the spool on demand.

use crate::apps::require_app;
use crate::args;
use crate::audit::audit;
use crate::auth::{actor, require_admin};
use crate::http::{json, ApiError, ApiResult, Query};
use crate::pipeline::{drain_spool, spool_depth};
use crate::store::Db;
use serde::{Deserialize, Serialize};
use worker::{Env, Request};

/// What the write path has done since the database was created.
#[derive(Deserialize, Serialize)]
struct Totals {
    transactions: i64,
    messages: i64,
    events_offered: i64,
    events_stored: i64,
    retries: i64,
    rows_written: i64,
}

/// A message that came the long way (dead-letter queue or KV spool).
#[derive(Deserialize, Serialize)]
struct Incident {
    app: String,
    batch_id: String,
    part: i64,
    kind: String,
    events: i64,
    at: i64,
}

/// `GET /v1/admin/pipeline`: what the consumer stored and what it cost, what had to be
/// retried, dead-lettered or spooled, and what clients reported dropping.
pub async fn pipeline(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    #[derive(Deserialize)]
    struct DropRow {
        app: String,
        dropped: i64,
    }
    #[derive(Deserialize)]
    struct KindCount {
        kind: String,
        n: i64,
    }
    let db = Db::open(env)?;
    let drops: Vec<DropRow> = db
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
    let totals: Option<Totals> = db
        .first(
            "reading pipeline totals",
            "SELECT transactions, messages, events_offered, events_stored, retries, rows_written FROM pipeline_totals WHERE id = 1",
            &[],
        )
        .await?;
    let totals = totals.ok_or_else(|| {
        ApiError::new(
            503,
            "storage_unavailable",
            "pipeline totals are missing: apply the migrations",
        )
    })?;
    let by_kind: Vec<KindCount> = db
        .all(
            "counting pipeline incidents",
            "SELECT kind, COUNT(*) AS n FROM pipeline_incidents GROUP BY kind",
            &[],
        )
        .await?;
    let count_of = |kind: &str| by_kind.iter().find(|k| k.kind == kind).map_or(0, |k| k.n);
    let recent: Vec<Incident> = db
        .all(
            "reading pipeline incidents",
            "SELECT app, batch_id, part, kind, events, at FROM pipeline_incidents ORDER BY at DESC LIMIT 20",
            &[],
        )
        .await?;
    let per_event = |n: i64| {
        if totals.events_stored > 0 {
            serde_json::json!((n as f64 / totals.events_stored as f64 * 100.0).round() / 100.0)
        } else {
            serde_json::Value::Null
        }
    };
    json(
        200,
        &serde_json::json!({
            "spooled_parts": spool_depth(env).await?,
            // Events clients evicted (storage budget) and reported, per app.
            "client_dropped": client_dropped,
            "stored": {
                "transactions": totals.transactions,
                "messages": totals.messages,
                "events": totals.events_stored,
                // Events offered again (resends, redeliveries) and absorbed by their id.
                "duplicates_absorbed": totals.events_offered - totals.events_stored,
                "rows_written": totals.rows_written,
                "rows_written_per_event": per_event(totals.rows_written),
            },
            // Deliveries sent back after a failed write (counted when the isolate that
            // retried them next commits), and messages that came the long way.
            "retries": totals.retries,
            "dead_lettered": count_of("dead_letter"),
            "spooled": count_of("spool"),
            "recent_incidents": recent,
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
