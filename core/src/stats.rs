//! The stats query (`GET /v1/stats`): parsing, UTC bucketing, zero-filled series and CSV.
//!
//! Every parameter named in a query must be known, and every value must parse: an
//! unknown parameter is an error, never ignored, so a typo cannot widen a query.

use crate::error::FieldError;
use crate::time::{format_rfc3339, parse_api_time, MS_PER_DAY, MS_PER_HOUR};
use serde::Serialize;

/// Most buckets one query may return.
pub const MAX_BUCKETS: i64 = 1_000;
/// Default and largest number of top values for `by=`.
pub const DEFAULT_TOP: usize = 10;
pub const MAX_TOP: usize = 100;

/// The query parameters `GET /v1/stats` takes.
pub const PARAMS: [&str; 9] = [
    "app", "event", "from", "to", "interval", "by", "limit", "format", "source",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn ms(self) -> i64 {
        match self {
            Interval::Hour => MS_PER_HOUR,
            Interval::Day => MS_PER_DAY,
        }
    }
    /// The granularity name stored in the aggregate tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// Where counts come from: the incremental aggregates (fast, the default) or a scan of the
/// raw append-only event store (slow; it exists to prove the two agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Aggregates,
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    pub app: String,
    pub event: String,
    /// Inclusive, floored to the interval.
    pub from_ms: i64,
    /// Exclusive.
    pub to_ms: i64,
    pub interval: Interval,
    pub by: Option<String>,
    pub limit: usize,
    pub format: Format,
    pub source: Source,
}

impl StatsQuery {
    /// End (exclusive) of the last bucket the answer covers: buckets are counted whole.
    pub fn covered_end_ms(&self) -> i64 {
        bucket_start(self.to_ms - 1, self.interval) + self.interval.ms()
    }

    /// Start times of every bucket the answer covers.
    pub fn buckets(&self) -> impl Iterator<Item = i64> {
        let (from, to, step) = (self.from_ms, self.to_ms, self.interval.ms());
        (0..)
            .map(move |i| from + i * step)
            .take_while(move |t| *t < to)
    }
}

/// Floors a UTC time to the start of its bucket.
pub fn bucket_start(ts: i64, interval: Interval) -> i64 {
    ts - ts.rem_euclid(interval.ms())
}

fn bad(code: &'static str, field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(code, field, message)
}

