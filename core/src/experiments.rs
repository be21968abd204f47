//! The statistics of experiments (#16): whether a variant beat control, by how much, and
//! whether the assignment itself can be trusted. Pure functions of per-variant totals, so
//! the collector computes results from D1 aggregates and tests check them against values
//! SciPy computes independently (`tests/spec/experiments/vectors.json`, made by
//! `make_vectors.py`).
//!
//! - conversion metrics: a two-proportion z-test (pooled), and the Bayesian probability of
//!   beating control with uniform priors (Beta(1 + conversions, 1 + failures));
//! - count, sum and mean metrics: Welch's t-test, and a normal approximation of the
//!   probability of beating control;
//! - for both, the relative lift against control with a 95% interval (delta method);
//! - the sample ratio mismatch check: a chi-square test of exposed users against the split
//!   weights.
//!
//! The special functions (log-gamma, the regularized incomplete gamma and beta functions)
//! are the classical series and continued fractions, accurate to about 1e-13 relative.

/// The 97.5th percentile of the standard normal: a 95% two-sided interval is ±this.
pub const Z_95: f64 = 1.959_963_984_540_054;
/// A sample ratio mismatch is flagged below this p-value.
pub const SRM_P_VALUE: f64 = 0.001;

const EPS: f64 = 1e-15;
const TINY: f64 = 1e-300;
const MAX_ITERATIONS: usize = 100_000;

/// ln Γ(x) for x > 0: Stirling's series from x ≥ 10, after shifting smaller arguments up
/// with Γ(x + 1) = x Γ(x) (accurate to about 1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    let mut x = x;
    let mut shift = 0.0;
    while x < 10.0 {
        shift += x.ln();
        x += 1.0;
    }
    // Bernoulli terms B_2n / (2n (2n − 1) x^(2n − 1)).
    const TERMS: [f64; 7] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
        1.0 / 156.0,
    ];
    let inverse_square = 1.0 / (x * x);
    let mut power = 1.0 / x;
    let mut series = 0.0;
    for term in TERMS {
        series += term * power;
        power *= inverse_square;
    }
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * core::f64::consts::PI).ln() + series - shift
}

/// A Lentz denominator kept away from zero.
fn not_tiny(v: f64) -> f64 {
    if v.abs() < TINY {
        TINY
    } else {
        v
    }
}

/// ln B(a, b).
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // P(a, x) by its series.
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..MAX_ITERATIONS {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        1.0 - sum * front
    } else {
        // Q(a, x) by its continued fraction (modified Lentz).
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_ITERATIONS {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = not_tiny(an * d + b);
            c = not_tiny(b + an / c);
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < EPS {
                break;
            }
        }
        front * h
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / not_tiny(1.0 - qab * x / qap);
    let mut h = d;
    // One Lentz step for the coefficient `aa`: the factor it multiplies `h` by.
    let mut step = |aa: f64| {
        d = 1.0 / not_tiny(1.0 + aa * d);
        c = not_tiny(1.0 + aa / c);
        d * c
    };
    for m in 1..MAX_ITERATIONS {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)));
        let delta = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)));
        h *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b).
pub fn beta_i(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * (1.0 - x).ln() - ln_beta(a, b)).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// Φ(x), the standard normal distribution function (its tails kept to full precision).
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let half_tail = 0.5 * gamma_q(0.5, x * x / 2.0);
    if x < 0.0 {
        half_tail
    } else {
        1.0 - half_tail
    }
}

/// P(T > t) for Student's t with `df` degrees of freedom (any positive real).
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * beta_i(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// P(X > x) for chi-square with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    gamma_q(df / 2.0, x / 2.0)
}

/// Per-variant totals of a metric over exposed users: how many users, the sum of their
/// values and the sum of squares (a conversion is a value of 0 or 1 per user).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    pub users: u64,
    pub sum: f64,
    pub sum_of_squares: f64,
}

impl Totals {
    pub fn mean(&self) -> f64 {
        if self.users == 0 {
            0.0
        } else {
            self.sum / self.users as f64
        }
    }

