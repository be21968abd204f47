//! Experiments as configuration (#16): the `experiments` config kind's definitions, their
//! checks against the flag they run on, and the results report built from per-variant
//! totals (the statistics are in [`crate::experiments`]). Pure; the Worker reads the
//! totals from D1 (worker/src/experiments.rs).
//!
//! An experiment runs on a flag with exactly one rule that serves a weighted split: the
//! split's variants are the arms and its weights the expected shares. Only exposures the
//! split decided (`reason` `SPLIT`) count, so users a rule before it, the default or the
//! kill switch served are not in the experiment.

use crate::error::FieldError;
use crate::experiments::{
    compare_conversion, compare_means, sample_ratio_mismatch, sequential, CompareError, Comparison,
    Totals, SRM_P_VALUE,
};
use crate::flags::engine::validate_key;
use crate::flags::model::FlagDef;
use crate::time::{format_rfc3339, parse_rfc3339, MS_PER_DAY};
use serde_json::{json, Map, Value};

/// Most secondary metrics one experiment may have (each costs one bounded query).
pub const MAX_SECONDARY_METRICS: usize = 10;
/// Longest conversion window, in days.
pub const MAX_WINDOW_DAYS: u32 = 365;
/// Longest event or property name a metric may name (the ingest limits are lower).
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const INVALID: &str = "invalid_experiment";

/// What a metric measures per exposed user, from the events after their first exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Whether the user did the event within `window_days` (a rate).
    Conversion,
    /// How many times the user did the event.
    Count,
    /// The sum of a numeric property over the user's events (0 without any).
    Sum,
    /// The mean of a numeric property over the user's events; users without one are not
    /// counted.
    Mean,
}

impl MetricKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Conversion => "conversion",
            MetricKind::Count => "count",
            MetricKind::Sum => "sum",
            MetricKind::Mean => "mean",
        }
    }

    fn parse(text: &str) -> Option<MetricKind> {
        [
            MetricKind::Conversion,
            MetricKind::Count,
            MetricKind::Sum,
            MetricKind::Mean,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub kind: MetricKind,
    pub event: String,
    /// The numeric property of `sum` and `mean` metrics.
    pub prop: Option<String>,
    /// Events count only within this many days after the user's first exposure (required
    /// for conversions; otherwise until the experiment's end).
    pub window_days: Option<u32>,
}

impl Metric {
    /// The metric's name in results: `conversion(purchase, 7d)`, `sum(purchase.amount)`.
    pub fn label(&self) -> String {
        let what = match &self.prop {
            Some(p) => format!("{}.{p}", self.event),
            None => self.event.clone(),
        };
        match self.window_days {
            Some(d) => format!("{}({what}, {d}d)", self.kind.as_str()),
            None => format!("{}({what})", self.kind.as_str()),
        }
    }

    pub fn window_ms(&self) -> Option<i64> {
        self.window_days.map(|d| i64::from(d) * MS_PER_DAY)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDef {
    pub key: String,
    pub description: String,
    pub flag: String,
    pub control: String,
    pub primary_metric: Metric,
    pub secondary_metrics: Vec<Metric>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

impl ExperimentDef {
    /// The primary metric first, then the secondary ones.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        std::iter::once(&self.primary_metric).chain(&self.secondary_metrics)
    }
}

/// One arm of the experiment: a variant of the flag's split and its weight (percent).
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub variant: String,
    pub weight: f64,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(INVALID, field, message)
}

fn object<'a>(
    value: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, FieldError> {
    let map = value
        .as_object()
        .ok_or_else(|| invalid(path, "must be a JSON object"))?;
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let field = if path.is_empty() {
            unknown.clone()
        } else {
            format!("{path}.{unknown}")
        };
        return Err(invalid(
            field,
            format!("unknown field `{unknown}`; allowed: {}", allowed.join(", ")),
        ));
    }
    Ok(map)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A non-empty string of at most `max` characters, or absent (`None`).
fn text(
    map: &Map<String, Value>,
    path: &str,
    name: &str,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            join(path, name),
            format!("must be a non-empty string of at most {max} characters"),
        )),
    }
}

