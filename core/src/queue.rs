//! The client's in-memory event queue and batch assembly, kept pure so that batching by
//! size, byte budgets and requeueing after a failed send are tested on the host.
//!
//! Events are queued already serialized to JSON: the SDK pays serialization once, at
//! `track()` time, and a batch body is plain string concatenation with exact byte sizes.

use std::collections::VecDeque;

/// One serialized event, with its id kept for dedup and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub id: String,
    pub json: String,
}

/// Bytes of a batch body besides the events themselves (`sent_at`, `batch_id`, ...).
pub const ENVELOPE_OVERHEAD_BYTES: usize = 128;

/// A bounded FIFO of serialized events. When full, the oldest event is evicted and
/// counted, so loss is reported instead of silent.
#[derive(Debug, Default)]
pub struct EventQueue {
    pending: VecDeque<QueuedEvent>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    dropped: u64,
}

impl EventQueue {
    /// A queue of at most `capacity` events and `max_bytes` of serialized events.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        EventQueue {
            pending: VecDeque::new(),
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Appends an event and returns the queue length. The oldest events are evicted (and
    /// counted) while the queue is over its count or byte budget.
    pub fn push(&mut self, event: QueuedEvent) -> usize {
        self.bytes += event.json.len();
        self.pending.push_back(event);
        self.evict_over_budget();
        self.pending.len()
    }

    fn evict_over_budget(&mut self) {
        while self.pending.len() > self.capacity
            || (self.bytes > self.max_bytes && self.pending.len() > 1)
        {
            if let Some(old) = self.pending.pop_front() {
                self.bytes -= old.json.len();
                self.dropped += 1;
            }
        }
    }

    /// Serialized bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events waiting, oldest first (for persistence).
    pub fn iter(&self) -> impl Iterator<Item = &QueuedEvent> {
        self.pending.iter()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
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
        let mut batch = Vec::new();
        let mut bytes = ENVELOPE_OVERHEAD_BYTES;
        while let Some(next) = self.pending.front() {
            let size = next.json.len() + 1;
            if batch.len() >= max_events || (!batch.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            if let Some(event) = self.pending.pop_front() {
                self.bytes -= event.json.len();
                batch.push(event);
            }
        }
        batch
    }

    /// Puts a batch whose send failed back at the front, in its original order.
    pub fn requeue_front(&mut self, batch: Vec<QueuedEvent>) {
        for event in batch.into_iter().rev() {
            self.bytes += event.json.len();
            self.pending.push_front(event);
        }
        self.evict_over_budget();
    }

    /// Removes and returns everything, oldest first.
    pub fn drain_all(&mut self) -> Vec<QueuedEvent> {
        self.bytes = 0;
        self.pending.drain(..).collect()
    }
}

/// The JSON body of `POST /v1/events` for already-serialized events.
pub fn batch_body(sent_at_ms: i64, batch_id: &str, dropped: u64, events: &[QueuedEvent]) -> String {
    let mut body = String::with_capacity(
        ENVELOPE_OVERHEAD_BYTES + events.iter().map(|e| e.json.len() + 1).sum::<usize>(),
    );
    body.push_str("{\"sent_at\":");
    body.push_str(&sent_at_ms.to_string());
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
        body.push_str(&dropped.to_string());
    }
    body.push_str(",\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&event.json);
    }
    body.push_str("]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize, size: usize) -> QueuedEvent {
        QueuedEvent {
            id: n.to_string(),
            json: format!("{{\"n\":\"{}\"}}", "x".repeat(size)),
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
        let ids: Vec<String> = q.drain_all().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4"]);
    }

    #[test]
    fn evicts_oldest_and_counts() {
        let mut q = EventQueue::new(3, 1 << 20);
        for i in 0..5 {
            q.push(ev(i, 1));
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.take_batch(10, 10_000)[0].id, "2");
        q.acknowledge_dropped(1);
        assert_eq!(q.dropped(), 1);
        q.acknowledge_dropped(5);
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn evicts_oldest_over_the_byte_budget() {
        let mut q = EventQueue::new(1_000, 1_000);
        for i in 0..20 {
            q.push(ev(i, 100)); // about 110 bytes each
        }
        assert!(q.bytes() <= 1_000);
        assert_eq!(q.len() as u64 + q.dropped(), 20);
        assert_eq!(q.iter().next().map(|e| e.id.as_str()), Some("11"));
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
                <= ENVELOPE_OVERHEAD_BYTES + events.iter().map(|e| e.json.len() + 1).sum::<usize>()
        );
    }
}
