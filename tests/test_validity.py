"""Metric validity (``deepsnow metrics validity``): the ladders, the statistics along them, the
stage on a tiny data set in both modes, and the refusals of bad input (the workflow's own run:
tests/test_workflow.py)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import copy_workflow, merged_config, simd_level, snakemake
from deepsnow import DeepsnowError
from deepsnow.config import merge_config, validate_config
from deepsnow.io import save_npz
from deepsnow.validity.ladders import LADDERS, REFLECTANCE_ONLY, checker_pattern, snow_mask
from deepsnow.validity.stats import bootstrap_interval, sensitivity, spearman_rho, summarise, worse_sign

LEVELS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
S = 64


def _images(rng) -> tuple[np.ndarray, np.ndarray]:
    """Snowy patches (a bright 32 px block on grey, with texture) and dark snow-free ones."""
    snowy = np.full((3, S, S, 3), 110.0) + rng.normal(0, 20, (3, S, S, 3))
    snowy[:, :32, :32] = 235 + rng.normal(0, 5, (3, 32, 32, 3))
    snowfree = np.full((3, S, S, 3), 40.0) + rng.normal(0, 5, (3, S, S, 3))
    return np.clip(snowy, 0, 255).astype(np.uint8), np.clip(snowfree, 0, 255).astype(np.uint8)


#: per ladder, a statistic of (degraded, original, snow-free) that must grow with the level
GROWS = {
    "blur": lambda out, img, free: -np.abs(np.diff(out.astype(float), axis=2)).mean(),
    "noise": lambda out, img, free: np.abs(out.astype(float) - img).mean(),
    "checkerboard": lambda out, img, free: ((out.astype(float) - img) * checker_pattern(S, S)[None, :, :, None]).mean(),
    "partial": lambda out, img, free: -np.abs(out.astype(float) - free).mean(),
    "cast": lambda out, img, free: (out[..., 0].astype(float) - out[..., 2]).mean(),
    "spatial": lambda out, img, free: (out != img).any(axis=-1).mean(),
}


def test_every_rgb_ladder_has_a_statistic_here():
    assert set(GROWS) == set(LADDERS) - set(REFLECTANCE_ONLY) and len(GROWS) >= 6


@pytest.mark.parametrize("name", list(GROWS))
def test_a_ladder_is_the_identity_at_level_0_and_monotone_in_its_statistic(name):
    rng = np.random.default_rng(0)
    images, snowfree = _images(rng)
    ladder = LADDERS[name]
    assert np.array_equal(ladder.degrade(images, 0.0, np.random.default_rng(1), snowfree=snowfree), images)
    stats = []
    for level in LEVELS:
        out = ladder.degrade(images, level, np.random.default_rng(1), snowfree=snowfree)
        assert out.dtype == np.uint8 and out.shape == images.shape
        stats.append(GROWS[name](out, images, snowfree))
    assert all(b > a for a, b in zip(stats, stats[1:])), (name, stats)
    assert np.array_equal(images, _images(np.random.default_rng(0))[0])  # the input is left as it was


def test_the_spatial_ladder_moves_snow_without_changing_its_amount():
    images, snowfree = _images(np.random.default_rng(0))
    moved = LADDERS["spatial"].degrade(images, 1.0, None, snowfree=snowfree)
    assert snow_mask(moved).sum() == snow_mask(images).sum()
    assert not (snow_mask(moved) & snow_mask(images)).any()  # half the patch away: no overlap left


# ----------------------------------------------------------------------------- the statistics


def test_rho_is_sign_corrected_nan_when_constant_and_partial_when_not_monotone():
    assert spearman_rho(LEVELS, [1, 2, 3, 4, 5, 6]) == pytest.approx(1.0)
    assert np.isnan(spearman_rho(LEVELS, [3.0] * 6))
    assert np.isnan(spearman_rho(LEVELS, [1, 2, np.nan, 4, 5, 6]))
    zigzag = spearman_rho(LEVELS, [0, 2, 1, 3, 2, 4])
    assert 0 < zigzag < 1
    assert worse_sign("fid") == 1 and worse_sign("fd_simcover") == 1 and worse_sign("kid_mean") == 1
    assert worse_sign("precision_inception") == -1 and worse_sign("rf_logloss_mean") == -1
    falling = [0.9, 0.8, 0.7, 0.5, 0.3, 0.1]
    boot = [[v - 0.01, v, v + 0.01] for v in falling]
    assert summarise("coverage_resnet50", LEVELS, falling, boot)["rho"] == pytest.approx(1.0)
    assert summarise("cd_resnet50", LEVELS, falling, boot)["rho"] == pytest.approx(-1.0)
    assert summarise("coverage_resnet50", LEVELS, falling, boot)["worse_when"] == "lower"


def test_the_interval_is_shifted_to_the_value_and_the_sensitivity_is_the_first_level_outside():
    samples = np.linspace(2.0, 3.0, 101)  # replicates biased upwards by 1.5 against the value 1
    low, high = bootstrap_interval(1.0, samples)
    assert low == pytest.approx(2.025 - 1.5) and high == pytest.approx(2.975 - 1.5)
    assert np.isnan(bootstrap_interval(1.0, [1.0, np.nan])[0])
    values = [1.0, 1.1, 1.3, 2.0, 3.0, 4.0]
    assert sensitivity(LEVELS, values, (0.9, 1.35)) == 0.6
    assert sensitivity(LEVELS, [1.0, 0.5, 1.0, 1.0, 1.0, 1.0], (0.9, 1.1)) == 0.2  # outside below counts too
    assert np.isnan(sensitivity(LEVELS, [1.0] * 6, (0.9, 1.1)))
    assert np.isnan(sensitivity(LEVELS, values, (np.nan, np.nan)))
    s = summarise("fid", LEVELS, values, [[v + 0.5 + d for d in (-0.1, 0, 0.1)] for v in values])
    assert s["intervals"][0] == pytest.approx((0.905, 1.095)) and s["sensitivity"] == 0.2


# ----------------------------------------------------------------------------- the stage


N_A, N_B, P = 10, 12, 16


def _tiny_extractors():
    """Two cheap extractors registered in this process: per-band means, and per-band means and spreads."""
    import torch

    from deepsnow.features import Extractor, register_extractor

    class Means(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class MeanStd(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    register_extractor("vmeans", replace=True)(lambda o, s: Extractor("vmeans", Means(), 3, "none", False))
    register_extractor("vstats", replace=True)(lambda o, s: Extractor("vstats", MeanStd(), 6, "none", False))


METRICS = {
    "inception_extractor": "vmeans", "resnet_extractor": "vstats", "rf_repeats": 1, "rf_n_estimators": 5,
    "kid_subsets": 3, "n_jobs": 1,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Test sets with a reachable truth, and their real features by the two tiny extractors."""
    from deepsnow.config import parse_params
    from deepsnow.features.embed import build_from_params, embed_real

    _tiny_extractors()
    d = tmp_path_factory.mktemp("validity")
    rng = np.random.default_rng(3)
    a = rng.integers(20, 90, (N_A, P, P, 3), dtype=np.uint8)
    truth = np.clip(a.astype(int) + 150, 0, 255).astype(np.uint8)
    b = rng.integers(160, 256, (N_B, P, P, 3), dtype=np.uint8)
    save_npz(d / "testA.npz", rgb=a, ids=np.array([f"a{i}" for i in range(N_A)]), truth=truth, truth_snowfall=truth)
    save_npz(d / "testB.npz", rgb=b, ids=np.array([f"b{i}" for i in range(N_B)]))
    features = parse_params(json.dumps({"progress": False}), "features")
    for name in ("vmeans", "vstats"):
        embed_real(d / "testA.npz", d / "testB.npz", d / f"real_{name}.npz", build_from_params(name, features), features)
    return d


