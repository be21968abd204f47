//! `GET /v1/stats` and `GET /v1/catalog`: read the aggregates (or, with `source=raw`, the
//! raw event store). An unknown app, event or property is a 404 that names it.

use crate::apps::{app_by_id, require_admin};
use crate::http::{csv, db, json, now_ms, query_pairs, query_pairs_allowing, ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use telltale_core::stats::{
    fill_series, parse_stats_query, to_csv, Format, Source, StatsQuery, TopValue,
};
use telltale_core::time::format_rfc3339;
use wasm_bindgen::JsValue;
use worker::{D1Database, Env, Request};

/// How a JSON property value is shown as text: the same expression in the aggregation
/// trigger (worker/migrations) and in the raw scan below.
const PROP_TEXT: &str = "CASE p.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' ELSE CAST(p.value AS TEXT) END";

#[derive(Deserialize)]
struct BucketRow {
    bucket: f64,
    count: f64,
    users: f64,
}

#[derive(Deserialize)]
struct TopRow {
    value: String,
    count: f64,
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

fn num(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

async fn exists(db: &D1Database, sql: &str, args: &[JsValue]) -> Result<bool, ApiError> {
    let stmt = db.prepare(sql).bind(args)?;
    let row = stmt
        .first::<serde_json::Value>(None)
        .await
        .map_err(|e| ApiError::storage("a catalogue lookup", e))?;
    Ok(row.is_some())
}

/// Refuses a query naming an app, event or property that does not exist.
async fn check_names(env: &Env, db: &D1Database, q: &StatsQuery) -> Result<(), ApiError> {
    if app_by_id(env, &q.app).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{}`", q.app),
        ));
    }
    let (app, event) = (JsValue::from_str(&q.app), JsValue::from_str(&q.event));
    if !exists(
        db,
        "SELECT 1 AS found FROM event_names WHERE app = ?1 AND name = ?2",
        &[app.clone(), event.clone()],
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
        let args = [app, event, JsValue::from_str(prop)];
        if !exists(
            db,
            "SELECT 1 AS found FROM event_props WHERE app = ?1 AND event = ?2 AND prop = ?3",
            &args,
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

async fn series_rows(db: &D1Database, q: &StatsQuery) -> Result<Vec<(i64, u64, u64)>, ApiError> {
    let (app, event) = (JsValue::from_str(&q.app), JsValue::from_str(&q.event));
    let (from, end) = (num(q.from_ms), num(q.covered_end_ms()));
    let stmt = match q.source {
        Source::Aggregates => db
            .prepare(
                "SELECT bucket, count, users FROM agg_counts \
                 WHERE app = ?1 AND event = ?2 AND granularity = ?3 AND bucket >= ?4 AND bucket < ?5",
            )
            .bind(&[app, event, JsValue::from_str(q.interval.as_str()), from, end])?,
        Source::Raw => db
            .prepare(
                "SELECT ts - ts % ?1 AS bucket, COUNT(*) AS count, COUNT(DISTINCT user_key) AS users FROM events \
                 WHERE app = ?2 AND name = ?3 AND ts >= ?4 AND ts < ?5 GROUP BY bucket",
            )
            .bind(&[num(q.interval.ms()), app, event, from, end])?,
    };
    let rows = stmt
        .all()
        .await
        .map_err(|e| ApiError::storage("reading the series", e))?;
    Ok(rows
        .results::<BucketRow>()?
        .into_iter()
        .map(|r| (r.bucket as i64, r.count as u64, r.users as u64))
        .collect())
}

async fn top_values(
    db: &D1Database,
    q: &StatsQuery,
    prop: &str,
) -> Result<Vec<TopValue>, ApiError> {
    let args = [
        JsValue::from_str(&q.app),
        JsValue::from_str(&q.event),
        JsValue::from_str(prop),
        num(q.from_ms),
        num(q.covered_end_ms()),
        num(q.limit as i64),
    ];
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
    let rows = db
        .prepare(sql)
        .bind(&args)?
        .all()
        .await
        .map_err(|e| ApiError::storage("reading top values", e))?;
    Ok(rows
        .results::<TopRow>()?
        .into_iter()
        .map(|r| TopValue {
            value: r.value,
            count: r.count as u64,
        })
        .collect())
}

/// `GET /v1/stats?app&event&from&to&interval&by&limit&format&source`
pub async fn stats(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let accept = req.headers().get("Accept")?;
    let q = parse_stats_query(&query_pairs(&req)?, accept.as_deref(), now_ms())
        .map_err(|e| ApiError::from_field(400, e))?;
    let db = db(env)?;
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
    let pairs = query_pairs_allowing(&req, &["app"])?;
    let app = pairs
        .iter()
        .find(|(k, _)| k == "app")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| ApiError::new(400, "required", "`app` is required").with_field("app"))?;
    if app_by_id(env, &app).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{app}`"),
        ));
    }
    let rows = db(env)?
        .prepare(
            "SELECT n.name AS name, group_concat(p.prop, char(31)) AS props FROM event_names n \
             LEFT JOIN event_props p ON p.app = n.app AND p.event = n.name \
             WHERE n.app = ?1 GROUP BY n.name ORDER BY n.name",
        )
        .bind(&[JsValue::from_str(&app)])?
        .all()
        .await
        .map_err(|e| ApiError::storage("reading the catalogue", e))?;
    let events: Vec<CatalogEvent> = rows
        .results::<CatalogRow>()?
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
