//! The SDK's sender as a pure state machine: which batch goes next, what a send's outcome
//! does to it, what is persisted, and what leaves with the page. The browser binding only
//! moves bytes (fetch, sendBeacon, localStorage) and passes the time in.
//!
//! One batch is *out* at a time (being sent, or waiting to be retried). It keeps its id and
//! events across retries, so the collector's dedup by event id makes delivery exactly-once.

use crate::delivery::{decimal, AfterSend};
use crate::queue::{batch_body, push_decimal, EventQueue, QueuedEvent};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The batch that is out.
#[derive(Debug, Clone, PartialEq)]
struct OutBatch {
    id: String,
    events: Vec<QueuedEvent>,
    /// Drops reported in this batch's body (acknowledged when it is delivered).
    dropped: u64,
    attempts: u32,
    retry_at: f64,
    sending: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// POST this body; then call [`Outbox::settle`].
    Send(String),
    /// The out batch waits for its retry time (ms since the epoch).
    WaitUntil(f64),
    /// A send is in flight.
    Busy,
    /// Nothing (or, for `only_full`, less than a full batch) to send.
    Idle,
}

/// Limits of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

#[derive(Debug)]
pub struct Outbox {
    queue: EventQueue,
    out: Option<OutBatch>,
    /// The body handed to `sendBeacon`, until the browser answers; and whether it was the
    /// out batch.
    beacon: Option<(OutBatch, bool)>,
}

/// First line of the persisted form; bump the number when the format changes.
const PERSIST_MAGIC: &str = "tq1";

/// A persisted outbox, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Persisted {
    /// When it was written: a queue untouched for long belongs to a tab that is gone.
    pub saved_at_ms: u64,
    /// The out batch (id and events), resent with the same id.
    pub out: Option<(String, Vec<QueuedEvent>)>,
    pub queued: Vec<QueuedEvent>,
}

