//! Client delivery policy: what to do after a send, and who is sampled. Pure, so the
//! SDK's retry and sampling rules are tested on the host.

use crate::hash::murmur3_32;
use alloc::string::String;

/// First retry delay; it doubles per attempt up to [`MAX_BACKOFF_MS`].
pub const BASE_BACKOFF_MS: f64 = 1_000.0;
pub const MAX_BACKOFF_MS: f64 = 60_000.0;
/// The longest `Retry-After` honoured (a misconfigured server must not stall a client).
pub const MAX_RETRY_AFTER_MS: f64 = 3_600_000.0;

#[derive(Debug, Clone, PartialEq)]
pub enum AfterSend {
    Delivered,
    /// Try the same batch (same id, same events) again at this time.
    RetryAt(f64),
    /// Retrying cannot help: the collector refused the batch with this status (a 4xx
    /// other than 408/429). Drop it and say why.
    Drop(u16),
}

/// A non-negative decimal integer of at most 15 digits (no sign, no spaces): enough for
/// millisecond timestamps, and never an overflow.
pub(crate) fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 15 {
        return None;
    }
    text.bytes().try_fold(0u64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

/// Exponential backoff before jitter: [`BASE_BACKOFF_MS`] after the first failure,
/// doubling per failure, at most `max_ms`.
pub fn backoff_ms(failures: u32, max_ms: f64) -> f64 {
    let exp = failures.saturating_sub(1).min(16);
    (BASE_BACKOFF_MS * f64::from(1u32 << exp)).min(max_ms)
}

/// Decides after a send. `status` is `None` for a network error. `retry_after_ms` is the
/// wait the answer's `Retry-After` asks for (the SDK's shell reads the header: delay
/// seconds, or an HTTP date, which the browser's own date parser reads); NaN counts as
/// none, and the wait is at least the backoff. `jitter` is a random number in [0, 1)
/// (passed in); `attempt` counts failures of this batch, from 1.
pub fn after_send(
    status: Option<u16>,
    retry_after_ms: Option<f64>,
    attempt: u32,
    now_ms: f64,
    jitter: f64,
) -> AfterSend {
    let backoff = || {
        // Equal jitter: half fixed, half random, so clients spread out but still wait.
        now_ms + backoff_ms(attempt, MAX_BACKOFF_MS) * (0.5 + jitter.clamp(0.0, 1.0) * 0.5)
    };
    match status {
        Some(s) if (200..300).contains(&s) => AfterSend::Delivered,
        // Never sooner than the backoff: `Retry-After: 0`, or a date the client's clock has
        // passed, would otherwise retry at once, again and again, against a server that
        // is already refusing. NaN (unreadable) fails the filter: the backoff alone.
        Some(429 | 503) => {
            let asked = retry_after_ms.filter(|wait| *wait >= 0.0).unwrap_or(0.0);
            AfterSend::RetryAt(backoff().max(now_ms + asked.min(MAX_RETRY_AFTER_MS)))
        }
        None | Some(408) => AfterSend::RetryAt(backoff()),
        Some(s) if s >= 500 => AfterSend::RetryAt(backoff()),
        Some(s) => AfterSend::Drop(s),
    }
}

/// Whether an anonymous id is in the sample: decided per id, so sessions stay whole.
pub fn sampled(anonymous_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let mut input = String::from("telltale-sample/");
    input.push_str(anonymous_id);
    f64::from(murmur3_32(input.as_bytes(), 0) % 10_000) < rate * 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_outcomes() {
        assert_eq!(
            after_send(Some(202), None, 1, 0.0, 0.5),
            AfterSend::Delivered
        );
        assert_eq!(
            after_send(Some(400), None, 1, 0.0, 0.5),
            AfterSend::Drop(400)
        );
        assert_eq!(
            after_send(Some(413), None, 1, 0.0, 0.5),
            AfterSend::Drop(413)
        );
        for s in [None, Some(408), Some(500), Some(502), Some(429), Some(503)] {
            assert!(
                matches!(after_send(s, None, 1, 0.0, 0.5), AfterSend::RetryAt(_)),
                "{s:?}"
            );
        }
    }

    #[test]
    fn honours_retry_after() {
        assert_eq!(
            after_send(Some(429), Some(2_000.0), 1, 1_000.0, 0.9),
            AfterSend::RetryAt(3_000.0)
        );
        assert_eq!(
            after_send(Some(429), Some(999_999_000.0), 1, 0.0, 0.9),
            AfterSend::RetryAt(MAX_RETRY_AFTER_MS)
        );
        // Zero, a date already past (negative), unreadable (NaN) or none: the usual
        // backoff (500..1,000 ms at attempt 1), never at once.
        for wait in [Some(0.0), Some(-5_000.0), None, Some(f64::NAN)] {
            assert_eq!(
                after_send(Some(503), wait, 1, 4_000.0, 1.0),
                AfterSend::RetryAt(5_000.0),
                "{wait:?}"
            );
        }
        // Shorter than the backoff at a later attempt: the backoff.
        assert_eq!(
            after_send(Some(429), Some(1_000.0), 3, 0.0, 1.0),
            AfterSend::RetryAt(4_000.0)
        );
        assert_eq!(
            after_send(Some(500), Some(30_000.0), 1, 0.0, 1.0),
            AfterSend::RetryAt(1_000.0),
            "Retry-After is read on 429 and 503 only"
        );
    }

    #[test]
    fn backs_off_exponentially_with_jitter_and_a_cap() {
        let at = |attempt, jitter| match after_send(None, None, attempt, 0.0, jitter) {
            AfterSend::RetryAt(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!((at(1, 0.0), at(1, 1.0)), (500.0, 1_000.0));
        assert_eq!(at(3, 1.0), 4_000.0);
        assert_eq!(at(30, 1.0), MAX_BACKOFF_MS);
        assert!(at(2, 0.3) > at(1, 0.3));
    }

    #[test]
    fn samples_by_id_near_the_rate() {
        let kept = (0..10_000)
            .filter(|i| sampled(&format!("anon-{i}"), 0.5))
            .count();
        assert!((4_800..=5_200).contains(&kept), "{kept}");
        assert!(sampled("x", 1.0) && !sampled("x", 0.0));
        assert_eq!(sampled("anon-7", 0.5), sampled("anon-7", 0.5));
    }
}
