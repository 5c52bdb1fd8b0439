"""The change testbed of reflectance runs (issue #28 item 6): the reflectance band set takes the bands of the
synthetic reflectance product (a reflectance run's checkpoint bands: all ten here), read by name from every
image; the benchmark, the summary (its band_names column, for RGB runs too), the STAC collection and
'change score' say which bands; bad inputs exit 2 naming the file, nothing written."""

from __future__ import annotations

import contextlib
import csv
import json
import re

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from deepsnow.cli import main
from deepsnow.data.scene import REFLECTANCE_BANDS, write_scene

TEN = list(REFLECTANCE_BANDS)
CRS, TRANSFORM = "EPSG:32632", Affine(10, 0, 600000, 0, -10, 5150000)
H, W = 50, 60


def _scenes(d, bands=TEN):
    """Before, real and true after scenes (after ~ a gain of before, per band) holding ``bands``, masks all clear."""
    rng = np.random.default_rng(5)
    base = {b: rng.uniform(0.05, 0.45, (H, W)) for b in bands}
    for name, gain in (("snowfree", 1.0), ("snow", 1.6), ("truth", 1.5)):
        refl = {b: np.clip(gain * v + 0.02 * rng.standard_normal((H, W)), 0, 1).astype(np.float32)
                for b, v in base.items()}
        write_scene(d / f"{name}.tif", refl, np.full((H, W), 4, np.uint8), np.ones((H, W), np.uint8), CRS, TRANSFORM)
    for name in ("snowfree", "snow"):
        with rasterio.open(d / f"mask_{name}.tif", "w", driver="GTiff", height=H, width=W, count=1, dtype="uint8",
                           crs=CRS, transform=TRANSFORM) as dst:
            dst.write(np.ones((1, H, W), np.uint8))
    return base


def _products(d, base, order):
    """The synthetic products: the RGB COG and a reflectance COG in the band ``order`` (written as synthesize
    writes them)."""
    from deepsnow.synthesize.products import write_cog

    rng = np.random.default_rng(6)
    valid = np.ones((H, W), bool)
    refl = np.stack([np.clip(1.4 * base[b] + 0.03 * rng.standard_normal((H, W)), 0, 1) * 10000 for b in order])
    write_cog(d / "snow_reflectance.tif", refl.astype(np.uint16), CRS, TRANSFORM, valid, order, {}, scale=1e-4)
    rgb = np.stack([np.clip(400 * base[b] + 8 * rng.standard_normal((H, W)), 0, 255) for b in ("B04", "B03", "B02")])
    write_cog(d / "synthetic.tif", rgb.astype(np.uint8), CRS, TRANSFORM, valid, ("red", "green", "blue"), {})


def _area_args(d, out, product="snow_reflectance.tif"):
    files = {"--before": "snowfree.tif", "--before-mask": "mask_snowfree.tif", "--real": "snow.tif",
             "--real-mask": "mask_snow.tif", "--synthetic": "synthetic.tif", "--truth": "truth.tif"}
    args = ["change", "area", "--area", "a", "--output", str(out / "a.json"), "--benchmark", str(out / "bench")]
    args += [str(v) for k, f in files.items() for v in (k, d / f)]
    return args + (["--synthetic-reflectance", str(d / product)] if product else [])


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """One area of ten-band scenes, its products (reflectance bands stored in reverse order), its record,
    benchmark and summary."""
    d = tmp_path_factory.mktemp("change-bands")
    base = _scenes(d)
    _products(d, base, TEN[::-1])
    out = d / "out"
    assert main(_area_args(d, out)) == 0
    assert main(["change", "summary", "--areas", str(out / "a.json"), "--output", str(out / "summary.csv"),
                 "--output-json", str(out / "summary.json"), "--output-html", str(out / "summary.html")]) == 0
    return d, out


