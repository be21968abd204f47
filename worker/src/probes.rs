//! Probes: cron runs that call each published probe's endpoint, record results in D1,
//! and feed the hysteresis state machine in `telltale-core`. A transition writes the
//! state to KV (for flag decisions) and D1 (history), appends an audit entry and posts a
//! Slack-compatible alert, retried a few times; an alert failure never blocks or reverts
//! the decision. Also: pushed results, manual overrides, and the read API.

use crate::apps::{kv, require_admin};
use crate::config::audit;
use crate::flags::{self, published_probes};
use crate::http::{
    d1, db, env_string, json, now_ms, query_pairs_allowing, read_json, ApiError, ApiResult,
};
use futures_util::future::{join_all, select, Either};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;
use telltale_core::auth::{bearer_token, secrets_match};
use telltale_core::probes::{check_response, decide, Health, Override, ProbeDef, Sample, Verdict};
use telltale_core::time::{format_rfc3339, parse_api_time, MS_PER_DAY};
use wasm_bindgen::JsValue;
use worker::{
    AbortController, D1Database, Delay, Env, Fetch, Headers, Method, Request, RequestInit,
};

/// Results older than this are pruned by the cron.
const RETENTION_MS: i64 = 7 * MS_PER_DAY;
const ALERT_ATTEMPTS: u32 = 3;
pub const STATES_KEY: &str = "probes:states";

/// One probe run, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub probe: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// Calls the endpoint once, with the probe's timeout.
async fn run_once(env: &Env, def: &ProbeDef) -> ProbeResult {
    let started_at = now_ms();
    let outcome = call(env, def).await;
    let ended_at = now_ms();
    let (ok, status, error) = match outcome {
        Ok((status, body)) => match check_response(def, status, &body) {
            Ok(()) => (true, Some(status), None),
            Err(why) => (false, Some(status), Some(why)),
        },
        Err(why) => (false, None, Some(why)),
    };
    ProbeResult {
        probe: def.key.clone(),
        started_at,
        ended_at,
        ok,
        status,
        latency_ms: ended_at - started_at,
        error,
    }
}

async fn call(env: &Env, def: &ProbeDef) -> Result<(u16, String), String> {
    let headers = Headers::new();
    for (name, value) in &def.headers {
        headers.set(name, value).map_err(|e| e.to_string())?;
    }
    for (name, secret) in &def.secret_headers {
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
    init.with_method(method).with_headers(headers);
    let request = Request::new_with_init(&def.url, &init).map_err(|e| e.to_string())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Delay::from(Duration::from_millis(u64::from(def.timeout_ms)));
    let finished = match select(sending, timeout).await {
        Either::Left((outcome, _)) => Some(outcome),
        Either::Right(_) => None,
    };
    let result = match finished {
        Some(Ok(mut response)) => {
            let status = response.status_code();
            let body = if def.body_contains.is_some() || def.body_json.is_some() {
                response.text().await.unwrap_or_default()
            } else {
                String::new()
            };
            Ok((status, body))
        }
        Some(Err(e)) => Err(format!("request failed: {e}")),
        None => {
            controller.abort();
            Err(format!("timed out after {} ms", def.timeout_ms))
        }
    };
    result
}

fn insert_results(
    db: &D1Database,
    results: &[ProbeResult],
    source: &str,
) -> worker::Result<Vec<worker::D1PreparedStatement>> {
    results
        .iter()
        .map(|r| {
            db.prepare(
                "INSERT INTO probe_results (probe, started_at, ended_at, ok, status, latency_ms, error, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(&[
                r.probe.as_str().into(),
                JsValue::from_f64(r.started_at as f64),
                JsValue::from_f64(r.ended_at as f64),
                JsValue::from_f64(if r.ok { 1.0 } else { 0.0 }),
                r.status.map_or(JsValue::NULL, |s| JsValue::from_f64(f64::from(s))),
                JsValue::from_f64(r.latency_ms as f64),
                r.error.as_deref().map_or(JsValue::NULL, JsValue::from_str),
                source.into(),
            ])
        })
        .collect()
}

