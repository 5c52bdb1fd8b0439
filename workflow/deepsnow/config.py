"""Configuration: the JSON schema in ``workflow/schemas/config.schema.yaml``.

Validated once, at each boundary: the Snakefile validates the whole config
(filling defaults) before any job runs, and a ``deepsnow`` command its
``--params`` section (the same schema and the same section checker), so a command
behaves the same with or without Snakemake. Stage code trusts the params it is
given. Validation never rewrites the config beyond filling schema defaults.

Checks the schema cannot express come in two kinds: one checker per section
(:data:`SECTION_CHECKS`, seeing only that section) and the few that need two
sections (:data:`CONFIG_CHECKS`, whole config only).

Messages name the key path (``gan.n_epochs``, ``data.aois[0].bbox``), the value
and what was expected (the schema's ``x-expected`` words for a pattern). Integers
must be written as integers (64, not 64.0), and patterns match the whole value
(a trailing newline does not slip through Python's ``$``). Extractor names are
checked against the built-in ones and the installed ``deepsnow.extractors``
entry points without importing anything.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from pathlib import Path

import jsonschema
import yaml

from deepsnow import DeepsnowError
from deepsnow.areas import aoi_names, areas_of, check_window
from deepsnow.sweep import expand

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def merge_config(config: dict, over: dict) -> dict:
    """Merge ``over`` into ``config`` in place as ``snakemake --configfile`` does: mappings recursively,
    anything else (lists too) replaced."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            merge_config(config[key], value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def load_schema() -> dict:
    """The config schema: a fresh copy each call (validation fills configs with its default objects)."""
    return copy.deepcopy(_parsed_schema())


@functools.cache
def _parsed_schema() -> dict:
    # parsed once per process: PyYAML takes ~0.3 s (1 s on a loaded machine) per parse, and a sweep
    # validates every variant (twice per DAG build)
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


