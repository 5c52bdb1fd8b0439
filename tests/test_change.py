"""Change-detection testbed: detectors against their formulas, implants, known cases."""

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.change import detectors as det
from deepsnow.change.implant import check_fraction, implant_mask, pixel_swap


def _correlated(n=4000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ a + 5.0
    m = rng.normal(size=(d, d))
    y = x @ m + 0.3 * rng.normal(size=(n, d)) @ a - 2.0
    return x, y


def _q(v, s):
    v = v - v.mean(axis=0)
    return np.array([vi @ np.linalg.solve(s, vi) for vi in v])


def _cov(v):
    return np.cov(v, rowvar=False, bias=True)


def _isqrt(s):
    w, u = np.linalg.eigh(s)
    return u @ np.diag(w**-0.5) @ u.T


@pytest.fixture(params=["no_ridge", "ridge"])
def rtol(request, monkeypatch):
    """Exact formulas with the ridge off; within 1e-6 with the documented ridge on."""
    if request.param == "no_ridge":
        monkeypatch.setattr(det, "RIDGE", 0.0)
        return 1e-8
    return 1e-6


def _tol(rtol):
    """Absolute tolerance for a score that is a difference of quadratic forms (~d each)."""
    return 10 * rtol


def test_rx_difference_matches_formula(rtol):
    x, y = _correlated()
    e = y - x
    assert np.allclose(det.rx_difference(x, y, chunk=777), _q(e, _cov(e)), rtol=rtol)


def test_chronochrome_matches_formula(rtol):
    x, y = _correlated()
    xc, yc = x - x.mean(0), y - y.mean(0)
    X, Y, C = xc.T @ xc / len(x), yc.T @ yc / len(x), yc.T @ xc / len(x)
    r = yc - xc @ (C @ np.linalg.inv(X)).T
    R = Y - C @ np.linalg.inv(X) @ C.T
    assert np.allclose(det.chronochrome(x, y, chunk=500), _q(r, R), rtol=rtol)


def test_covariance_equalization_matches_formula(rtol):
    x, y = _correlated()
    xc, yc = x - x.mean(0), y - y.mean(0)
    e = yc @ _isqrt(_cov(y)) - xc @ _isqrt(_cov(x))
    assert np.allclose(det.covariance_equalization(x, y, chunk=999), _q(e, _cov(e)), rtol=rtol)


def test_hyperbolic_matches_formula(rtol):
    x, y = _correlated()
    z = np.concatenate([x, y], axis=1)
    want = _q(z, _cov(z)) - _q(x, _cov(x)) - _q(y, _cov(y))
    got = det.hyperbolic_acd(x, y, chunk=1234)
    assert np.allclose(got, want, rtol=rtol, atol=_tol(rtol))


def test_chunking_does_not_change_scores():
    x, y = _correlated(n=3001)
    for fn in det.DETECTORS.values():
        assert np.allclose(fn(x, y, chunk=100), fn(x, y), rtol=1e-9, atol=1e-9)


def test_uint8_inputs_accepted():
    x, y = _correlated()
    xu = np.clip(x * 20 + 100, 0, 255).astype(np.uint8)
    yu = np.clip(y * 20 + 100, 0, 255).astype(np.uint8)
    for fn in det.DETECTORS.values():
        want = fn(xu.astype(np.float64), yu.astype(np.float64))
        assert np.allclose(fn(xu, yu, chunk=333), want, rtol=1e-8)


def test_identical_images_rx_difference_handled():
    x, _ = _correlated()
    scores = det.rx_difference(x, x.copy())
    assert np.all(np.isfinite(scores)) and np.all(scores == 0.0)
    assert np.all(np.isfinite(det.covariance_equalization(x, x.copy())))


def test_linear_change_chronochrome_zero_except_implants():
    rng = np.random.default_rng(3)
    h = w = 60
    before = rng.normal(size=(3, h, w)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    a = rng.normal(size=(3, 3))
    after = np.einsum("ij,jhw->ihw", a, before) + np.array([1.0, -2.0, 3.0])[:, None, None]
    x, y = before.reshape(3, -1).T, after.reshape(3, -1).T
    assert np.max(det.chronochrome(x, y)) < 1e-6  # exact linear change: nothing anomalous (~d)
    valid = np.ones((h, w), bool)
    mask = implant_mask(valid, 0.01, 3, seed=1)
    implanted = pixel_swap(after, mask, valid, seed=1)
    x = before.reshape(3, -1).T
    y = implanted.reshape(3, -1).T
    s = det.chronochrome(x, y)
    m = mask.ravel()
    # y = Ax + b exactly outside the implants: the residual there is ~0 next to the
    # implants' (the statistics include the implants, which perturb the fit a little)
    assert np.median(s[~m]) < 1e-2 * np.median(s[m])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(m, s) > 0.99


def test_constant_band_stays_finite():
    x, y = _correlated()
    x[:, 1] = 7.0
    y[:, 2] = 0.0
    for fn in det.DETECTORS.values():
        assert np.all(np.isfinite(fn(x, y)))


def test_shape_errors():
    with pytest.raises(DeepsnowError, match="equal N"):
        det.chronochrome(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(DeepsnowError, match="same bands"):
        det.rx_difference(np.zeros((5, 3)), np.zeros((5, 2)))


@pytest.mark.parametrize("bad", [0, 0.5, -0.1, 0.7])
def test_fraction_outside_interval(bad):
    with pytest.raises(DeepsnowError, match=r"implant_fraction must be in \(0, 0.5\)"):
        check_fraction(bad)


def test_implant_mask_seeded_within_valid():
    valid = np.ones((50, 40), bool)
    valid[:, :10] = False
    m1 = implant_mask(valid, 0.1, 4, seed=7)
    assert np.array_equal(m1, implant_mask(valid, 0.1, 4, seed=7))
    assert not np.array_equal(m1, implant_mask(valid, 0.1, 4, seed=8))
    assert not (m1 & ~valid).any()
    assert abs(m1.sum() - 0.1 * valid.sum()) <= 16


@pytest.mark.parametrize(
    ("shape", "density", "max_pixels", "seed"),
    [
        ((300, 400), 0.7, 30000, 0),  # numpy's tail shuffle: sample > valid / 50
        ((300, 400), 0.9, 100000, 5),  # most valid pixels used: long overwrite chains
        ((300, 400), 0.5, 500, 1),  # Floyd's algorithm: sample <= valid / 50
        ((90, 100), 0.8, 3000, 2),  # population under 10000: tail shuffle regardless
        ((50, 60), 0.5, 10**6, 3),  # fewer valid than max_pixels: all of them
    ],
)
def test_choose_pixels_is_numpys_choice_of_the_valid_indices(shape, density, max_pixels, seed):
    from deepsnow.change.evaluate import choose_pixels

    valid = np.random.default_rng(seed + 100).random(shape) < density
    valid[7] = False  # an empty row
    flat = np.flatnonzero(valid.ravel())
    expect = flat
    if flat.size > max_pixels:
        expect = np.sort(np.random.default_rng([seed, 2]).choice(flat, size=max_pixels, replace=False))
    got = choose_pixels(valid, max_pixels, seed)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expect)


def test_sample_ranks_replays_the_tail_shuffle_exactly():
    from deepsnow.change.sampling import sample_ranks

    for n, size, seed in [(10001, 9000, 0), (20000, 401, 1), (250000, 60000, 2)]:
        expect = np.random.default_rng([seed, 2]).choice(n, size=size, replace=False)
        got = sample_ranks(np.random.default_rng([seed, 2]), n, size)
        np.testing.assert_array_equal(np.sort(got), np.sort(expect))


def test_pixel_swap_takes_after_values_from_elsewhere():
    rng = np.random.default_rng(0)
    after = rng.integers(0, 255, size=(3, 30, 30)).astype(np.uint8)
    valid = np.ones((30, 30), bool)
    mask = implant_mask(valid, 0.1, 3, seed=2)
    out = pixel_swap(after, mask, valid, seed=2)
    assert np.array_equal(out[:, ~mask], after[:, ~mask])
    donors = {tuple(p) for p in after[:, ~mask].T}
    assert all(tuple(p) in donors for p in out[:, mask].T)
    assert not np.array_equal(out[:, mask], after[:, mask])


# --------------------------------------------------------------------------- the stage, end to end

DETECTOR_NAMES = {"rx_difference", "chronochrome", "covariance_equalization", "hyperbolic_acd"}


def test_workflow_writes_change_summary_and_figure10(test_config_run):
    """configs/test.yaml: the four detectors x real, synthetic, truth per held-out area, Figure 10."""
    import csv
    import json

    res = test_config_run / "results" / "test"
    rows = list(csv.DictReader((res / "change" / "summary.csv").open()))
    assert {r["detector"] for r in rows} == DETECTOR_NAMES
    assert {r["pair"] for r in rows} == {"real", "synthetic", "truth"}
    assert len(rows) == 4 * 3 * len({r["area"] for r in rows})
    for r in rows:
        assert 0.0 <= float(r["auc"]) <= 1.0 and int(r["n_implanted"]) > 0
        assert int(r["n_pixels"]) > int(r["n_implanted"])
        if r["pair"] == "real":  # the threshold is set on the real pair's untouched pixels
            assert float(r["far_at_real_threshold"]) <= 0.011
    summary = json.loads((res / "change" / "summary.json").read_text())
    gaps = summary["gaps"]["rgb"]["detectors"]
    for d, g in gaps.items():
        assert g["gap_synthetic_real"] == pytest.approx(abs(g["auc"]["synthetic"] - g["auc"]["real"]))
    assert "|AUC_synthetic - AUC_real|" in summary["sentences"]["rgb"]
    taus = summary["ranking_agreement"]
    assert {t["pairs"] for t in taus} == {"synthetic_vs_real", "truth_vs_real"}
    assert all(t["n_detectors"] == 4 and (t["tau"] is None) == bool(t["reason"]) for t in taus)
    # two tables, each with a header row: the taus, then the rows
    assert (res / "change" / "summary.html").read_text().count("<tr") == len(taus) + 1 + len(rows) + 1
    assert (res / "figures" / "figure10.png").stat().st_size > 10_000
    prov = json.loads((res / "change" / "summary.csv.prov.json").read_text())
    assert prov["stage"] == "change_summary"


def _area_args(res, area, **override):
    files = {
        "--before": res / f"scenes/{area}/snowfree.tif",
        "--before-mask": res / f"masks/{area}/snowfree.tif",
        "--real": res / f"scenes/{area}/snow.tif",
        "--real-mask": res / f"masks/{area}/snow.tif",
        "--synthetic": res / f"synthetic/{area}/snow.tif",
        "--truth": res / f"truth/{area}/snow.tif",
    }
    files.update(override)
    return ["change", "area", "--area", area] + [str(v) for kv in files.items() for v in kv]


def _write_product(path, like, transform=None, fill=None, valid=True):
    import rasterio

    with rasterio.open(like) as src:
        profile = src.profile | {"driver": "GTiff", "transform": transform or src.transform}
        data = src.read()
    if fill is not None:
        data[fill] = 77
    with rasterio.open(path, "w", **{k: v for k, v in profile.items() if k != "compress"}) as dst:
        dst.write(data)
        dst.write_mask(np.full(data.shape[1:], 255 if valid else 0, np.uint8))
    return path


@pytest.mark.parametrize("case", ["grid", "constant", "empty", "fraction"])
def test_change_area_bad_input(test_config_run, tmp_path, capsys, case):
    """Different grids, a constant band, no valid pixels, an implant fraction outside (0, 0.5):
    exit 2, a message naming the area and the file, no output."""
    from affine import Affine

    from deepsnow.cli import main

    res = test_config_run / "results" / "test"
    area = sorted(p.name for p in (res / "change").glob("*.json") if p.stem != "summary")[0][: -len(".json")]
    synthetic = res / f"synthetic/{area}/snow.tif"
    out = tmp_path / "out.json"
    params, override, expect = "{}", {}, ""
    if case == "grid":
        import rasterio

        t = rasterio.open(synthetic).transform
        bad = _write_product(tmp_path / "shifted.tif", synthetic, transform=t * Affine.translation(3, 0))
        override, expect = {"--synthetic": bad}, "is not on the grid of"
    elif case == "constant":
        bad = _write_product(tmp_path / "flat.tif", synthetic, fill=1)
        override, expect = {"--synthetic": bad}, "constant at 77"
    elif case == "empty":
        bad = _write_product(tmp_path / "masked.tif", synthetic, valid=False)
        override, expect = {"--synthetic": bad}, "pixels valid in every image"
    else:
        params, expect = '{"implant_fraction": 0.6}', "implant_fraction"
    args = _area_args(res, area, **override) + ["--output", str(out), "--params", params]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expect in err
    if case != "fraction":  # the fraction is refused with the --params section, before any file
        assert f"area {area}" in err and override["--synthetic"].name in err
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))