    /// The sample variance (n − 1 in the denominator); 0 with fewer than two users.
    pub fn variance(&self) -> f64 {
        if self.users < 2 {
            return 0.0;
        }
        let n = self.users as f64;
        ((self.sum_of_squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }

    /// Totals of a conversion metric: `conversions` of `users` converted.
    pub fn conversions(users: u64, conversions: u64) -> Totals {
        let c = conversions.min(users) as f64;
        Totals {
            users,
            sum: c,
            sum_of_squares: c,
        }
    }
}

/// A variant against control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Relative lift of the treatment's mean over control's (0.1 = 10% better).
    pub lift: f64,
    /// Its 95% interval (delta method).
    pub lift_low: f64,
    pub lift_high: f64,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
    /// The probability that the treatment's true mean is above control's.
    pub probability_to_beat: f64,
    /// The test statistic (z or Welch's t) and, for Welch, its degrees of freedom.
    pub statistic: f64,
    pub degrees_of_freedom: Option<f64>,
}

/// Why two variants cannot be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareError {
    /// A variant has too few exposed users (two or more are needed).
    TooFewUsers,
    /// Control's mean is 0, so a relative lift is undefined.
    ZeroControlMean,
    /// Both variants have no variance: no test can tell them apart.
    NoVariance,
}

/// The relative lift of `t` over `c` with its 95% interval: lift = (mean_t − mean_c) /
/// |mean_c| (so a better treatment is a positive lift even when means are negative),
/// var ≈ var_t/(n_t m_c²) + (m_t/m_c)² var_c/(n_c m_c²) (the delta method).
fn relative_lift(c: &Totals, t: &Totals) -> Result<(f64, f64, f64), CompareError> {
    let (mc, mt) = (c.mean(), t.mean());
    if mc == 0.0 {
        return Err(CompareError::ZeroControlMean);
    }
    let lift = (mt - mc) / mc.abs();
    // Standard errors relative to |m_c| first: squaring m_c itself underflows near 1e-160.
    let se_t = (t.variance() / t.users as f64).sqrt() / mc.abs();
    let se_c = (mt / mc) * (c.variance() / c.users as f64).sqrt() / mc.abs();
    let var = se_t * se_t + se_c * se_c;
    let half = Z_95 * var.sqrt();
    Ok((lift, lift - half, lift + half))
}

/// A conversion metric: the two-proportion z-test (pooled variance) and the Bayesian
/// probability of beating control with Beta(1, 1) priors.
pub fn compare_conversion(
    control: (u64, u64),
    treatment: (u64, u64),
) -> Result<Comparison, CompareError> {
    let (c, t) = (
        Totals::conversions(control.0, control.1),
        Totals::conversions(treatment.0, treatment.1),
    );
    if c.users < 2 || t.users < 2 {
        return Err(CompareError::TooFewUsers);
    }
    let (nc, nt) = (c.users as f64, t.users as f64);
    let pooled = (c.sum + t.sum) / (nc + nt);
    let se = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt)).sqrt();
    if se == 0.0 {
        return Err(CompareError::NoVariance);
    }
    let z = (t.mean() - c.mean()) / se;
    let (lift, lift_low, lift_high) = relative_lift(&c, &t)?;
    Ok(Comparison {
        lift,
        lift_low,
        lift_high,
        p_value: (2.0 * normal_cdf(-z.abs())).min(1.0),
        probability_to_beat: if t.sum < MAX_EXACT_TERMS {
            beta_beats(
                (1.0 + c.sum, 1.0 + nc - c.sum),
                (t.sum as u64 + 1, 1.0 + nt - t.sum),
            )
        } else {
            beta_beats_normal(
                (1.0 + c.sum, 1.0 + nc - c.sum),
                (1.0 + t.sum, 1.0 + nt - t.sum),
            )
        },
        statistic: z,
        degrees_of_freedom: None,
    })
}

/// Above this many treatment conversions the exact sum (one term each) gives way to the
/// normal approximation of both posteriors, which is then accurate to far below the
/// figures shown: a results request stays within a Worker's CPU budget.
const MAX_EXACT_TERMS: f64 = 20_000.0;

