#!/usr/bin/python3
"""Per-sample look at a finished retention sweep (experiments/retention.json): for each series
(method, replay) after the last stage, per domain and split, the accuracy, the mean expected
confidence, the mean on right and on wrong answers, and how much of the confidence tracks the
question (the share of samples whose expected confidence lies within 0.1 of the split's mean).
Reads the shared runs' results.h5 (docs/results.md) with h5py; not part of the build.

usage: python3 experiments/analysis/retention_per_sample.py runs/retention [--stage N]
"""
import glob, json, os, sys

import h5py
import numpy as np


def series_of(spec):
    s = json.loads(spec)
    d = s.get("defaults", {})
    return "%s replay %g" % (d.get("method", "?"), d.get("replay_frac", 0))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "runs/retention"
    rows = {}
    for path in sorted(glob.glob(os.path.join(root, "shared", "*", "results.h5"))):
        with h5py.File(path, "r") as f:
            if f.attrs["status"] != "finished":
                continue
            ser = series_of(f.attrs["spec"])
            last = int(f.attrs["n_stages"])
            st = f["stages/%d/domains" % last]
            for dom in st:
                for split in st[dom]:
                    g = st[dom][split]
                    c = g["confidence_expected"][:]
                    y = g["correct"][:].astype(bool)
                    rows.setdefault((ser, dom, split), []).append((c, y))
    print("after the last stage; per (series, domain, split): samples pooled over seeds")
    print("%-18s %-6s %-14s %5s %6s %8s %8s %8s %7s" % ("series", "domain", "split", "n", "acc", "conf",
                                                         "conf|ok", "conf|bad", "OCG"))
    for (ser, dom, split), parts in sorted(rows.items()):
        c = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        ok = c[y].mean() if y.any() else float("nan")
        bad = c[~y].mean() if (~y).any() else float("nan")
        print("%-18s %-6s %-14s %5d %6.3f %8.3f %8.3f %8.3f %+7.3f" % (ser, dom, split, len(c), y.mean(), c.mean(),
                                                                      ok, bad, c.mean() - y.mean()))


if __name__ == "__main__":
    main()
