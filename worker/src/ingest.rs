//! `POST /v1/events`: authenticate the ingest key, check the origin, rate-limit, validate
//! every event, hand the accepted ones to the queue, and answer 202 with per-event results.

use crate::apps::authenticate;
use crate::apps::App;
use crate::dev::{next_ingest_fault, IngestFault};
use crate::http::{internal, now_ms, ApiError, ApiResult};
use crate::pipeline::{enqueue, EventBatchMessage, MAX_MESSAGE_BYTES};
use serde::Serialize;
use std::collections::BTreeMap;
use telltale_core::ids::uuid_v7;
use telltale_core::ingest::{chunk_by_size, parse_batch, Limits, Rejection};
use worker::{Env, Request, Response};

/// Seconds a rate-limited client should wait (the limiter's period).
const RATE_LIMIT_RETRY_AFTER_S: u32 = 10;

#[derive(Serialize)]
struct IngestAnswer {
    accepted: usize,
    /// Duplicates the edge can see: repeated ids inside this batch. A resent batch is
    /// accepted again and absorbed downstream, where the event id is the key.
    duplicates: usize,
    rejected: Vec<Rejection>,
    batch_id: String,
}

async fn rate_limit(req: &Request, env: &Env, app: &App) -> Result<(), ApiError> {
    let client = req
        .headers()
        .get("CF-Connecting-IP")?
        .unwrap_or_else(|| "unknown".into());
    let limiter = match env.rate_limiter("INGEST_LIMIT") {
        Ok(limiter) => limiter,
        // Without the binding (misconfigured deploy) ingest stays open; say so in the log.
        Err(e) => {
            worker::console_warn!("rate limiter unavailable: {e}");
            return Ok(());
        }
    };
    match limiter.limit(format!("{}:{client}", app.id)).await {
        Ok(outcome) if !outcome.success => {
            let mut e = ApiError::new(
                429,
                "rate_limited",
                format!("too many requests for app `{}`; retry later", app.id),
            );
            e.retry_after_s = Some(RATE_LIMIT_RETRY_AFTER_S);
            Err(e)
        }
        Ok(_) => Ok(()),
        Err(e) => {
            worker::console_warn!("rate limiter failed open: {e}");
            Ok(())
        }
    }
}

fn check_content_type(req: &Request) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get("Content-Type")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.is_empty() || essence == "application/json" || essence == "text/plain" {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!("send application/json or text/plain, not `{essence}`"),
        )
        .with_field("Content-Type"))
    }
}

fn new_batch_id(now: i64) -> Result<String, ApiError> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(internal)?;
    Ok(uuid_v7(now as u64, random))
}

/// `POST /v1/events`.
pub async fn accept(mut req: Request, env: &Env) -> ApiResult {
    let (app, _) = authenticate(&req, env).await?;
    rate_limit(&req, env, &app).await?;
    let fault = next_ingest_fault(env).await;
    if let Some(IngestFault::Status(status)) = fault {
        let mut e = ApiError::new(
            status,
            "injected_fault",
            format!("injected fault: {status}"),
        );
        if status == 429 {
            e.retry_after_s = Some(1);
        }
        return Err(e);
    }
    check_content_type(&req)?;
    let limits = Limits::default();
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > limits.max_body_bytes {
        return Err(ApiError::from_field(
            413,
            telltale_core::IngestError::BodyTooLarge {
                size: declared,
                limit: limits.max_body_bytes,
            }
            .to_field_error(),
        ));
    }
    let body = req.bytes().await?;
    let now = now_ms();
    let batch = parse_batch(&body, now, &limits)
        .map_err(|e| ApiError::from_field(e.status(), e.to_field_error()))?;

    let batch_id = match &batch.batch_id {
        Some(id) => id.clone(),
        None => new_batch_id(now)?,
    };
    let mut rejected_by_code: BTreeMap<String, u64> = BTreeMap::new();
    for r in &batch.rejected {
        *rejected_by_code.entry(r.code.clone()).or_default() += 1;
    }
    let answer = IngestAnswer {
        accepted: batch.accepted.len(),
        duplicates: batch.in_batch_duplicates,
        rejected: batch.rejected,
        batch_id: batch_id.clone(),
    };
    if batch.accepted.is_empty() && batch.dropped == 0 && rejected_by_code.is_empty() {
        return Ok(Response::from_json(&answer)?.with_status(202));
    }

    let messages: Vec<EventBatchMessage> = chunk_by_size(batch.accepted, MAX_MESSAGE_BYTES)
        .into_iter()
        .enumerate()
        .map(|(part, events)| EventBatchMessage {
            batch_id: batch_id.clone(),
            part,
            app: app.id.clone(),
            received_at: now,
            dropped: if part == 0 { batch.dropped } else { 0 },
            rejected: if part == 0 {
                rejected_by_code.clone()
            } else {
                BTreeMap::new()
            },
            events,
            dead_lettered: false,
            spooled: false,
        })
        .collect();
    let messages = if messages.is_empty() {
        // Only a drop report or rejections: carry them on their own.
        vec![EventBatchMessage {
            batch_id: batch_id.clone(),
            part: 0,
            app: app.id.clone(),
            received_at: now,
            dropped: batch.dropped,
            rejected: rejected_by_code,
            events: Vec::new(),
            dead_lettered: false,
            spooled: false,
        }]
    } else {
        messages
    };
    enqueue(env, messages).await?;
    if batch.dropped > 0 {
        worker::console_warn!(
            "app {} batch {batch_id}: client reports {} dropped events",
            app.id,
            batch.dropped
        );
    }
    if fault.is_some() {
        // store_then_500: everything is queued, but the client never hears so.
        return Err(ApiError::new(
            500,
            "injected_fault",
            "injected fault: stored, then 500",
        ));
    }
    Ok(Response::from_json(&answer)?.with_status(202))
}
