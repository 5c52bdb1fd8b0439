"""``deepsnow plan``: the paper configs hold enough patches; bytes, requests and processing units by hand;
the simulator; the merge of config files; throughput from a finished run; bad inputs exit 2 naming the area."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import BIN, REPO, env_with_venv, merged_config

from deepsnow.cli import main
from deepsnow.config import validate_config
from deepsnow.plan import (
    PU_MIN_REQUEST,
    STAC_ASSETS,
    evalscript_request,
    load_config,
    request_pu,
    scene_bands,
    utm_zones,
    windows,
)

#: train/losses.csv columns (deepsnow.gan.checkpoint.EPOCH_COLUMNS; spelled out: importing it loads torch)
EPOCH_COLUMNS = ("epoch", "iterations", "lr", "G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")
EPOCH_COLUMNS += ("seconds", "it_per_s")
REGIONS_TEST = {"davos", "kuopio", "madison", "asahikawa"}  # one held-out area per region


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """Run from an empty folder: no results/<run> of the project is read for a throughput."""
    monkeypatch.chdir(tmp_path)


def plan_json(capsys, *args) -> dict:
    assert main(["plan", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def plan_error(capsys, *args) -> str:
    assert main(["plan", *map(str, args)]) == 2
    return capsys.readouterr().err


# --------------------------------------------------------------------------- the paper configs


def test_scene_bands_of_each_source():
    """The scene each source writes: an RGB run's download five reflectance bands, the simulator all ten."""
    download = ("B02", "B03", "B04", "B08", "B11", "SCL", "dataMask")
    assert scene_bands("sentinelhub") == scene_bands("stac") == download
    assert len(scene_bands("simulator")) == 12 and scene_bands("simulator")[-2:] == ("SCL", "dataMask")


@pytest.mark.parametrize("name, source", [("paper", "sentinelhub"), ("stac", "stac")])
def test_paper_configs_hold_enough_candidate_patches(capsys, name, source):
    plan = plan_json(capsys, REPO / "configs" / f"{name}.yaml")
    assert plan["source"] == source and plan["patches"] == {"size": 256, "stride": 256}
    pm = plan["totals"]["patches_max"]
    assert pm["train_a"] >= 1500 and pm["train_b"] >= 1500, pm
    assert pm["test_a"] > 0 and pm["test_b"] > 0
    test = {a["name"] for a in plan["areas"] if a["split"] == "test"}
    assert test == REGIONS_TEST
    for a in plan["areas"]:
        assert len(a["utm_zones"]) == 1, a["name"]  # every area within one UTM zone
        assert 35 <= a["width_km"] <= 45 and 35 <= a["height_km"] <= 45, a["name"]
        assert set(a["seasons"]) == {"snowfree", "snow"} and a["seasons"]["snow"]["domain"] == "B"
    assert plan["notes"] == []  # no held-out area overlaps a training area, none straddles two zones
    assert plan["totals"]["scenes"] == 2 * len(plan["areas"]) and plan["totals"]["download_bytes"] > 0
    if source == "sentinelhub":
        assert plan["totals"]["processing_units"] > 0
        assert plan["totals"]["requests"]["catalog"] == plan["totals"]["scenes"]
    else:
        assert plan["totals"]["processing_units"] == 0
    tr = plan["training"]
    assert tr["iterations"] == 200 * max(pm["train_a"], pm["train_b"]) and tr["it_per_s"] is None


