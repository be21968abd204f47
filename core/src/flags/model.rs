//! The wire form of flag configuration, as staged, stored and published.
//! Unknown fields are refused, so a misspelt key is an error, not a silent default.

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn yes() -> bool {
    true
}

/// A published (or staged) set of flags and segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    /// The config version (a commit id) the decisions report.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub flags: Vec<Value>,
    #[serde(default)]
    pub segments: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDef {
    pub key: String,
    #[serde(default)]
    pub description: String,
    /// The kill switch: false serves the off variant to everyone.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub variants: Vec<VariantDef>,
    /// Served when no rule matches.
    pub default_variant: String,
    /// Served while disabled (kill switch, schedule, probe, prerequisite); default: the default variant.
    #[serde(default)]
    pub off_variant: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleDef>,
    #[serde(default)]
    pub prerequisites: Vec<Prerequisite>,
    /// The flag is off while this probe is down.
    #[serde(default)]
    pub requires_probe: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Changes every bucket of this flag (re-randomizes a rollout).
    #[serde(default)]
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantDef {
    pub key: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    #[serde(default)]
    pub id: Option<String>,
    /// All must hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The context must be in every listed segment.
    #[serde(default)]
    pub segments: Vec<String>,
    pub serve: Serve,
}

/// What a matching rule serves: one variant, a variant to a percentage (others fall
/// through to the next rule), or a weighted split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    #[serde(default)]
    pub variant: Option<String>,
    /// With `variant`: only this share (0-100, three decimals) of contexts match.
    #[serde(default)]
    pub rollout_percent: Option<f64>,
    #[serde(default)]
    pub split: Option<Vec<SplitDef>>,
    /// The context attribute that keeps a context in its bucket; default `user_id`, then
    /// `anonymous_id`.
    #[serde(default)]
    pub stickiness: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitDef {
    pub variant: String,
    /// Percent (weights sum to 100).
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub attribute: String,
    pub op: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisite {
    pub flag: String,
    /// The prerequisite flag must serve one of these variants.
    pub variants: Vec<String>,
}

/// A UTC window, RFC 3339 with `Z` or an offset: on from `from`, until (before) `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
}

/// A reusable audience: a context is in it when all its conditions hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    pub key: String,
    #[serde(default)]
    pub description: String,
    pub conditions: Vec<Condition>,
}
