//! Running probes: one call to an endpoint with the probe's timeout, and the cron's
//! minute, in which every published probe of every app runs `60 / interval_s` times on
//! its own schedule (`telltale_core::probes::cron_rounds`). Before each call the target
//! and the secrets it would send are checked again, so a config published before a rule
//! existed cannot get around it.

use super::state::{decide_and_apply, ProbeRef};
use super::{insert_results, ProbeResult};
use crate::args;
use crate::dev::check_probe_url;
use crate::http::{now, now_ms, ApiError};
use crate::published::{self, Published};
use crate::store::Db;
use futures_util::future::{join_all, select, Either};
use serde::Deserialize;
use std::time::Duration;
use telltale_core::probes::{check_response, cron_rounds, probe_secret_allowed, ProbeDef};
use telltale_core::time::MS_PER_DAY;
use worker::{
    AbortController, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// Results older than this are pruned by the cron.
const RETENTION_MS: i64 = 7 * MS_PER_DAY;

/// Calls the endpoint once, with the probe's timeout.
pub(crate) async fn run_once(env: &Env, probe: ProbeRef<'_>) -> ProbeResult {
    let def = probe.def;
    let started_at = now();
    let outcome = call(env, def).await;
    let ended_at = now();
    let (ok, status, error) = match outcome {
        Ok((status, body)) => match check_response(def, status, &body) {
            Ok(()) => (true, Some(status), None),
            Err(why) => (false, Some(status), Some(why)),
        },
        Err(why) => (false, None, Some(why)),
    };
    ProbeResult {
        app: probe.app.to_string(),
        probe: def.key.clone(),
        started_at,
        ended_at,
        ok,
        status,
        latency_ms: ended_at.ms() - started_at.ms(),
        error,
    }
}

async fn call(env: &Env, def: &ProbeDef) -> Result<(u16, String), String> {
    check_probe_url(env, None, &def.url).map_err(|e| format!("not called: {}", e.message))?;
    let headers = Headers::new();
    for (name, value) in &def.headers {
        headers.set(name, value).map_err(|e| e.to_string())?;
    }
    for (name, secret) in &def.secret_headers {
        if !probe_secret_allowed(secret) {
            return Err(format!(
                "not called: secret {secret} may not be sent by a probe"
            ));
        }
        let value = env
            .secret(secret)
            .map_err(|_| format!("secret {secret} is not set"))?
            .to_string();
        headers.set(name, &value).map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    let method = match def.method.as_str() {
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Get,
    };
    // Redirects are not followed: a redirect could lead anywhere the target check
    // refuses, with the probe's secret headers. A 3xx is the probe's answer.
    init.with_method(method)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    let request = Request::new_with_init(&def.url, &init).map_err(|e| e.to_string())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Delay::from(Duration::from_millis(u64::from(def.timeout_ms)));
    let outcome = select(sending, timeout).await;
    match outcome {
        Either::Left((Ok(mut response), _)) => {
            let status = response.status_code();
            let body = if def.body_contains.is_some() || def.body_json.is_some() {
                response.text().await.unwrap_or_default()
            } else {
                String::new()
            };
            Ok((status, body))
        }
        Either::Left((Err(e), _)) => Err(format!("request failed: {e}")),
        Either::Right(_) => {
            controller.abort();
            Err(format!("timed out after {} ms", def.timeout_ms))
        }
    }
}

/// The apps with a published config (deleted apps have none).
async fn published_apps(db: &Db) -> Result<Vec<String>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        app: String,
    }
    let rows: Vec<Row> = db
        .all(
            "listing published apps",
            "SELECT app FROM refs WHERE name = 'published' ORDER BY app",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.app).collect())
}

/// The cron's work: every published probe of every app on its own schedule through the
/// minute, probes due together called concurrently; each round's results are recorded
/// and decided at once; then retention.
pub async fn run_cron(env: &Env) -> Result<usize, ApiError> {
    let db = Db::open(env)?;
    let mut configs: Vec<(String, Published)> = Vec::new();
    for app in published_apps(&db).await? {
        match published::current(env, &app).await {
            Ok(config) => configs.push((app, config)),
            Err(e) => worker::console_error!("probes of app {app} skipped: {}", e.message),
        }
    }
    let probes: Vec<ProbeRef> = configs
        .iter()
        .flat_map(|(app, config)| config.probes.iter().map(move |def| ProbeRef { app, def }))
        .collect();
    if probes.is_empty() {
        return Ok(0);
    }
    let intervals: Vec<u32> = probes.iter().map(|p| p.def.interval_s).collect();
    let started = now_ms();
    let mut runs = 0;
    for round in cron_rounds(&intervals) {
        // Keep the schedule; a late round runs at once.
        let start_at = started + i64::from(round.offset_s) * 1000;
        let wait = start_at - now_ms();
        if wait > 0 {
            Delay::from(Duration::from_millis(wait as u64)).await;
        }
        let due: Vec<ProbeRef> = round.due.iter().map(|&i| probes[i]).collect();
        let results = join_all(due.iter().map(|probe| run_once(env, *probe))).await;
        runs += results.len();
        db.batch(
            "recording probe results",
            insert_results(&db, &results, "cron")?,
        )
        .await?;
        for probe in due {
            if let Err(e) = decide_and_apply(env, &db, probe, "probe-cron").await {
                worker::console_error!(
                    "deciding probe {}/{}: {}",
                    probe.app,
                    probe.def.key,
                    e.message
                );
            }
        }
    }
    db.run(
        "pruning probe results",
        "DELETE FROM probe_results WHERE id IN (SELECT id FROM probe_results WHERE ended_at < ?1 LIMIT 5000)",
        args![now_ms() - RETENTION_MS],
    )
    .await?;
    Ok(runs)
}