impl Outbox {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Outbox {
            queue: EventQueue::new(capacity, max_bytes),
            out: None,
            beacon: None,
        }
    }

    /// Queues an event; returns how many are queued (the out batch aside).
    pub fn push(&mut self, event: QueuedEvent) -> usize {
        self.queue.push(event)
    }

    /// Events not yet delivered, the out batch included.
    pub fn len(&self) -> usize {
        self.queue.len() + self.out.as_ref().map_or(0, |b| b.events.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events evicted by the budget and not yet reported to the collector.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Forgets everything (opt-out).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.out = None;
    }

    /// Lets a waiting batch go at once (the browser came back online).
    pub fn retry_now(&mut self) {
        if let Some(b) = self.out.as_mut() {
            b.retry_at = 0.0;
        }
    }

    /// The next send. With `only_full`, a new batch starts only when a full one is queued
    /// (the queue reached `flushAt`); the timer sends the rest.
    pub fn next(
        &mut self,
        now_ms: f64,
        limits: BatchLimits,
        only_full: bool,
        new_id: impl FnOnce() -> String,
    ) -> Next {
        if let Some(b) = self.out.as_mut() {
            if b.sending {
                return Next::Busy;
            }
            if b.retry_at > now_ms {
                return Next::WaitUntil(b.retry_at);
            }
            b.sending = true;
            return Next::Send(batch_body(now_ms as i64, &b.id, b.dropped, &b.events));
        }
        if self.queue.is_empty() || (only_full && self.queue.len() < limits.max_events) {
            return Next::Idle;
        }
        let events = self.queue.take_batch(limits.max_events, limits.max_bytes);
        let dropped = self.queue.dropped();
        let id = new_id();
        let body = batch_body(now_ms as i64, &id, dropped, &events);
        self.out = Some(OutBatch {
            id,
            events,
            dropped,
            attempts: 0,
            retry_at: 0.0,
            sending: true,
        });
        Next::Send(body)
    }

    /// Applies the outcome of the send [`Outbox::next`] started (decided with attempt
    /// number [`Outbox::attempts`] + 1). Returns the events it settled: delivered or dropped.
    pub fn settle(&mut self, outcome: &AfterSend) -> usize {
        let Some(mut b) = self.out.take() else {
            return 0;
        };
        match outcome {
            AfterSend::Delivered => {
                self.queue.acknowledge_dropped(b.dropped);
                b.events.len()
            }
            AfterSend::Drop(_) => b.events.len(),
            AfterSend::RetryAt(at) => {
                b.retry_at = *at;
                b.attempts += 1;
                b.sending = false;
                self.out = Some(b);
                0
            }
        }
    }

    /// When the out batch that waits for a retry may go (`None`: none waits).
    pub fn retry_at(&self) -> Option<f64> {
        self.out.as_ref().filter(|b| !b.sending).map(|b| b.retry_at)
    }

    /// Failed attempts of the out batch so far (0 when none is out).
    pub fn attempts(&self) -> u32 {
        self.out.as_ref().map_or(0, |b| b.attempts)
    }

    /// On page hide, the next body for `sendBeacon` (at most `max_bytes`): the out batch
    /// if it waits for a retry (with its id), else the oldest queued events. A batch in
    /// flight is left alone: its fetch may still land, and the persisted copy covers it.
    /// Call [`Outbox::beacon_done`] with the browser's answer before asking again.
    pub fn next_beacon(
        &mut self,
        now_ms: f64,
        max_bytes: usize,
        new_id: impl FnOnce() -> String,
    ) -> Option<String> {
        if self.beacon.is_some() {
            return None;
        }
        let from_out = self.out.as_ref().is_some_and(|b| !b.sending);
        let batch = if from_out {
            self.out.take()?
        } else {
            let events = self.queue.take_batch(usize::MAX, max_bytes);
            if events.is_empty() {
                return None;
            }
            OutBatch {
                id: new_id(),
                events,
                dropped: self.queue.dropped(),
                attempts: 0,
                retry_at: 0.0,
                sending: false,
            }
        };
        let body = batch_body(now_ms as i64, &batch.id, batch.dropped, &batch.events);
        self.beacon = Some((batch, from_out));
        Some(body)
    }

    /// The browser took (`accepted`) or refused the body [`Outbox::next_beacon`] gave. A
    /// refused one goes back where it came from. Returns the events handed over.
    pub fn beacon_done(&mut self, accepted: bool) -> usize {
        let Some((batch, from_out)) = self.beacon.take() else {
            return 0;
        };
        if accepted {
            self.queue.acknowledge_dropped(batch.dropped);
            batch.events.len()
        } else {
            if from_out {
                self.out = Some(batch);
            } else {
                self.queue.requeue_front(batch.events);
            }
            0
        }
    }

    /// The persisted form (`None` when there is nothing to keep): a header line, then one
    /// event per line, the out batch's first. Every event gets its own JSON on the way
    /// (the shell persists after each task that tracked): written once, not on every
    /// persist, and no hand-over's text is kept for a few of its events.
    pub fn persist(&mut self, now_ms: f64) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        self.queue.own_json();
        for event in self.out.iter_mut().flat_map(|b| b.events.iter_mut()) {
            event.own_json();
        }
        let mut text = String::from(PERSIST_MAGIC);
        text.push(' ');
        push_decimal(&mut text, now_ms.max(0.0) as u64);
        text.push(' ');
        match &self.out {
            Some(b) => {
                push_decimal(&mut text, b.events.len() as u64);
                text.push(' ');
                text.push_str(&b.id);
            }
            None => text.push_str("0 -"),
        }
        let out_events = self.out.iter().flat_map(|b| b.events.iter());
        for event in out_events.chain(self.queue.iter()) {
            text.push('\n');
            event.write_json(&mut text);
        }
        Some(text)
    }

    /// Takes in a persisted outbox (this tab's after a reload, or an orphaned tab's): its
    /// out batch keeps its id unless one is already out here. Returns the events taken.
    pub fn adopt(&mut self, saved: Persisted) -> usize {
        let mut taken = saved.queued.len();
        if let Some((id, events)) = saved.out {
            taken += events.len();
            if self.out.is_none() {
                self.out = Some(OutBatch {
                    id,
                    events,
                    dropped: 0,
                    attempts: 0,
                    retry_at: 0.0,
                    sending: false,
                });
            } else {
                for e in events {
                    self.queue.push(e);
                }
            }
        }
        for e in saved.queued {
            self.queue.push(e);
        }
        taken
    }
}

/// The parts of `text` between the `separator` bytes (an ASCII character), as
/// `str::split` gives them: a byte loop, in a few bytes of wasm where `str::split`'s
/// searcher takes hundreds, in an SDK whose download has a budget.
fn split_on(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    core::iter::from_fn(move || {
        let rest = text.as_bytes().get(start..)?;
        let len = rest
            .iter()
            .position(|&byte| byte == separator)
            .unwrap_or(rest.len());
        let part = text.get(start..start + len);
        start += len + 1;
        part
    })
}

