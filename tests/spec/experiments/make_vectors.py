"""Reference values for core/src/experiments.rs, computed independently with SciPy.

Run with SciPy 1.16.3 (pip install scipy==1.16.3):
    python tests/spec/experiments/make_vectors.py > tests/spec/experiments/vectors.json

Each case gives the inputs and what SciPy's own routines say: normal and Student t tails,
chi-square tails (the sample ratio mismatch test), Welch's t-test, the two-proportion z-test,
and the Bayesian probability that B beats A, by numerical integration of the Beta posteriors
(Beta(1 + conversions, 1 + failures)) rather than the closed form the Rust code uses.
"""
import json

import numpy as np
from scipy import integrate, stats

cases = {"normal_cdf": [], "student_t_sf": [], "chi2_sf": [], "welch": [], "two_proportion": [], "beta_beat": [], "srm": []}

for x in [-8.0, -5.0, -3.2, -1.959963984540054, -1.0, -0.3, 0.0, 0.4, 1.0, 1.6448536269514722, 2.5, 4.0, 6.0]:
    cases["normal_cdf"].append({"x": x, "cdf": float(stats.norm.cdf(x))})

for t, df in [(0.0, 5.0), (1.0, 1.0), (2.0, 3.0), (2.5, 10.0), (-1.3, 7.5), (3.7, 40.0), (6.0, 200.0), (1.96, 100000.0), (12.0, 4.2)]:
    cases["student_t_sf"].append({"t": t, "df": df, "sf": float(stats.t.sf(t, df))})

for x, df in [(0.0, 1), (0.5, 1), (3.84, 1), (10.83, 1), (5.99, 2), (7.0, 3), (30.0, 4), (100.0, 10), (2.0, 20)]:
    cases["chi2_sf"].append({"x": x, "df": df, "sf": float(stats.chi2.sf(x, df))})

for (ma, sa, na, mb, sb, nb) in [(10.0, 2.0, 100, 10.5, 2.5, 120), (3.1, 4.0, 5000, 3.3, 4.4, 5100), (0.5, 0.1, 20, 0.52, 0.3, 25), (120.0, 80.0, 40000, 121.0, 81.0, 39800)]:
    t, p = stats.ttest_ind_from_stats(mb, sb, nb, ma, sa, na, equal_var=False)
    cases["welch"].append({"control": {"mean": ma, "sd": sa, "n": na}, "treatment": {"mean": mb, "sd": sb, "n": nb}, "t": float(t), "p_value": float(p)})

for (ca, na, cb, nb) in [(100, 1000, 130, 1000), (500, 10000, 520, 10000), (30, 400, 45, 410), (1200, 50000, 1400, 50100)]:
    pa, pb = ca / na, cb / nb
    pooled = (ca + cb) / (na + nb)
    z = (pb - pa) / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    cases["two_proportion"].append({"control": {"conversions": ca, "n": na}, "treatment": {"conversions": cb, "n": nb}, "z": float(z), "p_value": float(2 * stats.norm.sf(abs(z)))})

for (ca, na, cb, nb) in [(10, 100, 15, 100), (100, 1000, 130, 1000), (30, 400, 45, 410), (3, 20, 1, 20), (0, 10, 0, 10), (250, 5000, 240, 5000)]:
    a = stats.beta(1 + ca, 1 + na - ca)
    b = stats.beta(1 + cb, 1 + nb - cb)
    lo = min(a.ppf(1e-12), b.ppf(1e-12))
    hi = max(a.isf(1e-12), b.isf(1e-12))
    points = sorted({a.mean(), b.mean()})
    p, _ = integrate.quad(lambda x: a.pdf(x) * b.sf(x), lo, hi, points=points, limit=500, epsabs=1e-13, epsrel=1e-11)
    cases["beta_beat"].append({"control": {"conversions": ca, "n": na}, "treatment": {"conversions": cb, "n": nb}, "probability": float(p)})

for observed, weights in [([5000, 5000], [50, 50]), ([5100, 4900], [50, 50]), ([5300, 4700], [50, 50]), ([3400, 3300, 3300], [1, 1, 1]), ([900, 2100], [30, 70]), ([1000, 2000, 7100], [10, 20, 70])]:
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    chi2, p = stats.chisquare(observed, expected)
    cases["srm"].append({"observed": observed, "weights": weights, "chi2": float(chi2), "p_value": float(p)})

print(json.dumps({"generated_by": "make_vectors.py with SciPy 1.16.3", "cases": cases}, indent=1))
