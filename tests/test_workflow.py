"""The workflow end to end on the tiny test config, and what a config change reruns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from deepsnow import provenance
from deepsnow.config import merge_config
from deepsnow.data.scene import SCENE_BANDS
from deepsnow.io import load_npz, sha256_file
from helpers import REPO, copy_workflow, deepsnow, merged_config, snakemake

pytestmark = pytest.mark.slow


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table into {rule: count}."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Job stats:":
            for row in lines[i + 3 :]:
                m = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", row)
                if not m:
                    break
                if m.group(1) != "total":
                    counts[m.group(1)] = int(m.group(2))
            break
    return counts


@pytest.fixture(scope="module")
def finished_run(test_config_run) -> Path:
    """The test config run once to its final targets in a scratch copy of the workflow (the
    suite's shared run: this module's tests only read it, dry-run it or write its report)."""
    return test_config_run


def test_demo_dry_run_builds_the_dag(tmp_path: Path):
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(work, "-n")
    counts = job_counts(proc.stdout + proc.stderr)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    n = cfg["data"]["simulator"]["n_aois"]
    assert counts["simulate"] == n
    assert counts["mask"] == 2 * n
    assert counts["patches"] == 2 * n
    assert counts["split"] == 1


def test_run_produces_dataset_with_provenance(finished_run: Path):
    res = finished_run / "results" / "test"
    summary = json.loads((res / "dataset" / "summary.json").read_text())
    assert summary["test_aois"] == ["sim02"]
    assert "sim02" not in summary["train_aois"]
    for name in ("trainA", "trainB", "testA", "testB"):
        arr = load_npz(res / "dataset" / f"{name}.npz", required=("rgb", "ids"))
        assert arr["rgb"].dtype == np.uint8 and arr["rgb"].shape[1:] == (32, 32, 3)
        assert len(arr["rgb"]) > 0
        aois = set(arr["aoi"].tolist())
        assert (aois == {"sim02"}) if name.startswith("test") else ("sim02" not in aois)
    with rasterio.open(res / "scenes" / "sim00" / "snow.tif") as src:
        assert src.crs.to_epsg() in range(32601, 32661)
        assert src.descriptions == SCENE_BANDS  # the simulator writes all ten reflectance bands
    # the test patches carry both truths, cut with the same windows: the snowfall one is never darker
    test_a = load_npz(res / "dataset" / "testA.npz", required=("rgb", "ids", "truth", "truth_snowfall"))
    assert test_a["truth_snowfall"].shape == test_a["truth"].shape == test_a["rgb"].shape
    assert test_a["truth_snowfall"].dtype == np.uint8
    assert test_a["truth_snowfall"].astype(int).mean() > test_a["truth"].astype(int).mean()
    with rasterio.open(res / "truth" / "sim02" / "snowfall.tif") as src:
        assert src.tags()["DEEPSNOW_SNOWFALL"] == "1"
    # the provenance chain leads from a dataset file back to the simulated scenes
    stages = [d["stage"] for d in provenance.chain(res / "dataset" / "trainA.npz")]
    assert stages[0] == "split" and {"patches", "mask", "simulate"} <= set(stages)
    proc = deepsnow("provenance", "results/test/dataset/trainA.npz", "--check", cwd=finished_run)
    assert proc.returncode == 0, proc.stderr
    # every result file carries a sidecar
    for f in res.rglob("*"):
        internal = {"logs", "benchmarks"} & set(f.parts) or any(p.startswith("state-") for p in f.parts)
        if f.is_file() and not f.name.endswith(".prov.json") and not internal:
            # a class raster's GIS style files (<x>.tif.aux.xml, <x>.qml) go with the raster's sidecar
            companion = {".xml": f.with_suffix("").with_suffix(""), ".qml": f.with_suffix(".tif")}.get(f.suffix, f)
            assert companion.suffix != ".tif" or companion.exists(), f"{f}: no raster {companion}"
            assert provenance.sidecar_path(companion).exists(), f"{f} has no provenance sidecar"


def test_run_trains_generates_and_measures(finished_run: Path):
    import csv

    import torch

    from deepsnow.gan.schedule import kept_epochs, saved_epochs
    from deepsnow.config import validate_section

    res = finished_run / "results" / "test"
    cfg = yaml.safe_load((finished_run / "configs" / "test.yaml").read_text())
    epochs = saved_epochs(validate_section("gan", cfg["gan"]))
    kept = kept_epochs(validate_section("gan", cfg["gan"]))
    assert len(epochs) == 3 and kept == [2, 3]  # the test config prunes a checkpoint (gan.keep_every)
    for e in epochs:
        path = res / "train" / "checkpoints" / f"epoch_{e:03d}.pt"
        assert path.exists() == (e in kept), path
        if e in kept:
            assert torch.load(path, weights_only=True)["epoch"] == e
        # no state copy of a pruned checkpoint either
        assert bool(list((res / "train").glob(f"state-*/data-*/epoch_{e:03d}.pt"))) == (e in kept), e
        samples = load_npz(res / "samples" / f"epoch_{e:03d}.npz", required=("fake_B", "ids_A", "fake_A", "ids_B"))
        test_a = load_npz(res / "dataset" / "testA.npz")
        assert samples["fake_B"].shape == test_a["rgb"].shape and samples["fake_B"].dtype == np.uint8
        assert samples["ids_A"].tolist() == test_a["ids"].tolist()
    with open(res / "train" / "losses.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, epochs[-1] + 1))
    with open(res / "metrics" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((int(r["epoch"]), r["direction"]) for r in rows) == sorted(
        (e, d) for e in epochs for d in ("AtoB", "BtoA")
    )
    for r in rows:
        assert float(r["fid"]) >= 0 and float(r["frd"]) >= 0 and 0 <= float(r["rf_logloss_mean"])
        # the test config uses random weights: every row says so
        assert r["resnet_pretrained"] in ("False", "false", "0") and r["resnet_weights"].startswith("random")
        if r["direction"] == "AtoB":
            assert 0 <= float(r["paired_l1"]) <= 1 and 0 <= float(r["paired_l1_season"]) <= 1
    stages = [d["stage"] for d in provenance.chain(res / "metrics" / "metrics.csv")]
    assert {"train", "embed", "split", "simulate"} <= set(stages)
    prov = provenance.load(res / "samples" / "epoch_001.npz")
    assert prov["stage"] == "train" and prov["extra"]["epoch"] == 1
    assert {Path(i["path"]).name for i in prov["inputs"]} == {"trainA.npz", "trainB.npz", "testA.npz", "testB.npz"}


def test_run_measures_every_metric_along_every_ladder(finished_run: Path):
    """metrics/validity.csv: every ladder x metric of metrics.csv x level, with rho, interval and
    sensitivity; half mode only while testA.npz holds no reachable truth."""
    import csv

    from deepsnow.config import validate_section
    from deepsnow.validity.ladders import LADDERS, REFLECTANCE_ONLY

    res = finished_run / "results" / "test"
    with open(res / "metrics" / "validity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(res / "metrics" / "metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    section = validate_section("validity", merged_config("configs/test.yaml")["validity"])
    levels, ladders = section["levels"], section["ladders"]
    assert set(ladders) == set(LADDERS) - set(REFLECTANCE_ONLY) and len(levels) == 5  # every RGB ladder, at the fewest levels allowed
    metrics = {"fid", "frd", "crd", "kid_mean", "rf_logloss_mean"} | {
        c for c in header if c.startswith(("fd_", "cd_", "precision_", "recall_", "density_", "coverage_"))
    }
    assert len(metrics) == 5 + 6 * 3  # the three extractors of config.yaml
    modes = {"half", "truth"} if "truth_snowfall" in load_npz(res / "dataset" / "testA.npz") else {"half"}
    keys = {(r["mode"], r["ladder"], r["metric"], float(r["level"])) for r in rows}
    assert keys == {(m, lad, x, lv) for m in modes for lad in ladders for x in metrics for lv in levels}
    assert len(rows) == len(keys)
    assert all({"rho", "ci_low", "ci_high", "sensitivity"} <= set(r) for r in rows)
    assert any(r["rho"] for r in rows) and any(r["ci_low"] for r in rows)
    stages = [d["stage"] for d in provenance.chain(res / "metrics" / "validity.csv")]
    assert stages[0] == "validity" and {"embed", "split", "simulate"} <= set(stages)


def test_run_has_simcover_distances(finished_run: Path):
    """simcover trained on the training patches only, its features recorded by weights hash,
    fd_/cd_<extractor> and precision/recall/density/coverage_<extractor> of every extractor in
    metrics.csv, correlated in correlations.csv."""
    import csv

    res = finished_run / "results" / "test"
    weights = res / "features" / "simcover.pt"
    prov = provenance.load(weights)
    assert prov["stage"] == "train_simcover"
    assert {Path(i["path"]).name for i in prov["inputs"]} == {"trainA.npz", "trainB.npz"}
    summary = json.loads((res / "features" / "simcover.json").read_text())
    assert summary["n_heldout"] >= 1 and 0 <= summary["heldout"]["class_fraction_mae"] <= 1
    assert [r["seed"] for r in summary["seeds"]] == [0, 1] and summary["threads"] == 2  # configs/test.yaml
    assert summary["spread"]["heldout"]["class_fraction_mae"]["max"] >= summary["heldout"]["class_fraction_mae"]
    real = load_npz(res / "features" / "real_simcover.npz")
    assert str(real["weights"]) == f"simcover:{sha256_file(weights)[:16]}" and real["A"].shape[1] == 512
    with open(res / "metrics" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    for x in ("inception", "resnet50", "simcover"):
        assert all(float(r[f"fd_{x}"]) >= 0 and 0 <= float(r[f"cd_{x}"]) <= 2 for r in rows), x
        for r in rows:  # precision, recall, density, coverage of every extractor (k = 5 < 9 test patches)
            shares = [float(r[f"{what}_{x}"]) for what in ("precision", "recall", "coverage")]
            assert all(0 <= v <= 1 for v in shares) and float(r[f"density_{x}"]) >= 0, (x, r["epoch"])
    with open(res / "metrics" / "correlations.csv") as fh:
        corr = {(c["metric"], c["paired"]) for c in csv.DictReader(fh)}
    assert {("fd_simcover", "paired_l1"), ("cd_simcover", "paired_l1"), ("coverage_simcover", "paired_l1")} <= corr
    assert "simcover extractor: held-out" in (res / "report" / "headline.html").read_text()
    assert "over 2 seeds: mean ± s.d. (min–max)" in (res / "report" / "headline.html").read_text()


AS_USER = """
import os, stat, sys
# Snakemake finds protected outputs with os.access(path, W_OK), which is always true for
# root (CI runs as root). Answer it as for an ordinary user: no write bit, no write access.
_access = os.access
def access(path, mode, *args, **kwargs):
    if mode & os.W_OK and os.path.exists(path) and not os.stat(path).st_mode & stat.S_IWUSR:
        return False
    return _access(path, mode, *args, **kwargs)
