//! Registered apps and their keys. Apps live in KV (`app:<id>`, `ingest-key:<key>`), so
//! authenticating an ingest request never needs D1: ingest keeps working when D1 does not.

use crate::args;
use crate::auth::{ingest_key, require_admin, KeySource};
use crate::http::{env_string, internal, json, now_ms, read_json, ApiError, ApiResult, Query};
use crate::store::{kv, list_keys, Db};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use telltale_core::apps::{origin_allowed, validate_app_id, validate_origin};
use telltale_core::archive::{validate_retention_days, DEFAULT_RETENTION_DAYS};
use telltale_core::auth::secrets_match;
use telltale_core::time::format_rfc3339;
use worker::{Env, Request};

pub const DEMO_APP_ID: &str = "demo";
/// How long an isolate trusts its cached key lookup.
const KEY_CACHE_TTL_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub ingest_key: String,
    pub allowed_origins: Vec<String>,
    pub created_at: String,
    /// Set when the app was deleted: its keys are revoked, its data kept, its id retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Keys replaced by a rotation that stay valid until their time (the overlap).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<PreviousKey>,
    /// Days raw events stay in D1 before the archive moves them to R2 (apps stored before
    /// the archive existed read as the default).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// A `retention_days` from a request, checked (its type too, so the error names the field).
fn check_retention(days: serde_json::Value) -> Result<u32, ApiError> {
    let days = days.as_i64().ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_type",
            "retention_days must be a whole number of days",
        )
        .with_field("retention_days")
    })?;
    validate_retention_days(days).map_err(|e| ApiError::from_field(400, e))
}

/// A rotated-out ingest key and until when it still works.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviousKey {
    pub key: String,
    pub expires_at: String,
    pub expires_at_ms: i64,
}

impl App {
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }

    /// Whether `key` opens this app at `now`: its key, or a rotated-out one in its overlap.
    fn accepts(&self, key: &str, now: i64) -> bool {
        self.is_live()
            && (self.ingest_key == key
                || self
                    .previous_keys
                    .iter()
                    .any(|p| p.key == key && p.expires_at_ms > now))
    }
}

thread_local! {
    // Per-isolate cache: ingest key -> (app, fetched at ms).
    static KEY_CACHE: RefCell<HashMap<String, (App, i64)>> = RefCell::new(HashMap::new());
}

pub async fn app_by_id(env: &Env, id: &str) -> Result<Option<App>, ApiError> {
    // Not an app id, so no app: never a storage lookup (KV refuses long keys).
    if validate_app_id(id).is_err() {
        return Ok(None);
    }
    if id == DEMO_APP_ID {
        ensure_demo_app(env).await?;
    }
    Ok(kv(env)?.get(&format!("app:{id}")).json::<App>().await?)
}

/// The app behind the request's ingest key, with the browser origin checked.
pub async fn authenticate(req: &Request, env: &Env) -> Result<(App, KeySource), ApiError> {
    let (key, source) = ingest_key(req)?;
    authenticate_key(req, env, &key, source).await
}

/// [`authenticate`] with a key already read (a Segment request's `writeKey`).
pub async fn authenticate_key(
    req: &Request,
    env: &Env,
    key: &str,
    source: KeySource,
) -> Result<(App, KeySource), ApiError> {
    let app = app_by_ingest_key(env, key)
        .await?
        .ok_or_else(|| ApiError::new(401, "invalid_key", "the ingest key is not registered"))?;
    if let Some(origin) = req.headers().get("Origin")? {
        if !origin_allowed(&app.allowed_origins, &origin) {
            return Err(ApiError::new(
                403,
                "origin_not_allowed",
                format!("origin `{origin}` is not allowed for app `{}`", app.id),
            )
            .with_field("Origin"));
        }
    }
    Ok((app, source))
}

/// An app named in a request path, live or deleted (what it kept stays readable), or a
/// 404 naming it.
pub async fn require_known_app(env: &Env, id: &str) -> Result<App, ApiError> {
    app_by_id(env, id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_app", "app", format!("no app `{id}`")))
}

/// A live app named in a request path, or a 404 naming it.
pub async fn require_app(env: &Env, id: &str) -> Result<App, ApiError> {
    match app_by_id(env, id).await? {
        Some(app) if app.is_live() => Ok(app),
        Some(_) => Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("app `{id}` was deleted"),
        )),
        None => Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app `{id}`"),
        )),
    }
}

