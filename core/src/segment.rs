//! Segment's HTTP tracking API (`POST /v1/batch`, `/v1/track`, `/v1/page`, `/v1/screen`,
//! `/v1/identify`, `/v1/group`, `/v1/alias`), so that instrumentation written for Segment or
//! RudderStack points here by changing its host.
//!
//! Each message becomes one Telltale event (wire form), which then goes through the same
//! validation as `POST /v1/events` ([`crate::ingest::parse_events`]): the same limits and
//! the same errors, with field paths named as the Segment message names them. The mapping
//! (the README's "Segment-spec ingest" section documents it):
//!
//! | Segment | Telltale |
//! |---|---|
//! | `messageId` (any string) | `id`: a UUIDv8 from SHA-256 of `segment:` + the `messageId`, so a retried message keeps its id and never collides with a Telltale UUIDv7 |
//! | `timestamp` (else `originalTimestamp`, else the time it arrived) and `sentAt` (ISO 8601) | `ts`, corrected by `now - sentAt` as Telltale corrects skew |
//! | `userId`, `anonymousId` | `user_id`, `anonymous_id` (a message with only `userId` uses it as the anonymous id too) |
//! | `properties` (track, page, screen) or `traits` (identify, group) | `props`, nested objects flattened with `.` (`address.city`), arrays as their JSON text |
//! | `context.page.url` (else `properties.url`) | `url` |
//! | track `event` | a `track` event of that name |
//! | page | a `page` event named `$pageview` (as the SDK's); `name` and `category` become props |
//! | screen | a `page` event named `$screen`; `name` and `category` become props |
//! | identify | an `identify` event named `$identify` |
//! | group | a `track` event named `$group`, with prop `group_id` and the traits |
//! | alias | a `track` event named `$alias`, with prop `previous_id` |
//!
//! Other fields (`context` beyond the page URL, `integrations`, `_metadata`, ...) are
//! accepted and not stored, as Segment's own API accepts what it does not use.

use crate::error::{FieldError, IngestError};
use crate::time::parse_rfc3339;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Segment's limit on one message (its JSON): 32 KB.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Segment's limit on one request: 500 KB.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Deepest nesting of `properties`/`traits` that is flattened (deeper is refused).
const MAX_PROP_DEPTH: usize = 8;
/// Most messages in one request: Telltale's events per batch.
pub const MAX_MESSAGES: usize = 500;
/// Props and flattened key lengths stop at Telltale's limits while flattening, before any
/// long name is built (a small body must not build large ones).
const MAX_PROPS: usize = 64;
const MAX_PROP_KEY_CHARS: usize = 128;

/// The message kinds of Segment's spec, by endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Track,
        Kind::Page,
        Kind::Screen,
        Kind::Identify,
        Kind::Group,
        Kind::Alias,
    ];

    /// The spec's name (`type`, and the endpoint's last segment).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Track => "track",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Identify => "identify",
            Kind::Group => "group",
            Kind::Alias => "alias",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Where a request arrived: `/v1/batch`, or the endpoint of one message kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Batch,
    Single(Kind),
}

/// A Segment request in Telltale's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// `writeKey` from the body, when the request carried one.
    pub write_key: Option<String>,
    /// Telltale events (wire form), their `ts` already corrected for skew.
    pub events: Vec<Value>,
    /// Per event, the path of its message in the request (`batch[3]`, or `` for a single
    /// message), and its kind: errors are reported where the sender wrote the field.
    pub paths: Vec<String>,
    pub kinds: Vec<Kind>,
}

fn invalid(
    code: &'static str,
    field: impl Into<String>,
    message: impl Into<String>,
) -> IngestError {
    IngestError::InvalidEnvelope(FieldError::new(code, field, message))
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Reads a Segment request body received at `now_ms`. `new_id` makes an id for a message
/// without `messageId` (such a message cannot be deduplicated if it is sent again).
pub fn translate(
    body: &[u8],
    endpoint: Endpoint,
    now_ms: i64,
    new_id: impl FnMut() -> String,
) -> Result<Translated, IngestError> {
    translate_parsed(&parse(body)?, endpoint, now_ms, new_id)
}

/// A request body as a JSON object, refused over [`MAX_REQUEST_BYTES`]. Read this, then
/// [`write_key`], authenticate and rate-limit, and only then [`translate_parsed`]: the
/// translation is the costly part, and an unauthenticated request must not get it.
pub fn parse(body: &[u8]) -> Result<Map<String, Value>, IngestError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(IngestError::BodyTooLarge {
            size: body.len(),
            limit: MAX_REQUEST_BYTES,
        });
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| IngestError::MalformedJson {
        message: e.to_string(),
    })?;
    match root {
        Value::Object(root) => Ok(root),
        _ => Err(invalid(
            "invalid_type",
            "body",
            "body must be a JSON object",
        )),
    }
}

