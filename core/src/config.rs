//! The versioned, git-like flag configuration: content-addressed revisions, snapshots,
//! field-by-field diffs and three-way merges. Pure functions; the Worker stores the data.
//!
//! - A **revision** is one flag or segment body, identified by the SHA-256 of its
//!   canonical JSON (object keys sorted, no whitespace). Revisions never change.
//! - A **snapshot** maps each key to a revision id, per kind.
//! - A **commit** is a snapshot plus parent, author, message and UTC time; its id is the
//!   SHA-256 of the canonical JSON of all of that.

use crate::error::FieldError;
use crate::experiment::{check_experiment, experiment_uses_flag, read_experiment};
use crate::flags::engine::{compile, validate_flag, validate_segment};
use crate::probes::validate_probe;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The kinds of versioned entries, as named in paths and snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Flags,
    Segments,
    Probes,
    Experiments,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Flags, Kind::Segments, Kind::Probes, Kind::Experiments];

    /// The plural name used in paths and snapshots (`flags`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Flags => "flags",
            Kind::Segments => "segments",
            Kind::Probes => "probes",
            Kind::Experiments => "experiments",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// One entry of the kind, in messages (`flag`).
    pub const fn singular(self) -> &'static str {
        match self {
            Kind::Flags => "flag",
            Kind::Segments => "segment",
            Kind::Probes => "probe",
            Kind::Experiments => "experiment",
        }
    }

    /// The error code for a key of this kind that does not exist.
    pub const fn unknown_code(self) -> &'static str {
        match self {
            Kind::Flags => "unknown_flag",
            Kind::Segments => "unknown_segment",
            Kind::Probes => "unknown_probe",
            Kind::Experiments => "unknown_experiment",
        }
    }

    /// The error code for deleting an entry that others still reference.
    pub const fn in_use_code(self) -> &'static str {
        match self {
            Kind::Flags => "flag_in_use",
            Kind::Segments => "segment_in_use",
            Kind::Probes => "probe_in_use",
            Kind::Experiments => "experiment_in_use",
        }
    }
}

/// The kinds' names, in order.
pub const KINDS: [&str; 4] = [
    Kind::Flags.as_str(),
    Kind::Segments.as_str(),
    Kind::Probes.as_str(),
    Kind::Experiments.as_str(),
];

/// Whether a flag body refers to `key` of `kind`: a segment in a rule, a required probe,
/// or a prerequisite flag.
pub fn flag_refers_to(flag: &Value, kind: Kind, key: &str) -> bool {
    let listed = |list: &Value, field: Option<&str>| {
        list.as_array().into_iter().flatten().any(|item| {
            let name = match field {
                Some(f) => item.get(f),
                None => Some(item),
            };
            name.and_then(Value::as_str) == Some(key)
        })
    };
    match kind {
        Kind::Segments => flag["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| listed(&rule["segments"], None)),
        Kind::Probes => flag["requires_probe"].as_str() == Some(key),
        Kind::Flags => listed(&flag["prerequisites"], Some("flag")),
        // Flags never name experiments; experiments name their flag.
        Kind::Experiments => false,
    }
}

/// The flags (other than `key` itself) that refer to `key` of `kind`, sorted. An entry
/// with referrers cannot be deleted: removing a reference never removes what it names.
pub fn referrers<'a>(
    kind: Kind,
    key: &str,
    flags: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Vec<String> {
    let mut users: Vec<String> = flags
        .into_iter()
        .filter(|(flag_key, _)| !(kind == Kind::Flags && *flag_key == key))
        .filter(|(_, body)| flag_refers_to(body, kind, key))
        .map(|(flag_key, _)| flag_key.to_string())
        .collect();
    users.sort();
    users
}

/// key -> revision id, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub flags: BTreeMap<String, String>,
    #[serde(default)]
    pub segments: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<String, String>,
    // Absent when empty, like probes: snapshots (and so commit ids) from before
    // experiments existed read and hash as they did.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub experiments: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn kind(&self, kind: &str) -> Option<&BTreeMap<String, String>> {
        Kind::parse(kind).map(|k| self.entries(k))
    }

    pub fn kind_mut(&mut self, kind: &str) -> Option<&mut BTreeMap<String, String>> {
        Kind::parse(kind).map(|k| self.entries_mut(k))
    }

    pub fn entries(&self, kind: Kind) -> &BTreeMap<String, String> {
        match kind {
            Kind::Flags => &self.flags,
            Kind::Segments => &self.segments,
            Kind::Probes => &self.probes,
            Kind::Experiments => &self.experiments,
        }
    }

    pub fn entries_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, String> {
        match kind {
            Kind::Flags => &mut self.flags,
            Kind::Segments => &mut self.segments,
            Kind::Probes => &mut self.probes,
            Kind::Experiments => &mut self.experiments,
        }
    }

    /// Every revision id the snapshot names.
    pub fn revisions(&self) -> BTreeSet<&str> {
        self.flags
            .values()
            .chain(self.segments.values())
            .chain(self.probes.values())
            .chain(self.experiments.values())
            .map(String::as_str)
            .collect()
    }
}

