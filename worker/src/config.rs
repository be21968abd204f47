//! The admin config API (`/v1/config/...`): stage, commit, publish, roll back, diff, log,
//! audit, export and import. D1 holds the history; publishing writes the snapshot to KV
//! for readers, rewriting only revisions that changed. Validation happens at staging.

use crate::apps::{kv, require_admin};
use crate::flags;
use crate::http::{
    d1, db, json, now_ms, query_pairs, query_pairs_allowing, read_json, ApiError, ApiResult,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use telltale_core::config::{
    commit_id, diff_snapshots, merge_three_way, revision_id, CommitContent, Snapshot, KINDS,
};
use telltale_core::flags::engine::{compile, validate_flag, validate_segment};
use telltale_core::flags::Ruleset;
use telltale_core::probes::validate_probe;
use telltale_core::time::format_rfc3339;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env, Request};

const MAX_ACTOR_CHARS: usize = 128;
const MAX_MESSAGE_CHARS: usize = 2_000;

/// Who is acting: the `X-Telltale-Actor` header (a name or email), else `admin`.
fn actor(req: &Request) -> Result<String, ApiError> {
    let raw = req.headers().get("X-Telltale-Actor")?.unwrap_or_default();
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

fn singular(kind: &str) -> &'static str {
    match kind {
        "flags" => "flag",
        "segments" => "segment",
        _ => "probe",
    }
}

fn check_kind(kind: &str) -> Result<(), ApiError> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "unknown_kind",
            "kind",
            format!("no config kind `{kind}`; use flags or segments"),
        ))
    }
}

#[derive(Deserialize)]
struct CommitRow {
    id: String,
    parent: Option<String>,
    author: String,
    message: String,
    created_at: f64,
    snapshot: String,
}

/// A commit as the API shows it.
#[derive(Serialize, Deserialize, Clone)]
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
    fn view(self) -> Result<CommitView, ApiError> {
        let snapshot = serde_json::from_str(&self.snapshot)
            .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
        Ok(CommitView {
            id: self.id,
            parent: self.parent,
            author: self.author,
            message: self.message,
            created_at: format_rfc3339(self.created_at as i64),
            created_at_ms: self.created_at as i64,
            snapshot,
        })
    }
}

async fn ref_commit(db: &D1Database, name: &str) -> Result<Option<String>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        commit_id: String,
    }
    let stmt = db
        .prepare("SELECT commit_id FROM refs WHERE name = ?1")
        .bind(&[name.into()])?;
    Ok(d1("reading refs", stmt.first::<Row>(None).await)?.map(|r| r.commit_id))
}

async fn commit_by_id(db: &D1Database, id: &str) -> Result<Option<CommitView>, ApiError> {
    let stmt = db
        .prepare("SELECT * FROM commits WHERE id = ?1")
        .bind(&[id.into()])?;
    d1("reading a commit", stmt.first::<CommitRow>(None).await)?
        .map(CommitRow::view)
        .transpose()
}

/// Resolves `head`, `published`, a full commit id, or a unique prefix of 7+ characters.
async fn resolve_commit(db: &D1Database, name: &str, field: &str) -> Result<CommitView, ApiError> {
    let unknown = || ApiError::not_found("unknown_commit", field, format!("no commit `{name}`"));
    let id = match name {
        "head" | "published" => ref_commit(db, name).await?.ok_or_else(unknown)?,
        prefix
            if prefix.len() >= 7
                && prefix.len() < 64
                && prefix.bytes().all(|c| c.is_ascii_hexdigit()) =>
        {
            #[derive(Deserialize)]
            struct Row {
                id: String,
            }
            let stmt = db
                .prepare("SELECT id FROM commits WHERE id LIKE ?1 || '%' LIMIT 2")
                .bind(&[prefix.into()])?;
            let rows = d1("resolving a commit", stmt.all().await)?.results::<Row>()?;
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
        full => full.to_string(),
    };
    commit_by_id(db, &id).await?.ok_or_else(unknown)
}

#[derive(Deserialize)]
struct StageRow {
    kind: String,
    key: String,
    revision: Option<String>,
}

async fn stage_rows(db: &D1Database) -> Result<Vec<StageRow>, ApiError> {
    let rows = d1(
        "reading the stage",
        db.prepare("SELECT kind, key, revision FROM stage ORDER BY kind, key")
            .all()
            .await,
    )?;
    Ok(rows.results::<StageRow>()?)
}

/// Bodies of revisions by id.
pub async fn revision_bodies<'a>(
    db: &D1Database,
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
    let list =
        serde_json::to_string(&ids).map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    let stmt = db
        .prepare("SELECT id, body FROM revisions WHERE id IN (SELECT value FROM json_each(?1))")
        .bind(&[list.into()])?;
    let rows = d1("reading revisions", stmt.all().await)?.results::<Row>()?;
    rows.into_iter()
        .map(|r| {
            let body = serde_json::from_str(&r.body)
                .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
            Ok((r.id, body))
        })
        .collect()
}

