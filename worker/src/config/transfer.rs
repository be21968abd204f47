//! Moving config between apps (environments such as `shop-staging` and `shop`):
//! `GET /v1/apps/{app}/config/export` bundles a commit with its history and revisions;
//! `POST /v1/apps/{app}/config/import` checks the bundle, merges it into the app's head
//! three ways, validates the result exactly as staging would, and commits it.

use super::history::message_ok;
use super::history::write_commit;
use super::staging::MAX_ENTRY_BYTES;
use super::{
    admin_for_app, admin_reading_app, check_config, check_probe_targets, effective,
    insert_revision, resolve_commit, revision_bodies, CommitRow, CommitView,
};
use crate::args;
use crate::auth::actor;
use crate::http::{internal, json, now_ms, read_json_limited, ApiError, ApiResult, Query};
use crate::store::Db;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use telltale_core::config::{
    commit_id, merge_three_way, revision_id, CommitContent, Conflict, Kind, Snapshot,
};
use telltale_core::time::{MAX_API_MS, MIN_API_MS};
use worker::{Env, Request};

/// Largest import bundle.
pub const MAX_BUNDLE_BYTES: usize = 8 * 1024 * 1024;
/// Most ancestors an export carries (and an import reads).
const MAX_ANCESTORS: usize = 1_000;

/// One revision in a bundle.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct BundleRevision {
    kind: Kind,
    key: String,
    body: Value,
}

/// An exported commit with its history and every revision it needs.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    commit: CommitView,
    /// Ancestor commits, newest first: lets the importer find a common base.
    ancestors: Vec<CommitView>,
    /// revision id -> {kind, key, body}
    revisions: BTreeMap<String, BundleRevision>,
}

/// `GET /v1/config/export?commit=` (default head).
pub async fn export(req: Request, env: &Env, app: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    let query = Query::parse(&req, &["commit"])?;
    let target = query.get("commit").unwrap_or("head");
    let db = Db::open(env)?;
    let commit = resolve_commit(&db, app, target, "commit").await?;
    json(200, &bundle(&db, app, commit).await?)
}

/// The app's head as an import bundle (what the archive's daily backup holds), or `None`
/// while the app has no commit.
pub async fn head_bundle(db: &Db, app: &str) -> Result<Option<Value>, ApiError> {
    if super::ref_commit(db, app, "head").await?.is_none() {
        return Ok(None);
    }
    let commit = resolve_commit(db, app, "head", "commit").await?;
    let bundle = bundle(db, app, commit).await?;
    serde_json::to_value(&bundle).map(Some).map_err(internal)
}

/// A commit with its ancestors and every revision they name.
async fn bundle(db: &Db, app: &str, commit: CommitView) -> Result<Bundle, ApiError> {
    // The ancestors in one query, newest first.
    let rows: Vec<CommitRow> = db
        .all(
            "reading the history",
            "WITH RECURSIVE chain(id, depth) AS ( \
               SELECT parent, 1 FROM commits WHERE app = ?1 AND id = ?2 \
               UNION ALL SELECT c.parent, chain.depth + 1 FROM commits c JOIN chain ON c.app = ?1 AND c.id = chain.id \
               WHERE c.parent IS NOT NULL AND chain.depth < ?3) \
             SELECT commits.* FROM chain JOIN commits ON commits.app = ?1 AND commits.id = chain.id ORDER BY chain.depth",
            args![app, &commit.id, MAX_ANCESTORS as i64],
        )
        .await?;
    let ancestors: Vec<CommitView> = rows
        .into_iter()
        .map(CommitRow::view)
        .collect::<Result<_, _>>()?;
    let mut ids: Vec<&str> = commit.snapshot.revisions().into_iter().collect();
    for a in &ancestors {
        ids.extend(a.snapshot.revisions());
    }
    let bodies = revision_bodies(db, ids.iter().copied()).await?;
    let mut revisions = BTreeMap::new();
    for c in std::iter::once(&commit).chain(ancestors.iter()) {
        for kind in Kind::ALL {
            for (key, rev) in c.snapshot.entries(kind) {
                if let Some(body) = bodies.get(rev) {
                    revisions.insert(
                        rev.clone(),
                        BundleRevision {
                            kind,
                            key: key.clone(),
                            body: body.clone(),
                        },
                    );
                }
            }
        }
    }
    Ok(Bundle {
        commit,
        ancestors,
        revisions,
    })
}

