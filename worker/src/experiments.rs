//! Experiment results (#16): `GET /v1/apps/{app}/experiments/{key}/results?at=`.
//!
//! The definition comes from the app's config (`at`: the stage by default, or head or
//! published); the exposed users from `exposures` (the consumer's first-exposure facts);
//! each metric from one bounded query: the flag's exposures in the window, and each exposed
//! user's copies of the metric event after the exposure (`experiment_events`, kept by the
//! consumer for the events experiments measure), both by primary key. The statistics and
//! the report are core's (`telltale_core::experiment`).

use crate::args;
use crate::config::admin_reading_app;
use crate::config::inspect::config_at;
use crate::config::staging::register_metric_events;
use crate::http::{internal, json, now_ms, ApiError, ApiResult, Query};
use crate::store::{experiments_sql as sql, Db};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use telltale_core::config::Kind;
use telltale_core::experiment::{
    check_experiment, read_experiment, report, ExperimentDef, Metric, VariantData,
};
use telltale_core::experiments::Totals;
use telltale_core::time::{format_rfc3339, MS_PER_DAY};
use worker::{Env, Request};

#[derive(Deserialize)]
struct ExposureRow {
    variant: String,
    mixed: i64,
    day: i64,
    users: i64,
}

#[derive(Deserialize)]
struct MetricRow {
    variant: String,
    users: i64,
    // D1 gives NULL for a non-finite total; values are bounded (±1e15) so none should be.
    total: Option<f64>,
    total_sq: Option<f64>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

const NO_WINDOW_MS: i64 = 100 * 366 * MS_PER_DAY;

/// The bounds of one metric's event rows: (events before this time count, the window
/// after each user's first exposure). With a window, events up to the end of exposures
/// plus the window (and not after now); without one, events until the end of exposures
/// (the experiment's end, or now): a finished experiment's results do not change.
fn metric_bounds(metric: &Metric, exposures_until: i64, now: i64) -> (i64, i64) {
    match metric.window_ms() {
        Some(window) => (exposures_until.saturating_add(window).min(now), window),
        // A window no timestamp reaches, and exact as the JS number D1 binds.
        None => (exposures_until, NO_WINDOW_MS),
    }
}

/// Stored rowids walked per copy statement: bounded work for D1 whatever the app's size.
const COPY_CHUNK_ROWS: i64 = 20_000;
/// Chunks a results request runs before answering (400,000 rowids at most).
const COPY_CHUNKS_PER_RESULTS: u32 = 20;
/// Chunks a cron run gives to all registrations together.
pub const COPY_CHUNKS_PER_CRON: u32 = 50;

/// Copies the next chunk of an app's stored events of `name` and moves its cursor, in
/// one transaction.
async fn copy_chunk(db: &Db, app: &str, name: &str) -> Result<(), ApiError> {
    let statements = vec![
        db.stmt(sql("copy_chunk")?, args![app, name, COPY_CHUNK_ROWS])?,
        db.stmt(sql("copy_advance")?, args![app, name, COPY_CHUNK_ROWS])?,
    ];
    db.batch("copying measured events", statements).await?;
    Ok(())
}

#[derive(Deserialize)]
struct Registered {
    name: String,
    pending: i64,
}

/// The cron's share: copies stored events for registrations that still have some, a
/// bounded number of chunks per run. Returns the chunks run.
pub async fn copy_pending(env: &Env) -> Result<u32, ApiError> {
    #[derive(Deserialize)]
    struct Pending {
        app: String,
        name: String,
    }
    let db = Db::open(env)?;
    let pending: Vec<Pending> = db
        .all("reading pending copies", sql("pending_copies")?, args![])
        .await?;
    let mut chunks = 0;
    'all: for p in &pending {
        loop {
            if chunks >= COPY_CHUNKS_PER_CRON {
                break 'all;
            }
            copy_chunk(&db, &p.app, &p.name).await?;
            chunks += 1;
            let left: Vec<Registered> = db
                .all(
                    "reading pending copies",
                    sql("registered_names")?,
                    args![&p.app],
                )
                .await?;
            if !left.iter().any(|r| r.name == p.name && r.pending > 0) {
                break;
            }
        }
    }
    Ok(chunks)
}

/// Registers the experiment's metric events not registered yet (an experiment that
/// arrived by import, or staged before this release), then copies stored events of its
/// names for a bounded number of chunks. Returns the rowids still to walk, and rows read.
async fn prepare_measured(db: &Db, app: &str, def: &ExperimentDef) -> Result<(i64, u64), ApiError> {
    let (mut known, mut read) = db
        .all_counting::<Registered>(
            "reading measured events",
            sql("registered_names")?,
            args![app],
        )
        .await?;
    if def
        .metrics()
        .any(|m| !known.iter().any(|k| k.name == m.event))
    {
        db.batch(
            "registering measured events",
            register_metric_events(db, app, def)?,
        )
        .await?;
        (known, _) = db
            .all_counting::<Registered>(
                "reading measured events",
                sql("registered_names")?,
                args![app],
            )
            .await?;
    }
    let ours = |known: &[Registered]| -> i64 {
        known
            .iter()
            .filter(|k| def.metrics().any(|m| m.event == k.name))
            .map(|k| k.pending.max(0))
            .sum()
    };
    let mut chunks = 0;
    while ours(&known) > 0 && chunks < COPY_CHUNKS_PER_RESULTS {
        for k in known
            .iter()
            .filter(|k| k.pending > 0 && def.metrics().any(|m| m.event == k.name))
        {
            if chunks >= COPY_CHUNKS_PER_RESULTS {
                break;
            }
            copy_chunk(db, app, &k.name).await?;
            chunks += 1;
        }
        let (again, r) = db
            .all_counting::<Registered>(
                "reading measured events",
                sql("registered_names")?,
                args![app],
            )
            .await?;
        known = again;
        read += r;
    }
    Ok((ours(&known), read))
}

