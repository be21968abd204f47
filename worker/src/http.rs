//! HTTP plumbing: the structured error type every handler returns, and JSON/CSV answers.
//! Errors become `{"error": {"code", "message", "field"}}` here, once.

use serde::Serialize;
use telltale_core::config::{canonical_json, sha256_hex};
use telltale_core::time::UtcMs;
use telltale_core::FieldError;
use worker::{Headers, Request, Response};

/// A failed request, as it will be answered.
#[derive(Debug)]
#[non_exhaustive]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_s: Option<u32>,
    /// Extra structured detail, such as merge conflicts.
    pub details: Option<serde_json::Value>,
}

pub type ApiResult = std::result::Result<Response, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_s: None,
            details: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn from_field(status: u16, e: FieldError) -> Self {
        ApiError::new(status, e.code, e.message).with_field(e.field)
    }

    pub fn not_found(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError::new(404, code, message).with_field(field)
    }

    /// D1 or KV failed: the client may retry later. Details go to the log only.
    pub fn storage(context: &str, e: impl std::fmt::Display) -> Self {
        worker::console_error!("storage failure during {context}: {e}");
        ApiError::new(
            503,
            "storage_unavailable",
            format!("storage is unavailable during {context}; retry later"),
        )
    }

    pub fn into_response(self) -> worker::Result<Response> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            field: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a serde_json::Value>,
        }
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                details: self.details.as_ref(),
            },
        };
        let mut response = Response::from_json(&body)?.with_status(self.status);
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .set("Retry-After", &seconds.to_string())?;
        }
        Ok(response)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        worker::console_error!("internal error: {e}");
        ApiError::new(500, "internal", "internal error")
    }
}

impl From<worker::KvError> for ApiError {
    fn from(e: worker::KvError) -> Self {
        ApiError::storage("a KV operation", e)
    }
}

/// A JSON answer with a status.
pub fn json<T: Serialize>(status: u16, body: &T) -> ApiResult {
    Ok(Response::from_json(body)?.with_status(status))
}

/// A CSV answer.
pub fn csv(body: String) -> ApiResult {
    let headers = Headers::new();
    headers.set("Content-Type", "text/csv; charset=utf-8")?;
    Ok(Response::ok(body)?.with_headers(headers))
}

/// A request's query parameters, checked against the names an endpoint takes. An unknown
/// or repeated parameter is a 400 naming it: a typo (`?lmit=1`) never widens a query.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Reads the request's query, refusing any parameter not in `allowed`.
    pub fn parse(req: &Request, allowed: &[&str]) -> Result<Query, ApiError> {
        let url = req.url()?;
        let pairs = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()));
        Query::from_pairs(pairs, allowed)
    }

    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        allowed: &[&str],
    ) -> Result<Query, ApiError> {
        let mut query = Query::default();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let allowed = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(ApiError::new(
                    400,
                    "unknown_parameter",
                    format!("unknown query parameter `{name}`; allowed: {allowed}"),
                )
                .with_field(name));
            }
            if query.get(&name).is_some() {
                return Err(ApiError::new(
                    400,
                    "repeated_parameter",
                    format!("query parameter `{name}` is given more than once"),
                )
                .with_field(name));
            }
            query.pairs.push((name, value));
        }
        Ok(query)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs in request order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// An integer parameter within `range`, else `default`; out of range is a 400.
    pub fn int_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "invalid_value",
                        format!(
                            "`{name}` must be an integer from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                    .with_field(name)
                }),
        }
    }
}

/// Largest request body the JSON admin and flag endpoints read (imports are bigger).
pub const MAX_JSON_BODY_BYTES: usize = 1024 * 1024;