os.access = access
from snakemake.cli import main
sys.exit(main())
"""


def test_retraining_by_accident_fails_at_dag_build(finished_run: Path):
    import os
    import stat
    import subprocess
    import sys

    from helpers import env_with_venv

    ckpts = sorted((finished_run / "results" / "test" / "train" / "checkpoints").glob("epoch_*.pt"))
    assert ckpts and all(not os.stat(p).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for p in ckpts)
    cmd = [sys.executable, "-c", AS_USER, "--cores", "1", "-n", "--configfile", "configs/test.yaml", "--forcerun", "train"]
    proc = subprocess.run(cmd, cwd=finished_run, env=env_with_venv(), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Write-protected output files for rule train" in out, out


def test_all_figures_and_the_report(finished_run: Path):
    import zipfile

    import matplotlib.image

    res = finished_run / "results" / "test"
    for n in (*range(1, 11), 12):
        png = res / "figures" / f"figure{n}.png"
        img = matplotlib.image.imread(png)
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 300, (n, img.shape)
        assert img[..., :3].std() > 0.02, f"figure {n} looks blank"
        assert (res / "figures" / f"figure{n}.pdf").read_bytes()[:4] == b"%PDF"
        stages = [d["stage"] for d in provenance.chain(png)]
        assert stages[0] == "figures" and "simulate" in stages, (n, stages)
    snakemake(finished_run, "--configfile", "configs/test.yaml", "--report", "results/report.zip")
    with zipfile.ZipFile(finished_run / "results" / "report.zip") as z:
        names = z.namelist()
    assert any(n.endswith("report.html") for n in names)
    assert sum(n.endswith(".png") and "figure" in n for n in names) == 11
    assert any(n.endswith("metrics.csv") for n in names) and any(n.endswith("validity.csv") for n in names)
    check_report_pages(finished_run, names)


def check_report_pages(run: Path, names: list[str]) -> None:
    """The report shows its tables: one HTML page per table (rule report_pages), the merged config
    as YAML, and the last epoch's metrics per direction and the dataset counts on the front page."""
    import csv
    import html
    import zipfile

    res = run / "results" / "test"
    pages = {"metrics", "losses", "artifacts", "validity", "dataset", "config", "headline", "summary"}  # summary: change/
    assert {Path(n).stem for n in names if n.endswith(".html") and "/data/raw/" in n} == pages, names
    with open(res / "metrics" / "metrics.csv", newline="") as fh:
        metrics = list(csv.DictReader(fh))
    page = (res / "report" / "metrics.html").read_text()
    assert page.count("<tr>") == len(metrics) + 1 and f"{float(metrics[-1]['fid']):.6g}" in page
    epochs = (res / "train" / "losses.csv").read_text().strip().count("\n")  # rows below the header
    assert (res / "report" / "losses.html").read_text().count("<tr>") == 1 + epochs
    yaml_text = re.search(r"<pre>(.*)</pre>", (res / "report" / "config.html").read_text(), re.S)[1]
    config = yaml.safe_load(html.unescape(yaml_text))
    assert config["run"] == "test" and config["gan"]["n_epochs"] + config["gan"]["n_epochs_decay"] == 3
    with zipfile.ZipFile(run / "results" / "report.zip") as z:
        front = z.read(next(n for n in names if n.endswith("report.html"))).decode()
    last = max(int(r["epoch"]) for r in metrics)
    assert f"epoch {last} (the last saved): metrics per direction" in front
    for row in (r for r in metrics if int(r["epoch"]) == last):
        assert f"{float(row['fid']):.6g}" in front, row["direction"]
    counts = json.loads((res / "dataset" / "summary.json").read_text())["counts"]
    assert all(f">{n}</td>" in front for n in counts.values()), counts


