"""Fault matrix: corrupt, truncated and untrusted input files at every stage boundary.

One parametrised test per row. Every row copies one valid input of a stage (made by
the ``deepsnow`` command line itself in the module fixture), damages the copy, runs
the stage's command on it and asserts what the user sees:

* the command exits with 2 (a :class:`deepsnow.DeepsnowError`, not a crash);
* stderr names the damaged file and says what was expected, and holds no traceback;
* no output file (and no temporary file) exists afterwards.

Untrusted files (a checkpoint holding pickled Python objects, an ``.npz`` holding an
object array) must be refused without running the pickle's payload: the payload
would create a marker file, which must not exist afterwards. ``test_payload_is_live``
shows the payload does create it when unpickled, so those assertions can fail.

Most rows call ``deepsnow.cli.main`` in this process (the CLI's code path, without
paying a torch import per row); the untrusted-file rows run the real command in a
subprocess.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from helpers import deepsnow

# -- tiny but complete valid inputs, made with the CLI ----------------------------------------------
DATA = {"source": "simulator", "simulator": {"n_aois": 2, "size": 160, "seed": 1, "snow_line_m": 300, "cloudy_scene_fraction": 0.0}}
PATCHES = {"size": 32, "stride": 32}
SPLIT = {"test_aois": ["sim01"]}
GAN = dict(ngf=4, ndf=4, n_blocks=1, load_size=32, crop_size=32, batch_size=4, n_epochs=1, n_epochs_decay=0,
           pool_size=2, device="cpu", threads=2, seed=3)
SAMPLES = {"batch_size": 8, "max_samples": 8}
FEATURES = {"resnet50": {"weights": "random", "size": 64}, "progress": False, "batch_size": 8}
METRICS = {"inception_extractor": "resnet50", "rf_repeats": 1, "rf_n_estimators": 5, "kid_subsets": 2, "n_jobs": 1}


def run_cli(argv: list) -> tuple[int, str]:
    """``deepsnow.cli.main(argv)`` in this process: (exit code, stderr).

    An exception escaping ``main`` is what the user would see as a traceback: it fails the row.
    """
    import contextlib
    import io

    from deepsnow.cli import main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code
    except BaseException as exc:  # noqa: BLE001 - the point is to catch everything that is not a DeepsnowError
        pytest.fail(f"deepsnow {argv[0]} crashed with {type(exc).__name__}: {exc} (the user would see a traceback)")
    return rc, err.getvalue()


def ok(argv: list) -> None:
    rc, err = run_cli(["--log-level", "WARNING", *argv])
    assert rc == 0, f"building the valid inputs failed: deepsnow {' '.join(map(str, argv))}\n{err}"


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, Path]:
    """Every stage's valid inputs, from simulate to the metrics table."""
    d = tmp_path_factory.mktemp("valid")
    for aoi in ("sim00", "sim01"):
        ok(["simulate", "--params", json.dumps(DATA), "--aoi", aoi, "--snowfree", d / f"scenes/{aoi}/snowfree.tif",
            "--snow", d / f"scenes/{aoi}/snow.tif", "--truth", d / f"truth/{aoi}/snow.tif"])
        for season in ("snowfree", "snow"):
            ok(["mask", "--scene", d / f"scenes/{aoi}/{season}.tif", "--output", d / f"masks/{aoi}/{season}.tif",
                "--summary", d / f"masks/{aoi}/{season}.json"])
            truth = ["--truth", d / f"truth/{aoi}/snow.tif"] if season == "snowfree" else []
            ok(["patches", "--params", json.dumps(PATCHES), "--scene", d / f"scenes/{aoi}/{season}.tif",
                "--mask", d / f"masks/{aoi}/{season}.tif", *truth, "--output", d / f"patches/{aoi}/{season}.npz",
                "--table", d / f"patches/{aoi}/{season}.csv"])
    ok(["split", "--params", json.dumps(SPLIT), "--shards", *sorted((d / "patches").glob("*/*.npz")),
        "--outdir", d / "dataset"])
    ok(["train", "--params", json.dumps(GAN), "--train-a", d / "dataset/trainA.npz", "--train-b", d / "dataset/trainB.npz",
        "--checkpoint-dir", d / "train/checkpoints", "--state-dir", d / "train/state", "--losses", d / "train/losses.csv",
        "--iter-losses", d / "train/losses_iter.csv", "--no-progress"])
    ok(["generate", "--params", json.dumps(SAMPLES), "--checkpoints", d / "train/checkpoints/epoch_001.pt",
        "--outputs", d / "samples/epoch_001.npz", "--test-a", d / "dataset/testA.npz", "--test-b", d / "dataset/testB.npz"])
    ok(["embed", "--params", json.dumps(FEATURES), "--extractor", "resnet50", "--real-a", d / "dataset/testA.npz",
        "--real-b", d / "dataset/testB.npz", "--output", d / "features/real_resnet50.npz"])
    ok(["embed", "--params", json.dumps(FEATURES), "--extractor", "resnet50", "--samples", d / "samples/epoch_001.npz",
        "--outputs", d / "features/epoch_001_resnet50.npz"])
    ok(["metrics", "epoch", "--params", json.dumps(METRICS), "--real", d / "features/real_resnet50.npz",
        "--features", d / "features/epoch_001_resnet50.npz", "--outputs", d / "metrics/epoch_001.json"])
    ok(["metrics", "table", "--params", json.dumps(METRICS), "--epochs", d / "metrics/epoch_001.json",
        "--output", d / "metrics/metrics.csv"])
    # the control run of every command a row uses: the valid inputs pass (so a row's failure is the fault's doing)
    ok(["figures", "--figure", "5", "--outputs", d / "control/f5.png", d / "control/f5.pdf", "--metrics", d / "metrics/metrics.csv"])
    ok(["translate", "--checkpoint", d / "train/checkpoints/epoch_001.pt", "--input", d / "scenes/sim00/snowfree.tif",
        "--output", d / "control/t.tif", "--device", "cpu", "--tile", "96", "--overlap", "16"])
    return {
        "scene": d / "scenes/sim00/snowfree.tif",
        "scene_other": d / "scenes/sim01/snowfree.tif",
        "truth": d / "truth/sim00/snow.tif",
        "mask": d / "masks/sim00/snowfree.tif",
        "mask_other": d / "masks/sim01/snowfree.tif",
        "shards": sorted((d / "patches").glob("*/*.npz")),
        "shard": d / "patches/sim01/snowfree.npz",
        "trainA": d / "dataset/trainA.npz",
        "trainB": d / "dataset/trainB.npz",
        "testA": d / "dataset/testA.npz",
        "testB": d / "dataset/testB.npz",
        "ckpt": d / "train/checkpoints/epoch_001.pt",
        "samples": d / "samples/epoch_001.npz",
        "real_features": d / "features/real_resnet50.npz",
        "features": d / "features/epoch_001_resnet50.npz",
        "metrics_csv": d / "metrics/metrics.csv",
    }