/// Parses [`Outbox::persist`]'s form; `None` for anything else (such as an older format).
pub fn parse_persisted(text: &str) -> Option<Persisted> {
    let mut lines = split_on(text, b'\n');
    let mut header = split_on(lines.next()?, b' ');
    if header.next()? != PERSIST_MAGIC {
        return None;
    }
    let saved_at_ms = decimal(header.next()?)?;
    let out_len = usize::try_from(decimal(header.next()?)?).ok()?;
    let out_id = header.next()?;
    let mut events: Vec<QueuedEvent> = lines
        .filter(|l| !l.is_empty())
        .map(|l| QueuedEvent::whole(l.to_string()))
        .collect();
    if out_len > events.len() {
        return None;
    }
    let queued = events.split_off(out_len);
    let out = (out_len > 0).then(|| (out_id.to_string(), events));
    Some(Persisted {
        saved_at_ms,
        out,
        queued,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_events: 2,
        max_bytes: 1 << 20,
    };

    #[test]
    fn split_on_gives_what_str_split_gives() {
        for text in [
            "",
            "\n",
            "a",
            "a\nb",
            "\na\n\nb\n",
            "tq1 1 2 id",
            "é\nü\n",
            "a  b ",
        ] {
            for separator in [b'\n', b' '] {
                let ours: Vec<&str> = split_on(text, separator).collect();
                let std: Vec<&str> = text.split(char::from(separator)).collect();
                assert_eq!(ours, std, "{text:?}");
            }
        }
    }

    fn ev(n: u32) -> QueuedEvent {
        QueuedEvent::whole(format!("{{\"n\":{n}}}"))
    }

    fn filled(n: u32) -> Outbox {
        let mut o = Outbox::new(100, 1 << 20);
        for i in 0..n {
            o.push(ev(i));
        }
        o
    }

    fn body(next: Next) -> serde_json::Value {
        match next {
            Next::Send(b) => serde_json::from_str(&b).unwrap(),
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn one_batch_out_at_a_time() {
        let mut o = filled(5);
        let first = body(o.next(0.0, LIMITS, false, || "b1".into()));
        assert_eq!(first["batch_id"], "b1");
        assert_eq!(first["events"].as_array().unwrap().len(), 2);
        assert_eq!(o.next(0.0, LIMITS, false, || "b2".into()), Next::Busy);
        assert_eq!(o.settle(&AfterSend::Delivered), 2);
        assert_eq!(o.len(), 3);
        assert_eq!(
            body(o.next(0.0, LIMITS, false, || "b2".into()))["batch_id"],
            "b2"
        );
    }

    #[test]
    fn a_retry_keeps_its_id_and_events_and_waits() {
        let mut o = filled(3);
        let first = body(o.next(0.0, LIMITS, false, || "b1".into()));
        assert_eq!(o.attempts(), 0);
        assert_eq!(o.settle(&AfterSend::RetryAt(500.0)), 0);
        assert_eq!(o.attempts(), 1);
        assert_eq!(o.retry_at(), Some(500.0));
        assert_eq!(o.len(), 3);
        assert_eq!(
            o.next(100.0, LIMITS, false, || "x".into()),
            Next::WaitUntil(500.0)
        );
        let again = body(o.next(500.0, LIMITS, false, || "x".into()));
        assert_eq!(again["batch_id"], "b1");
        assert_eq!(again["events"], first["events"]);
        o.settle(&AfterSend::RetryAt(9_000.0));
        assert_eq!(o.attempts(), 2);
        o.retry_now();
        assert_eq!(
            body(o.next(600.0, LIMITS, false, || "x".into()))["batch_id"],
            "b1"
        );
    }

    #[test]
    fn only_full_batches_when_asked() {
        let mut o = filled(1);
        assert_eq!(o.next(0.0, LIMITS, true, || "b".into()), Next::Idle);
        o.push(ev(1));
        assert!(matches!(
            o.next(0.0, LIMITS, true, || "b".into()),
            Next::Send(_)
        ));
    }

    #[test]
    fn a_dropped_batch_is_gone_and_reported_drops_are_acknowledged() {
        let mut o = Outbox::new(2, 1 << 20);
        for i in 0..4 {
            o.push(ev(i));
        }
        assert_eq!(o.dropped(), 2);
        assert_eq!(
            body(o.next(0.0, LIMITS, false, || "b".into()))["dropped"],
            2
        );
        o.push(ev(9)); // evicts nothing: the out batch is not in the queue
        assert_eq!(o.settle(&AfterSend::Drop(400)), 2);
        assert_eq!(o.dropped(), 2, "a refused batch did not report the drops");
        o.next(0.0, LIMITS, false, || "c".into());
        o.settle(&AfterSend::Delivered);
        assert_eq!(o.dropped(), 0);
        assert!(o.is_empty());
    }

    /// What the SDK's shell does on page hide: bodies until one is refused.
    fn drain(o: &mut Outbox, max_bytes: usize, mut accept: impl FnMut(&str) -> bool) -> usize {
        let mut handed = 0;
        let mut ids = 0;
        while let Some(body) = o.next_beacon(0.0, max_bytes, || {
            ids += 1;
            format!("p{ids}")
        }) {
            let accepted = accept(&body);
            handed += o.beacon_done(accepted);
            if !accepted {
                break;
            }
        }
        handed
    }

    #[test]
    fn page_hide_chunks_and_stops_at_a_refusal() {
        let mut o = filled(10);
        let mut bodies = Vec::new();
        let handed = drain(&mut o, crate::queue::ENVELOPE_OVERHEAD_BYTES + 3 * 9, |b| {
            bodies.push(b.to_string());
            bodies.len() < 3
        });
        assert_eq!(handed, 6);
        assert_eq!(bodies.len(), 3);
        assert_eq!(o.len(), 4, "the refused chunk is queued again");
        let first_n = |b: &str| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["events"][0]["n"].clone()
        };
        assert_eq!(first_n(&bodies[1]), 3);
        assert_eq!(first_n(&bodies[2]), 6);
        assert_eq!(o.persist(0.0).unwrap().lines().nth(1), Some("{\"n\":6}"));
    }

    #[test]
    fn page_hide_sends_a_waiting_retry_with_its_id_but_not_one_in_flight() {
        let mut o = filled(3);
        o.next(0.0, LIMITS, false, || "b1".into());
        let mut seen = Vec::new();
        drain(&mut o, 1 << 16, |b| {
            seen.push(b.to_string());
            true
        });
        assert_eq!(
            seen.len(),
            1,
            "only the queued event; the in-flight batch stays out"
        );
        assert_eq!(o.len(), 2);
        o.settle(&AfterSend::RetryAt(1e12));
        assert_eq!(drain(&mut o, 1 << 16, |_| false), 0);
        assert_eq!(
            o.retry_at(),
            Some(1e12),
            "a refused retry batch waits as before"
        );
        seen.clear();
        drain(&mut o, 1 << 16, |b| {
            seen.push(b.to_string());
            true
        });
        assert!(seen[0].contains("\"batch_id\":\"b1\""));
        assert!(o.is_empty());
    }

    #[test]
    fn persists_and_restores_with_the_out_batch() {
        let mut o = filled(5);
        assert_eq!(Outbox::new(1, 1).persist(0.0), None);
        o.next(0.0, LIMITS, false, || "b1".into());
        let text = o.persist(1_795_330_800_000.0).unwrap();
        assert!(text.starts_with("tq1 1795330800000 2 b1\n"));
        let saved = parse_persisted(&text).unwrap();
        assert_eq!(saved.saved_at_ms, 1_795_330_800_000);
        let mut restored = Outbox::new(100, 1 << 20);
        assert_eq!(restored.adopt(saved.clone()), 5);
        assert_eq!(restored.persist(1_795_330_800_000.0).unwrap(), text);
        // A second adoption (an orphaned tab's) goes behind, its out batch into the queue.
        assert_eq!(restored.adopt(saved), 5);
        assert_eq!(restored.len(), 10);
        let resent = body(restored.next(2_000.0, LIMITS, false, || "new".into()));
        assert_eq!(resent["batch_id"], "b1");
    }

    #[test]
    fn refuses_foreign_persisted_text() {
        for bad in ["", "{\"ts\":1}", "tq1 x 0 -", "tq1 1 5 b\n{}", "tq2 1 0 -"] {
            assert_eq!(parse_persisted(bad), None, "{bad}");
        }
        let empty = parse_persisted("tq1 5 0 -").unwrap();
        assert_eq!((empty.out, empty.queued.len()), (None, 0));
    }
}