def test_synthetic_products_are_cogs_on_the_scene_grid_with_a_valid_catalog(finished_run: Path):
    """The held-out area's whole scene translated to a valid COG on its grid, in a STAC catalog
    that validates offline with the before, real after, synthetic after, truth and checkpoint assets."""
    import pystac
    from rio_cogeo.cogeo import cog_validate

    from deepsnow.synthesize.catalog import offline_validator

    res = finished_run / "results" / "test"
    cog = res / "synthetic" / "sim02" / "snow.tif"
    assert cog_validate(str(cog))[0]
    with rasterio.open(cog) as src, rasterio.open(res / "scenes" / "sim02" / "snowfree.tif") as ref:
        assert (src.crs, src.transform, src.shape, src.count) == (ref.crs, ref.transform, ref.shape, 3)
    pystac.validation.set_validator(offline_validator())
    catalog = pystac.Catalog.from_file(str(res / "synthetic" / "catalog.json"))
    catalog.validate_all()
    (item,) = catalog.get_items()
    assert set(item.assets) == {"before", "after_real", "after_synthetic", "truth", "checkpoint"}
    assert item.properties["deepsnow:epoch"] == 3 and item.datetime is not None


def test_every_raster_of_the_run_is_a_gis_ready_cog(finished_run: Path):
    """Scenes, truth, class masks and synthetic products are valid COGs with overviews and an
    internal mask (land cover: valid everywhere); scenes carry the reflectance scale, class rasters a
    colour table and a QGIS style."""
    from rio_cogeo.cogeo import cog_validate

    res = finished_run / "results" / "test"
    rasters = sorted(res.rglob("*.tif"))
    kinds = {p.relative_to(res).parts[0] for p in rasters}
    assert {"scenes", "truth", "masks", "synthetic"} <= kinds, kinds
    for path in rasters:
        ok, errors, warnings = cog_validate(str(path), strict=True)
        assert ok, (path, errors, warnings)
        with rasterio.open(path) as src:
            assert src.overviews(1), path
            if path.name != "landcover.tif":  # the simulator's labels are valid everywhere: no mask
                assert src.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset], path
            else:
                assert len(src.colormap(1)) >= 9 and path.with_suffix(".qml").exists(), path
            if "dataMask" in src.descriptions:  # a scene or truth: mask = dataMask, scale 1e-4 on the reflectance bands
                n = src.descriptions.index("dataMask") + 1
                assert np.array_equal(src.read_masks(1) > 0, src.read(n) > 0), path
                assert src.scales[: n - 2] == (1e-4,) * (n - 2), path
            if path.parts[-3] == "masks":
                assert src.colormap(1)[3][:3] == (235, 250, 255) and path.with_suffix(".qml").exists(), path


