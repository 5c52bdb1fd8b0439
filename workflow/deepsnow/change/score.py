"""Any detector's score map on a benchmark area, scored as the built-in detectors are.

A score map is a single-band raster on the benchmark's grid (``anomalies.tif``'s CRS,
transform and shape), larger = more anomalous; NaN, nodata or masked pixels are not scored.
It is read by row windows; only the pixels the benchmark uses (``anomalies.tif`` 0 or 1) are
kept, in the order the stage's detectors score them, so memory is 8 bytes per pixel used and
pair. The pixels scored in every given pair go to :func:`deepsnow.change.evaluate.compare_pairs`
and :func:`~deepsnow.change.evaluate.summary_rows`, the code that makes ``change/summary.csv``'s
rows; with the real pair among them, its untouched scores set the ``change.far`` threshold
(``far`` from ``anomalies.tif``'s tags), as in the stage.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.change import benchmark as bench
from deepsnow.change import evaluate
from deepsnow.data.scene import raster_env

#: false-alarm rates whose detection rates the table shows (points of evaluate.ROC_FPR)
TABLE_FPR = (1e-3, 1e-2, 1e-1)


def parse_scores(values: list[str], pair: str | None) -> dict[str, Path]:
    """``--scores FILE`` (with ``--pair``) or ``--scores PAIR=FILE``, once per pair: pair -> file."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if pair is None:
                raise DeepsnowError(f"--scores {value}: name the pair with --pair, or give PAIR=FILE "
                                    f"(PAIR one of {', '.join(evaluate.PAIRS)})")
            name, path = pair, value
        if name not in evaluate.PAIRS:
            raise DeepsnowError(f"--scores {value}: unknown pair {name!r}; expected one of {', '.join(evaluate.PAIRS)}")
        if name in out:
            raise DeepsnowError(f"--scores: pair {name!r} given twice ({out[name]} and {path})")
        out[name] = Path(path)
    if pair is not None and pair not in out:
        raise DeepsnowError(f"--pair {pair}: no --scores for it (given: {', '.join(out)})")
    return out


def check_benchmark(folder: Path, pairs) -> tuple[Path, dict]:
    """The benchmark's ``anomalies.tif`` and its tags; every given pair's after-image must be there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeepsnowError(f"{folder}: benchmark folder not found (change/benchmark/<area> of a run)")
    anomalies = folder / bench.ANOMALIES
    tags = bench.read_tags(anomalies)
    for pair in pairs:
        after = folder / bench.IMAGE_FILES[pair]
        if not after.exists():
            raise DeepsnowError(f"{after}: benchmark file not found: this benchmark has no {pair} pair "
                                f"(its pairs: {tags.get('pairs', '?')})")
    return anomalies, tags


def _open(rasterio, path: Path):
    if not path.exists():
        raise DeepsnowError(f"{path}: score file not found")
    try:
        return rasterio.open(path)
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable raster (truncated or corrupt?): {exc}") from exc


def _check_grid(src, path: Path, ref, anomalies: Path) -> None:
    from deepsnow.data.scene import grid_problems

    if src.count != 1:
        raise DeepsnowError(f"{path}: {src.count} bands; a score map has one (larger = more anomalous)")
    problems = grid_problems(((src.height, src.width), src.crs, src.transform),
                             ((ref.height, ref.width), ref.crs, ref.transform))
    if problems:
        raise DeepsnowError(f"{path} is not on the benchmark's grid ({anomalies}): " + "; ".join(problems))


def read_scores(path: Path, anomalies: Path, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The scores at the pixels used (float64, NaN = not scored) and their labels (1 implanted)."""
    import rasterio

    scores, labels = [], []
    # GDAL's default block cache (5 % of RAM) would keep every block read once: bounded as in the other stages
    with raster_env(), rasterio.open(anomalies) as ref, _open(rasterio, path) as src:
        _check_grid(src, path, ref, anomalies)
        for _, _, win in bench.windows((ref.height, ref.width), rows):
            lab = ref.read(1, window=win)
            try:
                block = src.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
            except Exception as exc:
                raise DeepsnowError(f"{path}: unreadable at rows {win.row_off}-{win.row_off + win.height}: {exc}") from exc
            used = lab != bench.NODATA
            scores.append(block[used])
            labels.append(lab[used])
    scores, labels = np.concatenate(scores), np.concatenate(labels).astype(bool)
    if np.isinf(scores).any():
        raise DeepsnowError(f"{path}: {int(np.isinf(scores).sum())} infinite scores at pixels used; "
                            "give finite scores (NaN = not scored)")
    if not np.isfinite(scores).any():
        raise DeepsnowError(f"{path}: no pixel the benchmark uses has a score (all NaN, nodata or masked)")
    return scores, labels


