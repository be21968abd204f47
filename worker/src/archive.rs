//! The cold tier: raw events older than their app's retention move from D1 into the R2
//! bucket `ARCHIVE`, exactly once (the protocol is in worker/migrations/0007_archive.sql;
//! objects are built by `telltale_core::archive`). The cron runs it hourly, an operator
//! any time (`POST /v1/admin/archive/run`). It also writes each app's daily config backup
//! (`config/<YYYY-MM-DD>/app=<id>.json`, an import bundle).
//!
//! Endpoints (admin): `GET /v1/admin/archive` (per app: retention, objects, size, last
//! run), `POST /v1/admin/archive/run`, `GET /v1/admin/archive/objects?prefix&cursor`
//! (R2's own listing) and `GET /v1/admin/archive/object?key` (one object's bytes).

use crate::apps::App;
use crate::args;
use crate::auth::require_admin;
use crate::config::transfer::head_bundle;
use crate::dev::take_archive_fault;
use crate::http::{internal, json, now_ms, ApiError, ApiResult, Query};
use crate::store::{kv, list_keys, Db, Stmt};
use serde::{Deserialize, Serialize};
use telltale_core::archive::{
    archived_ids_horizon, build_object, cutoff_ms, date_text, eligible_prefix, plan_objects,
    sha256_hex, PlannedObject, RawRow,
};
use telltale_core::ingest::Limits;
use telltale_core::time::{format_rfc3339, MS_PER_DAY};
use worker::{Bucket, Conditional, Env, Request, Response};

/// Rowids one scan reads (rows of every app in that span are read; D1 bills them). An app's
/// object holds what one scan found of one day, so this also sizes objects: about 10,000
/// events, a few hundred KB of gzip.
const SCAN_ROWS: i64 = 10_000;
/// Scans one run makes at most per app, and in all: a run stays within a cron's CPU limit
/// (about 0.4 s a scan in `npm run bench`; 30 s is the paid plan's default), and every app
/// gets its turn. At 30 scans an hourly run moves up to 300,000 events (7.2 M a day).
const MAX_SCANS_PER_APP: usize = 10;
const MAX_SCANS_PER_RUN: usize = 30;
/// Unfinished objects one run resumes at most.
const MAX_RESUMES_PER_RUN: i64 = 50;
/// The columns of a raw row, as [`RawRow`] reads them.
const ROW_COLUMNS: &str = "rowid AS seq, app, id, type, name, ts, client_ts, received_at, \
    anonymous_id, user_id, user_key, props, url, batch_id";

fn bucket(env: &Env) -> Result<Bucket, ApiError> {
    env.bucket("ARCHIVE")
        .map_err(|e| ApiError::storage("opening the ARCHIVE bucket", e))
}

fn r2<T>(context: &str, result: worker::Result<T>) -> Result<T, ApiError> {
    result.map_err(|e| ApiError::storage(context, e))
}

/// An injected crash (development only): the run stops here, as it would if the isolate died.
async fn crash_point(env: &Env, step: &str) -> Result<(), ApiError> {
    if take_archive_fault(env, step).await {
        return Err(ApiError::new(
            500,
            "fault_injected",
            format!("archive run stopped at `{step}` (fault injection)"),
        ));
    }
    Ok(())
}

/// One planned object as D1 holds it.
#[derive(Debug, Clone, Deserialize)]
struct ObjectRow {
    key: String,
    app: String,
    day: i64,
    first_rowid: i64,
    last_rowid: i64,
    events: i64,
    bytes: i64,
    sha256: String,
    state: String,
}

/// What one run did.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    /// Objects finished (written, verified, their rows deleted), resumed ones included.
    pub objects: u64,
    pub events: u64,
    pub bytes: u64,
    /// Of those objects, how many an earlier run had left unfinished.
    pub resumed: u64,
    pub config_backups: u64,
    /// Apps whose scan stopped at a row still inside their window (nothing more to move now).
    pub apps_scanned: u64,
}

