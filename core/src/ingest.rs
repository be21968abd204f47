//! The ingest wire contract (`POST /v1/events`): envelope and per-event validation,
//! clock-skew correction, and how accepted events are packed for the queue.
//!
//! A batch is refused whole only when the envelope is unusable (not JSON, too big, no
//! `events` array). Otherwise each event is judged on its own: valid events are accepted
//! even when others in the same batch are rejected.

use crate::error::{FieldError, IngestError};
use crate::ids::is_uuid;
use crate::time::{MS_PER_DAY, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Documented ingest limits. The README lists the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_events: usize,
    pub max_name_chars: usize,
    pub max_anonymous_id_chars: usize,
    pub max_user_id_chars: usize,
    pub max_batch_id_chars: usize,
    pub max_props: usize,
    pub max_prop_key_chars: usize,
    pub max_prop_value_chars: usize,
    pub max_url_chars: usize,
    /// How far in the past a (skew-corrected) event time may be: offline clients
    /// deliver late.
    pub max_past_ms: i64,
    /// How far in the future a (skew-corrected) event time may be.
    pub max_future_ms: i64,
    /// Most evicted events one batch may report (`dropped`). A client reports its drops
    /// with its next batch and then starts again from zero; a million is far beyond what
    /// one page could track and evict in between, and keeps sums far from overflow.
    pub max_dropped: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 512 * 1024,
            max_events: 500,
            max_name_chars: 128,
            max_anonymous_id_chars: 128,
            max_user_id_chars: 256,
            max_batch_id_chars: 64,
            max_props: 64,
            max_prop_key_chars: 128,
            max_prop_value_chars: 1024,
            max_url_chars: 2048,
            max_dropped: 1_000_000,
            max_past_ms: 30 * MS_PER_DAY,
            max_future_ms: 10 * MS_PER_MINUTE,
        }
    }
}

/// The event kinds of the wire contract.
pub const EVENT_TYPES: [&str; 4] = ["track", "page", "click", "identify"];

const EVENT_FIELDS: [&str; 8] = [
    "id",
    "type",
    "name",
    "ts",
    "anonymous_id",
    "user_id",
    "props",
    "url",
];
const ENVELOPE_FIELDS: [&str; 4] = ["sent_at", "batch_id", "dropped", "events"];

/// An accepted, normalized event, as queued and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// Server-corrected event time, UTC ms.
    pub ts: i64,
    /// The time the client reported, UTC ms by its own clock.
    pub client_ts: i64,
    pub anonymous_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub props: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Event {
    /// Who counts as one distinct user: the user id when known, else the anonymous id.
    pub fn user_key(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.anonymous_id)
    }
}

/// One rejected event of a batch, reported in the 202 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub index: usize,
    pub code: String,
    pub field: String,
    pub message: String,
}

/// The outcome of validating one request body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBatch {
    pub batch_id: Option<String>,
    /// Server time minus the client's `sent_at`; added to every event time.
    pub skew_ms: i64,
    /// Events the client reports it had to drop before sending (storage full, ...).
    pub dropped: u64,
    pub accepted: Vec<Event>,
    pub rejected: Vec<Rejection>,
    /// Valid events whose id already appeared earlier in this same batch.
    pub in_batch_duplicates: usize,
}

