//! The admin config API (`/v1/config/...`), split by what a reader looks for:
//! - [`staging`]: stage and unstage edits, validated when staged;
//! - [`history`]: commits, the log, diffs and the audit log;
//! - [`release`]: publish and roll back;
//! - [`transfer`]: export and import with a three-way merge.
//!
//! Every app has its own config: `/v1/apps/{app}/config/...`. This module holds what
//! the parts share: reading an app's repository in D1 (refs, commits, the stage) and the
//! shared, content-addressed revisions. The published state is `crate::published`'s.

pub mod history;
pub mod inspect;
pub mod release;
pub mod staging;
pub mod transfer;

use crate::args;
use crate::http::{internal, ApiError};
use crate::store::{Db, Stmt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use telltale_core::config::{validate_snapshot, Kind, Snapshot};
use telltale_core::time::format_rfc3339;

/// Reading the history of an app (log, commits, diff, audit, export): a deleted app's
/// is kept, and stays readable.
pub(crate) async fn admin_reading_app(
    req: &worker::Request,
    env: &worker::Env,
    app: &str,
) -> Result<(), ApiError> {
    crate::auth::require_admin(req, env)?;
    crate::apps::require_known_app(env, app).await.map(|_| ())
}

/// The app a config request names (`/v1/apps/{app}/config/...`), after the admin key.
pub(crate) async fn admin_for_app(
    req: &worker::Request,
    env: &worker::Env,
    app: &str,
) -> Result<(), ApiError> {
    crate::auth::require_admin(req, env)?;
    crate::apps::require_app(env, app).await.map(|_| ())
}

/// Parses a kind named in a path (`flags`, `segments`, `probes`, `experiments`).
pub(crate) fn parse_kind(kind: &str) -> Result<Kind, ApiError> {
    Kind::parse(kind).ok_or_else(|| {
        ApiError::not_found(
            "unknown_kind",
            "kind",
            format!("no config kind `{kind}`; use flags, segments, probes or experiments"),
        )
    })
}

#[derive(Deserialize)]
pub(crate) struct CommitRow {
    id: String,
    parent: Option<String>,
    author: String,
    message: String,
    created_at: i64,
    snapshot: String,
}

/// A commit as the API shows it.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CommitView {
    pub id: String,
    pub parent: Option<String>,
    pub author: String,
    pub message: String,
    pub created_at: String,
    pub created_at_ms: i64,
    pub snapshot: Snapshot,
}

impl CommitRow {
    pub(crate) fn view(self) -> Result<CommitView, ApiError> {
        let snapshot = serde_json::from_str(&self.snapshot).map_err(internal)?;
        Ok(CommitView {
            id: self.id,
            parent: self.parent,
            author: self.author,
            message: self.message,
            created_at: format_rfc3339(self.created_at),
            created_at_ms: self.created_at,
            snapshot,
        })
    }
}

pub(crate) async fn ref_commit(db: &Db, app: &str, name: &str) -> Result<Option<String>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        commit_id: String,
    }
    let row: Option<Row> = db
        .first(
            "reading refs",
            "SELECT commit_id FROM refs WHERE app = ?1 AND name = ?2",
            args![app, name],
        )
        .await?;
    Ok(row.map(|r| r.commit_id))
}

pub(crate) async fn commit_by_id(
    db: &Db,
    app: &str,
    id: &str,
) -> Result<Option<CommitView>, ApiError> {
    let row: Option<CommitRow> = db
        .first(
            "reading a commit",
            "SELECT id, parent, author, message, created_at, snapshot FROM commits WHERE app = ?1 AND id = ?2",
            args![app, id],
        )
        .await?;
    row.map(CommitRow::view).transpose()
}

/// The commit a ref names, if the ref is set.
pub(crate) async fn commit_at_ref(
    db: &Db,
    app: &str,
    name: &str,
) -> Result<Option<CommitView>, ApiError> {
    match ref_commit(db, app, name).await? {
        Some(id) => commit_by_id(db, app, &id).await,
        None => Ok(None),
    }
}