/// The head commit (if any) and the effective snapshot: head plus staged changes.
async fn effective(
    db: &D1Database,
) -> Result<(Option<CommitView>, Snapshot, Vec<StageRow>), ApiError> {
    let head = match ref_commit(db, "head").await? {
        Some(id) => commit_by_id(db, &id).await?,
        None => None,
    };
    let mut snapshot = head
        .as_ref()
        .map(|h| h.snapshot.clone())
        .unwrap_or_default();
    let stage = stage_rows(db).await?;
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

/// The wire ruleset of a snapshot (flags and segments in key order).
pub fn ruleset_of(version: &str, snapshot: &Snapshot, bodies: &HashMap<String, Value>) -> Ruleset {
    let pick = |map: &BTreeMap<String, String>| {
        map.values()
            .filter_map(|r| bodies.get(r).cloned())
            .collect()
    };
    Ruleset {
        version: version.to_string(),
        flags: pick(&snapshot.flags),
        segments: pick(&snapshot.segments),
    }
}

/// An audit line (`before`/`after` as JSON, null as SQL NULL), as a batch statement.
pub(crate) fn audit(
    db: &D1Database,
    actor: &str,
    action: &str,
    target: &str,
    before: &Value,
    after: &Value,
) -> worker::Result<D1PreparedStatement> {
    audit_if_head(db, None, actor, action, target, before, after)
}

/// An audit line, written only if head is then `head` (when given): a guarded commit
/// records only what happened.
fn audit_if_head(
    db: &D1Database,
    head: Option<&str>,
    actor: &str,
    action: &str,
    target: &str,
    before: &Value,
    after: &Value,
) -> worker::Result<D1PreparedStatement> {
    let text = |v: &Value| {
        if v.is_null() {
            JsValue::NULL
        } else {
            JsValue::from_str(&v.to_string())
        }
    };
    db.prepare("INSERT INTO audit (at, actor, action, target, before, after) SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE ?7 IS NULL OR (SELECT commit_id FROM refs WHERE name = 'head') = ?7").bind(&[
        JsValue::from_f64(now_ms() as f64),
        actor.into(),
        action.into(),
        target.into(),
        text(before),
        text(after),
        head.map_or(JsValue::NULL, JsValue::from_str),
    ])
}

fn insert_revision(
    db: &D1Database,
    id: &str,
    kind: &str,
    key: &str,
    body: &Value,
) -> worker::Result<D1PreparedStatement> {
    db.prepare("INSERT INTO revisions (id, kind, key, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING")
        .bind(&[id.into(), kind.into(), key.into(), body.to_string().into(), JsValue::from_f64(now_ms() as f64)])
}

/// Flags that reference a segment (in rules) or a flag (as a prerequisite).
fn referrers(
    kind: &str,
    key: &str,
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> Vec<String> {
    let mut users: Vec<String> = snapshot
        .flags
        .iter()
        .filter(|(flag, rev)| {
            let Some(body) = bodies.get(*rev) else {
                return false;
            };
            if *flag == key && kind == "flags" {
                return false;
            }
            match kind {
                "segments" => body["rules"].as_array().into_iter().flatten().any(|r| {
                    r["segments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|s| s.as_str() == Some(key))
                }),
                "probes" => body["requires_probe"].as_str() == Some(key),
                _ => body["prerequisites"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["flag"].as_str() == Some(key)),
            }
        })
        .map(|(flag, _)| flag.clone())
        .collect();
    users.sort();
    users
}

/// `PUT /v1/config/stage/{kind}/{key}`: validate and stage a flag or segment.
pub async fn stage_put(mut req: Request, env: &Env, kind: &str, key: &str) -> ApiResult {
    require_admin(&req, env)?;
    check_kind(kind)?;
    let who = actor(&req)?;
    let mut body: Value = read_json(&mut req).await?;
    let Value::Object(map) = &mut body else {
        return Err(ApiError::new(
            422,
            "invalid_type",
            format!("a {} must be a JSON object", singular(kind)),
        )
        .with_field("body"));
    };
    match map.get("key") {
        None => {
            map.insert("key".into(), Value::String(key.to_string()));
        }
        Some(Value::String(k)) if k == key => {}
        Some(_) => {
            return Err(ApiError::new(
                422,
                "key_mismatch",
                format!("the body's key must equal the path's `{key}`"),
            )
            .with_field("key"))
        }
    }
    let db = db(env)?;
    let (head, mut snapshot, _) = effective(&db).await?;
    let before_rev = snapshot.kind(kind).and_then(|m| m.get(key)).cloned();
    let all_ids: Vec<String> = snapshot
        .revisions()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut bodies = revision_bodies(&db, all_ids.iter().map(String::as_str)).await?;
    let to_422 =
        |e: telltale_core::FieldError| ApiError::new(422, e.code, e.message).with_field(e.field);
    match kind {
        "flags" => {
            let segments: Vec<&str> = snapshot.segments.keys().map(String::as_str).collect();
            let mut flag_keys: Vec<&str> = snapshot.flags.keys().map(String::as_str).collect();
            flag_keys.push(key);
            validate_flag(&body, &segments, &flag_keys).map_err(to_422)?;
            if let Some(probe) = body["requires_probe"].as_str() {
                if !snapshot.probes.contains_key(probe) {
                    return Err(ApiError::new(
                        422,
                        "unknown_probe",
                        format!("no probe `{probe}`; stage it first"),
                    )
                    .with_field("requires_probe"));
                }
            }
        }
        "segments" => {
            validate_segment(&body).map_err(to_422)?;
        }
        _ => {
            validate_probe(&body).map_err(to_422)?;
        }
    }
    let rev = revision_id(&body);
    // Cycles only show across flags: compile the would-be config and look.
    if kind == "flags" {
        if let Some(map) = snapshot.kind_mut(kind) {
            map.insert(key.to_string(), rev.clone());
        }
        bodies.insert(rev.clone(), body.clone());
        let engine = compile(&ruleset_of("", &snapshot, &bodies));
        if let Some(w) = engine
            .warnings()
            .iter()
            .find(|w| w.code == "prerequisite_cycle")
        {
            return Err(ApiError::new(422, "prerequisite_cycle", w.message.clone())
                .with_field("prerequisites"));
        }
    }
    let head_rev = head
        .as_ref()
        .and_then(|h| h.snapshot.kind(kind))
        .and_then(|m| m.get(key))
        .cloned();
    let before = before_rev
        .as_ref()
        .and_then(|r| bodies.get(r))
        .cloned()
        .unwrap_or(Value::Null);
    let now = JsValue::from_f64(now_ms() as f64);
    let mut statements = vec![insert_revision(&db, &rev, kind, key, &body)?];
    if head_rev.as_deref() == Some(rev.as_str()) {
        // Back to what head has: nothing left to stage for this key.
        statements.push(
            db.prepare("DELETE FROM stage WHERE kind = ?1 AND key = ?2")
                .bind(&[kind.into(), key.into()])?,
        );
    } else {
        statements.push(
            db.prepare(
                "INSERT INTO stage (kind, key, revision, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (kind, key) DO UPDATE SET revision = excluded.revision, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(&[kind.into(), key.into(), rev.as_str().into(), now, who.as_str().into()])?,
        );
    }
    statements.push(audit(
        &db,
        &who,
        "stage.put",
        &format!("{kind}/{key}"),
        &before,
        &body,
    )?);
    d1("staging", db.batch(statements).await)?;
    json(
        200,
        &json!({"kind": kind, "key": key, "revision": rev, "body": body}),
    )
}

/// `DELETE /v1/config/stage/{kind}/{key}`: stage a deletion. Refused (409) while other
/// flags reference it; removing a reference never deletes the referenced entity.
pub async fn stage_delete(req: Request, env: &Env, kind: &str, key: &str) -> ApiResult {
    require_admin(&req, env)?;
    check_kind(kind)?;
    let who = actor(&req)?;
    let db = db(env)?;
    let (head, snapshot, _) = effective(&db).await?;
    let Some(rev) = snapshot.kind(kind).and_then(|m| m.get(key)).cloned() else {
        return Err(ApiError::not_found(
            match kind {
                "flags" => "unknown_flag",
                "segments" => "unknown_segment",
                _ => "unknown_probe",
            },
            "key",
            format!("no {} `{key}`", singular(kind)),
        ));
    };
    let ids: Vec<String> = snapshot
        .revisions()
        .into_iter()
        .map(str::to_string)
        .collect();
    let bodies = revision_bodies(&db, ids.iter().map(String::as_str)).await?;
    let users = referrers(kind, key, &snapshot, &bodies);
    if !users.is_empty() {
        return Err(ApiError::new(
            409,
            match kind {
                "flags" => "flag_in_use",
                "segments" => "segment_in_use",
                _ => "probe_in_use",
            },
            format!(
                "{} `{key}` is used by flags: {}; remove those references first",
                singular(kind),
                users.join(", ")
            ),
        )
        .with_field("key"));
    }
    let in_head = head
        .as_ref()
        .and_then(|h| h.snapshot.kind(kind))
        .is_some_and(|m| m.contains_key(key));
    let stmt = if in_head {
        db.prepare(
            "INSERT INTO stage (kind, key, revision, updated_at, updated_by) VALUES (?1, ?2, NULL, ?3, ?4) \
             ON CONFLICT (kind, key) DO UPDATE SET revision = NULL, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&[kind.into(), key.into(), JsValue::from_f64(now_ms() as f64), who.as_str().into()])?
    } else {
        db.prepare("DELETE FROM stage WHERE kind = ?1 AND key = ?2")
            .bind(&[kind.into(), key.into()])?
    };
    let before = bodies.get(&rev).cloned().unwrap_or(Value::Null);
    d1(
        "staging a deletion",
        db.batch(vec![
            stmt,
            audit(
                &db,
                &who,
                "stage.delete",
                &format!("{kind}/{key}"),
                &before,
                &Value::Null,
            )?,
        ])
        .await,
    )?;
    json(200, &json!({"kind": kind, "key": key, "deleted": true}))
}

/// `GET /v1/config/stage`: what the next commit would change.
pub async fn stage_get(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let db = db(env)?;
    let (head, _, stage) = effective(&db).await?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitRequest {
    message: String,
    /// The head the caller reviewed the stage against (`null`: no commit yet). Absent:
    /// not checked.
    #[serde(default, deserialize_with = "present")]
    expected_head: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Another admin moved head (or changed the stage) since the caller looked.
fn head_moved(expected: Option<&str>, actual: Option<&str>) -> ApiError {
    let mut e = ApiError::new(
        409,
        "head_moved",
        "head or the stage changed since they were read; review the stage against the new head and commit again",
    )
    .with_field("expected_head");
    e.details = Some(json!({"expected_head": expected, "head": actual}));
    e
}

/// `POST /v1/config/commits {message}`: snapshot the stage as a new head commit.
pub async fn commit(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let who = actor(&req)?;
    let input: CommitRequest = read_json(&mut req).await?;
    let message = input.message.trim().to_string();
    if message.is_empty() || message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::new(
            422,
            "invalid_value",
            "message must be 1 to 2,000 characters",
        )
        .with_field("message"));
    }
    let db = db(env)?;
    let (head, snapshot, stage) = effective(&db).await?;
    let head_id = head.as_ref().map(|h| h.id.as_str());
    if let Some(expected) = &input.expected_head {
        if expected.as_deref() != head_id {
            return Err(head_moved(expected.as_deref(), head_id));
        }
    }
    if stage.is_empty() {
        return Err(ApiError::new(
            409,
            "nothing_to_commit",
            "the stage has no changes",
        ));
    }
    let content = CommitContent {
        parent: head.as_ref().map(|h| h.id.clone()),
        author: who.clone(),
        message,
        created_at: now_ms(),
        snapshot,
    };
    let view = write_commit(&db, &content, &stage, &who, "commit").await?;
    json(201, &view)
}

/// Inserts a commit, moves head, removes the committed stage rows and audits, in one
/// transaction. Every statement is guarded by head still being the commit's parent, and
/// only the stage rows that were read are removed: a concurrent commit makes this one a
/// 409 with nothing written, and a change staged meanwhile stays staged.
async fn write_commit(
    db: &D1Database,
    content: &CommitContent,
    committed_stage: &[StageRow],
    who: &str,
    action: &str,
) -> Result<CommitView, ApiError> {
    let id = commit_id(content);
    let snapshot = serde_json::to_string(&content.snapshot)
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    let created = JsValue::from_f64(content.created_at as f64);
    let parent = content
        .parent
        .as_deref()
        .map_or(JsValue::NULL, JsValue::from_str);
    let rows: Vec<Value> = committed_stage
        .iter()
        .map(|r| json!([r.kind, r.key, r.revision]))
        .collect();
    const HEAD: &str = "(SELECT commit_id FROM refs WHERE name = 'head')";
    let statements = vec![
        db.prepare(format!("INSERT INTO commits (id, parent, author, message, created_at, snapshot) SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE {HEAD} IS ?2"))
            .bind(&[id.as_str().into(), parent.clone(), content.author.as_str().into(), content.message.as_str().into(), created.clone(), snapshot.into()])?,
        db.prepare(format!("INSERT INTO refs (name, commit_id, updated_at) SELECT 'head', ?1, ?2 WHERE {HEAD} IS ?3 ON CONFLICT (name) DO UPDATE SET commit_id = excluded.commit_id, updated_at = excluded.updated_at"))
            .bind(&[id.as_str().into(), created, parent])?,
        db.prepare(format!("DELETE FROM stage WHERE {HEAD} = ?1 AND EXISTS (SELECT 1 FROM json_each(?2) AS j WHERE json_extract(j.value, '$[0]') = stage.kind AND json_extract(j.value, '$[1]') = stage.key AND json_extract(j.value, '$[2]') IS stage.revision)"))
            .bind(&[id.as_str().into(), Value::Array(rows).to_string().into()])?,
        audit_if_head(db, Some(&id), who, action, &format!("commits/{id}"), &json!(content.parent), &json!({"id": id, "message": content.message}))?,
    ];
    d1("committing", db.batch(statements).await)?;
    let now_head = ref_commit(db, "head").await?;
    if now_head.as_deref() != Some(id.as_str()) {
        // Every statement was guarded: nothing was written.
        return Err(head_moved(content.parent.as_deref(), now_head.as_deref()));
    }
    Ok(CommitView {
        id,
        parent: content.parent.clone(),
        author: content.author.clone(),
        message: content.message.clone(),
        created_at: format_rfc3339(content.created_at),
        created_at_ms: content.created_at,
        snapshot: content.snapshot.clone(),
    })
}

/// `GET /v1/config/commits?limit=`: the history from head, newest first.
pub async fn log(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let limit = query_pairs(&req)?
        .into_iter()
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| v.parse::<u32>().ok().filter(|n| (1..=500).contains(n)))
        .unwrap_or(Some(100))
        .ok_or_else(|| {
            ApiError::new(400, "invalid_value", "limit must be 1 to 500").with_field("limit")
        })?;
    let db = db(env)?;
    let stmt = db
        .prepare(
            "WITH RECURSIVE chain(id, depth) AS ( \
               SELECT commit_id, 0 FROM refs WHERE name = 'head' \
               UNION ALL SELECT c.parent, chain.depth + 1 FROM commits c JOIN chain ON c.id = chain.id WHERE c.parent IS NOT NULL) \
             SELECT commits.* FROM chain JOIN commits ON commits.id = chain.id ORDER BY chain.depth LIMIT ?1",
        )
        .bind(&[JsValue::from_f64(f64::from(limit))])?;
    let rows = d1("reading the log", stmt.all().await)?.results::<CommitRow>()?;
    let published = ref_commit(&db, "published").await?;
    let commits: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let v = r.view()?;
            Ok(json!({"id": v.id, "parent": v.parent, "author": v.author, "message": v.message, "created_at": v.created_at,
                      "published": published.as_deref() == Some(v.id.as_str())}))
        })
        .collect::<Result<_, ApiError>>()?;
    json(200, &json!({"commits": commits}))
}

/// `GET /v1/config/commits/{id}`
pub async fn get_commit(req: Request, env: &Env, id: &str) -> ApiResult {
    require_admin(&req, env)?;
    let db = db(env)?;
    json(200, &resolve_commit(&db, id, "id").await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    commit: Option<String>,
}

/// `POST /v1/config/publish {commit?}` (default: head).
pub async fn publish(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let who = actor(&req)?;
    let input: PublishRequest = read_json(&mut req).await?;
    publish_commit(
        env,
        &who,
        input.commit.as_deref().unwrap_or("head"),
        "publish",
    )
    .await
}

/// `POST /v1/config/rollback {commit}`: publish an older commit, recorded as a new event.
pub async fn rollback(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let who = actor(&req)?;
    let input: PublishRequest = read_json(&mut req).await?;
    let Some(target) = input.commit else {
        return Err(
            ApiError::new(400, "required", "name the commit to roll back to").with_field("commit"),
        );
    };
    publish_commit(env, &who, &target, "rollback").await
}

async fn publish_commit(env: &Env, who: &str, target: &str, action: &str) -> ApiResult {
    let db = db(env)?;
    let commit = resolve_commit(&db, target, "commit").await?;
    let previous = match ref_commit(&db, "published").await? {
        Some(id) => commit_by_id(&db, &id).await?,
        None => None,
    };
    let old_revisions = previous
        .as_ref()
        .map(|p| p.snapshot.revisions())
        .unwrap_or_default();
    let new_ids: Vec<&str> = commit
        .snapshot
        .revisions()
        .into_iter()
        .filter(|r| !old_revisions.contains(r))
        .collect();
    let bodies = revision_bodies(&db, new_ids.iter().copied()).await?;
    // Revisions first, then the manifest: a reader never sees a manifest naming a
    // revision that is not in KV yet. Unchanged revisions are not rewritten.
    let store = kv(env)?;
    for id in &new_ids {
        let body = bodies
            .get(*id)
            .ok_or_else(|| ApiError::new(500, "internal", format!("revision {id} is missing")))?;
        store
            .put(&format!("rev:{id}"), body.to_string())?
            .execute()
            .await?;
    }
    let now = now_ms();
    d1(
        "recording the publication",
        db.batch(vec![
            db.prepare("INSERT INTO refs (name, commit_id, updated_at) VALUES ('published', ?1, ?2) ON CONFLICT (name) DO UPDATE SET commit_id = excluded.commit_id, updated_at = excluded.updated_at")
                .bind(&[commit.id.as_str().into(), JsValue::from_f64(now as f64)])?,
            db.prepare("INSERT INTO publications (commit_id, action, actor, at) VALUES (?1, ?2, ?3, ?4)")
                .bind(&[commit.id.as_str().into(), action.into(), who.into(), JsValue::from_f64(now as f64)])?,
            audit(&db, who, action, "refs/published", &json!(previous.as_ref().map(|p| &p.id)), &json!(commit.id))?,
        ])
        .await,
    )?;
    let manifest = flags::Manifest {
        commit: commit.id.clone(),
        published_at: now,
        snapshot: commit.snapshot.clone(),
    };
    flags::write_manifest(env, &manifest).await?;
    // Pre-warm this isolate so the next decision here needs no KV read.
    flags::warm(env, manifest).await?;
    let changed: Vec<String> = KINDS
        .iter()
        .flat_map(|kind| {
            let old = previous
                .as_ref()
                .and_then(|p| p.snapshot.kind(kind))
                .cloned()
                .unwrap_or_default();
            commit
                .snapshot
                .kind(kind)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(move |(k, r)| old.get(k) != Some(r))
                .map(move |(k, _)| format!("{kind}/{k}"))
        })
        .collect();
    json(
        200,
        &json!({"published": commit.id, "action": action, "revisions_written": new_ids.len(), "changed": changed}),
    )
}

/// `GET /v1/config/diff?from=&to=` (commits, `head`, `published` or `stage`).
pub async fn diff(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let pairs = query_pairs_allowing(&req, &["from", "to"])?;
    let get = |name: &str, default: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or(default.to_string(), |(_, v)| v.clone())
    };
    let (from, to) = (get("from", "published"), get("to", "head"));
    let db = db(env)?;
    let snapshot_of = |name: String, field: &'static str| {
        let db = &db;
        async move {
            if name == "stage" {
                Ok::<_, ApiError>(("stage".to_string(), effective(db).await?.1))
            } else {
                let c = resolve_commit(db, &name, field).await?;
                Ok((c.id, c.snapshot))
            }
        }
    };
    let (from_id, a) = snapshot_of(from, "from").await?;
    let (to_id, b) = snapshot_of(to, "to").await?;
    let ids: Vec<&str> = a.revisions().into_iter().chain(b.revisions()).collect();
    let bodies = revision_bodies(&db, ids).await?;
    let changes = diff_snapshots(&a, &b, &|rev| bodies.get(rev).cloned());
    json(
        200,
        &json!({"from": from_id, "to": to_id, "changes": changes}),
    )
}

/// `GET /v1/config/audit?limit=`: newest first.
pub async fn audit_log(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    #[derive(Deserialize)]
    struct Row {
        seq: f64,
        at: f64,
        actor: String,
        action: String,
        target: String,
        before: Option<String>,
        after: Option<String>,
    }
    let db = db(env)?;
    let rows = d1(
        "reading the audit log",
        db.prepare("SELECT * FROM audit ORDER BY seq DESC LIMIT 500")
            .all()
            .await,
    )?
    .results::<Row>()?;
    let parse = |t: Option<String>| {
        t.and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .unwrap_or(Value::Null)
    };
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({"seq": r.seq as i64, "at": format_rfc3339(r.at as i64), "actor": r.actor, "action": r.action,
                        "target": r.target, "before": parse(r.before), "after": parse(r.after)}))
        .collect();
    json(200, &json!({"entries": entries}))
}

