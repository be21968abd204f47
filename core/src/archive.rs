//! The cold tier's pure half: which raw events leave D1, and the immutable objects they move
//! into (`events/app=<id>/date=<YYYY-MM-DD>/<first>-<last>.ndjson.gz`, one gzip-compressed
//! JSON line per event, the raw table's fields). The collector (worker/src/archive.rs) does
//! the I/O: it reads rows in rowid order, asks [`eligible_prefix`] how many may go, builds
//! the objects with [`plan_objects`], writes, reads back and deletes.
//!
//! An object's content is a function of its rows alone (field order fixed), so one rebuilt
//! after a crash holds exactly what was planned, and the content's SHA-256 proves it; the
//! gzip around it (no timestamp) is the same too unless the compressor changed between
//! builds, which the check on the content tolerates.

use crate::gzip::gzip;
use crate::time::{format_rfc3339, MS_PER_DAY};
use crate::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Days an app keeps raw events in D1 unless it says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The shortest window: a day, so that a day's events leave together.
pub const MIN_RETENTION_DAYS: u32 = 1;
/// The longest window (ten years): beyond it D1's 10 GB cap binds long before.
pub const MAX_RETENTION_DAYS: u32 = 3_650;

/// Checks an app's retention window (`retention_days`).
pub fn validate_retention_days(days: i64) -> Result<u32, FieldError> {
    u32::try_from(days)
        .ok()
        .filter(|d| (MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(d))
        .ok_or_else(|| {
            FieldError::new(
                "out_of_range",
                "retention_days",
                format!(
                    "retention_days must be {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} (days raw events stay in D1 before the archive moves them to R2)"
                ),
            )
        })
}

/// The minute of each hour at which the cron (which fires every minute) runs the archive.
pub const ARCHIVE_MINUTE: i64 = 17;

/// Whether the cron invocation scheduled at `scheduled_ms` runs the archive: once an hour.
pub fn run_due(scheduled_ms: i64) -> bool {
    scheduled_ms.div_euclid(60_000).rem_euclid(60) == ARCHIVE_MINUTE
}

/// Events before this time are older than the window: the start of the UTC day that
/// `retention_days` days ago falls in, so a day's events leave D1 together, in one run.
pub fn cutoff_ms(now_ms: i64, retention_days: u32) -> i64 {
    let edge = now_ms - i64::from(retention_days) * MS_PER_DAY;
    edge - edge.rem_euclid(MS_PER_DAY)
}

/// One raw event row as D1 holds it, with its rowid (`seq`), in the table's column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRow {
    pub seq: i64,
    pub app: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub ts: i64,
    pub client_ts: i64,
    pub received_at: i64,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub user_key: String,
    /// A JSON object's text, as stored.
    pub props: String,
    pub url: Option<String>,
    pub batch_id: String,
}

/// How many of `rows` (one app's, in rowid order) may leave now: the leading run of rows
/// older than `cutoff`. The scan stops at the first younger row, so every row of the app
/// at or below the scan mark is in an object: the mark never passes a row left behind.
pub fn eligible_prefix(rows: &[RawRow], cutoff: i64) -> usize {
    rows.iter().take_while(|r| r.ts < cutoff).count()
}

/// An object to write: its key, the rows it holds, and its exact bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedObject {
    pub key: String,
    pub app: String,
    /// UTC ms of the day's start.
    pub day: i64,
    /// The rows are the app's events of `day` with rowid in `first_seq..=last_seq`.
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: usize,
    /// The NDJSON's length and SHA-256 (hex): what the object holds, whatever gzip wraps it.
    pub content_bytes: usize,
    pub content_sha256: String,
    /// gzip-compressed NDJSON.
    pub body: Vec<u8>,
}

/// Why rows could not become an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveError {
    /// Rows of several apps, or not in ascending rowid order (a caller's bug).
    Mixed(&'static str),
    /// A stored `props` text that is not a JSON object (D1 was written around the collector).
    BadProps { seq: i64 },
}

impl core::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArchiveError::Mixed(what) => write!(f, "archive rows {what}"),
            ArchiveError::BadProps { seq } => {
                write!(f, "event row {seq} has props that are not a JSON object")
            }
        }
    }
}

/// `YYYY-MM-DD` of a UTC day.
pub fn date_text(day_ms: i64) -> String {
    let mut text = format_rfc3339(day_ms);
    text.truncate(10);
    text
}

/// The object key of an app's events of one day, rowids `first..=last`. Rowids are padded
/// to 12 digits so that keys list in order.
pub fn object_key(app: &str, day_ms: i64, first_seq: i64, last_seq: i64) -> String {
    format!(
        "events/app={app}/date={}/{first_seq:012}-{last_seq:012}.ndjson.gz",
        date_text(day_ms)
    )
}

/// The prefix of every object of an app (and, with a day, of that day).
pub fn app_prefix(app: &str) -> String {
    format!("events/app={app}/")
}