fn entries_of(
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    Kind::ALL
        .iter()
        .map(|kind| {
            let map = snapshot
                .entries(*kind)
                .iter()
                .filter_map(|(k, r)| bodies.get(r).map(|b| (k.clone(), b.clone())))
                .collect();
            (kind.as_str().to_string(), map)
        })
        .collect()
}

/// A commit brought in must look like one this collector would write: a short printable
/// author, a message within the limit, a time within the API's range.
fn check_commit_metadata(c: &CommitView) -> Result<(), ApiError> {
    let bad = |field: &str, message: &str| {
        Err(
            ApiError::new(422, "invalid_commit", format!("commit {}: {message}", c.id))
                .with_field(format!("commits.{}.{field}", c.id)),
        )
    };
    if c.author.is_empty()
        || c.author.chars().count() > 128
        || c.author.chars().any(char::is_control)
    {
        return bad("author", "the author must be 1 to 128 printable characters");
    }
    if !message_ok(&c.message) {
        return bad(
            "message",
            "the message must be 1 to 2,000 characters without control characters",
        );
    }
    if !(MIN_API_MS..=MAX_API_MS).contains(&c.created_at_ms) {
        return bad(
            "created_at_ms",
            "the time must be within the years 0000 to 9999",
        );
    }
    Ok(())
}

/// Checks that a bundle is what it claims: every revision matches its content address,
/// every commit its id, and every revision a commit names is in the bundle.
fn verify_bundle(bundle: &Bundle) -> Result<HashMap<String, Value>, ApiError> {
    if bundle.ancestors.len() > MAX_ANCESTORS {
        return Err(ApiError::new(
            413,
            "too_many_commits",
            format!("a bundle carries at most {MAX_ANCESTORS} ancestors"),
        )
        .with_field("ancestors"));
    }
    let mut bodies = HashMap::new();
    for (id, entry) in &bundle.revisions {
        if entry.body.to_string().len() > MAX_ENTRY_BYTES {
            return Err(ApiError::new(
                413,
                "entry_too_large",
                format!("revision {id} is over the {MAX_ENTRY_BYTES}-byte limit of one entry"),
            )
            .with_field(format!("revisions.{id}")));
        }
        if &revision_id(&entry.body) != id {
            return Err(ApiError::new(
                422,
                "revision_mismatch",
                format!("revision {id} does not match its content"),
            )
            .with_field(format!("revisions.{id}")));
        }
        bodies.insert(id.clone(), entry.body.clone());
    }
    for c in std::iter::once(&bundle.commit).chain(bundle.ancestors.iter()) {
        check_commit_metadata(c)?;
        let content = CommitContent {
            parent: c.parent.clone(),
            author: c.author.clone(),
            message: c.message.clone(),
            created_at: c.created_at_ms,
            snapshot: c.snapshot.clone(),
        };
        if commit_id(&content) != c.id {
            return Err(ApiError::new(
                422,
                "commit_mismatch",
                format!("commit {} does not match its content", c.id),
            )
            .with_field("commit"));
        }
        if let Some(missing) = c
            .snapshot
            .revisions()
            .into_iter()
            .find(|r| !bodies.contains_key(*r))
        {
            return Err(ApiError::new(
                422,
                "missing_revision",
                format!("revision {missing} is not in the bundle"),
            )
            .with_field("revisions"));
        }
    }
    Ok(bodies)
}