/// Resolves an ingest key to its app, through the isolate cache.
pub async fn app_by_ingest_key(env: &Env, key: &str) -> Result<Option<App>, ApiError> {
    let now = now_ms();
    let cached = KEY_CACHE.with(|c| {
        c.borrow()
            .get(key)
            .filter(|(_, at)| now - at < KEY_CACHE_TTL_MS)
            .map(|(app, _)| app.clone())
    });
    if let Some(app) = cached {
        // A rotated-out key ends at its time even while the app is cached.
        return Ok(app.accepts(key, now).then_some(app));
    }
    if env_string(env, "DEMO_INGEST_KEY").is_some_and(|demo| secrets_match(key, &demo)) {
        ensure_demo_app(env).await?;
    }
    let store = kv(env)?;
    let Some(app_id) = store.get(&format!("ingest-key:{key}")).text().await? else {
        return Ok(None);
    };
    let app = store
        .get(&format!("app:{app_id}"))
        .json::<App>()
        .await?
        .filter(|app| app.accepts(key, now));
    if let Some(app) = &app {
        KEY_CACHE.with(|c| c.borrow_mut().insert(key.to_string(), (app.clone(), now)));
    }
    Ok(app)
}

async fn put_app(env: &Env, app: &App) -> Result<(), ApiError> {
    let store = kv(env)?;
    let body = serde_json::to_string(app).map_err(internal)?;
    // The key mapping first: an app record is only visible once its key resolves.
    store
        .put(&format!("ingest-key:{}", app.ingest_key), app.id.as_str())?
        .execute()
        .await?;
    store
        .put(&format!("app:{}", app.id), body)?
        .execute()
        .await?;
    remember(app);
    Ok(())
}

/// Seeds the local demo app from the `DEMO_INGEST_KEY` and `DEMO_ALLOWED_ORIGINS` vars
/// that `npm start` writes. Idempotent; does nothing where those vars are unset.
pub async fn ensure_demo_app(env: &Env) -> Result<(), ApiError> {
    let Some(key) = env_string(env, "DEMO_INGEST_KEY") else {
        return Ok(());
    };
    let store = kv(env)?;
    if let Some(existing) = store
        .get(&format!("app:{DEMO_APP_ID}"))
        .json::<App>()
        .await?
    {
        if existing.ingest_key == key {
            return Ok(());
        }
    }
    let allowed_origins = env_string(env, "DEMO_ALLOWED_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(|o| o.trim().to_string())
        .filter(|o| validate_origin(o))
        .collect();
    put_app(
        env,
        &App {
            id: DEMO_APP_ID.into(),
            name: "Demo course catalogue".into(),
            ingest_key: key,
            allowed_origins,
            created_at: format_rfc3339(now_ms()),
            deleted_at: None,
            previous_keys: Vec::new(),
            retention_days: DEFAULT_RETENTION_DAYS,
        },
    )
    .await
}

/// Most allowed origins one app lists.
const MAX_ORIGINS: usize = 50;
/// The longest overlap a rotated-out key may keep: a week.
const MAX_KEY_OVERLAP_S: i64 = 7 * 24 * 3600;

fn check_origins(origins: &[String]) -> Result<(), ApiError> {
    if origins.len() > MAX_ORIGINS {
        return Err(ApiError::new(
            400,
            "invalid_value",
            format!("at most {MAX_ORIGINS} allowed origins"),
        )
        .with_field("allowed_origins"));
    }
    match origins
        .iter()
        .enumerate()
        .find(|(_, o)| !validate_origin(o))
    {
        Some((i, bad)) => Err(ApiError::new(
            400,
            "invalid_value",
            format!("`{bad}` is not an origin: use `*` or scheme://host[:port] with no path"),
        )
        .with_field(format!("allowed_origins[{i}]"))),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            400,
            "invalid_value",
            "name must be 1 to 128 printable characters",
        )
        .with_field("name"));
    }
    Ok(())
}

/// Forgets this isolate's cached key lookups of an app (after a change to it).
fn forget_cached(id: &str) {
    KEY_CACHE.with(|c| c.borrow_mut().retain(|_, (cached, _)| cached.id != id));
}

/// After a write, this isolate knows the app's keys at once, without waiting for KV to
/// show the write: every cached entry of the app is replaced by the new record, under
/// its current key and each key still in its overlap.
fn remember(app: &App) {
    forget_cached(&app.id);
    if !app.is_live() {
        return;
    }
    let now = now_ms();
    KEY_CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        let keys = std::iter::once(app.ingest_key.clone())
            .chain(app.previous_keys.iter().map(|k| k.key.clone()));
        for key in keys {
            cache.insert(key, (app.clone(), now));
        }
    });
}