/// Runs the archive: unfinished objects first, then each app's eligible rows, then the daily
/// config backups and the pruning of old archived ids.
pub async fn run(env: &Env, now: i64) -> Result<RunReport, ApiError> {
    let db = Db::open(env)?;
    let bucket = bucket(env)?;
    let mut report = RunReport::default();
    let unfinished: Vec<ObjectRow> = db
        .all(
            "reading unfinished archive objects",
            "SELECT * FROM archive_objects WHERE state != 'done' ORDER BY planned_at, key LIMIT ?1",
            args![MAX_RESUMES_PER_RUN],
        )
        .await?;
    for object in unfinished {
        finish(env, &db, &bucket, &object, None, now).await?;
        report.resumed += 1;
        report.add(&object);
    }
    let mut apps = all_apps(env).await?;
    // The apps whose turn is oldest go first, so a run's scan budget reaches every app in turn.
    #[derive(Deserialize)]
    struct Turn {
        app: String,
        last_run_at: Option<i64>,
    }
    let turns: Vec<Turn> = db
        .all(
            "reading archive turns",
            "SELECT app, last_run_at FROM archive_state",
            &[],
        )
        .await?;
    let last_turn = |id: &str| {
        turns
            .iter()
            .find(|t| t.app == id)
            .and_then(|t| t.last_run_at)
    };
    apps.sort_by_key(|app| (last_turn(&app.id), app.id.clone()));
    let mut scans = 0;
    for app in &apps {
        if scans >= MAX_SCANS_PER_RUN {
            break; // the rest go first next run
        }
        let outcome = archive_app(env, &db, &bucket, app, now, &mut scans, &mut report).await;
        let error = outcome.as_ref().err().map(|e| e.message.clone());
        db.run(
            "recording the archive run",
            "INSERT INTO archive_state (app, last_run_at, last_error) VALUES (?1, ?2, ?3) \
             ON CONFLICT (app) DO UPDATE SET last_run_at = excluded.last_run_at, last_error = excluded.last_error",
            args![&app.id, now, error.as_deref()],
        )
        .await?;
        outcome?;
    }
    for app in apps.iter().filter(|a| a.is_live()) {
        if backup_config(&db, &bucket, &app.id, now).await? {
            report.config_backups += 1;
        }
    }
    let horizon = archived_ids_horizon(now, Limits::default().max_past_ms);
    db.run(
        "pruning archived ids",
        "DELETE FROM archived_ids WHERE ts < ?1",
        args![horizon],
    )
    .await?;
    Ok(report)
}

impl RunReport {
    fn add(&mut self, object: &ObjectRow) {
        self.objects += 1;
        self.events += object.events as u64;
        self.bytes += object.bytes as u64;
    }
}

/// Every registered app, deleted ones too (their events are kept, so they age out as well).
async fn all_apps(env: &Env) -> Result<Vec<App>, ApiError> {
    let store = kv(env)?;
    let mut apps = Vec::new();
    for name in list_keys(&store, "app:").await? {
        if let Some(app) = store.get(&name).json::<App>().await? {
            apps.push(app);
        }
    }
    Ok(apps)
}

#[derive(Deserialize)]
struct Marks {
    scanned_to: Option<i64>,
    /// Rows above this are not folded into the aggregates yet.
    fold_from: Option<i64>,
    newest: Option<i64>,
}