/// The wire ruleset of a snapshot (flags and segments in key order), from the bodies of
/// its revisions.
pub fn ruleset_of(
    version: &str,
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> crate::flags::Ruleset {
    let pick = |map: &BTreeMap<String, String>| {
        map.values()
            .filter_map(|r| bodies.get(r).cloned())
            .collect()
    };
    crate::flags::Ruleset {
        version: version.to_string(),
        flags: pick(&snapshot.flags),
        segments: pick(&snapshot.segments),
    }
}

/// Checks one entry as it would stand in `snapshot` (which already holds it): its own
/// fields, that its body names the key it is stored under, and that what it refers to
/// exists there. Field paths are relative to the entry.
pub fn check_entry(
    kind: Kind,
    key: &str,
    body: &Value,
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> Result<(), FieldError> {
    if body.get("key").and_then(Value::as_str) != Some(key) {
        return Err(FieldError::new(
            "key_mismatch",
            "key",
            format!("the body's key must equal the entry's key `{key}`"),
        ));
    }
    match kind {
        Kind::Flags => {
            let segments: Vec<&str> = snapshot.segments.keys().map(String::as_str).collect();
            let flags: Vec<&str> = snapshot.flags.keys().map(String::as_str).collect();
            validate_flag(body, &segments, &flags)?;
            if let Some(probe) = body.get("requires_probe").and_then(Value::as_str) {
                if !snapshot.probes.contains_key(probe) {
                    return Err(FieldError::new(
                        "unknown_probe",
                        "requires_probe",
                        format!("no probe `{probe}`; stage it first"),
                    ));
                }
            }
        }
        Kind::Segments => {
            validate_segment(body)?;
        }
        Kind::Probes => {
            validate_probe(body)?;
        }
        Kind::Experiments => {
            let def = read_experiment(body)?;
            let flag = snapshot
                .flags
                .get(&def.flag)
                .and_then(|rev| bodies.get(rev));
            check_experiment(&def, flag)?;
        }
    }
    Ok(())
}

/// The experiments that run on `flag`, in key order: a flag with
/// experiments cannot be deleted, and a change to it must leave them runnable.
pub fn experiments_on_flag(
    flag: &str,
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> Vec<String> {
    snapshot
        .experiments
        .iter()
        .filter(|(_, rev)| {
            bodies
                .get(*rev)
                .is_some_and(|b| experiment_uses_flag(b, flag))
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Prerequisite cycles only show across flags: compiles the whole config and reports
/// the first cycle found.
pub fn check_cycles(
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> Result<(), FieldError> {
    let engine = compile(&ruleset_of("", snapshot, bodies));
    match engine
        .warnings()
        .iter()
        .find(|w| w.code == "prerequisite_cycle")
    {
        Some(w) => Err(FieldError::new(
            "prerequisite_cycle",
            "prerequisites",
            w.message.clone(),
        )),
        None => Ok(()),
    }
}

/// Checks one staged entry against the would-be config (`snapshot` and `bodies` already
/// hold it): what staging runs.
pub fn validate_entry(
    kind: Kind,
    key: &str,
    body: &Value,
    snapshot: &Snapshot,
    bodies: &HashMap<String, Value>,
) -> Result<(), FieldError> {
    check_entry(kind, key, body, snapshot, bodies)?;
    if kind == Kind::Flags {
        check_cycles(snapshot, bodies)?;
        // A flag's experiments must still run on it (a split kept, the control kept).
        for experiment in experiments_on_flag(key, snapshot, bodies) {
            let rev = &snapshot.experiments[&experiment];
            if let Some(Err(e)) = bodies
                .get(rev)
                .map(|b| check_entry(Kind::Experiments, &experiment, b, snapshot, bodies))
            {
                return Err(FieldError::new(
                    "experiment_conflict",
                    "rules",
                    format!(
                        "experiment `{experiment}` runs on this flag and would break: {}",
                        e.message
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every problem of a whole config, each with its entry's path (`flags/checkout.rules[0]`):
/// what an import runs, so that nothing enters unchecked. Empty when the config is valid.
pub fn validate_snapshot(snapshot: &Snapshot, bodies: &HashMap<String, Value>) -> Vec<FieldError> {
    let mut problems = Vec::new();
    for kind in Kind::ALL {
        for (key, rev) in snapshot.entries(kind) {
            let prefix = format!("{}/{key}", kind.as_str());
            let located = |e: FieldError| {
                let field = if e.field.is_empty() {
                    prefix.clone()
                } else {
                    format!("{prefix}.{}", e.field)
                };
                FieldError::new(e.code, field, e.message)
            };
            if let Err(e) = crate::flags::engine::validate_key(key) {
                problems.push(located(FieldError::new(e.code, "key", e.message)));
                continue;
            }
            match bodies.get(rev) {
                None => problems.push(located(FieldError::new(
                    "missing_revision",
                    "",
                    format!("revision {rev} is missing"),
                ))),
                Some(body) => {
                    if let Err(e) = check_entry(kind, key, body, snapshot, bodies) {
                        problems.push(located(e));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        if let Err(e) = check_cycles(snapshot, bodies) {
            problems.push(FieldError::new(e.code, "flags", e.message));
        }
    }
    problems
}

/// JSON with object keys sorted and no insignificant whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sort(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // serde_json's Map keeps insertion order only with `preserve_order`; sorting
    // through a BTreeMap makes the output canonical either way.
    sort(value).to_string()
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id of a revision body.
pub fn revision_id(body: &Value) -> String {
    sha256_hex(&canonical_json(body))
}

/// A commit's content, from which its id is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitContent {
    pub parent: Option<String>,
    pub author: String,
    pub message: String,
    /// UTC ms.
    pub created_at: i64,
    pub snapshot: Snapshot,
}

pub fn commit_id(content: &CommitContent) -> String {
    let value = serde_json::to_value(content).unwrap_or(Value::Null);
    sha256_hex(&canonical_json(&value))
}

/// One field that differs, by JSON pointer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryDiff {
    pub kind: String,
    pub key: String,
    /// `added`, `removed` or `modified`.
    pub change: &'static str,
    pub fields: Vec<FieldChange>,
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Flattens JSON to leaf pointers. Arrays are indexed, so a moved rule shows as field changes.
fn flatten(value: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(v, format!("{prefix}/{}", escape_pointer(k)), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, format!("{prefix}/{i}"), out);
            }
        }
        leaf => {
            out.insert(prefix, leaf.clone());
        }
    }
}

/// Field-by-field differences between two bodies (either may be absent).
pub fn diff_bodies(before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    if let Some(v) = before {
        flatten(v, String::new(), &mut a);
    }
    if let Some(v) = after {
        flatten(v, String::new(), &mut b);
    }
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| FieldChange {
            path: p.clone(),
            before: a.get(p).cloned(),
            after: b.get(p).cloned(),
        })
        .collect()
}

/// Differences between two snapshots; `body` looks a revision up.
pub fn diff_snapshots(
    from: &Snapshot,
    to: &Snapshot,
    body: &dyn Fn(&str) -> Option<Value>,
) -> Vec<EntryDiff> {
    let mut out = Vec::new();
    for kind in KINDS {
        let (a, b) = (
            from.kind(kind).cloned().unwrap_or_default(),
            to.kind(kind).cloned().unwrap_or_default(),
        );
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let (ra, rb) = (a.get(key), b.get(key));
            if ra == rb {
                continue;
            }
            let change = match (ra, rb) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                _ => "modified",
            };
            let before = ra.and_then(|r| body(r));
            let after = rb.and_then(|r| body(r));
            out.push(EntryDiff {
                kind: kind.to_string(),
                key: key.clone(),
                change,
                fields: diff_bodies(before.as_ref(), after.as_ref()),
            });
        }
    }
    out
}

/// A field both sides changed differently since the base.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub kind: String,
    pub key: String,
    pub path: String,
    pub base: Option<Value>,
    pub ours: Option<Value>,
    pub theirs: Option<Value>,
}

/// The result of a three-way merge of entries (bodies, not revision ids).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merge {
    /// kind -> key -> merged body (absent = deleted).
    pub entries: BTreeMap<String, BTreeMap<String, Value>>,
    pub conflicts: Vec<Conflict>,
}

/// Writes `value` at a JSON pointer, creating objects and arrays on the way. A missing
/// container takes the type it has in `shape` (the documents merged), so an object
/// whose keys look like numbers (`{"7": ...}`) stays an object; an array index never
/// grows an array past the length those documents have.
fn set_pointer(root: &mut Value, path: &str, value: Value, shape: &[&Value]) {
    let tokens: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let max_len = |pointer: &str| {
        shape
            .iter()
            .filter_map(|doc| doc.pointer(pointer).and_then(Value::as_array))
            .map(Vec::len)
            .max()
            .unwrap_or(0)
    };
    let mut cursor = root;
    let mut pointer = String::new();
    for token in &tokens {
        if cursor.is_null() {
            let is_array = shape
                .iter()
                .find_map(|doc| doc.pointer(&pointer))
                .is_some_and(Value::is_array);
            *cursor = if is_array {
                Value::Array(vec![])
            } else {
                Value::Object(Map::new())
            };
        }
        let limit = max_len(&pointer);
        cursor = match cursor {
            Value::Object(map) => map.entry(token.clone()).or_insert(Value::Null),
            Value::Array(items) => {
                let Some(index) = token.parse::<usize>().ok().filter(|i| *i < limit) else {
                    return;
                };
                while items.len() <= index {
                    items.push(Value::Null);
                }
                &mut items[index]
            }
            _ => return,
        };
        pointer.push('/');
        pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
    }
    *cursor = value;
}

fn rebuild(leaves: &BTreeMap<String, Value>, shape: &[&Value]) -> Value {
    let mut root = Value::Null;
    if let Some(whole) = leaves.get("") {
        return whole.clone();
    }
    for (path, value) in leaves {
        set_pointer(&mut root, path, value.clone(), shape);
    }
    root
}

/// Merges `theirs` (an imported environment) into `ours`, relative to their common
/// `base`, field by field. A field changed on one side only takes that side; a field
/// changed on both sides to different values is a conflict and keeps ours.
pub fn merge_three_way(
    base: &BTreeMap<String, BTreeMap<String, Value>>,
    ours: &BTreeMap<String, BTreeMap<String, Value>>,
    theirs: &BTreeMap<String, BTreeMap<String, Value>>,
) -> Merge {
    let mut merge = Merge::default();
    for kind in KINDS {
        let empty = BTreeMap::new();
        let (b, o, t) = (
            base.get(kind).unwrap_or(&empty),
            ours.get(kind).unwrap_or(&empty),
            theirs.get(kind).unwrap_or(&empty),
        );
        let keys: BTreeSet<&String> = b.keys().chain(o.keys()).chain(t.keys()).collect();
        let merged = merge.entries.entry(kind.to_string()).or_default();
        for key in keys {
            let (bv, ov, tv) = (b.get(key), o.get(key), t.get(key));
            if ov == tv {
                if let Some(v) = ov {
                    merged.insert(key.clone(), v.clone());
                }
                continue;
            }
            if ov == bv {
                if let Some(v) = tv {
                    merged.insert(key.clone(), v.clone());
                }
                continue;
            }
            if tv == bv {
                if let Some(v) = ov {
                    merged.insert(key.clone(), v.clone());
                }
                continue;
            }
            // Both changed: go field by field.
            if ov.is_none() || tv.is_none() {
                merge.conflicts.push(Conflict {
                    kind: kind.to_string(),
                    key: key.clone(),
                    path: String::new(),
                    base: bv.cloned(),
                    ours: ov.cloned(),
                    theirs: tv.cloned(),
                });
                if let Some(v) = ov {
                    merged.insert(key.clone(), v.clone());
                }
                continue;
            }
            let (mut lb, mut lo, mut lt) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
            if let Some(v) = bv {
                flatten(v, String::new(), &mut lb);
            }
            if let Some(v) = ov {
                flatten(v, String::new(), &mut lo);
            }
            if let Some(v) = tv {
                flatten(v, String::new(), &mut lt);
            }
            let paths: BTreeSet<String> = lb
                .keys()
                .chain(lo.keys())
                .chain(lt.keys())
                .cloned()
                .collect();
            let mut result = BTreeMap::new();
            for path in paths {
                let (pb, po, pt) = (lb.get(&path), lo.get(&path), lt.get(&path));
                let chosen = if po == pt || pt == pb {
                    po
                } else if po == pb {
                    pt
                } else {
                    merge.conflicts.push(Conflict {
                        kind: kind.to_string(),
                        key: key.clone(),
                        path: path.clone(),
                        base: pb.cloned(),
                        ours: po.cloned(),
                        theirs: pt.cloned(),
                    });
                    po
                };
                if let Some(v) = chosen {
                    result.insert(path, v.clone());
                }
            }
            let shape: Vec<&Value> = [ov, tv, bv].into_iter().flatten().collect();
            merged.insert(key.clone(), rebuild(&result, &shape));
        }
    }
    merge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(Kind, Value)]) -> (Snapshot, HashMap<String, Value>) {
        let mut snapshot = Snapshot::default();
        let mut bodies = HashMap::new();
        for (kind, body) in entries {
            let rev = revision_id(body);
            let key = body["key"].as_str().unwrap_or("bad key").to_string();
            snapshot.entries_mut(*kind).insert(key, rev.clone());
            bodies.insert(rev, body.clone());
        }
        (snapshot, bodies)
    }

    fn flag(key: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({"key": key, "variants": [{"key": "on", "value": true}], "default_variant": "on"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    #[test]
    fn a_valid_config_has_no_problems() {
        use serde_json::json;
        let (snapshot, bodies) = config(&[
            (
                Kind::Probes,
                json!({"key": "partner", "url": "https://partner.example/health"}),
            ),
            (
                Kind::Segments,
                json!({"key": "beta", "conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}]}),
            ),
            (
                Kind::Flags,
                flag(
                    "a",
                    json!({"requires_probe": "partner", "rules": [{"segments": ["beta"], "serve": {"variant": "on"}}]}),
                ),
            ),
            (
                Kind::Flags,
                flag(
                    "b",
                    json!({"prerequisites": [{"flag": "a", "variants": ["on"]}]}),
                ),
            ),
        ]);
        assert!(validate_snapshot(&snapshot, &bodies).is_empty());
    }

    #[test]
    fn every_problem_names_its_entry_and_field() {
        use serde_json::json;
        let (mut snapshot, mut bodies) = config(&[
            (
                Kind::Probes,
                json!({"key": "bad", "url": "file:///etc/passwd"}),
            ),
            (
                Kind::Flags,
                flag(
                    "dangling",
                    json!({"requires_probe": "ghost", "rules": [{"segments": ["nobody"], "serve": {"variant": "on"}}]}),
                ),
            ),
        ]);
        // A body stored under another key, and a key that is not a key.
        let other = flag("other", json!({}));
        snapshot.flags.insert("renamed".into(), revision_id(&other));
        bodies.insert(revision_id(&other), other.clone());
        snapshot.flags.insert("../../x".into(), revision_id(&other));
        let fields: Vec<(String, &str)> = validate_snapshot(&snapshot, &bodies)
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect();
        assert!(
            fields.contains(&("probes/bad.url".to_string(), "invalid_value")),
            "{fields:?}"
        );
        assert!(fields.iter().any(|(f, c)| f == "flags/dangling.rules[0].segments[0]" && *c == "unknown_segment"), "{fields:?}");
        assert!(
            fields.contains(&("flags/renamed.key".to_string(), "key_mismatch")),
            "{fields:?}"
        );
        assert!(
            fields.iter().any(|(f, _)| f == "flags/../../x.key"),
            "{fields:?}"
        );
    }

    #[test]
    fn cycles_are_found_across_flags() {
        use serde_json::json;
        let (snapshot, bodies) = config(&[
            (
                Kind::Flags,
                flag(
                    "a",
                    json!({"prerequisites": [{"flag": "b", "variants": ["on"]}]}),
                ),
            ),
            (
                Kind::Flags,
                flag(
                    "b",
                    json!({"prerequisites": [{"flag": "a", "variants": ["on"]}]}),
                ),
            ),
        ]);
        let problems = validate_snapshot(&snapshot, &bodies);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, "prerequisite_cycle");
        let a = bodies[&snapshot.flags["a"]].clone();
        assert_eq!(
            validate_entry(Kind::Flags, "a", &a, &snapshot, &bodies)
                .unwrap_err()
                .code,
            "prerequisite_cycle"
        );
    }

    #[test]
    fn a_merge_keeps_objects_whose_keys_look_like_numbers() {
        use serde_json::json;
        let entries = |body: Value| {
            BTreeMap::from([(
                "flags".to_string(),
                BTreeMap::from([("f".to_string(), body)]),
            )])
        };
        let value = json!({"7": "seven", "4000000000": "big", "name": "cfg"});
        let base = json!({"key": "f", "description": "d", "salt": "", "variants": [{"key": "v", "value": value}]});
        let mut ours = base.clone();
        ours["description"] = json!("ours");
        let mut theirs = base.clone();
        theirs["salt"] = json!("theirs");
        let merged = merge_three_way(&entries(base), &entries(ours), &entries(theirs));
        assert!(merged.conflicts.is_empty());
        let body = &merged.entries["flags"]["f"];
        assert_eq!(body["variants"][0]["value"], value);
        assert_eq!(
            (body["description"].clone(), body["salt"].clone()),
            (json!("ours"), json!("theirs"))
        );
    }

    #[test]
    fn kinds_have_one_vocabulary() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(KINDS, ["flags", "segments", "probes", "experiments"]);
        assert_eq!(Kind::parse("flag"), None);
        assert_eq!(Kind::Segments.in_use_code(), "segment_in_use");
    }

    #[test]
    fn referrers_find_segments_probes_and_prerequisites() {
        use serde_json::json;
        let checkout = json!({"key": "checkout", "requires_probe": "partner",
            "rules": [{"segments": ["beta"], "serve": {"variant": "on"}}],
            "prerequisites": [{"flag": "new-ui", "variants": ["on"]}]});
        let new_ui =
            json!({"key": "new-ui", "prerequisites": [{"flag": "new-ui", "variants": ["on"]}]});
        let plain = json!({"key": "plain"});
        let flags = [
            ("checkout", &checkout),
            ("new-ui", &new_ui),
            ("plain", &plain),
        ];
        assert_eq!(referrers(Kind::Segments, "beta", flags), vec!["checkout"]);
        assert_eq!(referrers(Kind::Probes, "partner", flags), vec!["checkout"]);
        // A flag naming itself does not keep itself alive.
        assert_eq!(referrers(Kind::Flags, "new-ui", flags), vec!["checkout"]);
        assert!(referrers(Kind::Segments, "ghosts", flags).is_empty());
        assert!(referrers(Kind::Flags, "plain", flags).is_empty());
    }
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": {"d": [2, {"z": 0, "y": 1}], "c": null}})),
            r#"{"a":{"c":null,"d":[2,{"y":1,"z":0}]},"b":1}"#
        );
        assert_eq!(
            revision_id(&json!({"a": 1, "b": 2})),
            revision_id(&json!({"b": 2, "a": 1}))
        );
        assert_ne!(revision_id(&json!({"a": 1})), revision_id(&json!({"a": 2})));
        assert_eq!(revision_id(&json!({})).len(), 64);
    }

    #[test]
    fn snapshots_name_every_kind_of_revision() {
        let mut s = Snapshot::default();
        for (i, kind) in KINDS.iter().enumerate() {
            s.kind_mut(kind)
                .unwrap()
                .insert(format!("k{i}"), format!("r{i}"));
        }
        assert_eq!(s.revisions().len(), KINDS.len());
        let without_probes = serde_json::to_value(Snapshot::default()).unwrap();
        assert_eq!(
            without_probes,
            json!({"flags": {}, "segments": {}}),
            "commit ids of flag-only configs are unchanged"
        );
    }

    #[test]
    fn diffs_field_by_field() {
        let before = json!({"key": "f", "enabled": true, "rules": [{"serve": {"variant": "on"}}]});
        let after = json!({"key": "f", "enabled": false, "rules": [{"serve": {"variant": "off"}}], "salt": "s"});
        let changes = diff_bodies(Some(&before), Some(&after));
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/enabled", "/rules/0/serve/variant", "/salt"]);
        assert_eq!(changes[0].before, Some(json!(true)));
        assert_eq!(changes[2].before, None);
    }

    fn entries(flags: Value) -> BTreeMap<String, BTreeMap<String, Value>> {
        let map: BTreeMap<String, Value> = serde_json::from_value(flags).unwrap();
        BTreeMap::from([("flags".to_string(), map)])
    }

    #[test]
    fn merges_independent_changes_and_reports_conflicts() {
        let base = entries(
            json!({"f": {"key": "f", "enabled": true, "description": "x", "salt": ""}, "gone": {"key": "gone"}}),
        );
        let ours = entries(
            json!({"f": {"key": "f", "enabled": false, "description": "ours", "salt": ""}, "gone": {"key": "gone"}}),
        );
        let theirs = entries(
            json!({"f": {"key": "f", "enabled": true, "description": "theirs", "salt": "new"}, "added": {"key": "added"}}),
        );
        let merge = merge_three_way(&base, &ours, &theirs);
        let f = &merge.entries["flags"]["f"];
        assert_eq!(f["enabled"], json!(false), "ours only");
        assert_eq!(f["salt"], json!("new"), "theirs only");
        assert_eq!(f["description"], json!("ours"), "a conflict keeps ours");
        assert_eq!(merge.conflicts.len(), 1);
        assert_eq!(merge.conflicts[0].path, "/description");
        assert_eq!(merge.conflicts[0].theirs, Some(json!("theirs")));
        assert!(merge.entries["flags"].contains_key("added"));
        assert!(
            !merge.entries["flags"].contains_key("gone"),
            "deleted on their side only"
        );
    }

    #[test]
    fn rebuilds_arrays_and_nested_objects() {
        let v = json!({"rules": [{"conditions": [{"attribute": "a", "op": "eq", "value": 1}], "serve": {"variant": "on"}}], "variants": [{"key": "on", "value": {"x": [1, 2]}}]});
        let mut leaves = BTreeMap::new();
        flatten(&v, String::new(), &mut leaves);
        assert_eq!(rebuild(&leaves, &[&v]), v);
    }
}