fn new_ingest_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(internal)?;
    Ok(format!(
        "tt_ik_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    id: String,
    name: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    retention_days: Option<serde_json::Value>,
}

/// A field that is there, even as `null` (which `Option` alone would read as absent): a
/// `null` retention is refused, not ignored.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// `POST /v1/admin/apps {id, name?, allowed_origins: [...], retention_days?}` -> 201 with
/// the new ingest key.
pub async fn create(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let input: CreateApp = read_json(&mut req).await?;
    validate_app_id(&input.id).map_err(|e| ApiError::from_field(400, e))?;
    check_origins(&input.allowed_origins)?;
    let retention_days = input
        .retention_days
        .map(check_retention)
        .transpose()?
        .unwrap_or(DEFAULT_RETENTION_DAYS);
    match app_by_id(env, &input.id).await? {
        Some(existing) if existing.is_live() => {
            return Err(ApiError::new(
                409,
                "app_exists",
                format!("app `{}` already exists", input.id),
            )
            .with_field("id"))
        }
        Some(_) => {
            return Err(ApiError::new(
                409,
                "app_deleted",
                format!(
                    "app `{}` was deleted and its events are kept under that id; choose another id",
                    input.id
                ),
            )
            .with_field("id"))
        }
        None => {}
    }
    let name = input.name.unwrap_or_else(|| input.id.clone());
    check_name(&name)?;
    let app = App {
        name,
        id: input.id,
        ingest_key: new_ingest_key()?,
        allowed_origins: input.allowed_origins,
        created_at: format_rfc3339(now_ms()),
        deleted_at: None,
        previous_keys: Vec::new(),
        retention_days,
    };
    put_app(env, &app).await?;
    json(201, &app)
}

/// `GET /v1/admin/apps`
pub async fn list(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    ensure_demo_app(env).await?;
    let store = kv(env)?;
    let mut apps = Vec::new();
    for name in list_keys(&store, "app:").await? {
        if let Some(app) = store.get(&name).json::<App>().await? {
            if app.is_live() {
                apps.push(app);
            }
        }
    }
    #[derive(Serialize)]
    struct Listing {
        apps: Vec<App>,
    }
    json(200, &Listing { apps })
}

/// `GET /v1/admin/apps/{id}`
pub async fn get(req: Request, env: &Env, id: &str) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    match app_by_id(env, id).await? {
        Some(app) => json(200, &app),
        None => Err(ApiError::not_found(
            "unknown_app",
            "id",
            format!("no app `{id}`"),
        )),
    }
}

