//! The versioned, git-like flag configuration: content-addressed revisions, snapshots,
//! field-by-field diffs and three-way merges. Pure functions; the Worker stores the data.
//!
//! - A **revision** is one flag or segment body, identified by the SHA-256 of its
//!   canonical JSON (object keys sorted, no whitespace). Revisions never change.
//! - A **snapshot** maps each key to a revision id, per kind.
//! - A **commit** is a snapshot plus parent, author, message and UTC time; its id is the
//!   SHA-256 of the canonical JSON of all of that.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The kinds of versioned entries.
pub const KINDS: [&str; 3] = ["flags", "segments", "probes"];

/// key -> revision id, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub flags: BTreeMap<String, String>,
    #[serde(default)]
    pub segments: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn kind(&self, kind: &str) -> Option<&BTreeMap<String, String>> {
        match kind {
            "flags" => Some(&self.flags),
            "segments" => Some(&self.segments),
            "probes" => Some(&self.probes),
            _ => None,
        }
    }

    pub fn kind_mut(&mut self, kind: &str) -> Option<&mut BTreeMap<String, String>> {
        match kind {
            "flags" => Some(&mut self.flags),
            "segments" => Some(&mut self.segments),
            "probes" => Some(&mut self.probes),
            _ => None,
        }
    }

    /// Every revision id the snapshot names.
    pub fn revisions(&self) -> BTreeSet<&str> {
        self.flags
            .values()
            .chain(self.segments.values())
            .chain(self.probes.values())
            .map(String::as_str)
            .collect()
    }
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

/// Writes `value` at a JSON pointer, creating objects and arrays on the way.
fn set_pointer(root: &mut Value, path: &str, value: Value) {
    let tokens: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cursor = root;
    for token in &tokens {
        if cursor.is_null() {
            *cursor = if token.parse::<usize>().is_ok() {
                Value::Array(vec![])
            } else {
                Value::Object(Map::new())
            };
        }
        cursor = match cursor {
            Value::Object(map) => map.entry(token.clone()).or_insert(Value::Null),
            Value::Array(items) => {
                let index = token.parse::<usize>().unwrap_or(items.len());
                while items.len() <= index {
                    items.push(Value::Null);
                }
                &mut items[index]
            }
            _ => return,
        };
    }
    *cursor = value;
}

fn rebuild(leaves: &BTreeMap<String, Value>) -> Value {
    let mut root = Value::Null;
    if let Some(whole) = leaves.get("") {
        return whole.clone();
    }
    for (path, value) in leaves {
        set_pointer(&mut root, path, value.clone());
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
            merged.insert(key.clone(), rebuild(&result));
        }
    }
    merge
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(rebuild(&leaves), v);
    }
}
