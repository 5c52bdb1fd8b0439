"""Torch-free helpers about a training run's epochs (usable when Snakemake builds its DAG).

Epochs are counted from 1. The learning rate is constant for ``n_epochs``
epochs, then decays linearly over ``n_epochs_decay`` epochs, as the reference
``linear`` policy (``lr_l = 1 - max(0, k + 1 - n_epochs) / (n_epochs_decay + 1)``
with ``k`` the 0-based epoch index, i.e. the scheduler stepped at the end of
each epoch as in Zhu et al.'s 2017 code).
"""

from __future__ import annotations

import hashlib
import json

#: gan keys that change only how fast or where a run executes, not what it learns.
#: They may differ between a checkpoint and the run resuming from it.
RUNTIME_KEYS = frozenset(
    {
        "device",
        "deterministic",
        "threads",
        "num_workers",
        "gpu_mem_mb",
        "runtime_min",
        "compile",
        "channels_last",
        "cudnn_benchmark",
        "save_every",
        "keep_every",
    }
)


def total_epochs(params: dict) -> int:
    return int(params["n_epochs"]) + int(params["n_epochs_decay"])


def saved_epochs(params: dict) -> list[int]:
    """1-based epochs that get a checkpoint: every ``save_every``-th and always the last."""
    n = total_epochs(params)
    every = int(params.get("save_every", 1))
    epochs = [e for e in range(1, n + 1) if e % every == 0]
    if n >= 1 and (not epochs or epochs[-1] != n):
        epochs.append(n)
    return epochs


def kept_epochs(params: dict) -> list[int]:
    """Saved epochs whose checkpoint stays on disk: every ``keep_every``-th epoch and the last.

    The others are deleted once the next saved epoch's checkpoint and samples are written,
    so checkpoint disk use is bounded by the config while every saved epoch keeps its samples.
    """
    saved = saved_epochs(params)
    every = int(params.get("keep_every", 1))
    return [e for e in saved if e % every == 0 or e == saved[-1]]


def lr_factor(epoch_index: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Multiplier of the base learning rate during 0-based epoch ``epoch_index`` (reference LambdaRule)."""
    return 1.0 - max(0, epoch_index + 1 - n_epochs) / float(n_epochs_decay + 1)


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.pt"


def trajectory_params(params: dict) -> dict:
    """The gan keys that determine what training learns (all but :data:`RUNTIME_KEYS`); ``model: cyclegan``
    is left out, as the same run as no ``model`` (the default)."""
    return {
        k: v for k, v in sorted(params.items()) if k not in RUNTIME_KEYS and (k, v) != ("model", "cyclegan")
    }


def state_key(params: dict, length: int = 12) -> str:
    """Short hash of :func:`trajectory_params`: use it in the state folder's name so that a
    changed config starts a fresh run instead of resuming an incompatible one."""
    blob = json.dumps(trajectory_params(params), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