/// `DELETE /v1/admin/apps/{id}`: revokes the app's ingest key at once, unpublishes its
/// config (so its flags and probes stop), clears its staged edits, probe states and
/// client-drop counters, and retires its id. Raw events, aggregates, config history and
/// audit lines are kept (they are append-only); the answer says what was kept.
pub async fn delete(req: Request, env: &Env, id: &str) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    let who = crate::auth::actor(&req)?;
    let mut app = require_app(env, id).await?;
    if id == DEMO_APP_ID && env_string(env, "DEMO_INGEST_KEY").is_some() {
        return Err(ApiError::new(
            409,
            "demo_app",
            "the demo app is recreated from DEMO_INGEST_KEY; unset it to delete the demo app",
        )
        .with_field("id"));
    }
    let db = Db::open(env)?;
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            db.first::<Count>("counting what is kept", sql, args![id])
                .await
                .map(|c| c.map_or(0, |c| c.n))
        }
    };
    let events = count("SELECT COUNT(*) AS n FROM events WHERE app = ?1").await?;
    let commits = count("SELECT COUNT(*) AS n FROM commits WHERE app = ?1").await?;
    let drops = count("SELECT COUNT(*) AS n FROM client_drops WHERE app = ?1").await?;
    let was_published =
        count("SELECT COUNT(*) AS n FROM refs WHERE app = ?1 AND name = 'published'").await? > 0;
    // The key first: from here on nothing new gets in.
    let store = kv(env)?;
    let keys: Vec<String> = std::iter::once(app.ingest_key.clone())
        .chain(app.previous_keys.iter().map(|p| p.key.clone()))
        .collect();
    for key in &keys {
        store.delete(&format!("ingest-key:{key}")).await?;
    }
    app.previous_keys.clear();
    forget_cached(id);
    db.batch(
        "deleting an app",
        vec![
            db.stmt(
                "DELETE FROM refs WHERE app = ?1 AND name = 'published'",
                args![id],
            )?,
            db.stmt("DELETE FROM stage WHERE app = ?1", args![id])?,
            db.stmt("DELETE FROM probe_states WHERE app = ?1", args![id])?,
            db.stmt("DELETE FROM client_drops WHERE app = ?1", args![id])?,
            crate::audit::audit(
                &db,
                id,
                &who,
                "app.delete",
                &format!("apps/{id}"),
                &serde_json::json!({"name": app.name, "allowed_origins": app.allowed_origins}),
                &serde_json::Value::Null,
            )?,
        ],
    )
    .await?;
    crate::published::unpublish(env, id).await?;
    app.deleted_at = Some(format_rfc3339(now_ms()));
    let body = serde_json::to_string(&app).map_err(internal)?;
    store.put(&format!("app:{id}"), body)?.execute().await?;
    // Again, now that the record says deleted: a lookup between the first forget and
    // this put may have cached the live record.
    forget_cached(id);
    json(
        200,
        &serde_json::json!({
            "deleted": id,
            "revoked_ingest_keys": keys.len(),
            "removed": {"published_config": was_published, "client_drop_reports": drops},
            "kept": {"events": events, "config_commits": commits,
                     "note": "raw events, aggregates, config history and audit lines are append-only and stay queryable by id"},
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateApp {
    name: Option<String>,
    allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    retention_days: Option<serde_json::Value>,
}

/// `PATCH /v1/admin/apps/{id} {name?, allowed_origins?, retention_days?}`: rename an app,
/// change where browsers may send from, or how long raw events stay in D1 (the next
/// archive run applies it). Takes effect at once in this isolate, within 60 s in others.
pub async fn update(mut req: Request, env: &Env, id: &str) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    let who = crate::auth::actor(&req)?;
    let mut app = require_app(env, id).await?;
    let input: UpdateApp = read_json(&mut req).await?;
    let described = |app: &App| serde_json::json!({"name": app.name, "allowed_origins": app.allowed_origins, "retention_days": app.retention_days});
    let before = described(&app);
    // Everything is checked before anything changes.
    if let Some(name) = &input.name {
        check_name(name)?;
    }
    if let Some(origins) = &input.allowed_origins {
        check_origins(origins)?;
    }
    let retention_days = input.retention_days.map(check_retention).transpose()?;
    if let Some(name) = input.name {
        app.name = name;
    }
    if let Some(origins) = input.allowed_origins {
        app.allowed_origins = origins;
    }
    if let Some(days) = retention_days {
        app.retention_days = days;
    }
    let db = Db::open(env)?;
    db.batch(
        "recording an app change",
        vec![crate::audit::audit(
            &db,
            id,
            &who,
            "app.update",
            &format!("apps/{id}"),
            &before,
            &described(&app),
        )?],
    )
    .await?;
    put_app(env, &app).await?;
    json(200, &app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// How long the old key keeps working, in seconds (0 to a week).
    overlap_s: i64,
}

/// `POST /v1/admin/apps/{id}/rotate-key {overlap_s}`: a new ingest key at once; the old
/// one keeps working for the overlap (so pages already loaded, and cached SDK builds,
/// can move over), then is refused.
pub async fn rotate_key(mut req: Request, env: &Env, id: &str) -> ApiResult {
    require_admin(&req, env)?;
    Query::parse(&req, &[])?;
    let who = crate::auth::actor(&req)?;
    let mut app = require_app(env, id).await?;
    let input: RotateKey = read_json(&mut req).await?;
    if !(0..=MAX_KEY_OVERLAP_S).contains(&input.overlap_s) {
        return Err(ApiError::new(
            400,
            "invalid_value",
            format!("overlap_s must be 0 to {MAX_KEY_OVERLAP_S} seconds"),
        )
        .with_field("overlap_s"));
    }
    let now = now_ms();
    let old = std::mem::replace(&mut app.ingest_key, new_ingest_key()?);
    let expires_at_ms = now + input.overlap_s * 1000;
    app.previous_keys.retain(|p| p.expires_at_ms > now);
    let store = kv(env)?;
    if input.overlap_s > 0 {
        app.previous_keys.push(PreviousKey {
            key: old.clone(),
            expires_at: format_rfc3339(expires_at_ms),
            expires_at_ms,
        });
        // KV forgets the old mapping by itself after the overlap (its minimum TTL is 60 s;
        // the app record's expiry is what counts).
        store
            .put(&format!("ingest-key:{old}"), id)?
            .expiration_ttl(input.overlap_s.max(60) as u64)
            .execute()
            .await?;
    } else {
        store.delete(&format!("ingest-key:{old}")).await?;
    }
    let db = Db::open(env)?;
    db.batch(
        "recording a key rotation",
        vec![crate::audit::audit(
            &db,
            id,
            &who,
            "app.rotate_key",
            &format!("apps/{id}"),
            &serde_json::json!({"key_suffix": &old[old.len().saturating_sub(4)..]}),
            &serde_json::json!({"overlap_s": input.overlap_s, "previous_key_expires_at": format_rfc3339(expires_at_ms)}),
        )?],
    )
    .await?;
    put_app(env, &app).await?;
    json(
        200,
        &serde_json::json!({"app": app, "previous_key_expires_at": format_rfc3339(expires_at_ms)}),
    )
}