/// Validates a request body received at `now_ms`.
pub fn parse_batch(body: &[u8], now_ms: i64, limits: &Limits) -> Result<ParsedBatch, IngestError> {
    if body.len() > limits.max_body_bytes {
        return Err(IngestError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| IngestError::MalformedJson {
        message: e.to_string(),
    })?;
    let Value::Object(envelope) = root else {
        return Err(envelope_error(
            "invalid_type",
            "body",
            "body must be a JSON object",
        ));
    };
    if let Some(unknown) = envelope
        .keys()
        .find(|k| !ENVELOPE_FIELDS.contains(&k.as_str()))
    {
        return Err(envelope_error(
            "unknown_field",
            unknown,
            format!(
                "unknown field `{unknown}`; allowed: {}",
                ENVELOPE_FIELDS.join(", ")
            ),
        ));
    }
    let events = match envelope.get("events") {
        Some(Value::Array(events)) => events,
        Some(_) => {
            return Err(envelope_error(
                "invalid_type",
                "events",
                "events must be an array",
            ))
        }
        None => return Err(envelope_error("required", "events", "events is required")),
    };
    if events.len() > limits.max_events {
        return Err(IngestError::TooManyEvents {
            count: events.len(),
            limit: limits.max_events,
        });
    }
    let skew_ms = match envelope.get("sent_at") {
        None | Some(Value::Null) => 0,
        Some(v) => {
            let sent_at = v
                .as_i64()
                .filter(|t| plausible_epoch_ms(*t))
                .ok_or_else(|| {
                    envelope_error(
                        "invalid_value",
                        "sent_at",
                        "sent_at must be integer ms since the epoch",
                    )
                })?;
            now_ms - sent_at
        }
    };
    let batch_id = match envelope.get("batch_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.is_empty() && s.chars().count() <= limits.max_batch_id_chars =>
        {
            Some(s.clone())
        }
        Some(_) => {
            return Err(envelope_error(
                "invalid_value",
                "batch_id",
                format!(
                    "batch_id must be a non-empty string of at most {} characters",
                    limits.max_batch_id_chars
                ),
            ))
        }
    };
    let dropped = match envelope.get("dropped") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= limits.max_dropped)
            .ok_or_else(|| {
                envelope_error(
                    "invalid_value",
                    "dropped",
                    format!(
                        "dropped must be an integer from 0 to {}",
                        limits.max_dropped
                    ),
                )
            })?,
    };

    Ok(parse_events(
        events, now_ms, skew_ms, limits, batch_id, dropped,
    ))
}

/// Validates events (wire form) whose envelope was read already: what [`parse_batch`]
/// does after the envelope, and what other wire formats (Segment's) map onto.
pub fn parse_events(
    events: &[Value],
    now_ms: i64,
    skew_ms: i64,
    limits: &Limits,
    batch_id: Option<String>,
    dropped: u64,
) -> ParsedBatch {
    let mut accepted: Vec<Event> = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let mut in_batch_duplicates = 0;
    for (index, raw) in events.iter().enumerate() {
        match validate_event(raw, index, now_ms, skew_ms, limits) {
            Ok(event) => {
                if seen.insert(event.id.to_ascii_lowercase()) {
                    accepted.push(event);
                } else {
                    in_batch_duplicates += 1;
                }
            }
            Err(e) => rejected.push(Rejection {
                index,
                code: e.code.to_string(),
                field: e.field,
                message: e.message,
            }),
        }
    }
    ParsedBatch {
        batch_id,
        skew_ms,
        dropped,
        accepted,
        rejected,
        in_batch_duplicates,
    }
}

fn envelope_error(code: &'static str, field: &str, message: impl Into<String>) -> IngestError {
    IngestError::InvalidEnvelope(FieldError::new(code, field, message))
}

/// Rejects numbers that cannot be epoch milliseconds of this era (seconds, say).
fn plausible_epoch_ms(t: i64) -> bool {
    // 2000-01-01 .. 2100-01-01
    (946_684_800_000..4_102_444_800_000).contains(&t)
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    max_chars: usize,
    required: bool,
) -> Result<Option<&'a str>, FieldError> {
    let field = || format!("{path}.{key}");
    match obj.get(key) {
        None | Some(Value::Null) if required => Err(FieldError::new(
            "required",
            field(),
            format!("{key} is required"),
        )),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(FieldError::new(
            "invalid_value",
            field(),
            format!("{key} must not be empty"),
        )),
        Some(Value::String(s)) if s.chars().count() > max_chars => Err(FieldError::new(
            "too_long",
            field(),
            format!("{key} is longer than {max_chars} characters"),
        )),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(FieldError::new(
            "invalid_value",
            field(),
            format!("{key} must not contain control characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::new(
            "invalid_type",
            field(),
            format!("{key} must be a string"),
        )),
    }
}