/// An exported commit with its history and every revision it needs.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    commit: CommitView,
    /// Ancestor commit ids, newest first: lets the importer find a common base.
    ancestors: Vec<CommitView>,
    /// revision id -> {kind, key, body}
    revisions: BTreeMap<String, Value>,
}

/// `GET /v1/config/export?commit=` (default head).
pub async fn export(req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let pairs = query_pairs_allowing(&req, &["commit"])?;
    let target = pairs
        .iter()
        .find(|(k, _)| k == "commit")
        .map_or("head".to_string(), |(_, v)| v.clone());
    let db = db(env)?;
    let commit = resolve_commit(&db, &target, "commit").await?;
    let mut ancestors = Vec::new();
    let mut parent = commit.parent.clone();
    while let Some(id) = parent {
        let Some(c) = commit_by_id(&db, &id).await? else {
            break;
        };
        parent = c.parent.clone();
        ancestors.push(c);
        if ancestors.len() >= 1_000 {
            break;
        }
    }
    let mut ids: Vec<&str> = commit.snapshot.revisions().into_iter().collect();
    for a in &ancestors {
        ids.extend(a.snapshot.revisions());
    }
    let bodies = revision_bodies(&db, ids.iter().copied()).await?;
    let mut revisions = BTreeMap::new();
    for c in std::iter::once(&commit).chain(ancestors.iter()) {
        for kind in KINDS {
            for (key, rev) in c.snapshot.kind(kind).into_iter().flatten() {
                if let Some(body) = bodies.get(rev) {
                    revisions.insert(rev.clone(), json!({"kind": kind, "key": key, "body": body}));
                }
            }
        }
    }
    json(
        200,
        &Bundle {
            commit,
            ancestors,
            revisions,
        },
    )
}

