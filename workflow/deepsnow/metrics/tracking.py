"""How well each unpaired metric tracks the paired error across one run's epochs (simulator runs).

``deepsnow metrics tracking`` -> ``metrics/tracking.csv``, one row per unpaired metric of
``metrics.csv`` (A->B, where the paired error is measured):

* ``rho``: Spearman's rank correlation across the saved epochs between the metric and the paired
  L1 to the simulator's truth, **sign-corrected so that +1 means "the metric says worse exactly
  when the paired error is larger"** (the table's expected signs,
  :func:`deepsnow.metrics.table.unpaired_metrics`: distances keep their sign; the RF log loss,
  ``crd_dot`` and precision/recall/density/coverage, which rise as images improve, are negated);
  from the metrics table's own values;
* ``ci_low``, ``ci_high``: its bootstrap 95 % interval over **test patches**: each replicate draws
  the generated test-A patches (with their per-patch paired L1) and the real test-B patches with
  replacement, the same draws at every epoch, recomputes every metric per epoch from the saved
  features with the metrics stage's own :func:`~deepsnow.metrics.epoch.set_metrics` and the paired
  L1 per epoch as the mean of the drawn patches' errors, then the rho (plain percentile interval:
  rho is bounded, a bias shift could push it past ±1);
* ``picked_epoch``: the epoch the metric would choose (its best value in the table) and that
  epoch's paired L1, beside ``best_epoch``, the epoch of the lowest paired L1; ``regret`` is the
  difference of the two paired L1s; ``pick_share`` the share of replicates in which the metric's
  best epoch is the replicate's epoch of lowest paired L1.
"""

from __future__ import annotations

import csv
import logging

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

log = logging.getLogger("deepsnow.metrics")

COLUMNS = (
    "metric", "worse_when", "rho", "ci_low", "ci_high", "n_epochs", "n_bootstrap", "picked_epoch",
    "picked_paired_l1", "best_epoch", "best_paired_l1", "regret", "pick_share",
)
PAIRED = "paired_l1"


# ----------------------------------------------------------------------------- inputs


def table_values(table_path) -> tuple[list[int], dict[str, np.ndarray], dict[str, int]]:
    """The A->B rows of metrics.csv: (epochs, {column: values per epoch}, {unpaired metric: sign})
    for the paired L1 and every unpaired metric with a finite value at every epoch."""
    from deepsnow.metrics.compare import variant_values
    from deepsnow.metrics.table import unpaired_metrics

    values = variant_values(table_path)
    epochs = sorted({e for e, d, _ in values if d == "AtoB"})
    columns = list(dict.fromkeys(m for e, d, m in values if d == "AtoB"))
    series = {m: np.array([values.get((e, "AtoB", m), np.nan) for e in epochs]) for m in columns}
    if not np.isfinite(series.get(PAIRED, np.array([np.nan]))).all():
        raise DeepsnowError(
            f"{table_path}: column {PAIRED!r} is empty or missing at some A->B epoch; metrics tracking needs the "
            "paired error of every epoch (simulator data with metrics.paired: true)"
        )
    if len(epochs) < 3:
        raise DeepsnowError(f"{table_path}: {len(epochs)} epochs ({epochs}); a rank correlation across epochs needs at least 3")
    # the table's expected sign (+1: larger = worse) of every unpaired metric it holds
    signs = unpaired_metrics([dict.fromkeys(columns)])
    return epochs, series, {m: s for m, s in signs.items() if m in series and np.isfinite(series[m]).all()}


def load_sets(real_paths, feature_paths, samples_paths, truth_path, epochs: list[int], params: dict):
    """Real test-B features, every epoch's generated test-A features (rows in the paired order) and
    the per-patch paired L1 of every epoch: ({extractor: (N_B, D)}, {epoch: {extractor: (N, D)}},
    {epoch: (N,)})."""
    from deepsnow.metrics.epoch import paired_inputs
    from deepsnow.metrics.load import check_pair, directions_of, load_epochs, load_real
    from deepsnow.metrics.paired import patch_l1

    real = load_real(real_paths)
    feats = load_epochs(feature_paths)
    if sorted(feats) != epochs:
        raise DeepsnowError(f"--features hold epochs {sorted(feats)} but the metrics table has {epochs}; give the same epochs")
    paired = paired_inputs(samples_paths, truth_path, {**params, "paired": True}, set(epochs))
    if not paired:
        raise DeepsnowError(f"{truth_path}: no true snowy images ('truth_snowfall' or 'truth'); metrics tracking needs simulator data")
    ids = paired[epochs[0]]["ids"]
    fakes, l1 = {}, {}
    for e in epochs:
        if not np.array_equal(paired[e]["ids"], ids):
            raise DeepsnowError(f"{paired[e]['samples_path']}: epoch {e} translated other test patches than epoch {epochs[0]}")
        directions_of(feats[e].values())
        fakes[e] = {}
        for name, arr in feats[e].items():
            if name not in real:
                raise DeepsnowError(f"{arr['_path']}: no real features for extractor {name!r} (given: {sorted(real)})")
            check_pair(real[name], arr, name, e)
            fakes[e][name] = arr["fake_B"][_rows(arr, ids)]
        l1[e] = patch_l1(paired[e]["fake"], paired[e]["truth"])
    return {name: arr["B"] for name, arr in real.items()}, fakes, l1


