"""Checkpoint files: full training state, written atomically, loadable with ``weights_only=True``.

A checkpoint (``epoch_NNN.pt``) is a ``torch.save`` of a dict holding only
tensors, numbers, strings, booleans, ``None``, lists, tuples and dicts:

=================  ==========================================================
key                value
=================  ==========================================================
format, version    ``"deepsnow-cyclegan"``, ``1`` (CUT / FastCUT checkpoints too)
deepsnow_version   package version that wrote it
epoch              last completed epoch (1-based)
iteration          training iterations done in total
total_epochs       ``n_epochs + n_epochs_decay`` of the run
arch               :class:`deepsnow.gan.networks.Architecture` as a dict
bands              the bands the networks take and give and how (:class:`deepsnow.gan.data.BandSet`):
                   ``{"bands": [names], "encoding": "rgb8" | "reflectance", "unit_reflectance":
                   [per band] | None}``; the reflectance each band maps to +1 (docs/bands.md).
                   Absent from checkpoints written before it existed: those are RGB (B04 B03 B02, rgb8)
config             the validated ``gan`` config section
G_A, G_B           generator state dicts (reference key layout; G_A: A->B)
D_A, D_B           discriminator state dicts (D_A judges domain B, as the reference)
optimizer_G/_D     Adam state dicts
scheduler_G/_D     LambdaLR state dicts
pool_fake_A/_B     image pools: ``{"pool_size", "images" (n,3,h,w), "rng"}``
scaler             GradScaler state (fp16) or ``None``
rng                ``{"torch", "numpy", "python", "cuda"}`` generator states
history            ``{"epoch": (E, k) float64, "iter": (N, 10) float64}`` loss logs
                   (columns in :data:`EPOCH_COLUMNS` / :data:`ITER_COLUMNS`)
device, precision  where and how it was trained
=================  ==========================================================

A CUT / FastCUT checkpoint (its ``arch`` antialiased, ``config.model`` cut or fastcut) holds
``G_A`` (the reference's ``netG``, A->B), ``D_A`` (``netD``, judges domain B) and ``F`` (``netF``)
instead of the four networks, ``optimizer_F`` and ``scheduler_F`` besides those of G and D,
``sampler_rng`` and ``flip_rng`` (the generators of F's locations and of the flips) instead of
the pools, and its loss logs have the columns of :data:`deepsnow.gan.cut_model.LOSS_NAMES`.

Reference generator files (``<epoch>_net_G_A.pth``, CUT's ``<epoch>_net_G.pth``: a bare state
dict) are accepted wherever a generator is loaded (:func:`load_generator`).
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.gan import cut, networks
from deepsnow.gan.data import RGB, BandSet
from deepsnow.gan.model import LOSS_NAMES
from deepsnow.torchfile import load_raw

log = logging.getLogger("deepsnow.gan")

FORMAT = "deepsnow-cyclegan"
VERSION = 1


def epoch_columns(loss_names) -> tuple[str, ...]:
    """Columns of the per-epoch loss log of a model with these losses."""
    return ("epoch", "iterations", "lr", *loss_names, "seconds", "it_per_s")


def iter_columns(loss_names) -> tuple[str, ...]:
    """Columns of the per-iteration loss log of a model with these losses."""
    return ("epoch", "iteration", *loss_names)


EPOCH_COLUMNS = epoch_columns(LOSS_NAMES)
ITER_COLUMNS = iter_columns(LOSS_NAMES)
REQUIRED_KEYS = ("epoch", "iteration", "arch", "config", "G_A", "G_B", "D_A", "D_B")
TRAINING_KEYS = (
    "optimizer_G",
    "optimizer_D",
    "scheduler_G",
    "scheduler_D",
    "pool_fake_A",
    "pool_fake_B",
    "rng",
    "history",
)
#: The same for a CUT / FastCUT checkpoint (see the module docstring).
CUT_REQUIRED_KEYS = ("epoch", "iteration", "arch", "config", "G_A", "D_A", "F")
CUT_TRAINING_KEYS = (
    *(f"{kind}_{net}" for kind in ("optimizer", "scheduler") for net in "GDF"),
    "sampler_rng",
    "flip_rng",
    "rng",
    "history",
)


# -- RNG states as plain data ---------------------------------------------------
def rng_state(device: torch.device | None = None) -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next},
        "cuda": None,
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if device is not None and device.type == "cuda" and state.get("cuda"):
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            log.warning(
                "checkpoint has CUDA RNG states for %d devices, this host has %d; not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )


# -- loading ---------------------------------------------------------------------
def is_ours(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load(path: str | os.PathLike, training: bool = False, mmap: bool = False) -> dict:
    """A deepsnow checkpoint, checked for its keys (and the training-state keys when ``training``)."""
    return check(load_raw(path, mmap=mmap), path, training)


def check(obj, path, training: bool = False) -> dict:
    """Raise :class:`DeepsnowError` unless ``obj`` is a complete deepsnow checkpoint."""
    if not is_ours(obj):
        hint = ""
        if isinstance(obj, dict) and "model.1.weight" in obj:
            hint = " (it looks like a reference generator state dict; only 'deepsnow translate' accepts those)"
        raise DeepsnowError(f"{path}: not a deepsnow cycleGAN checkpoint (no format '{FORMAT}'){hint}")
    if obj.get("version") != VERSION:
        raise DeepsnowError(f"{path}: checkpoint format version {obj.get('version')!r}, this deepsnow reads {VERSION}")
    arch = obj.get("arch")
    one_sided = isinstance(arch, dict) and networks.Architecture.from_dict(arch, source=str(path)).antialiased
    required, training_keys = (CUT_REQUIRED_KEYS, CUT_TRAINING_KEYS) if one_sided else (REQUIRED_KEYS, TRAINING_KEYS)
    missing = [k for k in required + (training_keys if training else ()) if k not in obj]
    if missing:
        raise DeepsnowError(f"{path}: checkpoint lacks keys {missing}")
    arch = networks.Architecture.from_dict(obj["arch"], source=str(path))
    bands = BandSet.from_dict(obj.get("bands"), source=str(path))
    if arch.input_nc != bands.n or arch.output_nc != bands.n:
        raise DeepsnowError(
            f"{path}: networks map {arch.input_nc} to {arch.output_nc} channels, but the checkpoint's bands are "
            f"{bands.describe()} ({bands.n})"
        )
    return obj


def bands_of(obj: dict) -> BandSet:
    """The band set of a checked checkpoint (RGB for one written before checkpoints had one)."""
    return BandSet.from_dict(obj.get("bands"), source="checkpoint")


_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def epoch_files(folder: str | os.PathLike) -> dict[int, Path]:
    """``{epoch: path}`` of the complete checkpoint files in a folder (temporary files ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.iterdir():
        m = _EPOCH_FILE.match(p.name)
        if m and p.is_file():
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def remove_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files a killed writer left behind (``.epoch_NNN.pt.*.part*``, ``.epoch_NNN.pt.link.part``)."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and "epoch_" in p.name and ".part" in p.name:
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


# -- generators for inference ---------------------------------------------------
def load_generator(path: str | os.PathLike, which: str = "G_A", device: torch.device | str = "cpu"):
    """A generator in eval mode from our checkpoint (``which`` = G_A or G_B) or a reference state dict.

    Returns ``(net, info)``; ``info`` has ``kind`` (deepsnow | reference), ``epoch``, ``arch`` and ``bands``
    (the :class:`~deepsnow.gan.data.BandSet` the generator takes and gives: a reference file's is RGB).
    """
    path = Path(path)
    obj = load_raw(path, mmap=True)
    if is_ours(obj):
        check(obj, path)
        arch = networks.Architecture.from_dict(obj["arch"], source=str(path))
        if which not in obj:
            raise DeepsnowError(
                f"{path}: a one-sided (CUT / FastCUT) checkpoint holds the A->B generator G_A only, not {which}: "
                "it does not translate B->A"
            )
        state = obj[which]
        info = {"kind": "deepsnow", "epoch": int(obj["epoch"]), "generator": which, "bands": bands_of(obj)}
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = networks.clean_state_dict(obj)
        arch = networks.infer_generator_arch(state, source=str(path))
        m = re.match(r"^(.*)_net_(G_[AB]|G)\.pth$", path.name)  # cycleGAN's G_A, G_B; CUT's G
        info = {"kind": "reference", "epoch": m.group(1) if m else None, "generator": m.group(2) if m else None}
        info["bands"] = RGB
    else:
        raise DeepsnowError(
            f"{path}: neither a deepsnow checkpoint nor a reference generator state dict "
            f"(got {type(obj).__name__}{' with keys ' + str(sorted(obj)[:5]) if isinstance(obj, dict) else ''})"
        )
    if arch.input_nc != info["bands"].n or arch.output_nc != info["bands"].n:
        raise DeepsnowError(
            f"{path}: generator maps {arch.input_nc} to {arch.output_nc} channels; RGB (3 -> 3) expected"
        )
    net = (cut.build_generator if arch.antialiased else networks.build_generator)(arch, init=False)
    networks.load_state_strict(net, state, str(path), which if info["kind"] == "deepsnow" else "state dict")
    net.to(device).eval()
    info["arch"] = arch.as_dict()
    return net, info


def load_generators(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """``(G_A, G_B, info)`` of a deepsnow checkpoint; ``G_B`` is None for a one-sided (CUT / FastCUT) one."""
    g_a, info = load_generator(path, "G_A", device)
    if info["kind"] != "deepsnow":
        raise DeepsnowError(f"{path}: a deepsnow checkpoint is needed here, not a reference generator file")
    g_b = None if info["arch"]["netG"] == cut.ANTIALIASED[0] else load_generator(path, "G_B", device)[0]
    return g_a, g_b, info