def test_change_area_reflectance_band_set(test_config_run, tmp_path):
    """With the synthetic reflectance product (synthesize.reflectance), a second band set."""
    import json

    import rasterio

    from deepsnow.cli import main
    from deepsnow.synthesize.products import reflectance_from_rgb, write_cog

    res = test_config_run / "results" / "test"
    synthetic = res / "synthetic/sim02/snow.tif"
    with rasterio.open(synthetic) as src:
        refl = reflectance_from_rgb(np.moveaxis(src.read(), 0, -1), 1.0, 2.2)
        write_cog(tmp_path / "refl.tif", refl, src.crs, src.transform, src.read_masks(1) > 0,
                  ("B04", "B03", "B02"), {}, scale=1e-4)
    out = tmp_path / "r.json"
    args = _area_args(res, "sim02") + ["--synthetic-reflectance", str(tmp_path / "refl.tif"), "--output", str(out)]
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert set(record["band_sets"]) == {"rgb", "reflectance"}
    for res_det in record["band_sets"]["reflectance"].values():
        assert set(res_det["pairs"]) == {"real", "synthetic", "truth"}
        assert all(0 <= p["auc"] <= 1 for p in res_det["pairs"].values())


# --------------------------------------------------------------------------- detectors as plug-ins

BUILTIN_ORDER = ["rx_difference", "chronochrome", "covariance_equalization", "hyperbolic_acd"]