#[derive(Deserialize, Clone)]
struct StateRow {
    probe: String,
    state: String,
    since: f64,
    #[serde(rename = "override")]
    mode: String,
    override_by: Option<String>,
    override_reason: Option<String>,
}

fn health_of(text: &str) -> Health {
    match text {
        "up" => Health::Up,
        "down" => Health::Down,
        _ => Health::Unknown,
    }
}

fn override_of(text: &str) -> Override {
    match text {
        "force_up" => Override::ForceUp,
        "force_down" => Override::ForceDown,
        _ => Override::Auto,
    }
}

async fn state_row(db: &D1Database, probe: &str) -> Result<Option<StateRow>, ApiError> {
    let stmt = db
        .prepare("SELECT * FROM probe_states WHERE probe = ?1")
        .bind(&[probe.into()])?;
    d1("reading probe state", stmt.first::<StateRow>(None).await)
}

async fn samples(db: &D1Database, def: &ProbeDef, now: i64) -> Result<Vec<Sample>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        ended_at: f64,
        ok: f64,
    }
    let since = now - def.enable_window_ms.max(def.disable_window_ms);
    let stmt = db
        .prepare("SELECT ended_at, ok FROM probe_results WHERE probe = ?1 AND ended_at > ?2")
        .bind(&[def.key.as_str().into(), JsValue::from_f64(since as f64)])?;
    let rows = d1("reading probe results", stmt.all().await)?.results::<Row>()?;
    Ok(rows
        .into_iter()
        .map(|r| Sample {
            end_ms: r.ended_at as i64,
            ok: r.ok != 0.0,
        })
        .collect())
}

/// Decides one probe now and applies a transition if there is one.
async fn decide_and_apply(
    env: &Env,
    db: &D1Database,
    def: &ProbeDef,
    actor: &str,
) -> Result<Verdict, ApiError> {
    let now = now_ms();
    let row = state_row(db, &def.key).await?;
    let current = row
        .as_ref()
        .map_or(Health::Unknown, |r| health_of(&r.state));
    let mode = row
        .as_ref()
        .map_or(Override::Auto, |r| override_of(&r.mode));
    let verdict = decide(def, current, mode, &samples(db, def, now).await?, now);
    if verdict.changed {
        transition(env, db, def, current, &verdict, actor, now).await?;
    }
    Ok(verdict)
}

async fn transition(
    env: &Env,
    db: &D1Database,
    def: &ProbeDef,
    from: Health,
    verdict: &Verdict,
    actor: &str,
    now: i64,
) -> Result<(), ApiError> {
    let rate = |r: Option<f64>| r.map_or(JsValue::NULL, JsValue::from_f64);
    let statements = vec![
        db.prepare(
            "INSERT INTO probe_states (probe, state, since, updated_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (probe) DO UPDATE SET state = excluded.state, since = excluded.since, updated_at = excluded.updated_at",
        )
        .bind(&[def.key.as_str().into(), verdict.state.as_str().into(), JsValue::from_f64(now as f64)])?,
        db.prepare("INSERT INTO probe_transitions (probe, from_state, to_state, at, reason, disable_rate, enable_rate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .bind(&[
                def.key.as_str().into(),
                from.as_str().into(),
                verdict.state.as_str().into(),
                JsValue::from_f64(now as f64),
                verdict.reason.as_str().into(),
                rate(verdict.disable_rate),
                rate(verdict.enable_rate),
            ])?,
        audit(
            db,
            actor,
            "probe.transition",
            &format!("probes/{}", def.key),
            &json!(from.as_str()),
            &json!({"state": verdict.state.as_str(), "reason": verdict.reason, "disable_rate": verdict.disable_rate, "enable_rate": verdict.enable_rate}),
        )?,
    ];
    d1("recording a probe transition", db.batch(statements).await)?;
    publish_states(env, db).await?;
    worker::console_warn!(
        "probe {} {} -> {} ({})",
        def.key,
        from.as_str(),
        verdict.state.as_str(),
        verdict.reason
    );
    alert(env, def, from, verdict).await;
    Ok(())
}

