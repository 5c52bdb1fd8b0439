"""Synthetic products of reflectance runs (issue #28 item 5): ``snow_reflectance.tif`` is the generator's
own output in the checkpoint's bands (the path ``deepsnow translate`` takes), ``snow.tif`` its RGB composite
(``render_composite``), the STAC items carry eo:bands with common names and centre wavelengths; bad
inputs are refused naming what is wrong, nothing written; the workflow builds them for reflectance runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
import torch

from deepsnow import torchfile
from deepsnow.cli import main
from deepsnow.data.scene import REFLECTANCE_BANDS, write_scene
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks
from deepsnow.gan.data import BandSet
from test_gan_translate import CRS, TRANSFORM, make_checkpoint

TEN = list(REFLECTANCE_BANDS)
SYNTH = {"device": "cpu", "tile": 64, "overlap": 16}
CENTRES_UM = [0.49, 0.56, 0.665, 0.705, 0.74, 0.783, 0.842, 0.865, 1.61, 2.19]
COMMON = ["blue", "green", "red", "rededge", "rededge", "rededge", "nir", "nir08", "swir16", "swir22"]


def reflectance_checkpoint(path, bands=TEN, seed=0):
    """A tiny (ngf 4, one block) cycleGAN checkpoint on reflectance ``bands``, as training writes one."""
    torch.manual_seed(seed)
    arch = networks.Architecture(ngf=4, ndf=4, n_blocks=1, input_nc=len(bands), output_nc=len(bands))
    payload = {
        "format": ckpt.FORMAT, "version": ckpt.VERSION, "epoch": 2, "iteration": 20, "arch": arch.as_dict(),
        "config": {"ngf": 4}, "G_A": networks.build_generator(arch).state_dict(),
        "G_B": networks.build_generator(arch).state_dict(), "D_A": networks.build_discriminator(arch).state_dict(),
        "D_B": networks.build_discriminator(arch).state_dict(), "bands": BandSet.of(bands, "reflectance").as_dict(),
    }
    torchfile.save(payload, path)
    return path


def ten_band_scene(path, h=90, w=110, invalid_rows=5, seed=1, bands=TEN, tags=None):
    """A scene holding ``bands`` (smooth random reflectance up to ~0.9, SWIR darker), ``invalid_rows`` of no data."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    refl = {}
    for b in bands:
        field = gaussian_filter(rng.normal(size=(h, w)), 4)
        top = 0.4 if b in ("B11", "B12") else 0.9
        refl[b] = np.clip(top * (0.5 + 0.5 * field / field.std() / 3), 0.01, top).astype(np.float32)
    mask = np.ones((h, w), np.uint8)
    mask[:invalid_rows] = 0
    write_scene(path, refl, np.full((h, w), 4, np.uint8), mask, CRS, TRANSFORM,
                tags={"DEEPSNOW_SOURCE": "simulator", **(tags or {})})
    return path


def synthesize(tmp_path, scene, checkpoint, reflectance=True, params=None, extra=()):
    out = tmp_path / "synthetic" / "area"
    argv = ["synthesize", "scene", "--params", json.dumps({**SYNTH, **(params or {})}), "--name", "area",
            "--input", str(scene), "--output", str(out / "snow.tif"), "--summary", str(out / "snow.summary.json"),
            "--checkpoints", str(checkpoint), "--rgb-max", "0.8", "--rgb-gamma", "2.0", *extra]
    if reflectance:
        argv += ["--reflectance-output", str(out / "snow_reflectance.tif")]
    return main(argv), out


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """One reflectance run's product of a 10-band scene, and its catalog."""
    tmp = tmp_path_factory.mktemp("refl-product")
    scene = ten_band_scene(tmp / "snowfree.tif", tags={"DEEPSNOW_DATE": "2021-07-04"})
    after = ten_band_scene(tmp / "snow.tif", seed=2, invalid_rows=0)
    ck = reflectance_checkpoint(tmp / "epoch_002.pt")
    rc, out = synthesize(tmp, scene, ck, extra=["--after-real", str(after), "--truth", str(after)])
    assert rc == 0
    cat = tmp / "synthetic" / "catalog.json"
    assert main(["synthesize", "catalog", "--products", str(out / "snow.summary.json"), "--output", str(cat)]) == 0
    return tmp, scene, ck, out, cat


