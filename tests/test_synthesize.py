"""Synthetic change products: seam-free scene translation (whole-scene instance norm), the
synthesize stage (COG on the input's grid, STAC catalog), its bad inputs, and Figure 9."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from deepsnow.gan import networks
from deepsnow.gan.scene_norm import scene_statistics, stats_cores
from deepsnow.gan.translate import seam_score, translate_array


def smooth_rgb(h, w, seed=0):
    """A scene-like image: smooth fields (lakes, fields, slopes) with a little pixel texture."""
    rng = np.random.default_rng(seed)
    img = np.stack([gaussian_filter(rng.normal(size=(h, w)), 6) for _ in range(3)], -1)
    img = img / img.std() + 0.15 * rng.normal(size=(h, w, 3))
    return np.clip(128 + 40 * img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def small_generator():
    torch.manual_seed(0)
    return networks.build_generator(networks.Architecture(ngf=8, n_blocks=1)).eval()


def test_scene_norm_tiles_agree_with_one_whole_scene_pass(small_generator):
    """A 512^2 scene in 128 px tiles with --norm scene agrees with one pass over the whole
    scene to mean |diff| <= 2 DN, and its tile borders are invisible (seam score <= 1.05); per-tile norm
    does not, and the seam score sees a hard cut (the measures are sensitive)."""
    rgb = smooth_rgb(512, 512)
    whole, n1 = translate_array(small_generator, rgb, tile=512, overlap=0, norm="tile")
    scene, n = translate_array(small_generator, rgb, tile=128, overlap=64, norm="scene")
    per_tile, _ = translate_array(small_generator, rgb, tile=128, overlap=64, norm="tile")
    hard, _ = translate_array(small_generator, rgb, tile=128, overlap=0, norm="tile")
    assert (n1, n) == (1, 49)
    diff = np.abs(scene.astype(float) - whole)
    assert diff.mean() <= 2.0 and diff.max() <= 16, (diff.mean(), diff.max())
    assert np.abs(per_tile.astype(float) - whole).mean() > 3 * diff.mean() + 2.0
    assert seam_score(scene, 128, 64) <= 1.05
    assert seam_score(hard, 128, 0) > 1.15
    # statistics from a sample of the scene (over the pixel budget): still one normalisation for every
    # tile, so still seam-free, and closer to the whole-scene pass than per-tile statistics
    sampled, _ = translate_array(small_generator, rgb, tile=128, overlap=64, norm="scene", stats_px=2**16)
    assert seam_score(sampled, 128, 64) <= 1.05
    assert np.abs(sampled.astype(float) - whole).mean() < np.abs(per_tile.astype(float) - whole).mean()
    # a whole-scene pass through the scene-norm path is the plain pass (exact statistics)
    one, _ = translate_array(small_generator, rgb, tile=512, overlap=0, norm="scene")
    assert np.abs(one.astype(int) - whole).max() <= 1


def test_scene_statistics_are_exact_or_a_bounded_sample(small_generator):
    """The pooled moments equal the instance-norm statistics of one whole-scene pass (first layer:
    exactly); above the pixel budget an evenly spread grid of cores is measured instead."""
    rgb = smooth_rgb(96, 160, seed=2)
    stats, measured = scene_statistics(small_generator, rgb, core=32, halo=16)
    assert measured == 1.0 and len(stats) == 1 + 2 + 2 + 2  # stem, downs, one block, ups
    x = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float().div(127.5).sub(1)[None]
    first = small_generator.model[1](small_generator.model[0](x))
    torch.testing.assert_close(stats[0][0].float(), first.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats[0][1].float(), first.var(dim=(0, 2, 3), unbiased=False), rtol=1e-4, atol=1e-6)
    cores = stats_cores(10980, 10980, 512, 32, 2**21)
    assert 4 <= len(cores) <= 2**21 // (576 * 576)
    assert {y for y, *_ in cores} >= {0, 10752} and {x for _, x, *_ in cores} >= {0, 10752}  # spread to the edges
    assert len(stats_cores(512, 512, 128, 32, 2**21)) == 16  # small scenes: every core, exact


def test_scene_norm_leaves_the_generator_untouched(small_generator):
    """--norm scene is an inference-time mechanism: the generator itself (training) is not changed."""
    before = {k: v.clone() for k, v in small_generator.state_dict().items()}
    translate_array(small_generator, smooth_rgb(64, 64), tile=32, overlap=8, norm="scene")
    assert all(isinstance(m, torch.nn.InstanceNorm2d) for m in small_generator.modules() if "Norm" in type(m).__name__)
    for k, v in small_generator.state_dict().items():
        assert torch.equal(v, before[k])


# -- the synthesize stage: products, catalog, bad inputs --------------------------------------------
import json  # noqa: E402

import rasterio  # noqa: E402
from rasterio.transform import Affine  # noqa: E402

from deepsnow import DeepsnowError  # noqa: E402
from deepsnow.cli import main  # noqa: E402
from test_gan_translate import CRS, TRANSFORM, make_checkpoint, write_scene_file  # noqa: E402

SYNTH = {"device": "cpu", "tile": 64, "overlap": 16}


def synthesize(tmp_path, scene, checkpoints, name="area", params=None, extra=()):
    out = tmp_path / "synthetic" / name
    argv = [
        "synthesize", "scene", "--params", json.dumps({**SYNTH, **(params or {})}), "--name", name,
        "--input", str(scene), "--output", str(out / "snow.tif"), "--summary", str(out / "snow.summary.json"),
        "--checkpoints", *map(str, checkpoints), *extra,
    ]
    return main(argv), out


def check_raster_bands_load_with_odc_stac(item) -> None:
    """Each raster asset says what its pixels are (raster extension): odc-stac, as a user's client,
    loads them in the file's own data type (it read float32 before) and pixel for pixel as rasterio."""
    import odc.stac

    raster = item.assets["after_synthetic_reflectance"].extra_fields["raster:bands"]
    assert [(b["data_type"], b["scale"], b["offset"]) for b in raster] == [("uint16", 1e-4, 0.0)] * 3
    assert [b["data_type"] for b in item.assets["before"].extra_fields["raster:bands"]] == ["uint16"] * 7
    bands = {"after_synthetic": 1, "after_synthetic.3": 3, "after_synthetic_reflectance.2": 2, "before.5": 5, "truth.6": 6}
    ds = odc.stac.load([item], bands=list(bands), chunks=None)
    for name, index in bands.items():
        with rasterio.open(item.assets[name.split(".")[0]].get_absolute_href()) as src:
            expected = src.read(index)
        loaded = ds[name].isel(time=0).values
        assert loaded.dtype == expected.dtype, (name, loaded.dtype)
        np.testing.assert_array_equal(loaded, expected, err_msg=name)