def test_the_command_line_prints_the_plan():
    """The installed command, as a user runs it (stable JSON keys; the text names the totals)."""
    cmd = [str(BIN / "deepsnow"), "plan", "configs/paper.yaml", "--json"]
    proc = subprocess.run(cmd, cwd=REPO, env=env_with_venv(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert isinstance(plan["areas"], list)
    assert set(plan["totals"]["patches_max"]) == {"train_a", "train_b", "test_a", "test_b"}
    for key in ("download_bytes", "processing_units"):
        assert isinstance(plan["totals"][key], (int, float))
    assert isinstance(plan["training"]["iterations"], int)
    text = subprocess.run(cmd[:-1], cwd=REPO, env=env_with_venv(), capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and "processing units" in text.stdout and "train A" in text.stdout


def test_paper_and_stac_plan_the_same_areas(capsys):
    paper = plan_json(capsys, REPO / "configs" / "paper.yaml")
    stac = plan_json(capsys, REPO / "configs" / "stac.yaml")
    keys = ("name", "split", "bbox_wgs84", "width_px", "height_px", "patches_max")
    assert [[a[k] for k in keys] for a in paper["areas"]] == [[a[k] for k in keys] for a in stac["areas"]]
    assert paper["totals"]["patches_max"] == stac["totals"]["patches_max"]


def test_one_area_by_hand(capsys):
    """zell_am_see, bbox [12.5416, 47.1448, 13.0584, 47.4952], in UTM zone 33N (central meridian 15 E).

    Grid: the southern edge is 0.5168 deg x 111.32 km x cos(47.1448 deg) = 39.12 km wide, the box
    0.3504 deg x 111.2 km = 38.96 km high. At 12.8 E, 47.3 N the meridians converge by about
    2.2 deg x sin(47.3 deg) = 1.62 deg from grid north, so the projected box's envelope gains about
    sin(1.62 deg) = 0.0282 of the other side: 39.12 + 0.0282 x 38.96 = 40.22 km and
    38.96 + 0.0282 x 39.12 = 40.06 km, i.e. about 4,022 x 4,006 px; the grid is 4,017 x 4,005 px.
    Windows: (4017 - 256) // 256 + 1 = 15 columns, (4005 - 256) // 256 + 1 = 15 rows: 225.
    Sentinel Hub tiles of at most 2,500 px: 2 x 2, cut at round(4017 / 2) = 2008 and round(4005 / 2)
    = 2002 (half to even): 2008 + 2009 wide, 2002 + 2003 high, so 4 Process requests per season.
    Bytes: 4017 x 4005 = 16,088,085 px x 7 bands x 2 bytes = 225,233,190 per season.
    PUs: per tile (w x h / 512^2) x (6 input bands / 3; dataMask is not counted) x 1 sample x 1
    (16-bit output), each far above the 0.005 PU minimum, so the scene costs
    2 x 16,088,085 / 262,144 = 122.742 PU per season, 245.484 for both.
    STAC: 4 bands of 16,088,085 px x 2 bytes = 128,704,680, plus B11 (2 bytes) and SCL (1 byte)
    at 20 m on ceil(4017 / 2) x ceil(4005 / 2) = 2009 x 2003 = 4,024,027 px: 12,072,081; 140,776,761.
    """
    lat_s, lat_c = 47.1448, (47.1448 + 47.4952) / 2
    w_km, h_km = 0.5168 * 111.32 * math.cos(math.radians(lat_s)), 0.3504 * 111.2
    tilt = math.sin(math.radians((15 - 12.8) * math.sin(math.radians(lat_c))))
    est_w, est_h = (w_km + tilt * h_km) * 100, (h_km + tilt * w_km) * 100  # px of 10 m
    plan = plan_json(capsys, REPO / "configs" / "paper.yaml")
    area = next(a for a in plan["areas"] if a["name"] == "zell_am_see")
    assert (area["crs"], area["width_px"], area["height_px"]) == ("EPSG:32633", 4017, 4005)
    assert abs(area["width_px"] / est_w - 1) < 0.005 and abs(area["height_px"] / est_h - 1) < 0.005
    assert area["patches_max"] == 15 * 15 == 225
    for season in ("snowfree", "snow"):
        s = area["seasons"][season]
        assert s["requests"] == {"catalog": 1, "process": 4}
        assert sorted(map(tuple, s["tiles_px"])) == [(2008, 2002), (2008, 2003), (2009, 2002), (2009, 2003)]
        assert s["download_bytes"] == 4017 * 4005 * 7 * 2 == 225_233_190
        assert s["processing_units"] == pytest.approx(2 * 16_088_085 / 262_144) == pytest.approx(122.742, abs=1e-3)
    stac = plan_json(capsys, REPO / "configs" / "stac.yaml")
    s = next(a for a in stac["areas"] if a["name"] == "zell_am_see")["seasons"]["snow"]
    assert s["download_bytes"] == 4 * 16_088_085 * 2 + 2009 * 2003 * 3 == 140_776_761


def test_processing_unit_rules():
    """Sentinel Hub's definition: 512 x 512 px, 3 bands, 1 sample, <= 16 bits is 1 PU; the factors multiply;
    the area factor is at least 0.01; a request costs at least 0.005 PU."""
    assert request_pu(512, 512, 3) == 1.0
    assert request_pu(1024, 512, 6, samples=2) == 2 * 2 * 2
    assert request_pu(512, 512, 3, output_bits=32) == 2.0
    assert request_pu(10, 10, 6) == pytest.approx(0.01 * 2)  # area factor floored at 0.01
    assert request_pu(10, 10, 1) == PU_MIN_REQUEST == 0.005  # 0.01 / 3 < 0.005
    req = evalscript_request()  # what the Sentinel Hub download really asks for
    assert req["input_bands"] == ["B04", "B03", "B02", "B08", "B11", "SCL", "dataMask"]
    assert (req["counted_bands"], req["output_bands"], req["output_bits"]) == (6, 7, 16)
    from deepsnow.data.download.stac import ASSET_KEYS

    assert set(STAC_ASSETS) == set(ASSET_KEYS)  # every asset the STAC download reads is counted


def test_windows_are_the_patch_stage_windows():
    from deepsnow.data.patches import window_stats

    for h, w, size, stride in ((300, 520, 256, 256), (384, 384, 64, 32), (100, 90, 64, 20), (50, 300, 64, 32)):
        win = window_stats(np.zeros((h, w), dtype=np.uint8), size, stride)
        assert windows(w, h, size, stride) == len(win.row), (h, w, size, stride)


# --------------------------------------------------------------------------- simulator, merge, throughput


def test_simulator_demo_config(capsys):
    """config.yaml: 4 simulated areas of 384 px, 64 px windows at stride 32: 11 x 11 = 121 per area and season."""
    plan = plan_json(capsys, REPO / "config.yaml")
    assert plan["source"] == "simulator" and len(plan["areas"]) == 4
    assert {a["name"]: a["split"] for a in plan["areas"]} == {
        "sim00": "train",
        "sim01": "train",
        "sim02": "train",
        "sim03": "test",
    }
    a = plan["areas"][0]
    assert (a["width_px"], a["height_px"], a["width_km"], a["patches_max"]) == (384, 384, 3.84, 121)
    assert a["seasons"]["snow"]["window"] is None and a["seasons"]["snow"]["requests"] == {}
    t = plan["totals"]
    assert t["patches_max"] == {"train_a": 363, "train_b": 363, "test_a": 121, "test_b": 121}
    assert t["download_bytes"] == 0 and t["processing_units"] == 0
    assert t["scene_bytes"] == 8 * 384 * 384 * 12 * 2  # the simulator writes 12 uint16 bands
    assert plan["scene_bands"] == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL", "dataMask"]
    assert plan["training"]["iterations"] == 363 * 6 and plan["training"]["test_translations"] == 242 * 6


def test_files_merge_as_snakemake_configfile_does(capsys, tmp_path):
    config, label = load_config([REPO / "configs" / "paper.yaml"])
    assert config == validate_config(merged_config("configs/paper.yaml"))
    over = tmp_path / "over.yaml"
    over.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "aois": [
                        {"name": "a", "bbox": [10.0, 46.0, 10.1, 46.1]},
                        {"name": "b", "bbox": [11, 46, 11.1, 46.1]},
                    ]
                },
                "split": {"test_aois": ["b"]},
                "gan": {"n_epochs_decay": 0, "batch_size": 4},
            }
        )
    )
    from snakemake.utils import update_config  # what snakemake --configfile runs

    expected = yaml.safe_load((REPO / "config.yaml").read_text())
    for f in (REPO / "configs" / "paper.yaml", over):
        update_config(expected, yaml.safe_load(f.read_text()))
    assert load_config([REPO / "configs" / "paper.yaml", over])[0] == validate_config(expected)
    plan = plan_json(capsys, REPO / "configs" / "paper.yaml", over)
    assert [a["name"] for a in plan["areas"]] == ["a", "b"]  # a list is replaced, not merged
    assert plan["source"] == "sentinelhub" and plan["run"] == "paper"  # the rest of paper.yaml stays
    n = plan["areas"][0]["patches_max"]
    assert plan["training"]["epochs"] == 100 and plan["training"]["iterations"] == 100 * math.ceil(n / 4)
    assert plan["configs"] == f"config.yaml + {REPO / 'configs' / 'paper.yaml'} + {over}"


