"""What every feature extractor is made of: :class:`Extractor` and the weights options it is built with.

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


@dataclasses.dataclass
class Extractor:
    """A ready-to-run feature extractor and what produced its weights."""

    name: str
    module: object  # torch.nn.Module: float (N, C, H, W) in [0, 1] -> (N, dim)
    dim: int
    weights: str
    pretrained: bool
    preprocessing: str = ""
    #: None: it takes 8-bit RGB (C = 3); else the reflectance bands it takes (``bands``, ``unit_reflectance``:
    #: a reflectance simcover, docs/bands.md), each as clip(r / unit_reflectance, 0, 1)
    bands: dict | None = None


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
