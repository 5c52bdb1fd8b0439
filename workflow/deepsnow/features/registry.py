"""Feature extractors by name: the built-in ones, those registered in this process, and installed ones.

An extractor turns a float RGB batch in [0, 1], shape ``(N, 3, H, W)`` at the
images' own size, into ``(N, D)`` features; it does its own resizing and
normalisation, so every extractor sees the same input. Add one by decorating a
builder::

    @register_extractor("my_rs_resnet")
    def build(options: dict, seed: int) -> Extractor:  # Extractor, apply_weights: deepsnow.features.base
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
point of a selected name is loaded, when it is built. The built-in extractors
(:mod:`deepsnow.features.builtin`) are imported only when one is built: they load torch.
"""

from __future__ import annotations

from typing import Callable

from deepsnow import DeepsnowError, plugins
from deepsnow.features.base import Extractor

#: name -> builder(options, seed) -> Extractor: registered in this process (a registered name may
#: replace a built-in one) or loaded from an installed entry point
EXTRACTORS: dict[str, Callable] = {}

#: The extractors of this package (their builders: ``deepsnow.features.builtin.BUILDERS``).
BUILTIN_EXTRACTORS = ("inception", "resnet50", "simcover")

#: Entry-point group through which installed packages provide extractors (name = extractor name).
ENTRY_POINT_GROUP = "deepsnow.extractors"


def register_extractor(name: str, *, replace: bool = False):
    """Decorator: register ``builder(options: dict, seed: int) -> Extractor`` under ``name``."""

    def deco(builder):
        taken = name in BUILTIN_EXTRACTORS or EXTRACTORS.get(name, builder) is not builder
        if taken and not replace:
            raise DeepsnowError(f"feature extractor {name!r} is already registered")
        EXTRACTORS[name] = builder
        return builder

    return deco


def entry_point_extractors() -> dict:
    """Installed extractors of the ``deepsnow.extractors`` entry-point group, by name (none loaded)."""
    return plugins.installed(ENTRY_POINT_GROUP)


def known_extractor_names() -> list[str]:
    """Built-in, registered and installed (entry point) extractor names, without importing any of them."""
    return sorted(set(BUILTIN_EXTRACTORS) | set(EXTRACTORS) | set(entry_point_extractors()))


def unknown_extractor_message(name: str) -> str:
    return (
        f"unknown feature extractor {name!r}; known: {', '.join(known_extractor_names())} "
        f"(an installed package provides more through the Python entry-point group {ENTRY_POINT_GROUP!r})"
    )


def available_extractors() -> list[str]:
    """Every extractor name that :func:`build_extractor` accepts."""
    return known_extractor_names()


def _load_entry_point(name: str) -> None:
    """Register the builder the installed entry point ``name`` points to (imports its package)."""
    # the entry point's builder is the one of this name (built-in names never get here)
    EXTRACTORS[name] = plugins.load(
        ENTRY_POINT_GROUP, name, "feature extractor", "a builder(options, seed) -> Extractor",
        unknown_extractor_message(name),
    )


def _builder(name: str) -> Callable:
    """The builder of ``name``: registered in this process, else built in, else an installed entry point."""
    if name in EXTRACTORS:
        return EXTRACTORS[name]
    if name in BUILTIN_EXTRACTORS:
        # imported here: the built-ins load torch, and the config check reads this module's names
        from deepsnow.features.builtin import BUILDERS

        return BUILDERS[name]
    _load_entry_point(name)
    return EXTRACTORS[name]


def build_extractor(name: str, options: dict | None = None, seed: int = 0) -> Extractor:
    """Build extractor ``name`` (built in, registered, or an installed entry point) with its options."""
    builder = _builder(name)
    options = dict(options or {})
    options.setdefault("weights", "auto")
    options.setdefault("weights_path", "")
    ext = builder(options, seed)
    if not isinstance(ext, Extractor):
        raise DeepsnowError(f"extractor builder {name!r} returned {type(ext).__name__}, expected Extractor")
    return ext
