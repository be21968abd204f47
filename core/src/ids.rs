//! Event and batch ids: UUIDv7 (RFC 9562), time-ordered, with randomness passed in.

use alloc::string::String;

const HEX_DIGITS: &str = "0123456789abcdef";

/// The last time a JS `Date` holds (ms since the epoch).
const LAST_JS_DATE_MS: u64 = 8_640_000_000_000_000;

/// Builds a UUIDv7 from a Unix time in milliseconds and 10 random bytes (the first two
/// give `rand_a`, the other eight `rand_b`).
pub fn uuid_v7(now_ms: u64, random: [u8; 10]) -> String {
    let [a0, a1, b @ ..] = random;
    let mut out = String::with_capacity(36);
    push_uuid(
        &mut out,
        &v7_bytes(now_ms, u16::from_be_bytes([a0, a1]), u64::from_be_bytes(b)),
    );
    out
}

/// A UUIDv7's 16 bytes, as two words: 48 bits of ms, the version (7), the low 12 bits of
/// `rand_a`; the variant (0b10), the low 62 bits of `rand_b`.
fn v7_bytes(now_ms: u64, rand_a: u16, rand_b: u64) -> [u8; 16] {
    let high = ((now_ms & 0xffff_ffff_ffff) << 16) | 0x7000 | u64::from(rand_a & 0x0fff);
    let low = (rand_b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut bytes = [0u8; 16];
    let (first, second) = bytes.split_at_mut(8);
    first.copy_from_slice(&high.to_be_bytes());
    second.copy_from_slice(&low.to_be_bytes());
    bytes
}

/// Appends a UUID's canonical text (8-4-4-4-12 lowercase hex).
pub fn push_uuid(out: &mut String, bytes: &[u8; 16]) {
    for (i, (start, end)) in [(0, 4), (4, 6), (6, 8), (8, 10), (10, 16)]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        push_hex(out, bytes.get(start..end).unwrap_or_default());
    }
}

/// Appends `bytes` as lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        // Digits as one-character strs: in the size-optimized wasm a `push` of a char (a
        // call that checks the capacity and encodes the char) per digit made writing the
        // persisted queue (every event's id, on every task that tracks) five times slower.
        for nibble in [usize::from(b >> 4), usize::from(b & 0x0f)] {
            out.push_str(HEX_DIGITS.get(nibble..=nibble).unwrap_or("0"));
        }
    }
}

/// Makes UUIDv7s that sort in creation order even within one millisecond (RFC 9562,
/// method 1: the 12 `rand_a` bits are a counter seeded randomly each new millisecond).
#[derive(Debug, Default, Clone)]
pub struct MonotonicUuidV7 {
    last_ms: u64,
    counter: u16,
}

impl MonotonicUuidV7 {
    /// The next id for `now_ms` (a clock that went backwards is treated as unchanged),
    /// with `random` as its random bits.
    pub fn next(&mut self, now_ms: u64, random: u64) -> String {
        let mut out = String::with_capacity(36);
        push_uuid(&mut out, &self.next_bytes(now_ms, random));
        out
    }

    /// The next id for `now_ms`, as its 16 bytes: the low 62 bits of `random` are its
    /// `rand_b`, and its top 11 seed the counter on a new millisecond (bits 53 to 61 are in
    /// both: the id still holds all 64 random bits). Two words put together, with one
    /// random word: the SDK makes one for every event it queues.
    pub fn next_bytes(&mut self, now_ms: u64, random: u64) -> [u8; 16] {
        // A time past the last JS date (a patched clock, digits the shell did not write) is
        // that date: borrowing the next millisecond below can then never overflow.
        let now_ms = now_ms.min(LAST_JS_DATE_MS);
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            // Seeded below half the range so a burst has room to count up.
            self.counter = (random >> 53) as u16;
        } else if self.counter >= 0x0fff {
            // Counter exhausted: borrow the next millisecond.
            self.last_ms += 1;
            self.counter = 0;
        } else {
            self.counter += 1;
        }
        v7_bytes(self.last_ms, self.counter, random)
    }
}

