//! The wire form of flag configuration, as staged, stored and published.
//! Unknown fields are refused, so a misspelt key is an error, not a silent default.
//!
//! Each type reads itself from a JSON value (`from_value`) by hand rather than through
//! serde's derived deserializers: the collector and the wasm engine share one reader, and
//! the engine's download carries no deserializer. An error names the field's path.

use crate::error::FieldError;
#[allow(unused_imports)]
use crate::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};

/// A published (or staged) set of flags and segments.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Ruleset {
    /// The config version (a commit id) the decisions report.
    pub version: String,
    pub flags: Vec<Value>,
    pub segments: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagDef {
    pub key: String,
    pub description: String,
    /// The kill switch: false serves the off variant to everyone.
    pub enabled: bool,
    pub variants: Vec<VariantDef>,
    /// Served when no rule matches.
    pub default_variant: String,
    /// Served while disabled (kill switch, schedule, probe, prerequisite); default: the default variant.
    pub off_variant: Option<String>,
    pub rules: Vec<RuleDef>,
    pub prerequisites: Vec<Prerequisite>,
    /// The flag is off while this probe is down.
    pub requires_probe: Option<String>,
    pub schedule: Option<Schedule>,
    /// Changes every bucket of this flag (re-randomizes a rollout).
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantDef {
    pub key: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleDef {
    pub id: Option<String>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// The context must be in every listed segment.
    pub segments: Vec<String>,
    pub serve: Serve,
}

/// What a matching rule serves: one variant, a variant to a percentage (others fall
/// through to the next rule), or a weighted split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Serve {
    pub variant: Option<String>,
    /// With `variant`: only this share (0-100, three decimals) of contexts match.
    pub rollout_percent: Option<f64>,
    pub split: Option<Vec<SplitDef>>,
    /// The context attribute that keeps a context in its bucket; default `user_id`, then
    /// `anonymous_id`.
    pub stickiness: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitDef {
    pub variant: String,
    /// Percent (weights sum to 100).
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub attribute: String,
    pub op: String,
    pub value: Option<Value>,
    pub values: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prerequisite {
    pub flag: String,
    /// The prerequisite flag must serve one of these variants.
    pub variants: Vec<String>,
}

/// A UTC window, RFC 3339 with `Z` or an offset: on from `from`, until (before) `until`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub from: Option<String>,
    pub until: Option<String>,
}

/// A reusable audience: a context is in it when all its conditions hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDef {
    pub key: String,
    pub description: String,
    pub conditions: Vec<Condition>,
}

/// One JSON object of a known shape: what serde's derive with `deny_unknown_fields` would
/// read, written out. `path` prefixes every error's field.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
    code: &'static str,
}

