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
    /// With `source=raw`: which part of history D1 still holds (the rest is in the archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_range: Option<RawRange>,
}

/// What a raw recount covers once the archive has moved older events to R2.
#[derive(Serialize)]
struct RawRange {
    /// Raw events from this time on are all in D1 (null: nothing was ever archived, so
    /// all of history is); before it, only late arrivals the archive has not moved yet.
    complete_from: Option<String>,
    /// Events of this app the archive moved out of D1 (the recount leaves them out).
    archived_events: i64,
}

/// Where the app's raw history in D1 starts: the day after the newest archived day.
async fn raw_range(db: &Db, app: &str) -> Result<RawRange, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        last_day: Option<i64>,
        events: Option<i64>,
    }
    let row: Option<Row> = db
        .first(
            "reading what the archive holds",
            "SELECT max(day) AS last_day, sum(events) AS events FROM archive_objects WHERE app = ?1 AND state = 'done'",
            args![app],
        )
        .await?;
    let row = row.unwrap_or(Row {
        last_day: None,
        events: None,
    });
    Ok(RawRange {
        complete_from: row
            .last_day
            .map(|day| format_rfc3339(day + telltale_core::time::MS_PER_DAY)),
        archived_events: row.events.unwrap_or(0),
    })
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
    let raw_range = match q.source {
        Source::Raw => Some(raw_range(&db, &q.app).await?),
        Source::Aggregates => None,
    };
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
            raw_range,
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

/// The parameters of `GET /v1/overview`.
const OVERVIEW_PARAMS: [&str; 4] = ["app", "from", "to", "interval"];
/// How many events the overview lists.
const OVERVIEW_TOP_EVENTS: i64 = 10;