# -- the stages: which valid file a row damages and the command it runs on it --------------------------
@dataclass(frozen=True)
class Stage:
    source: str  # key in ``valid``: the file that is damaged
    name: str  # file name of the damaged copy
    argv: Callable[[dict, Path, Path], list]  # (valid, damaged, out folder) -> command line


def _split_argv(v, bad, out):
    shards = [bad if s == v["shard"] else s for s in v["shards"]]
    assert bad in shards
    return ["split", "--params", json.dumps(SPLIT), "--shards", *shards, "--outdir", out / "dataset"]


def _train_argv(v, bad, out):
    return ["train", "--params", json.dumps(GAN), "--train-a", bad, "--train-b", v["trainB"], "--checkpoint-dir",
            out / "checkpoints", "--state-dir", out / "state", "--losses", out / "losses.csv", "--iter-losses",
            out / "losses_iter.csv", "--no-progress"]


STAGES = {
    "mask.scene": Stage("scene", "snowfree.tif", lambda v, bad, out: [
        "mask", "--scene", bad, "--output", out / "mask.tif", "--summary", out / "mask.json"]),
    "patches.scene": Stage("scene", "snowfree.tif", lambda v, bad, out: [
        "patches", "--params", json.dumps(PATCHES), "--scene", bad, "--mask", v["mask"], "--truth", v["truth"],
        "--output", out / "p.npz", "--table", out / "p.csv"]),
    "patches.truth": Stage("truth", "snow.tif", lambda v, bad, out: [
        "patches", "--params", json.dumps(PATCHES), "--scene", v["scene"], "--mask", v["mask"], "--truth", bad,
        "--output", out / "p.npz", "--table", out / "p.csv"]),
    "patches.mask": Stage("mask", "snowfree.tif", lambda v, bad, out: [
        "patches", "--params", json.dumps(PATCHES), "--scene", v["scene"], "--mask", bad, "--truth", v["truth"],
        "--output", out / "p.npz", "--table", out / "p.csv"]),
    "split.shard": Stage("shard", "sim01/snowfree.npz", _split_argv),
    "train.dataset": Stage("trainA", "trainA.npz", _train_argv),
    "generate.dataset": Stage("testA", "testA.npz", lambda v, bad, out: [
        "generate", "--params", json.dumps(SAMPLES), "--checkpoints", v["ckpt"], "--outputs", out / "epoch_001.npz",
        "--test-a", bad, "--test-b", v["testB"]]),
    "generate.ckpt": Stage("ckpt", "epoch_001.pt", lambda v, bad, out: [
        "generate", "--params", json.dumps(SAMPLES), "--checkpoints", bad, "--outputs", out / "epoch_001.npz",
        "--test-a", v["testA"], "--test-b", v["testB"]]),
    "translate.ckpt": Stage("ckpt", "epoch_001.pt", lambda v, bad, out: [
        "translate", "--checkpoint", bad, "--input", v["scene"], "--output", out / "t.tif", "--device", "cpu",
        "--tile", "96", "--overlap", "16"]),
    "translate.scene": Stage("scene", "snowfree.tif", lambda v, bad, out: [
        "translate", "--checkpoint", v["ckpt"], "--input", bad, "--output", out / "t.tif", "--device", "cpu",
        "--tile", "96", "--overlap", "16"]),
    "embed.samples": Stage("samples", "epoch_001.npz", lambda v, bad, out: [
        "embed", "--params", json.dumps(FEATURES), "--extractor", "resnet50", "--samples", bad,
        "--outputs", out / "epoch_001_resnet50.npz"]),
    "metrics.features": Stage("features", "epoch_001_resnet50.npz", lambda v, bad, out: [
        "metrics", "epoch", "--params", json.dumps(METRICS), "--real", v["real_features"], "--features", bad,
        "--outputs", out / "epoch_001.json"]),
    "metrics.real": Stage("real_features", "real_resnet50.npz", lambda v, bad, out: [
        "metrics", "epoch", "--params", json.dumps(METRICS), "--real", bad, "--features", v["features"],
        "--outputs", out / "epoch_001.json"]),
    "figures.metrics": Stage("metrics_csv", "metrics.csv", lambda v, bad, out: [
        "figures", "--figure", "5", "--outputs", out / "f5.png", out / "f5.pdf", "--metrics", bad]),
}


