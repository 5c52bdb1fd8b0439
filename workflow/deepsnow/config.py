"""Configuration: the JSON schema in ``workflow/schemas/config.schema.yaml``.

The Snakefile validates the whole config once (filling defaults) before any
job runs; each rule then hands its own section to the ``deepsnow`` command,
which validates that section again against the same schema, so the command
behaves the same with or without Snakemake.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml

from deepsnow import DeepsnowError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _key(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def _validate(instance, schema, prefix: str = "", source: str = "config") -> None:
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            key = _key(list(err.absolute_path))
            if prefix:
                key = prefix if key == "<top level>" else f"{prefix}.{key}"
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                lines.append(f"{source} key '{key}': {err.message}; allowed keys: {', '.join(allowed)}")
            else:
                lines.append(f"{source} key '{key}': {err.message}")
        raise DeepsnowError("invalid configuration:\n  " + "\n  ".join(lines))


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate a whole config in place (filling defaults), then cross-check values."""
    if not isinstance(config, dict):
        raise DeepsnowError(f"{source}: expected a mapping of sections, got {type(config).__name__}")
    _validate(config, load_schema(), source=source)
    check_consistency(config, source=source)
    return config


def validate_section(name: str, section: dict | None, source: str = "--params") -> dict:
    """Validate one section (filling defaults) against its part of the schema."""
    schema = load_schema()
    if name not in schema["properties"]:
        raise DeepsnowError(f"unknown config section {name!r}")
    section = copy.deepcopy(section) if section is not None else {}
    _validate(section, schema["properties"][name], prefix=name, source=source)
    return section


def parse_params(text: str | None, name: str) -> dict:
    """Parse a ``--params`` value: inline JSON, or ``@file`` holding YAML/JSON.

    A file may hold the section itself or a whole config with that section.
    """
    if text is None:
        data = {}
        source = "--params"
    elif text.startswith("@"):
        path = Path(text[1:])
        source = str(path)
        if not path.exists():
            raise DeepsnowError(f"--params file {path} not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DeepsnowError(f"{path}: not valid YAML/JSON ({exc})") from exc
        if isinstance(data, dict) and name in data and isinstance(data[name], dict):
            data = data[name]
    else:
        source = "--params"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DeepsnowError(f"--params: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DeepsnowError(f"{source}: section {name!r} must be a mapping, got {type(data).__name__}")
    return validate_section(name, data, source=source)


def check_consistency(config: dict, source: str = "config") -> None:
    """Checks the schema cannot express: values that are impossible together."""
    problems = []
    data = config["data"]
    sim = data["simulator"]
    problems += _check_download_keys(data)
    patches = config["patches"]
    if data["source"] == "simulator":
        if patches["size"] > sim["size"]:
            problems.append(
                f"key 'patches.size': {patches['size']} px is larger than the scene "
                f"(data.simulator.size = {sim['size']} px)"
            )
    elif not data["aois"]:
        problems.append(f"key 'data.aois': source {data['source']!r} needs at least one area of interest")
    names = [a["name"] for a in data["aois"]]
    if len(set(names)) != len(names):
        problems.append(f"key 'data.aois': area names must be unique, got {names}")
    for i, aoi in enumerate(data["aois"]):
        x0, y0, x1, y1 = aoi["bbox"]
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            problems.append(f"key 'data.aois[{i}].bbox': expected min_lon < max_lon and min_lat < max_lat in degrees, got {aoi['bbox']}")
    if patches["snowfree_max"] >= patches["snowy_min"]:
        problems.append(
            f"key 'patches.snowfree_max': {patches['snowfree_max']} must be below patches.snowy_min ({patches['snowy_min']})"
        )
    if 11 in config["mask"]["cloud_classes"]:
        problems.append("key 'mask.cloud_classes': SCL class 11 is snow/ice and is never counted as cloud")
    gan = config.get("gan")
    if gan:
        if gan["crop_size"] > gan["load_size"]:
            problems.append(f"key 'gan.crop_size': {gan['crop_size']} is larger than gan.load_size ({gan['load_size']})")
        if gan["n_epochs"] + gan["n_epochs_decay"] < 1:
            problems.append("key 'gan.n_epochs': n_epochs + n_epochs_decay must be at least 1")
    feats, metrics = config.get("features"), config.get("metrics")
    if feats and metrics:
        for key in ("inception_extractor", "resnet_extractor"):
            if metrics[key] not in feats["extractors"]:
                problems.append(
                    f"key 'metrics.{key}': {metrics[key]!r} is not one of features.extractors {feats['extractors']}"
                )
    all_aois = names if data["source"] != "simulator" else simulated_aoi_names(sim["n_aois"])
    unknown = [a for a in config["split"]["test_aois"] if a not in all_aois]
    if unknown:
        problems.append(f"key 'split.test_aois': {unknown} are not areas of this run ({all_aois})")
    elif config["split"]["test_aois"] and len(set(config["split"]["test_aois"])) >= len(all_aois):
        problems.append("key 'split.test_aois': at least one area must remain for training")
    if problems:
        raise DeepsnowError(f"invalid configuration ({source}):\n  " + "\n  ".join(problems))


def _check_download_keys(data: dict) -> list[str]:
    """Checks of the real sources' keys (aoi_file, seasons).

    The areas of ``data.aoi_file`` are added to ``data.aois`` here (idempotent),
    so that area names, the split and every rule see them.
    """
    from deepsnow.data.download.common import check_window, merge_aoi_file

    problems = []
    if data.get("aoi_file"):
        try:
            data["aois"] = merge_aoi_file(data)
        except DeepsnowError as exc:
            problems.append(str(exc))
        else:
            item_schema = load_schema()["properties"]["data"]["properties"]["aois"]["items"]
            for a in data["aois"]:
                errors = sorted(_Validator(item_schema).iter_errors(a), key=lambda e: list(e.absolute_path))
                for err in errors:
                    problems.append(f"key 'data.aoi_file': area {a.get('name')!r}: {err.message}")
    for season, window in (data.get("seasons") or {}).items():
        problems += check_window(window, f"data.seasons.{season}")
    for i, aoi in enumerate(data["aois"]):
        for season, window in (aoi.get("seasons") or {}).items():
            problems += check_window(window, f"data.aois[{i}].seasons.{season}")
    return problems


def simulated_aoi_names(n: int) -> list[str]:
    return [f"sim{i:02d}" for i in range(n)]


def aoi_names(config: dict) -> list[str]:
    data = config["data"]
    if data["source"] == "simulator":
        return simulated_aoi_names(data["simulator"]["n_aois"])
    return [a["name"] for a in data["aois"]]
