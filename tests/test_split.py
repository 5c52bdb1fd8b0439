"""Tests of deepsnow.data.split: area-wise train/test split of patch shards."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data import split as split_mod
from deepsnow.data.split import split_dataset
from deepsnow.io import save_npz

S = 8
WKT = 'PROJCS["WGS 84 / UTM zone 33N"]'


def make_shard(root, aoi, season, n, truth=False, size=S):
    """A shard ``root/<aoi>/<season>.npz`` with ``n`` patches whose pixels encode (aoi, index)."""
    idx = np.arange(n)
    rgb = np.zeros((n, size, size, 3), dtype=np.uint8)
    rgb[..., 0] = (idx % 256)[:, None, None]
    rgb[..., 1] = sum(map(ord, aoi)) % 256
    rgb[..., 2] = 1 if season == "snow" else 0
    arrays = {
        "rgb": rgb,
        "water": np.zeros((n, size, size), dtype=bool),
        "ids": np.array([f"{aoi}_{season}_r{8 * i}_c0" for i in idx], dtype=str).reshape(n),
        "row": (8 * idx).astype(np.int64),
        "col": np.zeros(n, dtype=np.int64),
        "transform": np.tile([10.0, 0, 500000, 0, -10.0, 5200000], (n, 1)).reshape(n, 6),
        "crs": np.array(WKT),
        "snow_fraction": np.full(n, 1.0 if season == "snow" else 0.0, dtype=np.float32),
        "cloud_fraction": np.zeros(n, dtype=np.float32),
        "valid_fraction": np.ones(n, dtype=np.float32),
        "water_fraction": np.zeros(n, dtype=np.float32),
    }
    if truth:
        arrays["truth"] = 255 - rgb
        arrays["truth_snowfall"] = np.maximum(rgb, 200)
    path = root / aoi / f"{season}.npz"
    save_npz(path, **arrays)
    return path


@pytest.fixture
def shards(tmp_path):
    """Four areas a0..a3, each with a snow-free (n=3+i, with truth) and a snow (n=2) shard."""
    root = tmp_path / "patches"
    paths = []
    for i, aoi in enumerate(["a2", "a0", "a3", "a1"]):  # unsorted on purpose
        paths.append(make_shard(root, aoi, "snowfree", 3 + int(aoi[1]), truth=True))
        paths.append(make_shard(root, aoi, "snow", 2))
    return paths


def params(**kw):
    return validate_section("split", kw)


def load(path):
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def test_areas_are_disjoint_and_outputs_consistent(tmp_path, shards):
    out = tmp_path / "dataset"
    summary = split_dataset(shards, params(test_fraction=0.25, seed=3), out)
    assert len(summary["test_aois"]) == 1
    assert set(summary["test_aois"]).isdisjoint(summary["train_aois"])
    assert sorted(summary["test_aois"] + summary["train_aois"]) == ["a0", "a1", "a2", "a3"]
    sets = {n: load(out / f"{n}.npz") for n in ("trainA", "trainB", "testA", "testB")}
    for name, arr in sets.items():
        allowed = summary["train_aois"] if name.startswith("train") else summary["test_aois"]
        assert set(arr["aoi"]) <= set(allowed)
        # areas sorted, then patch order
        assert list(arr["aoi"]) == sorted(arr["aoi"])
        n = len(arr["ids"])
        assert summary["counts"][name] == n > 0
        assert arr["rgb"].shape == (n, S, S, 3) and arr["water"].shape == (n, S, S)
        assert arr["transform"].shape == (n, 6) and arr["crs"].shape == (n,)
        assert all(i.startswith(f"{a}_") for i, a in zip(arr["ids"], arr["aoi"]))
        season = "snowfree" if name.endswith("A") else "snow"
        assert all(f"_{season}_" in i for i in arr["ids"])
        assert (arr["rgb"][..., 2] == (1 if season == "snow" else 0)).all()
    # truth only in domain A, where every shard has it, aligned with rgb
    assert "truth" in sets["testA"] and "truth" in sets["trainA"]
    assert "truth" not in sets["testB"] and "truth" not in sets["trainB"]
    np.testing.assert_array_equal(sets["testA"]["truth"], 255 - sets["testA"]["rgb"])
    # the snowfall truth likewise, under the same ids
    assert "truth_snowfall" in sets["testA"] and "truth_snowfall" not in sets["testB"]
    np.testing.assert_array_equal(sets["testA"]["truth_snowfall"], np.maximum(sets["testA"]["rgb"], 200))
    n_a = {a: 3 + int(a[1]) for a in ["a0", "a1", "a2", "a3"]}
    assert summary["counts"]["testA"] == sum(n_a[a] for a in summary["test_aois"])
    assert summary["counts"]["trainB"] == 2 * len(summary["train_aois"])

    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["patch_id", "aoi", "season", "domain", "split", "row", "col"]
    for name, arr in sets.items():
        mine = [r for r in rows if r["split"] + r["domain"] == name]
        assert [r["patch_id"] for r in mine] == list(arr["ids"])
        assert [r["aoi"] for r in mine] == list(arr["aoi"])
        assert [int(r["row"]) for r in mine] == arr["row"].tolist()
    assert len(rows) == sum(summary["counts"].values())
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["counts"] == summary["counts"]
    assert on_disk["seed"] == 3 and on_disk["test_aois"] == summary["test_aois"]


def test_deterministic_for_a_seed_and_seed_matters(tmp_path, shards):
    a = split_dataset(shards, params(seed=5), tmp_path / "d1")
    b = split_dataset(list(shards), params(seed=5), tmp_path / "d2")
    assert a["test_aois"] == b["test_aois"]
    for n in ("trainA", "testB"):
        x, y = load(tmp_path / "d1" / f"{n}.npz"), load(tmp_path / "d2" / f"{n}.npz")
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert (tmp_path / "d1" / "manifest.csv").read_bytes() == (tmp_path / "d2" / "manifest.csv").read_bytes()
    # shard order on the command line does not change the result
    c = split_dataset(list(reversed(shards)), params(seed=5), tmp_path / "d3")
    assert c["test_aois"] == a["test_aois"]
    assert (tmp_path / "d3" / "manifest.csv").read_bytes() == (tmp_path / "d1" / "manifest.csv").read_bytes()
    # different seeds pick different areas (4 areas, 8 seeds)
    picks = {tuple(split_mod.choose_test_areas(["a0", "a1", "a2", "a3"], params(seed=s))) for s in range(8)}
    assert len(picks) > 1


def test_test_fraction_rounds_and_leaves_a_training_area():
    areas = [f"x{i}" for i in range(10)]
    assert len(split_mod.choose_test_areas(areas, params(test_fraction=0.3))) == 3
    assert len(split_mod.choose_test_areas(areas, params(test_fraction=0.01))) == 1
    assert len(split_mod.choose_test_areas(areas, params(test_fraction=0.99))) == 9


def test_test_aois_are_honoured(tmp_path, shards):
    summary = split_dataset(shards, params(test_aois=["a3", "a1"]), tmp_path / "d")
    assert summary["test_aois"] == ["a1", "a3"] and summary["train_aois"] == ["a0", "a2"]
    assert summary["selection"] == "test_aois"
    assert list(load(tmp_path / "d" / "testA.npz")["aoi"]) == ["a1"] * 4 + ["a3"] * 6


def test_bad_test_aois_and_single_area_are_errors(tmp_path, shards):
    out = tmp_path / "d"
    with pytest.raises(DeepsnowError, match=r"split\.test_aois.*\['zz'\]"):
        split_dataset(shards, params(test_aois=["a0", "zz"]), out)
    with pytest.raises(DeepsnowError, match="at least one must remain"):
        split_dataset(shards, params(test_aois=["a0", "a1", "a2", "a3"]), out)
    one = [p for p in shards if p.parent.name == "a0"]
    with pytest.raises(DeepsnowError, match="at least 2 areas"):
        split_dataset(one, params(), out)
    assert not out.exists()


def test_empty_set_is_an_error_and_writes_nothing(tmp_path, shards):
    root = shards[0].parent.parent
    extra = make_shard(root, "b9", "snowfree", 3)
    empty_snow = make_shard(root, "b9", "snow", 0)
    out = tmp_path / "d"
    with pytest.raises(DeepsnowError, match=r"zero patches in testB.*patches/\*\.csv"):
        split_dataset(shards + [extra, empty_snow], params(test_aois=["b9"]), out)
    assert not out.exists() or not any(out.iterdir())
    # a domain with no shard at all for the test area
    with pytest.raises(DeepsnowError, match="zero patches in testB"):
        split_dataset(shards + [extra], params(test_aois=["b9"]), out)
    assert not out.exists() or not any(out.iterdir())


def test_failure_while_writing_leaves_no_partial_outputs(tmp_path, shards, monkeypatch):
    out = tmp_path / "d"
    out.mkdir()

    def boom(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(split_mod, "write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        split_dataset(shards, params(), out)
    assert list(out.iterdir()) == []


def test_truth_dropped_when_one_shard_lacks_it(tmp_path, shards):
    root = shards[0].parent.parent
    no_truth = make_shard(root, "a0", "snowfree", 3, truth=False)  # overwrite a0's shard
    assert no_truth in shards
    summary = split_dataset(shards, params(test_aois=["a0", "a1"]), tmp_path / "d")
    assert "truth" not in load(tmp_path / "d" / "testA.npz")
    assert "truth" in load(tmp_path / "d" / "trainA.npz")
    assert summary["truth"]["testA"] is False


def test_unreadable_or_misplaced_shards_are_errors(tmp_path, shards):
    root = shards[0].parent.parent
    pickled = root / "p1" / "snow.npz"
    pickled.parent.mkdir()
    np.savez(pickled, rgb=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DeepsnowError, match="pickle") as err:
        split_dataset(shards + [pickled], params(), tmp_path / "d")
    assert str(pickled) in str(err.value)
    truncated = root / "p2" / "snow.npz"
    truncated.parent.mkdir()
    truncated.write_bytes(shards[0].read_bytes()[:50])
    with pytest.raises(DeepsnowError, match="not a readable") as err:
        split_dataset(shards + [truncated], params(), tmp_path / "d")
    assert str(truncated) in str(err.value)
    misnamed = tmp_path / "elsewhere" / "a0.npz"
    misnamed.parent.mkdir()
    misnamed.write_bytes(shards[0].read_bytes())
    with pytest.raises(DeepsnowError, match="<aoi>/<season>.npz"):
        split_dataset(shards + [misnamed], params(), tmp_path / "d")
    moved = tmp_path / "zz" / "snowfree.npz"  # ids say a2, folder says zz
    moved.parent.mkdir()
    moved.write_bytes(shards[0].read_bytes())
    with pytest.raises(DeepsnowError, match="do not start with 'zz_snowfree_'"):
        split_dataset(shards + [moved], params(), tmp_path / "d")
    big = make_shard(tmp_path / "other", "c0", "snow", 2, size=16)
    with pytest.raises(DeepsnowError, match="different patch sizes"):
        split_dataset(shards + [big], params(), tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_cli_split(tmp_path, shards):
    out = tmp_path / "dataset"
    cmd = [sys.executable, "-m", "deepsnow.cli", "split", "--params", '{"test_aois": ["a2"]}', "--shards"]
    res = subprocess.run(
        cmd + [str(p) for p in shards] + ["--outdir", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    for name in ("trainA.npz", "trainB.npz", "testA.npz", "testB.npz", "manifest.csv", "summary.json"):
        assert (out / name).exists() and (out / f"{name}.prov.json").exists()
    prov = json.loads((out / "testA.npz.prov.json").read_text())
    assert prov["extra"]["counts"]["testA"] == 5
    bad = tmp_path / "x" / "snow.npz"
    bad.parent.mkdir()
    bad.write_text("garbage")
    res = subprocess.run(
        cmd + [str(bad)] + ["--outdir", str(tmp_path / "o2")], capture_output=True, text=True
    )
    assert res.returncode != 0 and str(bad) in res.stderr
