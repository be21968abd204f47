//! Error types. Each boundary (Worker HTTP, SDK `JsError`) converts these once.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::string::String;
use core::fmt;

/// A problem with one named field of a request, reported as
/// `{"error": {"code", "message", "field"}}` by the Worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Stable machine-readable code, such as `required` or `too_long`.
    pub code: &'static str,
    /// Dotted path of the offending field, such as `events[3].props.plan`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{} ({})", self.message, self.code)
        } else {
            write!(f, "{}: {} ({})", self.field, self.message, self.code)
        }
    }
}

#[cfg(feature = "full")]
impl std::error::Error for FieldError {}

/// Why a whole ingest request was refused (as opposed to single events in it).
#[cfg(feature = "full")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is larger than [`crate::ingest::Limits::max_body_bytes`]. HTTP 413.
    BodyTooLarge { size: usize, limit: usize },
    /// More events than [`crate::ingest::Limits::max_events`]. HTTP 413.
    TooManyEvents { count: usize, limit: usize },
    /// Not JSON at all. HTTP 400.
    MalformedJson { message: String },
    /// JSON, but the envelope (`sent_at`, `events`, ...) is wrong. HTTP 400.
    InvalidEnvelope(FieldError),
}

#[cfg(feature = "full")]
impl IngestError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::BodyTooLarge { .. } | IngestError::TooManyEvents { .. } => 413,
            IngestError::MalformedJson { .. } | IngestError::InvalidEnvelope(_) => 400,
        }
    }

    /// As a field error, for the structured HTTP body.
    pub fn to_field_error(&self) -> FieldError {
        match self {
            IngestError::BodyTooLarge { size, limit } => FieldError::new(
                "body_too_large",
                "body",
                format!("body is {size} bytes; the limit is {limit}"),
            ),
            IngestError::TooManyEvents { count, limit } => FieldError::new(
                "too_many_events",
                "events",
                format!("batch has {count} events; the limit is {limit}"),
            ),
            IngestError::MalformedJson { message } => FieldError::new(
                "malformed_json",
                "body",
                format!("body is not valid JSON: {message}"),
            ),
            IngestError::InvalidEnvelope(e) => e.clone(),
        }
    }
}

#[cfg(feature = "full")]
impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_field_error())
    }
}

#[cfg(feature = "full")]
impl std::error::Error for IngestError {}
