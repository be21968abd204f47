//! Parse, then compile, then evaluate. The published ruleset compiles once into an
//! [`Engine`]; a flag with a problem becomes a warning and serves its default, and never
//! breaks the other flags. Evaluation is pure: context, probe states and `now_ms` come in.

use super::hash::{bucket, BUCKETS};
use super::model::{Condition, FlagDef, Prerequisite, RuleDef, Ruleset, SegmentDef, Serve};
use super::semver::{self, Version};
use crate::error::FieldError;
#[allow(unused_imports)]
use crate::prelude::*;
use crate::time::parse_api_time;
use alloc::borrow::Cow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Evaluation context: attributes such as `user_id`, `anonymous_id`, `role`, `course_id`.
pub type Context = Map<String, Value>;

/// A probe's state, as the probe state machine reports it.
pub use crate::probe_state::ProbeState;

#[path = "wire.rs"]
mod wire;
pub use wire::{base64, compiled_form, read_wire_value, write_wire_value, WireError};

/// Probe states by name: a short list kept sorted (an app has a handful of probes). Not a
/// map type: each map type instantiates a B-tree's code, which the wasm engine downloads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStates(Vec<(String, ProbeState)>);

impl ProbeStates {
    pub fn new() -> Self {
        ProbeStates(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&ProbeState> {
        let at = self
            .0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()?;
        self.0.get(at).map(|(_, state)| state)
    }

    /// Sets a probe's state (a name set twice keeps the later state).
    pub fn insert(&mut self, name: String, state: ProbeState) {
        match self.0.binary_search_by(|(n, _)| n.cmp(&name)) {
            Ok(at) => self.0[at].1 = state,
            Err(at) => self.0.insert(at, (name, state)),
        }
    }

    /// By name, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ProbeState)> {
        self.0.iter().map(|(name, state)| (name, state))
    }
}

impl FromIterator<(String, ProbeState)> for ProbeStates {
    fn from_iter<I: IntoIterator<Item = (String, ProbeState)>>(iter: I) -> Self {
        let mut states = ProbeStates::new();
        for (name, state) in iter {
            states.insert(name, state);
        }
        states
    }
}

/// Why a value was served: OpenFeature's reasons, plus `PREREQUISITE_FAILED`. On the
/// wire each is its upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    Static,
    TargetingMatch,
    Split,
    Disabled,
    Default,
    Error,
    PrerequisiteFailed,
}

impl Reason {
    /// Every reason, in a fixed order (bindings number them by it).
    pub const ALL: [Reason; 7] = [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Disabled,
        Reason::Default,
        Reason::Error,
        Reason::PrerequisiteFailed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Default => "DEFAULT",
            Reason::Error => "ERROR",
            Reason::PrerequisiteFailed => "PREREQUISITE_FAILED",
        }
    }
}

/// OpenFeature error codes.
pub mod error_code {
    pub const FLAG_NOT_FOUND: &str = "FLAG_NOT_FOUND";
    pub const PARSE_ERROR: &str = "PARSE_ERROR";
    pub const TYPE_MISMATCH: &str = "TYPE_MISMATCH";
}

/// Why a decision is an error, as OpenFeature names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionError {
    /// No flag has the key.
    FlagNotFound,
    /// The flag did not compile; it serves its declared default, if any.
    ParseError,
}

impl DecisionError {
    pub const fn code(self) -> &'static str {
        match self {
            DecisionError::FlagNotFound => error_code::FLAG_NOT_FOUND,
            DecisionError::ParseError => error_code::PARSE_ERROR,
        }
    }
}

/// A decision by index, made without allocating: what a [`Decision`] says, with the
/// variant and the rule as indexes into the flag's tables ([`Engine::variants`],
/// [`Engine::rule_id`]). Bindings keep those tables on their side and pass this across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub variant: Option<usize>,
    pub reason: Reason,
    pub error: Option<DecisionError>,
    pub rule: Option<usize>,
    /// The bucket (0..100,000) used by a rollout or split.
    pub bucket: Option<u32>,
    /// The flag's required probe is down (it names the probe: [`Engine::required_probe`]).
    pub probe_down: bool,
}

impl Outcome {
    fn served(variant: usize, reason: Reason) -> Outcome {
        Outcome {
            variant: Some(variant),
            reason,
            error: None,
            rule: None,
            bucket: None,
            probe_down: false,
        }
    }
}

/// One flag decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub key: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The id of the rule that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The bucket (0..100,000) used by a rollout or split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
    /// The probe that disabled the flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    pub version: String,
}

/// Declares the condition operators once: the enum, its config names, and the list.
macro_rules! operators {
    ($($variant:ident = $name:literal),+ $(,)?) => {
        /// A condition operator. Config names are snake_case (`semver_gte`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Op { $($variant),+ }

        impl Op {
            /// Every operator, in documentation order.
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            /// The operator's name in config.
            pub const fn as_str(self) -> &'static str {
                match self { $(Op::$variant => $name),+ }
            }

            pub fn parse(name: &str) -> Option<Op> {
                match name { $($name => Some(Op::$variant),)+ _ => None }
            }
        }
    };
}

operators! {
    Eq = "eq",
    Neq = "neq",
    In = "in",
    NotIn = "not_in",
    Contains = "contains",
    StartsWith = "starts_with",
    EndsWith = "ends_with",
    Lt = "lt",
    Lte = "lte",
    Gt = "gt",
    Gte = "gte",
    SemverEq = "semver_eq",
    SemverLt = "semver_lt",
    SemverLte = "semver_lte",
    SemverGt = "semver_gt",
    SemverGte = "semver_gte",
    Before = "before",
    After = "after",
}

/// The operator names, as written in config.
pub fn operator_names() -> impl Iterator<Item = &'static str> {
    Op::ALL.iter().map(|op| op.as_str())
}

#[derive(Debug, Clone)]
enum Operand {
    Scalar(Value),
    List(Vec<Value>),
    Text(String),
    Number(f64),
    Version(Version),
    Time(i64),
}

#[derive(Debug, Clone)]
struct CompiledCondition {
    /// The attribute's number in the engine's [`Attributes`] table.
    attribute: usize,
    op: Op,
    operand: Operand,
}

/// The context attributes a ruleset reads, numbered at compile time: a context is read
/// once per evaluation context ([`Engine::resolve`]), and a condition then finds its
/// attribute by number instead of by name.
#[derive(Debug, Clone, Default)]
struct Attributes {
    names: Vec<String>,
    /// Per attribute: a semver condition reads it (its version is parsed once, on resolve).
    versions: Vec<bool>,
}

/// The default stickiness attributes, numbered first in every table.
const USER_ID: usize = 0;
const ANONYMOUS_ID: usize = 1;

impl Attributes {
    fn new() -> Attributes {
        let mut table = Attributes::default();
        table.number("user_id");
        table.number("anonymous_id");
        table
    }

    fn number(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(at) => at,
            None => {
                self.names.push(name.to_string());
                self.versions.push(false);
                self.names.len() - 1
            }
        }
    }
}

