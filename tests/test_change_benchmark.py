"""The change benchmark as files (change/benchmark/<area>/, its STAC collection) and
``deepsnow change score`` for any score map on it."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from deepsnow.change import detectors as det

IMAGES = ("before", "after_real", "after_synthetic", "after_truth")
DETECTORS = ("rx_difference", "hyperbolic_acd")


def _bench(run: Path) -> Path:
    return run / "results" / "test" / "change" / "benchmark" / "sim02"


def _used(folder: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(folder / "anomalies.tif") as src:
        return src.read(1) != 255, src.profile


def _pixels(folder: Path, name: str, used: np.ndarray) -> np.ndarray:
    with rasterio.open(folder / f"{name}.tif") as src:
        return src.read()[:, used].T


def _score_map(path: Path, scores: np.ndarray, used: np.ndarray, profile: dict, **override) -> Path:
    """``scores`` of the pixels used as a float64 GeoTIFF on the benchmark's grid, NaN elsewhere."""
    data = np.full(used.shape, np.nan)
    data[used] = scores
    prof = {"driver": "GTiff", "height": used.shape[0], "width": used.shape[1], "count": 1, "dtype": "float64",
            "crs": profile["crs"], "transform": profile["transform"]} | override
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.resize(data, (prof["height"], prof["width"])), 1)
    return path


def _run_score(folder: Path, files: dict, capsys, *extra) -> tuple[int, str, str]:
    from deepsnow.cli import main

    args = ["change", "score", "--benchmark", str(folder), *extra]
    for pair, path in files.items():
        args += ["--scores", f"{pair}={path}"]
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_workflow_writes_the_benchmark_cogs_on_one_grid(test_config_run):
    """configs/test.yaml (simulator, band set rgb): five COGs on the before scene's grid, with band
    names, the pixels used as their mask, anomalies 0/1/255 counted as the change record counts."""
    from rio_cogeo.cogeo import cog_validate

    folder = _bench(test_config_run)
    record = json.loads((folder.parent.parent / "sim02.json").read_text())
    with rasterio.open(test_config_run / "results/test/scenes/sim02/snowfree.tif") as ref:
        grid = (ref.crs, ref.transform, ref.shape)
    used, _ = _used(folder)
    for name in (*IMAGES, "anomalies"):
        path = folder / f"{name}.tif"
        valid, errors, warnings = cog_validate(str(path), strict=True)
        assert valid and not errors, (path, errors, warnings)
        with rasterio.open(path) as src:
            assert (src.crs, src.transform, src.shape) == grid, path
            if name == "anomalies":
                assert src.dtypes == ("uint8",) and src.tags()["DEEPSNOW_AREA"] == "sim02"
                labels = src.read(1)
            else:
                assert src.descriptions == ("red", "green", "blue") and src.dtypes == ("uint8",) * 3
            assert np.array_equal(src.dataset_mask() > 0, used), path  # 255 in anomalies.tif: masked
    assert set(np.unique(labels)) == {0, 1, 255}
    assert int(used.sum()) == record["n_pixels"] and int((labels == 1).sum()) == record["n_implanted"]
    # the implants are in every after-image, at the same pixels: swapped there, not in the before image
    before = _pixels(folder, "before", labels == 1)
    assert all(not np.array_equal(_pixels(folder, f, labels == 1), before) for f in IMAGES[1:])
    assert (folder / "anomalies.tif.prov.json").exists()


def test_workflow_writes_a_valid_stac_collection_with_label_items(test_config_run):
    import pystac
    import pystac.validation

    from deepsnow.synthesize.catalog import offline_validator

    folder = _bench(test_config_run)
    pystac.validation.set_validator(offline_validator())
    collection = pystac.Collection.from_file(str(folder.parent / "catalog.json"))
    collection.validate_all()  # offline: the label extension's schema comes with the package
    (item,) = collection.get_items()
    assert item.id == "sim02" and Path(item.get_self_href()) == folder / "sim02.json"
    assert set(item.assets) == {*IMAGES, "anomalies"}
    for key, asset in item.assets.items():
        assert Path(asset.get_absolute_href()) == folder / f"{key}.tif"
    labels = item.assets["anomalies"]
    assert "labels" in labels.roles and labels.extra_fields["raster:bands"][0]["data_type"] == "uint8"
    props = item.properties
    assert "https://stac-extensions.github.io/label/v1.0.1/schema.json" in item.stac_extensions
    assert props["label:type"] == "raster" and props["label:properties"] is None
    assert props["label:classes"] == [{"name": None, "classes": [0, 1]}] and props["label:tasks"] == ["segmentation"]
    assert props["deepsnow:classes"] == {"0": "untouched", "1": "implanted", "255": "not used"}
    change = json.loads((folder.parent.parent / "sim02.json").read_text())
    for key in ("implant_fraction", "blob_px", "seed", "max_pixels", "far"):
        assert props[f"deepsnow:{key}"] == change["params"][key], key
    counts = {c["name"]: c["count"] for c in props["label:overviews"][0]["counts"]}
    assert counts == {"0": change["n_pixels"] - change["n_implanted"], "1": change["n_implanted"]}
    assert props["deepsnow:datetime_source"] == "DEEPSNOW_DATE"  # the before scene's date