# -- faults: (valid source, damaged copy, marker path, valid inputs) -> None ----------------------------
def truncated(src, dst, marker, v):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def truncated_mid_line(src, dst, marker, v):
    """Cut to half its size, within a line (a text table cut exactly after a newline is a valid shorter table)."""
    data = src.read_bytes()
    cut = len(data) // 2
    dst.write_bytes(data[: cut - 1 if data[cut - 1 : cut] == b"\n" else cut])


def garbage(src, dst, marker, v):
    dst.write_bytes(np.random.default_rng(7).integers(0, 256, src.stat().st_size, dtype=np.uint8).tobytes())


def empty(src, dst, marker, v):
    dst.write_bytes(b"")


def copy_of(key):
    def fault(src, dst, marker, v):
        shutil.copyfile(v[key], dst)

    return fault


def _npz(change):
    """Rewrite an .npz with ``change(arrays)`` applied (np.savez pickles object arrays: allow_pickle is on)."""

    def fault(src, dst, marker, v):
        with np.load(src, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        change(arrays, marker)
        with open(dst, "wb") as fh:
            np.savez(fh, **arrays)

    return fault


def drop(*keys):
    def change(a, m):
        for k in keys:
            del a[k]

    return _npz(change)


def as_float(key):
    return _npz(lambda a, m: a.__setitem__(key, a[key].astype(np.float32)))


def grey(key):
    return _npz(lambda a, m: a.__setitem__(key, a[key][..., 0]))


def with_nan(key):
    def change(a, m):
        x = a[key].copy()
        x[0, 0] = np.nan
        a[key] = x

    return _npz(change)


def flat(key):
    return _npz(lambda a, m: a.__setitem__(key, a[key].reshape(-1)))


class Payload:
    """Unpickling this opens (creates) the marker file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def object_array(src, dst, marker, v):
    """The valid arrays plus an object array whose pickle would run the payload."""
    _npz(lambda a, m: a.__setitem__("extra", np.array([Payload(m)], dtype=object)))(src, dst, marker, v)


def _ckpt(change):
    def fault(src, dst, marker, v):
        import torch

        obj = torch.load(src, map_location="cpu", weights_only=True)
        change(obj, marker)
        torch.save(obj, dst)

    return fault


def ckpt_without_generator(obj, marker):
    del obj["G_A"]


def ckpt_wrong_shapes(obj, marker):
    """A generator weight of the wrong shape: an architecture that does not match the ``arch`` it declares."""
    import torch

    key = next(k for k, t in obj["G_A"].items() if t.ndim == 4)
    obj["G_A"][key] = torch.zeros(obj["G_A"][key].shape[0] + 1, *obj["G_A"][key].shape[1:])


def ckpt_pickled_object(obj, marker):
    obj["note"] = Payload(marker)


def plain_pickle(src, dst, marker, v):
    dst.write_bytes(pickle.dumps({"G_A": Payload(marker)}))


def csv_without(column):
    def fault(src, dst, marker, v):
        import pandas as pd

        pd.read_csv(src).drop(columns=[column]).to_csv(dst, index=False)

    return fault


def csv_text_in(column):
    def fault(src, dst, marker, v):
        import pandas as pd

        df = pd.read_csv(src)
        df[column] = df[column].astype(object)
        df.loc[0, column] = "oops"
        df.to_csv(dst, index=False)

    return fault


# -- the matrix ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    id: str
    stage: str
    fault: Callable
    expect: str  # regex: what stderr must say was expected (case-insensitive)
    subprocess: bool = False  # run the real command in a subprocess
    payload: bool = False  # the fault holds a pickle payload creating the marker file


TIF_BROKEN = r"not a readable (mask )?GeoTIFF.*(truncated|corrupt)"
NPZ_BROKEN = r"not a readable \.npz archive.*(truncated|corrupt)"
NPZ_EMPTY = r"empty file \(0 bytes\), expected a \.npz archive"
CKPT_BROKEN = r"not a readable checkpoint.*(truncated|corrupt)|checkpoint file is empty"
PICKLED = r"refusing to load: .*holds pickled Python objects"

ROWS = [
    # scene GeoTIFF
    Row("scene-mask-truncated", "mask.scene", truncated, TIF_BROKEN),
    Row("scene-mask-garbage", "mask.scene", garbage, TIF_BROKEN),
    Row("scene-mask-empty", "mask.scene", empty, TIF_BROKEN),
    Row("scene-mask-wrong-bands", "mask.scene", copy_of("mask"), r"version-1 scene .* 7 bands \['B04'.*found 1 bands \['class'\]"),
    Row("scene-patches-truncated", "patches.scene", truncated, TIF_BROKEN),
    Row("scene-patches-garbage", "patches.scene", garbage, TIF_BROKEN),
    Row("scene-patches-empty", "patches.scene", empty, TIF_BROKEN),
    Row("scene-patches-other-grid", "patches.scene", copy_of("scene_other"), r"grid|transform|CRS|shape"),
    Row("truth-patches-truncated", "patches.truth", truncated, TIF_BROKEN),
    Row("scene-translate-truncated", "translate.scene", truncated, TIF_BROKEN),
    Row("scene-translate-garbage", "translate.scene", garbage, TIF_BROKEN),
    # mask GeoTIFF
    Row("mask-patches-truncated", "patches.mask", truncated, TIF_BROKEN),
    Row("mask-patches-garbage", "patches.mask", garbage, TIF_BROKEN),
    Row("mask-patches-empty", "patches.mask", empty, TIF_BROKEN),
    Row("mask-patches-scene-as-mask", "patches.mask", copy_of("scene"), r"expected a 1-band uint8 class GeoTIFF"),
    Row("mask-patches-other-grid", "patches.mask", copy_of("mask_other"), r"grid|transform|CRS|shape"),
    # patch shard (split)
    Row("shard-split-truncated", "split.shard", truncated, NPZ_BROKEN),
    Row("shard-split-garbage", "split.shard", garbage, NPZ_BROKEN),
    Row("shard-split-empty", "split.shard", empty, NPZ_EMPTY),
    Row("shard-split-missing-rgb", "split.shard", drop("rgb"), r"missing arrays \['rgb'\]"),
    Row("shard-split-float-rgb", "split.shard", as_float("rgb"), r"'rgb' must be \(N, S, S, 3\) uint8"),
    Row("shard-split-object-array", "split.shard", object_array, PICKLED, subprocess=True, payload=True),
    # dataset npz (train, generate)
    Row("dataset-train-truncated", "train.dataset", truncated, NPZ_BROKEN),
    Row("dataset-train-garbage", "train.dataset", garbage, NPZ_BROKEN),
    Row("dataset-train-empty", "train.dataset", empty, NPZ_EMPTY),
    Row("dataset-train-missing-rgb", "train.dataset", drop("rgb"), r"missing arrays \['rgb'\]"),
    Row("dataset-train-float-rgb", "train.dataset", as_float("rgb"), r"'rgb' must be \(N, S, S, 3\) uint8"),
    Row("dataset-train-grey-rgb", "train.dataset", grey("rgb"), r"'rgb' must be \(N, S, S, 3\) uint8"),
    Row("dataset-generate-truncated", "generate.dataset", truncated, NPZ_BROKEN),
    Row("dataset-generate-missing-rgb", "generate.dataset", drop("rgb"), r"missing arrays \['rgb'\]"),
    # checkpoint .pt (generate, translate)
    Row("ckpt-generate-truncated", "generate.ckpt", truncated, CKPT_BROKEN),
    Row("ckpt-generate-garbage", "generate.ckpt", garbage, CKPT_BROKEN),
    Row("ckpt-generate-empty", "generate.ckpt", empty, CKPT_BROKEN),
    Row("ckpt-generate-missing-G_A", "generate.ckpt", _ckpt(ckpt_without_generator), r"checkpoint lacks keys \['G_A'\]"),
    Row("ckpt-generate-wrong-shapes", "generate.ckpt", _ckpt(ckpt_wrong_shapes), r"G_A.*(shape|size)"),
    Row("ckpt-generate-pickled-object", "generate.ckpt", _ckpt(ckpt_pickled_object), PICKLED, subprocess=True, payload=True),
    Row("ckpt-generate-plain-pickle", "generate.ckpt", plain_pickle, PICKLED, payload=True),
    Row("ckpt-translate-truncated", "translate.ckpt", truncated, CKPT_BROKEN),
    Row("ckpt-translate-garbage", "translate.ckpt", garbage, CKPT_BROKEN),
    Row("ckpt-translate-pickled-object", "translate.ckpt", _ckpt(ckpt_pickled_object), PICKLED, payload=True),
    Row("ckpt-translate-plain-pickle", "translate.ckpt", plain_pickle, PICKLED, subprocess=True, payload=True),
    # samples npz (embed)
    Row("samples-embed-truncated", "embed.samples", truncated, NPZ_BROKEN),
    Row("samples-embed-garbage", "embed.samples", garbage, NPZ_BROKEN),
    Row("samples-embed-empty", "embed.samples", empty, NPZ_EMPTY),
    Row("samples-embed-missing-fake_A", "embed.samples", drop("fake_A"), r"missing arrays \['fake_A'\]"),
    Row("samples-embed-float-images", "embed.samples", as_float("fake_B"), r"expected uint8 RGB"),
    Row("samples-embed-object-array", "embed.samples", object_array, PICKLED, payload=True),
    # feature arrays npz (metrics)
    Row("features-metrics-truncated", "metrics.features", truncated, NPZ_BROKEN),
    Row("features-metrics-garbage", "metrics.features", garbage, NPZ_BROKEN),
    Row("features-metrics-empty", "metrics.features", empty, NPZ_EMPTY),
    Row("features-metrics-missing-fake_B", "metrics.features", drop("fake_B"), r"no 'fake_B' array"),
    Row("features-metrics-nan", "metrics.features", with_nan("fake_B"), r"'fake_B' \(epoch 1 AtoB\) holds NaN or infinite features"),
    Row("features-metrics-1d", "metrics.features", flat("fake_B"), r"'fake_B' \(epoch 1 AtoB\) must be \(N, D\) numeric features"),
    Row("features-metrics-real-nan", "metrics.real", with_nan("A"), r"'A' \(real, BtoA\) holds NaN or infinite features"),
    Row("features-metrics-plain-pickle", "metrics.features", plain_pickle, PICKLED, payload=True),
    Row("features-metrics-object-array", "metrics.features", object_array, PICKLED, subprocess=True, payload=True),
    # metrics table CSV (figures)
    Row("metrics-figures-truncated", "figures.metrics", truncated_mid_line, r"ends in an incomplete line.*truncated"),
    Row("metrics-figures-garbage", "figures.metrics", garbage, r"not a readable CSV"),
    Row("metrics-figures-empty", "figures.metrics", empty, r"empty file, expected a metrics table"),
    Row("metrics-figures-missing-column", "figures.metrics", csv_without("rf_logloss_mean"), r"lacks columns? \[?'rf_logloss_mean'"),
    Row("metrics-figures-text-in-number", "figures.metrics", csv_text_in("rf_logloss_mean"), r"'rf_logloss_mean' holds non-numeric"),
]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_damaged_input(row: Row, valid, tmp_path):
    stage = STAGES[row.stage]
    bad = tmp_path / "in" / stage.name
    bad.parent.mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "payload-ran"
    row.fault(valid[stage.source], bad, marker, valid)
    assert bad.read_bytes() != valid[stage.source].read_bytes()
    argv = stage.argv(valid, bad, out)
    if row.subprocess:
        proc = deepsnow(*argv)
        rc, err = proc.returncode, proc.stderr
    else:
        rc, err = run_cli(argv)
    assert rc == 2, f"exit code {rc}, expected 2 (DeepsnowError); stderr:\n{err}"
    assert "Traceback" not in err, err
    assert str(bad) in err, f"stderr does not name the damaged file {bad}:\n{err}"
    assert re.search(row.expect, err, re.IGNORECASE | re.DOTALL), f"stderr does not match {row.expect!r}:\n{err}"
    assert files_under(out) == [], f"outputs left behind: {files_under(out)}"
    if row.payload:
        assert not marker.exists(), "the pickle payload ran"


def test_payload_is_live(valid, tmp_path):
    """The payloads used above do run when unpickled without restriction (so 'marker absent' means refused)."""
    import torch

    marker = tmp_path / "m1"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()

    marker = tmp_path / "m2"
    _ckpt(ckpt_pickled_object)(valid["ckpt"], tmp_path / "evil.pt", marker, valid)
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()

    marker = tmp_path / "m3"
    object_array(valid["samples"], tmp_path / "evil.npz", marker, valid)
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as f:
        f["extra"]
    assert marker.exists()