/// A context read against one engine's attribute table ([`Engine::resolve`]): the values
/// its rules can read, by attribute number, and parsed versions where semver conditions
/// compare them. Resolve once, then decide any number of flags.
#[derive(Debug, Clone, Default)]
pub struct Resolved<'a> {
    /// Borrowed from the context ([`Engine::resolve`]) or read from its JSON
    /// ([`Engine::resolve_json`]).
    values: Vec<Option<Cow<'a, Value>>>,
    versions: Vec<Option<Version>>,
}

impl Resolved<'_> {
    /// The attribute's value, if the context has one that is not null.
    fn get(&self, attribute: usize) -> Option<&Value> {
        self.values.get(attribute)?.as_deref()
    }
}

/// Filling a context in place, attribute by attribute ([`Engine::blank_context`]): a
/// binding that sets a new context for every user then reuses the storage of the last one
/// (a string value overwrites the string before it), so setting a context allocates only
/// when a value outgrows its predecessor.
impl Resolved<'static> {
    /// Sets attribute `attribute` (a number of [`Engine::attribute_names`]) to a string.
    pub fn set_text(&mut self, attribute: usize, text: &str) {
        match self.values.get_mut(attribute) {
            Some(Some(Cow::Owned(Value::String(old)))) => {
                old.clear();
                old.push_str(text);
            }
            Some(slot) => *slot = Some(Cow::Owned(Value::String(text.to_string()))),
            None => {}
        }
    }

    /// Sets attribute `attribute` to a value (null or `None`: absent).
    pub fn set(&mut self, attribute: usize, value: Option<Value>) {
        if let Some(slot) = self.values.get_mut(attribute) {
            *slot = value.filter(|v| !v.is_null()).map(Cow::Owned);
        }
    }

    /// Makes every attribute absent.
    pub fn clear(&mut self) {
        self.values.iter_mut().for_each(|slot| *slot = None);
    }
}

#[derive(Debug, Clone)]
enum CompiledServe {
    Variant(usize),
    Rollout {
        variant: usize,
        below_bucket: u32,
    },
    /// (exclusive upper bucket, variant index), ascending.
    Split(Vec<(u32, usize)>),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    id: String,
    conditions: Vec<CompiledCondition>,
    /// Indexes into [`Engine::segments`], resolved at compile time.
    segments: Vec<usize>,
    serve: CompiledServe,
    /// The stickiness attribute's number; `None`: `user_id`, then `anonymous_id`.
    stickiness: Option<usize>,
}

#[derive(Debug, Clone)]
struct CompiledFlag {
    variants: Vec<(String, Value)>,
    enabled: bool,
    default: usize,
    off: usize,
    rules: Vec<CompiledRule>,
    prerequisites: Vec<Prerequisite>,
    requires_probe: Option<String>,
    from_ms: Option<i64>,
    until_ms: Option<i64>,
    salt: String,
}

#[derive(Debug, Clone)]
enum FlagEntry {
    Ready(CompiledFlag),
    /// Did not compile: serves its default value (when known) with reason ERROR.
    Broken {
        default: Option<(String, Value)>,
        problem: String,
    },
}

/// Most variants one flag may have.
pub const MAX_VARIANTS: usize = 1_000;
/// Deepest chain of prerequisites a decision follows, and most prerequisite checks one
/// decision makes: beyond either, the flag serves its off variant (`PREREQUISITE_FAILED`).
pub const MAX_PREREQUISITE_DEPTH: usize = 32;
pub const MAX_PREREQUISITE_CHECKS: u32 = 1_000;
/// Most rules one flag may have.
pub const MAX_RULES: usize = 1_000;

/// A compiled ruleset, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    version: String,
    /// Sorted by key: a flag's index is its position here.
    flags: Vec<(String, FlagEntry)>,
    /// Per flag (by index): its position in the ruleset's `flags` list.
    sources: Vec<usize>,
    /// Each segment's conditions; rules name segments by position here.
    segments: Vec<Vec<CompiledCondition>>,
    attributes: Attributes,
    warnings: Vec<FieldError>,
}

/// `f64::round` (half away from zero), which `no_std` lacks: `x - trunc(x)` is exact, so
/// no addition of 0.5 can round up a value just below a half.
fn round(x: f64) -> f64 {
    // 2^52: from here on every f64 is an integer (and NaN and the infinities pass through).
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let whole = x as i64 as f64;
    let fraction = x - whole;
    if fraction >= 0.5 {
        whole + 1.0
    } else if fraction <= -0.5 {
        whole - 1.0
    } else {
        whole
    }
}

fn err(field: String, message: impl Into<String>) -> FieldError {
    FieldError::new("invalid_value", field, message)
}