def test_the_reflectance_product_is_the_generators_output_as_translate_gives_it(product):
    """snow_reflectance.tif: a valid COG, uint16, scale 1e-4, one band per checkpoint band named by it, the
    internal mask of the scene's dataMask, pixels those of 'deepsnow translate' with the same checkpoint."""
    from rio_cogeo.cogeo import cog_validate

    tmp, scene, ck, out, _ = product
    refl_path = out / "snow_reflectance.tif"
    for path in (refl_path, out / "snow.tif"):
        valid, errors, warnings = cog_validate(str(path))
        assert valid and not errors, (path, errors, warnings)
    with rasterio.open(refl_path) as src, rasterio.open(scene) as ref:
        assert (src.crs, src.transform, src.shape) == (ref.crs, ref.transform, ref.shape)
        assert src.count == 10 and src.dtypes == ("uint16",) * 10 and list(src.descriptions) == TEN
        assert src.scales == (1e-4,) * 10 and src.tags()["DEEPSNOW_SCALE"] == "0.0001"
        assert src.block_shapes[0] == (512, 512) and src.overviews(1)
        mask = src.dataset_mask()
        assert (mask[:5] == 0).all() and (mask[5:] == 255).all()
        refl = src.read()
    assert (refl[:, :5] == 0).all() and len({int(b[5:].mean()) for b in refl}) > 1
    translated = tmp / "translated.tif"
    assert main(["translate", "--checkpoint", str(ck), "--input", str(scene), "--output", str(translated),
                 "--tile", "64", "--overlap", "16", "--norm", "scene", "--device", "cpu"]) == 0
    with rasterio.open(translated) as src:
        assert list(src.descriptions) == TEN
        np.testing.assert_array_equal(src.read()[:, 5:], refl[:, 5:])
    summary = json.loads((out / "snow.summary.json").read_text())
    assert summary["encoding"] == "reflectance" and summary["bands"] == TEN and summary["epoch"] == 2


def test_snow_tif_is_the_rgb_composite_of_the_reflectance_product(product):
    """snow.tif: 3-band uint8 red, green, blue, render_composite of the product's B04 B03 B02 with the
    run's rgb_max / rgb_gamma (here 0.8 and 2.0), 0 and masked outside the valid data."""
    from deepsnow.data.render import render_composite

    _, _, _, out, _ = product
    with rasterio.open(out / "snow_reflectance.tif") as src:
        refl = np.moveaxis(src.read(), 0, -1)
    with rasterio.open(out / "snow.tif") as src:
        assert src.count == 3 and src.dtypes == ("uint8",) * 3 and src.descriptions == ("red", "green", "blue")
        rgb = np.moveaxis(src.read(), 0, -1)
        assert (src.dataset_mask()[:5] == 0).all()
    expected = render_composite(refl, TEN, 0.8, 2.0)
    np.testing.assert_array_equal(rgb[5:], expected[5:])
    assert (rgb[:5] == 0).all() and rgb[5:].std() > 0


def test_the_catalog_describes_the_bands_with_the_eo_extension(product):
    """The item validates (offline, eo v1.1.0 among the schemas); the reflectance asset's eo:bands are the
    checkpoint's bands with common names and centre wavelengths (micrometres), raster:bands scale 1e-4;
    the RGB asset's three are red, green, blue at B04, B03, B02's wavelengths."""
    import pystac

    from deepsnow.synthesize.catalog import offline_validator

    _, _, _, out, cat = product
    pystac.validation.set_validator(offline_validator())
    (item,) = pystac.Catalog.from_file(str(cat)).get_items()
    item.validate()
    assert any("eo/v1.1.0" in e for e in item.stac_extensions)
    refl = item.assets["after_synthetic_reflectance"]
    eo = refl.extra_fields["eo:bands"]
    assert [b["name"] for b in eo] == TEN and [b["common_name"] for b in eo] == COMMON
    assert [b["center_wavelength"] for b in eo] == pytest.approx(CENTRES_UM)
    assert [(b["data_type"], b["scale"]) for b in refl.extra_fields["raster:bands"]] == [("uint16", 1e-4)] * 10
    assert "generator's output" in refl.title
    rgb = item.assets["after_synthetic"].extra_fields["eo:bands"]
    assert [(b["name"], b["common_name"]) for b in rgb] == [("red", "red"), ("green", "green"), ("blue", "blue")]
    assert [b["center_wavelength"] for b in rgb] == pytest.approx([0.665, 0.56, 0.49])
    before = item.assets["before"].extra_fields["eo:bands"]
    assert {b["name"]: b.get("center_wavelength") for b in before}["B11"] == pytest.approx(1.61)