/// The body's `writeKey`, if it has one.
pub fn write_key(root: &Map<String, Value>) -> Result<Option<String>, IngestError> {
    match root.get("writeKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) => Ok(Some(key.clone())),
        Some(_) => Err(invalid(
            "invalid_type",
            "writeKey",
            "writeKey must be a string",
        )),
    }
}

/// [`translate`] of a body already parsed.
pub fn translate_parsed(
    root: &Map<String, Value>,
    endpoint: Endpoint,
    now_ms: i64,
    mut new_id: impl FnMut() -> String,
) -> Result<Translated, IngestError> {
    let write_key = write_key(root)?;
    let batch_sent_at = sent_at(root, "")?;
    let messages: Vec<(&Map<String, Value>, Kind)> = match endpoint {
        Endpoint::Single(kind) => vec![(root, kind)],
        Endpoint::Batch => {
            let Some(Value::Array(items)) = root.get("batch") else {
                return Err(invalid(
                    "required",
                    "batch",
                    "batch must be an array of messages",
                ));
            };
            // Counted before any is translated: a request's work stays bounded.
            if items.len() > MAX_MESSAGES {
                return Err(IngestError::TooManyEvents {
                    count: items.len(),
                    limit: MAX_MESSAGES,
                });
            }
            let mut messages = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = format!("batch[{i}]");
                let Value::Object(message) = item else {
                    return Err(invalid("invalid_type", path, "a message must be an object"));
                };
                let kind = match message.get("type") {
                    Some(Value::String(name)) => Kind::parse(name).ok_or_else(|| {
                        invalid(
                            "invalid_value",
                            join(&path, "type"),
                            format!(
                                "type must be one of {}",
                                Kind::ALL.map(Kind::as_str).join(", ")
                            ),
                        )
                    })?,
                    _ => return Err(invalid("required", join(&path, "type"), "type is required")),
                };
                messages.push((message, kind));
            }
            messages
        }
    };
    let mut events = Vec::with_capacity(messages.len());
    let mut paths = Vec::with_capacity(messages.len());
    let mut kinds = Vec::with_capacity(messages.len());
    for (i, (message, kind)) in messages.into_iter().enumerate() {
        let path = match endpoint {
            Endpoint::Batch => format!("batch[{i}]"),
            Endpoint::Single(_) => String::new(),
        };
        let size = serde_json::to_string(message).map_or(0, |text| text.len());
        if size > MAX_MESSAGE_BYTES {
            return Err(invalid(
                "too_large",
                if path.is_empty() { "body".into() } else { path },
                format!("a message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}"),
            ));
        }
        let sent = match sent_at(message, &path)? {
            Some(t) => Some(t),
            None => batch_sent_at,
        };
        events.push(event(message, kind, &path, now_ms, sent, &mut new_id)?);
        paths.push(path);
        kinds.push(kind);
    }
    Ok(Translated {
        write_key,
        events,
        paths,
        kinds,
    })
}

fn time_field(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, IngestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_rfc3339(text).map(Some).ok_or_else(|| {
            invalid(
                "invalid_format",
                join(path, key),
                format!("{key} must be an ISO 8601 time such as 2026-11-23T10:00:00.000Z"),
            )
        }),
        Some(_) => Err(invalid(
            "invalid_type",
            join(path, key),
            format!("{key} must be an ISO 8601 string"),
        )),
    }
}

fn sent_at(obj: &Map<String, Value>, path: &str) -> Result<Option<i64>, IngestError> {
    time_field(obj, "sentAt", path)
}

fn text<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, IngestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(
            "invalid_type",
            join(path, key),
            format!("{key} must be a string"),
        )),
    }
}

