//! Serving flag decisions: `POST|GET /v1/flags/evaluate` and `GET /v1/flags/ruleset`,
//! read from the published state, and `POST /v1/flags/compile` for rulesets of one's own. Answers carry an ETag that changes exactly when a
//! decision can change (config, context, probe states, a schedule boundary).

use crate::apps::authenticate;
use crate::auth::KeySource;
use crate::dev::{self, EvalOverrides};
use crate::http::{
    empty_304, json, not_modified, now_ms, read_json, with_etag, ApiError, ApiResult, Query,
};
use crate::published::{self, decision_etag, engine_probe_states};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use worker::{Env, Method, Request};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    #[serde(default)]
    context: Map<String, Value>,
    /// Only these flags (each must exist); default all.
    #[serde(default)]
    flags: Option<Vec<String>>,
    /// Development only: evaluate at this time (RFC 3339 or ms).
    #[serde(default)]
    now: Option<Value>,
    /// Development only: probe states to assume.
    #[serde(default)]
    probes: Option<Map<String, Value>>,
}

/// The evaluation context of `GET /v1/flags/evaluate?attr=value...`: every query pair
/// but the ingest key, which is a credential, not an attribute.
fn context_from_query(
    pairs: impl IntoIterator<Item = (String, String)>,
    key_source: KeySource,
) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter(|(k, _)| !(key_source == KeySource::Query && k == "key"))
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// `POST /v1/flags/evaluate {context, flags?}` or `GET /v1/flags/evaluate?attr=value...`
pub async fn evaluate(mut req: Request, env: &Env) -> ApiResult {
    let (app, key_source) = authenticate(&req, env).await?;
    let input: EvaluateRequest = if req.method() == Method::Get {
        let url = req.url()?;
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Every attribute once: a repeated one has no single value.
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        Query::from_pairs(pairs.clone(), &names)?;
        EvaluateRequest {
            context: context_from_query(pairs, key_source),
            ..Default::default()
        }
    } else {
        Query::parse(&req, &["key"])?;
        read_json(&mut req).await?
    };
    let overrides = dev::eval_overrides(env, input.now.as_ref(), input.probes.as_ref())?;
    let now = overrides
        .as_ref()
        .and_then(|o| o.now_ms)
        .unwrap_or_else(now_ms);
    let published = published::current(env, &app.id).await?;
    let mut probes = published::probe_states(env, &app.id).await?;
    if let Some(EvalOverrides {
        probes: assumed, ..
    }) = &overrides
    {
        probes.extend(assumed.iter().map(|(k, v)| (k.clone(), *v)));
    }
    let engine = &published.engine;
    if let Some(keys) = &input.flags {
        if let Some(unknown) = keys
            .iter()
            .find(|k| !engine.keys().any(|e| e == k.as_str()))
        {
            return Err(ApiError::not_found(
                "unknown_flag",
                "flags",
                format!("no flag `{unknown}` is published"),
            ));
        }
    }
    // The answer is a function of these: a 304 is decided before any evaluation.
    let etag = decision_etag(
        &published,
        now,
        json!({"context": input.context, "flags": input.flags, "now": input.now}),
        &probes,
    );
    if overrides.is_none() && not_modified(&req, &etag)? {
        return empty_304(&etag);
    }
    let states = engine_probe_states(&probes);
    let keys: Vec<&str> = match &input.flags {
        Some(keys) => keys.iter().map(String::as_str).collect(),
        None => engine.keys().collect(),
    };
    let decisions: Map<String, Value> = keys
        .into_iter()
        .map(|k| {
            let decision = engine.evaluate(k, &input.context, &states, now);
            (
                k.to_string(),
                serde_json::to_value(decision).unwrap_or(Value::Null),
            )
        })
        .collect();
    let body = json!({"version": engine.version(), "flags": decisions, "probes": probes});
    with_etag(json(200, &body)?, &etag)
}

/// `GET /v1/flags/ruleset`: the published ruleset plus current probe states, for
/// evaluation in the SDK. The ETag changes with either. It carries no compiled form:
/// SDKs from before the engine module read compiled rulesets refuse unknown fields.
pub async fn ruleset(req: Request, env: &Env) -> ApiResult {
    served_ruleset(req, env, false).await
}

/// `GET /v1/flags/compiled`: the same, with `compiled` (the compiled engine as base64,
/// which the engine module reads; it does not compile).
pub async fn compiled_ruleset(req: Request, env: &Env) -> ApiResult {
    served_ruleset(req, env, true).await
}

async fn served_ruleset(req: Request, env: &Env, compiled: bool) -> ApiResult {
    let (app, _) = authenticate(&req, env).await?;
    Query::parse(&req, &["key"])?;
    let published = published::current(env, &app.id).await?;
    let probes = published::probe_states(env, &app.id).await?;
    let etag = crate::http::etag_for(
        published.engine.version(),
        &json!({"ruleset": true, "compiled": compiled, "probes": probes}),
    );
    if not_modified(&req, &etag)? {
        return empty_304(&etag);
    }
    let mut body = Value::clone(&published.ruleset);
    body["probes"] = json!(probes);
    if compiled {
        body["compiled"] = Value::String(String::clone(&published.compiled));
    }
    with_etag(json(200, &body)?, &etag)
}

/// Most flags one compile request takes (compiling checks prerequisites for cycles).
const MAX_COMPILE_FLAGS: usize = 2_000;

/// `POST /v1/flags/compile` (admin): a ruleset of one's own (`{version, flags, segments,
/// probes?}`, as `GET /v1/flags/ruleset` serves one) in the served form, with `compiled` (what
/// the browser's engine module reads: it decides, it does not compile) and the compile
/// `warnings`. For tools, tests and server-side rendering without a published config.
pub async fn compile_ruleset(mut req: Request, env: &Env) -> ApiResult {
    crate::auth::require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    let body: Value = read_json(&mut req).await?;
    let (ruleset, probes) = telltale_core::flags::Ruleset::from_served(&body).map_err(|e| {
        let e = ApiError::from_field(422, e);
        match e.field.as_deref() {
            Some(field) if !field.is_empty() => e,
            _ => e.with_field("body"),
        }
    })?;
    if ruleset.flags.len() > MAX_COMPILE_FLAGS {
        return Err(ApiError::new(
            413,
            "too_many_flags",
            format!("at most {MAX_COMPILE_FLAGS} flags are compiled in one request"),
        )
        .with_field("flags"));
    }
    let served = telltale_core::flags::engine::compiled_form(&ruleset, probes);
    json(200, &served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_query_is_not_context() {
        let pairs = || {
            vec![
                ("key".to_string(), "tt_ik_secret".to_string()),
                ("role".to_string(), "teacher".to_string()),
            ]
        };
        let ctx = context_from_query(pairs(), KeySource::Query);
        assert_eq!(Value::Object(ctx), json!({"role": "teacher"}));
        // With the key in a header, `key` is an ordinary attribute.
        let ctx = context_from_query(pairs(), KeySource::Header);
        assert_eq!(ctx.get("key"), Some(&json!("tt_ik_secret")));
    }
}
