//! Publishing: `POST /v1/apps/{app}/config/publish` (a commit, default head) and
//! `POST /v1/apps/{app}/config/rollback` (an older commit, recorded as a new publication). A
//! publication is a pointer switch; readers get it through `crate::published`, which
//! writes only the revisions that changed.

use super::{
    admin_for_app, check_config, check_probe_targets, commit_at_ref, resolve_commit,
    snapshot_bodies,
};
use crate::args;
use crate::audit::audit;
use crate::auth::actor;
use crate::http::{json, now_ms, read_json, ApiError, ApiResult, Query};
use crate::published::{publish_manifest, Manifest};
use crate::store::Db;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use telltale_core::config::{Kind, Snapshot};
use worker::{Env, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    commit: Option<String>,
}

/// `POST /v1/config/publish {commit?}` (default: head).
pub async fn publish(mut req: Request, env: &Env, app: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let who = actor(&req)?;
    let input: PublishRequest = read_json(&mut req).await?;
    publish_commit(
        env,
        &req,
        app,
        &who,
        input.commit.as_deref().unwrap_or("head"),
        "publish",
    )
    .await
}

/// `POST /v1/config/rollback {commit}`: publish an older commit, recorded as a new event.
pub async fn rollback(mut req: Request, env: &Env, app: &str) -> ApiResult {
    admin_for_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let who = actor(&req)?;
    let input: PublishRequest = read_json(&mut req).await?;
    let Some(target) = input.commit else {
        return Err(
            ApiError::new(400, "required", "name the commit to roll back to").with_field("commit"),
        );
    };
    publish_commit(env, &req, app, &who, &target, "rollback").await
}

/// What a publication changes, as `kind/key` entries: added, modified and removed.
fn changed_entries(before: &Snapshot, after: &Snapshot) -> (Vec<String>, Vec<String>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for kind in Kind::ALL {
        let (old, new) = (before.entries(kind), after.entries(kind));
        for (key, rev) in new {
            if old.get(key) != Some(rev) {
                changed.push(format!("{}/{key}", kind.as_str()));
            }
        }
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            let entry = format!("{}/{key}", kind.as_str());
            changed.push(entry.clone());
            removed.push(entry);
        }
    }
    changed.sort();
    (changed, removed)
}

async fn publish_commit(
    env: &Env,
    req: &Request,
    app: &str,
    who: &str,
    target: &str,
    action: &str,
) -> ApiResult {
    let db = Db::open(env)?;
    let commit = resolve_commit(&db, app, target, "commit").await?;
    let previous = commit_at_ref(&db, app, "published").await?;
    let old_snapshot = previous
        .as_ref()
        .map(|p| p.snapshot.clone())
        .unwrap_or_default();
    let old_revisions = old_snapshot.revisions();
    let new_ids: Vec<&str> = commit
        .snapshot
        .revisions()
        .into_iter()
        .filter(|r| !old_revisions.contains(r))
        .collect();
    // Only valid config is served: a commit that came in as imported history is
    // checked here as staging would have checked it.
    let bodies = snapshot_bodies(&db, &commit.snapshot).await?;
    check_config(
        &commit.snapshot,
        &bodies,
        &format!("commit {} cannot be published", commit.id),
    )?;
    check_probe_targets(env, req, &commit.snapshot, &bodies)?;
    let new_bodies: HashMap<String, Value> = new_ids
        .iter()
        .filter_map(|id| bodies.get(*id).map(|b| (id.to_string(), b.clone())))
        .collect();
    let now = now_ms();
    db.batch(
        "recording the publication",
        vec![
            db.stmt(
                "INSERT INTO refs (app, name, commit_id, updated_at) VALUES (?3, 'published', ?1, ?2) \
                 ON CONFLICT (app, name) DO UPDATE SET commit_id = excluded.commit_id, updated_at = excluded.updated_at",
                args![&commit.id, now, app],
            )?,
            db.stmt(
                "INSERT INTO publications (app, commit_id, action, actor, at) VALUES (?5, ?1, ?2, ?3, ?4)",
                args![&commit.id, action, who, now, app],
            )?,
            audit(
                &db,
                app,
                who,
                action,
                "refs/published",
                &json!(previous.as_ref().map(|p| &p.id)),
                &json!(commit.id),
            )?,
        ],
    )
    .await?;
    let manifest = Manifest {
        commit: commit.id.clone(),
        published_at: now,
        snapshot: commit.snapshot.clone(),
    };
    publish_manifest(env, app, manifest, &new_bodies).await?;
    let (changed, removed) = changed_entries(&old_snapshot, &commit.snapshot);
    json(
        200,
        &json!({"published": commit.id, "action": action, "revisions_written": new_ids.len(),
                "changed": changed, "removed": removed}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_are_reported() {
        let mut before = Snapshot::default();
        before.flags.insert("old".into(), "r1".into());
        before.flags.insert("kept".into(), "r2".into());
        before.probes.insert("partner".into(), "r3".into());
        let mut after = Snapshot::default();
        after.flags.insert("kept".into(), "r2".into());
        after.flags.insert("new".into(), "r4".into());
        let (changed, removed) = changed_entries(&before, &after);
        assert_eq!(changed, vec!["flags/new", "flags/old", "probes/partner"]);
        assert_eq!(removed, vec!["flags/old", "probes/partner"]);
    }
}
