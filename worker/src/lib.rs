//! # telltale-worker
//!
//! The Telltale edge collector, a Cloudflare Worker in Rust. It authenticates and
//! validates events (`POST /v1/events`), queues them, writes them with their aggregates
//! to D1, and answers stats queries (`GET /v1/stats`). The logic lives in
//! `telltale-core`; this crate adapts HTTP, D1, KV, Queues and cron to it.
//!
//! Modules, one per concern: [`ingest`], [`pipeline`] (queue, D1, spool), [`stats`],
//! [`apps`] (keys and auth), [`admin`], and [`http`] (errors and answers).

pub mod admin;
pub mod apps;
pub mod config;
pub mod flags;
pub mod http;
pub mod ingest;
pub mod ofrep;
pub mod pipeline;
pub mod probes;
pub mod stats;

use http::{json, ApiError, ApiResult};
use serde::Serialize;
use worker::{
    event, Context, Env, MessageBatch, Method, Request, Response, ScheduleContext, ScheduledEvent,
};

/// Spool parts drained per cron run: bounded so a run finishes well within its limits.
const SPOOL_PARTS_PER_CRON: u64 = 200;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    if path == "/v1/events" {
        return match req.method() {
            Method::Post => ingest::handle(req, &env).await,
            Method::Options => ingest::preflight(&req),
            _ => method_not_allowed("POST, OPTIONS").into_response(),
        };
    }
    // Flag reads come from browsers on the apps' own origins: CORS like ingest.
    let cross_origin = path.starts_with("/v1/flags/") || path.starts_with("/ofrep/");
    if cross_origin && req.method() == Method::Options {
        return ingest::preflight(&req);
    }
    let origin = req.headers().get("Origin")?;
    let response = match route(req, &env, &path).await {
        Ok(response) => Ok(response),
        Err(e) if cross_origin && e.status == 403 => return e.into_response(),
        Err(e) => e.into_response(),
    };
    if cross_origin {
        ingest::with_cors(response, origin.as_deref())
    } else {
        response
    }
}

fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(405, "method_not_allowed", format!("use {allowed}"))
}

async fn route(req: Request, env: &Env, path: &str) -> ApiResult {
    let method = req.method();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::Get, ["healthz"]) => health(),
        (Method::Get, ["demo-config.json"]) => demo_config(&req, env),
        (Method::Get, ["demo-partner", "health"]) => demo_partner(env).await,
        (Method::Put, ["demo-partner", "health"]) => set_demo_partner(req, env).await,
        (Method::Get, ["v1", "stats"]) => stats::stats(req, env).await,
        (Method::Get, ["v1", "catalog"]) => stats::catalog(req, env).await,
        (Method::Post | Method::Get, ["v1", "flags", "evaluate"]) => {
            flags::evaluate(req, env).await
        }
        (Method::Get, ["v1", "flags", "ruleset"]) => flags::ruleset(req, env).await,
        (Method::Post, ["ofrep", "v1", "evaluate", "flags"]) => ofrep::evaluate_all(req, env).await,
        (Method::Post, ["ofrep", "v1", "evaluate", "flags", key]) => {
            ofrep::evaluate_one(req, env, key).await
        }
        (Method::Get, ["ofrep", "v1", "configuration"]) => ofrep::configuration(req, env).await,
        (Method::Get, ["v1", "config", "stage"]) => config::stage_get(req, env).await,
        (Method::Put, ["v1", "config", "stage", kind, key]) => {
            config::stage_put(req, env, kind, key).await
        }
        (Method::Delete, ["v1", "config", "stage", kind, key]) => {
            config::stage_delete(req, env, kind, key).await
        }
        (Method::Post, ["v1", "config", "commits"]) => config::commit(req, env).await,
        (Method::Get, ["v1", "config", "commits"]) => config::log(req, env).await,
        (Method::Get, ["v1", "config", "commits", id]) => config::get_commit(req, env, id).await,
        (Method::Post, ["v1", "config", "publish"]) => config::publish(req, env).await,
        (Method::Post, ["v1", "config", "rollback"]) => config::rollback(req, env).await,
        (Method::Get, ["v1", "config", "diff"]) => config::diff(req, env).await,
        (Method::Get, ["v1", "config", "audit"]) => config::audit_log(req, env).await,
        (Method::Get, ["v1", "config", "export"]) => config::export(req, env).await,
        (Method::Post, ["v1", "config", "import"]) => config::import(req, env).await,
        (Method::Get, ["v1", "probes"]) => probes::list(req, env).await,
        (Method::Post, ["v1", "probes", name, "results"]) => probes::push(req, env, name).await,
        (Method::Put, ["v1", "probes", name, "override"]) => {
            probes::set_override(req, env, name).await
        }
        (Method::Get, ["v1", "probes", name, "history"]) => probes::history(req, env, name).await,
        (Method::Get, ["v1", "admin", "apps"]) => apps::list(req, env).await,
        (Method::Post, ["v1", "admin", "apps"]) => apps::create(req, env).await,
        (Method::Get, ["v1", "admin", "apps", id]) => apps::get(req, env, id).await,
        (Method::Get, ["v1", "admin", "faults"]) => admin::get_faults(req, env).await,
        (Method::Put, ["v1", "admin", "faults"]) => admin::put_faults(req, env).await,
        (Method::Get, ["v1", "admin", "pipeline"]) => admin::pipeline(req, env).await,
        (Method::Post, ["v1", "admin", "pipeline", "drain"]) => admin::drain(req, env).await,
        (_, ["healthz" | "demo-config.json"]) | (_, ["v1", "stats" | "catalog"]) => {
            Err(method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(
            "not_found",
            "path",
            format!("no route `{path}`"),
        )),
    }
}

