//! Event lines as the SDK's shell hands them over: built in JS per `track()` call, but
//! without their ids, which the wasm core makes as it queues them (none crossing the
//! boundary), and without the parts a page's events share (type, name, anonymous id, user
//! id, URL), which cross once per hand-over and per change. An event stays a place in the
//! text of its hand-over until the persisted copy is written, after the task, which gives
//! it its own JSON (a batch cut before then is written from the text). All of it cuts what
//! `track()` costs (#13).

use alloc::rc::Rc;
use alloc::string::String;

use crate::ids::{MonotonicUuidV7, SplitMix64};
use crate::queue::QueuedEvent;

/// Queues the events of one hand-over, in order, through `queue`. Each line of `text` is
/// one of:
/// - the parts the events after it share, starting with a comma
///   (`,"type":"track","name":"search","anonymous_id":"..."}`);
/// - an event without its id and shared parts: its time in ms, then its props as a JSON
///   object (`1767225600123{"q":"rust"}`), or its props alone (`{"q":"go"}`) when its
///   time is the last time in the text: a burst of events shares a few ms, and the shell
///   then writes no number and concatenates nothing. It gets a UUIDv7 for its time (or
///   later, when the generator already gave an id for a later time: ids stay in order,
///   and nothing reads their time but sorting) and is written as
///   `{"id":"...","ts":1767225600123,"props":{"q":"rust"}` and the shared parts;
/// - a whole event after `=` (`={"id":...}`: a `beforeSend` result, which has its own id).
///
/// Anything else, and an event line before any shared parts or any time, is not an event
/// and is skipped: queued, it would make its whole batch invalid JSON (the shell writes
/// none). Props alone after such a line are skipped too (the time the shell meant for them
/// was on it).
pub fn queue_handed_over(
    text: Rc<String>,
    ids: &mut MonotonicUuidV7,
    rng: &mut SplitMix64,
    mut queue: impl FnMut(QueuedEvent),
) {
    let mut shared = None;
    let mut time = None;
    let mut start = 0;
    for line in text.split('\n') {
        let end = start + line.len();
        let bytes = line.as_bytes();
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        if let [b',', ..] = bytes {
            shared = Some((start, end));
        } else if let [b'=', b'{', ..] = bytes {
            queue(QueuedEvent::whole(line.get(1..).unwrap_or_default().into()));
        } else if let Some(b'{') = bytes.get(digits) {
            if digits > 0 {
                // Wrapping: a 21-digit "time" makes a strange id, never a panic (the
                // shell writes `Date.now()`).
                let ts_ms = line.bytes().take(digits).fold(0u64, |n, d| {
                    n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
                });
                time = Some((start, start + digits, ts_ms));
            }
            if let (Some(shared), Some((time_start, time_end, ts_ms))) = (shared, time) {
                let id = ids.next_bytes(ts_ms, rng.uuid_bytes());
                queue(QueuedEvent::in_text(
                    &text,
                    (time_start, time_end),
                    (start + digits, end),
                    shared,
                    id,
                ));
            }
        } else {
            // Not a line the shell writes (a time it could not write as digits): props
            // after it must not take an earlier event's time.
            time = None;
        }
        start = end + 1;
    }
}