def test_the_reflectance_band_set_is_the_products_bands_read_by_name(area):
    """Ten bands in the product's order (reversed here): the benchmark's reflectance images hold them, named,
    the before image the scene's reflectance of those bands at the pixels used."""
    d, out = area
    record = json.loads((out / "a.json").read_text())
    assert set(record["band_sets"]) == {"rgb", "reflectance"}
    assert record["band_names"] == {"rgb": "B04 B03 B02", "reflectance": " ".join(TEN[::-1])}
    for res in record["band_sets"]["reflectance"].values():
        assert set(res["pairs"]) == {"real", "synthetic", "truth"}
        assert all(0 <= p["auc"] <= 1 for p in res["pairs"].values())
    folder = out / "bench" / "reflectance"
    with rasterio.open(folder / "before.tif") as src, rasterio.open(d / "snowfree.tif") as scene:
        assert src.count == 10 and list(src.descriptions) == TEN[::-1] and src.dtypes == ("float32",) * 10
        used = src.dataset_mask() > 0
        index = {b: i for i, b in enumerate(scene.descriptions, start=1)}
        expected = np.stack([scene.read(index[b]) / 10000.0 for b in TEN[::-1]]).astype(np.float32)
        np.testing.assert_allclose(src.read()[:, used], expected[:, used], rtol=1e-6)
    with rasterio.open(folder / "after_synthetic.tif") as src:
        assert list(src.descriptions) == TEN[::-1]
    with rasterio.open(folder / "anomalies.tif") as src:
        tags = src.tags()
        assert tags["DEEPSNOW_BANDS"] == "reflectance" and tags["DEEPSNOW_BAND_NAMES"] == " ".join(TEN[::-1])
    with rasterio.open(out / "bench" / "anomalies.tif") as src:
        assert src.tags()["DEEPSNOW_BAND_NAMES"] == "B04 B03 B02"


def test_ten_band_windows_have_proportionally_fewer_rows_and_the_same_values(area, monkeypatch):
    """The gather pass reads a ten-band set in windows of 3/10 the rows (a ten-band window holds what an RGB one
    does: a full tile stays within 2 GB) and takes the scenes' and the product's decoded reflectance exactly:
    the values at every pixel equal SceneFile.read_bands' (scenes) and the product's uint16 / 10000."""
    from deepsnow.change import pixels
    from deepsnow.data.scene import SceneFile

    d, _ = area
    heights = []
    bands = pixels.Opened.bands
    monkeypatch.setattr(pixels.Opened, "bands", lambda o, r0, r1, which: heights.append((which, r1 - r0))
                        or bands(o, r0, r1, which))
    images = [pixels.Image("before", d / "snowfree.tif", "scene"),
              pixels.Image("synthetic", d / "synthetic.tif", "product", reflectance=d / "snow_reflectance.tif")]
    flat = np.random.default_rng(0).permutation(H * W)[:500]
    with contextlib.ExitStack() as stack:
        opened = pixels.open_images(stack, images, (0.3, 1.0), TEN[::-1])
        got = {role: pixels.gather(o, "reflectance", flat, (H, W), 20) for role, o in opened.items()}
        rgb = pixels.gather(opened["before"], "rgb", flat, (H, W), 20)
    assert pixels.band_rows(20, 3) == 20 and pixels.band_rows(20, 10) == 6 and pixels.band_rows(2, 10) == 1
    assert {h for w, h in heights if w == "reflectance"} == {6, H % 6} and max(h for w, h in heights if w == "rgb") == 20
    assert rgb.dtype == np.uint8 and rgb.shape == (500, 3)
    with SceneFile(d / "snowfree.tif") as sc:
        refl = sc.read_bands(names=TEN[::-1])
    expected = np.stack([refl[b].ravel()[flat] for b in TEN[::-1]], axis=1)
    assert got["before"].dtype == np.float32 and np.array_equal(got["before"], expected)
    with rasterio.open(d / "snow_reflectance.tif") as src:
        dn = src.read().reshape(10, -1)[:, flat].T
    assert got["synthetic"].dtype == np.float32 and np.array_equal(got["synthetic"], dn.astype(np.float32) / 10000.0)


def test_the_summary_names_the_bands_of_each_band_set(area):
    """change/summary.csv's band_names column: B04 B03 B02 for the rgb band set, the product's bands for the
    reflectance one; summary.json's gaps say the same per band set."""
    _, out = area
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert list(rows[0])[:5] == ["area", "bands", "band_names", "detector", "pair"]
    expected = {("rgb", "B04 B03 B02"), ("reflectance", " ".join(TEN[::-1]))}
    assert {(r["bands"], r["band_names"]) for r in rows} == expected
    assert len(rows) == 2 * 4 * 3  # band sets x detectors x pairs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gaps"]["reflectance"]["band_names"] == " ".join(TEN[::-1])
    assert summary["gaps"]["rgb"]["band_names"] == "B04 B03 B02"
    assert all("band_names" in r for r in summary["rows"])


def test_figure10_panels_name_the_band_count(area):
    """Figure 10's panels: 'rx_difference (rgb)' and 'rx_difference (reflectance: 10 bands)', the count from the summary's band names."""
    from deepsnow.figures.change import build_figure10

    _, out = area
    titles = [ax.get_title() for ax in build_figure10({}, out / "summary.json").figure.axes]
    assert "rx_difference (rgb)" in titles and "rx_difference (reflectance: 10 bands)" in titles, titles