fn compile_condition(
    c: &Condition,
    path: &str,
    attributes: &mut Attributes,
) -> Result<CompiledCondition, FieldError> {
    if c.attribute.trim().is_empty() {
        return Err(err(
            format!("{path}.attribute"),
            "attribute must name a context attribute",
        ));
    }
    let op = Op::parse(&c.op).ok_or_else(|| {
        err(
            format!("{path}.op"),
            format!(
                "unknown operator `{}`; known: {}",
                c.op,
                operator_names().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let value = || {
        c.value.clone().filter(|v| !v.is_null()).ok_or_else(|| {
            err(
                format!("{path}.value"),
                format!("`{}` needs a `value`", c.op),
            )
        })
    };
    let operand = match op {
        Op::In | Op::NotIn => match &c.values {
            Some(values) if !values.is_empty() => Operand::List(values.clone()),
            _ => {
                return Err(err(
                    format!("{path}.values"),
                    format!("`{}` needs a non-empty `values` list", c.op),
                ))
            }
        },
        Op::Eq | Op::Neq => Operand::Scalar(value()?),
        Op::Contains | Op::StartsWith | Op::EndsWith => match value()? {
            Value::String(s) => Operand::Text(s),
            _ => {
                return Err(err(
                    format!("{path}.value"),
                    format!("`{}` compares strings", c.op),
                ))
            }
        },
        Op::Lt | Op::Lte | Op::Gt | Op::Gte => match value()?.as_f64() {
            Some(n) => Operand::Number(n),
            None => {
                return Err(err(
                    format!("{path}.value"),
                    format!("`{}` compares numbers", c.op),
                ))
            }
        },
        Op::SemverEq | Op::SemverLt | Op::SemverLte | Op::SemverGt | Op::SemverGte => {
            match value()?.as_str().and_then(semver::parse) {
                Some(v) => Operand::Version(v),
                None => {
                    return Err(err(
                        format!("{path}.value"),
                        "value must be a semantic version such as 2.1.0",
                    ))
                }
            }
        }
        Op::Before | Op::After => match time_of(&value()?) {
            Some(t) => Operand::Time(t),
            None => {
                return Err(err(
                    format!("{path}.value"),
                    "value must be an RFC 3339 time or integer ms",
                ))
            }
        },
    };
    let attribute = attributes.number(&c.attribute);
    if matches!(operand, Operand::Version(_)) {
        attributes.versions[attribute] = true;
    }
    Ok(CompiledCondition {
        attribute,
        op,
        operand,
    })
}

fn time_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_api_time(s),
        _ => None,
    }
}

/// A percentage to seven decimals, trailing zeros trimmed, without float formatting
/// (which would be a sizeable share of the wasm engine): 99.5 reads `99.5`, and a sum a
/// hair off 100 still shows the hair (`100.00001`).
fn percent_text(percent: f64) -> String {
    let units = round(percent * 1e7);
    if !units.is_finite() || units.abs() >= 1e17 {
        return "a number out of range".into();
    }
    let units = units as i64;
    let sign = if units < 0 { "-" } else { "" };
    let (whole, fraction) = (units.abs() / 10_000_000, units.abs() % 10_000_000);
    let fraction = format!(".{fraction:07}");
    format!(
        "{sign}{whole}{}",
        fraction.trim_end_matches('0').trim_end_matches('.')
    )
}

fn variant_index(
    variants: &[(String, Value)],
    key: &str,
    field: String,
) -> Result<usize, FieldError> {
    variants
        .iter()
        .position(|(k, _)| k == key)
        .ok_or_else(|| err(field, format!("no variant `{key}` in this flag")))
}

fn compile_serve(
    serve: &Serve,
    variants: &[(String, Value)],
    path: &str,
) -> Result<CompiledServe, FieldError> {
    match (&serve.variant, &serve.split) {
        (Some(v), None) => {
            let variant = variant_index(variants, v, format!("{path}.variant"))?;
            match serve.rollout_percent {
                None => Ok(CompiledServe::Variant(variant)),
                Some(p) if (0.0..=100.0).contains(&p) => Ok(CompiledServe::Rollout {
                    variant,
                    below_bucket: round(p * f64::from(BUCKETS) / 100.0) as u32,
                }),
                Some(_) => Err(err(
                    format!("{path}.rollout_percent"),
                    "rollout_percent must be from 0 to 100",
                )),
            }
        }
        (None, Some(split)) if !split.is_empty() => {
            if serve.rollout_percent.is_some() {
                return Err(err(
                    format!("{path}.rollout_percent"),
                    "rollout_percent goes with `variant`, not `split`",
                ));
            }
            let mut cumulative = 0.0;
            let mut out = Vec::with_capacity(split.len());
            for (i, s) in split.iter().enumerate() {
                if !(s.weight.is_finite() && s.weight >= 0.0) {
                    return Err(err(
                        format!("{path}.split[{i}].weight"),
                        "weights are percentages from 0 to 100",
                    ));
                }
                cumulative += s.weight;
                let index =
                    variant_index(variants, &s.variant, format!("{path}.split[{i}].variant"))?;
                out.push((round(cumulative * f64::from(BUCKETS) / 100.0) as u32, index));
            }
            if (cumulative - 100.0).abs() > 1e-6 {
                return Err(err(
                    format!("{path}.split"),
                    format!("split weights sum to {}, not 100", percent_text(cumulative)),
                ));
            }
            Ok(CompiledServe::Split(out))
        }
        _ => Err(err(
            path.to_string(),
            "serve exactly one of `variant` or a non-empty `split`",
        )),
    }
}

fn compile_rule(
    rule: &RuleDef,
    index: usize,
    variants: &[(String, Value)],
    segments: &[&str],
    attributes: &mut Attributes,
) -> Result<CompiledRule, FieldError> {
    let path = format!("rules[{index}]");
    let mut conditions = Vec::with_capacity(rule.conditions.len());
    for (i, c) in rule.conditions.iter().enumerate() {
        conditions.push(compile_condition(
            c,
            &format!("{path}.conditions[{i}]"),
            attributes,
        )?);
    }
    let segments = rule
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            segments.iter().position(|known| known == s).ok_or_else(|| {
                FieldError::new(
                    "unknown_segment",
                    format!("{path}.segments[{i}]"),
                    format!("no segment `{s}`"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledRule {
        id: rule.id.clone().unwrap_or_else(|| format!("rule-{index}")),
        conditions,
        segments,
        serve: compile_serve(&rule.serve, variants, &format!("{path}.serve"))?,
        stickiness: rule
            .serve
            .stickiness
            .as_deref()
            .map(|a| attributes.number(a)),
    })
}

/// Checks one flag definition as staged. `segments` are the known segment keys and
/// `flags` the known flag keys (for prerequisites). Field paths are relative to the flag.
pub fn validate_flag(
    raw: &Value,
    segments: &[&str],
    flags: &[&str],
) -> Result<FlagDef, FieldError> {
    let def = FlagDef::from_value(raw)?;
    compile_flag(&def, segments, flags, &mut Attributes::new())?;
    Ok(def)
}

/// Checks one segment definition as staged.
pub fn validate_segment(raw: &Value) -> Result<SegmentDef, FieldError> {
    let def = SegmentDef::from_value(raw)?;
    validate_key(&def.key)?;
    let mut attributes = Attributes::new();
    for (i, c) in def.conditions.iter().enumerate() {
        compile_condition(c, &format!("conditions[{i}]"), &mut attributes)?;
    }
    Ok(def)
}

/// Flag and segment keys: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`.
pub fn validate_key(key: &str) -> Result<(), FieldError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, b'_' | b'-' | b'.')));
    if ok {
        Ok(())
    } else {
        Err(err(
            "key".into(),
            "keys are 1 to 128 of A-Z, a-z, 0-9, _, - and ., starting with a letter or digit",
        ))
    }
}

fn compile_flag(
    def: &FlagDef,
    segments: &[&str],
    flags: &[&str],
    attributes: &mut Attributes,
) -> Result<CompiledFlag, FieldError> {
    validate_key(&def.key)?;
    if def.variants.is_empty() {
        return Err(err("variants".into(), "a flag needs at least one variant"));
    }
    // Bounds that bindings rely on (the wasm engine packs indexes in 16 and 14 bits).
    if def.variants.len() > MAX_VARIANTS {
        return Err(err(
            "variants".into(),
            format!("a flag has at most {MAX_VARIANTS} variants"),
        ));
    }
    if def.rules.len() > MAX_RULES {
        return Err(err(
            "rules".into(),
            format!("a flag has at most {MAX_RULES} rules"),
        ));
    }
    let variants: Vec<(String, Value)> = def
        .variants
        .iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect();
    for (i, (k, _)) in variants.iter().enumerate() {
        if variants[..i].iter().any(|(other, _)| other == k) {
            return Err(err(
                format!("variants[{i}].key"),
                format!("variant `{k}` appears twice"),
            ));
        }
    }
    let default = variant_index(&variants, &def.default_variant, "default_variant".into())?;
    let off = match &def.off_variant {
        Some(v) => variant_index(&variants, v, "off_variant".into())?,
        None => default,
    };
    let mut rules = Vec::with_capacity(def.rules.len());
    for (i, r) in def.rules.iter().enumerate() {
        rules.push(compile_rule(r, i, &variants, segments, attributes)?);
    }
    for (i, p) in def.prerequisites.iter().enumerate() {
        if p.flag == def.key {
            return Err(FieldError::new(
                "prerequisite_cycle",
                format!("prerequisites[{i}].flag"),
                "a flag cannot require itself",
            ));
        }
        if !flags.contains(&p.flag.as_str()) {
            return Err(FieldError::new(
                "unknown_flag",
                format!("prerequisites[{i}].flag"),
                format!("no flag `{}`", p.flag),
            ));
        }
        if p.variants.is_empty() {
            return Err(err(
                format!("prerequisites[{i}].variants"),
                "name at least one variant",
            ));
        }
    }
    let (mut from_ms, mut until_ms) = (None, None);
    if let Some(s) = &def.schedule {
        let parse = |t: &Option<String>, field: &str| match t {
            None => Ok(None),
            Some(text) => crate::time::parse_rfc3339(text).map(Some).ok_or_else(|| {
                err(
                    format!("schedule.{field}"),
                    "schedule times are RFC 3339 with Z or an offset",
                )
            }),
        };
        from_ms = parse(&s.from, "from")?;
        until_ms = parse(&s.until, "until")?;
        if let (Some(f), Some(u)) = (from_ms, until_ms) {
            if f >= u {
                return Err(err("schedule.until".into(), "until must be after from"));
            }
        }
    }
    Ok(CompiledFlag {
        variants,
        enabled: def.enabled,
        default,
        off,
        rules,
        prerequisites: def.prerequisites.clone(),
        requires_probe: def.requires_probe.clone(),
        from_ms,
        until_ms,
        salt: def.salt.clone(),
    })
}

/// `entries` sorted by key, the last of each key kept (what inserting them one by one into
/// a map would leave), without a map type's code in the wasm engine.
fn sorted_last_wins<T>(mut entries: Vec<(String, T)>) -> Vec<(String, T)> {
    // Stable: equal keys stay in their order, so the last of a run is the latest.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept: Vec<(String, T)> = Vec::with_capacity(entries.len());
    for entry in entries {
        match kept.last_mut() {
            Some(last) if last.0 == entry.0 => *last = entry,
            _ => kept.push(entry),
        }
    }
    kept
}

/// The value of `key` in a list [`sorted_last_wins`] made.
fn sorted_get<'a, T>(entries: &'a [(String, T)], key: &str) -> Option<&'a T> {
    let at = entries
        .binary_search_by(|(k, _)| k.as_str().cmp(key))
        .ok()?;
    entries.get(at).map(|(_, value)| value)
}

