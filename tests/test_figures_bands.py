"""Figures of reflectance runs (issue #28 item 3): testA and the samples drawn as the RGB composite the
patches stage renders, and Figure 1 adds the false-colour composite (B11, B08, B04) where those bands exist."""

from __future__ import annotations

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.render import FALSE_COLOUR, render_composite
from deepsnow.data.scene import REFLECTANCE_BANDS
from deepsnow.figures.table import make_figure
from deepsnow.io import save_npz
from helpers import deepsnow

TEN = list(REFLECTANCE_BANDS)
N, S = 3, 16


def _run(d, bands=TEN, sample_bands=None):
    rng = np.random.default_rng(0)
    ids = np.array([f"simA_r{i}" for i in range(N)])
    real = rng.integers(0, 6000, (N, S, S, len(bands)), dtype=np.uint16)
    meta = {"bands": np.array(bands), "encoding": np.array("reflectance")}
    save_npz(d / "testA.npz", reflectance=real, truth=real + np.uint16(3000), ids=ids,
             water=np.zeros((N, S, S), bool), **meta)
    sb = bands if sample_bands is None else sample_bands
    fake = rng.integers(0, 9000, (N, S, S, len(sb)), dtype=np.uint16)
    save_npz(d / "s.npz", fake_B=fake[::-1], ids_A=ids[::-1], epoch=np.int64(2), bands=np.array(sb),
             encoding=np.array("reflectance"))
    return real, fake


def _images(fig):
    return [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_visible() and ax.get_images()]


def test_figure1_draws_the_rgb_and_the_false_colour_composites(tmp_path):
    real, fake = _run(tmp_path)
    params = {**validate_section("figures", {"samples_count": 3, "epoch": 2}), "rgb_view": (1.0, 2.2)}
    drawn = make_figure(1, params, test_a=tmp_path / "testA.npz", samples=[tmp_path / "s.npz"])
    imgs = _images(drawn.figure)
    assert len(imgs) == 4 * N  # per patch: real and translated, RGB and false colour
    for k in range(N):  # one column per patch (the close-up patch, figures.closeup_patch 0, first); rows:
        row = imgs[k::N]  # real RGB, translated RGB, real false colour, translated false colour
        np.testing.assert_array_equal(row[0], render_composite(real[k], TEN, 1.0, 2.2))
        np.testing.assert_array_equal(row[1], render_composite(fake[k], TEN, 1.0, 2.2))
        np.testing.assert_array_equal(row[2], render_composite(real[k], TEN, 1.0, 2.2, FALSE_COLOUR))
        np.testing.assert_array_equal(row[3], render_composite(fake[k], TEN, 1.0, 2.2, FALSE_COLOUR))
    assert drawn.extra["false_colour"] == list(FALSE_COLOUR) and drawn.extra["bands"] == TEN
    assert "false colour B11 B08 B04" in " ".join(drawn.figure.get_suptitle().split())


def test_without_the_swir_figure1_draws_the_rgb_composite_alone_and_figures_2_4_7_draw(tmp_path):
    bands = ["B02", "B03", "B04", "B08"]
    real, _ = _run(tmp_path, bands)
    params = {**validate_section("figures", {"samples_count": 3, "epoch": 2}), "rgb_view": (0.8, 2.0)}
    drawn = make_figure(1, params, test_a=tmp_path / "testA.npz", samples=[tmp_path / "s.npz"])
    imgs = _images(drawn.figure)
    assert len(imgs) == 2 * N and drawn.extra["false_colour"] is None
    np.testing.assert_array_equal(imgs[0], render_composite(real[0], bands, 0.8, 2.0))
    for n in (2, 4):
        make_figure(n, params, test_a=tmp_path / "testA.npz", samples=[tmp_path / "s.npz"])
    make_figure(7, params, test_a=tmp_path / "testA.npz", samples=[tmp_path / "s.npz"], output_csv="x")