def _validity(d, out, params=None, test_a="testA.npz", metrics=None):
    from deepsnow.cli import main

    return main([
        "metrics", "validity", "--params", json.dumps(params or {"prdc_k": 2, "n_bootstrap": 3}),
        "--metrics-params", json.dumps(metrics or METRICS), "--features-params", json.dumps({"progress": False}),
        "--test-a", str(d / test_a), "--test-b", str(d / "testB.npz"),
        "--real", str(d / "real_vmeans.npz"), str(d / "real_vstats.npz"), "--output", str(out), "--threads", "1",
    ])


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_stage_writes_every_mode_ladder_metric_and_level(tiny, tmp_path):
    out = tmp_path / "validity.csv"
    assert _validity(tiny, out) == 0
    rows = _rows(out)
    metrics = {"fid", "frd", "crd", "kid_mean", "rf_logloss_mean"} | {
        f"{m}_{x}" for m in ("fd", "cd", "precision", "recall", "density", "coverage") for x in ("vmeans", "vstats")
    }
    keys = {(r["mode"], r["ladder"], r["metric"], float(r["level"])) for r in rows}
    assert keys == {(m, lad, x, lv) for m in ("half", "truth") for lad in GROWS for x in metrics for lv in LEVELS}
    assert len(rows) == len(keys)
    for r in rows:
        assert r["worse_when"] == ("lower" if worse_sign(r["metric"]) < 0 else "higher")
        assert (r["ci_low"] == "") == (r["ci_high"] == "")
        assert r["ci_low"] == "" or float(r["ci_low"]) <= float(r["ci_high"])
    half = [r for r in rows if r["mode"] == "half"]
    assert {(r["n_reference"], r["n_candidate"]) for r in half} == {("6", "6")}
    assert {(r["n_reference"], r["n_candidate"]) for r in rows if r["mode"] == "truth"} == {(str(N_B), str(N_A))}
    # the bright-to-dark ladders move the per-band means monotonely: their Fréchet distance says so
    for ladder in ("partial", "cast"):
        (rho,) = {r["rho"] for r in rows if (r["mode"], r["ladder"], r["metric"]) == ("truth", ladder, "fd_vmeans")}
        assert float(rho) == pytest.approx(1.0), ladder
    assert json.loads(Path(f"{out}.prov.json").read_text())["stage"] == "validity"
    if torch_build_of_the_pin() and simd_level() in RGB_TABLE_SHA256:
        assert hashlib.sha256(out.read_bytes()).hexdigest()[:16] == RGB_TABLE_SHA256[simd_level()]