def test_synthesize_writes_a_cog_on_the_input_grid_and_a_valid_stac_catalog(tmp_path):
    import pystac
    from rio_cogeo.cogeo import cog_validate

    from deepsnow.gan.translate import read_input
    from deepsnow.synthesize.catalog import offline_validator

    before = write_scene_file(tmp_path / "snowfree.tif", h=150, w=170, invalid_rows=6,
                              tags={"DEEPSNOW_DATE": "2021-07-04"})
    after = write_scene_file(tmp_path / "snow.tif", h=150, w=170)
    truth = write_scene_file(tmp_path / "truth.tif", h=150, w=170)
    ck = make_checkpoint(tmp_path / "epoch_003.pt", ngf=4)
    refl_path = tmp_path / "synthetic" / "area" / "snow_reflectance.tif"
    extra = ["--after-real", str(after), "--truth", str(truth), "--reflectance-output", str(refl_path)]
    rc, out = synthesize(tmp_path, before, [make_checkpoint(tmp_path / "epoch_002.pt", ngf=4), ck],
                         params={"reflectance": True}, extra=extra)
    assert rc == 0
    for product in (out / "snow.tif", refl_path):
        valid, errors, warnings = cog_validate(str(product))
        assert valid and not errors, (product, errors, warnings)
    with rasterio.open(out / "snow.tif") as src, rasterio.open(before) as ref:
        assert (src.crs, src.transform, src.shape) == (ref.crs, ref.transform, ref.shape)
        assert src.count == 3 and src.dtypes == ("uint8",) * 3 and src.descriptions == ("red", "green", "blue")
        assert src.block_shapes[0] == (512, 512) and src.compression.name == "deflate" and src.overviews(1)
        mask = src.dataset_mask()
        assert (mask[:6] == 0).all() and (mask[6:] == 255).all()
        rgb = src.read()
        assert src.tags()["DEEPSNOW_EPOCH"] == "3" and src.tags()["DEEPSNOW_NORM"] == "scene"
    with rasterio.open(refl_path) as src:
        assert src.dtypes == ("uint16",) * 3 and src.descriptions == ("B04", "B03", "B02") and src.scales[0] == 1e-4
        rho = src.read().astype(float) / 10000
    np.testing.assert_allclose(rho[:, 6:], (rgb[:, 6:] / 255.0) ** 2.2, atol=1e-4)  # the rendering's inverse
    # the pixels are the seam-free translation of the rendered scene, untouched by the COG writing
    from deepsnow.gan import checkpoint as ckpt

    rendered, *_ = read_input(before)
    direct, _ = translate_array(ckpt.load_generator(ck)[0], rendered, tile=64, overlap=16, norm="scene")
    np.testing.assert_array_equal(rgb.transpose(1, 2, 0)[6:], direct[6:])
    assert (rgb[:, :6] == 0).all() and (out / "snow.tif.prov.json").exists()

    cat_path = tmp_path / "synthetic" / "catalog.json"
    assert main(["synthesize", "catalog", "--products", str(out / "snow.summary.json"), "--output", str(cat_path)]) == 0
    pystac.validation.set_validator(offline_validator())
    catalog = pystac.Catalog.from_file(str(cat_path))
    catalog.validate_all()  # offline: the extension schemas come from deepsnow/synthesize/stac_schemas
    (item,) = catalog.get_items()
    assert item.id == "area" and Path(item.get_self_href()) == tmp_path / "synthetic" / "area" / "area.json"
    assert set(item.assets) == {"before", "after_real", "after_synthetic", "after_synthetic_reflectance", "truth", "checkpoint"}
    assert Path(item.assets["after_synthetic"].get_absolute_href()) == out / "snow.tif"
    assert Path(item.assets["checkpoint"].get_absolute_href()) == ck
    assert item.properties["proj:code"] == "EPSG:32633" and item.properties["proj:shape"] == [150, 170]
    assert item.datetime.isoformat() == "2021-07-04T00:00:00+00:00"  # the before scene's DEEPSNOW_DATE
    assert [b["name"] for b in item.assets["after_synthetic"].extra_fields["eo:bands"]] == ["red", "green", "blue"]
    provenance = [link for link in item.links if link.rel == "provenance"]
    assert any("snow.tif.prov.json" in link.href for link in provenance)
    assert all(Path(link.get_absolute_href()).exists() for link in provenance)
    assert json.loads(cat_path.read_text())["links"][-1]["href"].startswith("./")  # self-contained, relative
    check_raster_bands_load_with_odc_stac(item)

    # Figure 9 is drawn from the catalog: before, synthetic after, real after, truth, with a zoom
    png, pdf = tmp_path / "figure9.png", tmp_path / "figure9.pdf"
    assert main(["figures", "--figure", "9", "--params", "{}", "--outputs", str(png), str(pdf), "--catalog", str(cat_path)]) == 0
    prov = json.loads((tmp_path / "figure9.png.prov.json").read_text())
    assert png.stat().st_size > 10_000 and prov["extra"]["items"] == ["area"]
    col, row, w, h = prov["extra"]["zoom_windows"]["area"]
    assert w == h == 75 and 0 <= row <= 150 - h and 0 <= col <= 170 - w