def _write_small_area(d):
    """One small area's before, real and true after scenes (after ~ a gain of before), their masks,
    and a synthetic RGB product: the inputs of ``deepsnow change area``; returns its arguments."""
    import rasterio
    from rasterio.transform import Affine

    from deepsnow.data.scene import write_scene
    from deepsnow.synthesize.products import write_cog

    rng, h, w = np.random.default_rng(5), 60, 70
    crs, transform = "EPSG:32632", Affine(10, 0, 600000, 0, -10, 5150000)
    base = {b: rng.uniform(0.05, 0.45, (h, w)) for b in ("B04", "B03", "B02", "B08", "B11")}
    d.mkdir(parents=True, exist_ok=True)
    for name, gain in (("snowfree", 1.0), ("snow", 1.6), ("truth", 1.5)):
        refl = {b: np.clip(gain * v + 0.02 * rng.standard_normal((h, w)), 0, 1).astype(np.float32) for b, v in base.items()}
        write_scene(d / f"{name}.tif", refl, np.full((h, w), 4, np.uint8), np.ones((h, w), np.uint8), crs, transform)
    for name in ("snowfree", "snow"):
        with rasterio.open(d / f"mask_{name}.tif", "w", driver="GTiff", height=h, width=w, count=1, dtype="uint8",
                           crs=crs, transform=transform) as dst:
            dst.write(np.ones((1, h, w), np.uint8))
    rgb = np.stack([np.clip(400 * base[b] + 8 * rng.standard_normal((h, w)), 0, 255) for b in ("B04", "B03", "B02")])
    write_cog(d / "synthetic.tif", rgb.astype(np.uint8), crs, transform, np.ones((h, w), bool), ("red", "green", "blue"), {})
    files = {"--before": "snowfree.tif", "--before-mask": "mask_snowfree.tif", "--real": "snow.tif",
             "--real-mask": "mask_snow.tif", "--synthetic": "synthetic.tif", "--truth": "truth.tif"}
    return ["change", "area", "--area", "a"] + [str(v) for k, f in files.items() for v in (k, d / f)]


