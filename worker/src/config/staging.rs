//! Staging: `PUT|DELETE /v1/apps/{app}/config/stage/{kind}/{key}` and
//! `GET /v1/apps/{app}/config/stage`.
//! Every edit is validated here, when it is staged, against the effective config (head
//! plus the stage); a deletion that others still reference is refused.

use super::{
    admin_for_app, effective, insert_revision, parse_kind, revision_bodies, snapshot_bodies,
};
use crate::args;
use crate::audit::audit;
use crate::auth::actor;
use crate::dev::check_probe_url;
use crate::http::{json, now, now_ms, read_json_limited, ApiError, ApiResult, Query};
use crate::store::{Db, Stmt};
use serde_json::{json, Value};
use telltale_core::config::{experiments_on_flag, referrers, revision_id, Kind};
use telltale_core::experiment::ExperimentDef;
use telltale_core::FieldError;
use worker::{Env, Request};

/// Largest body of one staged entry: far above any real flag, far below what would
/// strain storage.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

fn to_422(e: FieldError) -> ApiError {
    ApiError::new(422, e.code, e.message).with_field(e.field)
}

/// Sets the body's `key` from the path, refusing a body that names another key.
fn bind_key(body: &mut Value, kind: Kind, key: &str) -> Result<(), ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::new(
            422,
            "invalid_type",
            format!("a {} must be a JSON object", kind.singular()),
        )
        .with_field("body"));
    };
    match map.get("key") {
        None => {
            map.insert("key".into(), Value::String(key.to_string()));
            Ok(())
        }
        Some(Value::String(k)) if k == key => Ok(()),
        Some(_) => Err(ApiError::new(
            422,
            "key_mismatch",
            format!("the body's key must equal the path's `{key}`"),
        )
        .with_field("key")),
    }
}

/// `PUT /v1/apps/{app}/config/stage/{kind}/{key}`: validate and stage a flag, segment,
/// probe or experiment.
pub async fn stage_put(mut req: Request, env: &Env, app: &str, kind: &str, key: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let kind = parse_kind(kind)?;
    let who = actor(&req)?;
    let mut body: Value = read_json_limited(&mut req, MAX_ENTRY_BYTES).await?;
    bind_key(&mut body, kind, key)?;
    let db = Db::open(env)?;
    let (head, mut snapshot, _) = effective(&db, app).await?;
    let before_rev = snapshot.entries(kind).get(key).cloned();
    let mut bodies = snapshot_bodies(&db, &snapshot).await?;
    let rev = revision_id(&body);
    snapshot
        .entries_mut(kind)
        .insert(key.to_string(), rev.clone());
    bodies.insert(rev.clone(), body.clone());
    // The whole would-be config is checked, so an entry can only be staged where it
    // fits: its references exist and no prerequisite cycle appears.
    telltale_core::config::validate_entry(kind, key, &body, &snapshot, &bodies).map_err(to_422)?;
    if kind == Kind::Probes {
        // Where a probe may call depends on the deployment, not only on the config.
        let url = body.get("url").and_then(Value::as_str).unwrap_or_default();
        check_probe_url(env, Some(&req), url).map_err(to_422)?;
    }
    let head_rev = head
        .as_ref()
        .and_then(|h| h.snapshot.entries(kind).get(key))
        .cloned();
    let before = before_rev
        .as_ref()
        .and_then(|r| bodies.get(r))
        .cloned()
        .unwrap_or(Value::Null);
    let mut statements = vec![insert_revision(&db, &rev, kind, key, &body)?];
    if kind == Kind::Experiments {
        // Validated above; its metric events are kept from now on.
        let def = telltale_core::experiment::read_experiment(&body).map_err(to_422)?;
        statements.extend(register_metric_events(&db, app, &def)?);
    }
    if head_rev.as_deref() == Some(rev.as_str()) {
        // Back to what head has: nothing left to stage for this key.
        statements.push(db.stmt(
            "DELETE FROM stage WHERE app = ?1 AND kind = ?2 AND key = ?3",
            args![app, kind.as_str(), key],
        )?);
    } else {
        statements.push(db.stmt(
            "INSERT INTO stage (app, kind, key, revision, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (app, kind, key) DO UPDATE SET revision = excluded.revision, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            args![app, kind.as_str(), key, &rev, now(), &who],
        )?);
    }
    statements.push(audit(
        &db,
        app,
        &who,
        "stage.put",
        &format!("{}/{key}", kind.as_str()),
        &before,
        &body,
    )?);
    db.batch("staging", statements).await?;
    json(
        200,
        &json!({"kind": kind, "key": key, "revision": rev, "body": body}),
    )
}