from pathlib import Path  # noqa: E402


def _write_tif(path, count, dtype, transform=TRANSFORM, crs=CRS):
    with rasterio.open(path, "w", driver="GTiff", height=40, width=40, count=count, dtype=dtype, crs=crs,
                       transform=transform) as dst:
        dst.write(np.full((count, 40, 40), 7, dtype=dtype))
    return path


def _wrong_arch(tmp_path):
    """A checkpoint whose G_A weights do not fit the architecture it declares."""
    big = make_checkpoint(tmp_path / "big.pt", ngf=8)
    payload = torch.load(big, weights_only=True)
    payload["arch"]["ngf"] = 4
    torch.save(payload, tmp_path / "epoch_001.pt")
    return tmp_path / "epoch_001.pt"


BAD_INPUTS = {  # case -> (input maker, checkpoint maker, message)
    "20 m pixels": (lambda p: _write_tif(p / "s20.tif", 3, "uint8", Affine(20, 0, 5e5, 0, -20, 5.2e6)),
                    None, r"s20\.tif: pixel size 20 x 20 m"),
    "degrees": (lambda p: _write_tif(p / "geo.tif", 3, "uint8", Affine(1e-4, 0, 10, 0, -1e-4, 46), "EPSG:4326"),
                None, r"geo\.tif: CRS EPSG:4326 is not projected in metres"),
    "3-band uint16": (lambda p: _write_tif(p / "u16.tif", 3, "uint16"), None, r"u16\.tif: a 3-band input must be uint8"),
    "unreadable scene": (lambda p: (p / "trunc.tif").write_bytes(b"II*\x00garbage") and p / "trunc.tif",
                         None, r"trunc\.tif: not a readable GeoTIFF"),
    "wrong architecture": (lambda p: write_scene_file(p / "ok.tif", h=40, w=40), _wrong_arch,
                           r"epoch_001\.pt.*(shape mismatch|size mismatch)"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_and_nothing_is_half_written(tmp_path, capsys, case):
    make_input, make_ck, message = BAD_INPUTS[case]
    scene = make_input(tmp_path)
    ck = make_ck(tmp_path) if make_ck else make_checkpoint(tmp_path / "epoch_001.pt", ngf=4)
    rc, out = synthesize(tmp_path, scene, [ck])
    assert rc == 2
    import re

    assert re.search(message, capsys.readouterr().err), case
    assert not out.exists() or not any(out.iterdir())  # no product, no temporary left behind


def test_checkpoint_choice(tmp_path):
    from deepsnow.synthesize.products import choose_checkpoint

    cks = [tmp_path / f"epoch_{e:03d}.pt" for e in (2, 4, 6)]
    assert choose_checkpoint("last", cks)[0].name == "epoch_006.pt"
    assert choose_checkpoint(4, cks)[0].name == "epoch_004.pt"
    metrics = tmp_path / "metrics.csv"
    rows = ["epoch,direction,frd,fid", "2,AtoB,5.0,9", "2,BtoA,0.1,1", "4,AtoB,3.0,nan", "5,AtoB,4.0,1", "6,AtoB,3.5,2"]
    metrics.write_text("\n".join(rows) + "\n")
    path, why = choose_checkpoint("best:frd", cks, metrics)
    assert path.name == "epoch_004.pt" and "lowest frd" in why  # BtoA rows are not the synthesis direction
    with pytest.raises(DeepsnowError, match=r"best epoch is 5 .*not kept.*gan.keep_every"):
        choose_checkpoint("best:fid", cks, metrics)
    with pytest.raises(DeepsnowError, match="no such checkpoint"):
        choose_checkpoint(3, cks)


def test_epoch_choice_is_checked_when_the_dag_is_built():
    import yaml

    from helpers import REPO
    from deepsnow.config import validate_config

    def config(**synth):
        cfg = yaml.safe_load((REPO / "configs" / "test.yaml").read_text())  # keep_every 2: epochs 2, 3 kept
        cfg["synthesize"] = synth
        return cfg

    validate_config(config(epoch=2))
    with pytest.raises(DeepsnowError, match=r"synthesize.epoch': epoch 1 has no kept checkpoint.*gan.keep_every"):
        validate_config(config(epoch=1))
    with pytest.raises(DeepsnowError, match=r"synthesize.epoch': best:frd .*gan.keep_every"):
        validate_config(config(epoch="best:frd"))
    with pytest.raises(DeepsnowError, match=r"synthesize.epoch': .*best:<column>"):
        validate_config(config(epoch="best:rf_auc_mean"))
    with pytest.raises(DeepsnowError, match=r"synthesize.scenes': names \['sim02'\] are held-out test areas"):
        validate_config(config(scenes=[{"name": "sim02", "path": "x.tif"}]))


def test_a_scene_list_of_any_length_is_one_job_per_scene(tmp_path):
    """synthesize.scenes adds one synthesize job per listed scene (no per-scene code), all in the
    catalog and the default targets; the held-out area keeps its own."""
    import yaml

    from helpers import copy_workflow, snakemake
    from test_workflow import job_counts

    work = copy_workflow(tmp_path / "wf")
    scenes = [{"name": f"user{i}", "path": str(_write_tif(tmp_path / f"user{i}.tif", 3, "uint8"))} for i in range(3)]
    cfg = yaml.safe_load((work / "configs" / "test.yaml").read_text())
    cfg["synthesize"] = {"scenes": scenes}
    (work / "many.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", "-p", "--configfile", "many.yaml")
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert counts["synthesize"] == 4 and counts["synthetic_catalog"] == 1, counts
    for name in ("sim02", "user0", "user1", "user2"):
        assert f"results/test/synthetic/{name}/snow.summary.json" in out
    assert f"--input {tmp_path / 'user2.tif'}" in out and "--truth results/test/truth/sim02/snow.tif" in out