def _builtin_maps(folder: Path, name: str, tmp_path: Path) -> dict:
    """A built-in detector's scores of the benchmark's pairs, each written as a score map."""
    used, profile = _used(folder)
    x = _pixels(folder, "before", used)
    fn = det.DETECTORS[name]
    return {pair: _score_map(tmp_path / f"{name}_{pair}.tif", fn(x, _pixels(folder, f"after_{pair}", used)), used,
                             profile) for pair in ("real", "synthetic", "truth")}


@pytest.mark.parametrize("name", DETECTORS)
def test_score_reproduces_the_builtin_rows_of_the_summary(test_config_run, tmp_path, capsys, name):
    """A built-in detector's own scores of the benchmark files, given to 'deepsnow change score',
    give its rows of change/summary.csv exactly, and the AUC gaps of change/summary.json."""
    folder = _bench(test_config_run)
    maps = _builtin_maps(folder, name, tmp_path)
    rc, out, err = _run_score(folder, maps, capsys, "--json", "--detector", name)
    assert rc == 0, err
    got = json.loads(out)
    summary = folder.parent.parent / "summary.csv"
    want = [r for r in csv.DictReader(summary.open()) if r["detector"] == name]
    assert len(got["rows"]) == len(want) == 3
    for row, expected in zip(got["rows"], want):
        assert list(row) == list(expected)  # the columns of change/summary.csv, in order
        for key, value in expected.items():
            assert str(row[key]) == value, (key, row[key], value)
    gaps = json.loads((folder.parent.parent / "summary.json").read_text())["gaps"]["rgb"]["detectors"][name]
    assert got["gaps"]["gap_synthetic_real"] == gaps["gap_synthetic_real"]
    assert got["gaps"]["gap_synthetic_truth"] == gaps["gap_synthetic_truth"]
    assert set(got["pd_at_far"]["real"]) == {"0.001", "0.01", "0.1"}


