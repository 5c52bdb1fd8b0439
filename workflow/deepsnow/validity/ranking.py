"""Which metric to trust: the evidence of the degradation ladders and of a reference run, per metric.

``deepsnow metrics rank`` -> ``metrics/ranking.csv``, one row per metric of ``validity.csv``
(and of ``tracking.csv`` when given), from:

* the **ladders** (``metrics/validity.csv``), per mode (``half``, ``truth``): the lowest
  sign-corrected rho over the ladders and which ladder gives it, how many ladders the metric is
  strictly monotone on (``monotone``, as "k/n": rho = +1, worse at every step), and its median sensitivity (the smallest
  level outside level 0's interval) over the ladders where it has one, with the count of ladders
  where no level leaves that interval;
* the **reference run** (``metrics/tracking.csv``): rho with the paired L1 across the epochs, its
  bootstrap interval, and the regret of the epoch the metric would pick.

``worst_rho`` is the weakest of that evidence (each mode's lowest ladder rho, the tracking rho):
a metric is only as trustworthy as the test it does worst on; ``n_tests`` counts that evidence. A
metric that does not move at all on a ladder or across the epochs (rho empty) cannot tell them
apart: its rho counts as 0 there. Rows are sorted by ``n_tests`` (metrics with evidence missing,
e.g. a column the ladders do not compute, come after those with all of it), then ``worst_rho``
(highest first), the tracking rho and the name; ``rank`` numbers them.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

MODES = ("half", "truth")
MONOTONE = 1.0 - 1e-9
VALIDITY_COLUMNS = {"mode", "ladder", "metric", "worse_when", "rho", "sensitivity"}
TRACKING_COLUMNS = {"metric", "worse_when", "rho", "ci_low", "ci_high", "regret"}


def _read(path, needed: set[str]) -> list[dict]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = needed - set(reader.fieldnames or ())
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DeepsnowError(f"{path}: cannot read the table ({err})") from err
    if missing:
        raise DeepsnowError(f"{path}: not a table this command reads: columns {sorted(missing)} are missing")
    if not rows:
        raise DeepsnowError(f"{path}: the table has no rows")
    return rows


def _number(text: str, path, what: str) -> float:
    """A cell as a float; empty means undefined (NaN)."""
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DeepsnowError(f"{path}: {what} is {text!r}, expected a number or empty") from None


def ladder_evidence(path) -> dict[str, dict]:
    """{metric: {"worse_when", mode: {ladder: (rho, sensitivity)}}} from validity.csv (one entry per
    mode, ladder and metric: rho and sensitivity repeat on every level's row)."""
    out: dict[str, dict] = defaultdict(dict)
    for r in _read(path, VALIDITY_COLUMNS):
        if r["mode"] not in MODES:
            raise DeepsnowError(f"{path}: mode {r['mode']!r}, expected one of {list(MODES)}")
        what = f"{r['mode']}/{r['ladder']}/{r['metric']}"
        entry = out[r["metric"]]
        entry["worse_when"] = r["worse_when"]
        entry.setdefault(r["mode"], {})[r["ladder"]] = (
            _number(r["rho"], path, f"rho of {what}"), _number(r["sensitivity"], path, f"sensitivity of {what}")
        )
    return dict(out)


def tracking_evidence(path) -> dict[str, dict]:
    """{metric: {"rho", "ci_low", "ci_high", "regret", "worse_when"}} from tracking.csv."""
    out = {}
    for r in _read(path, TRACKING_COLUMNS):
        out[r["metric"]] = {"worse_when": r["worse_when"]} | {
            k: _number(r[k], path, f"{k} of {r['metric']}") for k in ("rho", "ci_low", "ci_high", "regret")
        }
    return out


def _counted(rho: float) -> float:
    return 0.0 if math.isnan(rho) else rho


def mode_summary(mode: str, ladders: dict[str, tuple[float, float]]) -> dict:
    """One mode's columns: lowest rho and its ladder, monotone ladders, sensitivity."""
    worst = min(ladders, key=lambda name: (_counted(ladders[name][0]), name))
    found = sorted(s for _, s in ladders.values() if not math.isnan(s))
    median = (found[(len(found) - 1) // 2] + found[len(found) // 2]) / 2 if found else math.nan
    return {
        f"{mode}_min_rho": _counted(ladders[worst][0]),
        f"{mode}_worst_ladder": worst,
        f"{mode}_monotone": f"{sum(r >= MONOTONE for r, _ in ladders.values())}/{len(ladders)}",
        f"{mode}_median_sensitivity": median,
        f"{mode}_insensitive": len(ladders) - len(found),
    }


def columns() -> list[str]:
    per_mode = ("min_rho", "worst_ladder", "monotone", "median_sensitivity", "insensitive")
    return [
        "rank", "metric", "worse_when", "n_tests", "worst_rho",
        *(f"{m}_{c}" for m in MODES for c in per_mode),
        "tracking_rho", "tracking_ci_low", "tracking_ci_high", "tracking_regret",
    ]


def rank_metrics(ladders: dict[str, dict], tracking: dict[str, dict] | None) -> list[dict]:
    """ranking.csv's rows, best first (see the module's docstring)."""
    names = sorted(set(ladders) | set(tracking or {}))
    rows = []
    for name in names:
        row = {c: math.nan for c in columns()} | {"metric": name}
        row.update({f"{m}_{c}": "" for m in MODES for c in ("worst_ladder", "monotone")})
        evidence = []
        for mode in MODES:
            if mode in ladders.get(name, {}):
                row.update(mode_summary(mode, ladders[name][mode]))
                evidence.append(row[f"{mode}_min_rho"])
        if tracking is not None and name in tracking:
            t = tracking[name]
            row.update({f"tracking_{k}": t[k] for k in ("rho", "ci_low", "ci_high", "regret")})
            evidence.append(_counted(t["rho"]))
        row["worse_when"] = ladders.get(name, (tracking or {}).get(name, {})).get("worse_when", "")
        row["worst_rho"], row["n_tests"] = min(evidence), len(evidence)
        rows.append(row)
    rows.sort(key=lambda r: (-r["n_tests"], -r["worst_rho"], -_counted(r["tracking_rho"]), r["metric"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def write_ranking(rows: list[dict], output) -> None:
    def cell(v):
        return ("" if math.isnan(v) else repr(v)) if isinstance(v, float) else str(v)

    with atomic_output(output) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns())
        w.writeheader()
        for r in rows:
            w.writerow({c: cell(r[c]) for c in columns()})


def run_ranking(validity_path, tracking_path, output) -> dict:
    """Read validity.csv (and tracking.csv), write ranking.csv; a summary for the provenance."""
    ladders = ladder_evidence(validity_path)
    tracking = tracking_evidence(tracking_path) if tracking_path else None
    rows = rank_metrics(ladders, tracking)
    write_ranking(rows, output)
    return {"n_metrics": len(rows), "top": [r["metric"] for r in rows[:3]], "tracking": tracking is not None}