/// P(X_t > X_c) with each Beta posterior replaced by the normal of its mean and variance.
fn beta_beats_normal(control: (f64, f64), treatment: (f64, f64)) -> f64 {
    let moments = |(a, b): (f64, f64)| (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
    let ((mc, vc), (mt, vt)) = (moments(control), moments(treatment));
    normal_cdf((mt - mc) / (vc + vt).sqrt())
}

/// P(X_t > X_c) for X_c ~ Beta(a_c, b_c) and X_t ~ Beta(a_t, b_t) with a whole a_t: the
/// exact finite sum (one term per success of the treatment).
fn beta_beats(control: (f64, f64), treatment: (u64, f64)) -> f64 {
    let (ac, bc) = control;
    let (at, bt) = treatment;
    let base = ln_beta(ac, bc);
    let mut total = 0.0;
    for i in 0..at {
        let i = i as f64;
        total += (ln_beta(ac + i, bc + bt) - (bt + i).ln() - ln_beta(1.0 + i, bt) - base).exp();
    }
    total.clamp(0.0, 1.0)
}

/// A count, sum or mean metric: Welch's t-test and a normal approximation of the
/// probability of beating control.
pub fn compare_means(control: &Totals, treatment: &Totals) -> Result<Comparison, CompareError> {
    if control.users < 2 || treatment.users < 2 {
        return Err(CompareError::TooFewUsers);
    }
    let (nc, nt) = (control.users as f64, treatment.users as f64);
    let (vc, vt) = (control.variance() / nc, treatment.variance() / nt);
    let se = (vc + vt).sqrt();
    if se == 0.0 {
        return Err(CompareError::NoVariance);
    }
    let difference = treatment.mean() - control.mean();
    let t = difference / se;
    let df = (vc + vt).powi(2) / (vc * vc / (nc - 1.0) + vt * vt / (nt - 1.0));
    let (lift, lift_low, lift_high) = relative_lift(control, treatment)?;
    Ok(Comparison {
        lift,
        lift_low,
        lift_high,
        p_value: (2.0 * student_t_sf(t.abs(), df)).min(1.0),
        probability_to_beat: normal_cdf(difference / se),
        statistic: t,
        degrees_of_freedom: Some(df),
    })
}

/// The mixture's scale for sequential tests, relative to control's mean: the normal
/// mixture N(0, τ²) over the true difference puts its weight on effects around 10% of
/// control (τ = 0.1 × |control mean|), the size product experiments look for. A smaller τ
/// tests small effects sooner and large ones later; any τ keeps the guarantee.
pub const MSPRT_RELATIVE_TAU: f64 = 0.1;

/// An always-valid test of "no difference" (mixture sequential probability ratio test,
/// normal mixture: Robbins 1970, as used by Johari, Pekelis and Walsh 2017): the p-value
/// and the confidence sequence stay valid however often and whenever the results are
/// looked at, so watching them daily does not inflate false positives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequential {
    /// Always-valid p-value (1/Λ, capped at 1), from the data as they stand.
    pub p_value: f64,
    /// The difference of means (treatment − control) and its always-valid 95% interval.
    pub difference: f64,
    pub difference_low: f64,
    pub difference_high: f64,
    /// The mixture's standard deviation used.
    pub tau: f64,
}

/// The mSPRT of treatment against control at level `alpha` (0.05 for 95%), from the
/// per-arm totals (conversions as 0/1 values): with θ̂ the difference of means and V its
/// variance (Welch), Λ = √(V/(V+τ²)) · exp(θ̂²τ² / (2V(V+τ²))), p = min(1, 1/Λ), and the
/// interval θ̂ ± √(V(V+τ²)/τ² · (2 ln(1/α) + ln((V+τ²)/V))).
pub fn sequential(
    control: &Totals,
    treatment: &Totals,
    alpha: f64,
) -> Result<Sequential, CompareError> {
    if control.users < 2 || treatment.users < 2 {
        return Err(CompareError::TooFewUsers);
    }
    let mean_c = control.mean();
    if mean_c == 0.0 {
        return Err(CompareError::ZeroControlMean);
    }
    let v =
        control.variance() / control.users as f64 + treatment.variance() / treatment.users as f64;
    if v == 0.0 {
        return Err(CompareError::NoVariance);
    }
    let tau = MSPRT_RELATIVE_TAU * mean_c.abs();
    let t2 = tau * tau;
    let difference = treatment.mean() - mean_c;
    // In logs: Λ overflows long before the p-value stops being meaningful.
    let ln_lambda = 0.5 * (v / (v + t2)).ln() + difference * difference * t2 / (2.0 * v * (v + t2));
    let half = (v * (v + t2) / t2 * (2.0 * (1.0 / alpha).ln() + ((v + t2) / v).ln())).sqrt();
    Ok(Sequential {
        p_value: (-ln_lambda.max(0.0)).exp(),
        difference,
        difference_low: difference - half,
        difference_high: difference + half,
        tau,
    })
}