def test_score_of_one_pair_and_the_table(test_config_run, tmp_path, capsys):
    """--pair synthetic --scores FILE: the AUC as in the summary; the real threshold's rates are NaN
    (they need the real pair's scores); the table names the columns."""
    folder = _bench(test_config_run)
    maps = _builtin_maps(folder, "rx_difference", tmp_path)
    from deepsnow.cli import main

    assert main(["change", "score", "--benchmark", str(folder), "--pair", "synthetic", "--scores",
                 str(maps["synthetic"]), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    want = next(r for r in csv.DictReader((folder.parent.parent / "summary.csv").open())
                if r["detector"] == "rx_difference" and r["pair"] == "synthetic")
    assert str(row["auc"]) == want["auc"] and row["far_at_real_threshold"] is None and row["detector"] == "scores"
    assert main(["change", "score", "--benchmark", str(folder), "--pair", "synthetic", "--scores",
                 str(maps["synthetic"])]) == 0
    table = capsys.readouterr().out
    assert "auc" in table and "far_at_real_threshold" in table and "--scores real=FILE" in table


def _bad(case: str, folder: Path, tmp_path: Path) -> tuple[dict, str, str]:
    """(scores given, expected message, the file it must name) of one bad input."""
    from affine import Affine

    used, profile = _used(folder)
    good = np.random.default_rng(0).uniform(size=int(used.sum()))
    path = tmp_path / f"{case}.tif"
    if case == "shifted":
        _score_map(path, good, used, profile, transform=profile["transform"] @ Affine.translation(2, 0))
        return {"real": path}, "is not on the benchmark's grid", path.name
    if case == "crs":
        _score_map(path, good, used, profile, crs="EPSG:4326")
        return {"real": path}, "CRS", path.name
    if case == "size":
        _score_map(path, good, used, profile, width=used.shape[1] - 5)
        return {"real": path}, "shape", path.name
    if case == "all_nan":
        _score_map(path, np.full(good.size, np.nan), used, profile)
        return {"real": path}, "no pixel the benchmark uses has a score", path.name
    if case == "constant":
        _score_map(path, np.full(good.size, 3.0), used, profile)
        return {"real": path}, "constant scores", path.name
    if case == "infinite":
        _score_map(path, np.where(np.arange(good.size) == 0, np.inf, good), used, profile)
        return {"real": path}, "1 infinite scores", path.name
    if case == "bands":
        _score_map(path, good, used, profile, count=2)
        return {"real": path}, "2 bands", path.name
    missing = {"no_truth_file": ("truth", "after_truth.tif"), "no_anomalies": ("real", "anomalies.tif")}
    pair, name = missing[case]
    return {pair: _score_map(path, good, used, profile)}, "benchmark file not found", name


@pytest.mark.parametrize("case", ["shifted", "crs", "size", "all_nan", "constant", "infinite", "bands",
                                  "no_truth_file", "no_anomalies"])
def test_score_bad_input(test_config_run, tmp_path, capsys, case):
    """Wrong grid (transform, CRS), wrong size, all NaN, constant or infinite scores, several bands, a
    missing benchmark file: exit 2 and a message naming the file."""
    import shutil

    folder = _bench(test_config_run)
    given, expect, name = _bad(case, folder, tmp_path)
    if case.startswith("no_"):  # a copy of the benchmark without the file
        shutil.copytree(folder, tmp_path / "bench", ignore=shutil.ignore_patterns(name + "*"))
        folder = tmp_path / "bench"
    rc, out, err = _run_score(folder, given, capsys)
    assert rc == 2 and expect in err and name in err, err
    assert out == ""


def test_score_needs_a_pair_for_a_bare_file(tmp_path, capsys):
    from deepsnow.cli import main

    assert main(["change", "score", "--benchmark", str(tmp_path), "--scores", "a.tif"]) == 2
    assert "--pair" in capsys.readouterr().err
    assert main(["change", "score", "--benchmark", str(tmp_path), "--scores", "snowy=a.tif"]) == 2
    assert "unknown pair 'snowy'" in capsys.readouterr().err


def test_a_failing_area_leaves_no_benchmark_file(test_config_run, tmp_path, capsys):
    """The reflectance band set fails (a constant band) after the rgb band set's benchmark is written:
    exit 2 and every benchmark file written so far is gone."""
    from deepsnow.cli import main
    from deepsnow.synthesize.products import write_cog

    res = test_config_run / "results" / "test"
    with rasterio.open(res / "synthetic/sim02/snow.tif") as src:
        flat = np.full((3, src.height, src.width), 500, np.uint16)
        write_cog(tmp_path / "refl.tif", flat, src.crs, src.transform, src.read_masks(1) > 0,
                  ("B04", "B03", "B02"), {}, scale=1e-4)
    bench = tmp_path / "benchmark" / "sim02"
    args = _area_args(res, tmp_path) + ["--synthetic-reflectance", str(tmp_path / "refl.tif"), "--benchmark", str(bench)]
    assert main(args) == 2
    assert "constant" in capsys.readouterr().err
    assert not [p for p in bench.rglob("*") if p.is_file()] and not (tmp_path / "sim02.json").exists()


def test_the_reflectance_band_set_has_its_own_folder(test_config_run, tmp_path):
    """With the synthetic reflectance product: reflectance/ beside the rgb files, float32 B04, B03, B02,
    the same anomalies; the collection's item has both band sets' assets."""
    from deepsnow.cli import main
    from deepsnow.synthesize.products import reflectance_from_rgb, write_cog

    res = test_config_run / "results" / "test"
    with rasterio.open(res / "synthetic/sim02/snow.tif") as src:
        refl = reflectance_from_rgb(np.moveaxis(src.read(), 0, -1), 1.0, 2.2)
        write_cog(tmp_path / "refl.tif", refl, src.crs, src.transform, src.read_masks(1) > 0,
                  ("B04", "B03", "B02"), {}, scale=1e-4)
    bench = tmp_path / "benchmark" / "sim02"
    assert main(_area_args(res, tmp_path) + ["--synthetic-reflectance", str(tmp_path / "refl.tif"),
                                             "--benchmark", str(bench)]) == 0
    with rasterio.open(bench / "anomalies.tif") as src:
        untouched = src.read(1) == 0
    with rasterio.open(bench / "reflectance" / "after_synthetic.tif") as src:
        assert src.dtypes == ("float32",) * 3 and src.descriptions == ("B04", "B03", "B02")
        # the values the detectors get: the product's digital numbers / 10000 as float32
        assert np.array_equal(src.read()[:, untouched], (refl.astype(np.float32) / 10000.0)[:, untouched])
    for name in ("before", "anomalies"):
        with rasterio.open(bench / "reflectance" / f"{name}.tif") as a, rasterio.open(bench / f"{name}.tif") as b:
            assert np.array_equal(a.dataset_mask(), b.dataset_mask())
    assert main(["change", "catalog", "--benchmarks", str(bench), "--output", str(bench.parent / "catalog.json")]) == 0
    item = json.loads((bench / "sim02.json").read_text())
    assert {"reflectance_before", "reflectance_after_synthetic", "reflectance_anomalies"} <= set(item["assets"])


def _area_args(res: Path, tmp_path: Path) -> list[str]:
    files = {"--before": "scenes/sim02/snowfree.tif", "--before-mask": "masks/sim02/snowfree.tif",
             "--real": "scenes/sim02/snow.tif", "--real-mask": "masks/sim02/snow.tif",
             "--synthetic": "synthetic/sim02/snow.tif", "--truth": "truth/sim02/snow.tif"}
    return (["change", "area", "--area", "sim02", "--output", str(tmp_path / "sim02.json")]
            + [str(v) for k, f in files.items() for v in (k, res / f)])