/// `POST /v1/config/import` with an export bundle: copies missing commits and revisions,
/// merges the bundle's commit into head three ways (field by field, against the newest
/// common ancestor), checks the merged config as staging would, and commits it.
/// Conflicts are a 409 and an invalid result a 422, each listing every problem; nothing
/// is written then. The stage must be empty.
pub async fn import(mut req: Request, env: &Env, app: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let who = actor(&req)?;
    let bundle: Bundle = read_json_limited(&mut req, MAX_BUNDLE_BYTES).await?;
    let bundle_bodies = verify_bundle(&bundle)?;
    let db = Db::open(env)?;
    let (head, _, stage) = effective(&db, app).await?;
    if !stage.is_empty() {
        return Err(ApiError::new(
            409,
            "stage_not_empty",
            "commit or discard staged changes before importing",
        ));
    }
    let ours = head
        .as_ref()
        .map(|h| h.snapshot.clone())
        .unwrap_or_default();
    // The newest commit of theirs that we also have is the merge base (one query).
    let theirs: Vec<&CommitView> = std::iter::once(&bundle.commit)
        .chain(bundle.ancestors.iter())
        .collect();
    let ids = serde_json::to_string(&theirs.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .map_err(internal)?;
    #[derive(Deserialize)]
    struct Known {
        id: String,
    }
    let known: Vec<Known> = db
        .all(
            "finding the merge base",
            "SELECT id FROM commits WHERE app = ?1 AND id IN (SELECT value FROM json_each(?2))",
            args![app, &ids],
        )
        .await?;
    let base = theirs
        .iter()
        .find(|c| known.iter().any(|k| k.id == c.id))
        .map(|c| c.snapshot.clone())
        .unwrap_or_default();
    let mut bodies = revision_bodies(&db, ours.revisions()).await?;
    bodies.extend(bundle_bodies.clone());
    let merge = merge_three_way(
        &entries_of(&base, &bodies),
        &entries_of(&ours, &bodies),
        &entries_of(&bundle.commit.snapshot, &bodies),
    );
    if !merge.conflicts.is_empty() {
        return Err(merge_conflict(merge.conflicts));
    }
    // The merged config, as it would be committed.
    let mut merged = Snapshot::default();
    let mut merged_bodies = HashMap::new();
    for (kind, entries) in &merge.entries {
        let Some(kind) = Kind::parse(kind) else {
            continue;
        };
        for (key, body) in entries {
            let rev = revision_id(body);
            merged.entries_mut(kind).insert(key.clone(), rev.clone());
            merged_bodies.insert(rev, body.clone());
        }
    }
    check_config(
        &merged,
        &merged_bodies,
        "the merged config was not imported",
    )?;
    check_probe_targets(env, &req, &merged, &merged_bodies)?;
    // Copy what is missing, then commit the merged snapshot on top of head. The
    // bundle's own commits and revisions are history: they were verified above and are
    // stored as they are (content-addressed), never served unless merged.
    let mut statements = Vec::new();
    for (id, entry) in &bundle.revisions {
        statements.push(insert_revision(
            &db,
            id,
            entry.kind,
            &entry.key,
            &entry.body,
        )?);
    }
    for c in bundle
        .ancestors
        .iter()
        .rev()
        .chain(std::iter::once(&bundle.commit))
    {
        let snapshot = serde_json::to_string(&c.snapshot).map_err(internal)?;
        statements.push(db.stmt(
            "INSERT INTO commits (app, id, parent, author, message, created_at, snapshot) VALUES (?7, ?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            args![&c.id, c.parent.as_deref(), &c.author, &c.message, c.created_at_ms, &snapshot, app],
        )?);
    }
    for kind in Kind::ALL {
        for (key, rev) in merged.entries(kind) {
            if let Some(body) = merged_bodies.get(rev) {
                statements.push(insert_revision(&db, rev, kind, key, body)?);
            }
        }
    }
    db.batch("importing", statements).await?;
    if merged == ours {
        return json(
            200,
            &json!({"merged": false, "head": head.map(|h| h.id), "message": "already up to date"}),
        );
    }
    let content = CommitContent {
        parent: head.map(|h| h.id),
        author: who.clone(),
        message: format!(
            "import {} ({})",
            &bundle.commit.id[..12.min(bundle.commit.id.len())],
            bundle.commit.message
        ),
        created_at: now_ms(),
        snapshot: merged,
    };
    let view = write_commit(&db, app, &content, &[], &who, "import").await?;
    json(201, &json!({"merged": true, "commit": view}))
}

fn merge_conflict(conflicts: Vec<Conflict>) -> ApiError {
    let mut e = ApiError::new(
        409,
        "merge_conflict",
        format!(
            "{} field(s) changed on both sides; nothing was imported",
            conflicts.len()
        ),
    );
    e.details = Some(json!({ "conflicts": conflicts }));
    e
}
