"""Feature extractors: a registry of builders and the weight options they share.

An extractor turns a float RGB batch in [0, 1], shape ``(N, 3, H, W)`` at the
images' own size, into ``(N, D)`` features; it does its own resizing and
normalisation, so every extractor sees the same input. Add one by decorating a
builder::

    @register_extractor("my_rs_resnet")
    def build(options: dict, seed: int) -> Extractor:
        module = ...
        weights, pretrained = apply_weights(module, name="my_rs_resnet", options=options, seed=seed,
                                            pretrained_tag="ssl4eo-moco", pretrained_loader=..., ...)
        return Extractor("my_rs_resnet", module, dim=2048, weights=weights, pretrained=pretrained)

That registers it in the running Python process (the Python API). For the
workflow and ``deepsnow embed``, an extractor of another package is found
through the Python entry-point group ``deepsnow.extractors``: the package
declares, in its ``pyproject.toml``::

    [project.entry-points."deepsnow.extractors"]
    my_rs_resnet = "my_package.features:build"

and once it is installed (``pip install``), ``features.extractors: [...,
my_rs_resnet]`` and ``--extractor my_rs_resnet`` select it. The config only
*names* an extractor; it never names a module to import: a name is checked
against the built-in ones and the installed entry points, and only the entry
point of a selected name is loaded, when it is built.

Weights options (``options["weights"]``):

* ``imagenet``: the published pretrained weights (torch hub cache, else download);
* ``path``: a local state-dict file ``options["weights_path"]``, read with
  ``torch.load(weights_only=True)`` (never unpickles code);
* ``random``: seeded random initialisation, deterministic for a seed;
* ``auto``: ``imagenet`` when it loads, else ``random`` with a WARNING.

The resolved kind is recorded with every feature: ``imagenet-<tag>``,
``path:<sha256 prefix>`` or ``random-seed<k>``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

from deepsnow import DeepsnowError

log = logging.getLogger("deepsnow.features")

WEIGHT_KINDS = ("auto", "imagenet", "path", "random")

#: name -> builder(options, seed) -> Extractor
EXTRACTORS: dict[str, Callable] = {}

#: The extractors of this package (registered by ``deepsnow.features.builtin``).
BUILTIN_EXTRACTORS = ("inception", "resnet50", "simcover")

#: Entry-point group through which installed packages provide extractors (name = extractor name).
ENTRY_POINT_GROUP = "deepsnow.extractors"


@dataclasses.dataclass
class Extractor:
    """A ready-to-run feature extractor and what produced its weights."""

    name: str
    module: object  # torch.nn.Module: float (N, 3, H, W) in [0, 1] -> (N, dim)
    dim: int
    weights: str
    pretrained: bool
    preprocessing: str = ""


def register_extractor(name: str, *, replace: bool = False):
    """Decorator: register ``builder(options: dict, seed: int) -> Extractor`` under ``name``."""

    def deco(builder):
        if name in EXTRACTORS and not replace and EXTRACTORS[name] is not builder:
            raise DeepsnowError(f"feature extractor {name!r} is already registered")
        EXTRACTORS[name] = builder
        return builder

    return deco


def _ensure_builtin() -> None:
    # the built-in extractors register themselves on import
    from deepsnow.features import builtin  # noqa: F401


def entry_point_extractors() -> dict:
    """Installed extractors of the ``deepsnow.extractors`` entry-point group, by name (none loaded)."""
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # the first distribution on sys.path wins, as for imports
    return found


def known_extractor_names() -> list[str]:
    """Built-in, registered and installed (entry point) extractor names, without importing any of them."""
    return sorted(set(BUILTIN_EXTRACTORS) | set(EXTRACTORS) | set(entry_point_extractors()))


def unknown_extractor_message(name: str) -> str:
    return (
        f"unknown feature extractor {name!r}; known: {', '.join(known_extractor_names())} "
        f"(an installed package provides more through the Python entry-point group {ENTRY_POINT_GROUP!r})"
    )


def available_extractors() -> list[str]:
    _ensure_builtin()
    return known_extractor_names()


def _load_entry_point(name: str) -> None:
    """Register the builder the installed entry point ``name`` points to (imports its package)."""
    ep = entry_point_extractors().get(name)
    if ep is None:
        raise DeepsnowError(unknown_extractor_message(name))
    dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
    try:
        builder = ep.load()
    except Exception as exc:
        raise DeepsnowError(
            f"feature extractor {name!r}: entry point '{ep.name} = {ep.value}' of {dist} "
            f"(group {ENTRY_POINT_GROUP!r}) failed to load ({type(exc).__name__}: {exc})"
        ) from exc
    if not callable(builder):
        raise DeepsnowError(
            f"feature extractor {name!r}: entry point '{ep.name} = {ep.value}' of {dist} is a "
            f"{type(builder).__name__}, expected a builder(options, seed) -> Extractor"
        )
    # the entry point's builder is the one of this name (built-in names never get here)
    EXTRACTORS[name] = builder


def build_extractor(name: str, options: dict | None = None, seed: int = 0) -> Extractor:
    """Build extractor ``name`` (built in, registered, or an installed entry point) with its options."""
    _ensure_builtin()
    if name not in EXTRACTORS:
        _load_entry_point(name)
    options = dict(options or {})
    options.setdefault("weights", "auto")
    options.setdefault("weights_path", "")
    ext = EXTRACTORS[name](options, seed)
    if not isinstance(ext, Extractor):
        raise DeepsnowError(f"extractor builder {name!r} returned {type(ext).__name__}, expected Extractor")
    return ext


def load_pretrained(name: str, tag: str, loader: Callable[[], dict]) -> dict:
    """Fetch a pretrained state dict (hub cache or download). Tests monkeypatch this to simulate offline.

    A download that stalls (filtered network) gives up after 120 s of silence.
    """
    import socket

    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(120)
    try:
        return loader()
    finally:
        socket.setdefaulttimeout(previous)


def load_state_dict_file(path: str | Path) -> tuple[dict, str]:
    """Read a local weights file safely; returns (state dict, sha256 hex)."""
    import torch

    from deepsnow.io import sha256_file

    path = Path(path)
    if not str(path) or not path.is_file():
        raise DeepsnowError(f"weights file {path} not found (weights: path needs an existing weights_path)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError
        raise DeepsnowError(f"{path}: not a loadable tensor-only state dict ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise DeepsnowError(f"{path}: expected a state dict of tensors")
    obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj, sha256_file(path)


def _load_into(module, state: dict, source: str, strict_load: Callable | None) -> None:
    try:
        if strict_load is not None:
            strict_load(module, state)
        else:
            module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        msg = str(exc).splitlines()
        raise DeepsnowError(f"{source}: weights do not fit the network ({' '.join(msg[:3])[:500]})") from exc


def apply_weights(
    module,
    *,
    name: str,
    options: dict,
    seed: int,
    pretrained_tag: str,
    pretrained_loader: Callable[[], dict],
    random_init: Callable,
    load: Callable | None = None,
    known_sha256: dict[str, str] | None = None,
) -> tuple[str, bool]:
    """Put weights into ``module`` as ``options['weights']`` says; return (resolved kind, pretrained).

    ``random_init(module, generator)`` must fill every parameter from the torch
    generator (seeded with ``seed``); ``load(module, state_dict)`` loads a state
    dict (default ``module.load_state_dict(strict=True)``).
    """
    import torch

    kind = options.get("weights", "auto")
    if kind not in WEIGHT_KINDS:
        raise DeepsnowError(f"features.{name}.weights: expected one of {WEIGHT_KINDS}, got {kind!r}")
    if kind == "path":
        state, sha = load_state_dict_file(options.get("weights_path") or "")
        _load_into(module, state, str(options.get("weights_path")), load)
        for label, prefix in (known_sha256 or {}).items():
            if sha.startswith(prefix):
                log.info("%s: %s is the published %s checkpoint", name, options["weights_path"], label)
        return f"path:{sha[:16]}", True
    if kind in ("imagenet", "auto"):
        try:
            state = load_pretrained(name, pretrained_tag, pretrained_loader)
        except Exception as exc:
            if kind == "imagenet":
                raise DeepsnowError(
                    f"{name}: could not load the pretrained weights {pretrained_tag} "
                    f"({type(exc).__name__}: {exc}); place the file in the torch hub cache "
                    f"({torch.hub.get_dir()}/checkpoints) or use weights: path"
                ) from exc
            log.warning(
                "WARNING: %s: pretrained weights %s unavailable (%s: %s); FALLING BACK TO RANDOM WEIGHTS "
                "(seed %d). Metrics from these features are NOT comparable with published values.",
                name,
                pretrained_tag,
                type(exc).__name__,
                str(exc)[:200],
                seed,
            )
        else:
            _load_into(module, state, f"{name} pretrained {pretrained_tag}", load)
            return f"imagenet-{pretrained_tag}", True
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        random_init(module, gen)
    return f"random-seed{int(seed)}", False
