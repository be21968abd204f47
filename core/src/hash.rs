//! Deterministic bucketing for rollouts and splits.
//!
//! `bucket = murmur3_x86_32(input, seed 0) % 100_000`, where the input string is
//! `"{flag_key}/{salt}/{stickiness_value}"` (UTF-8; `salt` is empty unless the flag sets
//! one). 100,000 buckets give rollout percentages three decimals of precision. This is a
//! published contract: the test vectors pin actual bucket numbers, so it must never change.

/// The number of buckets.
pub const BUCKETS: u32 = 100_000;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3, x86 32-bit variant.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k ^= u32::from(*b) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    finish(h, data.len() as u32)
}

fn finish(mut h: u32, len: u32) -> u32 {
    h ^= len;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// [`murmur3_32`] of the concatenation of `parts`, without building it: a bucket is
/// decided on every flag evaluation, and this keeps that allocation-free. (The SDK's own
/// hashing keeps the block-wise loop above, which is smaller in its wasm.)
pub fn murmur3_32_of(parts: &[&[u8]], seed: u32) -> u32 {
    let scramble = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let (mut block, mut filled, mut len) = (0u32, 0u32, 0u32);
    for &byte in parts.iter().flat_map(|part| part.iter()) {
        block |= u32::from(byte) << (8 * filled);
        filled += 1;
        len = len.wrapping_add(1);
        if filled == 4 {
            h ^= scramble(block);
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
            (block, filled) = (0, 0);
        }
    }
    if filled > 0 {
        h ^= scramble(block);
    }
    finish(h, len)
}

/// The bucket (0..100,000) of one stickiness value for one flag.
pub fn bucket(flag_key: &str, salt: &str, stickiness_value: &str) -> u32 {
    let parts = [
        flag_key.as_bytes(),
        b"/",
        salt.as_bytes(),
        b"/",
        stickiness_value.as_bytes(),
    ];
    murmur3_32_of(&parts, 0) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_murmur3_values() {
        // Reference values of MurmurHash3_x86_32 (seed 0 unless noted).
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        assert_eq!(murmur3_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_32(b"abc", 0), 0xb3dd_93fa);
    }

    #[test]
    fn hashing_parts_is_hashing_their_concatenation() {
        let text = b"new-checkout/salt/user-42 and a longer tail";
        for a in 0..text.len() {
            for b in a..text.len() {
                let parts: [&[u8]; 3] = [&text[..a], &text[a..b], &text[b..]];
                assert_eq!(murmur3_32_of(&parts, 7), murmur3_32(text, 7), "{a} {b}");
            }
        }
    }

    #[test]
    fn thirty_percent_rollout_within_half_a_percent_over_100k_ids() {
        let inside = (0..100_000)
            .filter(|i| bucket("new-checkout", "", &format!("user-{i}")) < 30_000)
            .count();
        let share = inside as f64 / 100_000.0;
        assert!((share - 0.30).abs() <= 0.005, "share {share}");
    }

    #[test]
    fn salt_and_flag_key_change_the_bucket() {
        let a = bucket("f", "", "user-1");
        assert_ne!(a, bucket("g", "", "user-1"));
        assert_ne!(a, bucket("f", "s", "user-1"));
        assert_eq!(a, bucket("f", "", "user-1"));
    }
}
