"""Metric validity on reflectance test sets (issues #28 and #29): the ladders in reflectance, the
spectral ladder, the physical metrics' histogram Wasserstein distance, the stage on a tiny
reflectance data set, and the refusals (the workflow's own run: tests/test_workflow_reflectance.py)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.data.render import render_composite
from deepsnow.io import save_npz
from deepsnow.metrics.spectral import snow_pixels, spectral_columns, snow_truth_columns
from deepsnow.validity.ladders import LADDERS, Encoding, checker_pattern, snow_mask
from test_validity import METRICS, _tiny_extractors

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
MASK = {"ndsi_min": 0.4, "nir_min": 0.11, "invalid_classes": [0, 1], "cloud_classes": [8, 9, 10]}
ENC = Encoding(BANDS, MASK, (1.0, 2.2))
LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]
S = 24
#: reflectance spectra (B02, B03, B04, B08, B11, B12): fresh snow, vegetation
SNOW = np.array([0.90, 0.88, 0.86, 0.75, 0.08, 0.05])
VEG = np.array([0.04, 0.07, 0.05, 0.40, 0.20, 0.10])


def _scenes(rng, n: int, snowy: bool) -> np.ndarray:
    """(n, S, S, 6) uint16 reflectance x 10000: vegetation with a snow block (snowy) and texture."""
    refl = np.broadcast_to(VEG, (n, S, S, 6)).copy()
    if snowy:
        refl[:, : S // 2 + 2, : S // 2 + 2] = SNOW
        refl[:, : S // 2 + 2, : S // 2 + 2, 4:] *= rng.uniform(0.3, 5.0, (n, S // 2 + 2, S // 2 + 2, 1))  # NDSI 0.4 to 0.95
    refl *= 1.0 + rng.normal(0, 0.05, (n, S, S, 1))
    return np.clip(np.rint(refl * 10000), 0, 65535).astype(np.uint16)


def _stat_grows(name):
    """Per ladder, a statistic of (degraded, original, snow-free) that must grow with the level."""
    f = lambda x: x.astype(float)  # noqa: E731
    return {
        "blur": lambda out, img, free: -np.abs(np.diff(f(out), axis=2)).mean(),
        "noise": lambda out, img, free: np.abs(f(out) - img).mean(),
        "checkerboard": lambda out, img, free: ((f(out) - img) * checker_pattern(S, S)[None, :, :, None]).mean(),
        "partial": lambda out, img, free: -np.abs(f(out) - free).mean(),
        "cast": lambda out, img, free: (f(out[..., 2]) - out[..., 0]).mean(),  # B04 - B02: warmer
        "spatial": lambda out, img, free: -(snow_mask(out, ENC) & snow_mask(img, ENC)).mean(),  # less snow in place
        "spectral": lambda out, img, free: f(out[..., 4])[snow_mask(img, ENC)].mean(),  # snow's B11 raised
    }[name]


@pytest.mark.parametrize("name", list(LADDERS))
def test_a_reflectance_ladder_is_the_identity_at_0_uint16_and_monotone(name):
    rng = np.random.default_rng(0)
    images, snowfree = _scenes(rng, 3, True), _scenes(rng, 3, False)
    before = images.copy()
    assert np.array_equal(LADDERS[name].degrade(images, 0.0, np.random.default_rng(1), snowfree=snowfree, encoding=ENC), images)
    stats = []
    for level in LEVELS:
        out = LADDERS[name].degrade(images, level, np.random.default_rng(1), snowfree=snowfree, encoding=ENC)
        assert out.dtype == np.uint16 and out.shape == images.shape
        stats.append(_stat_grows(name)(out, images, snowfree))
    assert all(b > a for a, b in zip(stats, stats[1:])), (name, stats)
    assert np.array_equal(images, before)


def test_the_reflectance_scales_are_the_rgb_scales_in_reflectance_and_the_cast_goes_by_wavelength():
    from deepsnow.validity.ladders import cast_weights

    flat = np.full((1, S, S, 6), 30000, np.uint16)  # far from 0 and 65535: no clipping
    noisy = LADDERS["noise"].degrade(flat, 1.0, np.random.default_rng(0), encoding=ENC)
    # 60 DN of 255 over rgb_max = 1: a standard deviation of 60 / 255 reflectance
    assert noisy.astype(float).std() / 10000 == pytest.approx(60 / 255, rel=0.05)
    checker = LADDERS["checkerboard"].degrade(flat, 1.0, None, encoding=Encoding(BANDS, MASK, (0.5, 2.2)))
    assert np.abs(checker.astype(float) - 30000).max() == pytest.approx(40 / 255 * 0.5 * 10000, abs=0.5)
    weights = dict(zip(BANDS, cast_weights(ENC)))
    assert (weights["B02"], weights["B03"], weights["B04"]) == pytest.approx((1.0, 0.5, 0.2))  # the RGB ladder's
    assert weights["B08"] == pytest.approx(0.2 * (865 - 842) / 200) and weights["B11"] == weights["B12"] == 0.0


def test_without_the_snow_rules_bands_the_spatial_ladder_finds_snow_in_the_composite_as_on_rgb():
    images = _scenes(np.random.default_rng(5), 2, True)[..., :3]
    enc = Encoding(BANDS[:3], MASK, (1.0, 2.2))
    composite = render_composite(images, BANDS[:3], 1.0, 2.2)
    assert np.array_equal(snow_mask(images, enc), snow_mask(composite)) and snow_mask(composite).any()


def test_the_spectral_ladder_keeps_the_composite_and_takes_snow_below_the_ndsi_threshold():
    images = _scenes(np.random.default_rng(2), 3, True)
    snow = snow_pixels(images, BANDS, MASK)
    assert snow.mean() > 0.3
    composite = render_composite(images, BANDS, 1.0, 2.2)
    for level in LEVELS:
        out = LADDERS["spectral"].degrade(images, level, None, encoding=ENC)
        assert np.array_equal(render_composite(out, BANDS, 1.0, 2.2), composite)
        assert np.array_equal(out[..., :4], images[..., :4]) and np.array_equal(out[~snow], images[~snow])
    assert not snow_pixels(out, BANDS, MASK).any()  # level 1: no pixel is snow by the mask's rule


def test_the_histogram_w1_is_scipys_within_a_bin_and_a_replicate_is_its_resampled_set():
    """The physical metrics of a set and of a bootstrap replicate (validity/physical.py) against the
    metrics stage's exact functions on the same (resampled) patches."""
    from deepsnow.metrics.spectral import mean_spectrum
    from deepsnow.validity.physical import physical_metrics, summarise_set

    rng = np.random.default_rng(4)
    real, fake, truth = _scenes(rng, 6, True), _scenes(rng, 5, True), _scenes(rng, 5, True)
    fake[:2] = LADDERS["spectral"].degrade(fake[:2], 0.7, None, encoding=ENC)
    spectrum = mean_spectrum(real)
    draws = [(rng.integers(0, 6, 6), rng.integers(0, 5, 5)) for _ in range(3)]
    value, boots = physical_metrics(
        summarise_set(real, ENC, spectrum), summarise_set(fake, ENC, spectrum, snow_mask(truth, ENC)), draws
    )
    for (ri, ci), got in [((np.arange(6), np.arange(5)), value), *zip(draws, boots)]:
        exact = spectral_columns(real[ri], fake[ci], BANDS, MASK)
        if got is not value:  # a replicate keeps the whole reference set's spectrum for its angles
            from scipy.stats import wasserstein_distance
            from deepsnow.metrics.spectral import spectral_angles

            exact["sam_w1"] = wasserstein_distance(spectral_angles(real[ri], spectrum), spectral_angles(fake[ci], spectrum))
        for name in ("w1_mean", "ndsi_w1", "sam_w1"):
            assert got[name] == pytest.approx(exact[name], abs=1e-3), name
        assert got["snow_share_gap"] == pytest.approx(abs(exact["snow_share_fake"] - exact["snow_share_real"]), abs=1e-12)
        paired = snow_truth_columns(fake[ci], truth[ci], BANDS, MASK)
        assert got["snow_cover_mae"] == pytest.approx(paired["snow_cover_mae"], abs=1e-12)
        assert got["snow_iou"] == pytest.approx(paired["snow_iou"], abs=1e-12)
    assert value["ndsi_w1"] > 0.01  # the raised SWIR of two patches shows