fn validate_event(
    raw: &Value,
    index: usize,
    now_ms: i64,
    skew_ms: i64,
    limits: &Limits,
) -> Result<Event, FieldError> {
    let path = format!("events[{index}]");
    let Value::Object(obj) = raw else {
        return Err(FieldError::new(
            "invalid_type",
            path,
            "event must be an object",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            "unknown_field",
            format!("{path}.{unknown}"),
            format!(
                "unknown field `{unknown}`; allowed: {}",
                EVENT_FIELDS.join(", ")
            ),
        ));
    }
    let id = string_field(obj, "id", &path, 36, true)?.unwrap_or_default();
    if !is_uuid(id) {
        return Err(FieldError::new(
            "invalid_format",
            format!("{path}.id"),
            "id must be a UUID",
        ));
    }
    let kind = string_field(obj, "type", &path, 16, true)?.unwrap_or_default();
    if !EVENT_TYPES.contains(&kind) {
        return Err(FieldError::new(
            "invalid_value",
            format!("{path}.type"),
            format!("type must be one of {}", EVENT_TYPES.join(", ")),
        ));
    }
    let name = string_field(obj, "name", &path, limits.max_name_chars, true)?.unwrap_or_default();
    let client_ts = match obj.get("ts") {
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                "required",
                format!("{path}.ts"),
                "ts is required",
            ))
        }
        Some(v) => v.as_i64().ok_or_else(|| {
            FieldError::new(
                "invalid_type",
                format!("{path}.ts"),
                "ts must be integer ms since the epoch",
            )
        })?,
    };
    let ts = client_ts.saturating_add(skew_ms);
    if ts < now_ms - limits.max_past_ms || ts > now_ms + limits.max_future_ms {
        return Err(FieldError::new(
            "out_of_range",
            format!("{path}.ts"),
            format!(
                "ts (corrected for clock skew) must be within {} days before and {} minutes after the server time",
                limits.max_past_ms / MS_PER_DAY,
                limits.max_future_ms / MS_PER_MINUTE
            ),
        ));
    }
    let anonymous_id = string_field(
        obj,
        "anonymous_id",
        &path,
        limits.max_anonymous_id_chars,
        true,
    )?
    .unwrap_or_default();
    let user_id = string_field(obj, "user_id", &path, limits.max_user_id_chars, false)?;
    if kind == "identify" && user_id.is_none() {
        return Err(FieldError::new(
            "required",
            format!("{path}.user_id"),
            "identify events need a user_id",
        ));
    }
    let url = string_field(obj, "url", &path, limits.max_url_chars, false)?;
    let props = match obj.get("props") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(props)) => validate_props(props, &path, limits)?,
        Some(_) => {
            return Err(FieldError::new(
                "invalid_type",
                format!("{path}.props"),
                "props must be an object",
            ))
        }
    };
    Ok(Event {
        id: id.to_ascii_lowercase(),
        kind: kind.to_string(),
        name: name.to_string(),
        ts,
        client_ts,
        anonymous_id: anonymous_id.to_string(),
        user_id: user_id.map(str::to_string),
        props,
        url: url.map(str::to_string),
    })
}

fn validate_props(
    props: &Map<String, Value>,
    path: &str,
    limits: &Limits,
) -> Result<Map<String, Value>, FieldError> {
    if props.len() > limits.max_props {
        return Err(FieldError::new(
            "too_many",
            format!("{path}.props"),
            format!(
                "props has {} keys; the limit is {}",
                props.len(),
                limits.max_props
            ),
        ));
    }
    for (key, value) in props {
        let field = || format!("{path}.props.{key}");
        if key.is_empty()
            || key.chars().count() > limits.max_prop_key_chars
            || key.chars().any(char::is_control)
        {
            return Err(FieldError::new(
                "invalid_value",
                field(),
                format!(
                    "prop keys must be 1 to {} printable characters",
                    limits.max_prop_key_chars
                ),
            ));
        }
        match value {
            Value::String(s) if s.chars().count() > limits.max_prop_value_chars => {
                return Err(FieldError::new(
                    "too_long",
                    field(),
                    format!(
                        "prop values are limited to {} characters",
                        limits.max_prop_value_chars
                    ),
                ))
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(FieldError::new(
                    "invalid_type",
                    field(),
                    "prop values must be strings, numbers, booleans or null (props are flat)",
                ))
            }
            _ => {}
        }
    }
    Ok(props.clone())
}

