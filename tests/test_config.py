"""Config validation: defaults filled, every bad key named, impossible values refused.

Snakemake stopping on a bad config before any job: tests/test_faults_config.py (THROUGH_SNAKEMAKE).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepsnow import DeepsnowError
from deepsnow.config import merge_config, parse_params, validate_config, validate_section
from helpers import REPO


def demo_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_demo_config_validates_and_fills_defaults():
    cfg = validate_config(demo_config())
    assert cfg["data"]["source"] == "simulator"
    # defaults filled for keys the demo does not write
    assert cfg["data"]["resolution"] == 10
    assert cfg["gan"]["lambda_cycle"] == 10.0
    assert cfg["gan"]["pool_size"] == 50


def test_empty_config_takes_defaults():
    cfg = validate_config({})
    assert cfg["run"] == "demo"
    assert cfg["patches"]["size"] == 64
    assert cfg["mask"]["cloud_classes"] == [3, 8, 9, 10]


@pytest.mark.parametrize(
    "patch, key, words",
    [
        ({"patches": {"sise": 64}}, "patches", "sise"),
        ({"bogus": 1}, "<top level>", "bogus"),
        ({"patches": {"size": "big"}}, "patches.size", "not of type 'integer'"),
        ({"data": {"source": "planet"}}, "data.source", "is not one of"),
        ({"gan": {"n_epochs": -1}}, "gan.n_epochs", "minimum"),
        ({"patches": {"size": 512}}, "patches.size", "larger than the scene"),
        ({"gan": {"crop_size": 30}}, "gan.crop_size", "multiple of 4"),
        ({"data": {"simulator": {"n_aois": 1}}}, "data.simulator.n_aois", "minimum"),
        ({"patches": {"snowfree_max": 0.6, "snowy_min": 0.5}}, "patches.snowfree_max", "below"),
        ({"mask": {"cloud_classes": [8, 11]}}, "mask.cloud_classes", "never counted as cloud"),
        ({"split": {"test_aois": ["nowhere"]}}, "split.test_aois", "not areas"),
        ({"data": {"source": "stac"}}, "data.aois", "at least one area"),
        ({"run": "a b;rm -rf"}, "run", "does not match"),
        ({"metrics": {"prdc_k": 0}}, "metrics.prdc_k", "minimum"),
        ({"tracking": {"enabled": True}, "metrics": {"paired": False}}, "tracking.enabled", "metrics.paired"),
        ({"tracking": {"enabled": True}, "gan": {"n_epochs": 1, "n_epochs_decay": 1}}, "tracking.enabled", "at least 3 saved epochs"),
    ],
)
def test_bad_values_name_the_key(patch, key, words):
    with pytest.raises(DeepsnowError) as err:
        validate_config(merge_config(demo_config(), patch))
    msg = str(err.value)
    assert f"'{key}'" in msg, msg
    assert words in msg, msg


def test_section_validation_and_params_parsing(tmp_path: Path):
    assert validate_section("mask", {})["ndsi_min"] == 0.4
    assert parse_params('{"size": 32}', "patches")["size"] == 32
    f = tmp_path / "c.yaml"
    f.write_text("patches:\n  size: 48\nmask: {}\n")
    assert parse_params(f"@{f}", "patches")["size"] == 48
    with pytest.raises(DeepsnowError, match="patches.size"):
        parse_params('{"size": -3}', "patches")
    with pytest.raises(DeepsnowError, match="not valid JSON"):
        parse_params("{size: ", "patches")
    with pytest.raises(DeepsnowError, match="not found"):
        parse_params(f"@{tmp_path / 'missing.yaml'}", "patches")


def test_reference_config_validates_and_its_dry_run_builds_the_dag(tmp_path: Path):
    """configs/reference.yaml: a run whose quality changes over 16 saved epochs, with metrics/tracking.csv."""
    from helpers import copy_workflow, merged_config, snakemake
    from test_workflow import job_counts

    cfg = validate_config(merged_config("configs/reference.yaml"))
    assert cfg["tracking"]["enabled"] and cfg["gan"]["upsample"] == "resize_conv"
    assert cfg["data"]["simulator"]["snow_line_m"] < 360  # below the simulator's lowest point
    work = copy_workflow(tmp_path / "wf")
    counts = job_counts(snakemake(work, "-n", "--configfile", "configs/reference.yaml").stdout)
    assert counts["train"] == 1 and counts["metrics_epoch"] == 16 and counts["metric_tracking"] == 1
    assert counts["metric_ranking"] == 1 and counts["metric_validity"] == 1