/// The sample ratio mismatch test: chi-square of exposed users per variant against the
/// split's weights. Returns (statistic, p-value); a p-value under [`SRM_P_VALUE`] says the
/// assignment or the exposure logging is broken and the results should not be trusted.
pub fn sample_ratio_mismatch(observed: &[u64], weights: &[f64]) -> Option<(f64, f64)> {
    let total: f64 = observed.iter().map(|n| *n as f64).sum();
    let weight: f64 = weights.iter().sum();
    if observed.len() != weights.len()
        || observed.len() < 2
        || total == 0.0
        || weight <= 0.0
        || weights.iter().any(|w| *w <= 0.0)
    {
        return None;
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            let expected = total * w / weight;
            (*o as f64 - expected).powi(2) / expected
        })
        .sum();
    Some((chi2, chi2_sf(chi2, (observed.len() - 1) as f64)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../tests/spec/experiments/vectors.json")).unwrap()
    }

    fn cases(name: &str) -> Vec<Value> {
        vectors()["cases"][name].as_array().unwrap().clone()
    }

    fn f(v: &Value) -> f64 {
        v.as_f64().unwrap()
    }

    /// Equal to `tolerance` relative, or absolutely for values near 0.
    fn close(ours: f64, scipy: f64, tolerance: f64, what: &str) {
        let scale = scipy.abs().max(1e-300);
        assert!(
            (ours - scipy).abs() <= tolerance * scale || (ours - scipy).abs() < 1e-15,
            "{what}: ours {ours:e}, SciPy {scipy:e}"
        );
    }

    #[test]
    fn log_gamma_matches_known_values() {
        close(ln_gamma(1.0), 0.0, 1e-14, "lnΓ(1)");
        close(
            ln_gamma(0.5),
            core::f64::consts::PI.sqrt().ln(),
            1e-13,
            "lnΓ(1/2)",
        );
        close(ln_gamma(10.0), 362_880f64.ln(), 1e-13, "lnΓ(10)");
        close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-13, "lnΓ(0.1)");
    }

    #[test]
    fn distribution_tails_match_scipy() {
        for c in cases("normal_cdf") {
            close(
                normal_cdf(f(&c["x"])),
                f(&c["cdf"]),
                1e-11,
                &format!("Φ({})", c["x"]),
            );
        }
        for c in cases("student_t_sf") {
            let (t, df) = (f(&c["t"]), f(&c["df"]));
            close(
                student_t_sf(t, df),
                f(&c["sf"]),
                1e-10,
                &format!("t sf({t}, {df})"),
            );
        }
        for c in cases("chi2_sf") {
            let (x, df) = (f(&c["x"]), f(&c["df"]));
            close(
                chi2_sf(x, df),
                f(&c["sf"]),
                1e-11,
                &format!("χ² sf({x}, {df})"),
            );
        }
    }

    #[test]
    fn welch_matches_scipy() {
        for c in cases("welch") {
            let totals = |side: &Value| {
                let (m, sd, n) = (
                    f(&side["mean"]),
                    f(&side["sd"]),
                    side["n"].as_u64().unwrap(),
                );
                let nf = n as f64;
                Totals {
                    users: n,
                    sum: m * nf,
                    sum_of_squares: sd * sd * (nf - 1.0) + m * m * nf,
                }
            };
            let r = compare_means(&totals(&c["control"]), &totals(&c["treatment"])).unwrap();
            close(r.statistic, f(&c["t"]), 1e-9, "Welch t");
            close(r.p_value, f(&c["p_value"]), 1e-8, "Welch p");
        }
    }

    #[test]
    fn two_proportions_match_scipy() {
        for c in cases("two_proportion") {
            let side = |s: &Value| (s["n"].as_u64().unwrap(), s["conversions"].as_u64().unwrap());
            let r = compare_conversion(side(&c["control"]), side(&c["treatment"])).unwrap();
            close(r.statistic, f(&c["z"]), 1e-12, "z");
            close(r.p_value, f(&c["p_value"]), 1e-10, "z-test p");
        }
    }

    #[test]
    fn sequential_matches_the_formula_by_hand() {
        // Control mean 10 (τ = 1), both variances chosen so that V = 1: θ̂ = 2 gives
        // ln Λ = ½ ln ½ + 4/4 and the interval 2 ± √(2 · (2 ln 20 + ln 2)).
        // 101 users with sample variance 50.5 per arm: V = 50.5/101 · 2 = 1.
        let arm = |mean: f64| Totals {
            users: 101,
            sum: mean * 101.0,
            sum_of_squares: mean * mean * 101.0 + 50.5 * 100.0,
        };
        let (c, t) = (arm(10.0), arm(12.0));
        let v = c.variance() / 101.0 + t.variance() / 101.0;
        assert!((v - 1.0).abs() < 1e-12, "V = {v}");
        let s = sequential(&c, &t, 0.05).unwrap();
        let ln_lambda = 0.5 * 0.5f64.ln() + 1.0;
        assert!((s.p_value - (-ln_lambda).exp()).abs() < 1e-12);
        let half = (2.0 * (2.0 * 20f64.ln() + 2f64.ln())).sqrt();
        assert!((s.difference_high - (2.0 + half)).abs() < 1e-12);
        assert!((s.difference_low - (2.0 - half)).abs() < 1e-12);
        assert_eq!(s.tau, 1.0);
    }

    /// Simulated A/A tests looked at daily for 20 days: the fixed-horizon z-test, peeked
    /// at, declares a difference far more often than its 5%; the always-valid p-value
    /// stays under 5%. An A/B test with a real 20% lift is still found by most runs.
    #[test]
    fn sequential_p_values_survive_daily_peeking() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (runs, days, per_day) = (400, 20, 500u64);
        let mut run = |rate_t: f64| {
            let (mut fixed, mut always) = (0, 0);
            for _ in 0..runs {
                let (mut c, mut t) = ((0u64, 0u64), (0u64, 0u64));
                let (mut fixed_hit, mut always_hit) = (false, false);
                for _ in 0..days {
                    c.0 += per_day;
                    t.0 += per_day;
                    c.1 += (0..per_day).filter(|_| uniform() < 0.1).count() as u64;
                    t.1 += (0..per_day).filter(|_| uniform() < rate_t).count() as u64;
                    // The z-test of compare_conversion (its Beta sum is not needed here).
                    let (nc, nt) = (c.0 as f64, t.0 as f64);
                    let pooled = (c.1 + t.1) as f64 / (nc + nt);
                    let z = (t.1 as f64 / nt - c.1 as f64 / nc)
                        / (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt)).sqrt();
                    fixed_hit |= 2.0 * normal_cdf(-z.abs()) < 0.05;
                    let s = sequential(
                        &Totals::conversions(c.0, c.1),
                        &Totals::conversions(t.0, t.1),
                        0.05,
                    )
                    .unwrap();
                    always_hit |= s.p_value < 0.05;
                }
                fixed += usize::from(fixed_hit);
                always += usize::from(always_hit);
            }
            (fixed as f64 / runs as f64, always as f64 / runs as f64)
        };
        let (fixed, always) = run(0.1);
        eprintln!("A/A, 20 daily looks: fixed-horizon z-test {fixed}, always-valid {always}");
        assert!(fixed > 0.12, "peeking inflates the fixed test: {fixed}");
        assert!(
            always <= 0.05,
            "the always-valid p-value keeps its level: {always}"
        );
        let (_, power) = run(0.12);
        eprintln!("A/B with a 20% lift: always-valid finds it in {power} of runs");
        assert!(power > 0.5, "a 20% lift is found: {power}");
    }

    #[test]
    fn lift_is_positive_when_the_treatment_is_better_even_below_zero() {
        // Control loses 10 per user, treatment gains 10: better, by 200% of |control|.
        let arm = |mean: f64| Totals {
            users: 100,
            sum: mean * 100.0,
            sum_of_squares: mean * mean * 100.0 + 99.0,
        };
        let r = compare_means(&arm(-10.0), &arm(10.0)).unwrap();
        assert!((r.lift - 2.0).abs() < 1e-12 && r.lift_low > 0.0, "{r:?}");
        // Means near 1e-200 keep a finite interval.
        let tiny = |mean: f64| Totals {
            users: 100,
            sum: mean * 100.0,
            sum_of_squares: mean * mean * 100.0 + 99e-300,
        };
        let r = compare_means(&tiny(1e-200), &tiny(2e-200)).unwrap();
        assert!(r.lift_low.is_finite() && r.lift_high.is_finite(), "{r:?}");
    }

    #[test]
    fn probability_to_beat_switches_to_the_normal_form_smoothly() {
        // Just under the exact sum's limit both forms agree to far below what is shown.
        for (c, t) in [
            ((200_000, 19_000), (200_000, 19_400)),
            ((100_000, 19_990), (100_000, 19_800)),
        ] {
            let exact = beta_beats(
                (1.0 + c.1 as f64, 1.0 + (c.0 - c.1) as f64),
                (t.1 + 1, 1.0 + (t.0 - t.1) as f64),
            );
            let normal = beta_beats_normal(
                (1.0 + c.1 as f64, 1.0 + (c.0 - c.1) as f64),
                (1.0 + t.1 as f64, 1.0 + (t.0 - t.1) as f64),
            );
            assert!((exact - normal).abs() < 2e-3, "{exact} vs {normal}");
        }
        let big = compare_conversion((2_000_000, 100_000), (2_000_000, 101_000)).unwrap();
        assert!(
            (0.985..0.993).contains(&big.probability_to_beat),
            "{}",
            big.probability_to_beat
        );
    }

    #[test]
    fn probability_to_beat_matches_scipy_integration() {
        for c in cases("beta_beat") {
            let side = |s: &Value| (s["conversions"].as_u64().unwrap(), s["n"].as_u64().unwrap());
            let ((cc, cn), (tc, tn)) = (side(&c["control"]), side(&c["treatment"]));
            let ours = beta_beats(
                (1.0 + cc as f64, 1.0 + (cn - cc) as f64),
                (tc + 1, 1.0 + (tn - tc) as f64),
            );
            close(ours, f(&c["probability"]), 1e-8, &format!("P(B > A) {c}"));
        }
        // Symmetry: equal data give one half.
        let even = compare_conversion((1000, 100), (1000, 100)).unwrap();
        close(even.probability_to_beat, 0.5, 1e-10, "equal arms");
    }

    #[test]
    fn sample_ratio_mismatch_matches_scipy() {
        for c in cases("srm") {
            let observed: Vec<u64> = c["observed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let weights: Vec<f64> = c["weights"].as_array().unwrap().iter().map(f).collect();
            let (chi2, p) = sample_ratio_mismatch(&observed, &weights).unwrap();
            close(chi2, f(&c["chi2"]), 1e-12, "χ²");
            close(p, f(&c["p_value"]), 1e-10, "SRM p");
        }
        assert!(
            sample_ratio_mismatch(&[5300, 4700], &[50.0, 50.0])
                .unwrap()
                .1
                < SRM_P_VALUE
        );
        assert!(
            sample_ratio_mismatch(&[5050, 4950], &[50.0, 50.0])
                .unwrap()
                .1
                > SRM_P_VALUE
        );
        for (observed, weights) in [
            (&[1u64][..], &[1.0][..]),
            (&[1, 2], &[1.0]),
            (&[0, 0], &[1.0, 1.0]),
            (&[1, 2], &[1.0, 0.0]),
        ] {
            assert_eq!(sample_ratio_mismatch(observed, weights), None);
        }
    }

    #[test]
    fn degenerate_inputs_are_errors_not_nans() {
        assert_eq!(
            compare_conversion((1, 0), (100, 5)),
            Err(CompareError::TooFewUsers)
        );
        assert_eq!(
            compare_conversion((100, 0), (100, 0)),
            Err(CompareError::NoVariance)
        );
        assert_eq!(
            compare_conversion((100, 0), (100, 5)),
            Err(CompareError::ZeroControlMean)
        );
        let flat = Totals {
            users: 10,
            sum: 10.0,
            sum_of_squares: 10.0,
        };
        assert_eq!(compare_means(&flat, &flat), Err(CompareError::NoVariance));
    }

    /// A seeded generator, so the coverage check below is the same on every run.
    struct Lcg(u64);
    impl Lcg {
        fn unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn the_lift_interval_covers_the_true_lift_about_95_percent_of_the_time() {
        // 1,000 simulated experiments, 2,000 users an arm, true rates 10% and 12% (lift 0.2).
        let mut rng = Lcg(42);
        let simulations = 1_000;
        let mut covered = 0;
        let mut significant = 0;
        for _ in 0..simulations {
            let mut arm = |rate: f64| (0..2_000).filter(|_| rng.unit() < rate).count() as u64;
            let (c, t) = (arm(0.10), arm(0.12));
            let r = compare_conversion((2_000, c), (2_000, t)).unwrap();
            if r.lift_low <= 0.2 && 0.2 <= r.lift_high {
                covered += 1;
            }
            if r.p_value < 0.05 {
                significant += 1;
            }
        }
        let coverage = covered as f64 / simulations as f64;
        assert!((0.92..=0.98).contains(&coverage), "coverage {coverage}");
        // Power at this size is about 0.6: far more than the 5% false positives.
        assert!(
            significant > 400,
            "significant in {significant} of {simulations}"
        );
    }
}
