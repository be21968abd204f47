//! The write path after ingest: Queue -> D1, with a KV spool as the last resort.
//!
//! Nothing that got a 202 is lost:
//! 1. ingest sends accepted events to the `EVENTS` queue; if that send fails, it writes
//!    them to the KV spool instead (and answers 503 only if the spool fails too);
//! 2. the consumer writes each queue batch to D1 in one transaction; on failure each
//!    message is tried alone, and what still fails is retried, then dead-lettered;
//! 3. the dead-letter consumer tries D1 once more, then spools to KV;
//! 4. the cron trigger drains the spool into D1 once D1 is back.
//!
//! One transaction (`store_events.sql`) inserts the raw events with one statement per
//! 90 KB of rows, then folds the aggregates once for the rows it really inserted: one
//! upsert per (app, event, granularity, bucket) and per property value. A redelivered
//! message inserts nothing (`ON CONFLICT DO NOTHING` on the event id) and so folds
//! nothing: retries never double count, and the aggregates always equal the raw store.

use crate::args;
use crate::dev::{fault_active, Fault};
use crate::http::{internal, ApiError};
use crate::store::{kv, list_keys, Db, Stmt};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::BTreeMap;
use telltale_core::ingest::Event;
use telltale_core::time::MS_PER_DAY;
use worker::{Env, MessageBatch, MessageExt};

/// Queue messages stay well under the 128 KB message limit.
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024;
/// Rows of one insert statement, as JSON. D1 limits a statement's SQL to 100 KB and each
/// bound value to 2 MB; chunks stay under the former, and one event bigger than a chunk
/// (ingest allows up to about 400 KB) goes alone, well under the latter.
const MAX_ROWS_JSON_BYTES: usize = 90 * 1024;
/// Row JSON per transaction: a full queue batch (50 messages) fits in one.
const MAX_TRANSACTION_BYTES: usize = 6 * 1024 * 1024;
const SPOOL_PREFIX: &str = "spool:";
/// The statements of one consumer transaction; the bench runs the same text.
const STORE_EVENTS_SQL: &str = include_str!("store_events.sql");

thread_local! {
    /// Deliveries this isolate sent back for retry since its last commit; the next
    /// committed transaction adds them to `pipeline_totals.retries`.
    static RETRIES_NOT_YET_COUNTED: Cell<u64> = const { Cell::new(0) };
}

/// One unit of work on the queue and in the spool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventBatchMessage {
    pub batch_id: String,
    /// Which part of the batch this is, when a batch was split to fit the queue.
    pub part: usize,
    pub app: String,
    pub received_at: i64,
    /// Events the client reported dropping, carried by part 0 only.
    pub dropped: u64,
    /// Events refused at ingest, by error code, carried by part 0 only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected: BTreeMap<String, u64>,
    pub events: Vec<Event>,
    /// Set when the message reached the dead-letter queue.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dead_lettered: bool,
    /// Set when the message was written to the KV spool.
    #[serde(default, skip_serializing_if = "is_false")]
    pub spooled: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl EventBatchMessage {
    fn spool_key(&self) -> String {
        format!("{SPOOL_PREFIX}{}:{}:{}", self.app, self.batch_id, self.part)
    }
}

fn to_json(message: &EventBatchMessage) -> Result<String, ApiError> {
    serde_json::to_string(message).map_err(internal)
}

/// Hands accepted messages to the queue, spooling whatever the queue refuses.
/// Returns how many parts had to be spooled.
pub async fn enqueue(env: &Env, messages: Vec<EventBatchMessage>) -> Result<usize, ApiError> {
    let queue = if fault_active(env, Fault::Queue).await {
        Err(worker::Error::RustError("injected queue fault".into()))
    } else {
        env.queue("EVENTS")
    };
    let mut spooled = 0;
    for message in messages {
        let body = to_json(&message)?;
        let sent = match &queue {
            Ok(q) => q.send(body.clone()).await,
            Err(e) => Err(worker::Error::RustError(e.to_string())),
        };
        if let Err(e) = sent {
            worker::console_warn!(
                "queue send failed for batch {} part {}: {e}; spooling",
                message.batch_id,
                message.part
            );
            spool(env, &message).await?;
            spooled += 1;
        }
    }
    Ok(spooled)
}