/// Resolves `head`, `published`, a full commit id, or a unique prefix of 7+ hex
/// characters. Anything else is a 404 naming it.
pub(crate) async fn resolve_commit(
    db: &Db,
    app: &str,
    name: &str,
    field: &str,
) -> Result<CommitView, ApiError> {
    let unknown = || ApiError::not_found("unknown_commit", field, format!("no commit `{name}`"));
    let is_hex = !name.is_empty() && name.bytes().all(|c| c.is_ascii_hexdigit());
    let id = match name {
        "head" | "published" => ref_commit(db, app, name).await?.ok_or_else(unknown)?,
        full if is_hex && full.len() == 64 => full.to_ascii_lowercase(),
        prefix if is_hex && (7..64).contains(&prefix.len()) => {
            let prefix = prefix.to_ascii_lowercase();
            #[derive(Deserialize)]
            struct Row {
                id: String,
            }
            // A range scan, not LIKE: D1 refuses long LIKE patterns.
            let upper = format!("{prefix}g");
            let rows: Vec<Row> = db
                .all(
                    "resolving a commit",
                    "SELECT id FROM commits WHERE app = ?1 AND id >= ?2 AND id < ?3 ORDER BY id LIMIT 2",
                    args![app, &prefix, &upper],
                )
                .await?;
            match rows.as_slice() {
                [one] => one.id.clone(),
                [] => return Err(unknown()),
                _ => {
                    return Err(ApiError::new(
                        400,
                        "ambiguous_commit",
                        format!("`{name}` matches several commits"),
                    )
                    .with_field(field))
                }
            }
        }
        _ => return Err(unknown()),
    };
    commit_by_id(db, app, &id).await?.ok_or_else(unknown)
}

#[derive(Deserialize)]
pub(crate) struct StageRow {
    pub kind: String,
    pub key: String,
    pub revision: Option<String>,
}

pub(crate) async fn stage_rows(db: &Db, app: &str) -> Result<Vec<StageRow>, ApiError> {
    db.all(
        "reading the stage",
        "SELECT kind, key, revision FROM stage WHERE app = ?1 ORDER BY kind, key",
        args![app],
    )
    .await
}

/// Bodies of revisions by id.
pub(crate) async fn revision_bodies<'a>(
    db: &Db,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, Value>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
        body: String,
    }
    let ids: Vec<&str> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = serde_json::to_string(&ids).map_err(internal)?;
    let rows: Vec<Row> = db
        .all(
            "reading revisions",
            "SELECT id, body FROM revisions WHERE id IN (SELECT value FROM json_each(?1))",
            args![&list],
        )
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.id, serde_json::from_str(&r.body).map_err(internal)?)))
        .collect()
}

/// The bodies of every revision a snapshot names.
pub(crate) async fn snapshot_bodies(
    db: &Db,
    snapshot: &Snapshot,
) -> Result<HashMap<String, Value>, ApiError> {
    revision_bodies(db, snapshot.revisions()).await
}

/// The head commit (if any) and the effective snapshot: head plus staged changes.
pub(crate) async fn effective(
    db: &Db,
    app: &str,
) -> Result<(Option<CommitView>, Snapshot, Vec<StageRow>), ApiError> {
    let head = commit_at_ref(db, app, "head").await?;
    let mut snapshot = head
        .as_ref()
        .map(|h| h.snapshot.clone())
        .unwrap_or_default();
    let stage = stage_rows(db, app).await?;
    for row in &stage {
        if let Some(map) = snapshot.kind_mut(&row.kind) {
            match &row.revision {
                Some(rev) => map.insert(row.key.clone(), rev.clone()),
                None => map.remove(&row.key),
            };
        }
    }
    Ok((head, snapshot, stage))
}

/// Checks a whole config as staging would; a 422 listing every problem (entry and field)
/// when it is not valid, saying `outcome`.
pub(crate) fn check_config(
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
    outcome: &str,
) -> Result<(), ApiError> {
    let problems = validate_snapshot(snapshot, bodies);
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let listed: Vec<String> = problems
        .iter()
        .map(|p| format!("{} ({})", p.field, p.message))
        .collect();
    let mut e = ApiError::new(
        422,
        "invalid_config",
        format!(
            "{} problem(s); {outcome}: {}",
            problems.len(),
            listed.join("; ")
        ),
    )
    .with_field(first.field.clone());
    e.details = Some(serde_json::json!({ "problems": problems }));
    Err(e)
}

/// Checks every probe of a config against this deployment's target policy (import and
/// publish: what staging checks, for config that did not come through staging).
pub(crate) fn check_probe_targets(
    env: &worker::Env,
    req: &worker::Request,
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> Result<(), ApiError> {
    for (key, rev) in &snapshot.probes {
        let url = bodies
            .get(rev)
            .and_then(|b| b.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Err(e) = crate::dev::check_probe_url(env, Some(req), url) {
            return Err(
                ApiError::new(422, e.code, format!("probes/{key}: {}", e.message))
                    .with_field(format!("probes/{key}.url")),
            );
        }
    }
    Ok(())
}

/// Stores a revision body (content-addressed: storing it twice changes nothing).
pub(crate) fn insert_revision(
    db: &Db,
    id: &str,
    kind: Kind,
    key: &str,
    body: &Value,
) -> Result<Stmt, ApiError> {
    db.stmt(
        "INSERT INTO revisions (id, kind, key, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        args![id, kind.as_str(), key, &body.to_string(), crate::http::now()],
    )
}