// serde_json and the collector's reader come with `full`.
#[cfg(all(test, feature = "full"))]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    /// The JSON of each event queued from `text`, and each event's length as the queue
    /// counts it.
    fn queued(text: &str, ids: &mut MonotonicUuidV7) -> alloc::vec::Vec<String> {
        let mut out = alloc::vec::Vec::new();
        queue_handed_over(
            Rc::new(text.into()),
            ids,
            &mut SplitMix64::new(7),
            |event| {
                let json = event.to_json();
                assert_eq!(event.json_len(), json.len(), "{json}");
                out.push(json);
            },
        );
        out
    }

    const SHARED: &str = ",\"type\":\"track\",\"name\":\"search\",\"anonymous_id\":\"anon-1\",\"url\":\"https://x.test/\"}";

    #[test]
    fn a_line_without_its_id_gets_one_for_its_time_and_the_collector_takes_it() {
        let mut ids = MonotonicUuidV7::default();
        let events = queued(
            &format!("{SHARED}\n1767225600123{{\"q\":\"a\\nb\"}}"),
            &mut ids,
        );
        let [event] = events.as_slice() else {
            panic!("one event: {events:?}");
        };
        assert!(!event.contains('\n'));
        assert_eq!(&event[..7], "{\"id\":\"");
        assert_eq!(
            &event[43..],
            format!("\",\"ts\":1767225600123,\"props\":{{\"q\":\"a\\nb\"}}{SHARED}")
        );
        let id = &event[7..43];
        assert!(crate::ids::is_uuid(id), "{id}");
        assert_eq!(&id[14..15], "7", "UUIDv7: {id}");
        assert_eq!(
            u64::from_str_radix(&id[..8], 16).expect("hex"),
            1_767_225_600_123 >> 16,
            "the id carries the event's time"
        );
        let value: serde_json::Value = serde_json::from_str(event).expect("JSON");
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
    fn shared_parts_follow_their_line_and_whole_lines_stay_as_they_are() {
        let mut ids = MonotonicUuidV7::default();
        let other = ",\"type\":\"identify\",\"name\":\"$identify\",\"anonymous_id\":\"a\",\"user_id\":\"u\"}";
        let events = queued(
            &format!("{SHARED}\n1767225600123{{}}\n={{\"id\":\"x\"}}\n{other}\n1767225600124{{\"k\":1}}\n1767225600125{{}}"),
            &mut ids,
        );
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(
            events[0].ends_with(&format!("\"props\":{{}}{SHARED}")),
            "{}",
            events[0]
        );
        assert_eq!(events[1], "{\"id\":\"x\"}");
        assert!(
            events[2].ends_with(&format!("\"props\":{{\"k\":1}}{other}")),
            "{}",
            events[2]
        );
        assert!(
            events[3].ends_with(&format!("\"props\":{{}}{other}")),
            "{}",
            events[3]
        );
        for event in &events {
            serde_json::from_str::<serde_json::Value>(event).expect("JSON");
        }
    }

    #[test]
    fn props_alone_take_the_last_time_in_the_text_across_shared_parts() {
        let mut ids = MonotonicUuidV7::default();
        let other = ",\"type\":\"page\",\"name\":\"$pageview\",\"anonymous_id\":\"a\"}";
        let events = queued(
            &format!("{SHARED}\n1767225600123{{\"i\":0}}\n{{\"i\":1}}\n{other}\n{{\"i\":2}}\n1767225600124{{\"i\":3}}\n{{\"i\":4}}"),
            &mut ids,
        );
        let read: alloc::vec::Vec<serde_json::Value> = events
            .iter()
            .map(|event| serde_json::from_str(event).expect("JSON"))
            .collect();
        let times: alloc::vec::Vec<_> = read.iter().map(|v| v["ts"].as_u64()).collect();
        let expected = [123, 123, 123, 124, 124].map(|ms| Some(1_767_225_600_000 + ms));
        assert_eq!(times, expected);
        for (i, value) in read.iter().enumerate() {
            assert_eq!(value["props"]["i"], i, "{}", events[i]);
        }
        assert_eq!(read[1]["name"], "search");
        assert_eq!(read[2]["name"], "$pageview");
        // A line that is not an event ends the time: the props after it are not events.
        let after_odd = queued(
            &format!("{SHARED}\n1767225600123{{}}\nInfinity{{}}\n{{\"i\":6}}\n1e+21{{}}\n{{}}\nNaN\n{{}}"),
            &mut ids,
        );
        assert_eq!(after_odd.len(), 1, "{after_odd:?}");
        // Each hand-over starts with no time: props alone before one are not events.
        assert_eq!(
            queued(&format!("{SHARED}\n{{\"i\":5}}"), &mut ids),
            alloc::vec::Vec::<String>::new()
        );
    }

    #[test]
    fn what_is_not_an_event_is_skipped_and_ids_keep_their_order() {
        let mut ids = MonotonicUuidV7::default();
        // Not events: nothing that would make a batch invalid JSON is queued; nor an event
        // line before any shared parts (it would have no end).
        let not_events = [
            "",
            "5",
            "12\"x\"",
            "1767225600123.5{}",
            "-1{}",
            "[1]",
            "\"s\"",
            "x{}",
            "{}",
            "=",
            "=x",
        ];
        assert_eq!(
            queued("1767225600123{}", &mut ids),
            alloc::vec::Vec::<String>::new()
        );
        let text = format!("{SHARED}\n{}", not_events.join("\n"));
        assert_eq!(queued(&text, &mut ids), alloc::vec::Vec::<String>::new());
        let burst = format!("{SHARED}\n{}", ["1767225600123{}"; 100].join("\n"));
        let events = queued(&burst, &mut ids);
        assert_eq!(events.len(), 100);
        for pair in events.windows(2) {
            assert!(
                pair[1][7..43] > pair[0][7..43],
                "{} after {}",
                &pair[1][7..43],
                &pair[0][7..43]
            );
        }
        // A "time" too long for u64 wraps instead of panicking.
        let odd = queued(&format!("{SHARED}\n999999999999999999999999{{}}"), &mut ids);
        assert!(odd[0].starts_with("{\"id\":\""));
    }
}