#: sha256[:16] of the table above as main wrote it at 1f7d3f1, before the ladders took reflectance
#: (issue #28): RGB runs' validity.csv is unchanged by them. Taken on an AVX2 CPU: other SIMD levels
#: round the extractors' floats differently (tests/helpers.py ``simd_level``), so there it is not checked.
RGB_TABLE_SHA256 = {"AVX2": "6c2637073b7f160a"}


def torch_build_of_the_pin() -> bool:
    """The pin was taken with torch 2.14.1 on this machine's CPU; another build may round the tiny
    extractors' means differently (as tests/test_rgb_unchanged.py)."""
    import torch

    return torch.__version__.startswith("2.14.1")


def test_level_0_of_the_half_mode_reuses_the_real_features(tiny, tmp_path):
    """Level 0 in half mode is measured on rows of the real features, as the metrics stage would."""
    from deepsnow.metrics.epoch import set_metrics
    from deepsnow.metrics.load import load_real
    from deepsnow.config import validate_section
    from deepsnow.io import load_npz
    from deepsnow.validity.run import selected
    from deepsnow.validity.sets import half_mode, metrics_params

    out = tmp_path / "validity.csv"
    assert _validity(tiny, out) == 0
    real = load_real([tiny / "real_vmeans.npz", tiny / "real_vstats.npz"])
    mode = half_mode(load_npz(tiny / "testA.npz"), load_npz(tiny / "testB.npz"), real, 0, "testB")
    params = metrics_params(validate_section("metrics", METRICS), {"prdc_k": 2})
    expected = selected(set_metrics(mode.reference, mode.level0, params, 1))
    got = {r["metric"]: float(r["value"]) for r in _rows(out) if r["mode"] == "half" and r["ladder"] == "blur" and r["level"] == "0.0"}
    assert got == pytest.approx(expected)


