"""Sweeps (issue #17): expansion of ``sweep:`` into variants, names, groups, bad input (in-process)."""

from __future__ import annotations

import pytest

from conftest import merge_config, merged_config

from deepsnow import DeepsnowError
from deepsnow.config import validate_config, variants_of
from deepsnow.sweep import group_of, variant_name


def config_with(sweep, **top) -> dict:
    cfg = merged_config("configs/test.yaml")
    return merge_config(cfg, {"sweep": sweep, **top})


def test_two_by_two_sweep_expands_to_four_validated_variants_in_order():
    cfg = validate_config(config_with({"gan.seed": [0, 1], "gan.upsample": ["transpose", "resize_conv"]}))
    variants = variants_of(cfg)
    assert list(variants) == ["seed0-transpose", "seed0-resize_conv", "seed1-transpose", "seed1-resize_conv"]
    v = variants["seed1-resize_conv"]
    assert v["values"] == {"gan.seed": 1, "gan.upsample": "resize_conv"}
    assert v["group"] == "resize_conv"
    assert v["config"]["gan"]["seed"] == 1 and v["config"]["gan"]["upsample"] == "resize_conv"
    assert "sweep" not in v["config"]
    # every other key is the base config's (defaults filled)
    assert v["config"]["data"] == cfg["data"] and v["config"]["gan"]["ngf"] == cfg["gan"]["ngf"]


def test_without_sweep_there_are_no_variants():
    assert variants_of(validate_config(merged_config("configs/test.yaml"))) == {}


def test_names_and_groups_follow_the_documented_rule():
    assert variant_name({"gan.seed": 3, "gan.lr": 0.0002}) == "seed3-lr0.0002"
    assert variant_name({"gan.upsample": "resize_conv", "metrics.paired": False}) == "resize_conv-pairedfalse"
    assert variant_name({"features.extractors": ["inception", "resnet50"]}) == "inception+resnet50"
    assert group_of({"gan.seed": 2}) == "all"
    assert group_of({"gan.seed": 2, "gan.lr": 0.001}) == "lr0.001"


@pytest.mark.parametrize(
    "sweep, top, words",
    [
        ({"data.simulator.seed": [1, 2]}, {}, ["sweep.data.simulator.seed", "shared by every variant"]),
        ({"patches.size": [32, 64]}, {}, ["sweep.patches.size", "cannot be swept"]),
        ({"gan.nope": [1, 2]}, {}, ["sweep.gan.nope", "no such config key"]),
        ({"gan": [1, 2]}, {}, ["sweep.gan", "no such config key"]),
        ({"gan.seed": []}, {}, ["sweep.gan.seed", "non-empty list"]),
        ({"gan.seed": 3}, {}, ["sweep.gan.seed", "non-empty list"]),
        ({"gan.seed": [0, "one"]}, {}, ["gan.seed", "'one' is not of type 'integer'", "sweep variant gan.seed = \"one\""]),
        ({"gan.upsample": ["transpose", "bilinear"]}, {}, ["gan.upsample", "bilinear"]),
        ({"gan.seed": [0, 1, 2], "gan.lr": [0.1, 0.2]}, {"sweep_max": 5}, ["key 'sweep'", "6 variants", "sweep_max = 5"]),
        ({"gan.seed": [0, 0]}, {}, ["both get the name 'seed0'", "gan.seed"]),
        ({"gan.upsample": ["a b", "a/b"]}, {}, ["both get the name 'a_b'", "gan.upsample"]),
        ([1, 2], {}, ["sweep"]),
    ],
)
def test_bad_sweeps_are_refused_naming_the_key(sweep, top, words):
    with pytest.raises(DeepsnowError) as err:
        validate_config(config_with(sweep, **top))
    for word in words:
        assert word in str(err.value)


def test_a_variant_failing_a_cross_section_check_is_refused_before_any_job():
    # crop_size above load_size only in one variant
    with pytest.raises(DeepsnowError, match=r"(?s)sweep variant gan.crop_size = 64.*gan.crop_size.: 64 is larger"):
        validate_config(config_with({"gan.crop_size": [32, 64]}))