def test_the_collection_and_score_name_the_bands(area, tmp_path, capsys):
    """The benchmark's STAC collection validates; the reflectance assets' eo:bands carry common names and
    centre wavelengths; 'change score' on the reflectance folder reports its bands as the summary does."""
    import pystac

    from deepsnow.synthesize.catalog import offline_validator

    _, out = area
    cat = out / "bench" / "catalog.json"
    assert main(["change", "catalog", "--benchmarks", str(out / "bench"), "--output", str(cat)]) == 0
    pystac.validation.set_validator(offline_validator())
    (item,) = pystac.read_file(str(cat)).get_items()
    item.validate()
    eo = item.assets["reflectance_after_synthetic"].extra_fields["eo:bands"]
    assert [b["name"] for b in eo] == TEN[::-1] and eo[0]["common_name"] == "swir22"
    assert eo[0]["center_wavelength"] == pytest.approx(2.19)
    assert [b["common_name"] for b in item.assets["before"].extra_fields["eo:bands"]] == ["red", "green", "blue"]
    folder = out / "bench" / "reflectance"
    with rasterio.open(folder / "anomalies.tif") as src:
        profile, used = src.profile | {"count": 1, "dtype": "float32", "nodata": None}, src.read(1) != 255
        labels = src.read(1)
    scores = np.where(used, labels + np.random.default_rng(0).normal(0, 0.5, labels.shape), np.nan).astype(np.float32)
    with rasterio.open(tmp_path / "s.tif", "w", **profile) as dst:
        dst.write(scores, 1)
    capsys.readouterr()
    scores_arg = f"real={tmp_path / 's.tif'}"
    assert main(["change", "score", "--benchmark", str(folder), "--scores", scores_arg, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["bands"] == "reflectance" and row["band_names"] == " ".join(TEN[::-1])


def test_an_rgb_runs_rows_name_b04_b03_b02(area, tmp_path):
    """Without a reflectance product (an RGB run): the rgb band set only, its rows naming B04 B03 B02."""
    d, _ = area
    assert main(_area_args(d, tmp_path, product=None)) == 0
    assert main(["change", "summary", "--areas", str(tmp_path / "a.json"), "--output", str(tmp_path / "s.csv"),
                 "--output-json", str(tmp_path / "s.json"), "--output-html", str(tmp_path / "s.html")]) == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert {(r["bands"], r["band_names"]) for r in rows} == {("rgb", "B04 B03 B02")}
    assert not (tmp_path / "bench" / "reflectance").exists()


def _unnamed_product(d, tmp):
    from deepsnow.synthesize.products import write_cog

    write_cog(tmp / "unnamed.tif", np.full((3, H, W), 900, np.uint16), CRS, TRANSFORM, np.ones((H, W), bool),
              ("red", "green", "blue"), {}, scale=1e-4)
    return tmp / "unnamed.tif", (r"unnamed\.tif: expected a synthetic reflectance product: uint16 .* "
                                 r"found uint16 bands \['red'")


def _scene_lacking_a_band(d, tmp):
    """A ten-band product against scenes of five bands: the scene is named with the bands it lacks."""
    five = tmp / "five"
    five.mkdir()
    base = _scenes(five, bands=["B02", "B03", "B04", "B08", "B11"])
    _products(five, {**base, **{b: base["B03"] for b in TEN if b not in base}}, TEN)
    return five / "snow_reflectance.tif", r"snowfree\.tif: scene has no band B05, B06, B07, B8A, B12"


@pytest.mark.parametrize("case", ["unnamed product", "scene lacking a band"])
def test_bad_reflectance_input_exit_2_nothing_written(area, tmp_path, capsys, case):
    d, _ = area
    product, message = (_unnamed_product if case == "unnamed product" else _scene_lacking_a_band)(d, tmp_path)
    args = _area_args(d, tmp_path / "out")
    args[args.index("--synthetic-reflectance") + 1] = str(product)
    if case == "scene lacking a band":  # the five-band area's scenes, the ten-band product
        for flag, name in (("--before", "snowfree.tif"), ("--real", "snow.tif"), ("--truth", "truth.tif")):
            args[args.index(flag) + 1] = str(product.parent / name)
    assert main(args) == 2
    assert re.search(message, capsys.readouterr().err), case
    assert not (tmp_path / "out" / "a.json").exists()
    assert not (tmp_path / "out" / "bench").exists() or not any((tmp_path / "out" / "bench").rglob("*.tif"))