def test_training_time_from_a_throughput_or_a_finished_run(capsys, tmp_path):
    plan = plan_json(capsys, REPO / "config.yaml", "--train-it-s", "2.5")
    assert plan["training"]["seconds"] == pytest.approx(2178 / 2.5)
    run = tmp_path / "results" / "demo"  # the config's own run is read by default
    (run / "benchmarks").mkdir(parents=True)
    (run / "train").mkdir()
    (run / "benchmarks" / "train.tsv").write_text("s\th:m:s\tmax_rss\n400.0\t0:06:40\t900.1\n")
    with open(run / "train" / "losses.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EPOCH_COLUMNS)
        for epoch in (1, 2):
            w.writerow([epoch, 500, 2e-4, *[0.5] * (len(EPOCH_COLUMNS) - 5), 190.0, 2.6])
    plan = plan_json(capsys, REPO / "config.yaml")
    tr = plan["training"]
    assert tr["it_per_s"] == pytest.approx(1000 / 400) and tr["seconds"] == pytest.approx(2178 / 2.5)
    assert "train.tsv" in tr["throughput_source"]
    assert main(["plan", str(REPO / "config.yaml")]) == 0
    assert "estimated training time: 14.5 min at 2.5 it/s" in capsys.readouterr().out
    err = plan_error(capsys, REPO / "config.yaml", "--from-run", tmp_path / "nowhere")
    assert "--from-run" in err and "not a finished run" in err


# --------------------------------------------------------------------------- bad input


def _two_areas(path, first: dict, **extra) -> str:
    data = {"aois": [first, {"name": "ok", "bbox": [10.0, 46.0, 10.1, 46.1]}], **extra}
    path.write_text(yaml.safe_dump({"data": data, "split": {"test_aois": ["ok"]}}))
    return str(path)


@pytest.mark.parametrize(
    "override, words",
    [
        ({"data": {"source": "landsat"}}, ["'data.source'", "'landsat'", "sentinelhub"]),
        ({"data": {"aois": []}, "split": {"test_aois": []}}, ["'data.aois'", "needs at least one area"]),
        ({"data": {"simulator": {"n_aois": 1}, "source": "simulator"}}, ["data.simulator.n_aois"]),
    ],
)
def test_bad_configs_exit_2_naming_the_key(capsys, tmp_path, override, words):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(override))
    err = plan_error(capsys, REPO / "configs" / "paper.yaml", f)
    assert all(w in err for w in words), err


