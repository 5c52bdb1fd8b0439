"""Sweeps (docs/sweeps.md): the ``sweep:`` mapping of a config expanded into variants.

``sweep`` maps dotted config keys (``gan.seed``) to lists of values; every combination
(the Cartesian product, in the order the keys are written) is a *variant*: the config with
those values set, validated like any config before any job runs. Only keys of the sections
after the data split may be swept (:data:`SWEEPABLE`): the data half is shared by every
variant, so what it produces must not differ between them.

A variant's name joins one fragment per swept key with ``-``, in the order of the keys: a
string value is its own fragment (``resize_conv``); any other value is the key's last part
followed by the value as JSON (``seed0``, ``lr0.0002``, ``deterministictrue``); a list is
its items joined with ``+`` (``inception+resnet50``). Characters
other than letters, digits, ``_``, ``.`` and ``+`` become ``_``, so a name is always one path
component. Two combinations with one name are an error naming the keys.

Variants that differ only in ``gan.seed`` form a *group* (:func:`group_of`): the group's name is
the variant name without its seed fragment (``all`` when only seeds are swept).
"""

from __future__ import annotations

import copy
import itertools
import json
import re

from deepsnow import DeepsnowError

#: Sections whose keys may be swept: those of the stages after the data split.
SWEEPABLE = ("gan", "samples", "features", "metrics")
SEED_KEY = "gan.seed"
#: keys that shape the DAG or a job's resources, read once from the base config: every variant saves
#: the same epochs (the comparison is epoch by epoch) and runs the same jobs; also features.simcover.*
#: (the simcover extractor is trained once, on the shared data half)
FIXED_KEYS = (
    "gan.n_epochs", "gan.n_epochs_decay", "gan.save_every", "gan.keep_every", "gan.device", "gan.threads",
    "gan.gpu_mem_mb", "gan.runtime_min", "features.device", "features.extractors", "metrics.inception_extractor",
    "metrics.resnet_extractor", "metrics.paired",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+]")


def _fragment(key: str, value) -> str:
    if isinstance(value, list):
        text = "+".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    elif isinstance(value, str):
        text = value
    else:
        text = key.rsplit(".", 1)[-1] + json.dumps(value, separators=(",", ":"))
    text = _UNSAFE.sub("_", text)
    return text if text[:1].isalnum() else "v" + text


def variant_name(values: dict) -> str:
    """The name of the variant with ``values`` ({dotted key: value}, in sweep order)."""
    return "-".join(_fragment(k, v) for k, v in values.items())


def group_of(values: dict) -> str:
    """The variant's group: its name without the seed (variants differing only in seed share it)."""
    rest = {k: v for k, v in values.items() if k != SEED_KEY}
    return variant_name(rest) if rest else "all"


def _schema_node(schema: dict, key: str):
    """The schema of dotted ``key``, or None when the key does not exist."""
    node = schema
    for part in key.split("."):
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def check_sweep(sweep, sweep_max: int, schema: dict) -> list[str]:
    """Problems of the ``sweep`` mapping itself (keys, lists, count), each naming its key."""
    if not isinstance(sweep, dict) or not sweep:
        return [f"key 'sweep': expected a mapping of dotted config keys to lists of values, got {sweep!r}"]
    problems = []
    for key, values in sweep.items():
        section = str(key).split(".", 1)[0]
        if section == "data" or section not in SWEEPABLE:
            why = (
                "the data half (simulate/download, mask, patches, split) is shared by every variant"
                if section in ("data", "mask", "patches", "split")
                else "only the stages after the data split run once per variant"
            )
            problems.append(
                f"key 'sweep.{key}': section {section!r} cannot be swept ({why}); sweepable sections: "
                f"{', '.join(SWEEPABLE)} (use separate runs to compare other settings)"
            )
        elif "." not in str(key) or _schema_node(schema, str(key)) is None:
            problems.append(f"key 'sweep.{key}': no such config key {key!r}")
        elif key in FIXED_KEYS or str(key).startswith("features.simcover."):
            problems.append(
                f"key 'sweep.{key}': {key} cannot be swept: it fixes the saved epochs, the jobs or their "
                "resources, which every variant shares (use separate runs)"
            )
        if not isinstance(values, list) or not values:
            problems.append(f"key 'sweep.{key}': expected a non-empty list of values, got {values!r}")
    if not problems:
        count = 1
        for values in sweep.values():
            count *= len(values)
        if count > sweep_max:
            problems.append(
                f"key 'sweep': {count} variants ({' x '.join(str(len(v)) for v in sweep.values())}) exceed "
                f"sweep_max = {sweep_max}; raise sweep_max or sweep fewer values"
            )
    return problems


def combinations(sweep: dict) -> list[dict]:
    """Every combination of the swept values, as {dotted key: value} in sweep order."""
    keys = list(sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))]


def with_values(config: dict, values: dict) -> dict:
    """A copy of ``config`` with the dotted keys set and no ``sweep``."""
    out = copy.deepcopy(config)
    out.pop("sweep", None)
    for key, value in values.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return out


def expand(config: dict, schema: dict, validate) -> dict[str, dict]:
    """{variant name: {"values", "group", "config"}} of a validated config with a ``sweep``,
    every variant's config validated by ``validate(config, source)`` before this returns;
    {} without a sweep. ``schema`` is the config schema the swept keys must exist in (the
    caller's, so this module needs nothing of the config module). Raises DeepsnowError naming
    the key on any bad sweep."""
    sweep = config.get("sweep")
    if sweep is None:
        return {}
    problems = check_sweep(sweep, config.get("sweep_max", 64), schema)
    if problems:
        raise DeepsnowError("invalid configuration (sweep):\n  " + "\n  ".join(problems))
    named: dict[str, dict] = {}
    for values in combinations(sweep):
        name = variant_name(values)
        if name in named:
            raise DeepsnowError(
                f"invalid configuration (sweep): key 'sweep': variants {named[name]} and {values} both get "
                f"the name {name!r} (keys {', '.join(sweep)}); use values whose names differ"
            )
        named[name] = values
    variants = {}
    for name, values in named.items():
        source = "sweep variant " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
        variants[name] = {"values": values, "group": group_of(values), "config": validate(with_values(config, values), source)}
    return variants