def _rows(arr: dict, ids: np.ndarray) -> np.ndarray:
    """The rows of an epoch-features file holding the patches ``ids``, in that order."""
    have = {k: i for i, k in enumerate(np.asarray(arr.get("ids_A", [])).astype(str))}
    missing = [k for k in ids if k not in have]
    if missing:
        raise DeepsnowError(f"{arr['_path']}: no features for test-A patches {missing[:3]} ('ids_A'); re-embed the epoch's samples")
    return np.array([have[k] for k in ids], dtype=int)


# ----------------------------------------------------------------------------- measuring


def replicate(real: dict, fakes: dict, l1: dict, params: dict, draw, metrics) -> dict[str, np.ndarray]:
    """One bootstrap replicate: every metric of ``metrics`` and the paired L1, per epoch (in the
    order of ``fakes``), of the real rows ``draw[0]`` and generated rows ``draw[1]``."""
    from deepsnow.metrics.epoch import set_metrics

    ri, ci = draw
    ref = {k: v[ri] for k, v in real.items()}
    rows = [set_metrics(ref, {k: v[ci] for k, v in fake.items()}, params, 1) for fake in fakes.values()]
    out = {m: np.array([float(r[m]) for r in rows]) for m in metrics}
    out[PAIRED] = np.array([l1[e][ci].mean() for e in fakes])
    return out


def draws(n_real: int, n_fake: int, tracking: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(real rows, generated rows) of every replicate, seeded by ``tracking.seed``."""
    out = []
    for r in range(tracking["n_bootstrap"]):
        rng = np.random.default_rng([tracking["seed"], r])
        out.append((rng.integers(0, n_real, n_real), rng.integers(0, n_fake, n_fake)))
    return out


def rho(values, l1, sign: int) -> float:
    """Sign-corrected Spearman rho of a metric's per-epoch values with the per-epoch paired L1."""
    from deepsnow.metrics.table import spearman

    return spearman(list(zip(sign * np.asarray(values, dtype=float), l1)))[0]


def best(values, sign: int) -> int:
    """Index of the best value: the smallest when larger is worse (``sign`` +1), else the largest."""
    return int(np.argmin(sign * np.asarray(values, dtype=float)))


def summary_rows(epochs, series: dict, signs: dict, boots: list[dict]) -> list[dict]:
    """tracking.csv's rows from the table's values and the bootstrap replicates."""
    l1 = series[PAIRED]
    b_best = [int(np.argmin(b[PAIRED])) for b in boots]
    rows = []
    for m, sign in signs.items():
        rhos = np.array([rho(b[m], b[PAIRED], sign) for b in boots])
        ok = rhos[np.isfinite(rhos)]
        low, high = np.percentile(ok, [2.5, 97.5]) if len(ok) else (np.nan, np.nan)
        pick = best(series[m], sign)
        rows.append({
            "metric": m, "worse_when": "higher" if sign > 0 else "lower", "rho": rho(series[m], l1, sign),
            "ci_low": float(low), "ci_high": float(high), "n_epochs": len(epochs), "n_bootstrap": len(ok),
            "picked_epoch": epochs[pick], "picked_paired_l1": float(l1[pick]),
            "best_epoch": epochs[int(np.argmin(l1))], "best_paired_l1": float(l1.min()),
            "regret": float(l1[pick] - l1.min()),
            "pick_share": float(np.mean([best(b[m], sign) == i for b, i in zip(boots, b_best)])) if boots else np.nan,
        })
    return rows


def write_rows(rows: list[dict], output) -> None:
    def cell(v):
        return ("" if not np.isfinite(v) else repr(v)) if isinstance(v, float) else str(v)

    with atomic_output(output) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: cell(r[c]) for c in COLUMNS})


def run_tracking(paths: dict, output, metrics: dict, tracking: dict, n_jobs: int | None) -> dict:
    """``paths``: table, real (list), features (list), samples (list), truth. Writes ``output``."""
    from joblib import Parallel, delayed

    epochs, series, signs = table_values(paths["table"])
    real, fakes, l1 = load_sets(paths["real"], paths["features"], paths["samples"], paths["truth"], epochs, metrics)
    params = {**metrics, "rf_repeats": tracking["rf_repeats"]}
    n_real, n_fake = len(next(iter(real.values()))), len(l1[epochs[0]])
    log.info("%d metrics over %d epochs; %d bootstrap replicates of %d real and %d generated patches",
             len(signs), len(epochs), tracking["n_bootstrap"], n_real, n_fake)
    boots = Parallel(n_jobs=n_jobs if n_jobs not in (None, 0) else 1)(
        delayed(replicate)(real, fakes, l1, params, d, list(signs)) for d in draws(n_real, n_fake, tracking)
    )
    rows = summary_rows(epochs, series, signs, boots)
    write_rows(rows, output)
    for r in rows:
        log.info("%-22s rho %+.2f [%+.2f, %+.2f] picks epoch %d (paired L1 %.4f; lowest %.4f at epoch %d)",
                 r["metric"], r["rho"], r["ci_low"], r["ci_high"], r["picked_epoch"], r["picked_paired_l1"],
                 r["best_paired_l1"], r["best_epoch"])
    return {"epochs": epochs, "n_metrics": len(rows), "n_bootstrap": tracking["n_bootstrap"], "best_epoch": rows[0]["best_epoch"] if rows else None}