@pytest.fixture(scope="module")
def small_area(tmp_path_factory):
    return _write_small_area(tmp_path_factory.mktemp("change-area"))


@pytest.fixture(scope="module")
def detector_site(tmp_path_factory):
    from synthetic import install_tinydetector

    return install_tinydetector(tmp_path_factory.mktemp("site"))


def test_plugin_detector_is_scored_like_a_builtin(tmp_path, small_area, detector_site):
    """A real installed distribution's 'deepsnow.detectors' entry point, selected by name through
    ``change.detectors``, is scored by ``deepsnow change area`` and tabulated by the summary, in
    change/summary.csv, the tau table and Figure 10, beside the built-ins."""
    import csv
    import json
    import os
    import subprocess
    import sys

    from scipy.stats import kendalltau

    from helpers import env_with_venv

    from deepsnow.figures.change import build_figure10

    env = env_with_venv()
    env["PYTHONPATH"] = f"{detector_site}{os.pathsep}{env.get('PYTHONPATH', '')}"
    params = json.dumps({"detectors": BUILTIN_ORDER + ["absdiff"]})
    out = tmp_path / "change"
    cli = [sys.executable, "-m", "deepsnow.cli"]
    p = subprocess.run(cli + small_area + ["--params", params, "--output", str(out / "a.json")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    p = subprocess.run(cli + ["change", "summary", "--params", params, "--areas", str(out / "a.json"),
                              "--output", str(out / "summary.csv"), "--output-json", str(out / "summary.json"),
                              "--output-html", str(out / "summary.html")], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = list(csv.DictReader((out / "summary.csv").open()))
    # the records are written key-sorted: detectors by name, as for the built-ins alone
    assert [r["detector"] for r in rows if r["pair"] == "real"] == sorted(BUILTIN_ORDER + ["absdiff"])
    absdiff = {r["pair"]: float(r["auc"]) for r in rows if r["detector"] == "absdiff"}
    assert set(absdiff) == {"real", "synthetic", "truth"} and absdiff["real"] > 0.8, absdiff
    summary = json.loads((out / "summary.json").read_text())
    assert "absdiff" in summary["gaps"]["rgb"]["detectors"]
    auc = {pair: [float(r["auc"]) for r in rows if r["pair"] == pair] for pair in ("real", "synthetic", "truth")}
    taus = {t["pairs"]: t for t in summary["ranking_agreement"]}
    assert set(taus) == {"synthetic_vs_real", "truth_vs_real"}
    for pair in ("synthetic", "truth"):
        assert taus[f"{pair}_vs_real"]["n_detectors"] == 5
        assert taus[f"{pair}_vs_real"]["tau"] == pytest.approx(kendalltau(auc[pair], auc["real"]).statistic)
    assert "absdiff" in (out / "summary.html").read_text() and "Kendall" in (out / "summary.html").read_text()
    fig = build_figure10({}, out / "summary.json").figure
    assert "absdiff (rgb)" in [ax.get_title() for ax in fig.axes]


@pytest.mark.parametrize("name, expect", [
    ("badshape", "returned scores of shape"),
    ("nanscores", "non-finite scores"),
    ("crashes", "failed on pixels"),
])
def test_broken_plugin_detector_is_named(tmp_path, small_area, detector_site, monkeypatch, capsys, name, expect):
    """A detector returning the wrong shape, non-finite scores, or failing: exit 2 naming it, nothing written."""
    import json

    from deepsnow.cli import main

    monkeypatch.syspath_prepend(str(detector_site))
    out = tmp_path / "a.json"
    assert main(small_area + ["--params", json.dumps({"detectors": ["rx_difference", name]}), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"change detector {name!r}" in err and expect in err, err
    assert not out.exists()


def test_unknown_detector_is_refused_listing_the_known(tmp_path, small_area, detector_site, monkeypatch, capsys):
    import json

    from deepsnow.cli import main

    monkeypatch.syspath_prepend(str(detector_site))
    out = tmp_path / "a.json"
    assert main(small_area + ["--params", json.dumps({"detectors": ["rx_difference", "nosuch"]}), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "key 'change.detectors[1]': unknown change detector 'nosuch'" in err, err
    assert "known: absdiff, badshape, chronochrome, covariance_equalization, crashes, hyperbolic_acd, nanscores, " \
           "rx_difference" in err and "'deepsnow.detectors'" in err, err
    assert not out.exists()


# --------------------------------------------------------------------------- ranking agreement


def _rows(aucs: dict[str, dict[str, float]], area="a", bands="rgb") -> list[dict]:
    return [{"area": area, "bands": bands, "detector": d, "pair": p, "auc": a}
            for d, pairs in aucs.items() for p, a in pairs.items()]


def test_ranking_agreement_is_scipys_kendall_tau():
    from scipy.stats import kendalltau

    from deepsnow.change.ranking import agreement

    rng = np.random.default_rng(1)
    aucs = {f"d{i}": {"real": rng.uniform(0.5, 1), "synthetic": rng.uniform(0.5, 1), "truth": rng.uniform(0.5, 1)}
            for i in range(6)}
    aucs["d5"]["synthetic"] = aucs["d4"]["synthetic"]  # a tie: tau-b
    no_truth = {d: {p: a for p, a in v.items() if p != "truth"} for d, v in aucs.items()}
    rows = _rows(aucs) + _rows(no_truth, area="b") + _rows(aucs, bands="reflectance")
    got = {(t["area"], t["bands"], t["pairs"]): t for t in agreement(rows)}
    assert set(got) == {("a", "rgb", "synthetic_vs_real"), ("a", "rgb", "truth_vs_real"), ("b", "rgb", "synthetic_vs_real"),
                        ("a", "reflectance", "synthetic_vs_real"), ("a", "reflectance", "truth_vs_real")}
    for (area, bands, pairs), t in got.items():
        pair = pairs.split("_vs_")[0]
        want = kendalltau([v[pair] for v in aucs.values()], [v["real"] for v in aucs.values()])
        assert t["tau"] == pytest.approx(want.statistic, abs=1e-12) and t["p_value"] == pytest.approx(want.pvalue)
        assert t["n_detectors"] == 6 and t["reason"] == ""


def test_ranking_agreement_undefined_has_a_reason():
    from deepsnow.change.ranking import agreement

    one = agreement(_rows({"d0": {"real": 0.9, "synthetic": 0.8}}))
    assert one == [{"area": "a", "bands": "rgb", "pairs": "synthetic_vs_real", "n_detectors": 1, "tau": None,
                    "p_value": None, "reason": "only 1 detector(s): a ranking needs at least 2"}]
    tied = agreement(_rows({"d0": {"real": 0.9, "synthetic": 0.7}, "d1": {"real": 0.8, "synthetic": 0.7}}))
    assert tied[0]["tau"] is None and "all equal" in tied[0]["reason"]