/// Writes every probe's state to KV (what flag decisions read) and to this isolate.
async fn publish_states(env: &Env, db: &D1Database) -> Result<(), ApiError> {
    let rows = d1(
        "reading probe states",
        db.prepare("SELECT * FROM probe_states").all().await,
    )?
    .results::<StateRow>()?;
    let states: Map<String, Value> = rows
        .into_iter()
        .map(|r| (r.probe, Value::String(r.state)))
        .collect();
    kv(env)?
        .put(STATES_KEY, Value::Object(states.clone()).to_string())?
        .execute()
        .await?;
    flags::set_probe_states(states);
    Ok(())
}

/// Posts `{"text": ...}` to the ALERT_WEBHOOK_URL secret, a few attempts with backoff.
async fn alert(env: &Env, def: &ProbeDef, from: Health, verdict: &Verdict) {
    let Some(url) = env
        .secret("ALERT_WEBHOOK_URL")
        .ok()
        .map(|s| s.to_string())
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    let pct = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{:.0}%", r * 100.0));
    let text = format!(
        "Telltale: probe `{}` is {} (was {}): {}. Pass rate {} over {} s, {} over {} s. Flags that require it are {}.",
        def.key,
        verdict.state.as_str().to_uppercase(),
        from.as_str(),
        verdict.reason,
        pct(verdict.disable_rate),
        def.disable_window_ms / 1000,
        pct(verdict.enable_rate),
        def.enable_window_ms / 1000,
        if verdict.state == Health::Down { "off" } else { "back on" }
    );
    let body = json!({ "text": text }).to_string();
    for attempt in 1..=ALERT_ATTEMPTS {
        let headers = Headers::new();
        let _ = headers.set("Content-Type", "application/json");
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(&body)));
        let sent = match Request::new_with_init(&url, &init) {
            Ok(req) => Fetch::Request(req).send().await.map(|r| r.status_code()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(status) if (200..300).contains(&status) => return,
            Ok(status) => worker::console_error!(
                "alert for probe {} got {status} (attempt {attempt})",
                def.key
            ),
            Err(e) => worker::console_error!(
                "alert for probe {} failed: {e} (attempt {attempt})",
                def.key
            ),
        }
        if attempt < ALERT_ATTEMPTS {
            Delay::from(Duration::from_millis(250 * u64::from(attempt * attempt))).await;
        }
    }
    worker::console_error!(
        "alert for probe {} not delivered after {ALERT_ATTEMPTS} attempts; the decision stands",
        def.key
    );
}

/// The cron's work: every published probe, `60 / interval_s` times spaced through the
/// minute, concurrently; then decisions; then retention.
pub async fn run_cron(env: &Env) -> Result<usize, ApiError> {
    let probes = published_probes(env).await?;
    if probes.is_empty() {
        return Ok(0);
    }
    let db = db(env)?;
    let min_interval = probes.iter().map(|p| p.interval_s).min().unwrap_or(60);
    let rounds = 60 / min_interval.max(1);
    let started = now_ms();
    let mut runs = 0;
    for round in 0..rounds {
        let due: Vec<&ProbeDef> = probes
            .iter()
            .filter(|p| (round * min_interval) % p.interval_s == 0)
            .collect();
        let results = join_all(due.iter().map(|def| run_once(env, def))).await;
        runs += results.len();
        d1(
            "recording probe results",
            db.batch(insert_results(&db, &results, "cron")?).await,
        )?;
        for def in &due {
            if let Err(e) = decide_and_apply(env, &db, def, "probe-cron").await {
                worker::console_error!("deciding probe {}: {}", def.key, e.message);
            }
        }
        if round + 1 < rounds {
            // Keep the schedule, and stop in time for the next trigger.
            let next = started + i64::from((round + 1) * min_interval) * 1000;
            let wait = (next - now_ms()).max(0);
            Delay::from(Duration::from_millis(wait as u64)).await;
        }
    }
    let prune = db
        .prepare("DELETE FROM probe_results WHERE id IN (SELECT id FROM probe_results WHERE ended_at < ?1 LIMIT 5000)")
        .bind(&[JsValue::from_f64((now_ms() - RETENTION_MS) as f64)])?;
    d1("pruning probe results", prune.run().await)?;
    Ok(runs)
}

