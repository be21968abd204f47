//! The OpenFeature Remote Evaluation Protocol (OFREP) over the same engine, so that
//! OpenFeature SDKs with an OFREP provider work against Telltale unchanged:
//! `POST /ofrep/v1/evaluate/flags/{key}`, `POST /ofrep/v1/evaluate/flags` (bulk, with
//! ETag/304) and `GET /ofrep/v1/configuration`. `targetingKey` becomes `user_id` (the
//! default stickiness) unless the context sets `user_id` itself.

use crate::apps::authenticate;
use crate::http::{
    empty_304, json, not_modified, now_ms, with_etag, ApiResult, Query, MAX_JSON_BODY_BYTES,
};
use crate::published::{self, decision_etag, engine_probe_states, MANIFEST_TTL_MS};
use serde_json::{json, Map, Value};
use telltale_core::flags::engine::{error_code, Reason};
use telltale_core::flags::Decision;
use worker::{Env, Request};

fn context_of(body: &Value) -> Result<Map<String, Value>, String> {
    if !body.is_object() {
        return Err("the body must be a JSON object such as {\"context\": {...}}".into());
    }
    match body.get("context") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            let mut ctx = map.clone();
            if let Some(key) = map.get("targetingKey").cloned() {
                ctx.entry("user_id").or_insert(key);
            }
            Ok(ctx)
        }
        Some(_) => Err("context must be an object".into()),
    }
}

/// A decision in OFREP's shape: success, or failure with an error code.
fn ofrep_result(d: &Decision) -> (bool, Value) {
    if d.reason == Reason::Error {
        let code = d.error_code.unwrap_or("GENERAL");
        return (
            false,
            json!({"key": d.key, "errorCode": code, "errorDetails": d.error_message.clone().unwrap_or_default()}),
        );
    }
    let mut metadata = Map::new();
    metadata.insert("version".into(), json!(d.version));
    if let Some(rule) = &d.rule {
        metadata.insert("rule".into(), json!(rule));
    }
    if let Some(bucket) = d.bucket {
        metadata.insert("bucket".into(), json!(bucket));
    }
    if let Some(probe) = &d.probe {
        metadata.insert("probe".into(), json!(probe));
    }
    let mut out = json!({"key": d.key, "value": d.value, "reason": d.reason, "metadata": metadata});
    if let Some(variant) = &d.variant {
        out["variant"] = json!(variant);
    }
    (true, out)
}

fn failure(status: u16, body: Value) -> ApiResult {
    json(status, &body)
}

async fn request_body(req: &mut Request) -> Result<Value, String> {
    let bytes = req.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > MAX_JSON_BODY_BYTES {
        return Err(format!(
            "the body is over the {MAX_JSON_BODY_BYTES}-byte limit"
        ));
    }
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("body is not JSON: {e}"))
}

/// The evaluation context of an OFREP request body (an empty body means no context). A
/// bad one is the OFREP 400 answer, naming the flag when one was asked for.
async fn read_context(
    req: &mut Request,
    key: Option<&str>,
) -> Result<Map<String, Value>, ApiResult> {
    let details = match request_body(req).await.and_then(|body| context_of(&body)) {
        Ok(ctx) => return Ok(ctx),
        Err(details) => details,
    };
    let mut body = json!({"errorCode": "INVALID_CONTEXT", "errorDetails": details});
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    Err(failure(400, body))
}

/// `POST /ofrep/v1/evaluate/flags/{key}`
pub async fn evaluate_one(mut req: Request, env: &Env, key: &str) -> ApiResult {
    let (app, _) = authenticate(&req, env).await?;
    Query::parse(&req, &["key"])?;
    let ctx = match read_context(&mut req, Some(key)).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    let published = published::current(env, &app.id).await?;
    let probes = engine_probe_states(&published::probe_states(env, &app.id).await?);
    let decision = published.engine.evaluate(key, &ctx, &probes, now_ms());
    if decision.error_code == Some(error_code::FLAG_NOT_FOUND) {
        return failure(
            404,
            json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("no flag `{key}` is published")}),
        );
    }
    match ofrep_result(&decision) {
        (true, body) => json(200, &body),
        (false, body) => failure(400, body),
    }
}

/// `POST /ofrep/v1/evaluate/flags` (bulk), with `ETag` and `If-None-Match`.
pub async fn evaluate_all(mut req: Request, env: &Env) -> ApiResult {
    let (app, _) = authenticate(&req, env).await?;
    Query::parse(&req, &["key"])?;
    let ctx = match read_context(&mut req, None).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    let published = published::current(env, &app.id).await?;
    let probes = published::probe_states(env, &app.id).await?;
    let now = now_ms();
    let etag = decision_etag(
        &published,
        now,
        json!({"ofrep": Value::Object(ctx.clone())}),
        &probes,
    );
    if not_modified(&req, &etag)? {
        return empty_304(&etag);
    }
    let flags: Vec<Value> = published
        .engine
        .evaluate_all(&ctx, &engine_probe_states(&probes), now)
        .iter()
        .map(|d| ofrep_result(d).1)
        .collect();
    with_etag(json(200, &json!({ "flags": flags }))?, &etag)
}

/// `GET /ofrep/v1/configuration`
pub async fn configuration(req: Request, env: &Env) -> ApiResult {
    authenticate(&req, env).await?;
    Query::parse(&req, &["key"])?;
    json(
        200,
        &json!({
            "name": "telltale",
            "capabilities": {
                "cacheInvalidation": {"polling": {"enabled": true, "minPollingIntervalMs": MANIFEST_TTL_MS}},
                "flagEvaluation": {"supportedTypes": ["boolean", "string", "int", "float", "object"]}
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_object_body_carries_a_context() {
        for bad in [json!(null), json!(42), json!("x"), json!([])] {
            assert!(context_of(&bad).is_err(), "{bad} was accepted");
        }
        assert!(context_of(&json!({"context": 1})).is_err());
        let ctx = context_of(&json!({"context": {"targetingKey": "u1"}})).unwrap();
        assert_eq!(ctx.get("user_id"), Some(&json!("u1")));
        assert!(context_of(&json!({})).unwrap().is_empty());
    }
}
