//! The client's in-memory event queue and batch assembly, kept pure so that batching by
//! size, byte budgets and requeueing after a failed send are tested on the host.
//!
//! Events are queued as JSON text, or as the parts their JSON is written from: the SDK
//! serializes a hand-over's props once, in one `JSON.stringify`, and a batch body is
//! plain string concatenation with exact byte sizes.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use crate::ids::push_uuid;

/// One event: its JSON (one line: `JSON.stringify` never writes a raw newline), or, as
/// the SDK's shell hands it over, places in the text of its hand-over (its time, props
/// and shared parts, which may be far apart), which the events of one hand-over
/// share: queueing such an event allocates and formats nothing (#13). The
/// queue gives each event its own JSON when the persisted copy is written (after the
/// task that tracked it), so a hand-over's text lives no longer than that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent(Form);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    Json(String),
    /// Byte ranges in `text`: the event's time, its props, and the shared parts that
    /// close its object after a comma (`"type":...}`); its id, made as it was queued.
    InText {
        text: Rc<String>,
        time: (usize, usize),
        props: (usize, usize),
        shared: (usize, usize),
        id: [u8; 16],
    },
}

/// `{"id":"` + 36 + `","ts":` + `,"props":` + `,`: what an event written from parts adds
/// to its time, props and shared parts.
const PARTS_OVERHEAD_BYTES: usize = 7 + 36 + 7 + 9 + 1;

impl QueuedEvent {
    /// An event that is already JSON.
    pub fn whole(json: String) -> Self {
        QueuedEvent(Form::Json(json))
    }

    /// An event in `text` (see `telltale_core::capture`): its time, props and shared
    /// parts.
    pub fn in_text(
        text: &Rc<String>,
        time: (usize, usize),
        props: (usize, usize),
        shared: (usize, usize),
        id: [u8; 16],
    ) -> Self {
        QueuedEvent(Form::InText {
            text: Rc::clone(text),
            time,
            props,
            shared,
            id,
        })
    }

    /// Bytes of its JSON.
    pub fn json_len(&self) -> usize {
        match &self.0 {
            Form::Json(json) => json.len(),
            Form::InText {
                time,
                props,
                shared,
                ..
            } => time.1 - time.0 + props.1 - props.0 + shared.1 - shared.0 + PARTS_OVERHEAD_BYTES,
        }
    }

    /// Appends its JSON to `out`.
    pub fn write_json(&self, out: &mut String) {
        match &self.0 {
            Form::Json(json) => out.push_str(json),
            Form::InText {
                text,
                time,
                props,
                shared,
                id,
            } => {
                let part = |(start, end): (usize, usize)| text.get(start..end).unwrap_or_default();
                out.push_str("{\"id\":\"");
                push_uuid(out, id);
                out.push_str("\",\"ts\":");
                out.push_str(part(*time));
                out.push_str(",\"props\":");
                out.push_str(part(*props));
                out.push(',');
                out.push_str(part(*shared));
            }
        }
    }

    /// Its JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.json_len());
        self.write_json(&mut out);
        out
    }

    /// Gives it its own JSON, letting go of its hand-over's text.
    pub fn own_json(&mut self) {
        if let Form::InText { .. } = self.0 {
            self.0 = Form::Json(self.to_json());
        }
    }
}

/// Bytes of a batch body besides the events themselves (`sent_at`, `batch_id`, ...).
pub const ENVELOPE_OVERHEAD_BYTES: usize = 128;

/// A bounded FIFO of serialized events. When full, the oldest event is evicted and
/// counted, so loss is reported instead of silent.
#[derive(Debug, Default)]
pub struct EventQueue {
    /// Oldest first, from `head`. A Vec rather than a VecDeque (less code in the SDK's
    /// wasm): a batch leaves the front in one `drain`, and evicted events stay below
    /// `head` until they are half the Vec, so that a full queue does not shift every event
    /// along on each push (which made each `track()` cost as much as the queue is long).
    pending: Vec<QueuedEvent>,
    head: usize,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    dropped: u64,
}