fn entries_of(
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    KINDS
        .iter()
        .map(|kind| {
            let map = snapshot
                .kind(kind)
                .into_iter()
                .flatten()
                .filter_map(|(k, r)| bodies.get(r).map(|b| (k.clone(), b.clone())))
                .collect();
            (kind.to_string(), map)
        })
        .collect()
}

/// `POST /v1/config/import` with an export bundle: copies missing commits and revisions,
/// merges the bundle's commit into head three ways (field by field, against the newest
/// common ancestor) and commits the result. Conflicts are a 409 listing them; nothing is
/// written then. The stage must be empty.
pub async fn import(mut req: Request, env: &Env) -> ApiResult {
    require_admin(&req, env)?;
    let who = actor(&req)?;
    let bundle: Bundle = read_json(&mut req).await?;
    // Every revision must match its content address, and every referenced one be present.
    let mut bundle_bodies = HashMap::new();
    for (id, entry) in &bundle.revisions {
        let body = entry.get("body").cloned().unwrap_or(Value::Null);
        if &revision_id(&body) != id {
            return Err(ApiError::new(
                422,
                "revision_mismatch",
                format!("revision {id} does not match its content"),
            )
            .with_field(format!("revisions.{id}")));
        }
        bundle_bodies.insert(id.clone(), body);
    }
    for c in std::iter::once(&bundle.commit).chain(bundle.ancestors.iter()) {
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
            .find(|r| !bundle_bodies.contains_key(*r))
        {
            return Err(ApiError::new(
                422,
                "missing_revision",
                format!("revision {missing} is not in the bundle"),
            )
            .with_field("revisions"));
        }
    }
    let db = db(env)?;
    let (head, _, stage) = effective(&db).await?;
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
    // The newest commit of theirs that we also have is the merge base.
    let mut base = Snapshot::default();
    for c in std::iter::once(&bundle.commit).chain(bundle.ancestors.iter()) {
        if commit_by_id(&db, &c.id).await?.is_some() {
            base = c.snapshot.clone();
            break;
        }
    }
    let our_ids: Vec<&str> = ours.revisions().into_iter().collect();
    let mut bodies = revision_bodies(&db, our_ids).await?;
    bodies.extend(bundle_bodies.clone());
    let merge = merge_three_way(
        &entries_of(&base, &bodies),
        &entries_of(&ours, &bodies),
        &entries_of(&bundle.commit.snapshot, &bodies),
    );
    if !merge.conflicts.is_empty() {
        return Err(merge_conflict(merge.conflicts));
    }
    // Copy what is missing, then commit the merged snapshot on top of head.
    let mut statements = Vec::new();
    for (id, entry) in &bundle.revisions {
        let kind = entry["kind"].as_str().unwrap_or("flags");
        let key = entry["key"].as_str().unwrap_or_default();
        statements.push(insert_revision(&db, id, kind, key, &bundle_bodies[id])?);
    }
    for c in bundle
        .ancestors
        .iter()
        .rev()
        .chain(std::iter::once(&bundle.commit))
    {
        let snapshot = serde_json::to_string(&c.snapshot)
            .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
        statements.push(
            db.prepare("INSERT INTO commits (id, parent, author, message, created_at, snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING")
                .bind(&[c.id.as_str().into(), c.parent.as_deref().map_or(JsValue::NULL, JsValue::from_str), c.author.as_str().into(), c.message.as_str().into(), JsValue::from_f64(c.created_at_ms as f64), snapshot.into()])?,
        );
    }
    let mut merged = Snapshot::default();
    for (kind, entries) in &merge.entries {
        for (key, body) in entries {
            let rev = revision_id(body);
            statements.push(insert_revision(&db, &rev, kind, key, body)?);
            if let Some(map) = merged.kind_mut(kind) {
                map.insert(key.clone(), rev);
            }
        }
    }
    d1("importing", db.batch(statements).await)?;
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
    let view = write_commit(&db, &content, &[], &who, "import").await?;
    json(201, &json!({"merged": true, "commit": view}))
}

fn merge_conflict(conflicts: Vec<telltale_core::config::Conflict>) -> ApiError {
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
