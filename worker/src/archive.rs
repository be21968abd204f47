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
use crate::store::{kv, list_keys, sql_section, Arg, Db};
use serde::{Deserialize, Serialize};
use telltale_core::archive::{
    archived_ids_window, build_object, cutoff_ms, date_text, eligible_prefix, plan_objects, sha256,
    sha256_hex, PlannedObject, RawRow,
};
use telltale_core::gzip::gunzip;
use telltale_core::ingest::Limits;
use telltale_core::time::{format_rfc3339, MS_PER_DAY};
use worker::{Bucket, Conditional, Env, Request, Response};

const ARCHIVE_SQL: &str = include_str!("archive.sql");

/// Rowids one scan covers (rows of other apps in the span are skipped by D1, which still
/// reads them). An object holds what one scan found of one app's day.
const SCAN_ROWS: i64 = 10_000;
/// Most bytes of events one scan takes (about their NDJSON size): a span of large events
/// (64 props of 1 KB each are allowed) cannot exhaust the isolate's 128 MB.
const SCAN_BYTES: i64 = 8 * 1024 * 1024;
/// Spans one run looks at, in all and per app: skipping a span costs D1 reads, no CPU here.
const MAX_SPANS_PER_RUN: usize = 1_000;
const MAX_SPANS_PER_APP: usize = 200;
/// Events one run moves at most: the CPU-bound part (building, compressing, hashing), about
/// 0.4 s per 10,000 events in `npm run bench`; the paid plan's default limit is 30 s.
const MAX_EVENTS_PER_RUN: u64 = 300_000;
/// Unfinished objects one run resumes at most.
const MAX_RESUMES_PER_RUN: i64 = 50;
/// How long a run holds the lease: longer than any run (a cron invocation's wall time is
/// at most 15 minutes), so only a dead run's lease expires.
const LEASE_MS: i64 = 15 * 60_000;

/// A statement of archive.sql.
fn sql(name: &str) -> Result<&'static str, ApiError> {
    sql_section(ARCHIVE_SQL, name)
        .ok_or_else(|| internal(format!("archive.sql has no statement `{name}`")))
}

fn bucket(env: &Env) -> Result<Bucket, ApiError> {
    env.bucket("ARCHIVE")
        .map_err(|e| ApiError::storage("opening the ARCHIVE bucket", e))
}

/// R2's condition for a put that only creates: a second write to a key is refused.
fn if_absent() -> Conditional {
    Conditional {
        etag_does_not_match: Some("*".into()),
        ..Conditional::default()
    }
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

/// An injected crash stops the whole run, as a real one would; any other failure stops only
/// the object or the app it happened to, and is reported.
fn is_crash(e: &ApiError) -> bool {
    e.code == "fault_injected"
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
    content_bytes: i64,
    content_sha256: String,
    bytes: Option<i64>,
    sha256: Option<String>,
    state: String,
}

impl ObjectRow {
    fn planned(o: &PlannedObject) -> ObjectRow {
        ObjectRow {
            key: o.key.clone(),
            app: o.app.clone(),
            day: o.day,
            first_rowid: o.first_seq,
            last_rowid: o.last_seq,
            events: o.events as i64,
            content_bytes: o.content_bytes as i64,
            content_sha256: o.content_sha256.clone(),
            bytes: None,
            sha256: None,
            state: "planned".into(),
        }
    }

    /// Arguments ?1..?5 of the statements that name the object's rows.
    fn rows_args(&self) -> [Arg<'_>; 5] {
        [
            Arg::Text(&self.app),
            Arg::Int(self.first_rowid),
            Arg::Int(self.last_rowid),
            Arg::Int(self.day),
            Arg::Int(self.day + MS_PER_DAY),
        ]
    }
}

/// What one run did.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    /// Objects finished (written, verified, their rows deleted), resumed ones included.
    pub objects: u64,
    pub events: u64,
    /// gzip bytes written.
    pub bytes: u64,
    /// Of those objects, how many an earlier run had left unfinished.
    pub resumed: u64,
    pub config_backups: u64,
    /// What failed (each stopped only its object or app; the next run tries again).
    pub errors: Vec<String>,
}

