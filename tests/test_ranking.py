"""deepsnow metrics rank: which metric to trust, from the ladders (validity.csv) and a reference run
(tracking.csv)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from helpers import deepsnow

VALIDITY_HEADER = "mode,ladder,metric,level,parameter,parameter_value,value,ci_low,ci_high,worse_when,rho,sensitivity,n_reference,n_candidate"
TRACKING_HEADER = "metric,worse_when,rho,ci_low,ci_high,n_epochs,n_bootstrap,picked_epoch,picked_paired_l1,best_epoch,best_paired_l1,regret,pick_share"


def _validity(path: Path, entries: dict) -> Path:
    """entries: {(mode, ladder, metric): (rho, sensitivity)}, each written at two levels as the stage does."""
    lines = [VALIDITY_HEADER]
    for (mode, ladder, metric), (rho, sens) in entries.items():
        for level in (0.0, 1.0):
            lines.append(f"{mode},{ladder},{metric},{level},p,{level},1.0,0.5,1.5,higher,{rho},{sens},10,10")
    path.write_text("\n".join(lines) + "\n")
    return path


def _tracking(path: Path, entries: dict) -> Path:
    lines = [TRACKING_HEADER] + [
        f"{m},higher,{rho},{lo},{hi},16,20,3,0.2,7,0.13,{regret},0.0" for m, (rho, lo, hi, regret) in entries.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rank(tmp_path, validity, tracking=None) -> tuple[object, dict]:
    out = tmp_path / "ranking.csv"
    args = ["metrics", "rank", "--validity", validity, "--output", out] + (["--tracking", tracking] if tracking else [])
    proc = deepsnow(*args)
    rows = {r["metric"]: r for r in csv.DictReader(open(out))} if out.exists() else {}
    return proc, rows


def test_the_weakest_evidence_orders_the_metrics(tmp_path):
    ladders = {
        # good: monotone on both ladders in half mode, strong in truth mode, tracks the run
        ("half", "blur", "good"): (1.0, 0.2), ("half", "noise", "good"): (1.0, 0.4),
        ("truth", "blur", "good"): (0.9, 0.2), ("truth", "noise", "good"): (1.0, ""),
        # ladder_star: perfect on the ladders, tracks the run the wrong way
        ("half", "blur", "ladder_star"): (1.0, 0.2), ("half", "noise", "ladder_star"): (1.0, 0.2),
        ("truth", "blur", "ladder_star"): (1.0, 0.2), ("truth", "noise", "ladder_star"): (1.0, 0.2),
        # flat: does not move on the noise ladder (empty rho counts as 0)
        ("half", "blur", "flat"): (1.0, 0.6), ("half", "noise", "flat"): ("", ""),
        ("truth", "blur", "flat"): (0.8, 0.6), ("truth", "noise", "flat"): (0.7, 0.8),
    }
    tracking = {"good": (0.8, 0.6, 0.9, 0.0), "ladder_star": (-0.7, -0.9, -0.5, 0.1), "flat": (0.5, 0.1, 0.8, 0.01),
                "only_tracked": (0.95, 0.9, 1.0, 0.0)}
    proc, rows = _rank(tmp_path, _validity(tmp_path / "v.csv", ladders), _tracking(tmp_path / "t.csv", tracking))
    assert proc.returncode == 0, proc.stderr
    order = sorted(rows, key=lambda m: int(rows[m]["rank"]))
    # only_tracked tracks best but has no ladder evidence: it comes after every metric with all three tests
    assert order == ["good", "flat", "ladder_star", "only_tracked"]
    good, flat, star = rows["good"], rows["flat"], rows["ladder_star"]
    assert float(good["worst_rho"]) == 0.8 and good["n_tests"] == "3"  # the tracking rho is its weakest
    assert good["half_monotone"] == "2/2" and good["truth_monotone"] == "1/2"
    assert float(good["truth_min_rho"]) == 0.9 and good["truth_worst_ladder"] == "blur"
    assert float(good["half_median_sensitivity"]) == pytest.approx(0.3) and good["half_insensitive"] == "0"
    assert float(good["truth_median_sensitivity"]) == 0.2 and good["truth_insensitive"] == "1"
    assert float(flat["half_min_rho"]) == 0.0 and flat["half_worst_ladder"] == "noise" and float(flat["worst_rho"]) == 0.0
    assert float(star["worst_rho"]) == -0.7 and float(star["tracking_regret"]) == 0.1
    assert rows["only_tracked"]["n_tests"] == "1" and rows["only_tracked"]["half_min_rho"] == ""
    prov = json.loads((tmp_path / "ranking.csv.prov.json").read_text())
    assert [Path(i["path"]).name for i in prov["inputs"]] == ["v.csv", "t.csv"]


def test_without_tracking_the_ladders_alone_rank(tmp_path):
    ladders = {("half", "blur", "a"): (0.5, 0.2), ("half", "blur", "b"): (0.9, 0.4)}
    proc, rows = _rank(tmp_path, _validity(tmp_path / "v.csv", ladders))
    assert proc.returncode == 0, proc.stderr
    assert rows["b"]["rank"] == "1" and rows["a"]["rank"] == "2"
    assert rows["b"]["tracking_rho"] == "" and rows["b"]["truth_min_rho"] == ""


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: p.write_text("mode,ladder,metric\nhalf,blur,fid\n"), "columns ['rho', 'sensitivity', 'worse_when'] are missing"),
        (lambda p: p.write_text(VALIDITY_HEADER + "\n"), "the table has no rows"),
        (lambda p: p.write_text(p.read_text().replace(",1.0,0.2,10", ",high,0.2,10")), "rho of half/blur/a is 'high'"),
        (lambda p: p.write_text(p.read_text().replace("half,", "third,")), "mode 'third'"),
    ],
    ids=["columns", "empty", "rho", "mode"],
)
def test_a_damaged_table_is_refused_naming_it_and_nothing_is_written(tmp_path, damage, expected):
    path = _validity(tmp_path / "v.csv", {("half", "blur", "a"): (1.0, 0.2)})
    damage(path)
    proc, rows = _rank(tmp_path, path)
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr and expected in proc.stderr, proc.stderr
    assert not rows and not list(tmp_path.glob("ranking*"))


def test_the_test_runs_ladders_give_every_metric_its_lowest_rho(test_config_run, tmp_path):
    """On a real validity.csv (the shared test run's): one row per metric, its lowest rho per mode as
    the table has it (an empty rho counted as 0)."""
    validity = test_config_run / "results" / "test" / "metrics" / "validity.csv"
    table = list(csv.DictReader(open(validity)))
    proc, rows = _rank(tmp_path, validity)
    assert proc.returncode == 0, proc.stderr
    assert set(rows) == {r["metric"] for r in table}
    for mode in {r["mode"] for r in table}:
        for metric, row in rows.items():
            rhos = [float(r["rho"]) if r["rho"] else 0.0 for r in table if r["mode"] == mode and r["metric"] == metric]
            assert math.isclose(float(row[f"{mode}_min_rho"]), min(rhos)), (mode, metric)
    worst = [float(rows[m]["worst_rho"]) for m in sorted(rows, key=lambda m: int(rows[m]["rank"]))]
    assert worst == sorted(worst, reverse=True)
