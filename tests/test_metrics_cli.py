"""End to end through the command line: deepsnow embed, then deepsnow metrics epoch|table|pca."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import deepsnow, env_with_venv
from synthetic import install_tinyplug
from deepsnow.io import load_npz, save_npz
from deepsnow.metrics.table import correlations

N = 4  # images per set: few, Inception at 299 px is slow on CPU (4 = the least 2-fold RF allows)
S = 32
FEATURES = json.dumps({"inception": {"weights": "random"}, "resnet50": {"weights": "random"}, "progress": False, "batch_size": 4})
METRICS = json.dumps(  # prdc_k: fewer neighbours than the N images per set
    {"rf_repeats": 2, "rf_n_estimators": 10, "kid_subsets": 5, "n_jobs": 1, "pca_epochs": [1, 3], "prdc_k": 2}
)


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Tiny data set, embedded and measured once for all tests of this module."""
    d = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 120, (N, S, S, 3), dtype=np.uint8)
    truth = np.clip(a.astype(int) + 120, 0, 255).astype(np.uint8)  # the snowfall truth, which samples approach
    season = np.where(np.arange(S)[None, :, None, None] < S // 2, truth, a)  # the snow season's: half snowy
    b = rng.integers(100, 256, (N, S, S, 3), dtype=np.uint8)
    ids_a = np.array([f"simA_r{i}" for i in range(N)])
    ids_b = np.array([f"simB_r{i}" for i in range(N)])
    water = np.zeros((N, S, S), bool)
    water[:, :8] = True
    save_npz(d / "dataset/testA.npz", rgb=a, ids=ids_a, truth=season, truth_snowfall=truth, water=water)
    save_npz(d / "dataset/testB.npz", rgb=b, ids=ids_b)
    for e, noise in ((1, 80), (2, 40), (3, 10)):  # samples approach the truth over epochs
        fake_b = np.clip(truth.astype(int) + rng.integers(-noise, noise + 1, truth.shape), 0, 255).astype(np.uint8)
        fake_a = np.clip(b.astype(int) - 100 + rng.integers(-noise, noise + 1, b.shape), 0, 255).astype(np.uint8)
        # the samples list testA in another order: pairing must go by id
        order = np.arange(N)[::-1]
        save_npz(
            d / f"samples/epoch_{e:03d}.npz",
            fake_B=fake_b[order],
            ids_A=ids_a[order],
            fake_A=fake_a,
            ids_B=ids_b,
            epoch=np.array(e),
        )
    _ok(
        deepsnow(
            "embed", "--params", FEATURES, "--extractor", "inception", "resnet50",
            "--real-a", d / "dataset/testA.npz", "--real-b", d / "dataset/testB.npz",
            "--output", d / "features/real_{extractor}.npz", "--threads", "2",
        )
    )
    samples = [d / f"samples/epoch_{e:03d}.npz" for e in (1, 2, 3)]
    _ok(
        deepsnow(
            "embed", "--params", FEATURES, "--extractor", "inception", "resnet50", "--samples", *samples,
            "--outputs", *[d / f"features/epoch_{e:03d}_{{extractor}}.npz" for e in (1, 2, 3)],
        )
    )
    feats = lambda es: [d / f"features/epoch_{e:03d}_{x}.npz" for e in es for x in ("inception", "resnet50")]  # noqa: E731
    real = [d / "features/real_inception.npz", d / "features/real_resnet50.npz"]
    # epochs 1-2 in one job, epoch 3 in another
    for es in ((1, 2), (3,)):
        _ok(
            deepsnow(
                "metrics", "epoch", "--params", METRICS, "--real", *real, "--features", *feats(es),
                "--samples", *[d / f"samples/epoch_{e:03d}.npz" for e in es], "--truth", d / "dataset/testA.npz",
                "--outputs", *[d / f"metrics/epoch_{e:03d}.json" for e in es],
            )
        )
    _ok(
        deepsnow(
            "metrics", "table", "--params", METRICS, "--epochs", *[d / f"metrics/epoch_{e:03d}.json" for e in (3, 1, 2)],
            "--output", d / "metrics/metrics.csv", "--correlations", d / "metrics/correlations.csv",
        )
    )
    _ok(
        deepsnow(
            "metrics", "pca", "--params", METRICS, "--real", d / "features/real_resnet50.npz",
            "--features", *[d / f"features/epoch_{e:03d}_resnet50.npz" for e in (1, 2, 3)],
            "--output", d / "metrics/pca.csv", "--summary", d / "metrics/pca.json",
        )
    )
    return d


def test_embed_outputs(run):
    for x in ("inception", "resnet50"):
        r = load_npz(run / f"features/real_{x}.npz")
        assert r["A"].shape == (N, 2048) and r["B"].shape == (N, 2048) and r["A"].dtype == np.float32
        assert str(r["extractor"]) == x and str(r["weights"]) == "random-seed0" and not bool(r["pretrained"])
        assert r["ids_A"].tolist()[0] == "simA_r0"
        e = load_npz(run / f"features/epoch_002_{x}.npz")
        assert e["fake_B"].shape == (N, 2048) and e["fake_A"].shape == (N, 2048) and int(e["epoch"]) == 2
        assert e["ids_A"].tolist()[0] == f"simA_r{N - 1}"
        prov = json.loads((run / f"features/epoch_002_{x}.npz.prov.json").read_text())
        assert prov["stage"] == "embed" and prov["extra"]["weights"] == "random-seed0"
        assert [Path(i["path"]).name for i in prov["inputs"]] == ["epoch_002.npz"]
    # the same images and weights give the same features whichever call made them
    r1 = load_npz(run / "features/real_resnet50.npz")
    assert np.isfinite(r1["A"]).all()


def test_metrics_table(run):
    rows = _rows(run / "metrics/metrics.csv")
    assert [(r["epoch"], r["direction"]) for r in rows] == [
        (str(e), d) for e in (1, 2, 3) for d in ("AtoB", "BtoA")
    ]
    for col in (
        "fid", "frd", "crd", "kid_mean", "kid_std", "rf_logloss_mean", "rf_logloss_std", "rf_accuracy_mean", "rf_auc_mean",
        "n_real", "n_fake", "inception_weights", "resnet_weights", "inception_pretrained", "resnet_pretrained",
        "paired_l1", "paired_ssim",
    ):
        assert col in rows[0], col
    ab = [r for r in rows if r["direction"] == "AtoB"]
    ba = [r for r in rows if r["direction"] == "BtoA"]
    assert all(r["paired_l1"] == "" and r["paired_ssim"] == "" for r in ba)
    l1 = [float(r["paired_l1"]) for r in ab]
    assert l1[0] > l1[1] > l1[2]  # noise shrinks over the epochs
    assert all(int(r["n_paired"]) == N for r in ab)
    assert all(r["paired_l1_season"] == "" and r["paired_ssim_season"] == "" for r in ba)
    test_a = load_npz(run / "dataset/testA.npz")
    for r in ab:  # paired_*: against truth_snowfall; paired_*_season: against truth (samples list testA reversed)
        fake = load_npz(run / f"samples/epoch_{int(r['epoch']):03d}.npz")["fake_B"][::-1].astype(int)
        for col, key in (("paired_l1", "truth_snowfall"), ("paired_l1_season", "truth")):
            assert float(r[col]) == pytest.approx(np.abs(fake - test_a[key]).mean() / 255, rel=1e-12), col
        assert float(r["paired_l1_season"]) > float(r["paired_l1"]) and -1 <= float(r["paired_ssim_season"]) <= 1
    assert all(r["inception_weights"] == "random-seed0" and r["resnet_pretrained"] == "false" for r in rows)
    assert all(float(r["fid"]) >= 0 and 0 <= float(r["crd"]) <= 2 for r in rows)
    assert (run / "metrics/metrics.csv.prov.json").exists()
    assert (run / "metrics/epoch_003.json.prov.json").exists()
    doc = json.loads((run / "metrics/epoch_001.json").read_text())
    assert doc["epoch"] == 1 and len(doc["rows"]) == 2
    corr = _rows(run / "metrics/correlations.csv")
    assert {"metric", "spearman_rho", "p_value", "n_epochs"} <= set(corr[0])
    fid_l1 = next(c for c in corr if c["metric"] == "fid" and c["paired"] == "paired_l1")
    assert fid_l1["n_epochs"] == "3" and -1 <= float(fid_l1["spearman_rho"]) <= 1


def test_test_set_without_snowfall_truth_measures_against_the_season_truth(run, tmp_path):
    """A testA.npz cut before the snowfall truth existed: the paired errors fall back to 'truth', and say so."""
    old = load_npz(run / "dataset/testA.npz")
    save_npz(tmp_path / "testA.npz", **{k: old[k] for k in ("rgb", "ids", "truth", "water")})
    real = [run / "features/real_inception.npz", run / "features/real_resnet50.npz"]
    proc = _ok(
        deepsnow(
            "metrics", "epoch", "--params", METRICS, "--real", *real,
            "--features", run / "features/epoch_003_inception.npz", run / "features/epoch_003_resnet50.npz",
            "--samples", run / "samples/epoch_003.npz", "--truth", tmp_path / "testA.npz",
            "--outputs", tmp_path / "epoch_003.json",
        )
    )
    assert "no 'truth_snowfall'" in proc.stderr
    row = json.loads((tmp_path / "epoch_003.json").read_text())["rows"][0]
    assert row["direction"] == "AtoB" and row["paired_l1"] == row["paired_l1_season"] > 0


def test_per_extractor_distances(run):
    """fd_<x>/cd_<x> for every extractor given, after crd_dot; for the paper's two they are FID, FRD, CRD."""
    with open(run / "metrics/metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    i = header.index("crd_dot")
    assert header[i + 1 : i + 5] == ["fd_inception", "cd_inception", "fd_resnet50", "cd_resnet50"]
    for r in _rows(run / "metrics/metrics.csv"):
        assert (r["fd_inception"], r["fd_resnet50"], r["cd_resnet50"]) == (r["fid"], r["frd"], r["crd"])
        assert 0 <= float(r["cd_inception"]) <= 2
    corr = {(c["metric"], c["paired"]): c for c in _rows(run / "metrics/correlations.csv")}
    for m in ("fd_inception", "cd_inception", "fd_resnet50", "cd_resnet50"):
        assert corr[(m, "paired_l1")]["n_epochs"] == "3" and corr[(m, "paired_l1")]["expected_sign"] == "1"
    assert corr[("fd_resnet50", "paired_l1")]["spearman_rho"] == corr[("frd", "paired_l1")]["spearman_rho"]


def test_per_extractor_precision_recall_density_coverage(run):
    """After the distances, per extractor: the four nearest-neighbour scores of the direction's fakes
    against the target domain's real test features; correlated expecting the opposite sign."""
    from deepsnow.metrics import prdc_scores
    from deepsnow.metrics.load import DIRECTIONS

    with open(run / "metrics/metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    i = header.index("cd_resnet50")
    assert header[i + 1 : i + 9] == [f"{w}_{x}" for x in ("inception", "resnet50") for w in ("precision", "recall", "density", "coverage")]
    real = load_npz(run / "features/real_resnet50.npz")
    fake = load_npz(run / "features/epoch_002_resnet50.npz")
    rows = {(r["epoch"], r["direction"]): r for r in _rows(run / "metrics/metrics.csv")}
    for direction, (fk, rk) in DIRECTIONS.items():
        want = prdc_scores(real[rk], fake[fk], k=2)
        got = rows[("2", direction)]
        assert {w: float(got[f"{w}_resnet50"]) for w in want} == pytest.approx(want, abs=1e-12), direction
    corr = {(c["metric"], c["paired"]): c for c in _rows(run / "metrics/correlations.csv")}
    assert corr[("coverage_inception", "paired_l1")]["expected_sign"] == "-1"


def test_too_few_images_for_prdc_k_are_refused(run, tmp_path):
    real = [run / "features/real_inception.npz", run / "features/real_resnet50.npz"]
    feats = [run / "features/epoch_001_inception.npz", run / "features/epoch_001_resnet50.npz"]
    params = json.dumps({**json.loads(METRICS), "prdc_k": N})
    p = deepsnow("metrics", "epoch", "--params", params, "--real", *real, "--features", *feats,
                 "--outputs", tmp_path / "epoch_001.json")
    assert p.returncode == 2, p.stderr
    assert "metrics.prdc_k" in p.stderr and f"k = {N} nearest neighbours need more than k samples" in p.stderr


def test_pca_outputs(run):
    rows = _rows(run / "metrics/pca.csv")
    assert list(rows[0]) == ["source", "epoch", "direction", "id", "pc1", "pc2", "pc3"]
    assert {r["source"] for r in rows} == {"real", "epoch_1", "epoch_3"}
    assert len(rows) == 2 * 3 * N
    summary = json.loads((run / "metrics/pca.json").read_text())
    ratios = summary["directions"]["AtoB"]["explained_variance_ratio"]
    assert len(ratios) == 3 and 0 < sum(ratios) <= 1 + 1e-9
    assert summary["epochs"] == [1, 3] and summary["weights"] == "random-seed0"
    assert (run / "metrics/pca.csv.prov.json").exists() and (run / "metrics/pca.json.prov.json").exists()


def test_bad_inputs_fail_with_clear_messages(run, tmp_path):
    real = [run / "features/real_inception.npz", run / "features/real_resnet50.npz"]
    feats = [run / "features/epoch_001_inception.npz", run / "features/epoch_001_resnet50.npz"]
    # NaN in the features
    bad = load_npz(feats[1])
    bad["fake_B"][0, 0] = np.nan
    save_npz(tmp_path / "nan_resnet50.npz", **bad)
    p = deepsnow("metrics", "epoch", "--params", METRICS, "--real", *real, "--features", feats[0], tmp_path / "nan_resnet50.npz",
                 "--outputs", tmp_path / "epoch_001.json")
    assert p.returncode != 0 and "NaN" in p.stderr and "epoch 1 AtoB" in p.stderr
    assert not (tmp_path / "epoch_001.json").exists()
    # real and epoch features from different weights
    other = load_npz(feats[1])
    other["weights"] = np.array("random-seed7")
    save_npz(tmp_path / "seed7_resnet50.npz", **other)
    p = deepsnow("metrics", "epoch", "--params", METRICS, "--real", *real, "--features", feats[0], tmp_path / "seed7_resnet50.npz",
                 "--outputs", tmp_path / "epoch_001.json")
    assert p.returncode != 0 and "different weights" in p.stderr
    # mismatched dimensions
    small = load_npz(feats[1])
    small["fake_B"], small["fake_A"] = small["fake_B"][:, :10], small["fake_A"][:, :10]
    save_npz(tmp_path / "dim_resnet50.npz", **small)
    p = deepsnow("metrics", "epoch", "--params", METRICS, "--real", *real, "--features", feats[0], tmp_path / "dim_resnet50.npz",
                 "--outputs", tmp_path / "epoch_001.json")
    assert p.returncode != 0 and "dimensions differ" in p.stderr
    # too few samples for the cross-validation
    few = load_npz(feats[1])
    few["fake_B"], few["fake_A"] = few["fake_B"][:3], few["fake_A"][:3]
    fewi = load_npz(feats[0])
    fewi["fake_B"], fewi["fake_A"] = fewi["fake_B"][:3], fewi["fake_A"][:3]
    save_npz(tmp_path / "few_resnet50.npz", **few)
    save_npz(tmp_path / "few_inception.npz", **fewi)
    p = deepsnow("metrics", "epoch", "--params", METRICS, "--real", *real, "--features", tmp_path / "few_inception.npz",
                 tmp_path / "few_resnet50.npz", "--outputs", tmp_path / "epoch_001.json")
    assert p.returncode != 0 and "at least 2 per class per fold" in p.stderr
    # outputs do not match the epochs
    p = deepsnow("metrics", "epoch", "--params", METRICS, "--real", *real, "--features", *feats,
                 "--outputs", tmp_path / "epoch_002.json")
    assert p.returncode != 0 and "names epoch 2" in p.stderr
    # embed: missing input, two modes, bad config
    p = deepsnow("embed", "--params", FEATURES, "--extractor", "resnet50", "--images", tmp_path / "none.npz", "--output", tmp_path / "x.npz")
    assert p.returncode != 0 and "file not found" in p.stderr
    p = deepsnow("embed", "--params", FEATURES, "--images", run / "dataset/testA.npz", "--output", tmp_path / "x.npz")
    assert p.returncode != 0 and "{extractor}" in p.stderr
    p = deepsnow("embed", "--params", '{"resnet50": {"weights": "pretrained"}}', "--images", run / "dataset/testA.npz",
                 "--output", tmp_path / "x_{extractor}.npz")
    assert p.returncode != 0 and "features.resnet50.weights" in p.stderr
    p = deepsnow("metrics", "table", "--epochs", run / "metrics/epoch_001.json", run / "metrics/epoch_001.json",
                 "--output", tmp_path / "t.csv")
    assert p.returncode != 0 and "appears twice" in p.stderr


def test_plugin_extractor_through_the_cli(run, tmp_path):
    """A third extractor installed as a `deepsnow.extractors` entry point (a real dist-info)."""
    install_tinyplug(tmp_path)
    env = env_with_venv()
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, "-m", "deepsnow.cli", "embed", "--params", json.dumps({"progress": False}),
           "--extractor", "tinyplug", "--images", str(run / "dataset/testB.npz"), "--output", str(tmp_path / "b_{extractor}.npz")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = load_npz(tmp_path / "b_tinyplug.npz")
    rgb = load_npz(run / "dataset/testB.npz")["rgb"]
    np.testing.assert_allclose(out["features"], rgb.reshape(N, -1, 3).mean(1) / 255, rtol=1e-5)
    assert str(out["extractor"]) == "tinyplug" and out["ids"].tolist() == [f"simB_r{i}" for i in range(N)]


def test_one_sided_samples_give_the_a_to_b_rows_alone(run, tmp_path):
    """A one-sided model's samples (CUT, FastCUT: fake_B only) through embed, metrics epoch and pca: the
    AtoB rows and PCA coordinates equal those of the same fake_B in the two-sided run; no BtoA."""
    d = tmp_path
    for e in (1, 3):
        s = load_npz(run / f"samples/epoch_{e:03d}.npz")
        save_npz(d / f"samples/epoch_{e:03d}.npz", fake_B=s["fake_B"], ids_A=s["ids_A"], epoch=s["epoch"])
    _ok(
        deepsnow(
            "embed", "--params", FEATURES, "--extractor", "inception", "resnet50",
            "--samples", *[d / f"samples/epoch_{e:03d}.npz" for e in (1, 3)],
            "--outputs", *[d / f"features/epoch_{e:03d}_{{extractor}}.npz" for e in (1, 3)],
        )
    )
    f = load_npz(d / "features/epoch_003_resnet50.npz")
    assert "fake_A" not in f and "ids_B" not in f
    assert np.array_equal(f["fake_B"], load_npz(run / "features/epoch_003_resnet50.npz")["fake_B"])
    real = [run / "features/real_inception.npz", run / "features/real_resnet50.npz"]
    feats = [d / f"features/epoch_{e:03d}_{x}.npz" for e in (1, 3) for x in ("inception", "resnet50")]
    _ok(
        deepsnow(
            "metrics", "epoch", "--params", METRICS, "--real", *real, "--features", *feats,
            "--samples", *[d / f"samples/epoch_{e:03d}.npz" for e in (1, 3)], "--truth", run / "dataset/testA.npz",
            "--outputs", *[d / f"metrics/epoch_{e:03d}.json" for e in (1, 3)],
        )
    )
    for e in (1, 3):
        (row,) = json.loads((d / f"metrics/epoch_{e:03d}.json").read_text())["rows"]
        two = json.loads((run / f"metrics/epoch_{e:03d}.json").read_text())["rows"]
        (same,) = [r for r in two if r["direction"] == "AtoB"]
        for key in ("fid", "frd", "crd", "kid_mean", "rf_logloss_mean", "paired_l1", "n_fake"):
            assert row[key] == pytest.approx(same[key]), key
    _ok(
        deepsnow(
            "metrics", "pca", "--params", METRICS, "--real", run / "features/real_resnet50.npz",
            "--features", *[d / f"features/epoch_{e:03d}_resnet50.npz" for e in (1, 3)],
            "--output", d / "metrics/pca.csv", "--summary", d / "metrics/pca.json",
        )
    )
    rows = _rows(d / "metrics/pca.csv")
    assert {r["direction"] for r in rows} == {"AtoB"} and len(rows) == 3 * N
    assert rows == [r for r in _rows(run / "metrics/pca.csv") if r["direction"] == "AtoB"]
    # the table and its correlations: AtoB rows alone, the correlations those of the same AtoB rows
    jsons = [d / f"metrics/epoch_{e:03d}.json" for e in (1, 3)]
    _ok(
        deepsnow(
            "metrics", "table", "--params", METRICS, "--epochs", *jsons,
            "--output", d / "metrics/metrics.csv", "--correlations", d / "metrics/correlations.csv",
        )
    )
    assert [(r["epoch"], r["direction"]) for r in _rows(d / "metrics/metrics.csv")] == [("1", "AtoB"), ("3", "AtoB")]
    two_sided = [r for e in (1, 3) for r in json.loads((run / f"metrics/epoch_{e:03d}.json").read_text())["rows"]]
    expected = correlations([r for r in two_sided if r["direction"] == "AtoB"])
    corr = _rows(d / "metrics/correlations.csv")
    assert len(corr) == len(expected) > 0 and {c["n_epochs"] for c in corr} == {"2"}
    for got, want in zip(corr, expected):
        assert (got["metric"], got["paired"], got["direction"]) == (want["metric"], want["paired"], "AtoB")
        assert float(got["spearman_rho"] or "nan") == pytest.approx(want["spearman_rho"], nan_ok=True)  # NaN: empty
    # features of a one-sided and a two-sided model are not measured together
    mixed = [d / "features/epoch_001_inception.npz", run / "features/epoch_001_resnet50.npz"]
    proc = deepsnow(
        "metrics", "epoch", "--params", METRICS, "--real", *real, "--features", *mixed,
        "--outputs", d / "metrics/mixed_001.json",
    )
    assert proc.returncode == 2 and "one-sided model (no fake_A) and of a two-sided one" in proc.stderr, proc.stderr


# ----------------------------------------------------------------------------- metrics tracking

TRACKING = {"n_bootstrap": 3, "seed": 1, "rf_repeats": 1}


def _tracking_paths(run, epochs=(1, 2, 3)) -> dict:
    return {
        "table": run / "metrics/metrics.csv",
        "real": [run / "features/real_inception.npz", run / "features/real_resnet50.npz"],
        "features": [run / f"features/epoch_{e:03d}_{x}.npz" for e in epochs for x in ("inception", "resnet50")],
        "samples": [run / f"samples/epoch_{e:03d}.npz" for e in epochs],
        "truth": run / "dataset/testA.npz",
    }


def _brute_force_replicate(run, r: int) -> dict:
    """Replicate r of the tracking bootstrap, written out loop by loop: draw the real test-B and the
    generated test-A rows, then every metric and the paired L1 of each epoch."""
    from deepsnow.config import parse_params
    from deepsnow.metrics.epoch import set_metrics

    params = {**parse_params(METRICS, "metrics"), "rf_repeats": 1}
    rng = np.random.default_rng([1, r])
    ri, ci = rng.integers(0, N, N), rng.integers(0, N, N)
    test_a = load_npz(run / "dataset/testA.npz")
    truth = {k: t for k, t in zip(test_a["ids"].astype(str), test_a["truth_snowfall"])}
    out: dict = {"paired_l1": []}
    for e in (1, 2, 3):
        s = load_npz(run / f"samples/epoch_{e:03d}.npz")  # features rows follow the samples' rows
        real = {x: load_npz(run / f"features/real_{x}.npz")["B"][ri] for x in ("inception", "resnet50")}
        fake = {x: load_npz(run / f"features/epoch_{e:03d}_{x}.npz")["fake_B"][ci] for x in ("inception", "resnet50")}
        for m, v in set_metrics(real, fake, params, 1).items():
            out.setdefault(m, []).append(v)
        errs = [np.abs(s["fake_B"][i].astype(int) - truth[str(s["ids_A"][i])].astype(int)).mean() / 255 for i in ci]
        out["paired_l1"].append(float(np.mean(errs)))
    return out


def _spearman(a, b) -> float:
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():  # a constant replicate: rho undefined (NaN), as the stage leaves it
        warnings.simplefilter("ignore")
        return spearmanr(a, b).statistic


def test_tracking_equals_a_brute_force_loop(run, tmp_path):
    from deepsnow.config import parse_params
    from deepsnow.metrics.table import unpaired_metrics
    from deepsnow.metrics.tracking import run_tracking

    run_tracking(_tracking_paths(run), tmp_path / "tracking.csv", parse_params(METRICS, "metrics"), TRACKING, 1)
    rows = {r["metric"]: r for r in _rows(tmp_path / "tracking.csv")}
    table = [r for r in _rows(run / "metrics/metrics.csv") if r["direction"] == "AtoB"]
    signs = unpaired_metrics(table)
    assert set(rows) == set(signs) and "fd_inception" in rows and "coverage_resnet50" in rows
    l1 = np.array([float(r["paired_l1"]) for r in table])
    boots = [_brute_force_replicate(run, r) for r in range(3)]
    for m, row in rows.items():
        values = signs[m] * np.array([float(r[m]) for r in table])
        assert float(row["rho"]) == pytest.approx(_spearman(values, l1), abs=1e-12), m
        assert row["worse_when"] == ("higher" if signs[m] > 0 else "lower")
        rhos = [x for x in (_spearman(signs[m] * np.array(b[m]), b["paired_l1"]) for b in boots) if np.isfinite(x)]
        assert int(row["n_bootstrap"]) == len(rhos), m
        if rhos:
            assert float(row["ci_low"]) == pytest.approx(np.percentile(rhos, 2.5), abs=1e-12), m
            assert float(row["ci_high"]) == pytest.approx(np.percentile(rhos, 97.5), abs=1e-12), m
        assert int(row["picked_epoch"]) == 1 + int(np.argmin(values)) and int(row["best_epoch"]) == 1 + int(np.argmin(l1))
        assert float(row["regret"]) == pytest.approx(l1[int(np.argmin(values))] - l1.min(), abs=1e-15)
        picks = [np.argmin(signs[m] * np.array(b[m])) == np.argmin(b["paired_l1"]) for b in boots]
        assert float(row["pick_share"]) == pytest.approx(np.mean(picks)), m


def test_tracking_refuses_bad_input_naming_the_file(run, tmp_path):
    """Exit status 2 through the command line, the file named, nothing written (the other cases in
    process: one command start is seconds)."""
    from deepsnow import DeepsnowError
    from deepsnow.config import parse_params
    from deepsnow.metrics.tracking import run_tracking

    no_truth = load_npz(run / "dataset/testA.npz")
    save_npz(tmp_path / "testA.npz", rgb=no_truth["rgb"], ids=no_truth["ids"])
    paths = {**_tracking_paths(run), "truth": tmp_path / "testA.npz"}
    args = [a for k, v in paths.items() for a in (f"--{k}", *(v if isinstance(v, list) else [v]))]
    p = deepsnow("metrics", "tracking", "--params", json.dumps(TRACKING), "--metrics-params", METRICS, *args,
                 "--output", tmp_path / "tracking.csv")
    assert p.returncode == 2 and f"{tmp_path / 'testA.npz'}: no true snowy images" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "tracking.csv").exists()
    with open(run / "metrics/metrics.csv") as src, open(tmp_path / "two.csv", "w") as dst:
        dst.writelines(line for line in src if not line.startswith("3,"))
    cases = [
        ({"table": tmp_path / "two.csv"}, f"{tmp_path / 'two.csv'}: 2 epochs"),
        ({"features": _tracking_paths(run, (1, 2))["features"]}, "--features hold epochs [1, 2] but the metrics table has [1, 2, 3]"),
    ]
    for change, message in cases:
        with pytest.raises(DeepsnowError) as err:
            run_tracking({**_tracking_paths(run), **change}, tmp_path / "tracking.csv", parse_params(METRICS, "metrics"), TRACKING, 1)
        assert message in str(err.value)
        assert not (tmp_path / "tracking.csv").exists()