impl RunReport {
    fn add(&mut self, events: i64, bytes: usize) {
        self.objects += 1;
        self.events += events as u64;
        self.bytes += bytes as u64;
    }
}

/// Runs the archive once, holding the lease: unfinished objects first, then each app's rows
/// past its window (the app whose turn is oldest first), then the daily config backups and
/// the pruning of old archived ids. `Err` only when another run holds the lease, storage is
/// away, or an injected crash stopped it.
pub async fn run(env: &Env, now: i64) -> Result<RunReport, ApiError> {
    let db = Db::open(env)?;
    let bucket = bucket(env)?;
    let mut holder = [0u8; 8];
    getrandom::fill(&mut holder).map_err(internal)?;
    let holder: String = holder.iter().map(|b| format!("{b:02x}")).collect();
    let taken = db
        .run(
            "taking the archive lease",
            sql("lease_take")?,
            args![&holder, now + LEASE_MS, now],
        )
        .await?;
    if taken == 0 {
        return Err(ApiError::new(
            409,
            "archive_busy",
            "another archive run is under way; try again when it ends",
        ));
    }
    let outcome = run_holding(env, &db, &bucket, now).await;
    // Given back however the run ended (an injected crash too, so the next run can resume at
    // once); only an isolate that died keeps it, until it expires.
    db.run(
        "giving the archive lease back",
        sql("lease_give_back")?,
        args![&holder],
    )
    .await?;
    outcome
}