/// Flags whose prerequisites lead back to themselves (`edges` sorted by flag key).
fn flags_in_cycles(edges: &[(String, Vec<String>)]) -> Vec<String> {
    let mut in_cycle = Vec::new();
    for (start, first) in edges {
        // Depth-first search from `start` looking for a path back to it.
        let mut stack: Vec<&String> = first.iter().collect();
        let mut seen: Vec<&String> = Vec::new();
        while let Some(next) = stack.pop() {
            if next == start {
                in_cycle.push(start.clone());
                break;
            }
            if seen.contains(&next) {
                continue;
            }
            seen.push(next);
            if let Some(more) = sorted_get(edges, next) {
                stack.extend(more.iter());
            }
        }
    }
    in_cycle
}

/// Compiles a ruleset. Never fails: problems become [`Engine::warnings`].
pub fn compile(ruleset: &Ruleset) -> Engine {
    let mut warnings = Vec::new();
    // Segment keys and conditions, by position; a repeated key keeps its place and takes
    // the later definition.
    let mut segment_keys: Vec<String> = Vec::new();
    let mut segments: Vec<Vec<CompiledCondition>> = Vec::new();
    let mut attributes = Attributes::new();
    for (i, raw) in ruleset.segments.iter().enumerate() {
        match validate_segment(raw) {
            Ok(def) => {
                let conditions = def
                    .conditions
                    .iter()
                    .enumerate()
                    .filter_map(|(j, c)| {
                        compile_condition(c, &format!("conditions[{j}]"), &mut attributes).ok()
                    })
                    .collect();
                match segment_keys.iter().position(|k| *k == def.key) {
                    Some(at) => segments[at] = conditions,
                    None => {
                        segment_keys.push(def.key);
                        segments.push(conditions);
                    }
                }
            }
            Err(e) => warnings.push(FieldError::new(
                e.code,
                format!("segments[{i}].{}", e.field),
                e.message,
            )),
        }
    }
    let segment_keys: Vec<&str> = segment_keys.iter().map(String::as_str).collect();
    let flag_keys: Vec<String> = ruleset
        .flags
        .iter()
        .filter_map(|f| f.get("key").and_then(Value::as_str).map(str::to_string))
        .collect();
    let flag_key_refs: Vec<&str> = flag_keys.iter().map(String::as_str).collect();
    let mut flags = Vec::new();
    let mut edges = Vec::new();
    for (i, raw) in ruleset.flags.iter().enumerate() {
        let key = raw
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = if key.is_empty() {
            format!("flags[{i}]")
        } else {
            format!("flags.{key}")
        };
        let entry = match FlagDef::from_value(raw).and_then(|def| {
            compile_flag(&def, &segment_keys, &flag_key_refs, &mut attributes).map(|c| (def, c))
        }) {
            Ok((def, compiled)) => {
                edges.push((
                    key.clone(),
                    def.prerequisites
                        .iter()
                        .map(|p| p.flag.clone())
                        .collect::<Vec<_>>(),
                ));
                FlagEntry::Ready(compiled)
            }
            Err(e) => {
                let field = if e.field.is_empty() {
                    name.clone()
                } else {
                    format!("{name}.{}", e.field)
                };
                warnings.push(FieldError::new(e.code, field, e.message.clone()));
                FlagEntry::Broken {
                    default: declared_default(raw),
                    problem: e.message,
                }
            }
        };
        if !key.is_empty() {
            flags.push((key, (i, entry)));
        }
    }
    let mut flags = sorted_last_wins(flags);
    for key in flags_in_cycles(&sorted_last_wins(edges)) {
        warnings.push(FieldError::new(
            "prerequisite_cycle",
            format!("flags.{key}.prerequisites"),
            "prerequisites form a cycle",
        ));
        let at = flags.binary_search_by(|(k, _)| k.cmp(&key));
        if let Some((_, (source, entry))) = at.ok().and_then(|at| flags.get_mut(at)) {
            *entry = FlagEntry::Broken {
                default: ruleset.flags.get(*source).and_then(declared_default),
                problem: "prerequisites form a cycle".into(),
            };
        }
    }
    let (flags, sources) = flags
        .into_iter()
        .map(|(key, (source, entry))| ((key, entry), source))
        .unzip();
    Engine {
        version: ruleset.version.clone(),
        flags,
        sources,
        segments,
        attributes,
        warnings,
    }
}

