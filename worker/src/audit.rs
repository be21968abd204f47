//! The audit log: who changed what, when (UTC), with the before and after. Every
//! config change, publication, probe transition and override appends one line, in the
//! same transaction as the change itself.

use crate::http::now;
use crate::store::{Arg, Db, Stmt};
use crate::{args, http::ApiError};
use serde_json::Value;

fn json_text(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

/// An audit line (`before`/`after` as JSON, null as SQL NULL), as a batch statement.
pub fn audit(
    db: &Db,
    actor: &str,
    action: &str,
    target: &str,
    before: &Value,
    after: &Value,
) -> Result<Stmt, ApiError> {
    audit_if_head(db, None, actor, action, target, before, after)
}

/// An audit line written only if the config's head is then `head` (when given): a
/// guarded commit records only what happened.
pub fn audit_if_head(
    db: &Db,
    head: Option<&str>,
    actor: &str,
    action: &str,
    target: &str,
    before: &Value,
    after: &Value,
) -> Result<Stmt, ApiError> {
    let (before, after) = (json_text(before), json_text(after));
    let args: &[Arg] = args![
        now(),
        actor,
        action,
        target,
        before.as_deref(),
        after.as_deref(),
        head
    ];
    db.stmt(
        "INSERT INTO audit (at, actor, action, target, before, after) SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
         WHERE ?7 IS NULL OR (SELECT commit_id FROM refs WHERE name = 'head') = ?7",
        args,
    )
}
