//! Event lines as the SDK's shell hands them over: built in JS per `track()` call, but
//! without their ids, which the wasm core writes as it queues them (made where ids are
//! made, none crossing the boundary), and without the parts a page's events share
//! (anonymous id, user id, URL), which cross once per hand-over and per change. Both cut
//! what `track()` costs (#13).

use alloc::string::String;

use crate::ids::{MonotonicUuidV7, SplitMix64};

/// The queued form of one handed-over line. A line that starts with a digit is an event
/// without its id and without the parts it shares with the events around it: its time in
/// ms, then its props as a JSON object (`1767225600123{"q":"rust"}`); it becomes
/// `{"id":"<UUIDv7 for that time>","ts":1767225600123,"props":{"q":"rust"}` and `shared`
/// (the parts: `,"type":"track","name":"search","anonymous_id":"..."}`). A line that
/// starts with `{` (a `beforeSend` result, which has its own id) is queued as it is.
/// Anything else is not an event and gives `None`: queued, it would make its whole batch
/// invalid JSON (the shell writes none). The id's time is the event's, or later when the
/// generator already gave an id for a later time (ids stay in order; nothing reads their
/// time but sorting).
pub fn identified_line(
    ids: &mut MonotonicUuidV7,
    rng: &mut SplitMix64,
    line: &str,
    shared: &str,
) -> Option<String> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let (Some(time), Some(props)) = (line.get(..digits), line.get(digits..)) else {
        return None;
    };
    if !props.starts_with('{') {
        return None;
    }
    if time.is_empty() {
        return Some(line.into());
    }
    // Wrapping: a 21-digit "time" makes a strange id, never a panic (the shell writes
    // `Date.now()`).
    let ts_ms = time.bytes().fold(0u64, |n, d| {
        n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
    });
    let mut out = String::with_capacity(line.len() + shared.len() + 60);
    out.push_str("{\"id\":\"");
    ids.push_next(&mut out, ts_ms, rng.uuid_bytes());
    out.push_str("\",\"ts\":");
    out.push_str(time);
    out.push_str(",\"props\":");
    out.push_str(props);
    out.push_str(shared);
    Some(out)
}

// serde_json and the collector's reader come with `full`.
#[cfg(all(test, feature = "full"))]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn line(text: &str, ids: &mut MonotonicUuidV7) -> String {
        identified_line(ids, &mut SplitMix64::new(7), text, "}").expect("an event line")
    }

    #[test]
    fn a_line_without_its_id_gets_one_for_its_time_and_the_collector_takes_it() {
        let mut ids = MonotonicUuidV7::default();
        let text = "1767225600123{\"q\":\"a\\nb\"}";
        let shared = ",\"type\":\"track\",\"name\":\"search\",\"anonymous_id\":\"anon-1\",\"url\":\"https://x.test/\"}";
        let event =
            identified_line(&mut ids, &mut SplitMix64::new(7), text, shared).expect("event");
        assert!(!event.contains('\n'));
        assert_eq!(&event[..7], "{\"id\":\"");
        assert_eq!(
            &event[43..],
            format!("\",\"ts\":1767225600123,\"props\":{{\"q\":\"a\\nb\"}}{shared}")
        );
        let id = &event[7..43];
        assert_eq!(&id[14..15], "7", "UUIDv7: {id}");
        assert_eq!(
            u64::from_str_radix(&id[..8], 16).expect("hex"),
            1_767_225_600_123 >> 16,
            "the id carries the event's time"
        );
        let value: serde_json::Value = serde_json::from_str(&event).expect("JSON");
        assert_eq!(value["ts"], 1_767_225_600_123u64);
        assert_eq!(value["props"]["q"], "a\nb");
        let batch = format!("{{\"sent_at\":1767225600200,\"events\":[{event}]}}");
        let read = crate::ingest::parse_batch(
            batch.as_bytes(),
            1_767_225_600_300,
            &crate::ingest::Limits::default(),
        )
        .expect("batch");
        assert_eq!(read.accepted.len(), 1, "{:?}", read.rejected);
    }

    #[test]
    fn whole_lines_stay_as_they_are_and_ids_keep_their_order() {
        let mut ids = MonotonicUuidV7::default();
        assert_eq!(line("{\"id\":\"x\"}", &mut ids), "{\"id\":\"x\"}");
        // Not events: nothing that would make a batch invalid JSON is queued.
        for text in [
            "",
            "5",
            "12\"x\"",
            "1767225600123.5{}",
            "-1{}",
            "[1]",
            "\"s\"",
            "x{}",
        ] {
            assert_eq!(
                identified_line(&mut ids, &mut SplitMix64::new(7), text, "}"),
                None,
                "{text}"
            );
        }
        let mut last = String::new();
        for _ in 0..100 {
            let event = line("1767225600123{}", &mut ids);
            let id = event[7..43].to_string();
            assert!(id > last, "{id} after {last}");
            last = id;
        }
        // A "time" too long for u64 wraps instead of panicking.
        let odd = line("999999999999999999999999{}", &mut ids);
        assert!(odd.starts_with("{\"id\":\""));
    }
}
