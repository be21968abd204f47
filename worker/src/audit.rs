//! The audit log: who changed what, when (UTC), with the before and after, per app. Every
//! config change, publication, probe transition, override and app deletion appends one
//! line, in the same transaction as the change itself.

use crate::args;
use crate::http::{now, ApiError};
use crate::store::{Arg, Db, Stmt};
use serde_json::Value;

/// One line of the audit log.
pub struct Line<'a> {
    pub app: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: &'a Value,
    pub after: &'a Value,
}

fn json_text(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

/// An audit line (`before`/`after` as JSON, null as SQL NULL), as a batch statement.
pub fn audit(
    db: &Db,
    app: &str,
    actor: &str,
    action: &str,
    target: &str,
    before: &Value,
    after: &Value,
) -> Result<Stmt, ApiError> {
    let line = Line {
        app,
        actor,
        action,
        target,
        before,
        after,
    };
    audit_if_head(db, &line, None)
}

/// An audit line written only if the app's config head is then `head` (when given): a
/// guarded commit records only what happened.
pub fn audit_if_head(db: &Db, line: &Line, head: Option<&str>) -> Result<Stmt, ApiError> {
    let (before, after) = (json_text(line.before), json_text(line.after));
    let args: &[Arg] = args![
        now(),
        line.actor,
        line.action,
        line.target,
        before.as_deref(),
        after.as_deref(),
        head,
        line.app
    ];
    db.stmt(
        "INSERT INTO audit (app, at, actor, action, target, before, after) SELECT ?8, ?1, ?2, ?3, ?4, ?5, ?6 \
         WHERE ?7 IS NULL OR (SELECT commit_id FROM refs WHERE app = ?8 AND name = 'head') = ?7",
        args,
    )
}
