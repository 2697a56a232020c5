#!/usr/bin/env python3
"""Feature-group ablation, out of fold: which schema-2 groups earn their place.

Loads the same rows, groups and folds as train.py (malware grouped by
group_malware.py, benign by Debian source package; whole groups per fold) and
trains the shipped kind of classifier (LightGBM, 50 trees of at most 15 leaves,
architecture columns masked) on several column sets: schema 1 alone, schema 1
plus each new group, all of schema 2, and schema 2 minus each new group. For
each it reports out-of-fold detection at 0.1 % and 0.01 % false positives
(thresholds from the out-of-fold benign scores), overall and per stratum (ELF
type, linkage, x86-64 dynamic, and which archive the malware came from), and
the header-only baseline beside them.

    ablate.py --benign DATA/features --malware run/malware.csv --malware run/malware-extra.csv \\
        --manifest corpus/manifest.csv --manifest corpus/extra-manifest.csv \\
        --groups run/groups.csv --out run/ablation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import train

NEW_GROUPS = train.GROUP_PREFIXES
FPRS = (0.001, 0.0001)


def strata(df: pd.DataFrame, extra: set[str]) -> dict[str, np.ndarray]:
    static = ((df["interp_present"] == 0) & (df["dyn_present"] == 0)).to_numpy()
    x64 = (df["hdr_machine_x86_64"] == 1).to_numpy()
    from_extra = df["sha256"].isin(extra).to_numpy()
    return {
        "all": np.ones(len(df), dtype=bool),
        "type exec": (df["hdr_type_exec"] == 1).to_numpy(),
        "type dyn": (df["hdr_type_dyn"] == 1).to_numpy(),
        "type rel": (df["hdr_type_rel"] == 1).to_numpy(),
        "static": static,
        "dynamic": ~static,
        "x86-64": x64,
        "x86-64 dynamic": x64 & ~static,
        "other arch": ~x64,
        "malware: training archive": ~from_extra,
        "malware: extra archive": from_extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benign", required=True)
    ap.add_argument("--malware", required=True, action="append")
    ap.add_argument("--manifest", required=True, action="append")
    ap.add_argument("--groups")
    ap.add_argument("--extra-manifest", help="manifest of the extra archive (for the per-archive strata)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drop-benign", action="append", default=[],
                    help="leave out benign rows of packages starting with this (repeatable)")
    ap.add_argument("--only", action="append", help="run only this column set (repeatable; names as reported)")
    ap.add_argument("--combo", action="append", default=[],
                    help="also schema 1 plus these new groups, comma-separated (e.g. kmod,string_hash; repeatable)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    args.schema = None

    rows, names = train.load(args)
    if args.drop_benign:
        drop = (rows["label"] == 0) & rows["package"].astype(str).str.startswith(tuple(args.drop_benign))
        train.log(f"leaving out {int(drop.sum())} benign rows of {args.drop_benign}")
        rows = rows[~drop]
    data, _ = train.select(rows)
    y = data["label"].to_numpy()
    x = data[names].to_numpy(np.float32)
    fold = data["fold"].to_numpy()
    mask = train.arch_mask(names)
    extra = set()
    if args.extra_manifest:
        extra = set(pd.read_csv(args.extra_manifest, dtype=str, keep_default_na=False)["sha256"])
    train.log(f"{len(data)} rows: {int((y == 0).sum())} benign, {int((y == 1).sum())} malicious, "
              f"{data['group'].nunique()} groups")

    v1 = np.array([i for i, n in enumerate(names) if not n.startswith(tuple(NEW_GROUPS.values()))])
    of = {g: np.array([i for i, n in enumerate(names) if n.startswith(p)]) for g, p in NEW_GROUPS.items()}
    sets = {"schema 1": v1}
    for g, cols in of.items():
        sets[f"schema 1 + {g}"] = np.concatenate([v1, cols])
    for combo in args.combo:
        parts = [g.strip() for g in combo.split(",") if g.strip()]
        unknown = [g for g in parts if g not in of]
        if unknown:
            sys.exit(f"ablate: unknown groups {unknown} (known: {sorted(of)})")
        sets["schema 1 + " + " + ".join(parts)] = np.concatenate([v1, *(of[g] for g in parts)])
    every = np.arange(len(names))
    sets["schema 2"] = every
    for g, cols in of.items():
        sets[f"schema 2 - {g}"] = np.setdiff1d(every, cols)
    hdr = np.array([i for i, c in enumerate(names) if c.startswith("hdr_") and not c.startswith(train.ARCH_PREFIXES)])

    strat = strata(data, extra)
    report = {"rows": {"benign": int((y == 0).sum()), "malicious": int((y == 1).sum()),
                       "groups": int(data["group"].nunique())},
              "strata_sizes": {k: {"malicious": int((y[m] == 1).sum()), "benign": int((y[m] == 0).sum())}
                               for k, m in strat.items()},
              "sets": {}}
    for name, cols in [*sets.items(), ("header baseline", hdr)]:
        if args.only and name not in args.only and not name.startswith(tuple(
                "schema 1 + " + " + ".join(g.strip() for g in c.split(",")) for c in args.combo)):
            continue
        oof = np.zeros(len(data))
        for f in range(train.FOLDS):
            test = fold == f
            if not test.any():
                continue
            xt = x[~test][:, cols] * (mask[cols] if name != "header baseline" else 1)
            if name == "header baseline":
                model = train.fit_lgbm(xt, y[~test], args.seed, False, trees=200, leaves=31, rate=0.05)
                oof[test] = model.predict_proba(x[test][:, cols])[:, 1]
            else:
                model = train.fit_lgbm(xt, y[~test], args.seed, False)
                oof[test] = model.predict_proba(x[test][:, cols] * mask[cols])[:, 1]
        per = {}
        for fpr in FPRS:
            thr = train.threshold_at(oof[y == 0], fpr)
            per[f"{fpr:g}"] = {k: {"tpr": train.tpr_fpr(y[m], oof[m], thr)[0],
                                   "benign_flagged": int(((oof[m] >= thr) & (y[m] == 0)).sum())}
                               for k, m in strat.items()}
        report["sets"][name] = {"columns": int(len(cols)), "auc": train.auc(y, oof), "at_fpr": per}
        line = ", ".join(f"{k} {per['0.001'][k]['tpr']:.3f}" for k in ("all", "type dyn", "type rel", "x86-64 dynamic",
                                                                       "malware: extra archive"))
        train.log(f"{name} ({len(cols)} columns): AUC {report['sets'][name]['auc']:.4f}; TPR@0.1%: {line}")
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