impl EventQueue {
    /// A queue of at most `capacity` events and `max_bytes` of serialized events.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        EventQueue {
            pending: Vec::new(),
            head: 0,
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Appends an event and returns the queue length. The oldest events are evicted (and
    /// counted) while the queue is over its count or byte budget.
    pub fn push(&mut self, event: QueuedEvent) -> usize {
        self.bytes += event.json_len();
        self.pending.push(event);
        // Checked here first: the SDK pushes every event it queues through this.
        if self.len() > self.capacity || self.bytes > self.max_bytes {
            self.evict_over_budget();
        }
        self.len()
    }

    fn evict_over_budget(&mut self) {
        let live = self.live();
        let mut evict = live.len().saturating_sub(self.capacity);
        let mut bytes = self.bytes;
        for old in &live[..evict] {
            bytes -= old.json_len();
        }
        while bytes > self.max_bytes && live.len() - evict > 1 {
            bytes -= live[evict].json_len();
            evict += 1;
        }
        if evict == 0 {
            return;
        }
        // Freed now (and with them any hand-over text only they still held), their slots
        // at the next compaction.
        for old in &mut self.pending[self.head..self.head + evict] {
            *old = QueuedEvent::whole(String::new());
        }
        self.head += evict;
        self.bytes = bytes;
        self.dropped += evict as u64;
        if self.head * 2 >= self.pending.len() {
            self.compact();
        }
    }

    /// Removes the evicted events (and frees their text once no event shares it).
    fn compact(&mut self) {
        self.pending.drain(..self.head);
        self.head = 0;
    }

    fn live(&self) -> &[QueuedEvent] {
        self.pending.get(self.head..).unwrap_or_default()
    }

    /// Serialized bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives every queued event its own JSON (see [`QueuedEvent::own_json`]).
    pub fn own_json(&mut self) {
        for event in &mut self.pending[self.head..] {
            event.own_json();
        }
    }

    /// Events waiting, oldest first (for persistence).
    pub fn iter(&self) -> impl Iterator<Item = &QueuedEvent> {
        self.live().iter()
    }

    pub fn len(&self) -> usize {
        self.pending.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events evicted and not yet reported to the collector.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A send that reported `reported` drops succeeded: those are no longer owed. Drops
    /// that happened while the send was in flight stay counted.
    pub fn acknowledge_dropped(&mut self, reported: u64) {
        self.dropped = self.dropped.saturating_sub(reported);
    }

    /// Takes the oldest events for one batch: at most `max_events`, and at most
    /// `max_bytes` of body. The first event is always taken so that one oversized event
    /// cannot block the queue (the server will reject it and say why).
    pub fn take_batch(&mut self, max_events: usize, max_bytes: usize) -> Vec<QueuedEvent> {
        self.compact();
        let mut count = 0;
        let mut bytes = ENVELOPE_OVERHEAD_BYTES;
        for next in &self.pending {
            let size = next.json_len() + 1;
            if count >= max_events || (count > 0 && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            self.bytes -= next.json_len();
            count += 1;
        }
        self.pending.drain(..count).collect()
    }

    /// Puts a batch whose send failed back at the front, in its original order.
    pub fn requeue_front(&mut self, batch: Vec<QueuedEvent>) {
        self.bytes += batch.iter().map(QueuedEvent::json_len).sum::<usize>();
        self.compact();
        self.pending.splice(..0, batch);
        self.evict_over_budget();
    }

    /// Forgets everything, keeping the room it had for the next events.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.head = 0;
        self.bytes = 0;
    }

    /// Removes and returns everything, oldest first (the tests read a queue's order with it).
    #[cfg(test)]
    pub fn drain_all(&mut self) -> Vec<QueuedEvent> {
        self.compact();
        self.bytes = 0;
        core::mem::take(&mut self.pending)
    }
}

/// The JSON body of `POST /v1/events` for already-serialized events.
pub fn batch_body(sent_at_ms: i64, batch_id: &str, dropped: u64, events: &[QueuedEvent]) -> String {
    let mut body = String::with_capacity(
        ENVELOPE_OVERHEAD_BYTES + events.iter().map(|e| e.json_len() + 1).sum::<usize>(),
    );
    body.push_str("{\"sent_at\":");
    push_decimal(&mut body, sent_at_ms.max(0).unsigned_abs());
    body.push_str(",\"batch_id\":\"");
    // Batch ids are UUIDs made by the SDK; anything else is dropped rather than escaped.
    if batch_id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        body.push_str(batch_id);
    }
    body.push('"');
    if dropped > 0 {
        body.push_str(",\"dropped\":");
        push_decimal(&mut body, dropped);
    }
    body.push_str(",\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        event.write_json(&mut body);
    }
    body.push_str("]}");
    body
}

/// Appends `n` in decimal (`to_string` would link the formatting machinery into the SDK).
pub fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize, size: usize) -> QueuedEvent {
        // About `size` + 8 bytes, as `{"n":"<size x>"}` would be.
        let prefix = format!("{{\"n\":{n},\"p\":\"");
        let pad = (size + 6).saturating_sub(prefix.len());
        QueuedEvent::whole(format!("{prefix}{}\"}}", "x".repeat(pad)))
    }

    fn n(e: &QueuedEvent) -> u64 {
        serde_json::from_str::<serde_json::Value>(&e.to_json()).unwrap()["n"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn writes_decimals() {
        for v in [0, 7, 10, 1_767_225_600_000, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn batches_by_count_and_bytes() {
        let mut q = EventQueue::new(100, 1 << 20);
        for i in 0..10 {
            q.push(ev(i, 100));
        }
        assert_eq!(q.take_batch(4, 1_000_000).len(), 4);
        let by_bytes = q.take_batch(100, ENVELOPE_OVERHEAD_BYTES + 2 * 110);
        assert_eq!(by_bytes.len(), 2);
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn a_cleared_queue_holds_nothing_and_keeps_its_budgets_and_drop_count() {
        let mut q = EventQueue::new(3, 1 << 20);
        for i in 0..5 {
            q.push(ev(i, 10));
        }
        assert_eq!(q.dropped(), 2);
        q.clear();
        assert_eq!((q.len(), q.bytes(), q.dropped()), (0, 0, 2));
        for i in 10..14 {
            q.push(ev(i, 10));
        }
        let kept: Vec<u64> = q.drain_all().iter().map(n).collect();
        assert_eq!(
            kept,
            [11, 12, 13],
            "the count budget still evicts the oldest"
        );
        assert_eq!(q.dropped(), 3);
    }

    #[test]
    fn oversized_event_still_moves() {
        let mut q = EventQueue::new(10, 1 << 20);
        q.push(ev(0, 10_000));
        assert_eq!(q.take_batch(10, 100).len(), 1);
    }

    #[test]
    fn requeue_keeps_order() {
        let mut q = EventQueue::new(10, 1 << 20);
        for i in 0..5 {
            q.push(ev(i, 1));
        }
        let batch = q.take_batch(3, 10_000);
        q.requeue_front(batch);
        let order: Vec<u64> = q.drain_all().iter().map(n).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn evicts_oldest_and_counts() {
        let mut q = EventQueue::new(3, 1 << 20);
        for i in 0..5 {
            q.push(ev(i, 1));
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(n(&q.take_batch(10, 10_000)[0]), 2);
        q.acknowledge_dropped(1);
        assert_eq!(q.dropped(), 1);
        q.acknowledge_dropped(5);
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn events_let_go_of_their_hand_over_when_evicted_or_given_their_own_json() {
        // A text laid out for the ranges alone: the shared parts' members (after a comma
        // here, which the range leaves out, as the event's JSON writes its own), then times
        // and props.
        let text = Rc::new(String::from(",\"name\":\"a\"}\n1{}\n2{}\n3{}"));
        let mut q = EventQueue::new(2, 1 << 20);
        for (start, end) in [(13, 16), (17, 20), (21, 24)] {
            q.push(QueuedEvent::in_text(
                &text,
                (start, start + 1),
                (start + 1, end),
                (1, 12),
                [7; 16],
            ));
        }
        // The first was evicted (capacity 2): its slot holds nothing of the text.
        assert_eq!(Rc::strong_count(&text), 3);
        let before: Vec<String> = q.iter().map(QueuedEvent::to_json).collect();
        assert!(
            before[0].ends_with("\",\"ts\":2,\"props\":{},\"name\":\"a\"}"),
            "{}",
            before[0]
        );
        assert_eq!(q.bytes(), before.iter().map(String::len).sum::<usize>());
        q.own_json();
        assert_eq!(
            Rc::strong_count(&text),
            1,
            "nothing holds the hand-over's text"
        );
        let after: Vec<String> = q.iter().map(QueuedEvent::to_json).collect();
        assert_eq!(after, before, "the same JSON, ids included");
        assert_eq!(q.bytes(), after.iter().map(String::len).sum::<usize>());
    }

    #[test]
    fn a_full_queue_evicts_one_by_one_without_keeping_slots() {
        let mut q = EventQueue::new(5, 1 << 20);
        for i in 0..1_000u64 {
            q.push(ev(i as usize, 1));
            let kept = (i + 1).min(5);
            assert_eq!(q.len() as u64, kept);
            assert_eq!(q.dropped(), i + 1 - kept);
            let oldest: Vec<u64> = q.iter().map(n).collect();
            assert_eq!(oldest, (i + 1 - kept..=i).collect::<Vec<_>>());
            assert_eq!(
                q.bytes(),
                q.iter().map(QueuedEvent::json_len).sum::<usize>(),
                "bytes count only the live events"
            );
            // Evicted slots are reclaimed once they are half the Vec: it never grows.
            assert!(q.pending.len() <= 10, "{} slots", q.pending.len());
        }
        // Every other operation sees only the live events, in order.
        let batch = q.take_batch(2, 1 << 20);
        assert_eq!(batch.iter().map(n).collect::<Vec<_>>(), [995, 996]);
        q.push(ev(1_000, 1));
        q.requeue_front(batch);
        assert_eq!(
            q.iter().map(n).collect::<Vec<_>>(),
            [996, 997, 998, 999, 1_000],
            "the requeued batch goes first and the oldest of it is evicted"
        );
        assert_eq!(
            q.drain_all().iter().map(n).collect::<Vec<_>>(),
            [996, 997, 998, 999, 1_000]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn evicts_oldest_over_the_byte_budget() {
        let mut q = EventQueue::new(1_000, 1_000);
        for i in 0..20 {
            q.push(ev(i, 100)); // about 110 bytes each
        }
        assert!(q.bytes() <= 1_000);
        assert_eq!(q.len() as u64 + q.dropped(), 20);
        assert_eq!(q.iter().next().map(n), Some(11));
        let batch = q.take_batch(3, 1 << 20);
        q.requeue_front(batch);
        assert!(q.bytes() <= 1_000);
        q.drain_all();
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn builds_a_parseable_body() {
        let events = [ev(0, 1), ev(1, 2)];
        let body = batch_body(1_767_225_600_000, "b-1", 3, &events);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["sent_at"], 1_767_225_600_000i64);
        assert_eq!(v["batch_id"], "b-1");
        assert_eq!(v["dropped"], 3);
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        assert!(
            body.len()
                <= ENVELOPE_OVERHEAD_BYTES + events.iter().map(|e| e.json_len() + 1).sum::<usize>()
        );
    }
}
