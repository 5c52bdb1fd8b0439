"""The workflow end to end on 10-band reflectance (issue #28's acceptance): configs/test.yaml with
configs/test_reflectance.yaml, run to its default target. The RGB run beside it: test_workflow.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from deepsnow.data.scene import REFLECTANCE_BANDS
from deepsnow.io import load_npz
from helpers import copy_workflow, snakemake

pytestmark = pytest.mark.slow

TEN = list(REFLECTANCE_BANDS)
RUN = Path("results") / "test_reflectance"


@pytest.fixture(scope="session")
def reflectance_run(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("reflectance-run"))
    snakemake(work, "--configfile", "configs/test.yaml", "configs/test_reflectance.yaml")
    return work / RUN


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_samples_are_ten_band_uint16_reflectance(reflectance_run):
    for path in sorted((reflectance_run / "samples").glob("epoch_*.npz")):
        s = load_npz(path)
        assert [str(b) for b in s["bands"]] == TEN and str(s["encoding"]) == "reflectance"
        for key in ("fake_B", "fake_A"):
            assert s[key].dtype == np.uint16 and s[key].shape[-1] == 10 and s[key].max() > 0


def test_metrics_have_the_spectral_and_physical_columns_for_both_directions(reflectance_run):
    rows = _rows(reflectance_run / "metrics" / "metrics.csv")
    assert {r["direction"] for r in rows} == {"AtoB", "BtoA"}
    for r in rows:
        for col in [f"w1_{b}" for b in TEN] + ["w1_mean", "ndsi_w1", "snow_share_fake", "snow_share_real"]:
            assert np.isfinite(float(r[col])), (col, r[col])
        assert 0 <= float(r["snow_share_fake"]) <= 1 and 0 <= float(r["snow_share_real"]) <= 1
        assert float(r["sam_w1"]) >= 0
    # the real target domain: snowy B is snow by the mask's rule, snow-free A is not
    real = {r["direction"]: float(r["snow_share_real"]) for r in rows}
    assert real["AtoB"] > 0.5 > real["BtoA"]
    # against the simulator's truth: A->B only
    for r in rows:
        truth = [r[c] for c in ("snow_cover_mae", "snow_iou", "snow_share_truth")]
        if r["direction"] == "AtoB":
            assert 0 <= float(r["snow_cover_mae"]) <= 1 and 0 <= float(r["snow_iou"]) <= 1
            assert float(r["snow_share_truth"]) > 0.5  # the true snowfall is snow by the mask's rule
        else:
            assert truth == ["", "", ""]
    corr = _rows(reflectance_run / "metrics" / "correlations.csv")
    assert {"ndsi_w1", "sam_w1", "w1_mean"} <= {c["metric"] for c in corr}


def test_the_reflectance_product_is_a_ten_band_cog_with_eo_bands(reflectance_run):
    from rio_cogeo.cogeo import cog_validate

    product = reflectance_run / "synthetic" / "sim02" / "snow_reflectance.tif"
    valid, errors, _ = cog_validate(str(product))
    assert valid, errors
    with rasterio.open(product) as ds:
        assert ds.count == 10 and ds.dtypes[0] == "uint16" and list(ds.descriptions) == TEN
        assert all(s == pytest.approx(1e-4) for s in ds.scales)
        assert rasterio.enums.MaskFlags.per_dataset in ds.mask_flag_enums[0]
        assert ds.read(9).max() > 0
    item = json.loads((reflectance_run / "synthetic" / "sim02" / "sim02.json").read_text())
    bands = item["assets"]["after_synthetic_reflectance"]["eo:bands"]
    assert [b["name"] for b in bands] == TEN and bands[8]["common_name"] == "swir16"


def test_the_change_testbed_runs_on_ten_bands(reflectance_run):
    rows = _rows(reflectance_run / "change" / "summary.csv")
    names = {r["band_names"] for r in rows}
    assert names == {"B04 B03 B02", " ".join(TEN)}, names  # the RGB composite and all ten bands
    ten = [r for r in rows if r["band_names"] == " ".join(TEN)]
    assert {r["detector"] for r in ten} >= {"rx_difference", "hyperbolic_acd"}


def test_the_ladders_run_in_reflectance_with_the_physical_metrics_and_the_spectral_ladder(reflectance_run):
    """metrics/validity.csv of the default target: the physical metrics on every set; on the spectral
    ladder (snow's SWIR raised under the same RGB composite) FID does not move and ndsi_w1 rises."""
    rows = _rows(reflectance_run / "metrics" / "validity.csv")
    assert {r["ladder"] for r in rows} == {"spectral"}
    modes = {r["mode"] for r in rows}
    assert "half" in modes
    physical = {"w1_mean", "ndsi_w1", "sam_w1", "snow_share_gap"} | ({"snow_cover_mae", "snow_iou"} if "truth" in modes else set())
    for mode in modes:
        got = {r["metric"] for r in rows if r["mode"] == mode}
        assert (physical if mode == "truth" else physical - {"snow_cover_mae", "snow_iou"}) <= got, mode
        series = lambda metric: [float(r["value"]) for r in rows if (r["mode"], r["ladder"], r["metric"]) == (mode, "spectral", metric)]  # noqa: E731
        assert len(set(series("fid"))) == 1 and len(set(series("fd_resnet50"))) == 1, mode
        ndsi = series("ndsi_w1")
        assert all(b > a for a, b in zip(ndsi, ndsi[1:])), (mode, ndsi)
        assert series("snow_share_gap")[-1] > series("snow_share_gap")[0], mode
    assert (reflectance_run / "figures" / "figure12.png").exists()
    assert "spectral" in (reflectance_run / "report" / "validity.html").read_text()