async fn probe_def(env: &Env, name: &str) -> Result<ProbeDef, ApiError> {
    published_probes(env)
        .await?
        .into_iter()
        .find(|p| p.key == name)
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_probe",
                "name",
                format!("no published probe `{name}`"),
            )
        })
}

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
pub async fn push(mut req: Request, env: &Env, name: &str) -> ApiResult {
    let expected = env
        .secret("PROBE_KEY")
        .ok()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let header = req.headers().get("Authorization")?.unwrap_or_default();
    match bearer_token(&header) {
        Some(token) if secrets_match(token, &expected) => {}
        Some(_) => {
            return Err(ApiError::new(
                401,
                "invalid_probe_key",
                "the probe key is wrong",
            ))
        }
        None => {
            return Err(ApiError::new(
                401,
                "missing_probe_key",
                "send the probe key as `Authorization: Bearer <key>`",
            ))
        }
    }
    let def = probe_def(env, name).await?;
    let body: PushBody = read_json(&mut req).await?;
    let pushed = match body {
        PushBody::Many { results } => results,
        PushBody::One(r) => vec![r],
    };
    if pushed.is_empty() || pushed.len() > 100 {
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
        results.push(ProbeResult {
            probe: def.key.clone(),
            started_at: p.started_at.unwrap_or(ended_at - p.latency_ms.unwrap_or(0)),
            ended_at,
            ok: p.ok,
            status: p.status,
            latency_ms: p.latency_ms.unwrap_or(0),
            error: p.error.map(|e| e.chars().take(500).collect()),
        });
    }
    let db = db(env)?;
    d1(
        "recording pushed results",
        db.batch(insert_results(&db, &results, "push")?).await,
    )?;
    let verdict = decide_and_apply(env, &db, &def, "probe-push").await?;
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

/// `PUT /v1/probes/{name}/override {mode: auto|force_up|force_down, reason}` (admin).
pub async fn set_override(mut req: Request, env: &Env, name: &str) -> ApiResult {
    require_admin(&req, env)?;
    let who = req
        .headers()
        .get("X-Telltale-Actor")?
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "admin".into());
    let def = probe_def(env, name).await?;
    let input: OverrideRequest = read_json(&mut req).await?;
    if input.reason.trim().is_empty() {
        return Err(ApiError::new(400, "required", "say why (reason)").with_field("reason"));
    }
    let mode = match input.mode {
        Override::Auto => "auto",
        Override::ForceUp => "force_up",
        Override::ForceDown => "force_down",
    };
    let db = db(env)?;
    let before = state_row(&db, name).await?;
    let now = JsValue::from_f64(now_ms() as f64);
    d1(
        "recording an override",
        db.batch(vec![
            db.prepare(
                "INSERT INTO probe_states (probe, state, since, override, override_by, override_reason, updated_at) VALUES (?1, 'unknown', ?2, ?3, ?4, ?5, ?2) \
                 ON CONFLICT (probe) DO UPDATE SET override = excluded.override, override_by = excluded.override_by, override_reason = excluded.override_reason, updated_at = excluded.updated_at",
            )
            .bind(&[name.into(), now, mode.into(), who.as_str().into(), input.reason.as_str().into()])?,
            audit(
                &db,
                &who,
                "probe.override",
                &format!("probes/{name}"),
                &json!(before.as_ref().map(|b| &b.mode)),
                &json!({"mode": mode, "reason": input.reason}),
            )?,
        ])
        .await,
    )?;
    let verdict = decide_and_apply(env, &db, &def, &who).await?;
    json(
        200,
        &json!({"probe": name, "override": mode, "state": verdict.state.as_str()}),
    )
}

