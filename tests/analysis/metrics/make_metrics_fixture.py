#!/usr/bin/python3
"""Independent numpy reference for analysis/metrics (DESIGN §4, docs/metrics.md).

Computes the calibration metrics of a few generated (confidence, correct, format_fail) sets
with plain numpy and writes them to metrics_fixture.txt next to this script, every number
printed with %.17g so the confidences round-trip exactly. test_metrics_fixture reads it.
Regenerate with:  /usr/bin/python3 tests/analysis/metrics/make_metrics_fixture.py
The C build never runs this; the script and its output are both committed.
"""
import os

import numpy as np

NBINS = 10
# Bin edges exactly as the reference builds them: 0.30000000000000004, 0.7000000000000001 ...
EDGES = np.linspace(0.0, 1.0, NBINS + 1)


def fmt(x):
    return "%.17g" % float(x)


def bin_stats(c, y, groups):
    """(count, lo, hi, mean_conf, accuracy) for each index array in groups."""
    out = []
    for g in groups:
        if len(g) == 0:
            out.append((0, np.nan, np.nan, np.nan, np.nan))
        else:
            out.append((len(g), None, None, c[g].mean(), y[g].mean()))
    return out


def ece_from(stats, n):
    return sum(cnt / n * abs(mc - acc) for cnt, _, _, mc, acc in stats if cnt > 0)


def equal_width(c, y):
    # Outer edges open to +-inf: the bin is the number of inner edges <= c.
    b = np.searchsorted(EDGES[1:-1], c, side="right")
    groups = [np.nonzero(b == k)[0] for k in range(NBINS)]
    stats = bin_stats(c, y, groups)
    stats = [(cnt, EDGES[k], EDGES[k + 1], mc, acc) for k, (cnt, _, _, mc, acc) in enumerate(stats)]
    ece = ece_from(stats, len(c))
    mce = max(abs(mc - acc) for cnt, _, _, mc, acc in stats if cnt > 0)
    return stats, ece, mce


def equal_mass(c, y):
    order = np.argsort(c, kind="stable")  # ties keep sample order
    groups = np.array_split(order, NBINS)  # first n % 10 chunks one longer
    stats = bin_stats(c, y, groups)
    stats = [
        (cnt, c[g].min() if cnt else np.nan, c[g].max() if cnt else np.nan, mc, acc)
        for g, (cnt, _, _, mc, acc) in zip(groups, stats)
    ]
    return stats, ece_from(stats, len(c))


def ranking(c, y):
    """O(n^2) pair counting, independent of the C code's sort-and-sweep."""
    pos, neg = c[y == 1], c[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return 0.0, np.nan  # SPR 0 by the reference convention; AUROC undefined -> NaN
    gt = np.count_nonzero(pos[:, None] > neg[None, :])
    eq = np.count_nonzero(pos[:, None] == neg[None, :])
    pairs = len(pos) * len(neg)
    return gt / pairs, (gt + 0.5 * eq) / pairs


def write_case(f, name, c, y, fail):
    c = np.asarray(c, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    fail = np.asarray(fail, dtype=np.int64)
    n = len(c)
    assert n > 0 and len(y) == n and len(fail) == n
    ew, ece, mce = equal_width(c, y)
    em, ece_em = equal_mass(c, y)
    spr, auroc = ranking(c, y)
    f.write("case %s %d\n" % (name, n))
    f.write("conf " + " ".join(fmt(v) for v in c) + "\n")
    f.write("correct " + " ".join(str(int(v)) for v in y) + "\n")
    f.write("fail " + " ".join(str(int(v)) for v in fail) + "\n")
    scalars = [
        ("accuracy", y.mean()),
        ("mean_conf", c.mean()),
        ("brier", np.mean((c - y) ** 2)),
        ("ocg", c.mean() - y.mean()),
        ("ece", ece),
        ("mce", mce),
        ("ece_equal_mass", ece_em),
        ("spr", spr),
        ("auroc", auroc),
        ("format_fail_rate", fail.mean()),
    ]
    for key, v in scalars:
        f.write("%s %s\n" % (key, fmt(v)))
    for tag, stats in (("bin", ew), ("em_bin", em)):
        for k, (cnt, lo, hi, mc, acc) in enumerate(stats):
            f.write("%s %d %d %s %s %s %s\n" % (tag, k, cnt, fmt(lo), fmt(hi), fmt(mc), fmt(acc)))
    f.write("end\n")


def main():
    rng = np.random.default_rng(20240917)
    cases = []

    # k/20 for k = 0..20, three times: every edge value as a parsed confidence would give it.
    c = np.tile(np.arange(21) / 20, 3)
    cases.append(("k_over_20", c, rng.random(c.size) < 0.6))
    # k/100 for k = 0..100: the two-decimal values "Confidence: X.XX" produces.
    c = np.arange(101) / 100
    cases.append(("k_over_100", c, rng.random(c.size) < c))
    # The edges themselves, their neighbours one ulp away, and values outside [0, 1].
    c = np.concatenate([EDGES, np.nextafter(EDGES, -np.inf), np.nextafter(EDGES, np.inf),
                        [-0.25, -0.0, 1.25, 2.0]])
    cases.append(("edges_ulp", c, rng.random(c.size) < 0.5))
    # Overconfident model, half the confidences rounded to two decimals.
    c = rng.random(500)
    c[::2] = np.round(c[::2], 2)
    cases.append(("random_500", c, rng.random(c.size) < c ** 1.5))
    # Heavy ties: three confidence levels.
    c = rng.choice([0.0, 0.5, 1.0], size=40)
    cases.append(("ties_3_levels", c, rng.random(c.size) < 0.5))
    # n = 13: array_split remainder 3; n = 7: three empty equal-mass chunks.
    c = np.round(rng.random(13), 2)
    cases.append(("n13", c, rng.random(c.size) < 0.5))
    c = np.array([0.9, 0.1, 0.5, 0.5, 0.3, 0.7, 1.0])
    cases.append(("n7", c, np.array([1, 0, 1, 0, 0, 1, 1])))
    # One class only, and a single sample.
    c = np.round(rng.random(12), 2)
    cases.append(("all_correct", c, np.ones(c.size)))
    c = np.round(rng.random(9), 2)
    cases.append(("all_wrong", c, np.zeros(c.size)))
    cases.append(("single", np.array([0.3]), np.array([1])))

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics_fixture.txt")
    with open(path, "w") as f:
        f.write("# metrics fixture: written by make_metrics_fixture.py (numpy %s); do not edit.\n"
                % np.__version__)
        f.write("# per case: case NAME N / conf / correct / fail / scalars /"
                " bin|em_bin K COUNT LO HI MEAN_CONF ACCURACY / end\n")
        for name, c, y in cases:
            fail = rng.random(len(c)) < 0.1
            write_case(f, name, c, y.astype(np.int64), fail)
    print("wrote", path)


if __name__ == "__main__":
    main()