fn required<T>(found: Option<T>, path: &str, name: &str) -> Result<T, FieldError> {
    found.ok_or_else(|| FieldError::new("required", join(path, name), "is required"))
}

fn read_metric(value: &Value, path: &str) -> Result<Metric, FieldError> {
    let map = object(value, path, &["kind", "event", "prop", "window_days"])?;
    let kind_text = required(text(map, path, "kind", 20)?, path, "kind")?;
    let kind = MetricKind::parse(&kind_text).ok_or_else(|| {
        invalid(
            join(path, "kind"),
            format!("unknown metric kind `{kind_text}`; one of conversion, count, sum, mean"),
        )
    })?;
    let event = required(text(map, path, "event", MAX_NAME_CHARS)?, path, "event")?;
    let prop = text(map, path, "prop", MAX_NAME_CHARS)?;
    match (kind, &prop) {
        (MetricKind::Sum | MetricKind::Mean, None) => {
            return Err(FieldError::new(
                "required",
                join(path, "prop"),
                format!(
                    "a {} metric names the numeric property it adds up",
                    kind.as_str()
                ),
            ))
        }
        (MetricKind::Conversion | MetricKind::Count, Some(_)) => {
            return Err(invalid(
                join(path, "prop"),
                format!("a {} metric takes no property", kind.as_str()),
            ))
        }
        _ => {}
    }
    let window_days = match map.get("window_days") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=u64::from(MAX_WINDOW_DAYS)).contains(&d) => u32::try_from(d).ok(),
            _ => {
                return Err(invalid(
                    join(path, "window_days"),
                    format!("must be a whole number of days from 1 to {MAX_WINDOW_DAYS}"),
                ))
            }
        },
    };
    if kind == MetricKind::Conversion && window_days.is_none() {
        return Err(FieldError::new(
            "required",
            join(path, "window_days"),
            "a conversion metric needs its window: the days after first exposure that count",
        ));
    }
    Ok(Metric {
        kind,
        event,
        prop,
        window_days,
    })
}

fn read_time(map: &Map<String, Value>, name: &str) -> Result<Option<i64>, FieldError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s).map(Some).ok_or_else(|| {
            invalid(
                name,
                "must be an RFC 3339 time (2026-12-01T00:00:00Z) or a UTC date (2026-12-01)",
            )
        }),
        Some(_) => Err(invalid(name, "must be an RFC 3339 time as a string")),
    }
}

