"""deepsnow figures: the artifact measures (oracles), epoch choice, and every figure from synthetic inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import env_with_venv
from deepsnow import DeepsnowError
from deepsnow.figures import artifact_measures as artifacts
from deepsnow.figures.common import select_epochs
from deepsnow.figures.table import FIGURES, INPUTS
from deepsnow.io import save_npz
from deepsnow.metrics.table import table_columns, write_csv

N, S = 6, 32
EPOCHS = (1, 2, 3)
DPI = 60  # small PNGs: fast tests
PARAMS = {"dpi": DPI, "samples_count": 4, "closeup_window": [4, 6, 16, 20], "closeup_patch": 1}


def smooth_images(n, s, seed=0):
    """Smooth RGB patches (a few low-frequency sinusoids), uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:s, :s] / s
    out = np.empty((n, s, s, 3))
    for i in range(n):
        for b in range(3):
            fx, fy, ph = rng.uniform(0.3, 1.2, 3)
            out[i, :, :, b] = 110 + 50 * np.sin(2 * np.pi * (fx * x + fy * y) + 6 * ph)
    return np.clip(out, 0, 255).astype(np.uint8)


def checkerboard(s, period=2, amp=10.0):
    y, x = np.mgrid[:s, :s]
    return amp * (((x // (period // 2)) + (y // (period // 2))) % 2 * 2 - 1)


# ----------------------------------------------------------------------------- artifact oracles


def test_checkerboard_score_oracles():
    real = smooth_images(4, S).astype(float)
    y, x = np.mgrid[:S, :S]
    smooth = 25 * np.sin(2 * np.pi * x / S) + 15 * np.cos(2 * np.pi * 2 * y / S) + 0.8 * (x + y)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 6, real.shape)
    cb2 = checkerboard(S, 2, 6)[None, :, :, None]
    cb4 = checkerboard(S, 4, 6)[None, :, :, None]

    s_smooth = artifacts.checkerboard_score(real + smooth[None, :, :, None], real)
    s_noise = artifacts.checkerboard_score(real + noise, real)
    s_cb2 = artifacts.checkerboard_score(real + cb2, real)
    s_cb4 = artifacts.checkerboard_score(real + cb4, real)
    s_mix = artifacts.checkerboard_score(real + smooth[None, :, :, None] + cb2, real)
    assert s_smooth < 0.1  # smooth differences: far below the white-noise level
    assert 0.6 < s_noise < 1.6  # white noise: about 1
    assert s_cb2 > 1e3 and s_cb4 > 1e3  # pure grids of period 2 and 4 px
    assert s_mix > 20 * s_smooth  # a grid on top of a smooth difference raises the score strongly
    # stripes of period 2 along one axis only are also targets (frequency (0, 1/2))
    stripes = 6 * ((x % 2) * 2 - 1)
    assert artifacts.checkerboard_score(real + stripes[None, :, :, None], real) > 1e3
    # a period-8 pattern is not a generator artifact frequency
    cb8 = checkerboard(S, 8, 6)[None, :, :, None]
    assert artifacts.checkerboard_score(real + cb8, real) < s_cb2 / 100
    # identical images: undefined
    assert math.isnan(artifacts.checkerboard_score(real, real))
    # odd patch sizes work (peaks fall between bins; the neighbourhood catches them)
    r33 = smooth_images(2, 33).astype(float)
    cb33 = checkerboard(33, 2, 6)[None, :, :, None]
    assert artifacts.checkerboard_score(r33 + cb33, r33) > 10
    with pytest.raises(DeepsnowError):
        artifacts.checkerboard_score(real[:2], real[:3])


def test_checkerboard_mask_excludes_dc_neighbourhood():
    m = artifacts.checkerboard_mask(32, 32, radius=1)
    assert not m[0, 0] and not m[1, 1] and not m[0, 1] and not m[-1, 0]
    assert m[16, 16] and m[8, 0] and m[0, 8] and m[-8, 8] and m[17, 16]  # 1/2, 1/4 and a neighbour
    assert not m[4, 4]  # 1/8 cycles/px: no target
    assert artifacts.checkerboard_mask(32, 32, radius=0).sum() == 15  # 4 x 4 frequency pairs minus DC


def test_water_land_difference_oracle():
    real = np.zeros((2, 4, 4, 3), np.uint8)
    fake = np.zeros_like(real)
    water = np.zeros((2, 4, 4), bool)
    water[0, :2, :] = True  # 8 water pixels in patch 0
    water[1, 0, 0] = True  # and 1 in patch 1
    fake[water] = (10, 20, 30)
    fake[~water] = (1, 2, 3)
    fake[1, 3, 3] = (41, 2, 3)  # one land pixel differs more in red
    out = artifacts.water_land_difference(fake, real, water)
    assert out["n_water_pixels"] == 9 and out["n_land_pixels"] == 32 - 9
    np.testing.assert_allclose(out["water"], [10, 20, 30])
    np.testing.assert_allclose(out["land"], [1 + 40 / 23, 2, 3])
    # the difference is absolute: fake below real counts the same
    out2 = artifacts.water_land_difference(real, fake, water)
    np.testing.assert_allclose(out2["water"], out["water"])
    none = artifacts.water_land_difference(fake, real, np.zeros((2, 4, 4), bool))
    assert none["n_water_pixels"] == 0 and np.isnan(none["water"]).all()
    with pytest.raises(DeepsnowError):
        artifacts.water_land_difference(fake, real, water[:, :3])


def test_select_epochs_filters_and_falls_back():
    assert select_epochs([1, 10, 50], [1, 2, 3]) == (
        [1, 2, 3], "epochs [10, 50] not in this run: showing the first/middle/last saved epochs [1, 2, 3]"
    )
    assert select_epochs([1, 10, 50], range(1, 60))[0] == [1, 10, 50]
    epochs, note = select_epochs([1, 10, 50], [2, 4, 6, 8])
    assert epochs == [2, 4, 8] and "first/middle/last" in note
    assert select_epochs([7], [5])[0] == [5]


# ----------------------------------------------------------------------------- synthetic run


def _metrics_rows(truth: bool, pretrained: bool) -> list[dict]:
    """metrics.csv's rows per epoch and direction: the metrics the figures draw improve over the
    epochs; the paired errors only AtoB, and only with a truth."""
    rows = []
    for i, e in enumerate(EPOCHS):
        for direction in ("AtoB", "BtoA"):
            paired = direction == "AtoB" and truth
            rows.append(
                {
                    "epoch": e,
                    "direction": direction,
                    "n_real": 6,
                    "n_fake": 6,
                    "inception_extractor": "inception",
                    "inception_weights": "IMAGENET1K_V1" if pretrained else "random-seed0",
                    "inception_pretrained": "true" if pretrained else "false",
                    "resnet_extractor": "resnet50",
                    "resnet_weights": "IMAGENET1K_V1" if pretrained else "random-seed0",
                    "resnet_pretrained": "true" if pretrained else "false",
                    "fid": 30.0 - 5 * i,
                    "frd": 300.0 - 40 * i,
                    "crd": 0.1 - 0.02 * i,
                    "crd_dot": 5.0,
                    "fd_simcover": 40.0 - 6 * i,
                    "cd_simcover": 0.2 - 0.03 * i,
                    "precision_simcover": 0.5 + 0.1 * i,
                    "recall_simcover": 0.4 + 0.1 * i,
                    "density_simcover": 0.6 + 0.2 * i,
                    "coverage_simcover": 0.3 + 0.2 * i,
                    "kid_mean": 0.05 - 0.01 * i,
                    "kid_std": 0.01,
                    "kid_subset_size": N,
                    "rf_logloss_mean": 0.2 + 0.1 * i,
                    "rf_logloss_std": 0.05,
                    "rf_accuracy_mean": 0.9,
                    "rf_accuracy_std": 0.02,
                    "rf_auc_mean": 0.95,
                    "rf_auc_std": 0.01,
                    "rf_n_per_class": 6,
                    "rf_repeats": 3,
                    "paired_l1": 0.2 - 0.03 * i if paired else None,
                    "paired_ssim": 0.5 + 0.1 * i if paired else None,
                    "paired_l1_water": 0.3 - 0.05 * i if paired else None,
                    "n_paired": N if paired else 0,
                }
            )
    return rows


def _write_metrics(path, rows, drop=()):
    """``rows`` as the metrics stage writes them: in the table's columns and order
    (:func:`deepsnow.metrics.table.table_columns`, the per-extractor distances included), a column
    the rows lack empty (a missing value), less the ``drop`` columns."""
    columns = table_columns(rows)
    unknown = {k for r in rows for k in r} - set(columns)
    assert not unknown, f"not columns of metrics.csv (deepsnow.metrics.table): {sorted(unknown)}"
    write_csv(path, rows, [c for c in columns if c not in drop])


def _write_run(d, truth=True, pretrained=False, metrics_drop=()):
    """A tiny results folder: testA, samples of 3 epochs, losses, metrics, correlations, PCA."""
    real = smooth_images(N, S)
    ids = np.array([f"simA_r{i}" for i in range(N)])
    water = np.zeros((N, S, S), bool)
    water[:, : S // 4] = True
    snow = np.clip(0.5 * real + 140, 0, 255).astype(np.uint8)  # a smooth, brightening "snowfall"
    arrays = {"rgb": real, "ids": ids, "water": water}
    if truth:
        arrays["truth"] = snow
    save_npz(d / "dataset/testA.npz", **arrays)
    rng = np.random.default_rng(3)
    samples = []
    for e, amp in zip(EPOCHS, (24, 8, 2)):  # the grid fades with training
        fake = snow.astype(float) + checkerboard(S, 2, amp)[None, :, :, None]
        fake[water] += 30  # worse over water
        fake = np.clip(fake + rng.normal(0, 1, fake.shape), 0, 255).astype(np.uint8)
        order = np.arange(N)[::-1]  # samples list testA in another order: pairing goes by id
        p = d / f"samples/epoch_{e:03d}.npz"
        save_npz(p, fake_B=fake[order], ids_A=ids[order], fake_A=fake[:2], ids_B=np.array(["b0", "b1"]), epoch=np.int64(e))
        samples.append(p)
    losses = pd.DataFrame(
        {
            "epoch": list(EPOCHS),
            "iterations": 10,
            "lr": 2e-4,
            "G_A": [0.9, 0.6, 0.5],
            "G_B": [0.9, 0.6, 0.5],
            "D_A": [0.3, 0.25, 0.24],
            "D_B": [0.3, 0.25, 0.24],
            "cycle_A": [3.0, 2.0, 1.5],
            "cycle_B": [3.0, 2.0, 1.5],
            "idt_A": 1.0,
            "idt_B": 1.0,
            "seconds": 1.0,
            "it_per_s": 10.0,
        }
    )
    (d / "train").mkdir(parents=True, exist_ok=True)
    losses.to_csv(d / "train/losses.csv", index=False)
    _write_metrics(d / "metrics/metrics.csv", _metrics_rows(truth, pretrained), drop=metrics_drop)
    corr = []
    for p in ("paired_l1", "paired_ssim", "paired_l1_water"):
        for m in ("fid", "frd", "crd", "kid_mean", "rf_logloss_mean", "fd_simcover", "cd_simcover", "coverage_simcover"):
            sign = -1 if m in ("rf_logloss_mean", "coverage_simcover") else 1
            rho = sign * (1 if p != "paired_ssim" else -1)
            corr.append(
                {"metric": m, "paired": p, "direction": "AtoB", "spearman_rho": rho if truth else None,
                 "p_value": 0.0 if truth else None, "n_epochs": 3 if truth else 0, "expected_sign": sign}
            )
    pd.DataFrame(corr).to_csv(d / "metrics/correlations.csv", index=False)
    pca = []
    for source, e, shift, n in (("real", None, 5.0, 6), ("epoch_1", 1, -5.0, 6), ("epoch_3", 3, 0.0, 6)):
        for j in range(n):
            pca.append({"source": source, "epoch": e, "direction": "AtoB", "id": f"{source}{j}",
                        "pc1": shift + rng.normal(), "pc2": rng.normal(), "pc3": rng.normal()})
            pca.append({"source": source, "epoch": e, "direction": "BtoA", "id": f"{source}{j}",
                        "pc1": rng.normal(), "pc2": rng.normal(), "pc3": rng.normal()})
    pd.DataFrame(pca).to_csv(d / "metrics/pca.csv", index=False)
    summary = {"directions": {"AtoB": {"explained_variance_ratio": [0.5, 0.2, 0.1]},
                              "BtoA": {"explained_variance_ratio": [0.4, 0.3, 0.1]}},
               "epochs": [1, 3], "extractor": "resnet50", "pretrained": pretrained,
               "weights": "IMAGENET1K_V1" if pretrained else "random-seed0"}
    (d / "metrics/pca.json").write_text(json.dumps(summary))
    return {
        "test_a": d / "dataset/testA.npz",
        "samples": samples,
        "losses": d / "train/losses.csv",
        "metrics": d / "metrics/metrics.csv",
        "correlations": d / "metrics/correlations.csv",
        "pca": d / "metrics/pca.csv",
        "pca_summary": d / "metrics/pca.json",
    }


#: input options of each figure (keys of _write_run's result)
NEEDS = {n: fig.inputs for n, fig in FIGURES.items()}


def _write_catalog(d):
    """A synthetic products' catalog (Figure 9): one area's scenes, its product COG and checkpoint."""
    from rasterio.transform import Affine

    from deepsnow.data.scene import write_scene
    from deepsnow.synthesize.catalog import write_catalog
    from deepsnow.synthesize.products import write_cog

    rng, h, w = np.random.default_rng(5), 120, 140
    crs, transform = "EPSG:32632", Affine(10, 0, 600000, 0, -10, 5150000)
    scenes = {}
    for name, level in (("snowfree", 0.1), ("snow", 0.6), ("truth", 0.7)):
        refl = {b: np.clip(level + 0.1 * rng.standard_normal((h, w)), 0, 1).astype(np.float32)
                for b in ("B04", "B03", "B02", "B08", "B11")}
        scenes[name] = d / f"scenes/a/{name}.tif"
        write_scene(scenes[name], refl, np.full((h, w), 4, np.uint8), np.ones((h, w), np.uint8), crs, transform,
                    tags={"DEEPSNOW_SOURCE": "simulator", "DEEPSNOW_DATE": "2021-07-01"})
    product = d / "synthetic/a/snow.tif"
    rgb = np.clip(200 + 30 * rng.standard_normal((3, h, w)), 0, 255).astype(np.uint8)
    write_cog(product, rgb, crs, transform, np.ones((h, w), bool), ("red", "green", "blue"), {})
    (d / "train").mkdir(parents=True, exist_ok=True)
    (d / "train/epoch_003.pt").write_bytes(b"checkpoint")
    summary = d / "synthetic/a/snow.summary.json"
    summary.write_text(json.dumps({
        "name": "a", "after_synthetic": str(product), "before": str(scenes["snowfree"]),
        "after_real": str(scenes["snow"]), "truth": str(scenes["truth"]), "checkpoint": str(d / "train/epoch_003.pt"),
        "chosen": "last epoch (3)", "epoch": 3, "norm": "scene", "rgb_max": 1.0, "rgb_gamma": 2.2,
    }))
    write_catalog([summary], d / "synthetic/catalog.json", run="figs")
    return d / "synthetic/catalog.json"


def _write_change(d):
    """The change testbed's summary (Figure 10) of _write_catalog's area: real, synthetic, truth pairs."""
    from deepsnow.change.evaluate import evaluate_area
    from deepsnow.change.pixels import Image
    from deepsnow.cli import main
    from deepsnow.config import parse_params
    from deepsnow.io import write_json

    images = [Image("before", d / "scenes/a/snowfree.tif", "scene"), Image("real", d / "scenes/a/snow.tif", "scene"),
              Image("synthetic", d / "synthetic/a/snow.tif", "product"), Image("truth", d / "scenes/a/truth.tif", "scene")]
    record = evaluate_area("a", images, parse_params("{}", "change"), ["rgb"], (1.0, 2.2), rows=50)
    write_json(d / "change/a.json", record)
    out = d / "change/summary"
    assert main(["change", "summary", "--areas", str(d / "change/a.json"), "--output", f"{out}.csv",
                 "--output-json", f"{out}.json", "--output-html", f"{out}.html"]) == 0
    return d / "change/summary.json"


def _write_validity(d):
    """metrics/validity.csv (Figure 12): two modes, the ladders, a distance that tracks every ladder,
    a score that falls, and one that does not move."""
    from deepsnow.validity.ladders import LADDERS
    from deepsnow.validity.stats import summarise

    levels = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    curves = {"fid": np.linspace(1, 5, 6), "precision_resnet50": np.linspace(0.9, 0.2, 6), "coverage_resnet50": np.full(6, 0.5)}
    rows = []
    for mode in ("half", "truth"):
        for ladder in LADDERS:
            for metric, values in curves.items():
                s = summarise(metric, levels, values, [[v - 0.1, v, v + 0.1] for v in values])
                rows += [{"mode": mode, "ladder": ladder, "metric": metric, "level": lv, "value": v,
                          "ci_low": s["intervals"][i][0], "ci_high": s["intervals"][i][1], "worse_when": s["worse_when"],
                          "rho": s["rho"], "sensitivity": s["sensitivity"]} for i, (lv, v) in enumerate(zip(levels, values))]
    import pandas as pd

    pd.DataFrame(rows).to_csv(d / "metrics/validity.csv", index=False)
    return d / "metrics/validity.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("figs")
    files = _write_run(d)
    return {**files, "catalog": _write_catalog(d), "change_summary": _write_change(d),
            "comparison_summary": _write_comparison(d, files["metrics"]), "validity": _write_validity(d)}


def _write_comparison(d, metrics):
    """A sweep's comparison/summary.csv (Figure 11): 2 groups x 2 seeds, the run's metrics perturbed."""
    import pandas as pd

    from deepsnow.metrics.compare import compare

    rng, base = np.random.default_rng(11), pd.read_csv(metrics)
    tables, names, groups = [], [], []
    for group, scale in (("transpose", 1.0), ("resize_conv", 0.8)):
        for seed in (0, 1):
            name = f"seed{seed}-{group}"
            table = base.copy()
            for col in ("fid", "frd", "crd", "kid_mean", "rf_logloss_mean", "paired_l1"):
                table[col] = table[col] * scale * (1 + 0.05 * rng.standard_normal(len(table)))
            tables.append(d / f"variants/{name}/metrics.csv")
            tables[-1].parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(tables[-1], index=False)
            names.append(name)
            groups.append(group)
    compare(tables, names, groups, None, d / "comparison/summary.csv", d / "comparison/final.csv")
    return d / "comparison/summary.csv"


def _argv(n, files, out, params=PARAMS):
    argv = ["--log-level", "WARNING", "figures", "--params", json.dumps(params), "--figure", str(n),
            "--outputs", str(out / f"fig{n}.png"), str(out / f"fig{n}.pdf")]
    for key in NEEDS[n]:
        opt = "--" + key.replace("_", "-")
        vals = files[key] if isinstance(files[key], list) else [files[key]]
        argv += [opt, *map(str, vals)]
    for key, path in FIGURES[n].outputs.items():
        argv += ["--" + key.replace("_", "-"), str(out / Path(path).name)]
    return argv


def _params(over=None):
    from deepsnow.config import validate_section

    return validate_section("figures", {**PARAMS, **(over or {})})


def _build(n, files, over=None):
    from deepsnow.figures.table import make_figure

    return make_figure(n, _params(over), **{k: files[k] for k in NEEDS[n]}, **{k: "x" for k in FIGURES[n].outputs})


def _texts(fig) -> str:
    out = [fig.get_suptitle()]
    for ax in fig.axes:
        out += [ax.get_title(loc="left"), ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
    return " ".join(" ".join(out).split())


@pytest.mark.parametrize("n", sorted(FIGURES))
def test_figure_files(n, run, tmp_path):
    import matplotlib.image as mpimg

    from deepsnow.cli import main

    assert main(_argv(n, run, tmp_path)) == 0
    png, pdf = tmp_path / f"fig{n}.png", tmp_path / f"fig{n}.pdf"
    img = mpimg.imread(png)
    w_in, h_in = _build(n, run).figure.get_size_inches()
    assert abs(img.shape[1] - w_in * DPI) <= 1 and abs(img.shape[0] - h_in * DPI) <= 1
    rgb = img[..., :3]
    assert rgb.std() > 0.05  # not blank
    colours = np.unique((rgb.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 50
    head = pdf.read_bytes()[:5]
    assert head == b"%PDF-" and pdf.stat().st_size > 5000
    outputs = [png, pdf] + [tmp_path / Path(p).name for p in FIGURES[n].outputs.values()]
    for f in outputs:
        side = json.loads((f.parent / (f.name + ".prov.json")).read_text())
        assert side["stage"] == "figures" and side["extra"]["figure"] == n and side["inputs"]
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]  # no temp files left


def test_figure7_csv_measures_the_fading_grid(run, tmp_path):
    from deepsnow.cli import main

    assert main(_argv(7, run, tmp_path)) == 0
    df = pd.read_csv(tmp_path / "artifacts.csv")
    assert list(df.columns) == list(artifacts.CSV_COLUMNS)
    ep = df[df["source"] == "epoch"]
    assert ep["epoch"].tolist() == list(EPOCHS)
    score = ep["checkerboard_score"].to_numpy()
    assert score[0] > score[1] > score[2]  # the grid amplitude falls 24 -> 8 -> 2 DN
    truth = df[df["source"] == "truth"].iloc[0]
    assert truth["checkerboard_score"] < score[-1]
    assert (ep["diff_water_r"] > ep["diff_land_r"] + 20).all()  # +30 DN over water
    assert (ep["n_water_pixels"] == N * S * S // 4).all()
    assert (ep["n_land_pixels"] == N * S * S * 3 // 4).all()


def test_random_weights_flag_in_titles(tmp_path):
    rnd = _write_run(tmp_path / "random", pretrained=False)
    pre = _write_run(tmp_path / "pretrained", pretrained=True)
    for n in (3, 5, 6, 8):
        t_rnd = " ".join(_build(n, rnd).figure.get_suptitle().split())
        t_pre = " ".join(_build(n, pre).figure.get_suptitle().split())
        assert "RANDOM (non-pretrained)" in t_rnd and "not comparable with published values" in t_rnd, n
        assert "RANDOM" not in t_pre, n
    assert "ResNet-50" in " ".join(_build(5, rnd).figure.get_suptitle().split())


def test_figure4_epoch_fallback(run):
    built = _build(4, run, {"epochs_fig4": [7, 9]})
    assert built.extra["epochs"] == [1, 2, 3]
    assert "first/middle/last" in _texts(built.figure)
    built = _build(4, run, {"epochs_fig4": [1, 3]})
    assert built.extra["epochs"] == [1, 3] and built.extra["note"] == ""
    assert len(built.figure.axes) == 2 * 2 + 1  # two epochs x (image, L1 map) + colour bar


def test_figure8_without_truth_says_so(tmp_path):
    files = _write_run(tmp_path, truth=False)
    built = _build(8, files)
    assert built.extra["paired_truth"] is False
    assert "No paired ground truth" in _texts(built.figure)
    with_truth = _build(8, _write_run(tmp_path / "t", truth=True))
    text = _texts(with_truth.figure)
    assert "No paired ground truth" not in text and "ρ = +1.00" in text


def test_figure12_draws_every_ladder_per_mode_worse_upwards(run):
    """A panel per ladder and (mode, distances | scores); each curve turned so that worse is up and
    scaled to 0 .. 1; a metric that does not move says so; the tracking ones are listed."""
    from deepsnow.figures.validity import normalised
    from deepsnow.validity.ladders import LADDERS

    built = _build(12, run)
    fig = built.figure
    assert len([ax for ax in fig.axes if ax.get_title()]) == len(LADDERS) * 4
    text = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    assert "fid ρ 1.00" in text and "precision_resnet50 ρ 1.00" in text and "coverage_resnet50 ρ n/a" in text
    assert built.extra["monotone_everywhere"] == {"half": ["fid", "precision_resnet50"], "truth": ["fid", "precision_resnet50"]}
    import pandas as pd

    df = pd.read_csv(run["validity"])
    rows = df[(df["mode"] == "half") & (df["ladder"] == "blur") & (df["metric"] == "precision_resnet50")]
    levels, value, low, high = normalised(rows)
    assert value[0] == 0 and value[-1] == pytest.approx(1.0) and (np.diff(value) > 0).all()
    assert (low <= value + 1e-12).all() and (high >= value - 1e-12).all()


def test_figure6_degenerate_groups_fall_back_to_histograms(tmp_path):
    from deepsnow.figures import pca

    files = _write_run(tmp_path)
    df = pd.read_csv(files["pca"])
    df.loc[df["source"] == "real", ["pc1", "pc2", "pc3"]] = 1.0  # all equal: no KDE
    df = df[~((df["source"] == "epoch_1") & (df["id"] != "epoch_10"))]  # a single sample
    df.to_csv(files["pca"], index=False)
    built = _build(6, files)
    assert "histogram" in built.figure.get_suptitle()
    import matplotlib.figure

    ax = matplotlib.figure.Figure().subplots()
    assert pca.density(ax, np.ones(5), "C0", "x", np.linspace(0, 2, 10)) == "hist"
    assert pca.density(ax, np.arange(5.0), "C0", "x", np.linspace(0, 5, 10)) == "kde"
    # the other direction works too
    assert _build(6, _write_run(tmp_path / "b"), {"pca_direction": "BtoA"}).extra["direction"] == "BtoA"


def test_bad_inputs_fail_naming_the_file(tmp_path, capsys):
    from deepsnow.cli import main

    files = _write_run(tmp_path, metrics_drop=("resnet_pretrained",))
    out = tmp_path / "out"
    assert main(_argv(5, files, out)) == 2
    err = capsys.readouterr().err
    assert "metrics.csv" in err and "resnet_pretrained" in err
    assert not out.exists() or not list(out.iterdir())

    files = _write_run(tmp_path / "ok")
    files["losses"] = tmp_path / "missing/losses.csv"
    assert main(_argv(3, files, out)) == 2
    assert "missing/losses.csv" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())

    # a figure without one of its inputs
    argv = ["figures", "--figure", "6", "--outputs", str(out / "f.png"), str(out / "f.pdf"), "--pca", str(files["pca"])]
    assert main(argv) == 2
    assert "--pca-summary" in capsys.readouterr().err

    # wrong output suffixes; a close-up patch that does not exist
    assert main(["figures", "--figure", "5", "--outputs", str(out / "f.pdf"), str(out / "f.png"), "--metrics", str(files["metrics"])]) == 2
    assert main(_argv(2, files, out, {**PARAMS, "closeup_patch": N})) == 2
    assert "closeup_patch" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())


def test_cli_subprocess_exit_status(tmp_path):
    files = _write_run(tmp_path)
    bad = tmp_path / "metrics/metrics.csv"
    bad.write_text("epoch,direction\n1,AtoB\n")
    cmd = [sys.executable, "-m", "deepsnow.cli", *_argv(5, files, tmp_path / "out")]
    proc = subprocess.run(cmd, env=env_with_venv(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert str(bad) in proc.stderr and "lacks columns" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_figure_help_lists_inputs():
    from deepsnow.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["figures"].format_help()
    for opt in ("--test-a", "--samples", "--losses", "--metrics", "--correlations", "--pca", "--pca-summary", "--output-csv"):
        assert opt in text


# ----------------------------------------------------------------------------- the figure table


def test_table_rows_are_consistent():
    """Each row names known inputs, and its builder takes exactly them, next to its drawing function."""
    import importlib
    import inspect

    rows = [*FIGURES.items(), *((n, fig.groups) for n, fig in FIGURES.items() if fig.groups)]  # sweeps too
    for n, fig in rows:
        assert set(fig.inputs) <= set(INPUTS), n
        assert list(inspect.signature(fig.build).parameters) == ["params", *fig.inputs], n
        module = importlib.import_module(fig.build.__module__)
        assert module.__name__.startswith("deepsnow.figures.") and hasattr(module, f"figure{n}"), n
        assert not set(fig.outputs) & set(INPUTS), n
        assert fig.groups is None or (fig.groups.sweep and fig.groups.inputs == ("comparison_summary",)), n


def test_a_new_figure_is_one_row_and_its_builder(run, tmp_path, monkeypatch):
    """A row added to the table is a ``deepsnow figures`` choice, with its inputs checked and recorded."""
    from deepsnow.cli import main
    from deepsnow.figures import common, table

    def build_figure10(params, metrics):
        rows = common.read_csv(metrics, common.METRICS_REQUIRED, "metrics table")
        fig = common.new_figure(3, 2)
        fig.subplots().plot(rows["epoch"], rows["fid"])
        return common.Drawn(fig, [Path(metrics)], {"epochs": rows["epoch"].tolist()})

    monkeypatch.setitem(table.FIGURES, 10, table.Figure("FID alone", ("metrics",), build_figure10))
    out = tmp_path / "out"
    argv = ["figures", "--params", json.dumps(PARAMS), "--figure", "10", "--outputs", str(out / "f.png"), str(out / "f.pdf")]
    assert main(argv) == 2  # its input is required
    assert main([*argv, "--metrics", str(run["metrics"])]) == 0
    side = json.loads((out / "f.png.prov.json").read_text())
    assert side["extra"] == {"figure": 10, "epochs": [1, 1, 2, 2, 3, 3]}


# ----------------------------------------------------------------------------- where the data came from


def _record_acquisition(files, how):
    """Sidecars for testA as the workflow writes them: split <- patches <- the acquiring stage's scene."""
    from deepsnow import provenance

    d = files["test_a"].parents[1]
    scene, shard = d / "scenes/a/snowfree.tif", d / "patches/a/snowfree.npz"
    scene.parent.mkdir(parents=True, exist_ok=True)
    shard.parent.mkdir(parents=True, exist_ok=True)
    scene.write_bytes(b"scene")
    shard.write_bytes(b"shard")
    if how == "simulator":
        provenance.record([scene], stage="simulate", section="data", config={"source": "simulator"})
    else:
        provenance.record([scene], stage="download", section="data", config={"source": how}, extra={"source": how})
    provenance.record([shard], stage="patches", inputs=[scene], config={})
    provenance.record([files["test_a"]], stage="split", inputs=[shard], config={})


@pytest.mark.parametrize(
    "how, label",
    [
        ("simulator", "simulator data"),
        ("sentinelhub", "Sentinel-2 L2A from Sentinel Hub"),
        ("stac", "Sentinel-2 L2A from a STAC API"),
        (None, "Sentinel-2-like data"),
    ],
)
def test_figures_drawn_from_test_patches_say_where_the_data_came_from(tmp_path, how, label):
    """Figure 1 said "Real Sentinel-2" on simulator data: every figure drawn from testA names its
    source, read from testA's provenance chain (the stage that acquired the scenes); without a chain,
    a neutral "Sentinel-2-like data"."""
    from deepsnow.figures.common import DATA_LABELS, UNKNOWN_DATA

    files = _write_run(tmp_path)
    if how:
        _record_acquisition(files, how)
    assert (DATA_LABELS[how] if how else UNKNOWN_DATA) == label
    for n in (1, 2, 4, 7):
        built = _build(n, files)
        title = " ".join(built.figure.get_suptitle().split())
        assert label in title, (n, title)
        assert "Real" not in title and "Sentinel-2 pixels" not in title, (n, title)
        assert built.extra["data_source"] == how, n


@pytest.mark.parametrize("source", ["simulator", "sentinelhub", "stac"])
def test_figure_captions_name_the_configured_data_source(source):
    """The report cannot read provenance; the caption names config data.source with the figures' words."""
    import types

    import jinja2

    from deepsnow.figures.common import DATA_LABELS

    text = (Path(__file__).resolve().parents[1] / "workflow/report/figure.rst").read_text()
    for n in map(str, sorted(FIGURES)):
        snakemake = types.SimpleNamespace(wildcards={"n": n}, config={"data": {"source": source}})
        caption = " ".join(jinja2.Environment().from_string(text).render(snakemake=snakemake).split())
        assert f"Data: {DATA_LABELS[source]}" in caption, (n, caption)
        assert "Real Sentinel-2" not in caption, n


def test_figure4_falls_back_to_first_middle_last_when_the_run_is_shorter(run):
    """Figure 4 asks for epochs 1, 10, 50; a 3-epoch run has only epoch 1 of them: show the first,
    middle and last saved epochs instead of epoch 1 alone, and say so in the figure."""
    built = _build(4, run, {"epochs_fig4": [1, 10, 50]})
    assert built.extra["epochs"] == [1, 2, 3]
    text = _texts(built.figure)
    assert "epochs [10, 50] not in this run" in text and "first/middle/last" in text
    assert select_epochs([1, 3], [1, 2, 3]) == ([1, 3], "")


def test_figure8_has_a_row_for_the_per_extractor_distances(tmp_path):
    """fd_/cd_<extractor> of an extractor beside the paper's two: a third row of panels, and rows of the ρ table."""
    from deepsnow.figures.training import build_figure8

    d = _write_run(tmp_path)
    fig = build_figure8({}, d["metrics"], d["correlations"]).figure
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any(t.startswith("(g) FD simcover vs paired L1") for t in titles), titles
    assert any(t.startswith("(h) CD simcover vs paired L1") for t in titles), titles
    table = next(c for ax in fig.axes for c in ax.get_children() if type(c).__name__ == "Table")
    cells = {cell.get_text().get_text() for cell in table.get_celld().values()}
    assert {"FD simcover", "CD simcover", "FID"} <= cells
    assert fig.get_size_inches()[1] > 9


def _make_one_sided(files):
    """Turn a _write_run folder into a one-sided (CUT) run's: AtoB rows only, samples without
    fake_A, the CUT loss columns, PCA of AtoB only."""
    from deepsnow.io import load_npz

    for name in ("metrics", "pca"):
        df = pd.read_csv(files[name])
        df[df["direction"] == "AtoB"].to_csv(files[name], index=False)
    summary = json.loads(files["pca_summary"].read_text())
    summary["directions"] = {"AtoB": summary["directions"]["AtoB"]}
    files["pca_summary"].write_text(json.dumps(summary))
    for p in files["samples"]:
        arrays = load_npz(p)
        save_npz(p, fake_B=arrays["fake_B"], ids_A=arrays["ids_A"], epoch=arrays["epoch"])
    losses = pd.DataFrame({"epoch": list(EPOCHS), "iterations": 10, "lr": 2e-4, "G_GAN": [0.9, 0.6, 0.5],
                           "D_real": [0.3, 0.25, 0.24], "D_fake": [0.2, 0.22, 0.23], "G": [2.0, 1.5, 1.2],
                           "NCE": [1.1, 0.9, 0.7], "NCE_Y": [1.0, 0.8, 0.6], "seconds": 1.0, "it_per_s": 10.0})
    losses.to_csv(files["losses"], index=False)
    return files


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_figures_of_a_one_sided_run_draw_only_the_snow_direction(n, tmp_path):
    files = _make_one_sided(_write_run(tmp_path))
    built = _build(n, files)
    text = _texts(built.figure)
    assert "no values" not in text and "BtoA" not in text and "B→A" not in text, text
    if n == 3:
        legend = [t.get_text() for t in built.figure.axes[0].get_legend().get_texts()]
        assert legend == ["generator G (adversarial)", "discriminator D, real B", "discriminator D, fake B",
                          "PatchNCE (× λ_NCE)"]
        assert built.figure.get_suptitle().startswith("CUT training dynamics")


def test_figure3_refuses_a_losses_table_of_neither_model(tmp_path):
    files = _write_run(tmp_path)
    pd.DataFrame({"epoch": list(EPOCHS), "G_GAN": 1.0}).to_csv(files["losses"], index=False)
    with pytest.raises(DeepsnowError, match=r"losses.csv: training losses table lacks columns \['D_real'"):
        _build(3, files)
