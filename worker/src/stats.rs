//! `GET /v1/stats` and `GET /v1/catalog`: read the aggregates (or, with `source=raw`, the
//! raw event store). An unknown app, event or property is a 404 that names it.

use crate::apps::app_by_id;
use crate::args;
use crate::auth::require_admin;
use crate::http::{csv, json, now_ms, ApiError, ApiResult, Query};
use crate::store::Db;
use serde::{Deserialize, Serialize};
use telltale_core::stats::{
    fill_series, parse_stats_query, to_csv, Format, Source, StatsQuery, TopValue, PARAMS,
};
use telltale_core::time::format_rfc3339;
use worker::{Env, Request};

/// How a JSON property value is shown as text: the same expression in the aggregation
/// trigger (worker/migrations) and in the raw scan below.
const PROP_TEXT: &str = "CASE p.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' ELSE CAST(p.value AS TEXT) END";

#[derive(Deserialize)]
struct BucketRow {
    bucket: i64,
    count: u64,
    users: u64,
}

#[derive(Deserialize)]
struct TopRow {
    value: String,
    count: u64,
}

#[derive(Serialize)]
struct StatsAnswer {
    app: String,
    event: String,
    interval: &'static str,
    from: String,
    to: String,
    source: &'static str,
    series: Vec<telltale_core::stats::SeriesPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top: Option<Vec<TopValue>>,
}

async fn exists(db: &Db, sql: &str, args: &[crate::store::Arg<'_>]) -> Result<bool, ApiError> {
    let row = db
        .first::<serde_json::Value>("a catalogue lookup", sql, args)
        .await?;
    Ok(row.is_some())
}

/// Refuses a query naming an app, event or property that does not exist.
async fn check_names(env: &Env, db: &Db, q: &StatsQuery) -> Result<(), ApiError> {
    if app_by_id(env, &q.app).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{}`", q.app),
        ));
    }
    if !exists(
        db,
        "SELECT 1 AS found FROM event_names WHERE app = ?1 AND name = ?2",
        args![&q.app, &q.event],
    )
    .await?
    {
        return Err(ApiError::not_found(
            "unknown_event",
            "event",
            format!("app `{}` has no event named `{}`", q.app, q.event),
        ));
    }
    if let Some(prop) = &q.by {
        if !exists(
            db,
            "SELECT 1 AS found FROM event_props WHERE app = ?1 AND event = ?2 AND prop = ?3",
            args![&q.app, &q.event, prop.as_str()],
        )
        .await?
        {
            return Err(ApiError::not_found(
                "unknown_property",
                "by",
                format!("event `{}` has no property named `{prop}`", q.event),
            ));
        }
    }
    Ok(())
}

async fn series_rows(db: &Db, q: &StatsQuery) -> Result<Vec<(i64, u64, u64)>, ApiError> {
    let (from, end) = (q.from_ms, q.covered_end_ms());
    let rows: Vec<BucketRow> = match q.source {
        Source::Aggregates => {
            db.all(
                "reading the series",
                "SELECT bucket, count, users FROM agg_counts \
                 WHERE app = ?1 AND event = ?2 AND granularity = ?3 AND bucket >= ?4 AND bucket < ?5",
                args![&q.app, &q.event, q.interval.as_str(), from, end],
            )
            .await?
        }
        Source::Raw => {
            db.all(
                "reading the series",
                "SELECT ts - ts % ?1 AS bucket, COUNT(*) AS count, COUNT(DISTINCT user_key) AS users FROM events \
                 WHERE app = ?2 AND name = ?3 AND ts >= ?4 AND ts < ?5 GROUP BY bucket",
                args![q.interval.ms(), &q.app, &q.event, from, end],
            )
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| (r.bucket, r.count, r.users))
        .collect())
}

async fn top_values(db: &Db, q: &StatsQuery, prop: &str) -> Result<Vec<TopValue>, ApiError> {
    let sql = match q.source {
        Source::Aggregates => "SELECT value, SUM(count) AS count FROM agg_props \
             WHERE app = ?1 AND event = ?2 AND prop = ?3 AND bucket >= ?4 AND bucket < ?5 \
             GROUP BY value ORDER BY count DESC, value ASC LIMIT ?6"
            .to_string(),
        Source::Raw => format!(
            "SELECT {PROP_TEXT} AS value, COUNT(*) AS count FROM events, json_each(events.props) AS p \
             WHERE events.app = ?1 AND events.name = ?2 AND p.key = ?3 AND events.ts >= ?4 AND events.ts < ?5 \
             GROUP BY value ORDER BY count DESC, value ASC LIMIT ?6"
        ),
    };
    let rows: Vec<TopRow> = db
        .all(
            "reading top values",
            &sql,
            args![
                &q.app,
                &q.event,
                prop,
                q.from_ms,
                q.covered_end_ms(),
                q.limit as i64
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| TopValue {
            value: r.value,
            count: r.count,
        })
        .collect())
}

/// `GET /v1/stats?app&event&from&to&interval&by&limit&format&source`
pub async fn stats(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let accept = req.headers().get("Accept")?;
    let query = Query::parse(&req, &PARAMS)?;
    let q = parse_stats_query(query.pairs(), accept.as_deref(), now_ms())
        .map_err(|e| ApiError::from_field(400, e))?;
    let db = Db::open(env)?;
    check_names(env, &db, &q).await?;
    let series = fill_series(&q, &series_rows(&db, &q).await?);
    let top = match &q.by {
        Some(prop) => Some(top_values(&db, &q, prop).await?),
        None => None,
    };
    if q.format == Format::Csv {
        return csv(to_csv(&q, &series, top.as_deref().unwrap_or_default()));
    }
    json(
        200,
        &StatsAnswer {
            app: q.app.clone(),
            event: q.event.clone(),
            interval: q.interval.as_str(),
            from: format_rfc3339(q.from_ms),
            to: format_rfc3339(q.to_ms),
            source: match q.source {
                Source::Aggregates => "aggregates",
                Source::Raw => "raw",
            },
            series,
            by: q.by.clone(),
            top,
        },
    )
}

#[derive(Deserialize)]
struct CatalogRow {
    name: String,
    props: Option<String>,
}

#[derive(Serialize)]
struct CatalogEvent {
    name: String,
    props: Vec<String>,
}

/// `GET /v1/catalog?app=` lists the app's known events and their properties.
pub async fn catalog(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["app"])?;
    let app = query
        .get("app")
        .map(str::to_string)
        .ok_or_else(|| ApiError::new(400, "required", "`app` is required").with_field("app"))?;
    if app_by_id(env, &app).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{app}`"),
        ));
    }
    let rows: Vec<CatalogRow> = Db::open(env)?
        .all(
            "reading the catalogue",
            "SELECT n.name AS name, group_concat(p.prop, char(31)) AS props FROM event_names n \
             LEFT JOIN event_props p ON p.app = n.app AND p.event = n.name \
             WHERE n.app = ?1 GROUP BY n.name ORDER BY n.name",
            args![&app],
        )
        .await?;
    let events: Vec<CatalogEvent> = rows
        .into_iter()
        .map(|r| {
            let mut props: Vec<String> = r
                .props
                .unwrap_or_default()
                .split('\u{1f}')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            props.sort();
            CatalogEvent {
                name: r.name,
                props,
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Catalog {
        app: String,
        events: Vec<CatalogEvent>,
    }
    json(200, &Catalog { app, events })
}