/// Splits events into chunks whose JSON stays under `max_bytes` each (queue messages
/// have a size limit). An event is never split; one bigger than the limit travels alone.
pub fn chunk_by_size(events: Vec<Event>, max_bytes: usize) -> Vec<Vec<Event>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for event in events {
        let size = serde_json::to_string(&event)
            .map(|s| s.len() + 1)
            .unwrap_or(max_bytes);
        if !current.is_empty() && current_bytes + size > max_bytes {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push(event);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_767_225_600_000;

    fn event(id_suffix: u32) -> Value {
        json!({"id": format!("0190f3b2-7c4e-7a41-9c2d-{id_suffix:012}"), "type": "track", "name": "search",
               "ts": NOW - 1000, "anonymous_id": "anon-1", "props": {"q": "rust", "n": 3, "ok": true, "x": null}})
    }

    fn parse(body: Value) -> Result<ParsedBatch, IngestError> {
        parse_batch(body.to_string().as_bytes(), NOW, &Limits::default())
    }

    #[test]
    fn accepts_a_valid_batch_and_corrects_skew() {
        let batch = parse(json!({"sent_at": NOW - 60_000, "batch_id": "b1", "events": [event(1)]}))
            .unwrap();
        assert_eq!(batch.accepted.len(), 1);
        assert_eq!(batch.skew_ms, 60_000);
        assert_eq!(batch.accepted[0].ts, NOW - 1000 + 60_000);
        assert_eq!(batch.accepted[0].client_ts, NOW - 1000);
        assert_eq!(batch.batch_id.as_deref(), Some("b1"));
    }

    #[test]
    fn judges_events_one_by_one() {
        let mut bad = event(2);
        bad["props"] = json!({"nested": {"a": 1}});
        let batch = parse(json!({"events": [event(1), bad, event(3)]})).unwrap();
        assert_eq!(batch.accepted.len(), 2);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].index, 1);
        assert_eq!(batch.rejected[0].field, "events[1].props.nested");
        assert_eq!(batch.rejected[0].code, "invalid_type");
    }

    #[test]
    fn counts_in_batch_duplicates_once() {
        let batch = parse(json!({"events": [event(1), event(1)]})).unwrap();
        assert_eq!(batch.accepted.len(), 1);
        assert_eq!(batch.in_batch_duplicates, 1);
    }

    #[test]
    fn refuses_bad_envelopes() {
        let limits = Limits::default();
        assert!(matches!(
            parse_batch(b"{", NOW, &limits),
            Err(IngestError::MalformedJson { .. })
        ));
        assert_eq!(parse(json!([])).unwrap_err().status(), 400);
        assert_eq!(
            parse(json!({})).unwrap_err().to_field_error().field,
            "events"
        );
        assert_eq!(
            parse(json!({"events": [], "extra": 1}))
                .unwrap_err()
                .to_field_error()
                .code,
            "unknown_field"
        );
        assert_eq!(
            parse(json!({"events": [], "sent_at": 17}))
                .unwrap_err()
                .to_field_error()
                .field,
            "sent_at"
        );
        let many: Vec<Value> = (0..501).map(event).collect();
        assert_eq!(parse(json!({ "events": many })).unwrap_err().status(), 413);
        let big = vec![b' '; limits.max_body_bytes + 1];
        assert_eq!(parse_batch(&big, NOW, &limits).unwrap_err().status(), 413);
    }

    #[test]
    fn names_the_failing_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"id": "nope"}), "events[0].id", "invalid_format"),
            (
                json!({"type": "purchase"}),
                "events[0].type",
                "invalid_value",
            ),
            (json!({"name": ""}), "events[0].name", "invalid_value"),
            (
                json!({"name": "x".repeat(129)}),
                "events[0].name",
                "too_long",
            ),
            (json!({"ts": "yesterday"}), "events[0].ts", "invalid_type"),
            (
                json!({"ts": NOW + 3_600_000}),
                "events[0].ts",
                "out_of_range",
            ),
            (
                json!({"anonymous_id": 5}),
                "events[0].anonymous_id",
                "invalid_type",
            ),
            (json!({"type": "identify"}), "events[0].user_id", "required"),
            (json!({"props": [1]}), "events[0].props", "invalid_type"),
            (
                json!({"props": {"q": "x".repeat(1025)}}),
                "events[0].props.q",
                "too_long",
            ),
            (json!({"color": "red"}), "events[0].color", "unknown_field"),
        ];
        for (patch, field, code) in cases {
            let mut e = event(1);
            for (k, v) in patch.as_object().unwrap() {
                e[k] = v.clone();
            }
            let batch = parse(json!({ "events": [e] })).unwrap();
            assert_eq!(batch.rejected.len(), 1, "{patch}");
            assert_eq!(
                (
                    batch.rejected[0].field.as_str(),
                    batch.rejected[0].code.as_str()
                ),
                (field, code)
            );
        }
    }

    #[test]
    fn chunks_by_size_without_losing_events() {
        let events = parse(json!({"events": (0..50).map(event).collect::<Vec<_>>()}))
            .unwrap()
            .accepted;
        let chunks = chunk_by_size(events.clone(), 1_000);
        assert!(chunks.len() > 1);
        assert!(chunks
            .iter()
            .all(|c| serde_json::to_string(c).unwrap().len() <= 1_000));
        assert_eq!(chunks.concat(), events);
    }
}
