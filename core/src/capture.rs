//! Events as the SDK's shell hands them over: one JSON array, serialized by one
//! `JSON.stringify` per hand-over (not one per `track()` call), holding each event's props
//! without its id, which the wasm core makes as it queues it (none crossing the boundary),
//! and without the parts a page's events share (type, name, anonymous id, user id, URL)
//! or their time, which go in once per hand-over and per change. An event stays a place
//! in the text of its hand-over until the persisted copy is written, after the task,
//! which gives it its own JSON (a batch cut before then is written from the text). All of
//! it cuts what `track()` costs (#13).

use alloc::rc::Rc;
use alloc::string::String;

use crate::ids::{MonotonicUuidV7, SplitMix64};
use crate::queue::QueuedEvent;

/// Queues the events of one hand-over, in order, through `queue`. `text` is a JSON array
/// whose elements are, in any number and order:
/// - a time in ms (`1767225600123`), the time of the events after it, until the next one
///   (a burst of events shares a few ms, so most events have no number of their own);
/// - the parts the events after it share, as the one object of an array
///   (`[{"type":"track","name":"search","anonymous_id":"..."}]`);
/// - an event's props (`{"q":"rust"}`), after a time and shared parts. It gets a UUIDv7
///   for its time (or later, when the generator already gave an id for a later time: ids
///   stay in order, and nothing reads their time but sorting) and is written as
///   `{"id":"...","ts":1767225600123,"props":{"q":"rust"},"type":"track",...}`;
/// - `-1`, then a whole event (a `beforeSend` result, which has its own id) as it is.
///
/// The elements are found by their brackets, outside strings, so an element is never cut
/// inside a string and each one's brackets balance. Anything else, and props before any
/// shared parts or any time, is skipped: queued, it would make its whole batch invalid
/// JSON (the shell writes none). Props after an element that is not one of these are
/// skipped too, until the next time (the time the shell meant for them may have been it).
pub fn queue_handed_over(
    text: Rc<String>,
    ids: &mut MonotonicUuidV7,
    rng: &mut SplitMix64,
    mut queue: impl FnMut(QueuedEvent),
) {
    let bytes = text.as_bytes();
    let mut shared = None;
    let mut time = None;
    let mut whole_next = false;
    let mut take_element = |start: usize, end: usize| {
        let whole = core::mem::take(&mut whole_next);
        let element = bytes.get(start..end).unwrap_or_default();
        match element {
            [b'{', ..] if whole => {
                queue(QueuedEvent::whole(
                    text.get(start..end).unwrap_or_default().into(),
                ));
            }
            [b'{', ..] => {
                if let (Some(shared), Some((time_start, time_end, ts_ms))) = (shared, time) {
                    let id = ids.next_bytes(ts_ms, rng.next_u64());
                    queue(QueuedEvent::in_text(
                        &text,
                        (time_start, time_end),
                        (start, end),
                        shared,
                        id,
                    ));
                }
            }
            // The object's members and its closing brace: the event's JSON goes on with them.
            [b'[', b'{', .., b'}', b']'] if element.len() > 4 => {
                shared = Some((start + 2, end - 1))
            }
            [b'-', ..] => whole_next = true,
            // Wrapping: a 21-digit "time" makes a strange id, never a panic (the shell
            // writes `Date.now()`, clamped).
            [b'0'..=b'9', ..] => {
                time = element
                    .iter()
                    .try_fold(0u64, |ms, digit| {
                        digit
                            .is_ascii_digit()
                            .then(|| ms.wrapping_mul(10).wrapping_add(u64::from(digit - b'0')))
                    })
                    .map(|ms| (start, end, ms));
            }
            _ => time = None,
        }
    };
    // The array's elements are at depth 1; a string is skipped whole, so that what it
    // holds is never taken for brackets or commas.
    let (mut depth, mut start, mut at) = (0u32, 0, 0);
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b'"' => {
                while let Some(&byte) = bytes.get(at) {
                    at += if byte == b'\\' { 2 } else { 1 };
                    if byte == b'"' {
                        break;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    start = at;
                }
            }
            b',' | b']' | b'}' if depth == 1 => {
                take_element(start, at - 1);
                start = at;
                if byte != b',' {
                    depth = 0;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
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

    /// The shared parts as the shell writes them (the one object of an array), and as
    /// they end an event's JSON.
    const SHARED: &str = "[{\"type\":\"track\",\"name\":\"search\",\"anonymous_id\":\"anon-1\",\"url\":\"https://x.test/\"}]";
    const SHARED_END: &str = ",\"type\":\"track\",\"name\":\"search\",\"anonymous_id\":\"anon-1\",\"url\":\"https://x.test/\"}";

    #[test]
    fn props_without_their_id_get_one_for_their_time_and_the_collector_takes_the_event() {
        let mut ids = MonotonicUuidV7::default();
        // Brackets, commas, quotes and backslashes inside a string do not end the props.
        let props = serde_json::json!({"q": "a\nb\"],[{\"type\":1}],{\\", "n": 2});
        let events = queued(&format!("[{SHARED},1767225600123,{props}]"), &mut ids);
        let [event] = events.as_slice() else {
            panic!("one event: {events:?}");
        };
        assert!(!event.contains('\n'));
        assert_eq!(&event[..7], "{\"id\":\"");
        assert_eq!(
            &event[43..],
            format!("\",\"ts\":1767225600123,\"props\":{props}{SHARED_END}")
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
        assert_eq!(value["props"], props);
        assert_eq!(value["name"], "search");
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
    fn shared_parts_hold_for_the_props_after_them_and_whole_events_stay_as_they_are() {
        let mut ids = MonotonicUuidV7::default();
        let other = "[{\"type\":\"identify\",\"name\":\"$identify\",\"anonymous_id\":\"a\",\"user_id\":\"u\"}]";
        let other_end = ",\"type\":\"identify\",\"name\":\"$identify\",\"anonymous_id\":\"a\",\"user_id\":\"u\"}";
        let whole = "{\"id\":\"x\",\"props\":{\"a\":\"[1,{2}]\"},\"tags\":[1,[2]]}";
        let events = queued(
            &format!("[{SHARED},1767225600123,{{}},-1,{whole},{other},1767225600124,{{\"k\":1}},1767225600125,{{}}]"),
            &mut ids,
        );
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(
            events[0].ends_with(&format!("\"props\":{{}}{SHARED_END}")),
            "{}",
            events[0]
        );
        assert_eq!(events[1], whole);
        assert!(
            events[2].ends_with(&format!("\"props\":{{\"k\":1}}{other_end}")),
            "{}",
            events[2]
        );
        assert!(
            events[3].ends_with(&format!("\"props\":{{}}{other_end}")),
            "{}",
            events[3]
        );
        for event in &events {
            serde_json::from_str::<serde_json::Value>(event).expect("JSON");
        }
    }

    #[test]
    fn props_take_the_last_time_in_the_text_across_shared_parts() {
        let mut ids = MonotonicUuidV7::default();
        let other = "[{\"type\":\"page\",\"name\":\"$pageview\",\"anonymous_id\":\"a\"}]";
        let events = queued(
            &format!("[{SHARED},1767225600123,{{\"i\":0}},{{\"i\":1}},{other},{{\"i\":2}},1767225600124,{{\"i\":3}},{{\"i\":4}}]"),
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
        // An element that is not one of the shell's ends the time: the props after it are
        // not events until the next time.
        let after_odd = queued(
            &format!("[{SHARED},1767225600123,{{}},\"Infinity\",{{\"i\":6}},1e+21,{{}},null,{{}},1767225600123.5,{{}}]"),
            &mut ids,
        );
        assert_eq!(after_odd.len(), 1, "{after_odd:?}");
        // Each hand-over starts with no time: props before one are not events.
        assert_eq!(
            queued(&format!("[{SHARED},{{\"i\":5}}]"), &mut ids),
            alloc::vec::Vec::<String>::new()
        );
    }

    #[test]
    fn what_is_not_an_event_is_skipped_and_ids_keep_their_order() {
        let mut ids = MonotonicUuidV7::default();
        let none = alloc::vec::Vec::<String>::new();
        // Props before any shared parts would have no end.
        assert_eq!(queued("[1767225600123,{}]", &mut ids), none);
        // Not events, nor do they make the props after them events: empty shared parts (an
        // event ending in `,}`), `-1` before what is not an object, text cut short (inside
        // a string, an object, the array), a text that is not an array.
        for text in [
            "",
            "[]",
            "[,,]",
            "[[{}],1767225600123,{}]",
            "[[{\"type\":\"t\"}]]",
            &format!("[{SHARED},-1,null,{{}}]"),
            &format!("[{SHARED},1767225600123,{{\"q\":\"x"),
            &format!("[{SHARED},1767225600123,{{\"q\":1"),
            &format!("[{SHARED},1767225600123,{{\"q\":1}}"),
            "\"[[{\\\"type\\\":1}],1,{}]\"",
        ] {
            assert_eq!(queued(text, &mut ids), none, "{text}");
        }
        let burst = format!("[{SHARED},1767225600123{}]", ",{}".repeat(100));
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
        let odd = queued(
            &format!("[{SHARED},999999999999999999999999,{{}}]"),
            &mut ids,
        );
        assert!(odd[0].starts_with("{\"id\":\""));
    }

    #[test]
    fn any_text_is_read_without_a_panic_and_each_event_length_is_exact() {
        // Texts made of the characters the scanner looks at; `queued` checks each event's
        // length against its JSON.
        let alphabet = b"[]{},\"\\-019x:";
        let mut rng = SplitMix64::new(11);
        let mut ids = MonotonicUuidV7::default();
        let mut events = 0;
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 40) as usize;
            let mut text = String::from("[[{\"type\":\"t\"}],1,");
            for _ in 0..len {
                let pick = (rng.next_u64() % alphabet.len() as u64) as usize;
                text.push(char::from(alphabet[pick]));
            }
            events += queued(&text, &mut ids).len();
        }
        assert!(events > 100, "the texts made some events: {events}");
    }
}
