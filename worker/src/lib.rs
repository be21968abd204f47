//! # telltale-worker
//!
//! The Telltale edge collector, a Cloudflare Worker in Rust. The logic lives in
//! `telltale-core`; this crate adapts HTTP, D1, KV, Queues and cron to it.
//!
//! Modules, each depending only on those listed after it:
//! - [`routes`] (the route table) → the handlers:
//!   - [`ingest`] → [`pipeline`] (queue, D1, spool); [`stats`]; [`admin`] (pipeline health);
//!   - [`config`] (staging, history, release, transfer) → [`published`];
//!   - [`flags`], [`ofrep`] → [`published`];
//!   - [`probes`] (run, state, api) → [`published`], [`audit`];
//!   - [`dev`] (fault injection, evaluation overrides, the demo);
//! - [`published`] (the live config, compiled, and probe states) → [`store`];
//! - [`apps`], [`auth`], [`cors`], [`audit`] → [`store`], [`http`].

pub mod admin;
pub mod apps;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cors;
pub mod dev;
pub mod experiments;
pub mod flags;
pub mod http;
pub mod ingest;
pub mod ofrep;
pub mod pipeline;
pub mod probes;
pub mod published;
pub mod routes;
pub mod stats;
pub mod store;

use http::{env_string, json, ApiError, ApiResult};
use routes::{Endpoint, Resolved};
use worker::{
    event, Context, Env, MessageBatch, Request, Response, ScheduleContext, ScheduledEvent,
};

/// Spool parts drained per cron run: bounded so a run finishes well within its limits.
const SPOOL_PARTS_PER_CRON: u64 = 200;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    let origin = req.headers().get("Origin")?;
    match routes::resolve(&req.method(), &path) {
        Resolved::Preflight => cors::preflight(&req),
        Resolved::NotFound => {
            let hint = if path.starts_with("/v1/config") || path.starts_with("/v1/probes") {
                "; config and probes are per app: /v1/apps/{app}/config/..., /v1/apps/{app}/probes"
            } else {
                ""
            };
            ApiError::not_found("not_found", "path", format!("no route `{path}`{hint}"))
                .into_response()
        }
        Resolved::MethodNotAllowed {
            allow,
            cross_origin,
        } => {
            let mut response =
                ApiError::new(405, "method_not_allowed", format!("use {allow}")).into_response()?;
            response.headers_mut().set("Allow", &allow)?;
            finish(Ok(response), cross_origin, origin.as_deref())
        }
        Resolved::Found {
            endpoint,
            params,
            cross_origin,
        } => {
            let params: Vec<String> = params.into_iter().map(str::to_string).collect();
            let outcome = handle(endpoint, &params, req, &env).await;
            match outcome {
                Ok(response) => finish(Ok(response), cross_origin, origin.as_deref()),
                // A refused origin gets no CORS headers: the browser hides the answer.
                Err(e) if e.status == 403 => e.into_response(),
                Err(e) => finish(e.into_response(), cross_origin, origin.as_deref()),
            }
        }
    }
}

fn finish(
    response: worker::Result<Response>,
    cross_origin: bool,
    origin: Option<&str>,
) -> worker::Result<Response> {
    if cross_origin {
        cors::with_cors(response?, origin)
    } else {
        response
    }
}