/// Reads a JSON body of at most `limit` bytes, answering 413 when it is larger and 400
/// with the parser's reason when it is not JSON of the endpoint's shape. Every body the
/// collector takes is an object: an array, a number or `null` is a 400, never an empty
/// request (serde would read `[]` as a struct of defaults).
pub async fn read_json_limited<T: serde::de::DeserializeOwned>(
    req: &mut Request,
    limit: usize,
) -> Result<T, ApiError> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let too_large = || {
        ApiError::new(
            413,
            "body_too_large",
            format!("the body is over the {limit}-byte limit of this endpoint"),
        )
        .with_field("body")
    };
    if declared > limit {
        return Err(too_large());
    }
    let bytes = req.bytes().await?;
    if bytes.len() > limit {
        return Err(too_large());
    }
    let malformed = |e: serde_json::Error| {
        ApiError::new(
            400,
            "malformed_json",
            format!("body is not valid JSON for this endpoint: {e}"),
        )
        .with_field("body")
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(malformed)?;
    if !value.is_object() {
        return Err(
            ApiError::new(400, "invalid_type", "the body must be a JSON object").with_field("body"),
        );
    }
    serde_json::from_value(value).map_err(malformed)
}

/// Reads a JSON body (up to [`MAX_JSON_BODY_BYTES`]).
pub async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    read_json_limited(req, MAX_JSON_BODY_BYTES).await
}

/// The current UTC time: the only clock the Worker reads.
pub fn now() -> UtcMs {
    UtcMs(worker::Date::now().as_millis() as i64)
}

/// The current UTC time in ms.
pub fn now_ms() -> i64 {
    now().ms()
}

/// A non-empty `[vars]` / secret value, if set.
pub fn env_string(env: &worker::Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// An internal failure that no client input can cause (serializing our own values).
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    worker::console_error!("internal error: {e}");
    ApiError::new(500, "internal", "internal error")
}

// Conditional requests: decisions carry an ETag, and `If-None-Match` gets a 304.

/// A strong ETag over a version and the request parts the answer depends on.
pub fn etag_for(version: &str, inputs: &serde_json::Value) -> String {
    format!(
        "\"{}\"",
        &sha256_hex(&format!("{version}\n{}", canonical_json(inputs)))[..32]
    )
}

pub fn not_modified(req: &Request, etag: &str) -> Result<bool, ApiError> {
    Ok(req
        .headers()
        .get("If-None-Match")?
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")))
}

pub fn with_etag(mut response: Response, etag: &str) -> ApiResult {
    response.headers_mut().set("ETag", etag)?;
    response
        .headers_mut()
        .set("Cache-Control", "private, no-cache")?;
    Ok(response)
}

pub fn empty_304(etag: &str) -> ApiResult {
    let headers = Headers::new();
    headers.set("ETag", etag)?;
    Ok(Response::empty()?.with_status(304).with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let ok =
            Query::from_pairs(pairs(&[("limit", "5"), ("from", "a")]), &["limit", "from"]).unwrap();
        assert_eq!((ok.get("limit"), ok.get("to")), (Some("5"), None));
        let typo = Query::from_pairs(pairs(&[("lmit", "1")]), &["limit"]).unwrap_err();
        assert_eq!((typo.status, typo.code), (400, "unknown_parameter"));
        assert_eq!(typo.field.as_deref(), Some("lmit"));
        let twice =
            Query::from_pairs(pairs(&[("limit", "1"), ("limit", "2")]), &["limit"]).unwrap_err();
        assert_eq!((twice.status, twice.code), (400, "repeated_parameter"));
        let none = Query::from_pairs(pairs(&[("x", "1")]), &[]).unwrap_err();
        assert!(none.message.contains("allowed: none"));
    }

    #[test]
    fn integers_are_bounded() {
        let q = Query::from_pairs(pairs(&[("limit", "501")]), &["limit"]).unwrap();
        assert_eq!(
            q.int_in("limit", 1..=500, 100).unwrap_err().code,
            "invalid_value"
        );
        let q = Query::from_pairs(pairs(&[]), &["limit"]).unwrap();
        assert_eq!(q.int_in("limit", 1..=500, 100).unwrap(), 100);
    }

    #[test]
    fn etags_depend_on_every_input() {
        let a = etag_for("v1", &serde_json::json!({"context": {"user_id": "u1"}}));
        assert_eq!(
            a,
            etag_for("v1", &serde_json::json!({"context": {"user_id": "u1"}}))
        );
        assert_ne!(
            a,
            etag_for("v2", &serde_json::json!({"context": {"user_id": "u1"}}))
        );
        assert_ne!(
            a,
            etag_for("v1", &serde_json::json!({"context": {"user_id": "u2"}}))
        );
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 34);
    }
}