/// Writes a message to the KV spool. The cron trigger drains it.
pub async fn spool(env: &Env, message: &EventBatchMessage) -> Result<(), ApiError> {
    let mut spooled = message.clone();
    spooled.spooled = true;
    kv(env)?
        .put(&spooled.spool_key(), to_json(&spooled)?)?
        .execute()
        .await?;
    Ok(())
}

/// One section of `store_events.sql`: the text from its `-- name:` line to the next.
fn sql(name: &str) -> Result<&'static str, ApiError> {
    crate::store::sql_section(STORE_EVENTS_SQL, name)
        .ok_or_else(|| internal(format!("store_events.sql has no statement `{name}`")))
}

/// The sections after `insert_events`, in file order: the fold, run once per transaction.
fn fold_sections(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.strip_prefix("-- name: "))
        .skip_while(|name| *name != "insert_events")
        .skip(1)
        .collect()
}

/// One event as a JSON array in the column order of `insert_events` (props as an object,
/// so it is not escaped a second time).
fn event_row(message: &EventBatchMessage, e: &Event) -> Result<String, ApiError> {
    serde_json::to_string(&(
        &message.app,
        &e.id,
        &e.kind,
        &e.name,
        e.ts,
        e.client_ts,
        message.received_at,
        &e.anonymous_id,
        e.user_id.as_deref(),
        e.user_key(),
        &e.props,
        e.url.as_deref(),
        &message.batch_id,
    ))
    .map_err(internal)
}

/// Joins rows into JSON arrays of at most `max_bytes` each (a longer row goes alone).
fn chunk_rows<'a>(rows: impl IntoIterator<Item = &'a str>, max_bytes: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for row in rows {
        if !current.is_empty() && current.len() + row.len() + 2 > max_bytes {
            current.push(']');
            chunks.push(std::mem::take(&mut current));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(row);
    }
    if !current.is_empty() {
        current.push(']');
        chunks.push(current);
    }
    chunks
}

/// A message made ready for a transaction: its event rows, serialized once.
struct Prepared<'a> {
    message: &'a EventBatchMessage,
    rows: Vec<String>,
}

impl Prepared<'_> {
    fn bytes(&self) -> usize {
        self.rows.iter().map(|r| r.len() + 1).sum::<usize>() + 1
    }
}

fn prepare(message: &EventBatchMessage) -> Result<Prepared<'_>, ApiError> {
    let rows = message
        .events
        .iter()
        .map(|e| event_row(message, e))
        .collect::<Result<_, _>>()?;
    Ok(Prepared { message, rows })
}

/// The bookkeeping rows of one message: rejections, client drops and the long way it came.
fn message_statements(
    db: &Db,
    message: &EventBatchMessage,
    now: i64,
) -> Result<Vec<Stmt>, ApiError> {
    let mut stmts = Vec::new();
    if !message.rejected.is_empty() {
        let codes = serde_json::to_string(&message.rejected).map_err(internal)?;
        let day = message.received_at - message.received_at.rem_euclid(MS_PER_DAY);
        stmts.push(db.stmt(
            "INSERT INTO ingest_rejection_batches (app, batch_id, day, codes) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            args![&message.app, &message.batch_id, day, &codes],
        )?);
    }
    if message.dropped > 0 {
        stmts.push(db.stmt(
            "INSERT INTO client_drops (app, batch_id, dropped, received_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            args![&message.app, &message.batch_id, message.dropped as i64, message.received_at],
        )?);
    }
    for (flag, kind) in [
        (message.dead_lettered, "dead_letter"),
        (message.spooled, "spool"),
    ] {
        if flag {
            stmts.push(db.stmt(
                "INSERT INTO pipeline_incidents (app, batch_id, part, kind, events, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                args![
                    &message.app,
                    &message.batch_id,
                    message.part as i64,
                    kind,
                    message.events.len() as i64,
                    now
                ],
            )?);
        }
    }
    Ok(stmts)
}