/// One event as a JSON line: the raw table's fields, in its column order, props as the
/// object they are.
fn line(row: &RawRow) -> Result<String, ArchiveError> {
    let props: Value =
        serde_json::from_str(&row.props).map_err(|_| ArchiveError::BadProps { seq: row.seq })?;
    if !props.is_object() {
        return Err(ArchiveError::BadProps { seq: row.seq });
    }
    // serde_json's `preserve_order` is off, so an object's keys would be sorted; a struct
    // keeps the table's column order.
    #[derive(Serialize)]
    struct Line<'a> {
        app: &'a str,
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        name: &'a str,
        ts: i64,
        client_ts: i64,
        received_at: i64,
        anonymous_id: &'a str,
        user_id: Option<&'a str>,
        user_key: &'a str,
        props: Value,
        url: Option<&'a str>,
        batch_id: &'a str,
    }
    let text = serde_json::to_string(&Line {
        app: &row.app,
        id: &row.id,
        kind: &row.kind,
        name: &row.name,
        ts: row.ts,
        client_ts: row.client_ts,
        received_at: row.received_at,
        anonymous_id: &row.anonymous_id,
        user_id: row.user_id.as_deref(),
        user_key: &row.user_key,
        props,
        url: row.url.as_deref(),
        batch_id: &row.batch_id,
    })
    .map_err(|_| ArchiveError::BadProps { seq: row.seq })?;
    Ok(text)
}

/// The object holding `rows` (one app's events of one day, ascending rowid).
pub fn build_object(app: &str, day: i64, rows: &[RawRow]) -> Result<PlannedObject, ArchiveError> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(ArchiveError::Mixed("are empty"));
    };
    if rows.windows(2).any(|w| w[0].seq >= w[1].seq) {
        return Err(ArchiveError::Mixed("are not in ascending rowid order"));
    }
    if rows
        .iter()
        .any(|r| r.app != app || r.ts - r.ts.rem_euclid(MS_PER_DAY) != day)
    {
        return Err(ArchiveError::Mixed("mix apps or days"));
    }
    let mut text = String::new();
    for row in rows {
        text.push_str(&line(row)?);
        text.push('\n');
    }
    Ok(PlannedObject {
        key: object_key(app, day, first.seq, last.seq),
        app: app.to_string(),
        day,
        first_seq: first.seq,
        last_seq: last.seq,
        events: rows.len(),
        content_bytes: text.len(),
        content_sha256: sha256_hex(text.as_bytes()),
        body: gzip(text.as_bytes()),
    })
}