fn health() -> ApiResult {
    #[derive(Serialize)]
    struct Health {
        ok: bool,
        version: &'static str,
    }
    json(
        200,
        &Health {
            ok: true,
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}

/// The demo page's settings. Ingest keys are public by design (they ship in pages, are
/// write-only, and are bound to origins), so serving the demo key is safe.
fn demo_config(req: &Request, env: &Env) -> ApiResult {
    let Some(key) = http::env_string(env, "DEMO_INGEST_KEY") else {
        return Err(ApiError::not_found(
            "not_found",
            "path",
            "no demo app is configured",
        ));
    };
    let url = req.url()?;
    #[derive(Serialize)]
    struct DemoConfig {
        app: &'static str,
        key: String,
        endpoint: String,
    }
    json(
        200,
        &DemoConfig {
            app: apps::DEMO_APP_ID,
            key,
            endpoint: url.origin().ascii_serialization(),
        },
    )
}

/// A stand-in partner API for the demo, whose health an operator can switch, so that
/// the probe, the flag and the demo page's banner can be watched end to end.
async fn demo_partner(env: &Env) -> ApiResult {
    if http::env_string(env, "DEMO_INGEST_KEY").is_none() {
        return Err(ApiError::not_found(
            "not_found",
            "path",
            "no demo is configured",
        ));
    }
    let healthy = apps::kv(env)?
        .get("demo:partner-down")
        .text()
        .await?
        .is_none();
    if healthy {
        json(200, &serde_json::json!({"status": "green"}))
    } else {
        json(503, &serde_json::json!({"status": "red"}))
    }
}

async fn set_demo_partner(mut req: Request, env: &Env) -> ApiResult {
    apps::require_admin(&req, env)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Switch {
        healthy: bool,
    }
    let switch: Switch = http::read_json(&mut req).await?;
    let store = apps::kv(env)?;
    if switch.healthy {
        store.delete("demo:partner-down").await?;
    } else {
        store.put("demo:partner-down", "1")?.execute().await?;
    }
    json(200, &serde_json::json!({"healthy": switch.healthy}))
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> worker::Result<()> {
    pipeline::consume(batch, &env).await
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    if probes::enabled(&env) {
        match probes::run_cron(&env).await {
            Ok(runs) if runs > 0 => worker::console_log!("probe cron: {runs} runs"),
            Ok(_) => {}
            Err(e) => worker::console_error!("probe cron failed: {}", e.message),
        }
    }
    match pipeline::drain_spool(&env, SPOOL_PARTS_PER_CRON).await {
        Ok(report) if report.stored > 0 || report.remaining > 0 => {
            worker::console_log!(
                "spool drain: stored {} parts, {} remain",
                report.stored,
                report.remaining
            );
        }
        Ok(_) => {}
        Err(e) => worker::console_error!("spool drain failed: {}", e.message),
    }
}