/// The default variant a broken flag declared, if it can be read at all.
fn declared_default(raw: &Value) -> Option<(String, Value)> {
    let key = raw.get("default_variant")?.as_str()?;
    let value = raw
        .get("variants")?
        .as_array()?
        .iter()
        .find(|v| v.get("key").and_then(Value::as_str) == Some(key))?
        .get("value")?;
    Some((key.to_string(), value.clone()))
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn condition_holds(c: &CompiledCondition, ctx: &Resolved) -> bool {
    let Some(attr) = ctx.get(c.attribute) else {
        return false; // a missing attribute matches no condition, not even neq
    };
    match (&c.op, &c.operand) {
        (Op::Eq, Operand::Scalar(v)) => numbers_equal(attr, v),
        (Op::Neq, Operand::Scalar(v)) => !numbers_equal(attr, v),
        (Op::In, Operand::List(vs)) => vs.iter().any(|v| numbers_equal(attr, v)),
        (Op::NotIn, Operand::List(vs)) => !vs.iter().any(|v| numbers_equal(attr, v)),
        (Op::Contains, Operand::Text(t)) => attr.as_str().is_some_and(|a| a.contains(t.as_str())),
        (Op::StartsWith, Operand::Text(t)) => {
            attr.as_str().is_some_and(|a| a.starts_with(t.as_str()))
        }
        (Op::EndsWith, Operand::Text(t)) => attr.as_str().is_some_and(|a| a.ends_with(t.as_str())),
        (Op::Lt | Op::Lte | Op::Gt | Op::Gte, Operand::Number(n)) => {
            attr.as_f64().is_some_and(|a| match c.op {
                Op::Lt => a < *n,
                Op::Lte => a <= *n,
                Op::Gt => a > *n,
                _ => a >= *n,
            })
        }
        (_, Operand::Version(v)) => {
            let parsed = ctx.versions.get(c.attribute).and_then(Option::as_ref);
            parsed.is_some_and(|a| match c.op {
                Op::SemverEq => *a == *v,
                Op::SemverLt => *a < *v,
                Op::SemverLte => *a <= *v,
                Op::SemverGt => *a > *v,
                _ => *a >= *v,
            })
        }
        (Op::Before, Operand::Time(t)) => time_of(attr).is_some_and(|a| a < *t),
        (Op::After, Operand::Time(t)) => time_of(attr).is_some_and(|a| a > *t),
        _ => false,
    }
}

fn stickiness_value<'c>(ctx: &'c Resolved<'_>, attribute: Option<usize>) -> Option<Cow<'c, str>> {
    fn text(v: &Value) -> Option<Cow<'_, str>> {
        match v {
            Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s.as_str())),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }
    match attribute {
        Some(a) => ctx.get(a).and_then(text),
        None => ctx
            .get(USER_ID)
            .and_then(text)
            .or_else(|| ctx.get(ANONYMOUS_ID).and_then(text)),
    }
}

impl Engine {
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Problems found while compiling, with the field path of each.
    pub fn warnings(&self) -> &[FieldError] {
        &self.warnings
    }

    /// The latest schedule boundary (a flag's `from` or `until`) at or before `now_ms`;
    /// `None` before the first. Time enters a decision only through schedules (`before`
    /// and `after` compare context attributes, not the clock), so for one config, context
    /// and set of probe states the decisions can change only when this value changes: an
    /// answer's validator (ETag) must include it.
    pub fn schedule_epoch(&self, now_ms: i64) -> Option<i64> {
        self.schedule_boundaries().filter(|&t| t <= now_ms).max()
    }

    /// The next schedule boundary after `now_ms`, when a decision may change by itself.
    pub fn next_schedule_boundary(&self, now_ms: i64) -> Option<i64> {
        self.schedule_boundaries().filter(|&t| t > now_ms).min()
    }