# ----------------------------------------------------------------------------- the stage

N_A, N_B = 10, 12


def _band_extractor():
    """A tiny reflectance simcover stand-in: per-band means of its unit codes."""
    import torch

    from deepsnow.features import Extractor, register_extractor

    class Means(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    bands = {"bands": list(BANDS), "unit_reflectance": [1.0] * len(BANDS)}
    register_extractor("vbands", replace=True)(lambda o, s: Extractor("vbands", Means(), len(BANDS), "none", False, bands=bands))


@pytest.fixture(scope="module")
def tiny_refl(tmp_path_factory):
    from deepsnow.config import parse_params
    from deepsnow.features.embed import build_from_params, embed_real

    _tiny_extractors()
    _band_extractor()
    d = tmp_path_factory.mktemp("validity-refl")
    rng = np.random.default_rng(3)
    refl = {"bands": np.array(BANDS), "encoding": np.array("reflectance")}
    a, truth, b = _scenes(rng, N_A, False), _scenes(rng, N_A, True), _scenes(rng, N_B, True)
    save_npz(d / "testA.npz", reflectance=a, ids=np.array([f"a{i}" for i in range(N_A)]), truth_snowfall=truth, **refl)
    save_npz(d / "testB.npz", reflectance=b, ids=np.array([f"b{i}" for i in range(N_B)]), **refl)
    save_npz(d / "rgbA.npz", rgb=render_composite(a, BANDS, 1.0, 2.2), ids=np.array([f"a{i}" for i in range(N_A)]))
    save_npz(d / "rgbB.npz", rgb=render_composite(b, BANDS, 1.0, 2.2), ids=np.array([f"b{i}" for i in range(N_B)]))
    features = parse_params(json.dumps({"progress": False}), "features")
    for name in ("vmeans", "vstats", "vbands"):
        embed_real(d / "testA.npz", d / "testB.npz", d / f"real_{name}.npz", build_from_params(name, features), features)
    return d


def _validity(d, out, ladders, mask=True, test_a="testA.npz", test_b="testB.npz"):
    from deepsnow.cli import main

    params = {"prdc_k": 2, "n_bootstrap": 3, "levels": LEVELS, "ladders": ladders}
    return main([
        "metrics", "validity", "--params", json.dumps(params), "--metrics-params", json.dumps(METRICS),
        "--features-params", json.dumps({"progress": False}), "--test-a", str(d / test_a), "--test-b", str(d / test_b),
        "--real", *(str(d / f"real_{x}.npz") for x in ("vmeans", "vstats", "vbands")), "--output", str(out), "--threads", "1",
        *(["--mask-params", json.dumps(MASK)] if mask else []),
    ])


def test_the_stage_measures_the_physical_metrics_and_the_spectral_ladder_is_invisible_in_rgb(tiny_refl, tmp_path):
    out = tmp_path / "validity.csv"
    assert _validity(tiny_refl, out, ["noise", "spectral"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    series = lambda mode, ladder, metric: [  # noqa: E731
        float(r["value"]) for r in rows if (r["mode"], r["ladder"], r["metric"]) == (mode, ladder, metric)
    ]
    physical = {"w1_mean", "ndsi_w1", "sam_w1", "snow_share_gap"}
    assert physical <= {r["metric"] for r in rows if r["mode"] == "half"}
    assert physical | {"snow_cover_mae", "snow_iou"} <= {r["metric"] for r in rows if r["mode"] == "truth"}
    worse = {r["metric"]: r["worse_when"] for r in rows}
    assert {m: worse[m] for m in physical | {"snow_cover_mae", "snow_iou"}} == {
        **{m: "higher" for m in physical | {"snow_cover_mae"}}, "snow_iou": "lower"}
    for mode in ("half", "truth"):
        for metric in ("fid", "frd", "crd", "fd_vmeans", "cd_vstats", "precision_vmeans"):
            assert len(set(series(mode, "spectral", metric))) == 1, (mode, metric)  # exactly flat: the same composite
        for metric in ("ndsi_w1", "fd_vbands"):
            values = series(mode, "spectral", metric)
            assert all(b > a for a, b in zip(values, values[1:])), (mode, metric, values)
        gap = series(mode, "spectral", "snow_share_gap")  # a step per pixel crossing mask.ndsi_min
        assert all(b >= a for a, b in zip(gap, gap[1:])) and gap[-1] > gap[0] + 0.2, (mode, gap)
        ci = [(float(r["ci_low"]), float(r["ci_high"])) for r in rows if (r["mode"], r["metric"]) == (mode, "ndsi_w1")]
        assert all(np.isfinite(lo) and lo <= hi for lo, hi in ci)
    iou = series("truth", "spectral", "snow_iou")
    assert iou[0] == 1.0 and iou[-1] == 0.0  # level 0 is the truth; level 1 has no snow left by the mask's rule
    assert series("half", "noise", "w1_mean")[-1] > series("half", "noise", "w1_mean")[0]


def test_level_0_is_embedded_as_the_run_embedded_its_reflectance_test_sets(tiny_refl):
    """The half mode's level-0 features are rows of the real features: the ladders' view of
    reflectance (composite, or the bands of a reflectance simcover) is the embed stage's."""
    from deepsnow.config import parse_params
    from deepsnow.io import load_npz
    from deepsnow.metrics.load import load_real
    from deepsnow.validity.run import build_extractors, embed, extractor_view
    from deepsnow.validity.sets import half_mode

    real = load_real([tiny_refl / f"real_{x}.npz" for x in ("vmeans", "vstats", "vbands")])
    mode = half_mode(load_npz(tiny_refl / "testA.npz"), load_npz(tiny_refl / "testB.npz"), real, 0, "testB")
    features = parse_params(json.dumps({"progress": False}), "features")
    for name, ext in build_extractors(features, real, None).items():
        assert np.array_equal(embed(extractor_view(mode.images, ext, ENC), ext, features), mode.level0[name]), name


def test_a_spectral_ladder_without_reflectance_or_the_mask_is_refused(tiny_refl, tmp_path, capsys):
    out = tmp_path / "v.csv"
    assert _validity(tiny_refl, out, ["blur"], mask=False) == 2
    assert "give the 'mask' config section (--mask-params)" in capsys.readouterr().err
    assert _validity(tiny_refl, out, ["spectral"], test_a="rgbA.npz") == 2
    assert "rgbA.npz and" in capsys.readouterr().err  # reflectance B with RGB A
    assert _validity(tiny_refl, out, ["blur", "spectral"], test_a="rgbA.npz", test_b="rgbB.npz") == 2
    err = capsys.readouterr().err
    assert "key 'validity.ladders': the spectral ladder" in err and "but they hold 8-bit RGB" in err and "rgbB.npz" in err
    assert not out.exists()


def test_the_config_refuses_a_spectral_ladder_without_the_swir_naming_the_keys():
    from deepsnow.config import merge_config, validate_config
    from helpers import merged_config

    for patches in ({}, {"encoding": "reflectance", "bands": ["B02", "B03", "B04", "B08"]}):
        config = merge_config(merged_config(), {"validity": {"ladders": ["blur", "spectral"]}, "patches": patches})
        with pytest.raises(DeepsnowError) as err:
            validate_config(config)
        assert "key 'validity.ladders': the spectral ladder" in str(err.value) and "patches.bands" in str(err.value)
    ok = {"validity": {"ladders": ["spectral"]}, "patches": {"encoding": "reflectance", "bands": list(BANDS)}}
    validate_config(merge_config(merged_config(), ok))


def test_figure12_does_not_call_a_metric_flat_on_a_ladder_monotone_everywhere():
    import pandas as pd

    from deepsnow.figures.validity import _monotone_everywhere

    index = pd.MultiIndex.from_tuples(
        [("half", lad, m) for lad in ("blur", "spectral") for m in ("fid", "ndsi_w1")], names=["mode", "ladder", "metric"]
    )
    rho = pd.Series([1.0, 1.0, np.nan, 1.0], index=index)  # fid does not move on the spectral ladder
    assert _monotone_everywhere(rho) == {"half": ["ndsi_w1"]}
