//! HTTP plumbing: the structured error type every handler returns, and JSON/CSV answers.
//! Errors become `{"error": {"code", "message", "field"}}` here, once.

use serde::Serialize;
use telltale_core::FieldError;
use worker::{Headers, Response};

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

/// Query pairs of a request URL, in order.
pub fn query_pairs(req: &worker::Request) -> Result<Vec<(String, String)>, ApiError> {
    Ok(req
        .url()?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// Query pairs, refusing any parameter not in `allowed` (a typo must not be ignored).
pub fn query_pairs_allowing(
    req: &worker::Request,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = query_pairs(req)?;
    if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(ApiError::new(
            400,
            "unknown_parameter",
            format!(
                "unknown query parameter `{unknown}`; allowed: {}",
                allowed.join(", ")
            ),
        )
        .with_field(unknown.clone()));
    }
    Ok(pairs)
}

/// Reads a JSON body, answering 400 with the parser's reason when it is not JSON.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: &mut worker::Request,
) -> Result<T, ApiError> {
    let bytes = req.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            400,
            "malformed_json",
            format!("body is not valid JSON for this endpoint: {e}"),
        )
        .with_field("body")
    })
}

/// The current UTC time in ms: the only clock the Worker reads.
pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// A non-empty `[vars]` / secret value, if set.
pub fn env_string(env: &worker::Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Whether development-only fault injection is switched on (`FAULT_INJECTION=on`).
pub fn fault_injection_enabled(env: &worker::Env) -> bool {
    env_string(env, "FAULT_INJECTION").as_deref() == Some("on")
}

/// The D1 binding `DB`; a missing binding is a logged 503 like any storage failure.
pub fn db(env: &worker::Env) -> Result<worker::D1Database, ApiError> {
    env.d1("DB").map_err(|e| ApiError::storage("opening D1", e))
}

/// A D1 result, its failure logged with `context` and turned into a 503.
pub fn d1<T>(context: &str, r: worker::Result<T>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::storage(context, e))
}