/// The objects for one app's eligible rows (ascending rowid): one per UTC day, in day order.
pub fn plan_objects(app: &str, rows: &[RawRow]) -> Result<Vec<PlannedObject>, ArchiveError> {
    let mut days: Vec<i64> = rows
        .iter()
        .map(|r| r.ts - r.ts.rem_euclid(MS_PER_DAY))
        .collect();
    days.sort_unstable();
    days.dedup();
    days.into_iter()
        .map(|day| {
            let of_day: Vec<RawRow> = rows
                .iter()
                .filter(|r| r.ts - r.ts.rem_euclid(MS_PER_DAY) == day)
                .cloned()
                .collect();
            build_object(app, day, &of_day)
        })
        .collect()
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Which archived ids to keep, and until when: those of events whose time ingest could
/// still accept (it refuses events more than `max_past_ms` old; a day more for clock-skew
/// corrections), kept that long after the archiving, so a resend or a redelivery within it
/// is absorbed. Returns (oldest event time kept, keep until).
pub fn archived_ids_window(now_ms: i64, max_past_ms: i64) -> (i64, i64) {
    let window = max_past_ms + MS_PER_DAY;
    (now_ms - window, now_ms + window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gzip::gunzip;

    const DAY0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn row(seq: i64, ts: i64) -> RawRow {
        RawRow {
            seq,
            app: "shop".into(),
            id: format!("id-{seq}"),
            kind: "track".into(),
            name: "signup".into(),
            ts,
            client_ts: ts - 5,
            received_at: ts + 10,
            anonymous_id: "anon".into(),
            user_id: (seq % 2 == 0).then(|| "u-1".to_string()),
            user_key: "u-1".into(),
            props: r#"{"plan":"pro","n":3,"b":true}"#.into(),
            url: None,
            batch_id: "b-1".into(),
        }
    }

    #[test]
    fn retention_bounds_are_enforced_with_the_field_named() {
        assert_eq!(validate_retention_days(1), Ok(1));
        assert_eq!(validate_retention_days(3_650), Ok(3_650));
        for bad in [0, -1, 3_651, i64::MAX] {
            let e = validate_retention_days(bad).unwrap_err();
            assert_eq!(e.field, "retention_days");
        }
    }

    #[test]
    fn the_cutoff_is_the_start_of_a_utc_day() {
        let now = DAY0 + 30 * MS_PER_DAY + 13 * 3_600_000; // Jan 31, 13:00
        assert_eq!(cutoff_ms(now, 30), DAY0); // Jan 1, 00:00: Dec 31 and before leave
        assert_eq!(cutoff_ms(now, 1), DAY0 + 29 * MS_PER_DAY); // Jan 30, 00:00
                                                               // Exactly at midnight the day before is the newest that leaves.
        assert_eq!(cutoff_ms(DAY0 + 2 * MS_PER_DAY, 1), DAY0 + MS_PER_DAY);
        assert_eq!(cutoff_ms(0, 1), -MS_PER_DAY);
    }

    #[test]
    fn the_cron_runs_the_archive_once_an_hour() {
        let hour = DAY0 + 5 * 3_600_000;
        let due: Vec<i64> = (0..120)
            .map(|m| hour + m * 60_000 + 1_234)
            .filter(|t| run_due(*t))
            .collect();
        assert_eq!(
            due,
            vec![hour + 17 * 60_000 + 1_234, hour + 77 * 60_000 + 1_234]
        );
    }

    #[test]
    fn only_the_leading_old_rows_may_leave() {
        let cutoff = DAY0 + MS_PER_DAY;
        let rows = vec![
            row(1, DAY0),
            row(2, DAY0 + 5),
            row(3, cutoff),
            row(4, DAY0 + 1), // old, but behind a young row: waits for it
        ];
        assert_eq!(eligible_prefix(&rows, cutoff), 2);
        assert_eq!(eligible_prefix(&rows[2..], cutoff), 0);
        assert_eq!(eligible_prefix(&[], cutoff), 0);
    }

    #[test]
    fn objects_split_by_day_with_keys_from_their_rowids() {
        let rows = vec![
            row(7, DAY0 + MS_PER_DAY + 1),
            row(9, DAY0 + 2),
            row(12, DAY0 + MS_PER_DAY + 2),
            row(15, DAY0 + 3),
        ];
        let objects = plan_objects("shop", &rows).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(
            objects[0].key,
            "events/app=shop/date=2026-01-01/000000000009-000000000015.ndjson.gz"
        );
        assert_eq!(
            (objects[0].first_seq, objects[0].last_seq, objects[0].events),
            (9, 15, 2)
        );
        assert_eq!(
            objects[1].key,
            "events/app=shop/date=2026-01-02/000000000007-000000000012.ndjson.gz"
        );
        assert!(objects[1].key.starts_with(&app_prefix("shop")));
    }

    #[test]
    fn an_object_is_one_json_line_per_event_with_the_raw_fields_and_is_reproducible() {
        let rows = vec![row(1, DAY0 + 1), row(2, DAY0 + 2)];
        let object = build_object("shop", DAY0, &rows).unwrap();
        assert_eq!(
            object,
            build_object("shop", DAY0, &rows).unwrap(),
            "same rows, same bytes"
        );
        let text = String::from_utf8(gunzip(&object.body, 1 << 20).unwrap()).unwrap();
        assert_eq!(object.content_sha256, sha256_hex(text.as_bytes()));
        assert_eq!(
            (object.content_sha256.len(), object.content_bytes),
            (64, text.len())
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(
            lines[0],
            format!(
                r#"{{"app":"shop","id":"id-1","type":"track","name":"signup","ts":{},"client_ts":{},"received_at":{},"anonymous_id":"anon","user_id":null,"user_key":"u-1","props":{{"b":true,"n":3,"plan":"pro"}},"url":null,"batch_id":"b-1"}}"#,
                DAY0 + 1,
                DAY0 - 4,
                DAY0 + 11
            )
        );
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["user_id"], "u-1");
    }

    #[test]
    fn mixed_unordered_or_corrupt_rows_are_refused() {
        let mut other_app = row(2, DAY0);
        other_app.app = "other".into();
        assert!(build_object("shop", DAY0, &[row(1, DAY0), other_app]).is_err());
        assert!(build_object("shop", DAY0, &[row(1, DAY0), row(2, DAY0 + MS_PER_DAY)]).is_err());
        assert!(build_object("shop", DAY0, &[row(2, DAY0), row(1, DAY0)]).is_err());
        assert!(build_object("shop", DAY0, &[]).is_err());
        let mut bad = row(3, DAY0);
        bad.props = "[1]".into();
        assert_eq!(
            build_object("shop", DAY0, &[bad]),
            Err(ArchiveError::BadProps { seq: 3 })
        );
    }

    #[test]
    fn archived_ids_are_kept_past_the_ingest_window() {
        let max_past = 30 * MS_PER_DAY;
        assert_eq!(
            archived_ids_window(DAY0, max_past),
            (DAY0 - 31 * MS_PER_DAY, DAY0 + 31 * MS_PER_DAY)
        );
    }
}
