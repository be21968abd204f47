//! `POST /v1/events`: authenticate the ingest key, check the origin, rate-limit, validate
//! every event, hand the accepted ones to the queue, and answer 202 with per-event results.

use crate::apps::App;
use crate::apps::{authenticate, authenticate_key};
use crate::auth::{checked_key, ingest_key, KeySource};
use crate::dev::{next_ingest_fault, IngestFault};
use crate::http::{internal, now_ms, ApiError, ApiResult};
use crate::pipeline::{enqueue, EventBatchMessage, MAX_MESSAGE_BYTES};
use serde::Serialize;
use std::collections::BTreeMap;
use telltale_core::gzip::{gunzip, GzipError};
use telltale_core::ids::uuid_v7;
use telltale_core::ingest::{
    chunk_by_size, parse_batch, parse_events, Limits, ParsedBatch, Rejection,
};
use telltale_core::segment::{self, Endpoint as SegmentEndpoint, Kind as SegmentKind};
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

/// The development fault for this request, if one is set: a status is answered at once;
/// `store_then_500` is returned for the caller to answer after storing.
async fn injected_fault(env: &Env) -> Result<Option<IngestFault>, ApiError> {
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
    Ok(fault)
}

/// Refuses a body whose declared length is over `limit` before reading it.
fn check_declared_length(req: &Request, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > limit {
        return Err(ApiError::from_field(
            413,
            telltale_core::IngestError::BodyTooLarge {
                size: declared,
                limit,
            }
            .to_field_error(),
        ));
    }
    Ok(())
}

fn stored_then_500(fault: Option<IngestFault>) -> Result<(), ApiError> {
    if fault.is_some() {
        // store_then_500: everything is queued, but the client never hears so.
        return Err(ApiError::new(
            500,
            "injected_fault",
            "injected fault: stored, then 500",
        ));
    }
    Ok(())
}

/// `POST /v1/events`.
pub async fn accept(mut req: Request, env: &Env) -> ApiResult {
    let (app, _) = authenticate(&req, env).await?;
    rate_limit(&req, env, &app).await?;
    let fault = injected_fault(env).await?;
    check_content_type(&req)?;
    let limits = Limits::default();
    check_declared_length(&req, limits.max_body_bytes)?;
    let body = req.bytes().await?;
    let now = now_ms();
    let batch = parse_batch(&body, now, &limits)
        .map_err(|e| ApiError::from_field(e.status(), e.to_field_error()))?;
    let answer = store(env, &app, batch, now).await?;
    stored_then_500(fault)?;
    Ok(Response::from_json(&answer)?.with_status(202))
}

/// Queues a validated batch for storage; the answer `POST /v1/events` gives.
async fn store(
    env: &Env,
    app: &App,
    batch: ParsedBatch,
    now: i64,
) -> Result<IngestAnswer, ApiError> {
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
        return Ok(answer);
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
    Ok(answer)
}

/// The Segment endpoint a path names (`/v1/batch`, `/v1/track`, ...).
fn segment_endpoint(path: &str) -> Result<SegmentEndpoint, ApiError> {
    let last = path.rsplit('/').next().unwrap_or_default();
    if last == "batch" {
        return Ok(SegmentEndpoint::Batch);
    }
    SegmentKind::parse(last)
        .map(SegmentEndpoint::Single)
        .ok_or_else(|| ApiError::not_found("not_found", "path", format!("no endpoint `{path}`")))
}