def test_samples_in_other_bands_than_testa_are_refused_exit_2(tmp_path):
    _run(tmp_path, TEN, TEN[:4])
    params = {**validate_section("figures", {}), "rgb_view": (1.0, 2.2)}
    with pytest.raises(DeepsnowError, match=r"s.npz: samples in bands \['B02', 'B03', 'B04', 'B05'\], but testA"):
        make_figure(1, params, test_a=tmp_path / "testA.npz", samples=[tmp_path / "s.npz"])
    p = deepsnow("figures", "--params", "{}", "--figure", "1", "--outputs", tmp_path / "f.png", tmp_path / "f.pdf",
                 "--test-a", tmp_path / "testA.npz", "--samples", tmp_path / "s.npz")
    assert p.returncode == 2 and "samples in bands" in p.stderr
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "f.pdf").exists()


def test_figure8_of_a_reflectance_run_gives_the_paired_l1_in_reflectance(tmp_path):
    from test_figures import _metrics_rows, _write_metrics

    for name, extra in (("rgb", {}), ("refl", {"w1_B03": 0.1, "w1_mean": 0.1, "ndsi_w1": 0.2})):
        rows = [{**r, **extra} for r in _metrics_rows(truth=True, pretrained=False)]
        _write_metrics(tmp_path / f"{name}.csv", rows)
        (tmp_path / "c.csv").write_text("metric,paired,direction,spearman_rho,p_value,n_epochs,expected_sign\n")
        fig = make_figure(8, validate_section("figures", {}), metrics=tmp_path / f"{name}.csv", correlations=tmp_path / "c.csv").figure
        labels = {ax.get_ylabel() for ax in fig.axes}
        unit = "(reflectance)" if extra else "(0–1 scale)"
        assert f"paired L1 vs snowfall truth {unit}" in labels


def test_figure8_of_a_reflectance_run_adds_the_spectral_row_and_the_physical_correlations(tmp_path):
    """The spectral distances get a row of panels beside the paired L1; the ρ table their rows and columns
    for the snow checks against the truth. An RGB run's Figure 8 has neither."""
    from test_figures import _metrics_rows, _write_metrics

    from deepsnow.metrics.table import CORRELATION_COLUMNS, correlations, write_csv

    rows = [{**r, "w1_B03": 0.1 * i, "w1_mean": 0.1 * i, "ndsi_w1": 0.2 / (i + 1), "sam_w1": 0.05 * i,
             "snow_cover_mae": 0.3 - 0.1 * i, "snow_iou": 0.5 + 0.1 * i}
            for i, r in enumerate(_metrics_rows(truth=True, pretrained=False))]
    _write_metrics(tmp_path / "m.csv", rows)
    write_csv(tmp_path / "c.csv", correlations(rows), CORRELATION_COLUMNS)
    fig = make_figure(8, validate_section("figures", {}), metrics=tmp_path / "m.csv", correlations=tmp_path / "c.csv").figure
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    # a row after the per-extractor distances (fd_/cd_simcover: panels g, h)
    for t in ("(j) W1 mean vs paired L1", "(k) NDSI W1 vs paired L1", "(l) angle W1 vs paired L1"):
        assert any(x.startswith(t) for x in titles), titles
    table = next(c for ax in fig.axes for c in ax.get_children() if type(c).__name__ == "Table")
    cells = {cell.get_text().get_text() for cell in table.get_celld().values()}
    assert {"ρ(snow MAE)", "ρ(IoU)", "NDSI W1", "angle W1", "FID"} <= cells
    rgb = [{k: v for k, v in r.items() if not k.startswith(("w1_", "ndsi", "sam", "snow"))} for r in rows]
    _write_metrics(tmp_path / "rgb.csv", rgb)
    write_csv(tmp_path / "rc.csv", correlations(rgb), CORRELATION_COLUMNS)
    fig = make_figure(8, validate_section("figures", {}), metrics=tmp_path / "rgb.csv", correlations=tmp_path / "rc.csv").figure
    assert not any("W1" in ax.get_title(loc="left") for ax in fig.axes) and fig.get_size_inches()[1] == pytest.approx(9.6)