def test_area_across_the_antimeridian(capsys, tmp_path):
    f = _two_areas(tmp_path / "a.yaml", {"name": "chukotka", "bbox": [179.5, 65.0, -179.5, 65.3]})
    err = plan_error(capsys, REPO / "configs" / "paper.yaml", f)
    assert "area 'chukotka'" in err and "antimeridian" in err and "data.aois[0].bbox" in err


def test_area_over_several_utm_zones(capsys, tmp_path):
    """Two zones: planned in the zone of the centre (as the download does) and noted; more: refused."""
    f = _two_areas(tmp_path / "wide.yaml", {"name": "wide", "bbox": [10.0, 45.0, 23.0, 45.2]})
    err = plan_error(capsys, REPO / "configs" / "paper.yaml", f)
    assert "area 'wide'" in err and "3 UTM zones" in err
    f = _two_areas(tmp_path / "edge.yaml", {"name": "edge", "bbox": [11.8, 45.0, 12.2, 45.2]})
    plan = plan_json(capsys, REPO / "configs" / "paper.yaml", f)
    edge = plan["areas"][0]
    assert edge["utm_zones"] == [32, 33] and edge["crs"] == "EPSG:32633"
    assert any("edge" in n and "zones 32 and 33" in n for n in plan["notes"])
    assert utm_zones([5.0, 60.0, 6.0, 61.0]) == [32]  # the Norway exception: 32V reaches 3 E
    assert utm_zones([-1.0, -0.5, 1.0, 0.5]) == [30, 31]  # across the equator: one zone number each side


def test_bad_files_exit_2(capsys, tmp_path):
    assert "not found" in plan_error(capsys, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert "expected a mapping" in plan_error(capsys, tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("data: {source: [\n")
    assert "not valid YAML" in plan_error(capsys, tmp_path / "broken.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(REPO / "config.yaml"), "--train-it-s", "0"])
    assert exc.value.code == 2
    assert "positive number" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and "--train-it-s" in out and "--from-run" in out and "processing units" in out


def test_plan_reads_no_network_and_imports_no_heavy_library():
    code = (
        "import sys, socket\n"
        "socket.socket.connect = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('network'))\n"
        "from deepsnow.cli import main\n"
        "assert main(['plan', 'configs/stac.yaml', '--json']) == 0\n"
        "assert 'torch' not in sys.modules and 'sentinelhub' not in sys.modules and 'pystac_client' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env_with_venv(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