/// The Telltale id of a Segment `messageId`: a UUIDv8 (RFC 9562) whose 122 free bits are
/// SHA-256 of `segment:` + the message id. Deterministic, so a resent message is absorbed
/// like any repeated event id; version 8 never equals a UUIDv7 the SDK makes.
pub fn message_uuid(message_id: &str) -> String {
    let digest = Sha256::digest(format!("segment:{message_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = 0x80 | (bytes[6] & 0x0f); // version 8
    bytes[8] = 0x80 | (bytes[8] & 0x3f); // RFC 9562 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `properties`/`traits` as flat props: nested objects joined with `.`, arrays as JSON text.
fn flatten(
    into: &mut Map<String, Value>,
    prefix: &str,
    object: &Map<String, Value>,
    path: &str,
    depth: usize,
) -> Result<(), IngestError> {
    if depth > MAX_PROP_DEPTH {
        return Err(invalid(
            "too_deep",
            path,
            format!("properties and traits nest at most {MAX_PROP_DEPTH} objects deep"),
        ));
    }
    for (key, value) in object {
        let prefix_chars = if prefix.is_empty() {
            0
        } else {
            prefix.chars().count() + 1
        };
        if prefix_chars + key.chars().count() > MAX_PROP_KEY_CHARS {
            return Err(invalid(
                "too_long",
                format!("{path}.{key}"),
                format!("a flattened property key is longer than {MAX_PROP_KEY_CHARS} characters"),
            ));
        }
        if into.len() >= MAX_PROPS && !value.is_object() {
            return Err(invalid(
                "too_many",
                format!("{path}.{key}"),
                format!("more than {MAX_PROPS} properties once nested objects are flattened"),
            ));
        }
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let field = format!("{path}.{key}");
        match value {
            Value::Object(inner) => flatten(into, &name, inner, &field, depth + 1)?,
            other => {
                let flat = match other {
                    Value::Array(_) => Value::String(other.to_string()),
                    scalar => scalar.clone(),
                };
                if into.insert(name.clone(), flat).is_some() {
                    return Err(invalid(
                        "duplicate_key",
                        field,
                        format!("`{name}` is given twice once nested objects are flattened"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A prop from a top-level field: refused if the properties already give it another value.
fn set_prop(
    props: &mut Map<String, Value>,
    key: &str,
    value: &str,
    field: &str,
) -> Result<(), IngestError> {
    match props.get(key) {
        Some(Value::String(same)) if same == value => Ok(()),
        Some(_) => Err(invalid(
            "duplicate_key",
            field,
            format!("`{key}` is given twice, with different values"),
        )),
        None => {
            props.insert(key.into(), Value::String(value.into()));
            Ok(())
        }
    }
}

fn event(
    message: &Map<String, Value>,
    kind: Kind,
    path: &str,
    now_ms: i64,
    sent_at: Option<i64>,
    new_id: &mut impl FnMut() -> String,
) -> Result<Value, IngestError> {
    let id = match message.get("messageId") {
        None | Some(Value::Null) => new_id(),
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= 256 => message_uuid(id),
        Some(_) => {
            return Err(invalid(
                "invalid_value",
                join(path, "messageId"),
                "messageId must be a string of 1 to 256 characters",
            ))
        }
    };
    let user_id = text(message, "userId", path)?;
    let anonymous_id = text(message, "anonymousId", path)?.or(user_id);
    let Some(anonymous_id) = anonymous_id else {
        return Err(invalid(
            "required",
            join(path, "userId"),
            "a message needs a userId or an anonymousId",
        ));
    };
    let at = match time_field(message, "timestamp", path)? {
        Some(t) => Some(t),
        None => time_field(message, "originalTimestamp", path)?,
    };
    // The sender's clock is corrected by how far its sentAt is from ours.
    let ts = match (at, sent_at) {
        (Some(t), Some(sent)) => t.saturating_add(now_ms - sent),
        (Some(t), None) => t,
        (None, _) => now_ms,
    };
    let (source, source_field) = match kind {
        Kind::Identify | Kind::Group => (message.get("traits"), "traits"),
        _ => (message.get("properties"), "properties"),
    };
    let mut props = Map::new();
    match source {
        None | Some(Value::Null) => {}
        Some(Value::Object(object)) => {
            flatten(&mut props, "", object, &join(path, source_field), 1)?;
        }
        Some(_) => {
            return Err(invalid(
                "invalid_type",
                join(path, source_field),
                format!("{source_field} must be an object"),
            ))
        }
    }
    let name = match kind {
        Kind::Track => text(message, "event", path)?
            .ok_or_else(|| {
                invalid(
                    "required",
                    join(path, "event"),
                    "a track message needs an event name",
                )
            })?
            .to_string(),
        Kind::Page | Kind::Screen => {
            for key in ["name", "category"] {
                if let Some(value) = text(message, key, path)? {
                    set_prop(&mut props, key, value, &join(path, key))?;
                }
            }
            if kind == Kind::Page {
                "$pageview"
            } else {
                "$screen"
            }
            .to_string()
        }
        Kind::Identify => "$identify".into(),
        Kind::Group => {
            let group = text(message, "groupId", path)?.ok_or_else(|| {
                invalid(
                    "required",
                    join(path, "groupId"),
                    "a group message needs a groupId",
                )
            })?;
            set_prop(&mut props, "group_id", group, &join(path, "groupId"))?;
            "$group".into()
        }
        Kind::Alias => {
            let previous = text(message, "previousId", path)?.ok_or_else(|| {
                invalid(
                    "required",
                    join(path, "previousId"),
                    "an alias message needs a previousId",
                )
            })?;
            set_prop(
                &mut props,
                "previous_id",
                previous,
                &join(path, "previousId"),
            )?;
            "$alias".into()
        }
    };
    let telltale_kind = match kind {
        Kind::Track | Kind::Group | Kind::Alias => "track",
        Kind::Page | Kind::Screen => "page",
        // Segment allows traits for an anonymous user; a Telltale identify names a user.
        Kind::Identify if user_id.is_none() => "track",
        Kind::Identify => "identify",
    };
    let page_url = message
        .get("context")
        .and_then(|c| c.get("page"))
        .and_then(|p| p.get("url"))
        .and_then(Value::as_str)
        .or_else(|| props.get("url").and_then(Value::as_str));
    let mut event = Map::new();
    event.insert("id".into(), Value::String(id));
    event.insert("type".into(), telltale_kind.into());
    event.insert("name".into(), Value::String(name));
    event.insert("ts".into(), Value::from(ts));
    event.insert("anonymous_id".into(), Value::String(anonymous_id.into()));
    if let Some(user) = user_id {
        event.insert("user_id".into(), Value::String(user.into()));
    }
    if let Some(url) = page_url {
        event.insert("url".into(), Value::String(url.into()));
    }
    event.insert("props".into(), Value::Object(props));
    Ok(Value::Object(event))
}

/// A Telltale event field path (`events[3].props.plan`) as the Segment request names it
/// (`batch[3].properties.plan`).
pub fn segment_field(translated: &Translated, field: &str) -> String {
    let Some(rest) = field.strip_prefix("events[") else {
        return field.to_string();
    };
    let Some((index, rest)) = rest.split_once(']') else {
        return field.to_string();
    };
    let Some(i) = index.parse::<usize>().ok() else {
        return field.to_string();
    };
    let base = translated.paths.get(i).cloned().unwrap_or_default();
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let props = match translated.kinds.get(i) {
        Some(Kind::Identify | Kind::Group) => "traits",
        _ => "properties",
    };
    let mapped = match rest.split_once('.') {
        Some(("props", key)) => format!("{props}.{key}"),
        _ => match rest {
            "id" => "messageId".into(),
            "name" => "event".into(),
            "ts" => "timestamp".into(),
            "anonymous_id" => "anonymousId".into(),
            "user_id" => "userId".into(),
            "url" => "context.page.url".into(),
            "props" => props.into(),
            other => other.to_string(),
        },
    };
    match (base.is_empty(), mapped.is_empty()) {
        (true, _) => mapped,
        (false, true) => base,
        (false, false) => format!("{base}.{mapped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{parse_events, Limits};
    use serde_json::json;

    const NOW: i64 = 1_795_849_200_000; // 2026-11-28T07:00:00Z

    fn read(body: Value, endpoint: Endpoint) -> Result<Translated, IngestError> {
        let mut n = 0;
        translate(body.to_string().as_bytes(), endpoint, NOW, || {
            n += 1;
            format!("00000000-0000-7000-8000-{n:012}")
        })
    }

    #[test]
    fn maps_every_message_kind() {
        let body = json!({"writeKey": "tt_ik_x", "sentAt": "2026-11-28T06:59:59.000Z", "batch": [
            {"type": "track", "messageId": "m1", "event": "Signed Up", "userId": "u1", "timestamp": "2026-11-28T06:59:58.000Z",
             "properties": {"plan": "pro", "address": {"city": "Berlin", "geo": {"lat": 52.5}}, "items": [1, 2]},
             "context": {"page": {"url": "https://example.com/a"}, "library": {"name": "analytics-node"}}, "integrations": {}},
            {"type": "page", "messageId": "m2", "anonymousId": "a1", "name": "Home", "category": "Docs", "properties": {"path": "/"}},
            {"type": "screen", "messageId": "m3", "anonymousId": "a1", "name": "Settings"},
            {"type": "identify", "messageId": "m4", "userId": "u1", "traits": {"email": "x@example.com"}},
            {"type": "group", "messageId": "m5", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
            {"type": "alias", "messageId": "m6", "userId": "u2", "previousId": "u1"}
        ]});
        let t = read(body, Endpoint::Batch).unwrap();
        assert_eq!(t.write_key.as_deref(), Some("tt_ik_x"));
        let e = &t.events;
        assert_eq!(e[0]["type"], "track");
        assert_eq!(e[0]["name"], "Signed Up");
        assert_eq!(
            e[0]["anonymous_id"], "u1",
            "userId stands in for a missing anonymousId"
        );
        assert_eq!(e[0]["ts"], NOW - 1_000, "corrected by now - sentAt");
        assert_eq!(e[0]["url"], "https://example.com/a");
        assert_eq!(
            e[0]["props"],
            json!({"plan": "pro", "address.city": "Berlin", "address.geo.lat": 52.5, "items": "[1,2]"})
        );
        assert_eq!(
            (e[1]["type"].as_str(), e[1]["name"].as_str()),
            (Some("page"), Some("$pageview"))
        );
        assert_eq!(
            e[1]["props"],
            json!({"path": "/", "name": "Home", "category": "Docs"})
        );
        assert_eq!(e[1]["ts"], NOW, "no timestamp: the time it arrived");
        assert_eq!(
            (e[2]["type"].as_str(), e[2]["name"].as_str()),
            (Some("page"), Some("$screen"))
        );
        assert_eq!(
            (e[3]["type"].as_str(), e[3]["user_id"].as_str()),
            (Some("identify"), Some("u1"))
        );
        assert_eq!(e[3]["props"], json!({"email": "x@example.com"}));
        assert_eq!(e[4]["props"], json!({"name": "Acme", "group_id": "g1"}));
        assert_eq!(e[5]["props"], json!({"previous_id": "u1"}));
        // The same messageId is the same id; ids are valid and version 8.
        assert_eq!(e[0]["id"], message_uuid("m1"));
        let id = e[0]["id"].as_str().unwrap();
        assert!(
            crate::ids::is_uuid(id)
                && &id[14..15] == "8"
                && ["8", "9", "a", "b"].contains(&&id[19..20])
        );
        assert_ne!(message_uuid("m1"), message_uuid("m2"));
        // And all of them pass Telltale's own validation.
        let parsed = parse_events(&t.events, NOW, 0, &Limits::default(), None, 0);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        assert_eq!(parsed.accepted.len(), 6);
    }

    #[test]
    fn single_endpoints_take_one_message_and_make_ids_when_none_is_given() {
        let t = read(
            json!({"event": "Clicked", "anonymousId": "a"}),
            Endpoint::Single(Kind::Track),
        )
        .unwrap();
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.events[0]["id"], "00000000-0000-7000-8000-000000000001");
        assert_eq!(t.paths, [""]);
    }

    #[test]
    fn bad_messages_are_refused_with_the_senders_field_path() {
        let cases = [
            (
                json!({"batch": [{"type": "track", "anonymousId": "a"}]}),
                "batch[0].event",
            ),
            (json!({"batch": [{"type": "bogus"}]}), "batch[0].type"),
            (json!({"batch": [{"event": "x"}]}), "batch[0].type"),
            (
                json!({"batch": [{"type": "track", "event": "x"}]}),
                "batch[0].userId",
            ),
            (
                json!({"batch": [{"type": "track", "event": "x", "userId": "u", "timestamp": "yesterday"}]}),
                "batch[0].timestamp",
            ),
            (
                json!({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": [1]}]}),
                "batch[0].properties",
            ),
            (
                json!({"batch": [{"type": "track", "event": "x", "userId": "u", "messageId": 5}]}),
                "batch[0].messageId",
            ),
            (
                json!({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": {"a.b": 1, "a": {"b": 2}}}]}),
                "batch[0].properties.a.b",
            ),
            (
                json!({"batch": [{"type": "group", "userId": "u"}]}),
                "batch[0].groupId",
            ),
            (
                json!({"batch": [{"type": "alias", "userId": "u"}]}),
                "batch[0].previousId",
            ),
            (json!({"batch": [1]}), "batch[0]"),
            (json!({"batch": {}}), "batch"),
            (json!({"writeKey": 1, "batch": []}), "writeKey"),
            (json!({"sentAt": "soon", "batch": []}), "sentAt"),
        ];
        for (body, field) in cases {
            match read(body.clone(), Endpoint::Batch) {
                Err(IngestError::InvalidEnvelope(e)) => assert_eq!(e.field, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let mut deep = json!(1);
        for _ in 0..12 {
            deep = json!({"k": deep});
        }
        let body = json!({"type": "track", "event": "x", "userId": "u", "properties": deep});
        assert!(
            matches!(read(body, Endpoint::Single(Kind::Track)), Err(IngestError::InvalidEnvelope(e)) if e.code == "too_deep")
        );
        assert!(matches!(
            read(json!([1]), Endpoint::Batch),
            Err(IngestError::InvalidEnvelope(_))
        ));
        assert!(matches!(
            translate(b"{", Endpoint::Batch, NOW, String::new),
            Err(IngestError::MalformedJson { .. })
        ));
    }

    #[test]
    fn flattening_stops_at_telltales_limits_before_building_long_names() {
        // A long key prefixing thousands of leaves (a few KB gzipped) is refused at the first
        // leaf whose name would be too long, not after building them all.
        let leaves: Map<String, Value> = (0..1_000).map(|i| (format!("l{i}"), json!(0))).collect();
        let body = json!({"batch": [{"type": "track", "event": "x", "userId": "u",
            "properties": {"k".repeat(200): leaves}}]});
        match read(body, Endpoint::Batch) {
            Err(IngestError::InvalidEnvelope(e)) => assert_eq!(e.code, "too_long"),
            other => panic!("{other:?}"),
        }
        let many: Map<String, Value> = (0..65).map(|i| (format!("p{i}"), json!(i))).collect();
        let body = json!({"type": "track", "event": "x", "userId": "u", "properties": many});
        match read(body, Endpoint::Single(Kind::Track)) {
            Err(IngestError::InvalidEnvelope(e)) => assert_eq!(e.code, "too_many"),
            other => panic!("{other:?}"),
        }
        // Over 500 messages: refused before any is translated.
        let body = json!({"batch": vec![json!({"type": "page", "anonymousId": "a"}); 501]});
        assert!(matches!(
            read(body, Endpoint::Batch),
            Err(IngestError::TooManyEvents { count: 501, .. })
        ));
    }

    #[test]
    fn top_level_fields_agree_with_the_props_or_are_refused() {
        let same = json!({"type": "page", "anonymousId": "a", "name": "Home", "properties": {"name": "Home"}});
        assert!(read(same, Endpoint::Single(Kind::Page)).is_ok());
        let other =
            json!({"type": "group", "userId": "u", "groupId": "g1", "traits": {"group_id": "g2"}});
        match read(other, Endpoint::Single(Kind::Group)) {
            Err(IngestError::InvalidEnvelope(e)) => {
                assert_eq!((e.code, e.field.as_str()), ("duplicate_key", "groupId"))
            }
            other => panic!("{other:?}"),
        }
        // Segment allows an anonymous identify: it is kept, as a track named $identify.
        let t = read(
            json!({"anonymousId": "a", "traits": {"plan": "pro"}}),
            Endpoint::Single(Kind::Identify),
        )
        .unwrap();
        assert_eq!(
            (t.events[0]["type"].as_str(), t.events[0]["name"].as_str()),
            (Some("track"), Some("$identify"))
        );
        let parsed = parse_events(&t.events, NOW, 0, &Limits::default(), None, 0);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    }

    #[test]
    fn segment_limits_hold() {
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let body = json!({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": {"p": big}}]});
        match read(body, Endpoint::Batch) {
            Err(IngestError::InvalidEnvelope(e)) => {
                assert_eq!((e.code, e.field.as_str()), ("too_large", "batch[0]"))
            }
            other => panic!("{other:?}"),
        }
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            translate(&huge, Endpoint::Batch, NOW, String::new),
            Err(IngestError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn telltale_errors_are_named_as_the_sender_wrote_them() {
        let t = read(
            json!({"batch": [{"type": "identify", "userId": "u"}, {"type": "track", "event": "x", "userId": "u"}]}),
            Endpoint::Batch,
        )
        .unwrap();
        assert_eq!(
            segment_field(&t, "events[0].props.email"),
            "batch[0].traits.email"
        );
        assert_eq!(
            segment_field(&t, "events[1].props.plan"),
            "batch[1].properties.plan"
        );
        assert_eq!(segment_field(&t, "events[1].name"), "batch[1].event");
        assert_eq!(segment_field(&t, "events[1]"), "batch[1]");
        assert_eq!(segment_field(&t, "sent_at"), "sent_at");
    }
}