/// Moves one app's rows that are older than its window, scan by scan, until a row inside
/// the window stops the scan or the run's scans are spent.
async fn archive_app(
    env: &Env,
    db: &Db,
    bucket: &Bucket,
    app: &App,
    now: i64,
    scans: &mut usize,
    report: &mut RunReport,
) -> Result<(), ApiError> {
    let cutoff = cutoff_ms(now, app.retention_days);
    for _ in 0..MAX_SCANS_PER_APP {
        if *scans >= MAX_SCANS_PER_RUN {
            break;
        }
        *scans += 1;
        let marks: Marks = db
            .first(
                "reading the archive marks",
                "SELECT (SELECT scanned_to FROM archive_state WHERE app = ?1) AS scanned_to, \
                 (SELECT fold_from FROM pipeline_totals WHERE id = 1) AS fold_from, \
                 (SELECT max(rowid) FROM events) AS newest",
                args![&app.id],
            )
            .await?
            .ok_or_else(|| internal("no archive marks"))?;
        let from = marks.scanned_to.unwrap_or(0);
        // Never the newest row: SQLite numbers a new row one above the largest, so deleting
        // it would let a rowid come back and break "rowids only grow". Never a row the
        // consumer has not folded yet either.
        let limit = marks
            .fold_from
            .unwrap_or(0)
            .min(marks.newest.unwrap_or(0) - 1);
        if from >= limit {
            break;
        }
        let to = (from + SCAN_ROWS).min(limit);
        let rows: Vec<RawRow> = db
            .all(
                "reading events to archive",
                &format!(
                    "SELECT {ROW_COLUMNS} FROM events WHERE rowid > ?1 AND rowid <= ?2 AND app = ?3 ORDER BY rowid"
                ),
                args![from, to, &app.id],
            )
            .await?;
        let eligible = eligible_prefix(&rows, cutoff);
        let mark = rows.get(eligible).map_or(to, |young| young.seq - 1);
        if mark == from {
            break; // the next row of the app is still inside its window
        }
        let objects = plan_objects(&app.id, &rows[..eligible]).map_err(internal)?;
        let mut plan: Vec<Stmt> = objects
            .iter()
            .map(|o| {
                db.stmt(
                    "INSERT INTO archive_objects (key, app, day, first_rowid, last_rowid, events, bytes, sha256, state, planned_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'planned', ?9)",
                    args![&o.key, &o.app, o.day, o.first_seq, o.last_seq, o.events as i64, o.body.len() as i64, &o.sha256, now],
                )
            })
            .collect::<Result<_, _>>()?;
        // The mark moves only from where this run read it: a run overlapping this one
        // plans the same keys, and the primary key refuses the second plan whole.
        plan.push(db.stmt(
            "INSERT INTO archive_state (app, scanned_to) VALUES (?1, ?2) \
             ON CONFLICT (app) DO UPDATE SET scanned_to = excluded.scanned_to WHERE scanned_to = ?3",
            args![&app.id, mark, from],
        )?);
        db.batch("planning archive objects", plan).await?;
        report.apps_scanned += 1;
        crash_point(env, "after_plan").await?;
        for object in objects {
            let row = ObjectRow {
                key: object.key.clone(),
                app: object.app.clone(),
                day: object.day,
                first_rowid: object.first_seq,
                last_rowid: object.last_seq,
                events: object.events as i64,
                bytes: object.body.len() as i64,
                sha256: object.sha256.clone(),
                state: "planned".into(),
            };
            finish(env, db, bucket, &row, Some(object), now).await?;
            report.add(&row);
        }
    }
    Ok(())
}