/// `GET /v1/apps/{app}/experiments/{key}/results?at=stage|head|published`.
pub async fn results(req: Request, env: &Env, app: &str, key: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    let query = Query::parse(&req, &["at"])?;
    let at = query.get("at").unwrap_or("stage");
    let db = Db::open(env)?;
    let (_, snapshot, bodies) = config_at(&db, app, at).await?;
    let Some(body) = snapshot
        .entries(Kind::Experiments)
        .get(key)
        .and_then(|rev| bodies.get(rev))
    else {
        return Err(ApiError::not_found(
            "unknown_experiment",
            "key",
            format!("no experiment `{key}` in the {at} config of app `{app}`"),
        ));
    };
    // A config that passed staging holds valid entries; a failure here is a stored config
    // that no longer checks, reported as what it is.
    let def = read_experiment(body).map_err(|e| ApiError::from_field(409, e))?;
    let flag = snapshot
        .flags
        .get(&def.flag)
        .and_then(|rev| bodies.get(rev));
    let arms = check_experiment(&def, flag).map_err(|e| ApiError::from_field(409, e))?;

    let now = now_ms();
    // Exposures count until the end (or now); events until the end plus a metric's window.
    let exposures_until = def.end_ms.map_or(now + 1, |end| end.min(now + 1));
    let (pending_rows, mut rows_read) = prepare_measured(&db, app, &def).await?;
    let (exposure_rows, read) = db
        .all_counting::<ExposureRow>(
            "reading exposures",
            sql("exposures")?,
            args![app, &def.flag, def.start_ms, exposures_until],
        )
        .await?;
    rows_read += read;
    let mut data: Vec<VariantData> = arms
        .iter()
        .map(|a| VariantData {
            variant: a.variant.clone(),
            ..VariantData::default()
        })
        .collect();
    let mut mixed = 0u64;
    let mut outside_split = 0u64;
    let mut by_day: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &exposure_rows {
        if row.mixed != 0 {
            mixed += count(row.users);
            continue;
        }
        match data.iter_mut().find(|d| d.variant == row.variant) {
            Some(d) => {
                d.exposed += count(row.users);
                *by_day
                    .entry(row.day)
                    .or_default()
                    .entry(row.variant.clone())
                    .or_default() += count(row.users);
            }
            None => outside_split += count(row.users),
        }
    }
    for (m, metric) in def.metrics().enumerate() {
        let (events_until, window) = metric_bounds(metric, exposures_until, now + 1);
        let prop = metric.prop.as_deref();
        let params = args![
            app,
            &def.flag,
            def.start_ms,
            exposures_until,
            &metric.event,
            events_until,
            window,
            prop,
            metric.kind.as_str()
        ];
        let (rows, read) = db
            .all_counting::<MetricRow>("reading a metric", sql("metric")?, params)
            .await?;
        rows_read += read;
        for d in &mut data {
            let totals = rows
                .iter()
                .find(|r| r.variant == d.variant)
                .map(|r| Totals {
                    users: count(r.users),
                    sum: r.total.unwrap_or(f64::NAN),
                    sum_of_squares: r.total_sq.unwrap_or(f64::NAN),
                })
                .unwrap_or_default();
            if d.metrics.len() != m {
                return Err(internal("metric totals out of order"));
            }
            d.metrics.push(totals);
        }
    }

    let mut out = report(&def, &arms, &data, mixed, now);
    // Cumulative exposed users per variant by UTC day, for the chart over time.
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    out["exposures_by_day"] = by_day
        .into_iter()
        .map(|(day, counts)| {
            for (variant, n) in counts {
                *running.entry(variant).or_default() += n;
            }
            let date: String = format_rfc3339(day).chars().take(10).collect();
            json!({"day": date, "cumulative": running.clone()})
        })
        .collect::<Value>();
    out["excluded"]["outside_split_users"] = json!(outside_split);
    out["at"] = json!(at);
    // Events stored before the experiment's metrics were registered are copied in chunks
    // (this request ran some; the cron runs the rest): until then metrics may miss some.
    out["backfill"] = json!({
        "complete": pending_rows == 0,
        "pending_rows": pending_rows,
    });
    out["cost"] = json!({
        "queries": 1 + def.metrics().count(),
        "rows_read": rows_read,
        "note": "D1 rows read by this request's queries: the flag's exposures plus each exposed user's metric events in their window (not the copying of stored events, while a backfill runs)",
    });
    json(200, &out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_statement_is_in_the_sql_file_once() {
        for name in [
            "exposures",
            "metric",
            "registered_names",
            "register_name",
            "pending_copies",
            "copy_chunk",
            "copy_advance",
        ] {
            assert_eq!(sql(name).unwrap().matches(';').count(), 1, "{name}");
        }
        // D1 refuses a binding its statement does not use: the metric uses all nine.
        let metric = sql("metric").unwrap();
        assert!((1..=9).all(|i| metric.contains(&format!("?{i}"))));
        for kind in ["conversion", "count", "sum"] {
            assert!(metric.contains(&format!("'{kind}'")), "{kind}");
        }
    }
}