/// Parses the query pairs of `GET /v1/stats`. `accept` is the request's `Accept` header.
pub fn parse_stats_query(
    pairs: &[(String, String)],
    accept: Option<&str>,
    now_ms: i64,
) -> Result<StatsQuery, FieldError> {
    let mut seen: Vec<&str> = Vec::new();
    for (key, _) in pairs {
        if !PARAMS.contains(&key.as_str()) {
            return Err(bad(
                "unknown_parameter",
                key,
                format!(
                    "unknown query parameter `{key}`; allowed: {}",
                    PARAMS.join(", ")
                ),
            ));
        }
        if seen.contains(&key.as_str()) {
            return Err(bad(
                "duplicate_parameter",
                key,
                format!("`{key}` is given more than once"),
            ));
        }
        seen.push(key);
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let required = |name: &str| match get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(bad("required", name, format!("`{name}` is required"))),
    };
    let app = required("app")?;
    let event = required("event")?;
    let interval = match get("interval") {
        None | Some("hour") => Interval::Hour,
        Some("day") => Interval::Day,
        Some(other) => {
            return Err(bad(
                "invalid_value",
                "interval",
                format!("interval must be hour or day, not `{other}`"),
            ))
        }
    };
    let time = |name: &str, default: i64| match get(name) {
        None => Ok(default),
        Some(v) => parse_api_time(v).ok_or_else(|| {
            bad(
                "invalid_value",
                name,
                format!("`{name}` must be RFC 3339 (with Z or an offset) or integer ms"),
            )
        }),
    };
    let to_ms = time("to", now_ms)?;
    let default_span = match interval {
        Interval::Hour => 24 * MS_PER_HOUR,
        Interval::Day => 30 * MS_PER_DAY,
    };
    let from_ms = bucket_start(time("from", to_ms - default_span)?, interval);
    if from_ms >= to_ms {
        return Err(bad("invalid_range", "from", "`from` must be before `to`"));
    }
    if (to_ms - from_ms) / interval.ms() >= MAX_BUCKETS {
        return Err(bad(
            "range_too_large",
            "from",
            format!("the range spans more than {MAX_BUCKETS} {} buckets; narrow it or use a coarser interval", interval.as_str()),
        ));
    }
    let by = match get("by") {
        None => None,
        Some(v) if v.trim().is_empty() => {
            return Err(bad(
                "invalid_value",
                "by",
                "`by` names a property and must not be empty",
            ))
        }
        Some(v) => Some(v.trim().to_string()),
    };
    let limit = match get("limit") {
        None => DEFAULT_TOP,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| {
                bad(
                    "invalid_value",
                    "limit",
                    format!("limit must be an integer from 1 to {MAX_TOP}"),
                )
            })?,
    };
    let format = match get("format") {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(bad(
                "invalid_value",
                "format",
                format!("format must be json or csv, not `{other}`"),
            ))
        }
        None if accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/csv")) => Format::Csv,
        None => Format::Json,
    };
    let source = match get("source") {
        None | Some("aggregates") => Source::Aggregates,
        Some("raw") => Source::Raw,
        Some(other) => {
            return Err(bad(
                "invalid_value",
                "source",
                format!("source must be aggregates or raw, not `{other}`"),
            ))
        }
    };
    Ok(StatsQuery {
        app,
        event,
        from_ms,
        to_ms,
        interval,
        by,
        limit,
        format,
        source,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesPoint {
    pub t: String,
    pub count: u64,
    pub users: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
}

/// One zero-filled point per bucket, from rows of (bucket start, count, users).
pub fn fill_series(query: &StatsQuery, rows: &[(i64, u64, u64)]) -> Vec<SeriesPoint> {
    query
        .buckets()
        .map(|t| {
            let (count, users) = rows
                .iter()
                .find(|(b, _, _)| *b == t)
                .map_or((0, 0), |(_, c, u)| (*c, *u));
            SeriesPoint {
                t: format_rfc3339(t),
                count,
                users,
            }
        })
        .collect()
}

/// A CSV cell holding user data. A cell that a spreadsheet would read as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as
/// OWASP recommends against CSV injection; then it is quoted if it needs to be.
fn csv_field(text: &str) -> String {
    let neutral = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

/// CSV of the series (`t,count,users`), or of the top values (`value,count`) when the
/// query named a property with `by=`.
pub fn to_csv(query: &StatsQuery, series: &[SeriesPoint], top: &[TopValue]) -> String {
    let mut out = String::new();
    if query.by.is_some() {
        out.push_str("value,count\n");
        for row in top {
            out.push_str(&format!("{},{}\n", csv_field(&row.value), row.count));
        }
    } else {
        out.push_str("t,count,users\n");
        for p in series {
            out.push_str(&format!("{},{},{}\n", p.t, p.count, p.users));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_232_800_000; // 2026-01-01T02:00:00Z

    fn q(pairs: &[(&str, &str)]) -> Result<StatsQuery, FieldError> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_stats_query(&owned, None, NOW)
    }

    #[test]
    fn parses_a_full_query() {
        let query = q(&[
            ("app", "demo"),
            ("event", "search"),
            ("from", "2026-01-01T00:30:00Z"),
            ("to", "2026-01-01T02:00:00Z"),
            ("by", "query"),
            ("format", "csv"),
        ])
        .unwrap();
        assert_eq!(
            query.from_ms,
            NOW - 2 * MS_PER_HOUR,
            "from is floored to the hour"
        );
        assert_eq!(query.buckets().count(), 2);
        assert_eq!(query.by.as_deref(), Some("query"));
        assert_eq!(query.format, Format::Csv);
    }

    #[test]
    fn refuses_unknown_or_missing_parameters() {
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("evnt", "x")])
                .unwrap_err()
                .field,
            "evnt"
        );
        assert_eq!(q(&[("app", "a")]).unwrap_err().field, "event");
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("app", "b")])
                .unwrap_err()
                .code,
            "duplicate_parameter"
        );
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("interval", "week")])
                .unwrap_err()
                .field,
            "interval"
        );
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("from", "soon")])
                .unwrap_err()
                .field,
            "from"
        );
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("from", "2030-01-01")])
                .unwrap_err()
                .code,
            "invalid_range"
        );
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("from", "2000-01-01")])
                .unwrap_err()
                .code,
            "range_too_large"
        );
        assert_eq!(
            q(&[("app", "a"), ("event", "e"), ("limit", "0")])
                .unwrap_err()
                .field,
            "limit"
        );
    }

    #[test]
    fn accept_header_selects_csv() {
        let pairs = vec![
            ("app".to_string(), "a".to_string()),
            ("event".to_string(), "e".to_string()),
        ];
        assert_eq!(
            parse_stats_query(&pairs, Some("text/csv"), NOW)
                .unwrap()
                .format,
            Format::Csv
        );
    }

    #[test]
    fn fills_every_bucket() {
        let query = q(&[
            ("app", "a"),
            ("event", "e"),
            ("from", "2026-01-01T00:00:00Z"),
        ])
        .unwrap();
        let series = fill_series(&query, &[(NOW - MS_PER_HOUR, 5, 2)]);
        assert_eq!(
            series,
            vec![
                SeriesPoint {
                    t: "2026-01-01T00:00:00Z".into(),
                    count: 0,
                    users: 0
                },
                SeriesPoint {
                    t: "2026-01-01T01:00:00Z".into(),
                    count: 5,
                    users: 2
                },
            ]
        );
        assert_eq!(
            to_csv(&query, &series, &[]),
            "t,count,users\n2026-01-01T00:00:00Z,0,0\n2026-01-01T01:00:00Z,5,2\n"
        );
    }

    #[test]
    fn quotes_csv_values() {
        let query = q(&[("app", "a"), ("event", "e"), ("by", "q")]).unwrap();
        let top = [TopValue {
            value: "a,\"b\"".into(),
            count: 3,
        }];
        assert_eq!(
            to_csv(&query, &[], &top),
            "value,count\n\"a,\"\"b\"\"\",3\n"
        );
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        for (raw, cell) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("@SUM(1)", "'@SUM(1)"),
            ("-2+3", "'-2+3"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("rust, wasm", "\"rust, wasm\""),
            ("plain", "plain"),
        ] {
            assert_eq!(csv_field(raw), cell, "{raw:?}");
        }
    }

    #[test]
    fn a_range_at_the_edge_of_time_is_refused_not_overflowed() {
        let e = q(&[("app", "a"), ("event", "e"), ("to", "9223372036854775807")]).unwrap_err();
        assert_eq!(e.field, "to");
        let late = q(&[("app", "a"), ("event", "e"), ("to", "9999-12-31T23:00:00Z")]).unwrap();
        assert_eq!(late.buckets().count(), 24);
    }

    #[test]
    fn buckets_are_utc() {
        assert_eq!(bucket_start(NOW + 1, Interval::Day), NOW - 2 * MS_PER_HOUR);
    }
}