async fn run_holding(env: &Env, db: &Db, bucket: &Bucket, now: i64) -> Result<RunReport, ApiError> {
    let mut report = RunReport::default();
    let unfinished: Vec<ObjectRow> = db
        .all(
            "reading unfinished archive objects",
            "SELECT * FROM archive_objects WHERE state != 'done' ORDER BY planned_at, key LIMIT ?1",
            args![MAX_RESUMES_PER_RUN],
        )
        .await?;
    for object in unfinished {
        match finish(env, db, bucket, &object, None, now).await {
            Ok(bytes) => {
                report.resumed += 1;
                report.add(object.events, bytes);
            }
            Err(e) if is_crash(&e) => return Err(e),
            Err(e) => report.errors.push(format!("{}: {}", object.key, e.message)),
        }
    }
    let mut apps = all_apps(env).await?;
    #[derive(Deserialize)]
    struct Turn {
        app: String,
        last_run_at: Option<i64>,
        last_config_day: Option<i64>,
    }
    let turns: Vec<Turn> = db
        .all(
            "reading archive turns",
            "SELECT app, last_run_at, last_config_day FROM archive_state",
            &[],
        )
        .await?;
    let turn = |id: &str| turns.iter().find(|t| t.app == id);
    apps.sort_by_key(|app| (turn(&app.id).and_then(|t| t.last_run_at), app.id.clone()));
    let mut spans = 0;
    for app in &apps {
        if spans >= MAX_SPANS_PER_RUN || report.events >= MAX_EVENTS_PER_RUN {
            break; // the rest go first next run
        }
        let error = match archive_app(env, db, bucket, app, now, &mut spans, &mut report).await {
            Err(e) if is_crash(&e) => return Err(e),
            Err(e) => {
                report.errors.push(format!("{}: {}", app.id, e.message));
                Some(e.message)
            }
            Ok(()) => None,
        };
        db.run(
            "recording the archive run",
            "INSERT INTO archive_state (app, last_run_at, last_error) VALUES (?1, ?2, ?3) \
             ON CONFLICT (app) DO UPDATE SET last_run_at = excluded.last_run_at, last_error = excluded.last_error",
            args![&app.id, now, error.as_deref()],
        )
        .await?;
    }
    for app in apps.iter().filter(|a| a.is_live()) {
        let last_backup = turn(&app.id).and_then(|t| t.last_config_day);
        match backup_config(db, bucket, &app.id, last_backup, now).await {
            Ok(true) => report.config_backups += 1,
            Ok(false) => {}
            Err(e) => report
                .errors
                .push(format!("config backup of {}: {}", app.id, e.message)),
        }
    }
    db.run("pruning archived ids", sql("prune_ids")?, args![now])
        .await?;
    Ok(report)
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

#[derive(Deserialize)]
struct NextRow {
    ts: i64,
}

/// A scanned row and how far the scan's byte count had got with it.
#[derive(Deserialize)]
struct ScannedRow {
    #[serde(flatten)]
    row: RawRow,
    size_so_far: i64,
}

/// Moves one app's rows that are older than its window, span by span, until a row inside
/// the window stops it or the run's budget is spent.
async fn archive_app(
    env: &Env,
    db: &Db,
    bucket: &Bucket,
    app: &App,
    now: i64,
    spans: &mut usize,
    report: &mut RunReport,
) -> Result<(), ApiError> {
    let cutoff = cutoff_ms(now, app.retention_days);
    for _ in 0..MAX_SPANS_PER_APP {
        if *spans >= MAX_SPANS_PER_RUN || report.events >= MAX_EVENTS_PER_RUN {
            break;
        }
        *spans += 1;
        let marks: Marks = db
            .first("reading the archive marks", sql("marks")?, args![&app.id])
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
        // Cheap first look: the app's next row in the span, if it is still inside the window,
        // ends the app's turn without reading the span.
        let next: Option<NextRow> = db
            .first(
                "reading the next event to archive",
                sql("next_row")?,
                args![from, to, &app.id],
            )
            .await?;
        if next.as_ref().is_some_and(|n| n.ts >= cutoff) {
            break;
        }
        let scanned: Vec<ScannedRow> = match next {
            None => Vec::new(),
            Some(_) => {
                db.all(
                    "reading events to archive",
                    sql("scan")?,
                    args![from, to, &app.id, SCAN_BYTES],
                )
                .await?
            }
        };
        // Cut by size: the scan ends at its last row, not at the span's end.
        let cut = scanned.last().is_some_and(|r| r.size_so_far >= SCAN_BYTES);
        let rows: Vec<RawRow> = scanned.into_iter().map(|r| r.row).collect();
        let eligible = eligible_prefix(&rows, cutoff);
        let mark = match rows.get(eligible) {
            Some(young) => young.seq - 1,
            None if cut => rows.last().map_or(to, |r| r.seq),
            None => to,
        };
        if mark <= from {
            break; // the next row of the app is still inside its window
        }
        let objects = plan_objects(&app.id, &rows[..eligible]).map_err(internal)?;
        let mut plan = vec![db.stmt(sql("plan_guard")?, args![&app.id, from])?];
        for o in &objects {
            plan.push(db.stmt(
                sql("plan_object")?,
                args![
                    &o.key,
                    &o.app,
                    o.day,
                    o.first_seq,
                    o.last_seq,
                    o.events as i64,
                    o.content_bytes as i64,
                    &o.content_sha256,
                    now
                ],
            )?);
        }
        plan.push(db.stmt(sql("move_mark")?, args![&app.id, mark])?);
        db.batch("planning archive objects", plan).await?;
        crash_point(env, "after_plan").await?;
        for object in objects {
            let row = ObjectRow::planned(&object);
            let bytes = finish(env, db, bucket, &row, Some(object), now).await?;
            report.add(row.events, bytes);
        }
    }
    Ok(())
}

/// Takes a planned or verified object to done: write (only if the key is free), read back
/// and check, then delete its rows in one transaction. Returns the stored gzip's size.
async fn finish(
    env: &Env,
    db: &Db,
    bucket: &Bucket,
    object: &ObjectRow,
    built: Option<PlannedObject>,
    now: i64,
) -> Result<usize, ApiError> {
    let (bytes, sha256) = if object.state == "planned" {
        let body = match built {
            Some(built) => built.body,
            None => rebuild(db, object).await?,
        };
        // R2 refuses a second write to a key (None): then the object an earlier attempt
        // wrote is the one read back below. R2 checks the upload against the digest.
        let digest = sha256(&body);
        r2(
            "writing an archive object",
            bucket
                .put(&object.key, body)
                .only_if(if_absent())
                .sha256(digest.to_vec())
                .execute()
                .await,
        )?;
        crash_point(env, "after_write").await?;
        let (bytes, sha256) = verify(bucket, object).await?;
        db.run(
            "marking an archive object verified",
            sql("verified")?,
            args![&object.key, now, bytes as i64, &sha256],
        )
        .await?;
        crash_point(env, "after_verify").await?;
        (bytes, sha256)
    } else {
        let bytes = object.bytes.unwrap_or(0) as usize;
        (bytes, object.sha256.clone().unwrap_or_default())
    };
    let (oldest_kept, keep_until) = archived_ids_window(now, Limits::default().max_past_ms);
    let rows = object.rows_args();
    // The rows' arguments, then these numbers.
    let with = |extra: &[i64]| -> Vec<Arg> {
        rows.iter()
            .copied()
            .chain(extra.iter().map(|n| Arg::Int(*n)))
            .collect()
    };
    let mut delete = vec![
        db.stmt(sql("delete_guard")?, &with(&[object.events]))?,
        db.stmt(sql("remember_ids")?, &with(&[keep_until, oldest_kept]))?,
        db.stmt(sql("keep_measured")?, &rows)?,
        db.stmt(
            sql("audit")?,
            args![
                &object.app,
                now,
                &object.key,
                object.events,
                bytes as i64,
                &sha256,
                object.first_rowid,
                object.last_rowid
            ],
        )?,
        db.stmt(sql("delete_rows")?, &rows)?,
        db.stmt(sql("done")?, args![&object.key, now])?,
    ];
    if take_archive_fault(env, "in_delete").await {
        // Fails the transaction at its last statement: everything before it rolls back.
        delete.push(db.stmt("INSERT INTO archive_objects (key) VALUES (NULL)", &[])?);
    }
    db.batch("deleting archived events", delete).await?;
    Ok(bytes)
}

/// The object's bytes rebuilt from its rows (a run that stopped after planning): the rows
/// are still in D1 (nothing deletes them before the object is verified), and they must give
/// the planned content.
async fn rebuild(db: &Db, object: &ObjectRow) -> Result<Vec<u8>, ApiError> {
    let rows: Vec<RawRow> = db
        .all(
            "reading events to archive",
            sql("object_rows")?,
            &object.rows_args(),
        )
        .await?;
    let built = build_object(&object.app, object.day, &rows).map_err(internal)?;
    if built.content_sha256 != object.content_sha256 {
        return Err(ApiError::new(
            500,
            "archive_mismatch",
            format!(
                "the rows of `{}` no longer give the planned content; nothing was deleted",
                object.key
            ),
        ));
    }
    Ok(built.body)
}

/// Reads the object back whole: its content must be the plan's (length and SHA-256 of the
/// NDJSON inside the gzip). Returns the stored size and SHA-256.
async fn verify(bucket: &Bucket, object: &ObjectRow) -> Result<(usize, String), ApiError> {
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
    let content = gunzip(&bytes, object.content_bytes.max(0) as usize).ok();
    let matches = content.as_ref().is_some_and(|c| {
        c.len() as i64 == object.content_bytes && sha256_hex(c) == object.content_sha256
    });
    if !matches {
        return Err(ApiError::new(
            500,
            "archive_mismatch",
            format!(
                "`{}` in R2 does not hold the planned content; its rows stay in D1",
                object.key
            ),
        ));
    }
    Ok((bytes.len(), sha256_hex(&bytes)))
}

/// Writes the app's config backup for today, once a day (`config/<date>/app=<id>.json`);
/// `last_backup` is the day of its newest one, as the run read it.
async fn backup_config(
    db: &Db,
    bucket: &Bucket,
    app: &str,
    last_backup: Option<i64>,
    now: i64,
) -> Result<bool, ApiError> {
    let today = now - now.rem_euclid(MS_PER_DAY);
    if last_backup >= Some(today) {
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
        bucket.put(&key, text).only_if(if_absent()).execute().await,
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
    let given_cursor = query.get("cursor").is_some();
    let page = listing.execute().await.map_err(|e| {
        if given_cursor {
            // R2 refuses a cursor it did not give out; that is the caller's mistake.
            ApiError::new(
                400,
                "invalid_value",
                "cursor is not one this listing gave out",
            )
            .with_field("cursor")
        } else {
            ApiError::storage("listing the archive", e)
        }
    })?;
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