/// Every statement of one transaction over `group`, in `store_events.sql` order.
fn transaction(
    db: &Db,
    group: &[&Prepared],
    retries: u64,
    now: i64,
) -> Result<Vec<Stmt>, ApiError> {
    let offered: usize = group.iter().map(|p| p.rows.len()).sum();
    let mut stmts = vec![db.stmt(
        sql("begin")?,
        args![group.len() as i64, offered as i64, retries as i64],
    )?];
    let rows = group.iter().flat_map(|p| p.rows.iter().map(String::as_str));
    for chunk in chunk_rows(rows, MAX_ROWS_JSON_BYTES) {
        stmts.push(db.stmt(sql("insert_events")?, args![&chunk])?);
    }
    for prepared in group {
        stmts.extend(message_statements(db, prepared.message, now)?);
    }
    for fold in fold_sections(STORE_EVENTS_SQL) {
        stmts.push(db.stmt(sql(fold)?, &[])?);
    }
    Ok(stmts)
}

/// Groups messages into transactions of whole messages, each within `budget` bytes of
/// rows (a bigger message goes alone). A message that could not be prepared (`None`) is
/// in no group: it is never counted as written.
fn plan_transactions(sizes: &[Option<usize>], budget: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut size = 0;
    for (index, bytes) in sizes.iter().enumerate() {
        let Some(bytes) = *bytes else { continue };
        if !current.is_empty() && size + bytes > budget {
            groups.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(index);
        size += bytes;
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Commits one transaction over `group`; returns whether it committed. The retries this
/// isolate counted ride along, and are kept for the next one if this fails.
async fn commit(db: &Db, group: &[&Prepared<'_>]) -> bool {
    let retries = RETRIES_NOT_YET_COUNTED.with(|c| c.replace(0));
    let written = match transaction(db, group, retries, crate::http::now_ms()) {
        Ok(stmts) => db.batch("writing events", stmts).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(rows) => {
            // One line per transaction: a line per message costs the consumer real time.
            worker::console_log!(
                "stored {} messages, {} events offered, {rows} rows written",
                group.len(),
                group.iter().map(|p| p.rows.len()).sum::<usize>()
            );
            // The cost figure of `GET /v1/admin/pipeline`; this update writes one row too.
            if let Err(e) = db
                .run(
                    "counting rows written",
                    "UPDATE pipeline_totals SET rows_written = rows_written + ?1 + 1 WHERE id = 1",
                    args![rows as i64],
                )
                .await
            {
                worker::console_warn!("rows written not counted: {}", e.message);
            }
            true
        }
        Err(e) => {
            RETRIES_NOT_YET_COUNTED.with(|c| c.set(c.get() + retries));
            for p in group {
                worker::console_error!(
                    "D1 write failed for batch {} part {}: {}",
                    p.message.batch_id,
                    p.message.part,
                    e.message
                );
            }
            false
        }
    }
}

/// Writes messages to D1. Returns, per message, whether it is durably stored; only a
/// committed transaction marks its messages stored. When a transaction of several
/// messages fails, each is tried alone, so one bad message cannot hold back the rest.
async fn write_messages(env: &Env, messages: &[EventBatchMessage]) -> Vec<bool> {
    let mut stored = vec![false; messages.len()];
    if fault_active(env, Fault::D1).await {
        for m in messages {
            worker::console_error!(
                "D1 write failed for batch {} part {}: injected D1 fault",
                m.batch_id,
                m.part
            );
        }
        return stored;
    }
    let db = match Db::open(env) {
        Ok(db) => db,
        Err(e) => {
            worker::console_error!("D1 unavailable: {}", e.message);
            return stored;
        }
    };
    let prepared: Vec<Option<Prepared>> = messages
        .iter()
        .map(|m| match prepare(m) {
            Ok(p) => Some(p),
            Err(e) => {
                worker::console_error!(
                    "cannot prepare batch {} part {}: {}; it will be retried",
                    m.batch_id,
                    m.part,
                    e.message
                );
                None
            }
        })
        .collect();
    let sizes: Vec<Option<usize>> = prepared
        .iter()
        .map(|p| p.as_ref().map(Prepared::bytes))
        .collect();
    for group in plan_transactions(&sizes, MAX_TRANSACTION_BYTES) {
        let members: Vec<&Prepared> = group.iter().filter_map(|&i| prepared[i].as_ref()).collect();
        if commit(&db, &members).await {
            group.iter().for_each(|&i| stored[i] = true);
        } else if group.len() > 1 {
            for &i in &group {
                if let Some(alone) = &prepared[i] {
                    stored[i] = commit(&db, &[alone]).await;
                }
            }
        }
    }
    stored
}

/// The queue consumer for both the main queue and its dead-letter queue.
pub async fn consume(batch: MessageBatch<String>, env: &Env) -> worker::Result<()> {
    let dead_letter = batch.queue().ends_with("-dlq");
    let raw: Vec<worker::RawMessage> = batch.raw_iter().collect();
    let mut parsed = Vec::with_capacity(raw.len());
    let mut handles = Vec::with_capacity(raw.len());
    for message in raw {
        let text = message.body().as_string().unwrap_or_default();
        match serde_json::from_str::<EventBatchMessage>(&text) {
            Ok(mut m) => {
                m.dead_lettered |= dead_letter;
                parsed.push(m);
                handles.push(message);
            }
            Err(e) => {
                // Not ours to interpret; keep it for inspection rather than drop it.
                worker::console_error!("unreadable queue message {}: {e}", message.id());
                let key = format!("poison:{}", message.id());
                let kept = match kv(env).map(|s| s.put(&key, text)) {
                    Ok(Ok(put)) => put.execute().await.is_ok(),
                    _ => false,
                };
                if kept {
                    message.ack();
                } else {
                    retry(&message);
                }
            }
        }
    }
    let stored = write_messages(env, &parsed).await;
    for ((message, handle), ok) in parsed.iter().zip(&handles).zip(stored) {
        if ok {
            handle.ack();
        } else if dead_letter {
            match spool(env, message).await {
                Ok(()) => {
                    worker::console_warn!(
                        "spooled dead-lettered batch {} part {}",
                        message.batch_id,
                        message.part
                    );
                    handle.ack();
                }
                Err(e) => {
                    worker::console_error!(
                        "cannot spool batch {}: {}",
                        message.batch_id,
                        e.message
                    );
                    retry(handle);
                }
            }
        } else {
            retry(handle);
        }
    }
    Ok(())
}

/// Sends a delivery back to its queue, and counts it.
fn retry(handle: &worker::RawMessage) {
    handle.retry();
    RETRIES_NOT_YET_COUNTED.with(|c| c.set(c.get() + 1));
}

/// What one spool drain did.
#[derive(Debug, Default, Serialize)]
pub struct DrainReport {
    pub stored: usize,
    pub remaining: usize,
}

/// Moves spooled messages into D1 (run by the cron trigger). Bounded per run.
pub async fn drain_spool(env: &Env, max_parts: u64) -> Result<DrainReport, ApiError> {
    let store = kv(env)?;
    let listing = store
        .list()
        .prefix(SPOOL_PREFIX.into())
        .limit(max_parts)
        .execute()
        .await?;
    let mut messages = Vec::new();
    let mut keys = Vec::new();
    for key in &listing.keys {
        if let Some(m) = store.get(&key.name).json::<EventBatchMessage>().await? {
            messages.push(m);
            keys.push(key.name.clone());
        }
    }
    let stored = write_messages(env, &messages).await;
    let mut report = DrainReport::default();
    for (key, ok) in keys.iter().zip(stored) {
        if ok {
            store.delete(key).await?;
            report.stored += 1;
        } else {
            report.remaining += 1;
        }
    }
    if !listing.list_complete {
        report.remaining += 1;
    }
    Ok(report)
}

/// How many parts wait in the spool, for `GET /v1/admin/pipeline`.
pub async fn spool_depth(env: &Env) -> Result<usize, ApiError> {
    Ok(list_keys(&kv(env)?, SPOOL_PREFIX).await?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_that_failed_to_prepare_is_in_no_transaction() {
        // The defect: such a message was acked with its group, and lost.
        let groups = plan_transactions(&[Some(3), None, Some(2)], 1_000);
        assert_eq!(groups, vec![vec![0, 2]]);
        assert!(plan_transactions(&[None, None], 1_000).is_empty());
    }

    #[test]
    fn transactions_hold_whole_messages_within_the_budget() {
        let groups = plan_transactions(
            &[Some(600), Some(300), Some(200), Some(1_200), Some(1)],
            1_000,
        );
        assert_eq!(groups, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
        // Every message that could be prepared is in exactly one group.
        let flat: Vec<usize> = groups.concat();
        assert_eq!(flat, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn rows_are_chunked_into_json_arrays_within_the_limit() {
        let rows: Vec<String> = (0..10).map(|i| format!("[\"{i}\",\"xxxxxxxx\"]")).collect();
        let chunks = chunk_rows(rows.iter().map(String::as_str), 60);
        assert!(chunks.iter().all(|c| c.len() <= 60), "{chunks:?}");
        let mut back = Vec::new();
        for c in &chunks {
            let parsed: Vec<serde_json::Value> = serde_json::from_str(c).expect("valid JSON");
            back.extend(parsed);
        }
        assert_eq!(back.len(), 10);
        assert_eq!(back[9][0], "9");
        // A row longer than the limit goes alone rather than being cut.
        let long = ["[\"a\"]".to_string(), format!("[\"{}\"]", "x".repeat(100))];
        assert_eq!(chunk_rows(long.iter().map(String::as_str), 60).len(), 2);
        assert!(chunk_rows([], 60).is_empty());
    }

    #[test]
    fn every_statement_of_a_transaction_is_in_the_sql_file() {
        let folds = fold_sections(STORE_EVENTS_SQL);
        assert_eq!(
            folds,
            [
                "fold_counts",
                "fold_users",
                "fold_props",
                "fold_names",
                "fold_props_catalogue",
                "fold_exposures",
                "fold_experiment_events",
                "end"
            ]
        );
        for name in ["begin", "insert_events"].into_iter().chain(folds) {
            let text = sql(name).expect(name);
            // Exactly one statement per section: D1 prepares one at a time.
            assert_eq!(text.matches(';').count(), 1, "{name}");
        }
        assert!(crate::store::sql_section(STORE_EVENTS_SQL, "nope").is_none());
    }

    #[test]
    fn an_event_row_keeps_the_props_as_their_json_text() {
        let message = EventBatchMessage {
            batch_id: "b1".into(),
            part: 0,
            app: "demo".into(),
            received_at: 5,
            dropped: 0,
            rejected: BTreeMap::new(),
            events: Vec::new(),
            dead_lettered: false,
            spooled: false,
        };
        let event: Event = serde_json::from_str(
            r#"{"id":"e1","type":"track","name":"n","ts":3,"client_ts":2,"anonymous_id":"a","props":{"plan":"pro","n":1.5}}"#,
        )
        .expect("event");
        let row: serde_json::Value =
            serde_json::from_str(&event_row(&message, &event).expect("row")).expect("json");
        assert_eq!(
            row,
            serde_json::json!([
                "demo",
                "e1",
                "track",
                "n",
                3,
                2,
                5,
                "a",
                null,
                "a",
                {"n": 1.5, "plan": "pro"},
                null,
                "b1"
            ])
        );
    }
}
