//! Decisions and transitions. A transition writes the state to D1 (with its history and
//! an audit line, in one transaction), then to the published states that flag decisions
//! read, then posts a Slack-compatible alert, retried a few times; an alert failure never
//! blocks or reverts the decision.

use super::{samples, state_row, StateRow};
use crate::args;
use crate::audit::audit;
use crate::http::{now_ms, ApiError};
use crate::published;
use crate::store::Db;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use telltale_core::probes::{decide, Override, ProbeDef, ProbeState, Verdict};
use wasm_bindgen::JsValue;
use worker::{Delay, Env, Fetch, Headers, Method, Request, RequestInit};

const ALERT_ATTEMPTS: u32 = 3;

/// Decides one probe now and applies a transition if there is one.
/// Which probe of which app.
#[derive(Clone, Copy)]
pub(crate) struct ProbeRef<'a> {
    pub app: &'a str,
    pub def: &'a ProbeDef,
}

pub(crate) async fn decide_and_apply(
    env: &Env,
    db: &Db,
    probe: ProbeRef<'_>,
    actor: &str,
) -> Result<Verdict, ApiError> {
    let (app, def) = (probe.app, probe.def);
    let now = now_ms();
    let row = state_row(db, app, &def.key).await?;
    let current = row.as_ref().map_or(ProbeState::Unknown, |r| r.state);
    let mode = row.as_ref().map_or(Override::Auto, |r| r.mode);
    let verdict = decide(def, current, mode, &samples(db, app, def, now).await?, now);
    if verdict.changed {
        transition(env, db, probe, current, &verdict, actor, now).await?;
    }
    Ok(verdict)
}

async fn transition(
    env: &Env,
    db: &Db,
    probe: ProbeRef<'_>,
    from: ProbeState,
    verdict: &Verdict,
    actor: &str,
    now: i64,
) -> Result<(), ApiError> {
    let (app, def) = (probe.app, probe.def);
    let statements = vec![
        db.stmt(
            "INSERT INTO probe_states (app, probe, state, since, updated_at) VALUES (?4, ?1, ?2, ?3, ?3) \
             ON CONFLICT (app, probe) DO UPDATE SET state = excluded.state, since = excluded.since, updated_at = excluded.updated_at",
            args![&def.key, verdict.state.as_str(), now, app],
        )?,
        db.stmt(
            "INSERT INTO probe_transitions (app, probe, from_state, to_state, at, reason, disable_rate, enable_rate) VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![&def.key, from.as_str(), verdict.state.as_str(), now, &verdict.reason, verdict.disable_rate, verdict.enable_rate, app],
        )?,
        audit(
            db,
            app,
            actor,
            "probe.transition",
            &format!("probes/{}", def.key),
            &json!(from.as_str()),
            &json!({"state": verdict.state.as_str(), "reason": verdict.reason, "disable_rate": verdict.disable_rate, "enable_rate": verdict.enable_rate}),
        )?,
    ];
    db.batch("recording a probe transition", statements).await?;
    publish_states(env, db, app).await?;
    worker::console_warn!(
        "probe {app}/{} {} -> {} ({})",
        def.key,
        from.as_str(),
        verdict.state.as_str(),
        verdict.reason
    );
    alert(env, probe, from, verdict).await;
    Ok(())
}

/// Publishes every probe state of an app (what its flag decisions read).
async fn publish_states(env: &Env, db: &Db, app: &str) -> Result<(), ApiError> {
    let rows: Vec<StateRow> = db
        .all(
            "reading probe states",
            "SELECT * FROM probe_states WHERE app = ?1",
            args![app],
        )
        .await?;
    let states: BTreeMap<String, ProbeState> =
        rows.into_iter().map(|r| (r.probe, r.state)).collect();
    published::publish_probe_states(env, app, states).await
}

/// The alert's text: what changed, why, and what it means for flags.
pub(crate) fn alert_text(probe: ProbeRef<'_>, from: ProbeState, verdict: &Verdict) -> String {
    let def = probe.def;
    let pct = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{:.0}%", r * 100.0));
    format!(
        "Telltale: probe `{}` of app `{}` is {} (was {}): {}. Pass rate {} over {} s, {} over {} s. Flags that require it are {}.",
        def.key,
        probe.app,
        verdict.state.as_str().to_uppercase(),
        from.as_str(),
        verdict.reason,
        pct(verdict.disable_rate),
        def.disable_window_ms / 1000,
        pct(verdict.enable_rate),
        def.enable_window_ms / 1000,
        if verdict.state == ProbeState::Down { "off" } else { "back on" }
    )
}

/// Posts `{"text": ...}` to the ALERT_WEBHOOK_URL secret, a few attempts with backoff.
async fn alert(env: &Env, probe: ProbeRef<'_>, from: ProbeState, verdict: &Verdict) {
    let def = probe.def;
    let Some(url) = env
        .secret("ALERT_WEBHOOK_URL")
        .ok()
        .map(|s| s.to_string())
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    let body = json!({ "text": alert_text(probe, from, verdict) }).to_string();
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
