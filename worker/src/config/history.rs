//! History, under `/v1/apps/{app}/config`: commits (`POST|GET commits`,
//! `GET commits/{id}`), diffs (`GET diff`) and the audit log (`GET audit`). Commits are
//! immutable; no past revision is ever rewritten.

use super::{
    admin_for_app, admin_reading_app, effective, ref_commit, resolve_commit, snapshot_bodies,
    CommitRow, CommitView, StageRow,
};
use crate::args;
use crate::audit::{audit_if_head, Line};
use crate::auth::actor;
use crate::http::{internal, json, now_ms, read_json, ApiError, ApiResult, Query};
use crate::store::Db;
use serde::Deserialize;
use serde_json::{json, Value};
use telltale_core::config::{commit_id, diff_snapshots, CommitContent, Snapshot};
use telltale_core::time::format_rfc3339;
use worker::{Env, Request};

const MAX_MESSAGE_CHARS: usize = 2_000;

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

/// A commit message: 1 to 2,000 characters; line breaks and tabs, but no other control
/// characters (they would reach terminals and logs).
pub(crate) fn message_ok(message: &str) -> bool {
    !message.trim().is_empty()
        && message.chars().count() <= MAX_MESSAGE_CHARS
        && !message
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
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

/// `POST /v1/config/commits {message, expected_head?}`: snapshot the stage as a new
/// head commit.
pub async fn commit(mut req: Request, env: &Env, app: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let who = actor(&req)?;
    let input: CommitRequest = read_json(&mut req).await?;
    let message = input.message.trim().to_string();
    if !message_ok(&message) {
        return Err(ApiError::new(
            422,
            "invalid_value",
            "message must be 1 to 2,000 characters, without control characters but line breaks",
        )
        .with_field("message"));
    }
    let db = Db::open(env)?;
    let (head, snapshot, stage) = effective(&db, app).await?;
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
    let view = write_commit(&db, app, &content, &stage, &who, "commit").await?;
    json(201, &view)
}

/// Inserts a commit, moves head, removes the committed stage rows and audits, in one
/// transaction. Every statement is guarded by head still being the commit's parent, and
/// only the stage rows that were read are removed: a concurrent commit makes this one a
/// 409 with nothing written, and a change staged meanwhile stays staged.
pub(crate) async fn write_commit(
    db: &Db,
    app: &str,
    content: &CommitContent,
    committed_stage: &[StageRow],
    who: &str,
    action: &str,
) -> Result<CommitView, ApiError> {
    let id = commit_id(content);
    let snapshot = serde_json::to_string(&content.snapshot).map_err(internal)?;
    let parent = content.parent.as_deref();
    let rows: Vec<Value> = committed_stage
        .iter()
        .map(|r| json!([r.kind, r.key, r.revision]))
        .collect();
    let rows = Value::Array(rows).to_string();
    // Head of this app, with the app bound at parameter `n`.
    let head =
        |n: usize| format!("(SELECT commit_id FROM refs WHERE app = ?{n} AND name = 'head')");
    let target = format!("commits/{id}");
    let (before, after) = (
        json!(content.parent),
        json!({"id": id, "message": content.message}),
    );
    let line = Line {
        app,
        actor: who,
        action,
        target: &target,
        before: &before,
        after: &after,
    };
    let statements = vec![
        db.stmt(
            &format!("INSERT INTO commits (app, id, parent, author, message, created_at, snapshot) SELECT ?7, ?1, ?2, ?3, ?4, ?5, ?6 WHERE {} IS ?2", head(7)),
            args![&id, parent, &content.author, &content.message, content.created_at, &snapshot, app],
        )?,
        db.stmt(
            &format!("INSERT INTO refs (app, name, commit_id, updated_at) SELECT ?4, 'head', ?1, ?2 WHERE {} IS ?3 ON CONFLICT (app, name) DO UPDATE SET commit_id = excluded.commit_id, updated_at = excluded.updated_at", head(4)),
            args![&id, content.created_at, parent, app],
        )?,
        db.stmt(
            &format!("DELETE FROM stage WHERE app = ?3 AND {} = ?1 AND EXISTS (SELECT 1 FROM json_each(?2) AS j WHERE json_extract(j.value, '$[0]') = stage.kind AND json_extract(j.value, '$[1]') = stage.key AND json_extract(j.value, '$[2]') IS stage.revision)", head(3)),
            args![&id, &rows, app],
        )?,
        audit_if_head(db, &line, Some(&id))?,
    ];
    db.batch("committing", statements).await?;
    let now_head = ref_commit(db, app, "head").await?;
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

/// `GET /v1/apps/{app}/config/commits?limit=`: the history from head, newest first.
pub async fn log(req: Request, env: &Env, app: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    let limit = Query::parse(&req, &["limit"])?.int_in("limit", 1..=500, 100)?;
    let db = Db::open(env)?;
    let rows: Vec<CommitRow> = db
        .all(
            "reading the log",
            "WITH RECURSIVE chain(id, depth) AS ( \
               SELECT commit_id, 0 FROM refs WHERE app = ?2 AND name = 'head' \
               UNION ALL SELECT c.parent, chain.depth + 1 FROM commits c JOIN chain ON c.app = ?2 AND c.id = chain.id WHERE c.parent IS NOT NULL AND chain.depth < ?1) \
             SELECT commits.* FROM chain JOIN commits ON commits.app = ?2 AND commits.id = chain.id ORDER BY chain.depth LIMIT ?1",
            args![limit, app],
        )
        .await?;
    let published = ref_commit(&db, app, "published").await?;
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

/// `GET /v1/apps/{app}/config/commits/{id}`
pub async fn get_commit(req: Request, env: &Env, app: &str, id: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let db = Db::open(env)?;
    json(200, &resolve_commit(&db, app, id, "id").await?)
}

/// `GET /v1/apps/{app}/config/diff?from=&to=` (commits, `head`, `published`, `stage`, or
/// `empty` for nothing).
pub async fn diff(req: Request, env: &Env, app: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    let query = Query::parse(&req, &["from", "to"])?;
    let from = query.get("from").unwrap_or("published");
    let to = query.get("to").unwrap_or("head");
    let db = Db::open(env)?;
    let snapshot_of = |name: &str, field: &'static str| {
        let db = &db;
        let name = name.to_string();
        async move {
            if name == "stage" {
                Ok::<_, ApiError>(("stage".to_string(), effective(db, app).await?.1))
            } else if name == "empty" {
                // Nothing: what a first publication is compared with.
                Ok(("empty".to_string(), Snapshot::default()))
            } else {
                let c = resolve_commit(db, app, &name, field).await?;
                Ok((c.id, c.snapshot))
            }
        }
    };
    let (from_id, a) = snapshot_of(from, "from").await?;
    let (to_id, b) = snapshot_of(to, "to").await?;
    let mut bodies = snapshot_bodies(&db, &a).await?;
    bodies.extend(snapshot_bodies(&db, &b).await?);
    let changes = diff_snapshots(&a, &b, &|rev| bodies.get(rev).cloned());
    json(
        200,
        &json!({"from": from_id, "to": to_id, "changes": changes}),
    )
}

/// `GET /v1/apps/{app}/config/audit?limit=&actor=&action=&target=`: newest first,
/// optionally filtered (exact matches; `target` also matches a prefix ending in `/`).
pub async fn audit_log(req: Request, env: &Env, app: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    let query = Query::parse(&req, &["limit", "actor", "action", "target"])?;
    let limit = query.int_in("limit", 1..=500, 500)?;
    #[derive(Deserialize)]
    struct Row {
        seq: i64,
        at: i64,
        actor: String,
        action: String,
        target: String,
        before: Option<String>,
        after: Option<String>,
    }
    let db = Db::open(env)?;
    let rows: Vec<Row> = db
        .all(
            "reading the audit log",
            "SELECT * FROM audit WHERE app = ?5 AND (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) \
             AND (?3 IS NULL OR target = ?3 OR (substr(?3, -1) = '/' AND substr(target, 1, length(?3)) = ?3)) \
             ORDER BY seq DESC LIMIT ?4",
            args![query.get("actor"), query.get("action"), query.get("target"), limit, app],
        )
        .await?;
    let parse = |t: Option<String>| {
        t.and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .unwrap_or(Value::Null)
    };
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({"seq": r.seq, "at": format_rfc3339(r.at), "actor": r.actor, "action": r.action,
                        "target": r.target, "before": parse(r.before), "after": parse(r.after)})
        })
        .collect();
    json(200, &json!({"entries": entries}))
}
