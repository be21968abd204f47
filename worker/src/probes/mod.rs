//! Probes: cron runs that call each published probe's endpoint, record results in D1,
//! and feed the hysteresis state machine in `telltale-core`.
//! - [`run`]: calling endpoints, and the cron's schedule within a minute;
//! - [`state`]: decisions and transitions (D1, the published states, audit, alert);
//! - [`api`]: pushed results, overrides, and the read API.
//!
//! Probes belong to an app's config, like its flags; a probe is named by (app, key).
//! This module holds what the parts share: results and states as D1 stores them.

pub mod api;
pub mod run;
pub mod state;

use crate::args;
use crate::http::ApiError;
use crate::published;
use crate::store::{Db, Stmt};
use serde::{Deserialize, Serialize};
use telltale_core::probes::{Override, ProbeDef, ProbeState, Sample};
use telltale_core::time::UtcMs;
use worker::Env;

/// One probe run, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub app: String,
    pub probe: String,
    pub started_at: UtcMs,
    pub ended_at: UtcMs,
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

pub(crate) fn insert_results(
    db: &Db,
    results: &[ProbeResult],
    source: &str,
) -> Result<Vec<Stmt>, ApiError> {
    results
        .iter()
        .map(|r| {
            db.stmt(
                "INSERT INTO probe_results (app, probe, started_at, ended_at, ok, status, latency_ms, error, source) VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                args![&r.probe, r.started_at, r.ended_at, r.ok, r.status, r.latency_ms, r.error.as_deref(), source, &r.app],
            )
        })
        .collect()
}

/// A probe's row in `probe_states`.
#[derive(Deserialize, Clone)]
pub(crate) struct StateRow {
    pub probe: String,
    pub state: ProbeState,
    pub since: i64,
    #[serde(rename = "override")]
    pub mode: Override,
    pub override_by: Option<String>,
    pub override_reason: Option<String>,
}

pub(crate) async fn state_row(
    db: &Db,
    app: &str,
    probe: &str,
) -> Result<Option<StateRow>, ApiError> {
    db.first(
        "reading probe state",
        "SELECT * FROM probe_states WHERE app = ?1 AND probe = ?2",
        args![app, probe],
    )
    .await
}

/// The results the decision windows need.
pub(crate) async fn samples(
    db: &Db,
    app: &str,
    def: &ProbeDef,
    now: i64,
) -> Result<Vec<Sample>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        ended_at: i64,
        ok: i64,
    }
    let since = now - def.enable_window_ms.max(def.disable_window_ms);
    let rows: Vec<Row> = db
        .all(
            "reading probe results",
            "SELECT ended_at, ok FROM probe_results WHERE app = ?1 AND probe = ?2 AND ended_at > ?3",
            args![app, &def.key, since],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Sample {
            end_ms: r.ended_at,
            ok: r.ok != 0,
        })
        .collect())
}

/// A published probe of an app by name, or a 404 naming it.
pub(crate) async fn probe_def(env: &Env, app: &str, name: &str) -> Result<ProbeDef, ApiError> {
    published::current(env, app)
        .await?
        .probes
        .iter()
        .find(|p| p.key == name)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_probe",
                "name",
                format!("app `{app}` has no published probe `{name}`"),
            )
        })
}