/// Takes a planned or verified object to done: write (only if the key is free), read back
/// and compare, then delete its rows in one transaction.
async fn finish(
    env: &Env,
    db: &Db,
    bucket: &Bucket,
    object: &ObjectRow,
    built: Option<PlannedObject>,
    now: i64,
) -> Result<(), ApiError> {
    if object.state == "planned" {
        let body = match built {
            Some(built) => built.body,
            None => rebuild(db, object).await?,
        };
        // R2 checks the upload against the digest, so a body damaged on the way is refused.
        let digest = hex_bytes(&object.sha256)?;
        // R2 refuses a second write to a key (None): then the object an earlier attempt
        // wrote is the one read back below.
        r2(
            "writing an archive object",
            bucket
                .put(&object.key, body)
                .only_if(Conditional {
                    etag_does_not_match: Some("*".into()),
                    ..Conditional::default()
                })
                .sha256(digest)
                .execute()
                .await,
        )?;
        crash_point(env, "after_write").await?;
        verify(bucket, object).await?;
        db.run(
            "marking an archive object verified",
            "UPDATE archive_objects SET state = 'verified', verified_at = ?2 WHERE key = ?1 AND state = 'planned'",
            args![&object.key, now],
        )
        .await?;
        crash_point(env, "after_verify").await?;
    }
    let day_end = object.day + MS_PER_DAY;
    let horizon = archived_ids_horizon(now, Limits::default().max_past_ms);
    let set = "app = ?1 AND rowid BETWEEN ?2 AND ?3 AND ts >= ?4 AND ts < ?5";
    let set_args = args![
        &object.app,
        object.first_rowid,
        object.last_rowid,
        object.day,
        day_end
    ];
    let mut delete = vec![
        db.stmt(
            &format!("INSERT INTO archived_ids (app, id, ts) SELECT app, id, ts FROM events WHERE {set} AND ts >= ?6 ON CONFLICT DO NOTHING"),
            args![&object.app, object.first_rowid, object.last_rowid, object.day, day_end, horizon],
        )?,
        // The audited path: one line per object, written once (while it is still verified).
        db.stmt(
            "INSERT INTO audit (app, at, actor, action, target, before, after) \
             SELECT ?1, ?2, 'archive', 'events.archive', ?3, NULL, \
                    json_object('events', ?4, 'bytes', ?5, 'sha256', ?6, 'first_rowid', ?7, 'last_rowid', ?8) \
             WHERE EXISTS (SELECT 1 FROM archive_objects WHERE key = ?3 AND state = 'verified')",
            args![&object.app, now, &object.key, object.events, object.bytes, &object.sha256, object.first_rowid, object.last_rowid],
        )?,
        db.stmt(&format!("DELETE FROM events WHERE {set}"), set_args)?,
        db.stmt(
            "UPDATE archive_objects SET state = 'done', done_at = ?2 WHERE key = ?1 AND state = 'verified'",
            args![&object.key, now],
        )?,
    ];
    if take_archive_fault(env, "in_delete").await {
        // Fails the transaction at its last statement: everything before it rolls back.
        delete.push(db.stmt("INSERT INTO archive_objects (key) VALUES (NULL)", &[])?);
    }
    db.batch("deleting archived events", delete).await?;
    Ok(())
}

