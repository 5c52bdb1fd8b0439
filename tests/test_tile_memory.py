"""benchmarks/tile_memory.py: its options and its table, without running a stage (a run takes minutes on a
2048² scene and most of an hour on a full tile: docs/performance.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from helpers import REPO, env_with_venv

SCRIPT = REPO / "benchmarks" / "tile_memory.py"


def load():
    spec = importlib.util.spec_from_file_location("tile_memory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_names_the_band_sets():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], env=env_with_venv(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "--bands" in proc.stdout and "reflectance" in proc.stdout


def test_a_ten_band_run_fetches_all_ten_bands_and_an_rgb_run_the_five():
    tm = load()
    assert tm.fetched_bands("rgb") == ("B04", "B03", "B02", "B08", "B11")
    assert sorted(tm.fetched_bands("all")) == sorted(tm.BAND_SETS["all"][0]) and len(tm.BAND_SETS["all"][0]) == 10


def test_the_table_gives_each_band_set_over_the_first(capsys):
    tm = load()

    def rec(gb, s):
        return {"peak_rss_gb": gb, "wall_s": s, "rc": 0}

    results = {("rgb", 64): {"mask": rec(0.2, 2.0), "patches": rec(0.2, 1.0)},
               ("all", 64): {"mask": rec(0.2, 2.0), "patches": rec(0.3, 3.0), "translate": rec(2.5, 9.0)}}  # fmt: skip
    tm.print_table(results, 2.0)
    out = capsys.readouterr().out
    assert "all/rgb 64" in out
    patches = next(line for line in out.splitlines() if line.startswith("patches"))
    assert "1.50x RSS" in patches and "3.00x s" in patches
    translate = next(line for line in out.splitlines() if line.startswith("translate"))
    assert "2.50 GB^" in translate


def test_the_synthesize_stage_runs_the_command_with_the_checkpoints_products(tmp_path):
    """``synthesize``: ``deepsnow synthesize scene`` of the size's scene with the band set's checkpoint, on the
    CPU; a ten-band (reflectance) checkpoint also writes snow_reflectance.tif, which the command requires."""
    import argparse
    import json

    tm = load()
    assert tm.STAGES.index("translate") < tm.STAGES.index("synthesize")
    for bands in ("rgb", "all"):
        args = argparse.Namespace(bands=bands, patch_size=256, stride=256)
        cmd = tm.stage_commands(args, tmp_path, tmp_path / "ck" / "epoch_001.pt")["synthesize"]
        assert cmd[cmd.index("-m") + 1 :][:3] == ["deepsnow.cli", "synthesize", "scene"]
        opts = dict(zip(cmd[::1], cmd[1::1]))
        assert opts["--input"] == str(tmp_path / "scenes" / tm.AOI / "snowfree.tif")
        assert opts["--checkpoints"] == str(tmp_path / "ck" / "epoch_001.pt")
        assert opts["--output"] == str(tmp_path / bands / "synthetic" / tm.AOI / "snow.tif")
        assert json.loads(opts["--params"]) == {"device": "cpu"}
        assert ("--reflectance-output" in cmd) == (bands == "all")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], env=env_with_venv(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "synthesize" in proc.stdout  # a stage --skip takes


def test_the_change_stage_of_ten_bands_reads_the_synthesize_stages_reflectance_product(tmp_path):
    """``change``: the RGB band set for both runs; a ten-band run adds the reflectance band set from the very file
    the synthesize stage writes (``--synthetic-reflectance`` = its ``--reflectance-output``)."""
    import argparse

    tm = load()
    assert tm.STAGES.index("synthesize") < tm.STAGES.index("change")
    for bands in ("rgb", "all"):
        args = argparse.Namespace(bands=bands, patch_size=256, stride=256)
        cmds = tm.stage_commands(args, tmp_path, tmp_path / "ck" / "epoch_001.pt")
        change, synth = cmds["change"], cmds["synthesize"]
        assert change[change.index("-m") + 1 :][:3] == ["deepsnow.cli", "change", "area"]
        assert change[change.index("--output") + 1] == str(tmp_path / bands / "change" / f"{tm.AOI}.json")
        if bands == "rgb":
            assert "--synthetic-reflectance" not in change
        else:
            refl = change[change.index("--synthetic-reflectance") + 1]
            assert refl == synth[synth.index("--reflectance-output") + 1]