/// Reads an experiment's body (its shape only; [`check_experiment`] checks its flag).
pub fn read_experiment(raw: &Value) -> Result<ExperimentDef, FieldError> {
    let map = object(
        raw,
        "",
        &[
            "key",
            "description",
            "flag",
            "control",
            "primary_metric",
            "secondary_metrics",
            "start",
            "end",
        ],
    )?;
    let key = required(text(map, "", "key", 128)?, "", "key")?;
    validate_key(&key)?;
    let flag = required(text(map, "", "flag", 128)?, "", "flag")?;
    let control = required(text(map, "", "control", 128)?, "", "control")?;
    let primary_metric = read_metric(
        required(map.get("primary_metric"), "", "primary_metric")?,
        "primary_metric",
    )?;
    let secondary_metrics = match map.get("secondary_metrics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_SECONDARY_METRICS => items
            .iter()
            .enumerate()
            .map(|(i, m)| read_metric(m, &format!("secondary_metrics[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => {
            return Err(invalid(
                "secondary_metrics",
                format!("at most {MAX_SECONDARY_METRICS} secondary metrics"),
            ))
        }
        Some(_) => return Err(invalid("secondary_metrics", "must be a list of metrics")),
    };
    let start_ms = required(read_time(map, "start")?, "", "start")?;
    let end_ms = read_time(map, "end")?;
    if end_ms.is_some_and(|end| end <= start_ms) {
        return Err(invalid("end", "the end must come after the start"));
    }
    Ok(ExperimentDef {
        key,
        description: text(map, "", "description", MAX_DESCRIPTION_CHARS)?.unwrap_or_default(),
        flag,
        control,
        primary_metric,
        secondary_metrics,
        start_ms,
        end_ms,
    })
}

/// The arms of an experiment on `flag`: its one split rule's variants and weights.
pub fn arms_of(flag: &Value) -> Result<Vec<Arm>, String> {
    let def = FlagDef::from_value(flag).map_err(|e| e.message)?;
    if def.variants.len() < 2 {
        return Err("the flag has one variant; an experiment needs at least two".into());
    }
    let splits: Vec<_> = def
        .rules
        .iter()
        .filter_map(|r| r.serve.split.as_ref())
        .collect();
    match splits.as_slice() {
        [split] => {
            // A variant listed twice in the split is one arm with both weights.
            let mut arms: Vec<Arm> = Vec::with_capacity(split.len());
            for s in split.iter() {
                match arms.iter_mut().find(|a| a.variant == s.variant) {
                    Some(arm) => arm.weight += s.weight,
                    None => arms.push(Arm {
                        variant: s.variant.clone(),
                        weight: s.weight,
                    }),
                }
            }
            if arms.len() < 2 {
                return Err(
                    "the flag's split serves one variant; an experiment needs at least two".into(),
                );
            }
            Ok(arms)
        }
        [] => Err(
            "the flag serves no split; an experiment needs a rule that serves a weighted split"
                .into(),
        ),
        many => Err(format!(
            "the flag has {} rules that serve a split; an experiment needs exactly one",
            many.len()
        )),
    }
}

/// Checks an experiment against the flag it names (`None`: no such flag) and returns its
/// arms. Errors name the experiment's field.
pub fn check_experiment(def: &ExperimentDef, flag: Option<&Value>) -> Result<Vec<Arm>, FieldError> {
    let Some(flag) = flag else {
        return Err(FieldError::new(
            "unknown_flag",
            "flag",
            format!("no flag `{}`; stage it first", def.flag),
        ));
    };
    let arms = arms_of(flag).map_err(|m| FieldError::new("flag_without_split", "flag", m))?;
    match arms.iter().find(|a| a.variant == def.control) {
        Some(arm) if arm.weight > 0.0 => Ok(arms),
        Some(_) => Err(FieldError::new(
            "unknown_variant",
            "control",
            format!("control `{}` has weight 0 in the flag's split", def.control),
        )),
        None => Err(FieldError::new(
            "unknown_variant",
            "control",
            format!(
                "`{}` is not a variant of the flag's split ({})",
                def.control,
                arms.iter()
                    .map(|a| a.variant.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Whether an experiment's body names `flag`.
pub fn experiment_uses_flag(body: &Value, flag: &str) -> bool {
    body.get("flag").and_then(Value::as_str) == Some(flag)
}

/// What the collector read for one variant: exposed users and, per metric (in
/// [`ExperimentDef::metrics`] order), the users with at least one counted event, the sum
/// of their values and the sum of squares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VariantData {
    pub variant: String,
    pub exposed: u64,
    pub metrics: Vec<Totals>,
}

/// The totals a metric's test runs on: for all but `mean`, every exposed user counts (a
/// user without events has the value 0).
fn metric_totals(kind: MetricKind, exposed: u64, read: &Totals) -> Totals {
    match kind {
        MetricKind::Conversion => Totals::conversions(exposed, read.users),
        MetricKind::Count | MetricKind::Sum => Totals {
            users: exposed,
            ..*read
        },
        MetricKind::Mean => *read,
    }
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn comparison_json(result: Result<Comparison, CompareError>) -> Value {
    match result {
        Ok(c) => json!({
            "lift": finite(c.lift),
            "lift_low": finite(c.lift_low),
            "lift_high": finite(c.lift_high),
            "p_value": finite(c.p_value),
            "probability_to_beat": finite(c.probability_to_beat),
            "statistic": finite(c.statistic),
            "degrees_of_freedom": c.degrees_of_freedom.map(finite),
        }),
        Err(e) => json!({"not_comparable": match e {
            CompareError::TooFewUsers => "too_few_users",
            CompareError::ZeroControlMean => "zero_control_mean",
            CompareError::NoVariance => "no_variance",
        }}),
    }
}

/// The results report: per variant exposed users, per metric totals, mean, lift against
/// control with its 95% interval, p-value and probability to beat control; the sample
/// ratio mismatch check; the window. `data` holds every arm (in `arms` order).
pub fn report(
    def: &ExperimentDef,
    arms: &[Arm],
    data: &[VariantData],
    mixed_users: u64,
    now_ms: i64,
) -> Value {
    let observed: Vec<u64> = data.iter().map(|d| d.exposed).collect();
    let weights: Vec<f64> = arms.iter().map(|a| a.weight).collect();
    let srm = match sample_ratio_mismatch(&observed, &weights) {
        Some((chi_square, p_value)) => {
            let mismatch = p_value < SRM_P_VALUE;
            json!({
                "chi_square": finite(chi_square),
                "p_value": finite(p_value),
                "mismatch": mismatch,
                "message": if mismatch {
                    format!("Sample ratio mismatch: exposed users are not split as the flag's weights say (p = {p_value:.2e} < {SRM_P_VALUE}). The assignment or the exposure logging is broken; do not trust these results.")
                } else {
                    "Exposed users match the split's weights.".to_string()
                },
            })
        }
        None => json!({"chi_square": null, "p_value": null, "mismatch": false,
                       "message": "Not enough exposed users (or a zero weight) to check the split."}),
    };
    let control = data.iter().position(|d| d.variant == def.control);
    let metrics: Vec<Value> = def
        .metrics()
        .enumerate()
        .map(|(m, metric)| {
            let totals: Vec<Totals> = data
                .iter()
                .map(|d| {
                    metric_totals(
                        metric.kind,
                        d.exposed,
                        &d.metrics.get(m).copied().unwrap_or_default(),
                    )
                })
                .collect();
            let variants: Vec<Value> = data
                .iter()
                .zip(&totals)
                .enumerate()
                .map(|(i, (d, t))| {
                    let mut row = json!({
                        "variant": d.variant,
                        "users": t.users,
                        "total": finite(t.sum),
                        "mean": finite(t.mean()),
                    });
                    if Some(i) != control {
                        if let Some(c) = control.and_then(|c| totals.get(c)) {
                            let result = if metric.kind == MetricKind::Conversion {
                                compare_conversion((c.users, c.sum as u64), (t.users, t.sum as u64))
                            } else {
                                compare_means(c, t)
                            };
                            row["comparison"] = comparison_json(result);
                            if let Ok(seq) = sequential(c, t, 0.05) {
                                row["comparison"]["always_valid"] = json!({
                                    "p_value": finite(seq.p_value),
                                    "difference": finite(seq.difference),
                                    "difference_low": finite(seq.difference_low),
                                    "difference_high": finite(seq.difference_high),
                                    "tau": finite(seq.tau),
                                });
                            }
                        }
                    }
                    row
                })
                .collect();
            json!({
                "label": metric.label(),
                "kind": metric.kind.as_str(),
                "event": metric.event,
                "prop": metric.prop,
                "window_days": metric.window_days,
                "primary": m == 0,
                "variants": variants,
            })
        })
        .collect();
    let through = def.end_ms.map_or(now_ms, |end| end.min(now_ms));
    json!({
        "experiment": def.key,
        "flag": def.flag,
        "control": def.control,
        "window": {
            "start": format_rfc3339(def.start_ms),
            "end": def.end_ms.map(format_rfc3339),
            "through": format_rfc3339(through.max(def.start_ms)),
        },
        "computed_at": format_rfc3339(now_ms),
        "srm": srm,
        "excluded": {"mixed_variant_users": mixed_users},
        "variants": arms.iter().zip(data).map(|(a, d)| json!({
            "variant": a.variant, "weight": a.weight, "exposed_users": d.exposed,
        })).collect::<Vec<_>>(),
        "metrics": metrics,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn flag() -> Value {
        json!({"key": "checkout", "variants": [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "off", "value": 0}],
               "default_variant": "off",
               "rules": [{"conditions": [{"attribute": "country", "op": "eq", "value": "FR"}], "serve": {"variant": "off"}},
                         {"serve": {"split": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}]})
    }

    fn body() -> Value {
        json!({"key": "checkout-test", "flag": "checkout", "control": "a",
               "primary_metric": {"kind": "conversion", "event": "purchase", "window_days": 7},
               "secondary_metrics": [{"kind": "sum", "event": "purchase", "prop": "amount"}, {"kind": "count", "event": "click"}],
               "start": "2026-12-01"})
    }

    #[test]
    fn reads_and_checks_a_definition() {
        let def = read_experiment(&body()).unwrap();
        assert_eq!(def.metrics().count(), 3);
        assert_eq!(def.primary_metric.label(), "conversion(purchase, 7d)");
        assert_eq!(def.secondary_metrics[0].label(), "sum(purchase.amount)");
        let arms = check_experiment(&def, Some(&flag())).unwrap();
        assert_eq!(
            arms.iter().map(|a| a.variant.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn refuses_bad_fields_naming_them() {
        let cases = [
            (json!({"flag": 3}), "flag"),
            (json!({"extra": 1}), "extra"),
            (
                json!({"primary_metric": {"kind": "conversion", "event": "purchase"}}),
                "primary_metric.window_days",
            ),
            (
                json!({"primary_metric": {"kind": "ratio", "event": "x"}}),
                "primary_metric.kind",
            ),
            (
                json!({"primary_metric": {"kind": "sum", "event": "x"}}),
                "primary_metric.prop",
            ),
            (
                json!({"primary_metric": {"kind": "count", "event": "x", "prop": "p"}}),
                "primary_metric.prop",
            ),
            (
                json!({"primary_metric": {"kind": "count", "event": "", }}),
                "primary_metric.event",
            ),
            (
                json!({"primary_metric": {"kind": "conversion", "event": "x", "window_days": 0}}),
                "primary_metric.window_days",
            ),
            (
                json!({"primary_metric": {"kind": "conversion", "event": "x", "window_days": 1.5}}),
                "primary_metric.window_days",
            ),
            (
                json!({"secondary_metrics": [{"kind": "count"}]}),
                "secondary_metrics[0].event",
            ),
            (
                json!({"secondary_metrics": vec![json!({"kind": "count", "event": "x"}); 11]}),
                "secondary_metrics",
            ),
            (json!({"start": "yesterday"}), "start"),
            (json!({"end": "2026-11-30"}), "end"),
            (json!({"start": null}), "start"),
        ];
        for (patch, field) in cases {
            let mut b = body();
            for (k, v) in patch.as_object().unwrap() {
                b[k] = v.clone();
            }
            let e = read_experiment(&b).unwrap_err();
            assert_eq!(e.field, field, "{patch}: {e:?}");
        }
    }

    #[test]
    fn refuses_flags_it_cannot_run_on() {
        let def = read_experiment(&body()).unwrap();
        assert_eq!(
            check_experiment(&def, None).unwrap_err().code,
            "unknown_flag"
        );
        let mut no_split = flag();
        no_split["rules"] = json!([]);
        let e = check_experiment(&def, Some(&no_split)).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("flag_without_split", "flag"));
        let mut two = flag();
        let split = two["rules"][1].clone();
        two["rules"].as_array_mut().unwrap().push(split);
        assert!(check_experiment(&def, Some(&two))
            .unwrap_err()
            .message
            .contains("2 rules"));
        let one_variant =
            json!({"key": "f", "variants": [{"key": "a", "value": 1}], "default_variant": "a"});
        assert_eq!(
            check_experiment(&def, Some(&one_variant)).unwrap_err().code,
            "flag_without_split"
        );
        // A variant listed twice is one arm with both weights (no phantom arm, no false SRM).
        let mut twice = flag();
        twice["rules"][1]["serve"]["split"] = json!([{"variant": "a", "weight": 25}, {"variant": "b", "weight": 50}, {"variant": "a", "weight": 25}]);
        let arms = check_experiment(&def, Some(&twice)).unwrap();
        assert_eq!(
            arms,
            [
                Arm {
                    variant: "a".into(),
                    weight: 50.0
                },
                Arm {
                    variant: "b".into(),
                    weight: 50.0
                }
            ]
        );
        let mut one = flag();
        one["rules"][1]["serve"]["split"] =
            json!([{"variant": "a", "weight": 60}, {"variant": "a", "weight": 40}]);
        assert_eq!(
            check_experiment(&def, Some(&one)).unwrap_err().code,
            "flag_without_split"
        );
        let mut other_control = def.clone();
        other_control.control = "off".into(); // a variant of the flag, not of its split
        let e = check_experiment(&other_control, Some(&flag())).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("unknown_variant", "control"));
    }

    #[test]
    fn reports_lift_and_sample_ratio_mismatch() {
        let def = read_experiment(&body()).unwrap();
        let arms = check_experiment(&def, Some(&flag())).unwrap();
        let variant = |name: &str, exposed: u64, converted: u64| VariantData {
            variant: name.into(),
            exposed,
            metrics: vec![
                Totals {
                    users: converted,
                    sum: converted as f64,
                    sum_of_squares: converted as f64,
                },
                Totals {
                    users: converted,
                    sum: 10.0 * converted as f64,
                    sum_of_squares: 100.0 * converted as f64,
                },
                Totals::default(),
            ],
        };
        let r = report(
            &def,
            &arms,
            &[variant("a", 1000, 100), variant("b", 1000, 150)],
            3,
            0,
        );
        assert_eq!(r["srm"]["mismatch"], false);
        let b = &r["metrics"][0]["variants"][1];
        assert_eq!(b["users"], 1000);
        assert!((b["mean"].as_f64().unwrap() - 0.15).abs() < 1e-12);
        let lift = b["comparison"]["lift"].as_f64().unwrap();
        assert!((lift - 0.5).abs() < 1e-12);
        assert!(b["comparison"]["lift_low"].as_f64().unwrap() < lift);
        assert!(b["comparison"]["p_value"].as_f64().unwrap() < 0.01);
        assert!(b["comparison"]["probability_to_beat"].as_f64().unwrap() > 0.99);
        // The always-valid p-value is larger (it pays for looking at any time) and its
        // interval on the difference (0.05 here) wider than the fixed one's.
        let always = &b["comparison"]["always_valid"];
        assert!(always["p_value"].as_f64().unwrap() > b["comparison"]["p_value"].as_f64().unwrap());
        assert!((always["difference"].as_f64().unwrap() - 0.05).abs() < 1e-12);
        assert!(
            always["difference_low"].as_f64().unwrap() < 0.05
                && always["difference_high"].as_f64().unwrap() > 0.05
        );
        assert!(
            r["metrics"][0]["variants"][0].get("comparison").is_none(),
            "control is not compared with itself"
        );
        assert_eq!(
            r["metrics"][2]["variants"][1]["comparison"]["not_comparable"],
            "no_variance"
        );
        assert_eq!(r["excluded"]["mixed_variant_users"], 3);
        let skewed = report(
            &def,
            &arms,
            &[variant("a", 1000, 100), variant("b", 1200, 120)],
            0,
            0,
        );
        assert_eq!(skewed["srm"]["mismatch"], true);
        assert!(skewed["srm"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Sample ratio mismatch"));
    }
}