    fn schedule_boundaries(&self) -> impl Iterator<Item = i64> + '_ {
        self.flags
            .iter()
            .flat_map(|(_, entry)| match entry {
                FlagEntry::Ready(flag) => [flag.from_ms, flag.until_ms],
                FlagEntry::Broken { .. } => [None, None],
            })
            .flatten()
    }

    /// Every flag key, sorted: a flag's index is its position here.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|(k, _)| k.as_str())
    }

    /// How many flags there are (broken ones included).
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The index of a flag, for [`Engine::decide`].
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.flags
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
    }

    /// What a flag can serve, by variant index: `(variant key, value)`. A broken flag
    /// serves only the default it declared, if it can be read.
    pub fn variants(&self, index: usize) -> &[(String, Value)] {
        match self.flags.get(index) {
            Some((_, FlagEntry::Ready(flag))) => &flag.variants,
            Some((_, FlagEntry::Broken { default, .. })) => default.as_slice(),
            None => &[],
        }
    }

    /// Where flag `index` came from: its position in the ruleset's `flags` list (bindings
    /// read the variant values from their own copy of the ruleset there).
    pub fn source(&self, index: usize) -> Option<usize> {
        self.sources.get(index).copied()
    }

    /// The id of a flag's rule, by rule index.
    pub fn rule_id(&self, index: usize, rule: usize) -> Option<&str> {
        match self.flags.get(index) {
            Some((_, FlagEntry::Ready(flag))) => flag.rules.get(rule).map(|r| r.id.as_str()),
            _ => None,
        }
    }

    /// The probe a flag requires, if any.
    pub fn required_probe(&self, index: usize) -> Option<&str> {
        match self.flags.get(index) {
            Some((_, FlagEntry::Ready(flag))) => flag.requires_probe.as_deref(),
            _ => None,
        }
    }

    /// Why a broken flag did not compile.
    pub fn problem(&self, index: usize) -> Option<&str> {
        match self.flags.get(index) {
            Some((_, FlagEntry::Broken { problem, .. })) => Some(problem),
            _ => None,
        }
    }

    /// Reads what this ruleset's rules can read from `ctx`, once: resolve a context, then
    /// decide every flag for it ([`Engine::decide_resolved`]).
    pub fn resolve<'a>(&self, ctx: &'a Context) -> Resolved<'a> {
        let values = self.attributes.names.iter().map(|name| ctx.get(name));
        self.resolved(values.map(|v| v.filter(|v| !v.is_null()).map(Cow::Borrowed)))
    }

    /// The attributes the rules read, by number: the numbers [`Resolved::set`] and
    /// [`Resolved::set_text`] take.
    pub fn attribute_names(&self) -> &[String] {
        &self.attributes.names
    }

    /// A context with every attribute absent, to fill in place ([`Resolved::set_text`],
    /// [`Resolved::set`]); after filling it, [`Engine::reread_versions`].
    pub fn blank_context(&self) -> Resolved<'static> {
        self.resolved(self.attributes.names.iter().map(|_| None))
    }

    /// Parses again the versions semver conditions compare, after a context was filled in
    /// place.
    pub fn reread_versions(&self, ctx: &mut Resolved<'_>) {
        for (at, read) in self.attributes.versions.iter().enumerate() {
            if let (true, Some(slot)) = (*read, ctx.versions.get_mut(at)) {
                *slot = match ctx.values.get(at).and_then(|v| v.as_deref()) {
                    Some(Value::String(text)) => semver::parse(text),
                    _ => None,
                };
            }
        }
    }

    /// [`Engine::resolve`] of a context given as JSON text (`{...}`; anything else is an
    /// empty context), reading only the attributes the rules read and building no map:
    /// what the wasm engine's `setContext` does. `read_float` reads numbers with a
    /// fraction or exponent ([`crate::json::parse_with`]).
    pub fn resolve_json(
        &self,
        text: &str,
        read_float: fn(&str) -> Option<f64>,
    ) -> Resolved<'static> {
        let names = &self.attributes.names;
        let mut values: Vec<Option<Cow<'static, Value>>> = vec![None; names.len()];
        let read = crate::json::read_members(text, read_float, |key, value| {
            if let Some(at) = names.iter().position(|name| *name == key) {
                values[at] = (!value.is_null()).then_some(Cow::Owned(value));
            }
        });
        if read.is_err() {
            values.iter_mut().for_each(|v| *v = None);
        }
        self.resolved(values.into_iter())
    }

    fn resolved<'a>(&self, values: impl Iterator<Item = Option<Cow<'a, Value>>>) -> Resolved<'a> {
        let values: Vec<Option<Cow<'a, Value>>> = values.collect();
        // Empty (no allocation) when no semver condition reads an attribute.
        let versions = match self.attributes.versions.iter().any(|read| *read) {
            false => Vec::new(),
            true => values
                .iter()
                .zip(&self.attributes.versions)
                .map(|(value, read)| match value.as_deref() {
                    Some(Value::String(text)) if *read => semver::parse(text),
                    _ => None,
                })
                .collect(),
        };
        Resolved { values, versions }
    }

    /// Decides flag `index` (an index out of range is not found). Resolves `ctx` first:
    /// to decide many flags for one context, resolve it once and use
    /// [`Engine::decide_resolved`].
    pub fn decide(
        &self,
        index: usize,
        ctx: &Context,
        probes: &ProbeStates,
        now_ms: i64,
    ) -> Outcome {
        self.decide_resolved(index, &self.resolve(ctx), probes, now_ms)
    }

    /// Decides flag `index` for a resolved context, without allocating (a rollout on a
    /// numeric stickiness value formats the number).
    pub fn decide_resolved(
        &self,
        index: usize,
        ctx: &Resolved,
        probes: &ProbeStates,
        now_ms: i64,
    ) -> Outcome {
        let mut checks = 0;
        self.decide_at_depth(index, ctx, probes, now_ms, 0, &mut checks)
    }

    /// The full decision for an outcome of flag `index`.
    pub fn decision_of(&self, index: usize, outcome: &Outcome) -> Decision {
        let key = self.flags.get(index).map_or("", |(k, _)| k.as_str());
        let mut d = self.decision(
            key,
            outcome.variant.and_then(|v| self.variants(index).get(v)),
            outcome.reason,
        );
        d.error_code = outcome.error.map(DecisionError::code);
        d.error_message = match outcome.error {
            Some(DecisionError::FlagNotFound) => Some(format!("no flag `{key}`")),
            Some(DecisionError::ParseError) => self.problem(index).map(str::to_string),
            None => None,
        };
        d.rule = outcome
            .rule
            .and_then(|r| self.rule_id(index, r))
            .map(str::to_string);
        d.bucket = outcome.bucket;
        if outcome.probe_down {
            d.probe = self.required_probe(index).map(str::to_string);
        }
        d
    }

    fn decision(&self, key: &str, variant: Option<&(String, Value)>, reason: Reason) -> Decision {
        Decision {
            key: key.to_string(),
            value: variant.map_or(Value::Null, |(_, v)| v.clone()),
            variant: variant.map(|(k, _)| k.clone()),
            reason,
            error_code: None,
            error_message: None,
            rule: None,
            bucket: None,
            probe: None,
            version: self.version.clone(),
        }
    }

    /// Decides one flag.
    pub fn evaluate(
        &self,
        key: &str,
        ctx: &Context,
        probes: &ProbeStates,
        now_ms: i64,
    ) -> Decision {
        match self.index_of(key) {
            Some(index) => self.decision_of(index, &self.decide(index, ctx, probes, now_ms)),
            None => {
                let mut d = self.decision(key, None, Reason::Error);
                d.error_code = Some(error_code::FLAG_NOT_FOUND);
                d.error_message = Some(format!("no flag `{key}`"));
                d
            }
        }
    }

    /// Decides every flag, in key order.
    pub fn evaluate_all(&self, ctx: &Context, probes: &ProbeStates, now_ms: i64) -> Vec<Decision> {
        let ctx = self.resolve(ctx);
        (0..self.flags.len())
            .map(|i| self.decision_of(i, &self.decide_resolved(i, &ctx, probes, now_ms)))
            .collect()
    }

    fn decide_at_depth(
        &self,
        index: usize,
        ctx: &Resolved,
        probes: &ProbeStates,
        now_ms: i64,
        depth: usize,
        checks: &mut u32,
    ) -> Outcome {
        let error = |variant: Option<usize>, error| Outcome {
            variant,
            reason: Reason::Error,
            error: Some(error),
            rule: None,
            bucket: None,
            probe_down: false,
        };
        let (key, flag) = match self.flags.get(index) {
            None => return error(None, DecisionError::FlagNotFound),
            Some((_, FlagEntry::Broken { default, .. })) => {
                return error(default.as_ref().map(|_| 0), DecisionError::ParseError)
            }
            Some((key, FlagEntry::Ready(flag))) => (key, flag),
        };
        if !flag.enabled
            || flag.from_ms.is_some_and(|f| now_ms < f)
            || flag.until_ms.is_some_and(|u| now_ms >= u)
        {
            return Outcome::served(flag.off, Reason::Disabled);
        }
        if let Some(probe) = &flag.requires_probe {
            if probes.get(probe) == Some(&ProbeState::Down) {
                return Outcome {
                    probe_down: true,
                    ..Outcome::served(flag.off, Reason::Disabled)
                };
            }
        }
        // Cycles are refused at compile time. Chains are bounded anyway: in depth (the stack)
        // and in prerequisite checks per decision (a flag that requires the next one twice,
        // 40 deep, would otherwise take 2^40 checks).
        if depth > MAX_PREREQUISITE_DEPTH.min(self.flags.len()) {
            return Outcome::served(flag.off, Reason::PrerequisiteFailed);
        }
        for p in &flag.prerequisites {
            *checks += 1;
            if *checks > MAX_PREREQUISITE_CHECKS {
                return Outcome::served(flag.off, Reason::PrerequisiteFailed);
            }
            let ok = self.index_of(&p.flag).is_some_and(|pi| {
                let served = self.decide_at_depth(pi, ctx, probes, now_ms, depth + 1, checks);
                served.error.is_none()
                    && served
                        .variant
                        .and_then(|v| self.variants(pi).get(v))
                        .is_some_and(|(name, _)| p.variants.contains(name))
            });
            if !ok {
                return Outcome::served(flag.off, Reason::PrerequisiteFailed);
            }
        }
        for (rule_index, rule) in flag.rules.iter().enumerate() {
            let matches = rule.conditions.iter().all(|c| condition_holds(c, ctx))
                && rule.segments.iter().all(|&s| {
                    self.segments
                        .get(s)
                        .is_some_and(|cs| cs.iter().all(|c| condition_holds(c, ctx)))
                });
            if !matches {
                continue;
            }
            let served = match &rule.serve {
                CompiledServe::Variant(v) => Some((*v, Reason::TargetingMatch, None)),
                CompiledServe::Rollout {
                    variant,
                    below_bucket,
                } => stickiness_value(ctx, rule.stickiness).and_then(|sv| {
                    let b = bucket(key, &flag.salt, &sv);
                    (b < *below_bucket).then_some((*variant, Reason::Split, Some(b)))
                }),
                CompiledServe::Split(ranges) => {
                    stickiness_value(ctx, rule.stickiness).and_then(|sv| {
                        let b = bucket(key, &flag.salt, &sv);
                        ranges
                            .iter()
                            .find(|(upper, _)| b < *upper)
                            .map(|(_, v)| (*v, Reason::Split, Some(b)))
                    })
                }
            };
            if let Some((variant, why, b)) = served {
                return Outcome {
                    rule: Some(rule_index),
                    bucket: b,
                    ..Outcome::served(variant, why)
                };
            }
        }
        let why = if flag.rules.is_empty() {
            Reason::Static
        } else {
            Reason::Default
        };
        Outcome::served(flag.default, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_repeated_flag_key_takes_the_later_definition_and_cycles_are_found() {
        let bool_flag = |key: &str, default: &str, prerequisite: Option<&str>| {
            let mut flag = json!({"key": key, "variants": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                                  "default_variant": default});
            if let Some(p) = prerequisite {
                flag["prerequisites"] = json!([{"flag": p, "variants": ["on"]}]);
            }
            flag
        };
        let ruleset = Ruleset {
            version: "v1".into(),
            flags: vec![
                bool_flag("b", "off", None),
                bool_flag("a", "on", Some("c")),
                bool_flag("b", "on", None), // the later `b` wins
                bool_flag("c", "on", Some("a")),
                bool_flag("d", "on", Some("b")),
            ],
            segments: vec![],
        };
        let engine = compile(&ruleset);
        assert_eq!(engine.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let ctx = Context::new();
        let none = ProbeStates::new();
        let value = |key| engine.evaluate(key, &ctx, &none, 0).value;
        assert_eq!(value("b"), json!(true));
        assert_eq!(value("d"), json!(true));
        let cycles: Vec<&str> = engine
            .warnings()
            .iter()
            .filter(|w| w.code == "prerequisite_cycle")
            .map(|w| w.field.as_str())
            .collect();
        assert_eq!(cycles, ["flags.a.prerequisites", "flags.c.prerequisites"]);
    }

    #[test]
    fn probe_states_keep_the_later_state_of_a_name_and_answer_by_name() {
        let states: ProbeStates = [
            ("pay".to_string(), ProbeState::Up),
            ("api".to_string(), ProbeState::Down),
            ("pay".to_string(), ProbeState::Down),
        ]
        .into_iter()
        .collect();
        assert_eq!(states.get("pay"), Some(&ProbeState::Down));
        assert_eq!(states.get("api"), Some(&ProbeState::Down));
        assert_eq!(states.get("nope"), None);
        let names: Vec<&String> = states.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["api", "pay"]);
    }

    #[test]
    fn round_agrees_with_std() {
        let mut values = vec![
            0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            0.49999999999999994,
            -0.49999999999999994,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            1e300,
            -1e300,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            12.345_678_95e7,
            33.333_333_333_333_336 * 100.0,
        ];
        // Every half and its neighbours over the range rollouts and splits use.
        for units in 0..=20_000 {
            let x = f64::from(units) / 2.0;
            values.extend([x, x.next_up(), x.next_down(), -x]);
        }
        for x in values {
            assert_eq!(round(x), x.round(), "round({x:e})");
        }
        assert!(round(f64::NAN).is_nan());
    }

    #[test]
    fn schedule_epoch_moves_exactly_at_boundaries() {
        let flag = |key: &str, schedule: Value| {
            json!({"key": key, "variants": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                   "default_variant": "on", "off_variant": "off", "schedule": schedule})
        };
        let ruleset = Ruleset {
            version: "v1".into(),
            flags: vec![
                flag("launch", json!({"from": "2026-01-01T00:00:00Z"})),
                flag(
                    "promo",
                    json!({"from": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}),
                ),
                json!({"key": "plain", "variants": [{"key": "on", "value": true}], "default_variant": "on"}),
            ],
            segments: vec![],
        };
        let engine = compile(&ruleset);
        let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let end = start + 86_400_000;
        assert_eq!(engine.schedule_epoch(start - 1), None);
        assert_eq!(engine.schedule_epoch(start), Some(start));
        assert_eq!(engine.schedule_epoch(end - 1), Some(start));
        assert_eq!(engine.schedule_epoch(end), Some(end));
        assert_eq!(engine.next_schedule_boundary(start - 1), Some(start));
        assert_eq!(engine.next_schedule_boundary(end), None);
        // The epoch changes exactly where a decision does.
        let ctx = Context::new();
        let none = ProbeStates::new();
        for (now, launch, promo) in [
            (start - 1, false, false),
            (start, true, true),
            (end, true, false),
        ] {
            assert_eq!(
                engine.evaluate("launch", &ctx, &none, now).value,
                json!(launch)
            );
            assert_eq!(
                engine.evaluate("promo", &ctx, &none, now).value,
                json!(promo)
            );
        }
    }

    #[test]
    fn operators_and_reasons_have_one_vocabulary() {
        assert_eq!(Op::ALL.len(), 18);
        for op in Op::ALL {
            assert_eq!(Op::parse(op.as_str()), Some(*op));
            assert_eq!(serde_json::to_value(op).unwrap(), json!(op.as_str()));
        }
        assert_eq!(Op::parse("equals"), None);
        for reason in Reason::ALL {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                json!(reason.as_str())
            );
        }
    }

    #[test]
    fn a_context_read_from_json_decides_as_the_parsed_context_does() {
        let doc: Value =
            serde_json::from_str(include_str!("../../../tests/spec/flags/cases.json")).unwrap();
        let engine = compile(&Ruleset::from_value(&doc["ruleset"]).unwrap());
        let probes = ProbeStates::new();
        let mut contexts: Vec<Value> = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["context"].clone())
            .collect();
        contexts.extend([
            json!([1]),
            json!("user"),
            json!(null),
            json!({"user_id": null}),
        ]);
        for context in &contexts {
            let text = context.to_string();
            let from_json = engine.resolve_json(&text, |n| n.parse().ok());
            let empty = Context::new();
            let parsed = engine.resolve(context.as_object().unwrap_or(&empty));
            for index in 0..engine.len() {
                assert_eq!(
                    engine.decide_resolved(index, &from_json, &probes, 0),
                    engine.decide_resolved(index, &parsed, &probes, 0),
                    "{text}"
                );
            }
        }
        // Malformed text is an empty context, even after members were read.
        let broken = engine.resolve_json(r#"{"user_id": "u-1", "#, |n| n.parse().ok());
        assert!(broken.values.iter().all(Option::is_none));
    }

    #[test]
    fn split_sums_off_by_a_hair_say_so() {
        assert_eq!(percent_text(99.5), "99.5");
        assert_eq!(percent_text(100.0), "100");
        assert_eq!(percent_text(50.0 + 50.00001), "100.00001");
        assert_eq!(percent_text(50.0 + 49.9996), "99.9996");
        assert_eq!(percent_text(-3.25), "-3.25");
        assert_eq!(percent_text(f64::INFINITY), "a number out of range");
        let split = |b: f64| {
            json!({"key": "f", "default_variant": "a",
            "variants": [{"key": "a", "value": 1}, {"key": "b", "value": 2}],
            "rules": [{"serve": {"split": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": b}]}}]})
        };
        let e = validate_flag(&split(50.0004), &[], &[]).unwrap_err();
        assert!(
            e.message.contains("sum to 100.0004, not 100"),
            "{}",
            e.message
        );
    }

    #[test]
    fn staging_errors_name_the_field_path() {
        let flag = json!({"key": "f", "variants": [{"key": "on", "value": true}], "default_variant": "on",
            "rules": [{"conditions": [{"attribute": "age", "op": "gt", "value": "old"}], "serve": {"variant": "on"}}]});
        let e = validate_flag(&flag, &[], &[]).unwrap_err();
        assert_eq!(e.field, "rules[0].conditions[0].value");
        let unknown_segment = json!({"key": "f", "variants": [{"key": "on", "value": true}], "default_variant": "on",
            "rules": [{"segments": ["ghosts"], "serve": {"variant": "on"}}]});
        let e = validate_flag(&unknown_segment, &["teachers"], &[]).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("unknown_segment", "rules[0].segments[0]")
        );
        let typo = json!({"key": "f", "variants": [], "default_variant": "on", "enabeld": true});
        assert_eq!(
            validate_flag(&typo, &[], &[]).unwrap_err().code,
            "invalid_flag"
        );
        assert!(validate_flag(&json!({"key": "bad key", "variants": [{"key": "a", "value": 1}], "default_variant": "a"}), &[], &[]).is_err());
    }

    #[test]
    fn segments_validate_conditions() {
        assert!(validate_segment(
            &json!({"key": "s", "conditions": [{"attribute": "a", "op": "in", "values": []}]})
        )
        .is_err());
        assert!(validate_segment(
            &json!({"key": "s", "conditions": [{"attribute": "a", "op": "in", "values": [1]}]})
        )
        .is_ok());
    }

    #[test]
    fn split_distribution_follows_weights() {
        let ruleset = Ruleset {
            version: "t".into(),
            flags: vec![
                json!({"key": "exp", "variants": [{"key": "a", "value": "A"}, {"key": "b", "value": "B"}],
                "default_variant": "a", "rules": [{"serve": {"split": [{"variant": "a", "weight": 25}, {"variant": "b", "weight": 75}]}}]}),
            ],
            segments: vec![],
        };
        let engine = compile(&ruleset);
        let probes = ProbeStates::new();
        let b_count = (0..20_000)
            .filter(|i| {
                let mut ctx = Context::new();
                ctx.insert("user_id".into(), json!(format!("u{i}")));
                engine.evaluate("exp", &ctx, &probes, 0).variant.as_deref() == Some("b")
            })
            .count();
        assert!((b_count as f64 / 20_000.0 - 0.75).abs() < 0.01, "{b_count}");
    }

    #[test]
    fn decisions_by_index_carry_what_decisions_by_key_say() {
        let ruleset = Ruleset {
            version: "t".into(),
            flags: vec![
                json!({"key": "b-gated", "variants": [{"key": "on", "value": {"n": 1}}, {"key": "off", "value": null}],
                "default_variant": "on", "off_variant": "off", "requires_probe": "api"}),
                json!({"key": "a-split", "variants": [{"key": "x", "value": 1}, {"key": "y", "value": 2}],
                "default_variant": "x", "rules": [{"id": "r0", "conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": {"variant": "y"}},
                {"id": "r1", "serve": {"split": [{"variant": "x", "weight": 50}, {"variant": "y", "weight": 50}]}}]}),
                json!({"key": "c-broken", "variants": [{"key": "d", "value": "D"}], "default_variant": "d", "rules": [{"serve": {"variant": "nope"}}]}),
            ],
            segments: vec![],
        };
        let engine = compile(&ruleset);
        assert_eq!(
            engine.keys().collect::<Vec<_>>(),
            ["a-split", "b-gated", "c-broken"]
        );
        let mut ctx = Context::new();
        ctx.insert("user_id".into(), json!("u1"));
        let mut probes = ProbeStates::new();
        probes.insert("api".into(), ProbeState::Down);
        for plan in ["pro", "free"] {
            ctx.insert("plan".into(), json!(plan));
            for (index, key) in engine.keys().enumerate() {
                let outcome = engine.decide(index, &ctx, &probes, 0);
                assert_eq!(
                    engine.decision_of(index, &outcome),
                    engine.evaluate(key, &ctx, &probes, 0),
                    "{key}"
                );
            }
        }
        let gated = engine.decide(1, &ctx, &probes, 0);
        assert!(gated.probe_down);
        assert_eq!(engine.decision_of(1, &gated).probe.as_deref(), Some("api"));
        let broken = engine.decide(2, &ctx, &probes, 0);
        assert_eq!(
            (broken.error, broken.variant),
            (Some(DecisionError::ParseError), Some(0))
        );
        assert_eq!(engine.variants(2), [("d".to_string(), json!("D"))]);
        let missing = engine.decide(3, &ctx, &probes, 0);
        assert_eq!(
            (missing.error, missing.variant),
            (Some(DecisionError::FlagNotFound), None)
        );
        assert_eq!(engine.index_of("b-gated"), Some(1));
        assert_eq!(engine.index_of("zzz"), None);
        assert_eq!(engine.rule_id(0, 1), Some("r1"));
    }

    #[test]
    fn prerequisite_chains_are_bounded_in_depth_and_in_checks() {
        let on_off = json!([{"key": "on", "value": true}, {"key": "off", "value": false}]);
        // f0 requires f1 twice, f1 requires f2 twice, ...: 2^n checks if nothing bounded them.
        let chain = |n: usize, last_on: bool| -> Engine {
            let flags = (0..n)
                .map(|i| {
                    let mut f = json!({"key": format!("f{i:02}"), "variants": on_off, "default_variant": "on", "off_variant": "off"});
                    if i + 1 < n {
                        let p = json!({"flag": format!("f{:02}", i + 1), "variants": ["on"]});
                        f["prerequisites"] = json!([p.clone(), p]);
                    } else if !last_on {
                        f["enabled"] = json!(false);
                    }
                    f
                })
                .collect();
            compile(&Ruleset {
                version: "v".into(),
                flags,
                segments: vec![],
            })
        };
        let decide = |engine: &Engine| engine.decide(0, &Context::new(), &ProbeStates::new(), 0);
        // Short chains decide as written, either way.
        assert_eq!(decide(&chain(5, true)).reason, Reason::Static);
        assert_eq!(decide(&chain(5, false)).reason, Reason::PrerequisiteFailed);
        // 2^9 checks fit the budget; 2^20 do not, and the decision still ends at once.
        assert_eq!(decide(&chain(9, true)).reason, Reason::Static);
        assert_eq!(decide(&chain(20, true)).reason, Reason::PrerequisiteFailed);
        // Past the depth bound a chain fails, however few checks it needs.
        assert_eq!(decide(&chain(40, true)).reason, Reason::PrerequisiteFailed);
    }

    #[test]
    fn flags_beyond_the_variant_and_rule_bounds_are_broken() {
        let variants: Vec<_> = (0..=MAX_VARIANTS)
            .map(|i| json!({"key": format!("v{i}"), "value": i}))
            .collect();
        let rules: Vec<_> = (0..=MAX_RULES)
            .map(|_| json!({"serve": {"variant": "on"}}))
            .collect();
        let ruleset = Ruleset {
            version: "t".into(),
            flags: vec![
                json!({"key": "wide", "variants": variants, "default_variant": "v0"}),
                json!({"key": "long", "variants": [{"key": "on", "value": true}], "default_variant": "on", "rules": rules}),
            ],
            segments: vec![],
        };
        let engine = compile(&ruleset);
        let fields: Vec<&str> = engine.warnings().iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["flags.wide.variants", "flags.long.rules"]);
    }
}