def _lacking_band(tmp_path):
    scene = ten_band_scene(tmp_path / "five.tif", bands=["B02", "B03", "B04", "B08", "B11"])
    return scene, reflectance_checkpoint(tmp_path / "epoch_002.pt"), True, \
        r"five\.tif: scene has no band B05, B06, B07, B8A, B12"


def _rgb_input(tmp_path):
    path = tmp_path / "rgb.tif"
    with rasterio.open(path, "w", driver="GTiff", height=40, width=40, count=3, dtype="uint8", crs=CRS,
                       transform=TRANSFORM) as dst:
        dst.write(np.full((3, 40, 40), 90, np.uint8))
    return path, reflectance_checkpoint(tmp_path / "epoch_002.pt"), True, r"the checkpoint takes reflectance B02"


def _no_rgb_bands(tmp_path):
    ck = reflectance_checkpoint(tmp_path / "epoch_002.pt", ["B03", "B08", "B11"])
    return ten_band_scene(tmp_path / "s.tif"), ck, True, (
        r"epoch_002\.pt: a checkpoint of reflectance B03 B08 B11: snow\.tif is its RGB composite, which needs "
        r"B04 B03 B02")


def _no_output(tmp_path):
    return ten_band_scene(tmp_path / "s.tif"), reflectance_checkpoint(tmp_path / "epoch_002.pt"), False, \
        r"--reflectance-output is needed exactly when .* the checkpoint is of reflectance \(.*epoch_002\.pt"


def _rgb_checkpoint_unasked(tmp_path):
    return ten_band_scene(tmp_path / "s.tif"), make_checkpoint(tmp_path / "epoch_002.pt", ngf=4), True, \
        r"--reflectance-output is needed exactly when synthesize.reflectance is true"


BAD = {"scene lacking a band": _lacking_band, "RGB GeoTIFF": _rgb_input, "no B04 B03 B02": _no_rgb_bands,
       "no --reflectance-output": _no_output, "RGB checkpoint, no synthesize.reflectance": _rgb_checkpoint_unasked}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exit_2_nothing_written(tmp_path, capsys, case):
    scene, ck, reflectance, message = BAD[case](tmp_path)
    rc, out = synthesize(tmp_path, scene, ck, reflectance=reflectance)
    assert rc == 2
    assert re.search(message, capsys.readouterr().err), case
    assert not out.exists() or not any(out.iterdir())  # no product, no temporary left behind


def test_the_workflow_builds_products_and_change_testbed_of_a_reflectance_run(tmp_path):
    """configs/test_reflectance.yaml: the synthesize job writes snow_reflectance.tif, the change job reads it
    (its reflectance band set in change/benchmark/<area>/reflectance/); validity is planned with the run's
    snow rule and composite rendering; a
    reflectance run without B04 B03 B02 is refused naming patches.bands."""
    import yaml

    from helpers import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    targets = ["results/test_reflectance/synthetic/catalog.json", "results/test_reflectance/change/summary.csv",
               "results/test_reflectance/change/benchmark/sim02/reflectance/anomalies.tif"]  # a rule makes it
    configs = ("--configfile", "configs/test.yaml", "configs/test_reflectance.yaml")
    proc = snakemake(work, "-n", "-p", *configs, "--", *targets)
    out = proc.stdout + proc.stderr
    assert "--reflectance-output results/test_reflectance/synthetic/sim02/snow_reflectance.tif" in out
    assert "--synthetic-reflectance results/test_reflectance/synthetic/sim02/snow_reflectance.tif" in out
    proc = snakemake(work, "-n", "-p", *configs, "--", "results/test_reflectance/metrics/validity.csv")
    out = proc.stdout + proc.stderr  # the ladders take reflectance runs: degraded in reflectance, seen as embed saw them
    assert "deepsnow metrics validity" in out and "--mask-params" in out and "--rgb-max" in out
    cfg = {"patches": {"encoding": "reflectance", "bands": ["B03", "B08", "B11"]}}
    (work / "three.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", "--configfile", "configs/test.yaml", "three.yaml", "--",
                     "results/test/synthetic/catalog.json", check=False)
    assert proc.returncode != 0 and "key 'patches.bands'" in proc.stdout + proc.stderr
    assert "include the RGB composite B04 B03 B02" in proc.stdout + proc.stderr
    assert not (work / "results").exists()  # dry runs: nothing written