async fn probe_view(db: &D1Database, def: &ProbeDef) -> Result<Value, ApiError> {
    let now = now_ms();
    let row = state_row(db, &def.key).await?;
    let samples = samples(db, def, now).await?;
    let state = row
        .as_ref()
        .map_or(Health::Unknown, |r| health_of(&r.state));
    let verdict = decide(def, state, Override::Auto, &samples, now);
    #[derive(Deserialize, Serialize)]
    struct Last {
        ended_at: f64,
        ok: f64,
        status: Option<f64>,
        latency_ms: f64,
        error: Option<String>,
    }
    let last = db
        .prepare("SELECT ended_at, ok, status, latency_ms, error FROM probe_results WHERE probe = ?1 ORDER BY ended_at DESC LIMIT 1")
        .bind(&[def.key.as_str().into()])?
        .first::<Last>(None)
        .await
        .map_err(|e| ApiError::storage("reading the last result", e))?;
    Ok(json!({
        "name": def.key,
        "state": state.as_str(),
        "since": row.as_ref().map(|r| format_rfc3339(r.since as i64)),
        "override": row.as_ref().map_or("auto", |r| r.mode.as_str()),
        "override_by": row.as_ref().and_then(|r| r.override_by.clone()),
        "override_reason": row.as_ref().and_then(|r| r.override_reason.clone()),
        "disable_window": {"ms": def.disable_window_ms, "pass_rate": verdict.disable_rate, "samples": verdict.disable_samples},
        "enable_window": {"ms": def.enable_window_ms, "pass_rate": verdict.enable_rate, "samples": verdict.enable_samples},
        "last_result": last.map(|l| json!({"ended_at": format_rfc3339(l.ended_at as i64), "ok": l.ok != 0.0, "status": l.status.map(|s| s as i64), "latency_ms": l.latency_ms as i64, "error": l.error})),
    }))
}

/// `GET /v1/probes` (admin).
pub async fn list(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let db = db(env)?;
    let mut out = Vec::new();
    for def in published_probes(env).await? {
        out.push(probe_view(&db, &def).await?);
    }
    json(200, &json!({ "probes": out }))
}

/// `GET /v1/probes/{name}/history?from&to` (admin): results and transitions, UTC.
pub async fn history(req: Request, env: &Env, name: &str) -> ApiResult {
    require_admin(&req, env)?;
    let pairs = query_pairs_allowing(&req, &["from", "to"])?;
    let def = probe_def(env, name).await?;
    let now = now_ms();
    let time = |key: &str, default: i64| match pairs.iter().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, v)) => parse_api_time(v).ok_or_else(|| {
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
    let db = db(env)?;
    let args = [
        def.key.as_str().into(),
        JsValue::from_f64(from as f64),
        JsValue::from_f64(to as f64),
    ];
    #[derive(Deserialize)]
    struct ResultRow {
        started_at: f64,
        ended_at: f64,
        ok: f64,
        status: Option<f64>,
        latency_ms: f64,
        error: Option<String>,
        source: String,
    }
    #[derive(Deserialize)]
    struct TransitionRow {
        from_state: String,
        to_state: String,
        at: f64,
        reason: String,
        disable_rate: Option<f64>,
        enable_rate: Option<f64>,
    }
    let results = d1(
        "reading results",
        db.prepare("SELECT * FROM probe_results WHERE probe = ?1 AND ended_at >= ?2 AND ended_at < ?3 ORDER BY ended_at LIMIT 1000").bind(&args)?.all().await,
    )?
    .results::<ResultRow>()?;
    let transitions = d1(
        "reading transitions",
        db.prepare("SELECT * FROM probe_transitions WHERE probe = ?1 AND at >= ?2 AND at < ?3 ORDER BY at LIMIT 1000").bind(&args)?.all().await,
    )?
    .results::<TransitionRow>()?;
    json(
        200,
        &json!({
            "probe": name, "from": format_rfc3339(from), "to": format_rfc3339(to),
            "results": results.iter().map(|r| json!({"started_at": format_rfc3339(r.started_at as i64), "ended_at": format_rfc3339(r.ended_at as i64),
                "ok": r.ok != 0.0, "status": r.status.map(|s| s as i64), "latency_ms": r.latency_ms as i64, "error": r.error, "source": r.source})).collect::<Vec<_>>(),
            "transitions": transitions.iter().map(|t| json!({"from": t.from_state, "to": t.to_state, "at": format_rfc3339(t.at as i64),
                "reason": t.reason, "disable_rate": t.disable_rate, "enable_rate": t.enable_rate})).collect::<Vec<_>>(),
        }),
    )
}

/// Whether probes should run in this environment at all (always, unless PROBES=off).
pub fn enabled(env: &Env) -> bool {
    env_string(env, "PROBES").as_deref() != Some("off")
}