def test_nothing_to_do_after_a_complete_run(finished_run: Path):
    proc = snakemake(finished_run, "-n", "--configfile", "configs/test.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


SCENES = "one per scene"  # 2 seasons x the config's areas
# setting changed over configs/test.yaml, rules allowed to rerun (None: any), jobs expected
# (None: at least one), rules that must not rerun
RERUNS = [
    ("metrics", {"metrics": {"rf_repeats": 4}},
     {"metrics_epoch", "metrics_table", "metrics_pca", "metric_validity", "figure", "figure_artifacts", "report_pages", "all"},
     {"metrics_epoch": None, "metrics_table": None}, set()),
    ("figures", {"figures": {"dpi": 100}}, {"figure", "figure_artifacts", "report_pages", "all"}, {"figure": 10, "figure_artifacts": 1}, set()),
    ("synthesize", {"synthesize": {"overlap": 32}},
     {"synthesize", "synthetic_catalog", "change", "change_summary", "change_benchmark", "figure", "report_pages", "all"},
     {"synthesize": 1, "synthetic_catalog": 1, "change": 1, "change_summary": 1, "change_benchmark": 1, "figure": 2},
     set()),
    ("change", {"change": {"blob_px": 2}},
     {"change", "change_summary", "change_benchmark", "figure", "report_pages", "all"},
     {"change": 1, "change_summary": 1, "change_benchmark": 1, "figure": 1}, {"synthesize", "train"}),
    ("patches", {"patches": {"max_cloud": 0.05}}, None, {"patches": SCENES, "split": 1}, {"simulate", "mask"}),
    ("mask", {"mask": {"ndsi_min": 0.35}}, None, {"mask": SCENES}, {"simulate"}),
]


@pytest.mark.parametrize("change, allowed, expected, untouched", [r[1:] for r in RERUNS], ids=[r[0] for r in RERUNS])
def test_setting_change_reruns_only_what_depends_on_it(finished_run: Path, tmp_path: Path, change, allowed, expected, untouched):
    changed = merge_config(yaml.safe_load((finished_run / "configs" / "test.yaml").read_text()), change)
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(yaml.safe_dump(changed))
    proc = snakemake(finished_run, "-n", "--configfile", str(cfg))
    counts = job_counts(proc.stdout + proc.stderr)
    assert allowed is None or set(counts) <= allowed, counts
    scenes = 2 * changed["data"]["simulator"]["n_aois"]
    for rule, n in expected.items():
        want = scenes if n is SCENES else n
        assert counts.get(rule) if want is None else counts.get(rule) == want, (rule, counts)
    assert not untouched & set(counts), counts
