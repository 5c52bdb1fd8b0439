"""Torch files: written atomically, read with ``torch.load(weights_only=True)``.

The cycleGAN's checkpoints (:mod:`deepsnow.gan.checkpoint`) and the simcover
extractor's weights (:mod:`deepsnow.features.simcover`) are such files; this module
knows nothing of what they hold, so reading one needs no network code.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output, looks_pickled


def to_cpu(obj):
    """Recursively move tensors to the CPU (so files load anywhere)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return obj


def save(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file next to ``path``, then rename: a checkpoint that exists is complete.

    torch.save given a path names the archive's inner folder after that path (here the random
    temporary name), so equal payloads would give different bytes and different sha256 in
    provenance; given an open file it names the folder "archive": the bytes depend on the content only.
    """
    path = Path(path)
    with atomic_output(path, suffix=".pt") as tmp, open(tmp, "wb") as f:
        torch.save(to_cpu(payload), f)
    return path


def load_raw(path: str | os.PathLike, mmap: bool = False):
    """``torch.load(path, weights_only=True)`` on CPU with :class:`DeepsnowError` naming the file on failure.

    A file holding pickled Python objects other than tensors and plain containers (a
    checkpoint with an arbitrary object inside, or a plain pickle) is refused, never
    unpickled; an empty, truncated or corrupt file is reported as such.
    """
    import warnings
    import zipfile

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise DeepsnowError(f"{path}: checkpoint file is empty (truncated?)")
    is_zip = zipfile.is_zipfile(path)  # torch.save's format since 1.6
    if mmap:
        mmap = is_zip  # legacy (pre-1.6) files, e.g. old reference models, cannot be mapped
    try:
        with warnings.catch_warnings():
            # a plain pickle gets "Detected pickle protocol 4" first; the error below says what matters
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if is_zip or looks_pickled(head):  # torch's zip holds a pickle; a legacy file or plain pickle is one
            m = re.search(r"Unsupported global: GLOBAL \S+", str(exc))
            raise DeepsnowError(
                f"{path}: refusing to load: the file holds pickled Python objects other than tensors and plain "
                f"containers{' (' + m.group(0) + ')' if m else ''}; deepsnow reads checkpoints with "
                "torch.load(weights_only=True) and never unpickles code (expected a checkpoint from 'deepsnow train' "
                "or a reference generator state dict)"
            ) from exc
        raise DeepsnowError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): neither a PyTorch zip archive nor a pickle; "
            "expected a checkpoint from 'deepsnow train' or a reference generator state dict"
        ) from exc
    except Exception as exc:  # RuntimeError from the zip reader on truncation, EOFError, OSError...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeepsnowError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {type(exc).__name__}: {msg}"
        ) from exc