async fn handle(endpoint: Endpoint, params: &[String], req: Request, env: &Env) -> ApiResult {
    let param = |i: usize| params.get(i).map_or("", String::as_str);
    match endpoint {
        Endpoint::Health => json(
            200,
            &serde_json::json!({"ok": true, "version": env!("CARGO_PKG_VERSION")}),
        ),
        Endpoint::DemoConfig => dev::demo_config(&req, env),
        Endpoint::DemoPartner => dev::demo_partner(env).await,
        Endpoint::SetDemoPartner => dev::set_demo_partner(req, env).await,
        Endpoint::Ingest => ingest::accept(req, env).await,
        Endpoint::SegmentIngest => ingest::accept_segment(req, env).await,
        Endpoint::Stats => stats::stats(req, env).await,
        Endpoint::Catalog => stats::catalog(req, env).await,
        Endpoint::FlagsEvaluate => flags::evaluate(req, env).await,
        Endpoint::FlagsRuleset => flags::ruleset(req, env).await,
        Endpoint::FlagsCompile => flags::compile_ruleset(req, env).await,
        Endpoint::FlagsCompiled => flags::compiled_ruleset(req, env).await,
        Endpoint::OfrepEvaluateAll => ofrep::evaluate_all(req, env).await,
        Endpoint::OfrepEvaluateOne => ofrep::evaluate_one(req, env, param(0)).await,
        Endpoint::OfrepConfiguration => ofrep::configuration(req, env).await,
        Endpoint::StageGet => config::staging::stage_get(req, env, param(0)).await,
        Endpoint::StagePut => {
            config::staging::stage_put(req, env, param(0), param(1), param(2)).await
        }
        Endpoint::StageDelete => {
            config::staging::stage_delete(req, env, param(0), param(1), param(2)).await
        }
        Endpoint::Commit => config::history::commit(req, env, param(0)).await,
        Endpoint::Log => config::history::log(req, env, param(0)).await,
        Endpoint::GetCommit => config::history::get_commit(req, env, param(0), param(1)).await,
        Endpoint::Diff => config::history::diff(req, env, param(0)).await,
        Endpoint::AuditLog => config::history::audit_log(req, env, param(0)).await,
        Endpoint::Publish => config::release::publish(req, env, param(0)).await,
        Endpoint::Rollback => config::release::rollback(req, env, param(0)).await,
        Endpoint::Export => config::transfer::export(req, env, param(0)).await,
        Endpoint::Import => config::transfer::import(req, env, param(0)).await,
        Endpoint::ProbesList => probes::api::list(req, env, param(0)).await,
        Endpoint::ProbePush => probes::api::push(req, env, param(0), param(1)).await,
        Endpoint::ProbeOverride => probes::api::set_override(req, env, param(0), param(1)).await,
        Endpoint::ProbeHistory => probes::api::history(req, env, param(0), param(1)).await,
        Endpoint::AppsList => apps::list(req, env).await,
        Endpoint::AppsCreate => apps::create(req, env).await,
        Endpoint::AppGet => apps::get(req, env, param(0)).await,
        Endpoint::AppDelete => apps::delete(req, env, param(0)).await,
        Endpoint::FaultsGet => dev::get_faults(req, env).await,
        Endpoint::FaultsPut => dev::put_faults(req, env).await,
        Endpoint::Pipeline => admin::pipeline(req, env).await,
        Endpoint::PipelineDrain => admin::drain(req, env).await,
        Endpoint::ClientDropsReset => admin::reset_client_drops(req, env).await,
        Endpoint::Meta => meta(&req, env),
        Endpoint::Overview => stats::overview(req, env).await,
        Endpoint::RecentEvents => stats::recent(req, env).await,
        Endpoint::ConfigEntries => config::inspect::entries(req, env, param(0)).await,
        Endpoint::ExperimentResults => experiments::results(req, env, param(0), param(1)).await,
        Endpoint::ConfigEvaluate => config::inspect::evaluate(req, env, param(0)).await,
        Endpoint::AppUpdate => apps::update(req, env, param(0)).await,
        Endpoint::AppRotateKey => apps::rotate_key(req, env, param(0)).await,
        Endpoint::ArchiveStatus => archive::status(req, env).await,
        Endpoint::ArchiveRun => archive::run_now(req, env).await,
        Endpoint::ArchiveObjects => archive::list_objects(req, env).await,
        Endpoint::ArchiveObject => archive::get_object(req, env).await,
    }
}

/// `GET /v1/meta` (admin): the vocabulary editors need, from the engine itself.
fn meta(req: &Request, env: &Env) -> ApiResult {
    auth::require_admin(req, env)?;
    http::Query::parse(req, &[])?;
    json(
        200,
        &serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "operators": telltale_core::flags::engine::operator_names().collect::<Vec<_>>(),
            "kinds": telltale_core::config::KINDS,
            "probe_intervals_s": telltale_core::probes::INTERVALS_S,
            "probe_secret_prefix": telltale_core::probes::PROBE_SECRET_PREFIX,
        }),
    )
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> worker::Result<()> {
    pipeline::consume(batch, &env).await
}

/// Whether probes run in this environment at all (always, unless `PROBES=off`).
fn probes_enabled(env: &Env) -> bool {
    env_string(env, "PROBES").as_deref() != Some("off")
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    if probes_enabled(&env) {
        match probes::run::run_cron(&env).await {
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
    match experiments::copy_pending(&env).await {
        Ok(chunks) if chunks > 0 => {
            worker::console_log!("experiments: copied {chunks} chunks of stored events")
        }
        Ok(_) => {}
        Err(e) => worker::console_error!("copying measured events failed: {}", e.message),
    }
    let scheduled_ms = event.schedule() as i64;
    if telltale_core::archive::run_due(scheduled_ms) {
        match archive::run(&env, scheduled_ms).await {
            Ok(report) if report.objects > 0 || report.config_backups > 0 => worker::console_log!(
                "archive: {} objects, {} events, {} config backups",
                report.objects,
                report.events,
                report.config_backups
            ),
            Ok(_) => {}
            Err(e) => worker::console_error!("archive run failed: {}", e.message),
        }
    }
}
