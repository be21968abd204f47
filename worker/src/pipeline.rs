//! The write path after ingest: Queue -> D1, with a KV spool as the last resort.
//!
//! Nothing that got a 202 is lost:
//! 1. ingest sends accepted events to the `EVENTS` queue; if that send fails, it writes
//!    them to the KV spool instead (and answers 503 only if the spool fails too);
//! 2. the consumer writes each message to D1 in one atomic batch; on failure the message
//!    is retried, then dead-lettered;
//! 3. the dead-letter consumer tries D1 once more, then spools to KV;
//! 4. the cron trigger drains the spool into D1 once D1 is back.
//!
//! Every write is idempotent (`ON CONFLICT DO NOTHING` on the event id), so retries and
//! redeliveries never double count; the aggregates are folded in by a D1 trigger in the
//! same transaction as the raw insert.

use crate::args;
use crate::dev::{fault_active, Fault};
use crate::http::{internal, ApiError};
use crate::store::{kv, list_keys, Db, Stmt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use telltale_core::ingest::Event;
use telltale_core::time::MS_PER_DAY;
use worker::{Env, MessageBatch, MessageExt};

/// Queue messages stay well under the 128 KB message limit.
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024;
/// Statements per D1 batch (one transaction).
const MAX_STATEMENTS_PER_TRANSACTION: usize = 1_000;
const SPOOL_PREFIX: &str = "spool:";

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
    kv(env)?
        .put(&message.spool_key(), to_json(message)?)?
        .execute()
        .await?;
    Ok(())
}

fn statements(db: &Db, message: &EventBatchMessage) -> Result<Vec<Stmt>, ApiError> {
    let mut stmts = Vec::with_capacity(message.events.len() + 1);
    for e in &message.events {
        let props = serde_json::to_string(&e.props).map_err(internal)?;
        stmts.push(db.stmt(
            "INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (app, id) DO NOTHING",
            args![
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
                &props,
                e.url.as_deref(),
                &message.batch_id,
            ],
        )?);
    }
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
    Ok(stmts)
}

/// Groups messages into transactions of whole messages, each within `budget`
/// statements (a message bigger than the budget goes alone). A message whose statements
/// could not be built (`None`) is in no group: it is never counted as written.
fn plan_transactions(statement_counts: &[Option<usize>], budget: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut size = 0;
    for (index, count) in statement_counts.iter().enumerate() {
        let Some(count) = *count else { continue };
        if !current.is_empty() && size + count > budget {
            groups.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(index);
        size += count;
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Writes messages to D1, each group in one transaction. Returns, per message, whether
/// it is durably stored; only a committed transaction marks its messages stored.
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
    let mut built: Vec<Option<Vec<Stmt>>> = messages
        .iter()
        .map(|m| match statements(&db, m) {
            Ok(stmts) => Some(stmts),
            Err(e) => {
                worker::console_error!(
                    "cannot build the statements of batch {} part {}: {}; it will be retried",
                    m.batch_id,
                    m.part,
                    e.message
                );
                None
            }
        })
        .collect();
    let counts: Vec<Option<usize>> = built.iter().map(|b| b.as_ref().map(Vec::len)).collect();
    for group in plan_transactions(&counts, MAX_STATEMENTS_PER_TRANSACTION) {
        let statements: Vec<Stmt> = group
            .iter()
            .flat_map(|&i| built[i].take().unwrap_or_default())
            .collect();
        match db.batch("writing events", statements).await {
            Ok(_) => {
                for &i in &group {
                    stored[i] = true;
                    let m = &messages[i];
                    worker::console_log!(
                        "stored batch {} part {}: {} events",
                        m.batch_id,
                        m.part,
                        m.events.len()
                    );
                }
            }
            Err(e) => {
                for &i in &group {
                    worker::console_error!(
                        "D1 write failed for batch {} part {}: {}",
                        messages[i].batch_id,
                        messages[i].part,
                        e.message
                    );
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
            Ok(m) => {
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
                    message.retry();
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
                    handle.retry();
                }
            }
        } else {
            handle.retry();
        }
    }
    Ok(())
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
    fn a_message_that_failed_to_bind_is_in_no_transaction() {
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
        // Every message that could be built is in exactly one group.
        let flat: Vec<usize> = groups.concat();
        assert_eq!(flat, vec![0, 1, 2, 3, 4]);
    }
}
