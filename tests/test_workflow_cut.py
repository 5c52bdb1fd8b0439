"""The workflow end to end with a one-sided model: the test config with gan.model: cut."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from deepsnow.io import load_npz
from helpers import snakemake

pytestmark = pytest.mark.slow

EPOCHS = (1, 2, 3)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cut_run_samples_a_to_b_only(cut_config_run: Path):
    res = cut_config_run / "results" / "test"
    for e in EPOCHS:
        s = load_npz(res / "samples" / f"epoch_{e:03d}.npz")
        assert "fake_B" in s and "ids_A" in s and "fake_A" not in s and "ids_B" not in s, sorted(s)
        assert int(s["epoch"]) == e and len(s["fake_B"]) == len(s["ids_A"]) > 0
    losses = _rows(res / "train" / "losses.csv")
    assert [int(r["epoch"]) for r in losses] == list(EPOCHS) and {"G_GAN", "NCE"} <= set(losses[0])


def test_cut_run_measures_the_a_to_b_direction(cut_config_run: Path):
    res = cut_config_run / "results" / "test"
    rows = _rows(res / "metrics" / "metrics.csv")
    assert [(int(r["epoch"]), r["direction"]) for r in rows] == [(e, "AtoB") for e in EPOCHS]
    assert all(float(r["fid"]) >= 0 and r["paired_l1"] != "" for r in rows)
    corr = _rows(res / "metrics" / "correlations.csv")
    assert corr and {c["direction"] for c in corr} == {"AtoB"} and {c["n_epochs"] for c in corr} == {"3"}


def test_cut_run_draws_its_figures_and_builds_its_report(cut_config_run: Path):
    import matplotlib.image

    res = cut_config_run / "results" / "test"
    figures = sorted((res / "figures").glob("figure*.png"))
    assert len(figures) == 11, figures
    for png in figures:
        assert matplotlib.image.imread(png)[..., :3].std() > 0.02, f"{png.name} looks blank"
    assert "AtoB" in (res / "report" / "headline.html").read_text()
    assert "BtoA" not in (res / "report" / "headline.html").read_text()
    snakemake(cut_config_run, "--configfile", "configs/test.yaml", "configs/test_cut.yaml", "--report", "results/report.zip")
    with zipfile.ZipFile(cut_config_run / "results" / "report.zip") as z:
        names = z.namelist()
    assert any(n.endswith("report.html") for n in names)
    assert sum(n.endswith(".png") and "figure" in n for n in names) == 11


def test_cut_run_makes_products_and_the_change_testbed_with_its_generator(cut_config_run: Path):
    import json

    res = cut_config_run / "results" / "test"
    summary = json.loads((res / "synthetic" / "sim02" / "snow.summary.json").read_text())
    assert summary["checkpoint"].endswith("epoch_003.pt") and (res / "synthetic" / "sim02" / "snow.tif").stat().st_size > 0
    assert _rows(res / "change" / "summary.csv")
