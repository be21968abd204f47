//! Looking into an app's config without changing it: `GET entries?at=` (the bodies of
//! the staged, head or published config) and `POST evaluate {context, at}` (every flag
//! decided for a context by that config, with the live probe states).

use super::{admin_reading_app, commit_at_ref, effective, snapshot_bodies};
use crate::http::{json, now_ms, read_json, ApiError, ApiResult, Query};
use crate::published::{self, engine_probe_states};
use crate::store::Db;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use telltale_core::config::{ruleset_of, Kind, Snapshot};
use telltale_core::flags::compile;
use worker::{Env, Request};

/// Which config: the stage (head plus staged edits), head, or what is published.
pub(crate) async fn config_at(
    db: &Db,
    app: &str,
    at: &str,
) -> Result<(Option<String>, Snapshot, HashMap<String, Value>), ApiError> {
    let (commit, snapshot) = match at {
        "stage" => {
            let (head, snapshot, _) = effective(db, app).await?;
            (head.map(|h| h.id), snapshot)
        }
        "head" | "published" => match commit_at_ref(db, app, at).await? {
            Some(c) => (Some(c.id), c.snapshot),
            None => (None, Snapshot::default()),
        },
        other => {
            return Err(ApiError::new(
                400,
                "invalid_value",
                format!("`at` is stage, head or published, not `{other}`"),
            )
            .with_field("at"))
        }
    };
    let bodies = snapshot_bodies(db, &snapshot).await?;
    Ok((commit, snapshot, bodies))
}

/// `GET /v1/apps/{app}/config/entries?at=stage|head|published` (default stage).
pub async fn entries(req: Request, env: &Env, app: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    let query = Query::parse(&req, &["at"])?;
    let at = query.get("at").unwrap_or("stage");
    let db = Db::open(env)?;
    let (commit, snapshot, bodies) = config_at(&db, app, at).await?;
    let mut out = Map::new();
    for kind in Kind::ALL {
        let entries: BTreeMap<&String, &Value> = snapshot
            .entries(kind)
            .iter()
            .filter_map(|(k, rev)| bodies.get(rev).map(|b| (k, b)))
            .collect();
        out.insert(kind.as_str().into(), json!(entries));
    }
    json(
        200,
        &json!({"app": app, "at": at, "commit": commit, "entries": out}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default = "stage")]
    at: String,
}

fn stage() -> String {
    "stage".into()
}

/// `POST /v1/apps/{app}/config/evaluate {context, at}`: "try a context" for admins, on
/// the staged config before it is published, or on what is published.
pub async fn evaluate(mut req: Request, env: &Env, app: &str) -> ApiResult {
    admin_reading_app(&req, env, app).await?;
    Query::parse(&req, &[])?;
    let input: EvaluateRequest = read_json(&mut req).await?;
    let db = Db::open(env)?;
    let (commit, snapshot, bodies) = config_at(&db, app, &input.at).await?;
    let engine = compile(&ruleset_of(
        commit.as_deref().unwrap_or(""),
        &snapshot,
        &bodies,
    ));
    let probes = published::probe_states(env, app).await?;
    let states = engine_probe_states(&probes);
    let now = now_ms();
    let flags: Map<String, Value> = engine
        .evaluate_all(&input.context, &states, now)
        .into_iter()
        .map(|d| {
            (
                d.key.clone(),
                serde_json::to_value(&d).unwrap_or(Value::Null),
            )
        })
        .collect();
    let warnings: Vec<Value> = engine
        .warnings()
        .iter()
        .map(|w| json!({"code": w.code, "field": w.field, "message": w.message}))
        .collect();
    json(
        200,
        &json!({"at": input.at, "commit": commit, "flags": flags, "probes": probes, "warnings": warnings}),
    )
}
