#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! The probe state machine in virtual time, with the default thresholds: a cron run every
//! minute runs the probe every 20 s, then decides. Each scenario prints its detection
//! delay, recovery delay and number of flips (`cargo test --test probe_simulations -- --nocapture`).

use serde_json::json;
use telltale_core::probes::{decide, validate_probe, Override, ProbeState, Sample};

const MINUTE: i64 = 60_000;
const CRON_MS: i64 = MINUTE;
const RUN_EVERY_MS: i64 = 20_000;

struct Outcome {
    flips: Vec<(i64, ProbeState)>,
}

impl Outcome {
    fn first(&self, state: ProbeState, after_ms: i64) -> Option<i64> {
        self.flips
            .iter()
            .find(|(t, s)| *s == state && *t >= after_ms)
            .map(|(t, _)| *t - after_ms)
    }
}

/// Runs `minutes` of virtual time; `healthy(t_ms, rng)` says whether a probe at t passes.
fn simulate(
    minutes: i64,
    start: ProbeState,
    mut healthy: impl FnMut(i64, &mut u64) -> bool,
) -> Outcome {
    let def =
        validate_probe(&json!({"key": "partner-api", "url": "https://partner.example/health"}))
            .unwrap();
    let mut samples: Vec<Sample> = Vec::new();
    let mut state = start;
    let mut flips = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for minute in 0..minutes {
        let cron_at = minute * CRON_MS;
        for k in 0..(CRON_MS / RUN_EVERY_MS) {
            let t = cron_at + k * RUN_EVERY_MS;
            samples.push(Sample {
                end_ms: t + 150,
                ok: healthy(t, &mut rng),
            });
        }
        let decided_at = cron_at + CRON_MS - RUN_EVERY_MS + 200;
        let verdict = decide(&def, state, Override::Auto, &samples, decided_at);
        if verdict.changed {
            flips.push((decided_at, verdict.state));
        }
        state = verdict.state;
    }
    Outcome { flips }
}

fn coin(rng: &mut u64) -> bool {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng % 2 == 0
}

fn report(name: &str, o: &Outcome, outage_start: Option<i64>, recovery_start: Option<i64>) {
    let down = outage_start.and_then(|t| o.first(ProbeState::Down, t));
    let up = recovery_start.and_then(|t| o.first(ProbeState::Up, t));
    println!(
        "{name:<44} flips {:>2}  detection {:>8}  recovery {:>8}",
        o.flips.len(),
        down.map_or("-".into(), |d| format!(
            "{:.1} min",
            d as f64 / MINUTE as f64
        )),
        up.map_or("-".into(), |d| format!(
            "{:.1} min",
            d as f64 / MINUTE as f64
        )),
    );
}

#[test]
fn full_outage_is_detected_within_the_disable_window_plus_one_cron_period() {
    let (start, end) = (30 * MINUTE, 60 * MINUTE);
    let o = simulate(100, ProbeState::Up, |t, _| !(start..end).contains(&t));
    report("full outage (30 min)", &o, Some(start), Some(end));
    let detection = o.first(ProbeState::Down, start).unwrap();
    assert!(
        detection <= 5 * MINUTE + CRON_MS,
        "detected after {detection} ms"
    );
    let recovery = o.first(ProbeState::Up, end).unwrap();
    assert!(
        recovery >= 10 * MINUTE,
        "recovery must wait for the longer window (took {recovery} ms)"
    );
    assert!(recovery <= 15 * MINUTE + CRON_MS);
    assert_eq!(o.flips.len(), 2);
}

#[test]
fn outage_that_starts_late_and_ends_early_in_a_minute() {
    let (start, end) = (30 * MINUTE + 50_000, 47 * MINUTE + 10_000);
    let o = simulate(100, ProbeState::Up, |t, _| !(start..end).contains(&t));
    report(
        "outage starting late, ending early (16 min)",
        &o,
        Some(start),
        Some(end),
    );
    assert!(o.first(ProbeState::Down, start).unwrap() <= 5 * MINUTE + CRON_MS);
    assert_eq!(o.flips.len(), 2);
}

#[test]
fn half_failures_while_up_stay_up() {
    let o = simulate(120, ProbeState::Up, |_, rng| coin(rng));
    report("50% random failures while up", &o, None, None);
    assert!(o.flips.is_empty(), "{:?}", o.flips);
}

#[test]
fn half_failures_while_down_stay_down() {
    let o = simulate(120, ProbeState::Down, |_, rng| coin(rng));
    report("50% random failures while down", &o, None, None);
    assert!(o.flips.is_empty(), "{:?}", o.flips);
}

#[test]
fn slow_recovery_flips_back_once() {
    let (start, recovering, healed) = (20 * MINUTE, 40 * MINUTE, 70 * MINUTE);
    let o = simulate(120, ProbeState::Up, |t, rng| {
        if t < start {
            true
        } else if t < recovering {
            false
        } else if t < healed {
            // The failure share falls linearly from 100% to 0 over 30 minutes.
            let fail_share = (healed - t) as f64 / (healed - recovering) as f64;
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            (*rng % 1000) as f64 / 1000.0 >= fail_share
        } else {
            true
        }
    });
    report(
        "slow recovery (30 min ramp)",
        &o,
        Some(start),
        Some(recovering),
    );
    assert_eq!(o.flips.len(), 2, "no flapping: {:?}", o.flips);
}

#[test]
fn a_one_minute_blip_changes_nothing() {
    let (start, end) = (30 * MINUTE, 31 * MINUTE);
    let o = simulate(60, ProbeState::Up, |t, _| !(start..end).contains(&t));
    report("one-minute blip", &o, Some(start), None);
    assert!(o.flips.is_empty());
}
