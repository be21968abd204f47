//! The probes' HTTP API, per app under `/v1/apps/{app}/probes`: `POST {name}/results`
//! (results from probes run elsewhere, with the probe key), `PUT {name}/override`,
//! `GET` (the list) and `GET {name}/history` (admin key).

use super::state::{decide_and_apply, ProbeRef};
use super::{insert_results, probe_def, samples, state_row, ProbeResult};
use crate::apps::require_app;
use crate::args;
use crate::audit::audit;
use crate::auth::{actor, require_admin, require_probe_key};
use crate::http::{json, now, now_ms, read_json, ApiError, ApiResult, Query};
use crate::published;
use crate::store::Db;
use serde::Deserialize;
use serde_json::{json, Value};
use telltale_core::probes::{decide, Override, ProbeDef, ProbeState};
use telltale_core::time::{format_rfc3339, parse_api_time, UtcMs, MS_PER_DAY};
use worker::{Env, Request};

/// Most results one push may carry.
const MAX_PUSHED: usize = 100;
/// Longest error text kept from a pushed result.
const MAX_ERROR_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushedResult {
    ok: bool,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    latency_ms: Option<i64>,
    #[serde(default)]
    started_at: Option<i64>,
    #[serde(default)]
    ended_at: Option<i64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PushBody {
    Many { results: Vec<PushedResult> },
    One(PushedResult),
}

/// `POST /v1/probes/{name}/results`: results from probes run elsewhere (PROBE_KEY secret).
pub async fn push(mut req: Request, env: &Env, app: &str, name: &str) -> ApiResult {
    require_probe_key(&req, env)?;
    Query::parse(&req, &[])?;
    require_app(env, app).await?;
    let def = probe_def(env, app, name).await?;
    let body: PushBody = read_json(&mut req).await?;
    let pushed = match body {
        PushBody::Many { results } => results,
        PushBody::One(r) => vec![r],
    };
    if pushed.is_empty() || pushed.len() > MAX_PUSHED {
        return Err(
            ApiError::new(400, "invalid_value", "send 1 to 100 results").with_field("results")
        );
    }
    let now = now_ms();
    let mut results = Vec::with_capacity(pushed.len());
    for (i, p) in pushed.into_iter().enumerate() {
        let ended_at = p.ended_at.unwrap_or(now);
        if ended_at > now + 60_000 || ended_at < now - def.enable_window_ms.max(3_600_000) {
            return Err(
                ApiError::new(400, "out_of_range", "ended_at must be recent UTC ms")
                    .with_field(format!("results[{i}].ended_at")),
            );
        }
        let latency_ms = p.latency_ms.unwrap_or(0);
        if !(0..=3_600_000).contains(&latency_ms) {
            return Err(
                ApiError::new(400, "out_of_range", "latency_ms must be 0 to 3,600,000")
                    .with_field(format!("results[{i}].latency_ms")),
            );
        }
        let started_at = p.started_at.unwrap_or(ended_at - latency_ms);
        results.push(ProbeResult {
            app: app.to_string(),
            probe: def.key.clone(),
            started_at: UtcMs(started_at.clamp(ended_at - 3_600_000, ended_at)),
            ended_at: UtcMs(ended_at),
            ok: p.ok,
            status: p.status,
            latency_ms,
            error: p.error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect()),
        });
    }
    let db = Db::open(env)?;
    db.batch(
        "recording pushed results",
        insert_results(&db, &results, "push")?,
    )
    .await?;
    let verdict = decide_and_apply(env, &db, ProbeRef { app, def: &def }, "probe-push").await?;
    json(
        202,
        &json!({"accepted": results.len(), "state": verdict.state.as_str()}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    mode: Override,
    reason: String,
}

fn mode_name(mode: Override) -> &'static str {
    match mode {
        Override::Auto => "auto",
        Override::ForceUp => "force_up",
        Override::ForceDown => "force_down",
    }
}

/// `PUT /v1/probes/{name}/override {mode: auto|force_up|force_down, reason}` (admin).
pub async fn set_override(mut req: Request, env: &Env, app: &str, name: &str) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    let who = actor(&req)?;
    require_app(env, app).await?;
    let def = probe_def(env, app, name).await?;
    let input: OverrideRequest = read_json(&mut req).await?;
    if input.reason.trim().is_empty()
        || input.reason.chars().count() > 500
        || input.reason.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            400,
            "invalid_value",
            "say why (reason: 1 to 500 printable characters)",
        )
        .with_field("reason"));
    }
    let mode = mode_name(input.mode);
    let db = Db::open(env)?;
    let before = state_row(&db, app, name).await?;
    db.batch(
        "recording an override",
        vec![
            db.stmt(
                "INSERT INTO probe_states (app, probe, state, since, override, override_by, override_reason, updated_at) VALUES (?6, ?1, 'unknown', ?2, ?3, ?4, ?5, ?2) \
                 ON CONFLICT (app, probe) DO UPDATE SET override = excluded.override, override_by = excluded.override_by, override_reason = excluded.override_reason, updated_at = excluded.updated_at",
                args![name, now(), mode, &who, &input.reason, app],
            )?,
            audit(
                &db,
                app,
                &who,
                "probe.override",
                &format!("probes/{name}"),
                &json!(before.as_ref().map(|b| mode_name(b.mode))),
                &json!({"mode": mode, "reason": input.reason}),
            )?,
        ],
    )
    .await?;
    let verdict = decide_and_apply(env, &db, ProbeRef { app, def: &def }, &who).await?;
    json(
        200,
        &json!({"probe": name, "override": mode, "state": verdict.state.as_str()}),
    )
}