/// `POST /v1/batch`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/identify`, `/v1/group`
/// and `/v1/alias`: Segment's tracking API (`telltale_core::segment` maps it). The key is
/// the Basic user (or Bearer, `X-API-Key`, `?key=`), else the body's `writeKey`. A request
/// is stored whole or not at all: one bad message refuses it with a 400 naming the field
/// as the sender wrote it. Success answers as Segment does, `200 {"success": true}`.
pub async fn accept_segment(mut req: Request, env: &Env) -> ApiResult {
    let endpoint = segment_endpoint(&req.path())?;
    // A key in the request (header or `?key=`); a malformed Authorization header is a 401,
    // as on /v1/events. Without one, the body's writeKey.
    let has_header = req.headers().get("Authorization")?.is_some();
    let presented = match ingest_key(&req) {
        Ok(key) => Some(key),
        Err(e) if e.code == "missing_key" && !has_header => None,
        Err(e) => return Err(e),
    };
    let mut authenticated = None;
    if let Some((key, source)) = presented {
        authenticated = Some(authenticate_key(&req, env, &key, source).await?);
    }
    // The body is read as JSON whatever its Content-Type says: RudderStack's library labels
    // its gzip JSON `application/x-www-form-urlencoded`.
    check_declared_length(&req, segment::MAX_REQUEST_BYTES)?;
    let mut body = req.bytes().await?;
    let encoding = req.headers().get("Content-Encoding")?.unwrap_or_default();
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => {}
        "gzip" => {
            body = gunzip(&body, segment::MAX_REQUEST_BYTES).map_err(|e| match e {
                GzipError::TooLarge { limit } => ApiError::new(
                    413,
                    "too_large",
                    format!("the body inflates to more than {limit} bytes"),
                ),
                GzipError::Malformed(why) => ApiError::new(
                    400,
                    "invalid_encoding",
                    format!("Content-Encoding is gzip, but {why}"),
                ),
            })?;
        }
        other => {
            return Err(ApiError::new(
                415,
                "unsupported_encoding",
                format!("send the body as it is or gzip, not `{other}`"),
            )
            .with_field("Content-Encoding"))
        }
    }
    let refused =
        |e: telltale_core::IngestError| ApiError::from_field(e.status(), e.to_field_error());
    let root = segment::parse(&body).map_err(refused)?;
    // Authenticated and rate-limited before any message is translated (the costly part).
    let (app, _) = match authenticated {
        Some(app) => app,
        None => {
            let key = segment::write_key(&root).map_err(refused)?.ok_or_else(|| {
                ApiError::new(
                    401,
                    "missing_key",
                    "send the ingest key as the Basic user (`Authorization: Basic base64(key:)`) or as `writeKey`",
                )
            })?;
            let (key, source) = checked_key(key, KeySource::Body)?;
            authenticate_key(&req, env, &key, source).await?
        }
    };
    rate_limit(&req, env, &app).await?;
    let fault = injected_fault(env).await?;
    let now = now_ms();
    let mut random_failed = false;
    let translated = segment::translate_parsed(&root, endpoint, now, || match new_batch_id(now) {
        Ok(id) => id,
        Err(_) => {
            random_failed = true;
            String::new()
        }
    })
    .map_err(refused)?;
    if random_failed {
        return Err(internal("no randomness for a message id"));
    }
    let limits = Limits::default();
    let batch = parse_events(&translated.events, now, 0, &limits, None, 0);
    if let Some(refused) = batch.rejected.first() {
        let field = segment::segment_field(&translated, &refused.field);
        let message = format!("{}; nothing in this request was stored", refused.message);
        return Err(ApiError::new(400, static_code(&refused.code), message).with_field(&field));
    }
    store(env, &app, batch, now).await?;
    stored_then_500(fault)?;
    Ok(Response::from_json(&serde_json::json!({"success": true}))?)
}

/// An ingest rejection's code as the `&'static str` errors carry (codes are a closed set).
fn static_code(code: &str) -> &'static str {
    const CODES: [&str; 10] = [
        "required",
        "invalid_type",
        "invalid_value",
        "invalid_format",
        "too_long",
        "too_many",
        "out_of_range",
        "unknown_field",
        "too_large",
        "duplicate_key",
    ];
    CODES
        .into_iter()
        .find(|c| *c == code)
        .unwrap_or("invalid_value")
}
