# Shared helpers: config validation, paths, per-rule params. No rules here.

import json
import os
import shlex

from deepsnow.config import aoi_names, validate_config
from deepsnow.provenance import code_hash
from deepsnow.stages import STAGE_CODE

# Fills schema defaults and stops before any job with a message naming the key.
validate_config(config)

RUN = config["run"]
AOIS = aoi_names(config)
SEASONS = ["snowfree", "snow"]
SIMULATED = config["data"]["source"] == "simulator"


wildcard_constraints:
    aoi="[A-Za-z0-9][A-Za-z0-9_-]*",
    season="snowfree|snow",


def R(path):
    """A path under this run's results folder."""
    return f"results/{RUN}/{path}"


def section(name):
    """One config section as key-sorted JSON: the only config a rule sees."""
    return json.dumps(config[name], sort_keys=True)


def code(stage):
    """Hash of the package code a stage runs, so code changes rerun exactly that stage."""
    return code_hash(*STAGE_CODE[stage])


def patch_inputs(wildcards):
    inputs = {
        "scene": R(f"scenes/{wildcards.aoi}/{wildcards.season}.tif"),
        "mask": R(f"masks/{wildcards.aoi}/{wildcards.season}.tif"),
    }
    if SIMULATED and wildcards.season == "snowfree":
        inputs["truth"] = R(f"truth/{wildcards.aoi}/snow.tif")
    return inputs


def truth_option(wildcards, input):
    return f"--truth {shlex.quote(input.truth)}" if "truth" in input.keys() else ""


def output_dir(wildcards, output):
    return os.path.dirname(output[0])


DATASET = [R(f"dataset/{name}.npz") for name in ("trainA", "trainB", "testA", "testB")]


def final_outputs():
    return DATASET + [R("dataset/summary.json")]
