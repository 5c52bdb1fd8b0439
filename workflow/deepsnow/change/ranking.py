"""Does synthetic snow rank the detectors as real snow does? Kendall's tau per area and band set.

For one area and band set, each pair gives every detector an AUC; two pairs agree on the
detectors' ranking as far as Kendall's tau-b (:func:`scipy.stats.kendalltau`) of their AUC
vectors over the detectors says: 1 the same order, -1 the reverse, ties counted as tau-b does.
Compared: ``synthetic`` against ``real``, and ``truth`` against ``real`` where there is truth.
Tau is undefined (``None``, with the reason) with fewer than 2 detectors, or where one pair's
AUCs are all equal (no ranking to compare).
"""

from __future__ import annotations

import math

#: (pair, reference pair) compared, where both were scored
COMPARED = (("synthetic", "real"), ("truth", "real"))
COLUMNS = ("area", "bands", "pairs", "n_detectors", "tau", "p_value", "reason")


def tau(a: list[float], b: list[float]) -> tuple[float | None, float | None, str]:
    """Kendall's tau-b of two AUC vectors and its p-value; ``None`` and the reason when undefined."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return None, None, f"only {len(a)} detector(s): a ranking needs at least 2"
    result = kendalltau(a, b)
    if not math.isfinite(result.statistic):
        return None, None, "the AUCs of one pair are all equal: no ranking to compare"
    return float(result.statistic), float(result.pvalue), ""


def agreement(rows: list[dict]) -> list[dict]:
    """Per area, band set and compared pairs (:data:`COMPARED`): Kendall's tau between the detectors'
    AUCs (``rows``: the summary's rows, :data:`deepsnow.change.evaluate.SUMMARY_COLUMNS`)."""
    auc: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for r in rows:
        auc.setdefault((r["area"], r["bands"]), {}).setdefault(r["pair"], {})[r["detector"]] = r["auc"]
    out = []
    for (area, bands), pairs in auc.items():
        for pair, ref in COMPARED:
            if pair not in pairs or ref not in pairs:
                continue
            names = [d for d in pairs[ref] if d in pairs[pair]]
            t, p, reason = tau([pairs[pair][d] for d in names], [pairs[ref][d] for d in names])
            out.append({"area": area, "bands": bands, "pairs": f"{pair}_vs_{ref}", "n_detectors": len(names),
                        "tau": t, "p_value": p, "reason": reason})
    return out