/// A SHA-256 in hex as its 32 bytes.
fn hex_bytes(hex: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || internal(format!("`{hex}` is not a SHA-256 in hex"));
    if hex.len() != 64 {
        return Err(bad());
    }
    (0..32)
        .map(|i| {
            hex.get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// The object's bytes rebuilt from its rows (a run that stopped after planning): the rows
/// are still in D1 (nothing deletes them before the object is verified), and the same rows
/// give the same bytes.
async fn rebuild(db: &Db, object: &ObjectRow) -> Result<Vec<u8>, ApiError> {
    let rows: Vec<RawRow> = db
        .all(
            "reading events to archive",
            &format!(
                "SELECT {ROW_COLUMNS} FROM events WHERE app = ?1 AND rowid BETWEEN ?2 AND ?3 AND ts >= ?4 AND ts < ?5 ORDER BY rowid"
            ),
            args![&object.app, object.first_rowid, object.last_rowid, object.day, object.day + MS_PER_DAY],
        )
        .await?;
    let built = build_object(&object.app, object.day, &rows).map_err(internal)?;
    if built.sha256 != object.sha256 {
        return Err(ApiError::new(
            500,
            "archive_mismatch",
            format!(
                "the rows of `{}` no longer give the planned object; nothing was deleted",
                object.key
            ),
        ));
    }
    Ok(built.body)
}

/// Reads the object back: its size and SHA-256 must be the plan's.
async fn verify(bucket: &Bucket, object: &ObjectRow) -> Result<(), ApiError> {
    let stored = r2(
        "reading an archive object back",
        bucket.get(&object.key).execute().await,
    )?
    .ok_or_else(|| {
        internal(format!(
            "archive object `{}` is missing after its write",
            object.key
        ))
    })?;
    let body = stored
        .body()
        .ok_or_else(|| internal("archive object without a body"))?;
    let bytes = r2("reading an archive object back", body.bytes().await)?;
    if bytes.len() as i64 != object.bytes || sha256_hex(&bytes) != object.sha256 {
        return Err(ApiError::new(
            500,
            "archive_mismatch",
            format!(
                "`{}` in R2 is not the planned object ({} bytes); its rows stay in D1",
                object.key,
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Writes the app's config backup for today, once a day (`config/<date>/app=<id>.json`).
async fn backup_config(db: &Db, bucket: &Bucket, app: &str, now: i64) -> Result<bool, ApiError> {
    let today = now - now.rem_euclid(MS_PER_DAY);
    #[derive(Deserialize)]
    struct Last {
        last_config_day: Option<i64>,
    }
    let last: Option<Last> = db
        .first(
            "reading the config backup mark",
            "SELECT last_config_day FROM archive_state WHERE app = ?1",
            args![app],
        )
        .await?;
    if last.and_then(|l| l.last_config_day) >= Some(today) {
        return Ok(false);
    }
    let Some(bundle) = head_bundle(db, app).await? else {
        return Ok(false);
    };
    let text = serde_json::to_string_pretty(&bundle).map_err(internal)?;
    let key = config_key(app, today);
    // A backup of this day already there (a run that stopped before its mark) stays.
    r2(
        "writing a config backup",
        bucket
            .put(&key, text)
            .only_if(Conditional {
                etag_does_not_match: Some("*".into()),
                ..Conditional::default()
            })
            .execute()
            .await,
    )?;
    db.run(
        "recording the config backup",
        "INSERT INTO archive_state (app, last_config_day) VALUES (?1, ?2) \
         ON CONFLICT (app) DO UPDATE SET last_config_day = excluded.last_config_day",
        args![app, today],
    )
    .await?;
    Ok(true)
}

/// Where an app's config backup of a day lives.
pub fn config_key(app: &str, day: i64) -> String {
    format!("config/{}/app={app}.json", date_text(day))
}

/// `POST /v1/admin/archive/run` (admin): one archive run now, as the cron makes it.
pub async fn run_now(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    json(200, &run(env, now_ms()).await?)
}

#[derive(Deserialize, Serialize)]
struct AppArchive {
    app: String,
    objects: i64,
    events: i64,
    bytes: i64,
    /// Objects planned or verified but not yet done (a run was cut short).
    unfinished: i64,
    first_day: Option<i64>,
    last_day: Option<i64>,
    last_run_at: Option<i64>,
    last_error: Option<String>,
    last_config_day: Option<i64>,
}

/// `GET /v1/admin/archive?app=` (admin): per app, its retention and what the archive holds.
pub async fn status(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["app"])?;
    let mut apps = all_apps(env).await?;
    if let Some(only) = query.get("app") {
        apps.retain(|a| a.id == only);
        if apps.is_empty() {
            return Err(ApiError::not_found(
                "unknown_app",
                "app",
                format!("no app `{only}`"),
            ));
        }
    }
    let db = Db::open(env)?;
    let rows: Vec<AppArchive> = db
        .all(
            "reading the archive status",
            "WITH objects AS (SELECT app, sum(state = 'done') AS objects, \
                    sum(CASE WHEN state = 'done' THEN events ELSE 0 END) AS events, \
                    sum(CASE WHEN state = 'done' THEN bytes ELSE 0 END) AS bytes, \
                    sum(state != 'done') AS unfinished, min(day) AS first_day, max(day) AS last_day \
                  FROM archive_objects GROUP BY app) \
             SELECT s.app AS app, coalesce(o.objects, 0) AS objects, coalesce(o.events, 0) AS events, \
                    coalesce(o.bytes, 0) AS bytes, coalesce(o.unfinished, 0) AS unfinished, \
                    o.first_day AS first_day, o.last_day AS last_day, s.last_run_at AS last_run_at, \
                    s.last_error AS last_error, s.last_config_day AS last_config_day \
             FROM archive_state AS s LEFT JOIN objects AS o ON o.app = s.app",
            &[],
        )
        .await?;
    let time = |ms: Option<i64>| ms.map(format_rfc3339);
    let date = |ms: Option<i64>| ms.map(date_text);
    let listing: Vec<serde_json::Value> = apps
        .iter()
        .map(|app| {
            let row = rows.iter().find(|r| r.app == app.id);
            serde_json::json!({
                "app": app.id,
                "deleted": !app.is_live(),
                "retention_days": app.retention_days,
                "objects": row.map_or(0, |r| r.objects),
                "events": row.map_or(0, |r| r.events),
                "bytes": row.map_or(0, |r| r.bytes),
                "unfinished": row.map_or(0, |r| r.unfinished),
                "first_day": date(row.and_then(|r| r.first_day)),
                "last_day": date(row.and_then(|r| r.last_day)),
                "last_run_at": time(row.and_then(|r| r.last_run_at)),
                "last_error": row.and_then(|r| r.last_error.clone()),
                "last_config_backup": date(row.and_then(|r| r.last_config_day)),
            })
        })
        .collect();
    json(200, &serde_json::json!({"apps": listing}))
}

/// Most keys one listing page returns.
const LIST_LIMIT: u32 = 1_000;

/// A key an operator may read: an event object or a config backup, nothing else.
fn check_archive_key(key: &str, field: &str) -> Result<(), ApiError> {
    let ok = (key.starts_with("events/") || key.starts_with("config/"))
        && key.len() <= 512
        && !key.split('/').any(|part| part == ".." || part == ".")
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "invalid_value",
            "an archive key starts with events/ or config/ and is printable ASCII without . or .. parts",
        )
        .with_field(field))
    }
}

/// `GET /v1/admin/archive/objects?prefix&cursor` (admin): R2's own listing, a page of up to
/// 1,000 keys with their sizes, and the cursor of the next page.
pub async fn list_objects(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["prefix", "cursor"])?;
    let prefix = query.get("prefix").unwrap_or("events/");
    check_archive_key(prefix, "prefix")?;
    let archive = bucket(env)?;
    let mut listing = archive.list().prefix(prefix).limit(LIST_LIMIT);
    if let Some(cursor) = query.get("cursor") {
        listing = listing.cursor(cursor);
    }
    let page = r2("listing the archive", listing.execute().await)?;
    let objects: Vec<serde_json::Value> = page
        .objects()
        .iter()
        .map(|o| {
            let uploaded = format_rfc3339(o.uploaded().as_millis() as i64);
            serde_json::json!({"key": o.key(), "size": o.size(), "uploaded": uploaded})
        })
        .collect();
    let cursor = if page.truncated() {
        page.cursor()
    } else {
        None
    };
    json(
        200,
        &serde_json::json!({"objects": objects, "cursor": cursor}),
    )
}

/// `GET /v1/admin/archive/object?key` (admin): one object's bytes, as stored.
pub async fn get_object(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let query = Query::parse(&req, &["key"])?;
    let key = query
        .get("key")
        .ok_or_else(|| ApiError::new(400, "required", "`key` is required").with_field("key"))?;
    check_archive_key(key, "key")?;
    let object = r2(
        "reading an archive object",
        bucket(env)?.get(key).execute().await,
    )?
    .ok_or_else(|| {
        ApiError::not_found(
            "unknown_object",
            "key",
            format!("no archive object `{key}`"),
        )
    })?;
    let body = object
        .body()
        .ok_or_else(|| internal("archive object without a body"))?;
    let bytes = r2("reading an archive object", body.bytes().await)?;
    let mut response = Response::from_bytes(bytes)?;
    let kind = if key.ends_with(".gz") {
        "application/gzip"
    } else {
        "application/json"
    };
    response.headers_mut().set("Content-Type", kind)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_event_objects_and_config_backups_can_be_read() {
        assert!(check_archive_key(
            "events/app=a/date=2026-01-01/000000000001-000000000002.ndjson.gz",
            "key"
        )
        .is_ok());
        assert!(check_archive_key("config/2026-01-01/app=a.json", "key").is_ok());
        for bad in [
            "",
            "other/x",
            "events/../secrets",
            "events/a b",
            "config/./x",
            "events/\u{e9}",
        ] {
            assert!(check_archive_key(bad, "key").is_err(), "{bad:?}");
        }
        assert_eq!(
            config_key("shop", 1_767_225_600_000),
            "config/2026-01-01/app=shop.json"
        );
    }
}