/// `GET /v1/overview?app&from&to&interval` (admin): every event of the app together per
/// bucket, distinct users across events (exact: from the per-bucket user sets), the top
/// events with their series, and the events refused at ingest by code.
pub async fn overview(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &OVERVIEW_PARAMS)?;
    let app = query
        .get("app")
        .ok_or_else(|| ApiError::new(400, "required", "`app` is required").with_field("app"))?
        .to_string();
    // The stats query's rules for the range (bounds, bucket count), with a stand-in event.
    let mut pairs: Vec<(String, String)> = query.pairs().to_vec();
    pairs.push(("event".into(), "*".into()));
    let q = parse_stats_query(&pairs, None, now_ms()).map_err(|e| ApiError::from_field(400, e))?;
    if app_by_id(env, &app).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{app}`"),
        ));
    }
    let db = Db::open(env)?;
    let (from, end, granularity) = (q.from_ms, q.covered_end_ms(), q.interval.as_str());
    #[derive(Deserialize)]
    struct Bucket {
        bucket: i64,
        count: u64,
    }
    #[derive(Deserialize)]
    struct Users {
        bucket: i64,
        users: u64,
    }
    #[derive(Deserialize)]
    struct Total {
        users: u64,
    }
    #[derive(Deserialize)]
    struct EventTotal {
        event: String,
        count: u64,
        users: u64,
    }
    #[derive(Deserialize)]
    struct EventBucket {
        event: String,
        bucket: i64,
        count: u64,
    }
    #[derive(Deserialize)]
    struct Rejected {
        code: String,
        count: u64,
    }
    let counts: Vec<Bucket> = db
        .all(
            "reading the overview",
            "SELECT bucket, SUM(count) AS count FROM agg_counts WHERE app = ?1 AND granularity = ?2 AND bucket >= ?3 AND bucket < ?4 GROUP BY bucket",
            args![&app, granularity, from, end],
        )
        .await?;
    let users: Vec<Users> = db
        .all(
            "reading the overview",
            "SELECT bucket, COUNT(DISTINCT user_key) AS users FROM agg_users WHERE app = ?1 AND granularity = ?2 AND bucket >= ?3 AND bucket < ?4 GROUP BY bucket",
            args![&app, granularity, from, end],
        )
        .await?;
    let total_users = db
        .first::<Total>(
            "reading the overview",
            "SELECT COUNT(DISTINCT user_key) AS users FROM agg_users WHERE app = ?1 AND granularity = ?2 AND bucket >= ?3 AND bucket < ?4",
            args![&app, granularity, from, end],
        )
        .await?
        .map_or(0, |t| t.users);
    let top: Vec<EventTotal> = db
        .all(
            "reading the overview",
            "SELECT c.event AS event, SUM(c.count) AS count, \
               (SELECT COUNT(DISTINCT u.user_key) FROM agg_users u WHERE u.app = ?1 AND u.event = c.event AND u.granularity = ?2 AND u.bucket >= ?3 AND u.bucket < ?4) AS users \
             FROM agg_counts c WHERE c.app = ?1 AND c.granularity = ?2 AND c.bucket >= ?3 AND c.bucket < ?4 \
             GROUP BY c.event ORDER BY count DESC, event ASC LIMIT ?5",
            args![&app, granularity, from, end, OVERVIEW_TOP_EVENTS],
        )
        .await?;
    let names = serde_json::to_string(&top.iter().map(|e| e.event.as_str()).collect::<Vec<_>>())
        .map_err(crate::http::internal)?;
    let per_event: Vec<EventBucket> = db
        .all(
            "reading the overview",
            "SELECT event, bucket, count FROM agg_counts WHERE app = ?1 AND granularity = ?2 AND bucket >= ?3 AND bucket < ?4 \
             AND event IN (SELECT value FROM json_each(?5))",
            args![&app, granularity, from, end, &names],
        )
        .await?;
    let day = telltale_core::time::MS_PER_DAY;
    let rejected: Vec<Rejected> = db
        .all(
            "reading the overview",
            "SELECT code, SUM(count) AS count FROM ingest_rejections WHERE app = ?1 AND day >= ?2 AND day < ?3 GROUP BY code ORDER BY count DESC, code",
            args![&app, from - from.rem_euclid(day), end],
        )
        .await?;
    let rows: Vec<(i64, u64, u64)> = q
        .buckets()
        .map(|t| {
            let count = counts.iter().find(|b| b.bucket == t).map_or(0, |b| b.count);
            let users = users.iter().find(|b| b.bucket == t).map_or(0, |b| b.users);
            (t, count, users)
        })
        .collect();
    let series = fill_series(&q, &rows);
    let events: Vec<serde_json::Value> = top
        .iter()
        .map(|e| {
            let values: Vec<u64> = q
                .buckets()
                .map(|t| {
                    per_event
                        .iter()
                        .find(|b| b.event == e.event && b.bucket == t)
                        .map_or(0, |b| b.count)
                })
                .collect();
            serde_json::json!({"name": e.event, "count": e.count, "users": e.users, "series": values})
        })
        .collect();
    json(
        200,
        &serde_json::json!({
            "app": app, "interval": granularity, "from": format_rfc3339(q.from_ms), "to": format_rfc3339(q.to_ms),
            "series": series, "users": total_users, "events": events,
            "rejected": rejected.iter().map(|r| serde_json::json!({"code": r.code, "count": r.count})).collect::<Vec<_>>(),
        }),
    )
}

/// Most raw events `GET /v1/events/recent` returns.
pub const MAX_RECENT_EVENTS: u32 = 100;

/// `GET /v1/events/recent?app&limit` (admin): the app's latest raw events, newest first
/// (by arrival), at most [`MAX_RECENT_EVENTS`].
pub async fn recent(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["app", "limit"])?;
    let app = query
        .get("app")
        .ok_or_else(|| ApiError::new(400, "required", "`app` is required").with_field("app"))?
        .to_string();
    let limit = query.int_in("limit", 1..=MAX_RECENT_EVENTS, 20)?;
    if app_by_id(env, &app).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{app}`"),
        ));
    }
    #[derive(Deserialize)]
    struct Row {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        name: String,
        ts: i64,
        received_at: i64,
        anonymous_id: String,
        user_id: Option<String>,
        props: String,
        url: Option<String>,
    }
    let rows: Vec<Row> = Db::open(env)?
        .all(
            "reading recent events",
            "SELECT id, type, name, ts, received_at, anonymous_id, user_id, props, url FROM events \
             WHERE app = ?1 ORDER BY rowid DESC LIMIT ?2",
            args![&app, limit],
        )
        .await?;
    let events: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let props: serde_json::Value =
                serde_json::from_str(&r.props).unwrap_or(serde_json::Value::Null);
            serde_json::json!({"id": r.id, "type": r.kind, "name": r.name, "ts": format_rfc3339(r.ts),
                "received_at": format_rfc3339(r.received_at), "anonymous_id": r.anonymous_id, "user_id": r.user_id,
                "props": props, "url": r.url})
        })
        .collect();
    json(200, &serde_json::json!({"app": app, "events": events}))
}
