//! Who may call: the admin key, the probe key, ingest keys (bound to origins), and the
//! actor named in audit lines. Secrets are compared in constant time and never logged.

use crate::http::ApiError;
use telltale_core::auth::{basic_user, bearer_token, secrets_match};
use worker::{Env, Request};

const MAX_ACTOR_CHARS: usize = 128;

/// A secret that guards a group of endpoints, and how its failures are named.
struct Guard {
    secret: &'static str,
    what: &'static str,
    missing_code: &'static str,
    invalid_code: &'static str,
    unset_code: &'static str,
}

const ADMIN: Guard = Guard {
    secret: "ADMIN_KEY",
    what: "admin key",
    missing_code: "missing_admin_key",
    invalid_code: "invalid_admin_key",
    unset_code: "admin_disabled",
};

const PROBE: Guard = Guard {
    secret: "PROBE_KEY",
    what: "probe key",
    missing_code: "missing_probe_key",
    invalid_code: "invalid_probe_key",
    unset_code: "probe_push_disabled",
};

/// Checks `Authorization: Bearer <secret>` against a Worker secret in constant time. An
/// unset secret disables the endpoints it guards (503): it never means "open".
fn require_bearer(req: &Request, env: &Env, guard: &Guard) -> Result<(), ApiError> {
    let Some(expected) = env
        .secret(guard.secret)
        .ok()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
    else {
        return Err(ApiError::new(
            503,
            guard.unset_code,
            format!("the {} secret is not configured", guard.secret),
        ));
    };
    let header = req.headers().get("Authorization")?.unwrap_or_default();
    match bearer_token(&header) {
        Some(token) if secrets_match(token, &expected) => Ok(()),
        Some(_) => Err(ApiError::new(
            401,
            guard.invalid_code,
            format!("the {} is wrong", guard.what),
        )),
        None => Err(ApiError::new(
            401,
            guard.missing_code,
            format!("send the {} as `Authorization: Bearer <key>`", guard.what),
        )),
    }
}

/// The admin key (`ADMIN_KEY`): config, apps, stats, probes' admin API.
pub fn require_admin(req: &Request, env: &Env) -> Result<(), ApiError> {
    require_bearer(req, env, &ADMIN)
}

/// The probe key (`PROBE_KEY`): results pushed by probes that run elsewhere.
pub fn require_probe_key(req: &Request, env: &Env) -> Result<(), ApiError> {
    require_bearer(req, env, &PROBE)
}

/// Who is acting, for the audit log: the `X-Telltale-Actor` header (a name or email),
/// else `admin`.
pub fn actor(req: &Request) -> Result<String, ApiError> {
    let raw = req.headers().get("X-Telltale-Actor")?.unwrap_or_default();
    actor_from_header(&raw)
}

fn actor_from_header(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.chars().count() > MAX_ACTOR_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            400,
            "invalid_value",
            "X-Telltale-Actor must be at most 128 printable characters",
        )
        .with_field("X-Telltale-Actor"));
    }
    Ok(if name.is_empty() {
        "admin".into()
    } else {
        name.into()
    })
}

/// Where an ingest key came from: `?key=` also names a query parameter the endpoint must
/// not read as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Header,
    Query,
    /// A Segment request's `writeKey`.
    Body,
}

/// Longest ingest key looked up (keys are `tt_ik_` and 32 hex digits): anything longer
/// is not a key, and is refused before it reaches storage.
const MAX_INGEST_KEY_CHARS: usize = 128;

/// The ingest key: `Authorization: Bearer`, `Authorization: Basic` with the key as the
/// user (Segment's and RudderStack's libraries), `X-API-Key` (OFREP providers), or `?key=`
/// (`sendBeacon` cannot set headers).
pub fn ingest_key(req: &Request) -> Result<(String, KeySource), ApiError> {
    let (key, source) = presented_key(req)?;
    checked_key(key, source)
}

/// A presented ingest key, refused before any lookup when it cannot be one.
pub fn checked_key(key: String, source: KeySource) -> Result<(String, KeySource), ApiError> {
    if key.len() > MAX_INGEST_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(ApiError::new(
            401,
            "invalid_key",
            "the ingest key is not registered",
        ));
    }
    Ok((key, source))
}

fn presented_key(req: &Request) -> Result<(String, KeySource), ApiError> {
    if let Some(header) = req.headers().get("Authorization")? {
        if let Some(user) = basic_user(&header) {
            return Ok((user, KeySource::Header));
        }
        return bearer_token(&header)
            .map(|k| (k.to_string(), KeySource::Header))
            .ok_or_else(|| {
                ApiError::new(
                    401,
                    "missing_key",
                    "send the ingest key as `Authorization: Bearer <key>` (or Basic, as the user)",
                )
            });
    }
    if let Some(key) = req
        .headers()
        .get("X-API-Key")?
        .filter(|k| !k.trim().is_empty())
    {
        return Ok((key.trim().to_string(), KeySource::Header));
    }
    let url = req.url()?;
    url.query_pairs()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .map(|k| (k, KeySource::Query))
        .ok_or_else(|| {
            ApiError::new(
                401,
                "missing_key",
                "send the ingest key as `Authorization: Bearer <key>` or `?key=`",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_short_printable_names() {
        assert_eq!(
            actor_from_header("  ana@example.com ").unwrap(),
            "ana@example.com"
        );
        assert_eq!(actor_from_header("").unwrap(), "admin");
        assert_eq!(
            actor_from_header("a\u{7}b").unwrap_err().field.as_deref(),
            Some("X-Telltale-Actor")
        );
        assert!(actor_from_header(&"x".repeat(129)).is_err());
    }
}