/// Statements that register an experiment's metric events: the consumer keeps copies of
/// new ones from then on, and the rows stored before wait for the bounded copy chunks
/// (the cron's, and each results request's: worker/src/experiments.rs).
pub(crate) fn register_metric_events(
    db: &Db,
    app: &str,
    def: &ExperimentDef,
) -> Result<Vec<Stmt>, ApiError> {
    let at = now_ms();
    let mut names: Vec<&str> = def.metrics().map(|m| m.event.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut statements = Vec::new();
    for name in names {
        statements.push(db.stmt(
            crate::store::experiments_sql("register_name")?,
            args![app, name, at],
        )?);
    }
    Ok(statements)
}

/// `DELETE /v1/apps/{app}/config/stage/{kind}/{key}`: stage a deletion. Refused (409)
/// while other flags reference it; removing a reference never deletes the referenced
/// entity.
pub async fn stage_delete(req: Request, env: &Env, app: &str, kind: &str, key: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let kind = parse_kind(kind)?;
    let who = actor(&req)?;
    let db = Db::open(env)?;
    let (head, snapshot, _) = effective(&db, app).await?;
    let Some(rev) = snapshot.entries(kind).get(key).cloned() else {
        return Err(ApiError::not_found(
            kind.unknown_code(),
            "key",
            format!("no {} `{key}`", kind.singular()),
        ));
    };
    let bodies = snapshot_bodies(&db, &snapshot).await?;
    let flags = snapshot
        .flags
        .iter()
        .filter_map(|(k, r)| bodies.get(r).map(|b| (k.as_str(), b)));
    let users = referrers(kind, key, flags);
    let experiments = if kind == Kind::Flags {
        experiments_on_flag(key, &snapshot, &bodies)
    } else {
        Vec::new()
    };
    if !experiments.is_empty() {
        let mut e = ApiError::new(
            409,
            kind.in_use_code(),
            format!(
                "flag `{key}` runs experiments: {}; delete those first",
                experiments.join(", ")
            ),
        )
        .with_field("key");
        e.details = Some(json!({ "flags": users, "experiments": experiments }));
        return Err(e);
    }
    if !users.is_empty() {
        let mut e = ApiError::new(
            409,
            kind.in_use_code(),
            format!(
                "{} `{key}` is used by flags: {}; remove those references first",
                kind.singular(),
                users.join(", ")
            ),
        )
        .with_field("key");
        e.details = Some(json!({ "flags": users }));
        return Err(e);
    }
    let in_head = head
        .as_ref()
        .is_some_and(|h| h.snapshot.entries(kind).contains_key(key));
    let stmt = if in_head {
        db.stmt(
            "INSERT INTO stage (app, kind, key, revision, updated_at, updated_by) VALUES (?1, ?2, ?3, NULL, ?4, ?5) \
             ON CONFLICT (app, kind, key) DO UPDATE SET revision = NULL, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            args![app, kind.as_str(), key, now(), &who],
        )?
    } else {
        db.stmt(
            "DELETE FROM stage WHERE app = ?1 AND kind = ?2 AND key = ?3",
            args![app, kind.as_str(), key],
        )?
    };
    let before = bodies.get(&rev).cloned().unwrap_or(Value::Null);
    let line = audit(
        &db,
        app,
        &who,
        "stage.delete",
        &format!("{}/{key}", kind.as_str()),
        &before,
        &Value::Null,
    )?;
    db.batch("staging a deletion", vec![stmt, line]).await?;
    json(200, &json!({"kind": kind, "key": key, "deleted": true}))
}

/// `GET /v1/apps/{app}/config/stage`: what the next commit would change.
pub async fn stage_get(req: Request, env: &Env, app: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let db = Db::open(env)?;
    let (head, _, stage) = effective(&db, app).await?;
    let ids: Vec<&str> = stage.iter().filter_map(|r| r.revision.as_deref()).collect();
    let bodies = revision_bodies(&db, ids).await?;
    let changes: Vec<Value> = stage
        .iter()
        .map(|r| {
            let in_head = head
                .as_ref()
                .and_then(|h| h.snapshot.kind(&r.kind))
                .is_some_and(|m| m.contains_key(&r.key));
            let change = match (&r.revision, in_head) {
                (None, _) => "removed",
                (Some(_), true) => "modified",
                (Some(_), false) => "added",
            };
            json!({"kind": r.kind, "key": r.key, "change": change, "revision": r.revision,
                   "body": r.revision.as_ref().and_then(|id| bodies.get(id))})
        })
        .collect();
    json(
        200,
        &json!({"head": head.map(|h| h.id), "changes": changes}),
    )
}