impl<'a> Fields<'a> {
    fn of(
        value: &'a Value,
        path: &'a str,
        code: &'static str,
        allowed: &[&str],
    ) -> Result<Fields<'a>, FieldError> {
        let Some(map) = value.as_object() else {
            return Err(FieldError::new(code, path, "must be a JSON object"));
        };
        let fields = Fields { map, path, code };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(fields.error(
                unknown,
                format!("unknown field `{unknown}`; allowed: {}", allowed.join(", ")),
            ));
        }
        Ok(fields)
    }

    fn field(&self, name: &str) -> String {
        match (self.path, name) {
            ("", name) => name.to_string(),
            (path, "") => path.to_string(),
            (path, name) => format!("{path}.{name}"),
        }
    }

    fn error(&self, name: &str, message: impl Into<String>) -> FieldError {
        FieldError::new(self.code, self.field(name), message)
    }

    /// A field that may be absent (`None`); present, it must be of the right type.
    fn get<T>(
        &self,
        name: &str,
        read: impl FnOnce(&'a Value) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, FieldError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(value) => read(value)
                .map(Some)
                .ok_or_else(|| self.error(name, format!("must be {expected}"))),
        }
    }

    /// A field that may be absent or null.
    fn optional<T>(
        &self,
        name: &str,
        read: impl FnOnce(&'a Value) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, FieldError> {
        match self.map.get(name) {
            Some(Value::Null) => Ok(None),
            _ => self.get(name, read, expected),
        }
    }

    fn required<T>(&self, name: &str, found: Option<T>) -> Result<T, FieldError> {
        found.ok_or_else(|| self.error(name, "is required"))
    }

    fn string(&self, name: &str) -> Result<Option<String>, FieldError> {
        self.get(name, |v| v.as_str().map(str::to_string), "a string")
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, FieldError> {
        self.optional(name, |v| v.as_str().map(str::to_string), "a string")
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<String>>, FieldError> {
        self.get(
            name,
            |v| {
                v.as_array()?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect()
            },
            "a list of strings",
        )
    }

    /// A list whose items read themselves (`read(item, item's path)`).
    fn list<T>(
        &self,
        name: &str,
        read: impl Fn(&Value, &str) -> Result<T, FieldError>,
    ) -> Result<Option<Vec<T>>, FieldError> {
        let Some(items) = self.get(name, Value::as_array, "a list")? else {
            return Ok(None);
        };
        let path = self.field(name);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| read(item, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

const INVALID_FLAG: &str = "invalid_flag";

impl Ruleset {
    /// Reads a published ruleset (`{version, flags, segments}`); flags and segments stay
    /// raw, for [`crate::flags::compile`] to read one by one.
    pub fn from_value(value: &Value) -> Result<Ruleset, FieldError> {
        Ruleset::read(value, &["version", "flags", "segments"]).map(|(ruleset, _)| ruleset)
    }

    /// Reads a ruleset as the collector serves it (`GET /v1/flags/ruleset`): also the
    /// probe states it was published with, in `probes`, returned raw (and its `compiled`
    /// form and compile `warnings`, which this reading ignores: it compiles from the
    /// definitions).
    pub fn from_served(value: &Value) -> Result<(Ruleset, Option<&Value>), FieldError> {
        Ruleset::read(
            value,
            &[
                "version", "flags", "segments", "probes", "compiled", "warnings",
            ],
        )
    }

    fn read<'a>(
        value: &'a Value,
        allowed: &[&str],
    ) -> Result<(Ruleset, Option<&'a Value>), FieldError> {
        let f = Fields::of(value, "", "invalid_ruleset", allowed)?;
        let raw = |name| {
            f.get(name, |v| v.as_array().cloned(), "a list")
                .map(Option::unwrap_or_default)
        };
        let ruleset = Ruleset {
            version: f.string("version")?.unwrap_or_default(),
            flags: raw("flags")?,
            segments: raw("segments")?,
        };
        Ok((ruleset, f.map.get("probes")))
    }
}

impl FlagDef {
    pub fn from_value(value: &Value) -> Result<FlagDef, FieldError> {
        let f = Fields::of(
            value,
            "",
            INVALID_FLAG,
            &[
                "key",
                "description",
                "enabled",
                "variants",
                "default_variant",
                "off_variant",
                "rules",
                "prerequisites",
                "requires_probe",
                "schedule",
                "salt",
            ],
        )?;
        Ok(FlagDef {
            key: f.required("key", f.string("key")?)?,
            description: f.string("description")?.unwrap_or_default(),
            enabled: f
                .get("enabled", Value::as_bool, "true or false")?
                .unwrap_or(true),
            variants: f.required("variants", f.list("variants", VariantDef::read)?)?,
            default_variant: f.required("default_variant", f.string("default_variant")?)?,
            off_variant: f.optional_string("off_variant")?,
            rules: f.list("rules", RuleDef::read)?.unwrap_or_default(),
            prerequisites: f
                .list("prerequisites", Prerequisite::read)?
                .unwrap_or_default(),
            requires_probe: f.optional_string("requires_probe")?,
            schedule: match f.map.get("schedule") {
                None | Some(Value::Null) => None,
                Some(v) => Some(Schedule::read(v, &f.field("schedule"))?),
            },
            salt: f.string("salt")?.unwrap_or_default(),
        })
    }
}

impl VariantDef {
    fn read(value: &Value, path: &str) -> Result<VariantDef, FieldError> {
        let f = Fields::of(value, path, INVALID_FLAG, &["key", "value"])?;
        Ok(VariantDef {
            key: f.required("key", f.string("key")?)?,
            value: f.required("value", f.map.get("value").cloned())?,
        })
    }
}

impl RuleDef {
    fn read(value: &Value, path: &str) -> Result<RuleDef, FieldError> {
        let f = Fields::of(
            value,
            path,
            INVALID_FLAG,
            &["id", "conditions", "segments", "serve"],
        )?;
        let serve = f.required("serve", f.map.get("serve"))?;
        Ok(RuleDef {
            id: f.optional_string("id")?,
            conditions: f
                .list("conditions", |v, p| Condition::read(v, p, INVALID_FLAG))?
                .unwrap_or_default(),
            segments: f.strings("segments")?.unwrap_or_default(),
            serve: Serve::read(serve, &f.field("serve"))?,
        })
    }
}

impl Serve {
    fn read(value: &Value, path: &str) -> Result<Serve, FieldError> {
        let f = Fields::of(
            value,
            path,
            INVALID_FLAG,
            &["variant", "rollout_percent", "split", "stickiness"],
        )?;
        let split = match f.map.get("split") {
            None | Some(Value::Null) => None,
            Some(_) => f.list("split", SplitDef::read)?,
        };
        Ok(Serve {
            variant: f.optional_string("variant")?,
            rollout_percent: f.optional("rollout_percent", Value::as_f64, "a number")?,
            split,
            stickiness: f.optional_string("stickiness")?,
        })
    }
}

impl SplitDef {
    fn read(value: &Value, path: &str) -> Result<SplitDef, FieldError> {
        let f = Fields::of(value, path, INVALID_FLAG, &["variant", "weight"])?;
        Ok(SplitDef {
            variant: f.required("variant", f.string("variant")?)?,
            weight: f.required("weight", f.get("weight", Value::as_f64, "a number")?)?,
        })
    }
}

impl Condition {
    fn read(value: &Value, path: &str, code: &'static str) -> Result<Condition, FieldError> {
        let f = Fields::of(value, path, code, &["attribute", "op", "value", "values"])?;
        Ok(Condition {
            attribute: f.required("attribute", f.string("attribute")?)?,
            op: f.required("op", f.string("op")?)?,
            value: f.optional("value", |v| Some(v.clone()), "a value")?,
            values: f.optional("values", |v| v.as_array().cloned(), "a list")?,
        })
    }
}

impl Prerequisite {
    fn read(value: &Value, path: &str) -> Result<Prerequisite, FieldError> {
        let f = Fields::of(value, path, INVALID_FLAG, &["flag", "variants"])?;
        Ok(Prerequisite {
            flag: f.required("flag", f.string("flag")?)?,
            variants: f.required("variants", f.strings("variants")?)?,
        })
    }
}

impl Schedule {
    fn read(value: &Value, path: &str) -> Result<Schedule, FieldError> {
        let f = Fields::of(value, path, INVALID_FLAG, &["from", "until"])?;
        Ok(Schedule {
            from: f.optional_string("from")?,
            until: f.optional_string("until")?,
        })
    }
}

impl SegmentDef {
    pub fn from_value(value: &Value) -> Result<SegmentDef, FieldError> {
        const CODE: &str = "invalid_segment";
        let f = Fields::of(value, "", CODE, &["key", "description", "conditions"])?;
        Ok(SegmentDef {
            key: f.required("key", f.string("key")?)?,
            description: f.string("description")?.unwrap_or_default(),
            conditions: f.required(
                "conditions",
                f.list("conditions", |v, p| Condition::read(v, p, CODE))?,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(extra: Value) -> Value {
        let mut flag = json!({"key": "f", "variants": [{"key": "on", "value": true}], "default_variant": "on"});
        if let (Some(f), Some(e)) = (flag.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        flag
    }

    #[test]
    fn reads_every_field_and_the_defaults() {
        let def = FlagDef::from_value(&flag(json!({}))).unwrap();
        assert!(def.enabled && def.rules.is_empty() && def.off_variant.is_none());
        let def = FlagDef::from_value(&flag(json!({
            "description": "d", "enabled": false, "off_variant": null, "salt": "s",
            "requires_probe": "api", "schedule": {"from": "2026-01-01T00:00:00Z", "until": null},
            "prerequisites": [{"flag": "g", "variants": ["on"]}],
            "rules": [{"id": "r", "segments": ["beta"], "conditions": [
                {"attribute": "a", "op": "in", "values": [1, "x"]}, {"attribute": "b", "op": "eq", "value": null}],
                "serve": {"split": [{"variant": "on", "weight": 100}], "stickiness": "a", "rollout_percent": null}}]
        })))
        .unwrap();
        assert!(!def.enabled);
        assert_eq!(
            (def.salt.as_str(), def.requires_probe.as_deref()),
            ("s", Some("api"))
        );
        assert_eq!(def.schedule.unwrap().until, None);
        assert_eq!(def.prerequisites[0].variants, ["on"]);
        let rule = &def.rules[0];
        assert_eq!(rule.conditions[0].values.as_ref().unwrap().len(), 2);
        assert_eq!(rule.conditions[1].value, None, "null reads as absent");
        assert_eq!(rule.serve.split.as_ref().unwrap()[0].weight, 100.0);
    }

    #[test]
    fn errors_name_the_field_by_its_path() {
        let cases = [
            (flag(json!({"enabeld": true})), "enabeld", "unknown field"),
            (
                json!({"variants": [], "default_variant": "on"}),
                "key",
                "is required",
            ),
            (flag(json!({"enabled": "yes"})), "enabled", "true or false"),
            (
                flag(json!({"description": null})),
                "description",
                "a string",
            ),
            (
                flag(json!({"rules": [{"serve": {"variant": "on", "rollout": 5}}]})),
                "rules[0].serve.rollout",
                "unknown field",
            ),
            (
                flag(json!({"rules": [{"conditions": [{"attribute": "a"}], "serve": {}}]})),
                "rules[0].conditions[0].op",
                "is required",
            ),
            (
                flag(json!({"rules": [{"serve": {"split": [{"variant": "on", "weight": "1"}]}}]})),
                "rules[0].serve.split[0].weight",
                "a number",
            ),
            (
                flag(json!({"rules": [{}]})),
                "rules[0].serve",
                "is required",
            ),
            (flag(json!({"rules": {}})), "rules", "a list"),
            (
                flag(json!({"prerequisites": [{"flag": "g", "variants": [1]}]})),
                "prerequisites[0].variants",
                "a list of strings",
            ),
            (
                flag(json!({"schedule": {"from": 1}})),
                "schedule.from",
                "a string",
            ),
            (
                flag(json!({"variants": [{"key": "on"}]})),
                "variants[0].value",
                "is required",
            ),
            (json!([]), "", "a JSON object"),
        ];
        for (value, field, message) in cases {
            let e = FlagDef::from_value(&value).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_str()),
                ("invalid_flag", field),
                "{value}"
            );
            assert!(e.message.contains(message), "{value}: {}", e.message);
        }
        let e = SegmentDef::from_value(
            &json!({"key": "s", "conditions": [{"attribute": "a", "op": "eq", "extra": 1}]}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("invalid_segment", "conditions[0].extra")
        );
        let e = Ruleset::from_value(&json!({"flags": [], "probes": {}})).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("invalid_ruleset", "probes"));
    }
}
