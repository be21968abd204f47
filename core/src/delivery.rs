//! Client delivery policy: what to do after a send, and who is sampled. Pure, so the
//! SDK's retry and sampling rules are tested on the host.

use crate::flags::hash::murmur3_32;

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
    /// Retrying cannot help (a 4xx other than 408/429): drop it, saying why.
    Drop(String),
}

/// Parses `Retry-After`: delay seconds, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn retry_after_ms(value: &str, now_ms: f64) -> Option<f64> {
    let v = value.trim();
    if let Ok(seconds) = v.parse::<f64>() {
        return (seconds >= 0.0).then_some(seconds * 1000.0);
    }
    // "Sun, 06 Nov 1994 08:49:37 GMT" -> "1994-11-06T08:49:37Z"
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[2])? + 1;
    let text = format!("{}-{month:02}-{:0>2}T{}Z", parts[3], parts[1], parts[4]);
    let at = crate::time::parse_rfc3339(&text)? as f64;
    Some((at - now_ms).max(0.0))
}

/// Decides after a send. `status` is `None` for a network error. `jitter` is a random
/// number in [0, 1) (passed in); `attempt` counts failures of this batch, from 1.
pub fn after_send(
    status: Option<u16>,
    retry_after: Option<&str>,
    attempt: u32,
    now_ms: f64,
    jitter: f64,
) -> AfterSend {
    let backoff = || {
        let exp = attempt.saturating_sub(1).min(16);
        let base = (BASE_BACKOFF_MS * f64::from(1u32 << exp)).min(MAX_BACKOFF_MS);
        // Equal jitter: half fixed, half random, so clients spread out but still wait.
        now_ms + base * (0.5 + jitter.clamp(0.0, 1.0) * 0.5)
    };
    match status {
        Some(s) if (200..300).contains(&s) => AfterSend::Delivered,
        Some(429 | 503) => match retry_after.and_then(|v| retry_after_ms(v, now_ms)) {
            Some(wait) => AfterSend::RetryAt(now_ms + wait.min(MAX_RETRY_AFTER_MS)),
            None => AfterSend::RetryAt(backoff()),
        },
        None | Some(408) => AfterSend::RetryAt(backoff()),
        Some(s) if s >= 500 => AfterSend::RetryAt(backoff()),
        Some(s) => AfterSend::Drop(format!("the collector refused the batch with {s}")),
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
        assert!(matches!(
            after_send(Some(400), None, 1, 0.0, 0.5),
            AfterSend::Drop(_)
        ));
        assert!(matches!(
            after_send(Some(413), None, 1, 0.0, 0.5),
            AfterSend::Drop(_)
        ));
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
            after_send(Some(429), Some("2"), 1, 1_000.0, 0.9),
            AfterSend::RetryAt(3_000.0)
        );
        assert_eq!(
            after_send(
                Some(503),
                Some("Thu, 01 Jan 1970 00:00:10 GMT"),
                1,
                4_000.0,
                0.9
            ),
            AfterSend::RetryAt(10_000.0)
        );
        assert_eq!(
            after_send(Some(429), Some("999999"), 1, 0.0, 0.9),
            AfterSend::RetryAt(MAX_RETRY_AFTER_MS)
        );
        assert_eq!(retry_after_ms("soon", 0.0), None);
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
