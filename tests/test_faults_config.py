"""Fault matrix (reliability), bad configs: one parametrised test per row.

Every bad config must stop the workflow's validation and, where the fault lies inside one
section, the stage command's ``--params`` validation: a non-zero exit, a message naming the key
path and what was expected, and no file written. Values that become output paths can never
leave ``results/``; names never carry shell characters; a value allowed through reaches the
shell quoted; and nothing the config holds is imported or executed (extractors come from entry
points).

Most rows call ``validate_config`` in-process on config.yaml with the row merged over it, which
is what the Snakefile validates after Snakemake merged a ``--configfile``; starting Snakemake
costs seconds a row. One row per kind of fault still goes through a real ``snakemake -n``
(:data:`THROUGH_SNAKEMAKE`), so the wiring stays tested.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO, copy_workflow, deepsnow, env_with_venv, merged_config, snakemake
from synthetic import install_tinydetector, install_tinyplug

from deepsnow import DeepsnowError
from deepsnow.cli import main as deepsnow_main
from deepsnow.config import merge_config, validate_config
from deepsnow.io import load_npz, save_npz

MARKER = "PWNED"


# ------------------------------------------------------------------ helpers


def dry_run(tmp_path: Path, cfg: dict | None, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    """``snakemake -n`` in a fresh copy of the workflow with ``cfg`` as an extra --configfile."""
    work = copy_workflow(tmp_path / "wf")
    extra = []
    if cfg is not None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump(cfg, sort_keys=False))
        extra = ["--configfile", str(bad)]
    if env is None:
        proc = snakemake(work, "-n", *extra, *args, check=False)
    else:
        cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "-n", *extra, *args]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    return proc, work


def validation_refuses(tmp_path: Path, cfg: dict, *needles: str) -> str:
    """What the Snakefile's ``validate_config`` says of config.yaml with ``cfg`` merged over it as
    Snakemake merges a --configfile (after the same YAML round trip), without starting Snakemake.
    Relative paths resolve in an empty folder, as they would in a fresh copy of the workflow."""
    config = merge_config(merged_config(), yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False)))
    folder = tmp_path / "cwd"
    folder.mkdir()
    with contextlib.chdir(folder), pytest.raises(DeepsnowError) as err:
        validate_config(config)
    msg = str(err.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in:\n{msg}"
    assert files_under(folder) == []
    return msg


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"accepted (rc 0):\n{out[-3000:]}"
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out[-4000:]}"
    return out


def assert_no_marker(*folders: Path) -> None:
    for folder in folders:
        hits = [p for p in folder.rglob(f"*{MARKER}*") if MARKER in p.name and p.suffix != ".geojson"]
        assert not hits, f"a config value was executed: {hits}"


#: The stage command that takes each section, with placeholder inputs and outputs under ``out``.
def cli_args(section: str, out: Path) -> list:
    return {
        "data": ["simulate", "--aoi", "sim00", "--snowfree", out / "a.tif", "--snow", out / "b.tif", "--truth", out / "c.tif"],
        "mask": ["mask", "--scene", out / "in.tif", "--output", out / "m.tif", "--summary", out / "m.json"],
        "patches": ["patches", "--scene", out / "in.tif", "--mask", out / "m.tif", "--output", out / "p.npz", "--table", out / "p.csv"],
        "split": ["split", "--shards", out / "p.npz", "--outdir", out / "dataset"],
        "gan": ["train", "--train-a", out / "a.npz", "--train-b", out / "b.npz", "--checkpoint-dir", out / "ck",
                "--state-dir", out / "st", "--losses", out / "l.csv", "--iter-losses", out / "li.csv"],
        "features": ["embed", "--images", out / "i.npz", "--output", out / "f_{extractor}.npz"],
        "metrics": ["metrics", "epoch", "--real", out / "r.npz", "--features", out / "f.npz", "--outputs", out / "e.json"],
        "figures": ["figures", "--figure", "3", "--outputs", out / "f.png", out / "f.pdf"],
    }[section]


def cli_refuses(tmp_path: Path, section: str, value, *needles: str) -> None:
    """The stage command refuses ``value`` as its ``--params`` (the command line's ``main`` in-process:
    a new interpreter per row would cost a second; one row runs in a subprocess, below)."""
    out = tmp_path / "cli"
    out.mkdir()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        rc = deepsnow_main([*map(str, cli_args(section, out)), "--params", json.dumps(value)])
    assert rc == 2, f"rc {rc}:\n{stderr.getvalue()[-3000:]}"
    for needle in needles:
        assert needle in stderr.getvalue(), f"{needle!r} not in:\n{stderr.getvalue()[-3000:]}"
    assert files_under(out) == []


def strings_in(obj) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings_in(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings_in(v)]
    return [obj] if isinstance(obj, str) else []


def feature_collection(*names: str) -> dict:
    feats = []
    for i, name in enumerate(names):
        x = 10.0 + 0.1 * i
        ring = [[x, 46.5], [x + 0.05, 46.5], [x + 0.05, 46.55], [x, 46.55], [x, 46.5]]
        feats.append({"type": "Feature", "properties": {"name": name}, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": feats}


# ------------------------------------------------------------------ 1. types, unknown keys, missing and out-of-range values

REAL = {"source": "stac"}
# id, config merged over config.yaml, key named, what was expected, section the CLI validates (None: no CLI check)
BAD_VALUES = [
    ("type-int-string", {"gan": {"n_epochs": "ten"}}, "gan.n_epochs", "'ten' is not of type 'integer'", "gan"),
    ("type-int-fraction", {"patches": {"size": 3.5}}, "patches.size", "3.5 is not of type 'integer'", "patches"),
    ("type-int-written-as-float", {"patches": {"size": 64.0}}, "patches.size", "64.0 is not of type 'integer'", "patches"),
    ("type-list-as-string", {"data": {"aois": "alps"}}, "data.aois", "'alps' is not of type 'array'", "data"),
    ("type-bool-as-string", {"gan": {"deterministic": "yes"}}, "gan.deterministic", "is not of type 'boolean'", "gan"),
    ("type-null", {"metrics": {"rf_repeats": None}}, "metrics.rf_repeats", "None is not of type 'integer'", "metrics"),
    ("type-section-not-mapping", {"figures": [8]}, "figures", "is not of type 'object'", None),
    ("type-nested-item", {"data": {**REAL, "aois": [{"name": "alps", "bbox": ["w", 46, 11, 47]}]}}, "data.aois[0].bbox[0]",
     "'w' is not of type 'number'", "data"),
    ("unknown-top-level", {"bogus": 1}, "<top level>", "unknown key 'bogus'", None),
    ("unknown-section-typo", {"feature": {"batch_size": 4}}, "<top level>", "unknown key 'feature' (did you mean 'features'?)", None),
    ("unknown-key-typo", {"gan": {"n_epoch": 3}}, "gan", "unknown key 'gan.n_epoch' (did you mean 'gan.n_epochs'?)", "gan"),
    ("unknown-nested-key", {"data": {"simulator": {"sizes": 96}}}, "data.simulator",
     "unknown key 'data.simulator.sizes' (did you mean 'data.simulator.size'?)", "data"),
    ("missing-aoi-bbox", {"data": {**REAL, "aois": [{"name": "alps"}]}}, "data.aois[0].bbox",
     "a required value is missing (expected [min_lon, min_lat, max_lon, max_lat]", "data"),
    ("missing-season-end", {"data": {"seasons": {"snow": {"start": "2021-01-01"}}}}, "data.seasons.snow.end",
     "a required value is missing", "data"),
    ("missing-real-areas", {"data": REAL}, "data.aois", "needs at least one area of interest", None),
    ("missing-weights-file", {"features": {"resnet50": {"weights": "path"}}}, "features.resnet50.weights_path",
     "weights: path needs a weights file", None),
    ("range-below-minimum", {"patches": {"size": 2}}, "patches.size", "2 is less than the minimum of 8", "patches"),
    ("range-above-maximum", {"data": {"max_cloud_cover": 150}}, "data.max_cloud_cover", "150 is greater than the maximum of 100", "data"),
    ("range-exclusive-minimum", {"gan": {"lr": 0}}, "gan.lr", "0 is less than or equal to the minimum of 0", "gan"),
    ("range-exclusive-maximum", {"split": {"test_aois": [], "test_fraction": 1}}, "split.test_fraction",
     "1 is greater than or equal to the maximum of 1", "split"),
    ("range-enum", {"figures": {"pca_direction": "up"}}, "figures.pca_direction", "'up' is not one of ['AtoB', 'BtoA']", "figures"),
    ("range-metrics-folds", {"metrics": {"rf_folds": 1}}, "metrics.rf_folds", "1 is less than the minimum of 2", "metrics"),
    ("range-no-epochs", {"gan": {"n_epochs": 0, "n_epochs_decay": 0}}, "gan.n_epochs", "must be at least 1", None),
    ("range-patch-larger-than-scene", {"patches": {"size": 4096}}, "patches.size", "larger than the scene", None),
    ("cut-option-on-cyclegan", {"gan": {"lambda_NCE": 2.0}}, "gan.lambda_NCE",
     "an option of CUT / FastCUT, but gan.model is cyclegan", "gan"),
    ("cyclegan-option-on-cut", {"gan": {"model": "cut", "lambda_cycle": 10.0}}, "gan.lambda_cycle",
     "an option of cycleGAN, but gan.model is cut", "gan"),
    ("cut-generator-too-small", {"gan": {"model": "cut", "n_blocks": 1, "nce_layers": [0, 4, 8, 12, 16]}},
     "gan.nce_layers", "layers [16] are not in the generator's encoder", "gan"),
    ("cut-pca-of-b-to-a", {"gan": {"model": "cut"}, "figures": {"pca_direction": "BtoA"}}, "figures.pca_direction",
     "BtoA needs a B->A generator, but gan.model cut is one-sided", None),
]


@pytest.mark.parametrize("cfg, key, expected, cli_section", [r[1:] for r in BAD_VALUES], ids=[r[0] for r in BAD_VALUES])
def test_bad_value_is_refused_naming_the_key(tmp_path, cfg, key, expected, cli_section):
    validation_refuses(tmp_path, cfg, f"key '{key}'", expected, "invalid configuration")
    if cli_section:
        cli_refuses(tmp_path, cli_section, cfg[cli_section], f"key '{key}'", expected)


def test_section_that_is_not_a_mapping_is_refused_by_the_cli(tmp_path):
    """In a real process: the exit status and the message on stderr."""
    out = tmp_path / "cli"
    out.mkdir()
    proc = deepsnow(*cli_args("figures", out), "--params", json.dumps([8]))
    assert proc.returncode == 2, f"rc {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "section 'figures' must be a mapping, got list" in proc.stderr, proc.stderr[-3000:]
    assert files_under(out) == []


# ------------------------------------------------------------------ 2. paths: outputs never leave results/

RUN_ESCAPES = {
    "run-parent": "../../escaped",
    "run-absolute": "ABS/escaped",
    "run-subfolder": "a/b",
    "run-dotdot": "..",
    "run-dot": ".",
    "run-empty": "",
    "run-home": "~/escaped",
    "run-hidden": ".hidden",
    "run-trailing-newline": "demo\n",
}


@pytest.mark.parametrize("run", list(RUN_ESCAPES.values()), ids=list(RUN_ESCAPES))
def test_run_name_cannot_move_outputs_out_of_results(tmp_path, run):
    run = run.replace("ABS", str(tmp_path))
    validation_refuses(tmp_path, {"run": run}, "key 'run'", "a single folder name", "outputs never leave results/")
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_run_name_from_the_command_line_is_checked_too(tmp_path):
    proc, work = dry_run(tmp_path, None, "--config", f"run=../{MARKER}")
    assert_refused(proc, "key 'run'", "outputs never leave results/")
    assert files_under(work / "results") == [] and not (tmp_path / MARKER).exists()


def test_run_name_that_is_a_file_in_results_is_refused(tmp_path):
    """results/README.md is part of the repository: a run named README.md cannot be a folder there."""
    work = copy_workflow(tmp_path / "wf")
    (work / "results").mkdir()
    (work / "results" / "README.md").write_text("what results/ holds\n")
    proc = snakemake(work, "-n", "--config", "run=README.md", check=False)
    assert_refused(proc, "config key 'run'", "results/README.md exists and is not a folder")
    assert files_under(work / "results") == [work / "results" / "README.md"]


def test_input_paths_may_be_relative_or_absolute(tmp_path):
    """Policy: input files are read from an absolute path or one relative to the project root."""
    work = copy_workflow(tmp_path / "wf")
    (work / "areas.geojson").write_text(json.dumps(feature_collection("alps_a", "alps_b")))
    weights = tmp_path / "weights dir" / "resnet.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"not read by a dry run")
    for aoi_file in ("areas.geojson", str(work / "areas.geojson")):
        cfg = {"data": {"source": "stac", "aoi_file": aoi_file}, "split": {"test_aois": ["alps_b"]},
               "features": {"extractors": ["inception", "resnet50"],  # simcover needs simulator labels
                            "resnet50": {"weights": "path", "weights_path": str(weights)}}}
        (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg))
        proc = snakemake(work, "-n", "--configfile", str(tmp_path / "ok.yaml"), check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert re.search(r"\bdownload\s+4\b", out), out[-3000:]  # 2 areas x 2 seasons
    assert files_under(work / "results") == []


BAD_INPUTS = [
    ("aoi-file-missing", {"data": {"source": "stac", "aoi_file": "no/such/areas.geojson"}}, "data.aoi_file",
     "no/such/areas.geojson not found", None),
    ("aoi-file-newline", {"data": {"aoi_file": "areas\n.geojson"}}, "data.aoi_file",
     "expected a file path without control characters", "data"),
    ("weights-path-missing", {"features": {"inception": {"weights": "path", "weights_path": "nowhere/pt_inception.pth"}}},
     "features.inception.weights_path", "weights file 'nowhere/pt_inception.pth' not found", None),
    ("weights-path-control-char", {"features": {"resnet50": {"weights": "path", "weights_path": "w\x00.pth"}}},
     "features.resnet50.weights_path", "expected a file path without control characters", "features"),
]


@pytest.mark.parametrize("cfg, key, expected, cli_section", [r[1:] for r in BAD_INPUTS], ids=[r[0] for r in BAD_INPUTS])
def test_bad_input_path_is_refused(tmp_path, cfg, key, expected, cli_section):
    validation_refuses(tmp_path, cfg, f"key '{key}'", expected)
    if cli_section:
        cli_refuses(tmp_path, cli_section, cfg[cli_section], f"key '{key}'", expected)


# ------------------------------------------------------------------ 3. shell characters in names

PAYLOADS = {
    "semicolon-subshell": f"x; $(touch {MARKER})",
    "backticks": f"x`touch {MARKER}`",
    "quotes-pipe-amp": f"x' \" | touch {MARKER} & ",
    "space": f"x touch {MARKER}",
    "newline": f"x\ntouch {MARKER}",
    "all-at-once": f"x; $(touch {MARKER}) | `touch {MARKER}` & '\" \nx",
}


def name_fields(payload: str) -> dict:
    """Every config value that is a name, set to ``payload`` (a config merged over config.yaml)."""
    area = {"name": "alps", "bbox": [10.0, 46.0, 10.1, 46.1]}
    return {
        "run": {"run": payload},
        "area-name": {"data": {**REAL, "aois": [area, {**area, "name": payload}]}},
        "test-area": {"split": {"test_aois": [payload]}},
        "extractor": {"features": {"extractors": ["inception", "resnet50", payload]}},
        "metrics-extractor": {"metrics": {"resnet_extractor": payload}},
        "extractor-options": {"features": {"extra": {payload: {"weights": "random"}}}},
        "stac-collection": {"data": {"stac": {"collection": payload}}},
        "sentinelhub-profile": {"data": {"sentinelhub": {"profile": payload}}},
    }


NAME_KEYS = {
    "run": "run",
    "area-name": "data.aois[1].name",
    "test-area": "split.test_aois[0]",
    "extractor": "features.extractors[2]",
    "metrics-extractor": "metrics.resnet_extractor",
    "extractor-options": "features.extra",
    "stac-collection": "data.stac.collection",
    "sentinelhub-profile": "data.sentinelhub.profile",
}


@pytest.mark.parametrize("field", list(NAME_KEYS))
@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_every_name_field_refuses_shell_characters(tmp_path, field, payload):
    validation_refuses(tmp_path, name_fields(payload)[field], f"key '{NAME_KEYS[field]}'", "does not match")
    assert_no_marker(tmp_path)


@pytest.mark.parametrize("name", [f"alps; $(touch {MARKER})", "alps\n", "../alps"], ids=["shell", "newline", "path"])
def test_area_names_from_an_aoi_file_are_checked(tmp_path, name):
    areas = tmp_path / "areas.geojson"
    areas.write_text(json.dumps(feature_collection("alps", name)))
    validation_refuses(tmp_path, {"data": {"source": "stac", "aoi_file": str(areas)}}, "key 'data.aoi_file'", repr(name))
    assert_no_marker(tmp_path)


# One row per kind of fault through a real ``snakemake -n`` (the tables above check the messages
# in-process): the message reaches the user, the exit status is non-zero, nothing is written and
# nothing appears outside the workflow's folder.
THROUGH_SNAKEMAKE = [
    ("schema", {"gan": {"n_epochs": "ten"}}, ["key 'gan.n_epochs'", "'ten' is not of type 'integer'", "invalid configuration"]),
    ("cross-section", {"patches": {"size": 4096}}, ["key 'patches.size'", "larger than the scene", "invalid configuration"]),
    ("run-name", {"run": "../../escaped"}, ["key 'run'", "a single folder name", "outputs never leave results/"]),
    ("aoi-file", {"data": {"source": "stac", "aoi_file": "no/such/areas.geojson"}}, ["key 'data.aoi_file'",
     "no/such/areas.geojson not found"]),
    ("shell-characters", name_fields(PAYLOADS["all-at-once"])["area-name"], ["key 'data.aois[1].name'", "does not match"]),
    ("rgb8-other-bands", {"patches": {"bands": ["B08", "B04", "B03"]}}, ["key 'patches.bands'", "with patches.encoding rgb8"]),
    # the spectral ladder raises snow's SWIR in reflectance: refused at DAG build without B11 (docs/metrics.md)
    ("spectral-ladder-without-swir", {"patches": {"encoding": "reflectance", "bands": ["B02", "B03", "B04", "B08"]},
                                      "validity": {"ladders": ["blur", "spectral"]}},
     ["key 'validity.ladders': the spectral ladder", "'B11'", "patches.bands ['B02', 'B03', 'B04', 'B08']"]),
]


@pytest.mark.parametrize("cfg, needles", [r[1:] for r in THROUGH_SNAKEMAKE], ids=[r[0] for r in THROUGH_SNAKEMAKE])
def test_bad_config_stops_snakemake_before_any_job(tmp_path, cfg, needles):
    proc, work = dry_run(tmp_path, cfg)
    assert_refused(proc, *needles)
    assert not (work / "results").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "wf"]
    assert not (tmp_path.parent / "escaped").exists()
    assert_no_marker(tmp_path)


def test_value_with_shell_characters_reaches_the_job_quoted(tmp_path):
    """An input path may hold any character but control ones: a real job gets it quoted."""
    weird = tmp_path / f"areas ;$(touch {MARKER})|&'\"`touch {MARKER}` x.geojson"
    weird.write_text(json.dumps(feature_collection("alps")))
    cfg = {
        "run": "quoted",
        "data": {"aoi_file": str(weird), "simulator": {"n_aois": 2, "size": 64}},
        "patches": {"size": 32, "stride": 32},
        "split": {"test_aois": ["sim01"]},
    }
    work = copy_workflow(tmp_path / "wf")
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/quoted/scenes/sim00/snowfree.tif"
    proc = snakemake(work, target, "-n", "--configfile", str(tmp_path / "ok.yaml"), check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = snakemake(work, target, "--configfile", str(tmp_path / "ok.yaml"), check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (work / target).stat().st_size > 0
    prov = json.loads((work / (target + ".prov.json")).read_text())
    assert str(weird) in strings_in(prov), "the job did not get the path intact"
    assert_no_marker(tmp_path)
    assert not (work / MARKER).exists() and not (tmp_path / MARKER).exists()


# every placeholder a shell: command may hold unquoted: numbers and pre-quoted option strings
UNQUOTED_OK = {
    "threads",  # an integer
    "wildcards.n",  # constrained to [1-68] in common.smk
    "params.truth",  # truth_option(): built with shlex.quote
    "params.landcover",  # landcover_option(): built with shlex.quote
    "params.inputs",  # figure_options(): built with shlex.quote
    "params.options",  # synthesize_options(): built with shlex.quote
    "params.weights",  # weights_option(): built with shlex.quote
    "params.simcover",  # simcover_option(): built with shlex.quote
    "params.validity",  # report_validity_option(): built with shlex.quote
    "params.change",  # comparison_change_option(): built with shlex.quote
    "params.spectral",  # spectral_option(): built with shlex.quote
    "params.rgb_view",  # RGB_VIEW: two numbers of the validated patches section, or empty
    "params.view",  # validity_view(): the mask section built with shlex.quote and RGB_VIEW, or empty
}


def shell_placeholders():
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "shell:":
                continue
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                for m in re.finditer(r"(?<!\{)\{([^{}]+)\}(?!\})", lines[j]):
                    yield smk.name, j + 1, m.group(1)
                j += 1


def test_every_shell_value_is_quoted():
    found = list(shell_placeholders())
    assert len(found) > 40, found  # the audit sees every rule's command
    unquoted = [f"{f}:{n}: {{{p}}}" for f, n, p in found if not p.endswith(":q") and p not in UNQUOTED_OK]
    assert unquoted == [], "unquoted values in shell: commands:\n" + "\n".join(unquoted)


# ------------------------------------------------------------------ 4. extractors come from entry points, never from modules the config names


@pytest.fixture
def plugin_path(tmp_path) -> Path:
    """A folder for PYTHONPATH holding a real installed distribution with 'deepsnow.extractors' entry points,
    and a module 'evilmod' that leaves a marker file when imported."""
    site = install_tinyplug(
        tmp_path / "site",
        {
            "tinyplug": "tinyplug:build",
            "resnet50": "evilmod:build",  # a plugin cannot take over a built-in name
            "brokenplug": "no_such_module:build",
        },
    )
    (site / "evilmod.py").write_text(
        f"from pathlib import Path\nPath({str(tmp_path / MARKER)!r}).write_text('imported')\n"
        "def build(options, seed):\n    raise SystemExit('evil builder ran')\n"
    )
    return site


def plugin_env(site: Path) -> dict:
    env = env_with_venv()
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def run_cli(env: dict, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deepsnow.cli", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def images(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    save_npz(path, rgb=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), ids=np.array([f"p{i}" for i in range(4)]))
    return path


def test_entry_point_extractor_runs_through_the_cli(tmp_path, plugin_path, images):
    env = plugin_env(plugin_path)
    params = {"extractors": ["tinyplug"], "progress": False}
    p = run_cli(env, "embed", "--params", json.dumps(params), "--images", images, "--output", tmp_path / "f_{extractor}.npz")
    assert p.returncode == 0, p.stderr[-3000:]
    out = load_npz(tmp_path / "f_tinyplug.npz")
    rgb = load_npz(images)["rgb"]
    np.testing.assert_allclose(out["features"], rgb.reshape(4, -1, 3).mean(1) / 255, rtol=1e-5)
    assert str(out["extractor"]) == "tinyplug"
    assert not (tmp_path / MARKER).exists()


def test_entry_point_extractor_is_known_to_the_workflow(tmp_path, plugin_path):
    cfg = {"features": {"extractors": ["inception", "resnet50", "tinyplug"], "extra": {"tinyplug": {"weights": "random"}}},
           "metrics": {"resnet_extractor": "tinyplug"}}
    proc, work = dry_run(tmp_path, cfg, env=plugin_env(plugin_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "features/real_tinyplug.npz" in out and "features/epoch_001_tinyplug.npz" in out
    assert not (tmp_path / MARKER).exists()  # naming tinyplug imports nothing while the DAG is built
    # the same config where the plugin is not installed (this process)
    validation_refuses(tmp_path, cfg, "key 'features.extractors[2]'", "unknown extractor 'tinyplug'",
                       "known: inception, resnet50", "entry-point group 'deepsnow.extractors'")


def test_unknown_extractor_name_is_refused_and_nothing_is_imported(tmp_path, plugin_path, images, monkeypatch):
    env = plugin_env(plugin_path)
    # 'evilmod' is an importable module on the path, but not an extractor name: it must not be imported
    for args in (["--extractor", "evilmod"], ["--params", json.dumps({"extractors": ["evilmod"]})]):
        p = run_cli(env, "embed", *args, "--images", images, "--output", tmp_path / "f_{extractor}.npz")
        assert p.returncode == 2, p.stderr[-3000:]
        assert "unknown" in p.stderr and "'evilmod'" in p.stderr and "brokenplug, inception, resnet50, simcover, tinyplug" in p.stderr, p.stderr
    # the workflow's validation, with the plugins on this process's path
    monkeypatch.syspath_prepend(str(plugin_path))
    validation_refuses(tmp_path, {"features": {"extractors": ["inception", "resnet50", "evilmod"]}},
                       "key 'features.extractors[2]'", "unknown extractor 'evilmod'")
    assert not list(tmp_path.glob("f_*"))
    assert not (tmp_path / MARKER).exists()


def test_old_plugins_key_is_refused_pointing_to_entry_points(tmp_path, plugin_path, images, monkeypatch):
    env = plugin_env(plugin_path)
    cfg = {"features": {"plugins": ["evilmod"]}}
    monkeypatch.syspath_prepend(str(plugin_path))  # evilmod importable here too: validation must not import it
    validation_refuses(tmp_path, cfg, "key 'features.plugins' was removed", "entry-point group 'deepsnow.extractors'")
    p = run_cli(env, "embed", "--params", json.dumps(cfg["features"]), "--extractor", "resnet50", "--images", images,
                "--output", tmp_path / "f_{extractor}.npz")
    assert p.returncode == 2 and "key 'features.plugins' was removed" in p.stderr, p.stderr[-3000:]
    assert not (tmp_path / MARKER).exists()


def test_builtin_name_cannot_be_taken_over_by_an_entry_point(tmp_path, plugin_path, images):
    params = {"resnet50": {"weights": "random", "size": 32}, "progress": False}
    p = run_cli(plugin_env(plugin_path), "embed", "--params", json.dumps(params), "--extractor", "resnet50",
                "--images", images, "--output", tmp_path / "f_{extractor}.npz")
    assert p.returncode == 0, p.stderr[-3000:]
    out = load_npz(tmp_path / "f_resnet50.npz")
    assert out["features"].shape == (4, 2048) and str(out["weights"]) == "random-seed0"
    assert not (tmp_path / MARKER).exists()


def test_entry_point_that_fails_to_load_is_named(tmp_path, plugin_path, images):
    p = run_cli(plugin_env(plugin_path), "embed", "--extractor", "brokenplug", "--images", images,
                "--output", tmp_path / "f_{extractor}.npz")
    assert p.returncode == 2
    assert "entry point 'brokenplug = no_such_module:build' of tinyplug" in p.stderr and "failed to load" in p.stderr, p.stderr
    assert not list(tmp_path.glob("f_*"))


def test_entry_point_detector_is_known_to_the_workflow(tmp_path):
    """change.detectors names an installed 'deepsnow.detectors' entry point: the DAG builds; where the
    package is not installed, or for a module that is no detector, validation refuses the name."""
    site = install_tinydetector(tmp_path / "site")
    (site / "evilmod.py").write_text(f"from pathlib import Path\nPath({str(tmp_path / MARKER)!r}).write_text('imported')\n")
    builtins = ["rx_difference", "chronochrome", "covariance_equalization", "hyperbolic_acd"]
    proc, _ = dry_run(tmp_path, {"change": {"detectors": builtins + ["absdiff"]}}, env=plugin_env(site))
    assert proc.returncode == 0 and "change_summary" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]
    validation_refuses(tmp_path, {"change": {"detectors": builtins + ["absdiff"]}}, "key 'change.detectors[4]'",
                       "unknown change detector 'absdiff'", "known: chronochrome, covariance_equalization, "
                       "hyperbolic_acd, rx_difference", "entry-point group 'deepsnow.detectors'")
    proc, _ = dry_run(tmp_path / "evil", {"change": {"detectors": ["evilmod"]}}, env=plugin_env(site))
    assert_refused(proc, "key 'change.detectors[0]'", "unknown change detector 'evilmod'", "known: absdiff, badshape")
    assert not (tmp_path / MARKER).exists()


def test_simcover_on_downloaded_data_needs_a_weights_file(tmp_path):
    """The demo's extractors on Sentinel data: simcover has no labels to learn there."""
    stac = {"data": {"source": "stac", "aois": [{"name": "alps", "bbox": [10.0, 46.0, 10.1, 46.1]}]},
            "split": {"test_aois": []}}
    validation_refuses(tmp_path, stac, "key 'features.extractors': simcover on data.source 'stac' needs "
                       "features.simcover.weights_path", "land-cover labels")
    missing = {**stac, "features": {"simcover": {"weights_path": "no/such/simcover.pt"}}}
    (tmp_path / "b").mkdir()
    validation_refuses(tmp_path / "b", missing, "key 'features.simcover.weights_path'", "'no/such/simcover.pt' not found")