/// SplitMix64: the random part of event ids in the SDK, seeded once from
/// `crypto.getRandomValues`. Ids need uniqueness, not secrecy, and one seeded generator
/// keeps a Web Crypto call off every `track()`.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// True for the canonical 8-4-4-4-12 hex form of any UUID version.
pub fn is_uuid(text: &str) -> bool {
    let s = text.as_bytes();
    s.len() == 36
        && s.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_v7_layout() {
        let id = uuid_v7(0x0190_f3b2_7c4e, [0xff; 10]);
        assert_eq!(id, "0190f3b2-7c4e-7fff-bfff-ffffffffffff");
        assert!(is_uuid(&id));
    }

    #[test]
    fn orders_by_time() {
        let a = uuid_v7(1_000, [0xff; 10]);
        let b = uuid_v7(1_001, [0x00; 10]);
        assert!(a < b);
    }

    #[test]
    fn monotonic_within_a_millisecond() {
        let mut ids = MonotonicUuidV7::default();
        let mut previous = String::new();
        for i in 0..10_000u32 {
            let random = (u64::from(i % 251) << 56) | (u64::from(i % 13) << 48) | 9;
            let id = ids.next(1_700_000_000_000 + u64::from(i / 5_000), random);
            assert!(is_uuid(&id));
            assert_eq!(&id[14..15], "7");
            assert!(id > previous, "{id} after {previous}");
            previous = id;
        }
        // A clock step back keeps the order.
        let later = ids.next(1_600_000_000_000, 0);
        assert!(later > previous);
    }

    #[test]
    fn a_generated_id_is_a_v7_of_its_time_with_the_random_bits() {
        let mut ids = MonotonicUuidV7::default();
        let id = ids.next(0x0190_f3b2_7c4e, u64::MAX);
        // The counter: the random word's top 11 bits (0x7ff).
        assert_eq!(id, "0190f3b2-7c4e-77ff-bfff-ffffffffffff");
        let id = ids.next(0x0190_f3b2_7c4e, 0);
        assert_eq!(
            id, "0190f3b2-7c4e-7800-8000-000000000000",
            "the counter counts up"
        );
        // A time past 48 bits keeps its low 48; one past the last JS date is that date, so
        // that a burst there borrows milliseconds without overflowing (a patched clock).
        let id = ids.next(8_640_000_000_000_000, 0);
        assert!(is_uuid(&id) && id.starts_with("b208c2dc-0000-7"), "{id}");
        let mut previous = ids.next(u64::MAX, 0);
        for _ in 0..10_000 {
            let id = ids.next(u64::MAX, 0);
            assert!(id > previous, "{id} after {previous}");
            previous = id;
        }
    }

    #[test]
    fn seeded_ids_differ_by_seed_and_never_repeat() {
        // The published SplitMix64 reference output for seed 1234567.
        assert_eq!(
            SplitMix64::new(1_234_567).next_u64(),
            6_457_827_717_110_365_317
        );
        let mut seen = std::collections::HashSet::new();
        for seed in [1u64, 2] {
            let (mut rng, mut ids) = (SplitMix64::new(seed), MonotonicUuidV7::default());
            for i in 0..10_000 {
                // Bursts of one ms: ids differ in their counter and their random bits.
                assert!(seen.insert(ids.next_bytes(1_767_225_600_000 + i / 100, rng.next_u64())));
            }
        }
    }

    #[test]
    fn checks_format() {
        assert!(is_uuid("0190F3B2-7C4E-7A41-9C2D-3F5E8A1B2C3D"));
        assert!(!is_uuid("0190f3b2-7c4e-7a41-9c2d-3f5e8a1b2c3"));
        assert!(!is_uuid("0190f3b2x7c4e-7a41-9c2d-3f5e8a1b2c3d"));
        assert!(!is_uuid("0190f3b2-7c4e-7a41-9c2d-3f5e8a1b2c3g"));
    }
}