def test_a_replicates_metrics_are_set_metrics_on_its_resampled_rows():
    """The replicates' metrics come from pairwise matrices computed once (validity/replicates.py):
    the same as the metrics stage's functions on the rows drawn, repeats and all, and the Fréchet
    distance both where set_metrics uses its covariance form (D = 3) and its sample-space form."""
    from deepsnow.config import validate_section
    from deepsnow.metrics.epoch import set_metrics
    from deepsnow.validity.replicates import replicate_metrics
    from deepsnow.validity.run import selected
    from deepsnow.validity.sets import metrics_params

    rng = np.random.default_rng(5)
    dims = {"vmeans": 3, "vstats": 6, "wide": 40}
    ref = {k: rng.gamma(2.0, size=(14, d)).astype(np.float32) for k, d in dims.items()}
    cand = {k: (rng.gamma(2.2, size=(11, d)) + 0.1).astype(np.float32) for k, d in dims.items()}
    params = metrics_params(validate_section("metrics", {**METRICS, "kid_subsets": 4}), {"prdc_k": 3})
    draws = [(rng.integers(0, 14, 14), rng.integers(0, 11, 11)) for _ in range(4)]
    for (ri, ci), got in zip(draws, replicate_metrics(ref, cand, params, draws)):
        expected = selected(set_metrics({k: v[ri] for k, v in ref.items()}, {k: v[ci] for k, v in cand.items()}, params, 1))
        assert list(got) == list(expected)
        # rel 1e-7: set_metrics's covariance form (n m > D²) takes square roots of round-off-sized
        # eigenvalues, ~1e-9 relative off the sample-space form that the replicates use
        assert got == pytest.approx(expected, rel=1e-7, abs=1e-12)


def test_without_a_reachable_truth_only_the_half_mode_runs(tiny, tmp_path):
    from deepsnow.io import load_npz

    a = load_npz(tiny / "testA.npz")
    del a["truth_snowfall"]
    save_npz(tiny / "testA_plain.npz", **a)
    out = tmp_path / "validity.csv"
    assert _validity(tiny, out, test_a="testA_plain.npz") == 0
    assert {r["mode"] for r in _rows(out)} == {"half"}


def test_too_few_patches_are_refused_naming_the_key(tiny, tmp_path, capsys):
    out = tmp_path / "validity.csv"
    assert _validity(tiny, out, params={"prdc_k": 6, "n_bootstrap": 3}) == 2
    err = capsys.readouterr().err
    assert "key 'validity'" in err and "mode 'half' compares 6 reference with 6 candidate" in err and "at least 7" in err
    assert not out.exists()


def test_a_bad_reachable_truth_is_refused_naming_the_file(tiny, tmp_path, capsys):
    from deepsnow.io import load_npz

    a = load_npz(tiny / "testA.npz")
    a["truth_snowfall"] = a["truth_snowfall"][:, :8]
    save_npz(tiny / "testA_bad.npz", **a)
    assert _validity(tiny, tmp_path / "v.csv", test_a="testA_bad.npz") == 2
    assert "testA_bad.npz: 'truth_snowfall' must be uint8 RGB shaped as the test images" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad config


@pytest.mark.parametrize(
    "validity, needle",
    [
        ({"ladders": ["blur", "swirl"]}, "key 'validity.ladders[1]': unknown ladder 'swirl'"),
        ({"levels": [0.0, 0.5, 0.5, 0.7, 1.0]}, "key 'validity.levels[2]': levels must increase strictly"),
        ({"levels": [0.0, 0.6, 0.4, 0.8, 1.0]}, "key 'validity.levels[2]'"),
        ({"levels": [0.1, 0.2, 0.4, 0.8, 1.0]}, "key 'validity.levels[0]': the first level must be 0"),
        ({"levels": [0.0, 0.5, 1.0]}, "key 'validity.levels'"),
        ({"n_bootstrap": 1}, "key 'validity.n_bootstrap'"),
    ],
)
def test_bad_validity_settings_are_refused_naming_the_key(validity, needle):
    config = merge_config(merged_config(), {"validity": validity})
    with pytest.raises(DeepsnowError) as err:
        validate_config(config)
    assert needle in str(err.value)


def test_the_dag_build_refuses_too_few_test_patches_and_an_unknown_ladder(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    summary = work / "results/test/dataset/summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"counts": {"trainA": 40, "trainB": 44, "testA": 25, "testB": 7}}))
    proc = snakemake(work, "-n", "--configfile", "configs/test.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "key 'validity'" in out and "compares 3 reference with 4 candidate" in out, out[-3000:]
    (tmp_path / "bad.yaml").write_text("validity:\n  ladders: [blur, swirl]\n")
    proc = snakemake(work, "-n", "--configfile", "configs/test.yaml", str(tmp_path / "bad.yaml"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "key 'validity.ladders[1]': unknown ladder 'swirl'" in out, out[-3000:]