def _strict_types(validator_class):
    """Draft 2020-12 counts 3.0 as an integer; a config integer must be written as one (64, not 64.0)."""

    def is_integer(checker, instance):
        return isinstance(instance, int) and not isinstance(instance, bool)

    def pattern(validator, patrn, instance, schema):
        # Python's '$' also matches before a final newline ('demo\n' would pass '^[a-z]+$'):
        # anchor at the very end, as an ECMA-262 (JSON schema) regex does.
        if not validator.is_type(instance, "string"):
            return
        anchored = patrn[:-1] + r"\Z" if patrn.endswith("$") and not patrn.endswith("\\$") else patrn
        if not re.search(anchored, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    return jsonschema.validators.extend(
        validator_class,
        {"pattern": pattern},
        type_checker=validator_class.TYPE_CHECKER.redefine("integer", is_integer),
    )


_Validator = _with_defaults(_strict_types(jsonschema.Draft202012Validator))

#: Keys that existed once, and what to do instead (an old config gets this, not just "unknown key").
REMOVED_KEYS = {
    "features.plugins": (
        "removed: the config no longer names Python modules to import. Install the package that "
        "provides the extractor; it registers it under the Python entry-point group "
        "'deepsnow.extractors' (in its pyproject.toml: [project.entry-points.\"deepsnow.extractors\"] "
        "my_extractor = \"my_package.module:build\"), and list only its name in features.extractors"
    ),
}


def _key(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def _join(key: str, name) -> str:
    if isinstance(name, int):
        return f"{key}[{name}]"
    return str(name) if key == "<top level>" else f"{key}.{name}"


def _error_lines(err, key: str, source: str) -> list[str]:
    """One or more readable lines for one schema error at ``key``: the key path, the value, what was expected."""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        lines = []
        for extra in sorted((k for k in err.instance if k not in allowed), key=str):
            path = _join(key, extra)
            if path in REMOVED_KEYS:
                lines.append(f"{source} key '{key}': key '{path}' was {REMOVED_KEYS[path]}")
                continue
            close = difflib.get_close_matches(str(extra), allowed, n=1)
            hint = f" (did you mean '{_join(key, close[0])}'?)" if close else ""
            lines.append(f"{source} key '{key}': unknown key '{path}'{hint}; allowed keys: {', '.join(allowed)}")
        return lines
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        return [f"{source} key '{_join(key, m)}': a required value is missing" + _expected(err.schema, m) for m in missing]
    message = err.message
    expected = err.schema.get("x-expected") if isinstance(err.schema, dict) else None
    if err.validator == "pattern" and expected:
        message += f" (expected {' '.join(str(expected).split())})"
    return [f"{source} key '{key}': {message}"]


def _expected(schema: dict, name: str) -> str:
    sub = (schema.get("properties") or {}).get(name) or {}
    what = sub.get("description") or sub.get("type")
    return f" (expected {' '.join(str(what).split())})" if what else ""


def _validate(instance, schema, prefix: str = "", source: str = "config") -> None:
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = []
        for err in errors:
            key = _key(list(err.absolute_path))
            if prefix:
                key = prefix if key == "<top level>" else f"{prefix}.{key}"
            lines += _error_lines(err, key, source)
        raise DeepsnowError("invalid configuration:\n  " + "\n  ".join(lines))


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate a whole config in place (filling defaults), then run every section's checker
    and the cross-section ones. Nothing else is changed: what the checks derive (the areas of
    ``data.aoi_file``, say) is derived again where it is used (:func:`deepsnow.areas.areas_of`)."""
    if not isinstance(config, dict):
        raise DeepsnowError(f"{source}: expected a mapping of sections, got {type(config).__name__}")
    _validate(config, load_schema(), source=source)
    problems = []
    for name, check in SECTION_CHECKS.items():
        if config.get(name) is not None:
            problems += check(config[name])
    for check in CONFIG_CHECKS:
        problems += check(config)
    _raise_problems(problems, source)
    if config.get("sweep") is not None:
        variants_of(config)  # every variant validated too, before any job
    return config


def variants_of(config: dict) -> dict[str, dict]:
    """The variants of a validated config's ``sweep`` (deepsnow.sweep.expand), each validated; {} without."""
    base_model = (config.get("gan") or {}).get("model", "cyclegan")
    swept = set(config.get("sweep") or {})

    def validate_variant(variant: dict, source: str) -> dict:
        return validate_config(_without_base_model_defaults(variant, base_model, swept), source)

    return expand(config, load_schema(), validate_variant)


def _without_base_model_defaults(variant: dict, base_model: str, swept: set) -> dict:
    """A variant whose ``gan.model`` differs from the base config's, without the model options the base
    validation filled (those equal to the base model's defaults, and not swept), so that validation
    fills the variant model's own: a sweep of ``gan.model`` gets each model's defaults. An option the
    base config sets to another value stays (and is refused with the other model family)."""
    gan = variant.get("gan") or {}
    model = gan.get("model", "cyclegan")
    if model == base_model:
        return variant
    base_defaults = validate_section("gan", {"model": base_model})
    for key in (k for options in MODEL_OPTIONS.values() for k in options):
        if key in gan and key in base_defaults and gan[key] == base_defaults[key] and f"gan.{key}" not in swept:
            del gan[key]
    return variant


def validate_section(name: str, section: dict | None, source: str = "--params") -> dict:
    """Validate one section (filling defaults) against its part of the schema and its checker;
    returns a validated copy."""
    schema = load_schema()
    if name not in schema["properties"]:
        raise DeepsnowError(f"unknown config section {name!r}")
    section = copy.deepcopy(section) if section is not None else {}
    _validate(section, schema["properties"][name], prefix=name, source=source)
    if name in SECTION_CHECKS:
        _raise_problems(SECTION_CHECKS[name](section), source)
    return section


def _raise_problems(problems: list[str], source: str) -> None:
    if problems:
        raise DeepsnowError(f"invalid configuration ({source}):\n  " + "\n  ".join(problems))


def _extractor_hint() -> str:
    from deepsnow.features.registry import ENTRY_POINT_GROUP, known_extractor_names

    return (
        f"known: {', '.join(known_extractor_names())}; installed packages add more through the entry-point "
        f"group {ENTRY_POINT_GROUP!r}"
    )


def _check_extractor_names(features: dict) -> list[str]:
    """Extractor names exist: built in or an installed 'deepsnow.extractors' entry point (none is imported)."""
    from deepsnow.features.registry import known_extractor_names

    known = known_extractor_names()
    problems = [
        f"key 'features.extractors[{i}]': unknown extractor {name!r} ({_extractor_hint()})"
        for i, name in enumerate(features.get("extractors") or [])
        if name not in known
    ]
    problems += [
        f"key 'features.extra.{name}': options of an unknown extractor {name!r} ({_extractor_hint()})"
        for name in features.get("extra") or {}
        if name not in known
    ]
    return problems


def _check_detector_names(change: dict) -> list[str]:
    """Detector names exist: built in or an installed 'deepsnow.detectors' entry point (none is imported)."""
    from deepsnow.change.registry import detector_hint, known_detector_names

    known = known_detector_names()
    return [
        f"key 'change.detectors[{i}]': unknown change detector {name!r} ({detector_hint()})"
        for i, name in enumerate(change.get("detectors") or [])
        if name not in known
    ]


def _check_weights_files(config: dict) -> list[str]:
    """``weights: path`` has its file. Whole config only: a lone command may run where the workflow's
    relative weights paths do not resolve."""
    from deepsnow.features.registry import BUILTIN_EXTRACTORS

    features = config.get("features")
    problems = []
    for name in (features or {}).get("extractors") or []:
        builtin = name in BUILTIN_EXTRACTORS
        options = features.get(name) if builtin else (features.get("extra") or {}).get(name)
        key = f"features.{name}" if builtin else f"features.extra.{name}"
        if not options or options.get("weights") != "path":
            continue
        path = options.get("weights_path") or ""
        if not path:
            problems.append(f"key '{key}.weights_path': weights: path needs a weights file, got none")
        elif not Path(path).is_file():
            problems.append(f"key '{key}.weights_path': weights file {path!r} not found (absolute, or relative to {Path.cwd()})")
    return problems


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


# --- checks the schema cannot express: one checker per section (it sees only that section, so the
# CLI's --params runs it too), then the checks that need two sections (whole config only).


def _check_data(data: dict) -> list[str]:
    problems, areas = [], data["aois"]
    if data.get("aoi_file"):
        try:
            areas = areas_of(data)
        except DeepsnowError as exc:
            problems.append(str(exc))
        else:
            problems += _check_aoi_file_areas(areas)
    if data["source"] != "simulator" and not areas:
        problems.append(f"key 'data.aois': source {data['source']!r} needs at least one area of interest")
    names = [a["name"] for a in areas]
    if len(set(names)) != len(names):
        problems.append(f"key 'data.aois': area names must be unique, got {names}")
    for i, aoi in enumerate(areas):
        x0, y0, x1, y1 = aoi["bbox"]
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            problems.append(f"key 'data.aois[{i}].bbox': expected min_lon < max_lon and min_lat < max_lat in degrees, got {aoi['bbox']}")
    for season, window in (data.get("seasons") or {}).items():
        problems += check_window(window, f"data.seasons.{season}")
    for i, aoi in enumerate(areas):
        for season, window in (aoi.get("seasons") or {}).items():
            problems += check_window(window, f"data.aois[{i}].seasons.{season}")
    return problems


def _check_aoi_file_areas(areas: list[dict]) -> list[str]:
    """Areas read from ``data.aoi_file`` meet the schema of a ``data.aois`` entry."""
    item_schema = load_schema()["properties"]["data"]["properties"]["aois"]["items"]
    problems = []
    for a in areas:
        for err in sorted(_Validator(item_schema).iter_errors(copy.deepcopy(a)), key=lambda e: list(e.absolute_path)):
            problems.append(f"key 'data.aoi_file': area {a.get('name')!r}: {err.message}")
    return problems


def _check_mask(mask: dict) -> list[str]:
    if 11 in mask["cloud_classes"]:
        return ["key 'mask.cloud_classes': SCL class 11 is snow/ice and is never counted as cloud"]
    return []


def _check_patches(patches: dict) -> list[str]:
    from deepsnow.data.bands import check_bands

    if patches["snowfree_max"] >= patches["snowy_min"]:
        return [f"key 'patches.snowfree_max': {patches['snowfree_max']} must be below patches.snowy_min ({patches['snowy_min']})"]
    return check_bands(patches["bands"], patches["encoding"])


#: Options of one model only (their defaults are filled for that model alone, see the schema).
MODEL_OPTIONS = {
    "cyclegan": ("upsample", "lambda_cycle", "lambda_identity", "pool_size"),
    "cut": ("lambda_GAN", "lambda_NCE", "nce_idt", "nce_layers", "nce_T", "num_patches", "flip_equivariance"),
}


def _check_gan_model(gan: dict) -> list[str]:
    """No option of the other model; CUT's NCE layers inside its generator's encoder."""
    model = gan.get("model", "cyclegan")
    family = "cyclegan" if model == "cyclegan" else "cut"
    other = "cut" if family == "cyclegan" else "cyclegan"
    problems = [
        f"key 'gan.{k}': an option of {'CUT / FastCUT' if other == 'cut' else 'cycleGAN'}, but gan.model is "
        f"{model}; remove it{' or set gan.model: cut or fastcut' if other == 'cut' else ''}"
        for k in MODEL_OPTIONS[other]
        if k in gan
    ]
    if family == "cut":
        from deepsnow.gan.sizes import encoder_taps

        try:
            encoder_taps(gan["n_blocks"], gan.get("nce_layers"))
        except DeepsnowError as exc:
            problems.append(str(exc))
    return problems


def _check_gan(gan: dict) -> list[str]:
    problems = _check_gan_model(gan)
    if gan["crop_size"] > gan["load_size"]:
        problems.append(f"key 'gan.crop_size': {gan['crop_size']} is larger than gan.load_size ({gan['load_size']})")
    if gan["n_epochs"] + gan["n_epochs_decay"] < 1:
        problems.append("key 'gan.n_epochs': n_epochs + n_epochs_decay must be at least 1")
    from deepsnow.gan.sizes import min_discriminator_size

    need = min_discriminator_size(gan["n_layers_d"])
    if gan["crop_size"] < need:
        problems.append(
            f"key 'gan.crop_size': {gan['crop_size']} is too small for the PatchGAN discriminator with "
            f"n_layers_d={gan['n_layers_d']} (needs at least {need} px)"
        )
    return problems


def _check_synthesize(synth: dict) -> list[str]:
    problems = []
    if synth["overlap"] >= synth["tile"]:
        problems.append(f"key 'synthesize.overlap': {synth['overlap']} must be below synthesize.tile ({synth['tile']})")
    names = [s["name"] for s in synth["scenes"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"key 'synthesize.scenes': names {repeated} appear more than once")
    return problems


def _check_validity(validity: dict) -> list[str]:
    """Ladders are known by name; levels run from none (0) upwards, strictly increasing."""
    from deepsnow.validity.ladders import LADDERS

    problems = [
        f"key 'validity.ladders[{i}]': unknown ladder {name!r} (known: {', '.join(LADDERS)})"
        for i, name in enumerate(validity["ladders"])
        if name not in LADDERS
    ]
    levels = validity["levels"]
    if levels[0] != 0:
        problems.append(f"key 'validity.levels[0]': the first level must be 0 (no degradation), got {levels[0]}")
    problems += [
        f"key 'validity.levels[{i}]': levels must increase strictly, but {levels[i]} follows {levels[i - 1]}"
        for i in range(1, len(levels))
        if levels[i] <= levels[i - 1]
    ]
    return problems


#: section -> its checker (problems as lines naming the key); run by validate_config and validate_section.
SECTION_CHECKS = {
    "data": _check_data,
    "mask": _check_mask,
    "patches": _check_patches,
    "gan": _check_gan,
    "features": _check_extractor_names,
    "synthesize": _check_synthesize,
    "change": _check_detector_names,
    "validity": _check_validity,
}


def _check_patch_fits_scene(config: dict) -> list[str]:
    data, size = config["data"], config["patches"]["size"]
    if data["source"] == "simulator" and size > data["simulator"]["size"]:
        return [f"key 'patches.size': {size} px is larger than the scene (data.simulator.size = {data['simulator']['size']} px)"]
    return []


def _check_metrics_extractors(config: dict) -> list[str]:
    feats, metrics = config.get("features"), config.get("metrics")
    if not (feats and metrics):
        return []
    return [
        f"key 'metrics.{key}': {metrics[key]!r} is not one of features.extractors {feats['extractors']}"
        for key in ("inception_extractor", "resnet_extractor")
        if metrics[key] not in feats["extractors"]
    ]


def _check_test_areas(config: dict) -> list[str]:
    try:
        areas = aoi_names(config)
    except DeepsnowError:
        return []  # an unreadable aoi_file is reported by the data checker
    test = config["split"]["test_aois"]
    unknown = [a for a in test if a not in areas]
    if unknown:
        return [f"key 'split.test_aois': {unknown} are not areas of this run ({areas})"]
    if test and len(set(test)) >= len(areas):
        return ["key 'split.test_aois': at least one area must remain for training"]
    return []


def _check_synthesize_epoch(config: dict) -> list[str]:
    """synthesize.epoch names a checkpoint the training keeps (gan.keep_every), known at DAG build."""
    from deepsnow.gan.schedule import kept_epochs, saved_epochs

    synth, gan = config.get("synthesize"), config.get("gan")
    if not (synth and gan):
        return []
    epoch, kept, saved = synth["epoch"], kept_epochs(gan), saved_epochs(gan)
    if isinstance(epoch, int) and epoch not in kept:
        return [
            f"key 'synthesize.epoch': epoch {epoch} has no kept checkpoint (kept with gan.keep_every = "
            f"{gan['keep_every']}: {kept}); choose one of them or 'last'"
        ]
    if isinstance(epoch, str) and epoch.startswith("best:") and kept != saved:
        return [
            f"key 'synthesize.epoch': {epoch} picks any saved epoch {saved}, but gan.keep_every = "
            f"{gan['keep_every']} keeps the checkpoints of {kept} only; set gan.keep_every: 1, or "
            "choose 'last' or a kept epoch"
        ]
    test = set(config.get("split", {}).get("test_aois", []))
    clash = sorted(test & {s["name"] for s in synth["scenes"]})
    if clash:
        return [f"key 'synthesize.scenes': names {clash} are held-out test areas, whose products have those names"]
    return []


def _check_simcover(config: dict) -> list[str]:
    """simcover needs weights: a given file, or the simulator's land-cover labels to train them on."""
    feats, data = config.get("features"), config.get("data")
    if not (feats and data) or "simcover" not in feats["extractors"]:
        return []
    path = feats["simcover"]["weights_path"]
    if path and not Path(path).is_file():
        return [f"key 'features.simcover.weights_path': weights file {path!r} not found (absolute, or relative to {Path.cwd()})"]
    if not path and data["source"] != "simulator":
        return [
            f"key 'features.extractors': simcover on data.source {data['source']!r} needs "
            "features.simcover.weights_path (a simcover.pt from 'deepsnow train-simcover'): it is trained on the "
            "simulator's land-cover labels, which downloaded data does not have"
        ]
    return []


def _check_one_sided_direction(config: dict) -> list[str]:
    """A one-sided model (CUT, FastCUT) has no B->A generator: Figure 6 cannot show that direction."""
    model = (config.get("gan") or {}).get("model", "cyclegan")
    direction = (config.get("figures") or {}).get("pca_direction", "AtoB")
    if model == "cyclegan" or direction == "AtoB":
        return []
    return [
        f"key 'figures.pca_direction': {direction} needs a B->A generator, but gan.model {model} is one-sided "
        "(A->B only); set it to AtoB"
    ]


def _check_tracking(config: dict) -> list[str]:
    """Metric tracking correlates with the paired error: simulator data with paired errors on, and
    at least 3 saved epochs to rank."""
    from deepsnow.gan.schedule import saved_epochs

    tracking, data, metrics, gan = (config.get(k) for k in ("tracking", "data", "metrics", "gan"))
    if not (tracking and tracking["enabled"] and data and metrics and gan):
        return []
    problems = []
    if data["source"] != "simulator" or not metrics["paired"]:
        problems.append(
            f"key 'tracking.enabled': needs the paired error to the simulator's truth (data.source simulator, "
            f"metrics.paired true), but data.source is {data['source']!r} and metrics.paired {metrics['paired']}"
        )
    saved = saved_epochs(gan)
    if len(saved) < 3:
        problems.append(f"key 'tracking.enabled': a rank correlation across epochs needs at least 3 saved epochs, the run saves {saved}")
    return problems


def _check_spectral_ladder(config: dict) -> list[str]:
    """The spectral ladder raises snow's SWIR in reflectance: reflectance patches holding the mask's snow-rule bands."""
    from deepsnow.validity.ladders import SNOW_RULE_BANDS

    validity, patches = config.get("validity"), config.get("patches")
    if not (validity and patches and "spectral" in validity["ladders"]):
        return []
    bands = list(patches["bands"]) if patches["encoding"] == "reflectance" else []
    if all(b in bands for b in SNOW_RULE_BANDS):
        return []
    return [
        f"key 'validity.ladders': the spectral ladder raises snow's SWIR (B11, B12) under unchanged visible bands and needs "
        f"patches.encoding reflectance with bands {list(SNOW_RULE_BANDS)} (the mask's snow rule), but the run has "
        f"encoding {patches['encoding']!r} with patches.bands {list(patches['bands'])}; leave 'spectral' out of validity.ladders"
    ]


#: checks that need more than one section (whole config only).
CONFIG_CHECKS = (
    _check_patch_fits_scene, _check_weights_files, _check_metrics_extractors, _check_test_areas, _check_synthesize_epoch,
    _check_simcover, _check_one_sided_direction, _check_tracking, _check_spectral_ladder,
)