async fn probe_view(db: &Db, app: &str, def: &ProbeDef) -> Result<Value, ApiError> {
    let now = now_ms();
    let row = state_row(db, app, &def.key).await?;
    let samples = samples(db, app, def, now).await?;
    let state = row.as_ref().map_or(ProbeState::Unknown, |r| r.state);
    let verdict = decide(def, state, Override::Auto, &samples, now);
    #[derive(Deserialize)]
    struct Last {
        ended_at: i64,
        ok: i64,
        status: Option<i64>,
        latency_ms: i64,
        error: Option<String>,
    }
    let last: Option<Last> = db
        .first(
            "reading the last result",
            "SELECT ended_at, ok, status, latency_ms, error FROM probe_results WHERE app = ?1 AND probe = ?2 ORDER BY ended_at DESC LIMIT 1",
            args![app, &def.key],
        )
        .await?;
    Ok(json!({
        "name": def.key,
        "state": state.as_str(),
        "since": row.as_ref().map(|r| format_rfc3339(r.since)),
        "override": row.as_ref().map_or("auto", |r| mode_name(r.mode)),
        "override_by": row.as_ref().and_then(|r| r.override_by.clone()),
        "override_reason": row.as_ref().and_then(|r| r.override_reason.clone()),
        "disable_window": {"ms": def.disable_window_ms, "pass_rate": verdict.disable_rate, "samples": verdict.disable_samples},
        "enable_window": {"ms": def.enable_window_ms, "pass_rate": verdict.enable_rate, "samples": verdict.enable_samples},
        "last_result": last.map(|l| json!({"ended_at": format_rfc3339(l.ended_at), "ok": l.ok != 0, "status": l.status, "latency_ms": l.latency_ms, "error": l.error})),
    }))
}

/// `GET /v1/apps/{app}/probes` (admin): the app's published probes.
pub async fn list(req: Request, env: &Env, app: &str) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    require_app(env, app).await?;
    let db = Db::open(env)?;
    let mut out = Vec::new();
    for def in published::current(env, app).await?.probes.iter() {
        out.push(probe_view(&db, app, def).await?);
    }
    json(200, &json!({ "probes": out }))
}

/// `GET /v1/apps/{app}/probes/{name}/history?from&to` (admin): results and
/// transitions, UTC.
pub async fn history(req: Request, env: &Env, app: &str, name: &str) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["from", "to"])?;
    require_app(env, app).await?;
    let def = probe_def(env, app, name).await?;
    let now = now_ms();
    let time = |key: &str, default: i64| match query.get(key) {
        None => Ok(default),
        Some(v) => parse_api_time(v).ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_value",
                format!("`{key}` must be RFC 3339 or ms"),
            )
            .with_field(key)
        }),
    };
    let (from, to) = (time("from", now - MS_PER_DAY)?, time("to", now)?);
    if from >= to {
        return Err(
            ApiError::new(400, "invalid_range", "`from` must be before `to`").with_field("from"),
        );
    }
    let db = Db::open(env)?;
    #[derive(Deserialize)]
    struct ResultRow {
        started_at: i64,
        ended_at: i64,
        ok: i64,
        status: Option<i64>,
        latency_ms: i64,
        error: Option<String>,
        source: String,
    }
    #[derive(Deserialize)]
    struct TransitionRow {
        from_state: String,
        to_state: String,
        at: i64,
        reason: String,
        disable_rate: Option<f64>,
        enable_rate: Option<f64>,
    }
    let results: Vec<ResultRow> = db
        .all(
            "reading results",
            "SELECT * FROM probe_results WHERE app = ?4 AND probe = ?1 AND ended_at >= ?2 AND ended_at < ?3 ORDER BY ended_at LIMIT 1000",
            args![&def.key, from, to, app],
        )
        .await?;
    let transitions: Vec<TransitionRow> = db
        .all(
            "reading transitions",
            "SELECT * FROM probe_transitions WHERE app = ?4 AND probe = ?1 AND at >= ?2 AND at < ?3 ORDER BY at LIMIT 1000",
            args![&def.key, from, to, app],
        )
        .await?;
    json(
        200,
        &json!({
            "probe": name, "from": format_rfc3339(from), "to": format_rfc3339(to),
            "results": results.iter().map(|r| json!({"started_at": format_rfc3339(r.started_at), "ended_at": format_rfc3339(r.ended_at),
                "ok": r.ok != 0, "status": r.status, "latency_ms": r.latency_ms, "error": r.error, "source": r.source})).collect::<Vec<_>>(),
            "transitions": transitions.iter().map(|t| json!({"from": t.from_state, "to": t.to_state, "at": format_rfc3339(t.at),
                "reason": t.reason, "disable_rate": t.disable_rate, "enable_rate": t.enable_rate})).collect::<Vec<_>>(),
        }),
    )
}