def _check_scored(path: Path, s: np.ndarray, implanted: np.ndarray) -> None:
    """The scores of the pixels scored in every pair: some, not all equal, both classes among them."""
    if s.size == 0:
        raise DeepsnowError(f"{path}: no pixel the benchmark uses is scored here and in every other pair given")
    if np.ptp(s) == 0:
        raise DeepsnowError(f"{path}: constant scores ({s[0]}) over the {s.size} pixels scored: nothing "
                            "ranks one pixel above another")
    if not 0 < int(implanted.sum()) < s.size:
        raise DeepsnowError(f"{path}: {int(implanted.sum())} implanted among the {s.size} pixels scored: "
                            "an ROC needs both implanted and untouched pixels")


def score(folder: Path, files: dict[str, Path], detector: str, rows: int) -> dict:
    """Rows as in ``change/summary.csv`` for the score maps ``files`` (pair -> file), the ROC's
    detection rates, and the AUC gaps where the pairs allow."""
    anomalies, tags = check_benchmark(folder, files)
    read = {pair: read_scores(path, anomalies, rows) for pair, path in files.items()}
    labels = next(iter(read.values()))[1]
    scored = np.logical_and.reduce([np.isfinite(s) for s, _ in read.values()])
    implanted = labels[scored]
    for pair, (s, _) in read.items():
        _check_scored(files[pair], s[scored], implanted)
    result = evaluate.compare_pairs({p: s[scored] for p, (s, _) in read.items()}, implanted, tags["far"])
    record = {"area": tags["area"], "n_pixels": int(scored.sum()), "n_implanted": int(implanted.sum()),
              "band_sets": {tags["bands"]: {detector: result}}}
    if "band_names" in tags:  # a benchmark written before the tag: its band set's default bands
        record["band_names"] = {tags["bands"]: tags["band_names"]}
    rows_out = evaluate.summary_rows([record])
    out = {"rows": rows_out, "threshold": result["threshold"], "far": tags["far"], "n_used": int(labels.size),
           "pd_at_far": {p: _at(r["roc_tpr"]) for p, r in result["pairs"].items()},
           "roc_fpr": evaluate.ROC_FPR.tolist(), "roc_tpr": {p: r["roc_tpr"] for p, r in result["pairs"].items()}}
    if {"real", "synthetic"} <= set(files):
        gap = evaluate.gaps(rows_out)[tags["bands"]]["detectors"][detector]
        out["gaps"] = {k: v for k, v in gap.items() if k.startswith("gap_")}
    return out


def _at(tpr: list[float]) -> dict[str, float]:
    """The detection rates at :data:`TABLE_FPR` (points of the stored ROC curve)."""
    at = [int(np.argmin(np.abs(evaluate.ROC_FPR - f))) for f in TABLE_FPR]
    return {f"{f:g}": tpr[i] for f, i in zip(TABLE_FPR, at)}


def json_safe(value):
    """``value`` with NaN as None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def table(result: dict) -> str:
    """The rows as a text table, the detection rates at :data:`TABLE_FPR`, and the gaps."""
    cols = evaluate.SUMMARY_COLUMNS
    cells = [[_cell(r[c]) for c in cols] for r in result["rows"]]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    for pair, at in result["pd_at_far"].items():
        rates = ", ".join(f"{pd:.4f} at {f}" for f, pd in at.items())
        lines.append(f"{pair}: detection rate {rates} false alarms")
    if result["threshold"] is None:
        lines.append("far/pd_at_real_threshold: NaN, the real pair's threshold needs its scores (--scores real=FILE)")
    for name, value in result.get("gaps", {}).items():
        lines.append(f"{name}: {value:.4f}")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
