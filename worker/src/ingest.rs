//! `POST /v1/events`: authenticate the ingest key, check the origin, rate-limit, validate
//! every event, hand the accepted ones to the queue, and answer 202 with per-event results.

use crate::apps::{app_by_ingest_key, kv, App};
use crate::http::{now_ms, ApiError};
use crate::pipeline::{enqueue, EventBatchMessage, MAX_MESSAGE_BYTES};
use serde::Serialize;
use telltale_core::apps::origin_allowed;
use telltale_core::auth::bearer_token;
use telltale_core::ids::uuid_v7;
use telltale_core::ingest::{batch_fingerprint, chunk_by_size, parse_batch, Limits, Rejection};
use worker::{Env, Headers, Request, Response};

/// Seconds a rate-limited client should wait (the limiter's period).
const RATE_LIMIT_RETRY_AFTER_S: u32 = 10;
/// How long a batch id is remembered for answering replays.
const BATCH_MEMORY_TTL_S: u64 = 24 * 3600;

#[derive(Serialize)]
struct IngestAnswer {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Rejection>,
    batch_id: String,
}

fn cors_headers(origin: Option<&str>) -> worker::Result<Headers> {
    let headers = Headers::new();
    if let Some(origin) = origin {
        headers.set("Access-Control-Allow-Origin", origin)?;
        headers.set("Vary", "Origin")?;
        headers.set("Access-Control-Expose-Headers", "Retry-After, ETag")?;
    }
    Ok(headers)
}

pub fn with_cors(
    response: worker::Result<Response>,
    origin: Option<&str>,
) -> worker::Result<Response> {
    let mut response = response?;
    for (name, value) in cors_headers(origin)?.entries() {
        response.headers_mut().set(&name, &value)?;
    }
    Ok(response)
}

/// `OPTIONS /v1/events`: the CORS preflight. The origin is checked on the real request,
/// which carries the key.
pub fn preflight(req: &Request) -> worker::Result<Response> {
    let origin = req.headers().get("Origin")?;
    let headers = cors_headers(origin.as_deref())?;
    headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")?;
    headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type",
    )?;
    headers.set("Access-Control-Max-Age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// `POST /v1/events`, answered with CORS headers whatever the outcome (except a refused
/// origin), so browsers can read the status and the reason.
pub async fn handle(req: Request, env: &Env) -> worker::Result<Response> {
    let origin = req.headers().get("Origin")?;
    match accept(req, env, origin.as_deref()).await {
        Ok(response) => with_cors(Ok(response), origin.as_deref()),
        Err(e) if e.status == 403 => e.into_response(),
        Err(e) => with_cors(e.into_response(), origin.as_deref()),
    }
}

fn ingest_key(req: &Request) -> Result<String, ApiError> {
    if let Some(header) = req.headers().get("Authorization")? {
        return bearer_token(&header).map(str::to_string).ok_or_else(|| {
            ApiError::new(
                401,
                "missing_key",
                "send the ingest key as `Authorization: Bearer <key>`",
            )
        });
    }
    // OpenFeature's OFREP providers may send the key as X-API-Key.
    if let Some(key) = req
        .headers()
        .get("X-API-Key")?
        .filter(|k| !k.trim().is_empty())
    {
        return Ok(key.trim().to_string());
    }
    let url = req.url()?;
    url.query_pairs()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                401,
                "missing_key",
                "send the ingest key as `Authorization: Bearer <key>` or `?key=`",
            )
        })
}

/// The app behind the request's ingest key, with the browser origin checked.
pub async fn authenticate(req: &Request, env: &Env, origin: Option<&str>) -> Result<App, ApiError> {
    let key = ingest_key(req)?;
    let app = app_by_ingest_key(env, &key)
        .await?
        .ok_or_else(|| ApiError::new(401, "invalid_key", "the ingest key is not registered"))?;
    if let Some(origin) = origin {
        if !origin_allowed(&app.allowed_origins, origin) {
            return Err(ApiError::new(
                403,
                "origin_not_allowed",
                format!("origin `{origin}` is not allowed for app `{}`", app.id),
            )
            .with_field("Origin"));
        }
    }
    Ok(app)
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
    getrandom::fill(&mut random)
        .map_err(|e| ApiError::new(500, "internal", format!("no randomness: {e}")))?;
    Ok(uuid_v7(now as u64, random))
}

async fn accept(mut req: Request, env: &Env, origin: Option<&str>) -> Result<Response, ApiError> {
    let app = authenticate(&req, env, origin).await?;
    rate_limit(&req, env, &app).await?;
    let fault = crate::admin::next_ingest_fault(env).await;
    if let Some(crate::admin::IngestFault::Status(status)) = fault {
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
    let mut answer = IngestAnswer {
        accepted: batch.accepted.len(),
        duplicates: batch.in_batch_duplicates,
        rejected: batch.rejected,
        batch_id: batch_id.clone(),
    };
    if batch.accepted.is_empty() && batch.dropped == 0 {
        return Ok(Response::from_json(&answer)?.with_status(202));
    }

    // A replay of a batch already accepted (same id, same events) is acknowledged without
    // queueing it again. D1's per-event dedup would absorb it anyway; this saves the work
    // and tells the client what happened.
    let fingerprint = batch_fingerprint(&batch.accepted);
    let memory_key = format!("batch:{}:{batch_id}", app.id);
    let store = kv(env)?;
    if batch.batch_id.is_some() {
        if let Ok(Some(seen)) = store.get(&memory_key).text().await {
            if seen == fingerprint {
                answer.duplicates += answer.accepted;
                answer.accepted = 0;
                return Ok(Response::from_json(&answer)?.with_status(202));
            }
        }
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
            events,
        })
        .collect();
    let messages = if messages.is_empty() {
        // Only a drop report: carry it on its own.
        vec![EventBatchMessage {
            batch_id: batch_id.clone(),
            part: 0,
            app: app.id.clone(),
            received_at: now,
            dropped: batch.dropped,
            events: Vec::new(),
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
    if let Ok(put) = store.put(&memory_key, fingerprint) {
        if let Err(e) = put.expiration_ttl(BATCH_MEMORY_TTL_S).execute().await {
            worker::console_warn!("could not remember batch {batch_id}: {e}");
        }
    }
    Ok(Response::from_json(&answer)?.with_status(202))
}
