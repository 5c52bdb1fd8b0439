"""``deepsnow generate``: translate the fixed held-out test set with each saved epoch's generators.

For every checkpoint, ``G_A`` translates ``testA`` (snow-free) to B (snowy) and
``G_B`` translates ``testB`` to A, at the test patch size (no resize or crop;
the side must be divisible by 4), in eval mode under ``torch.inference_mode()``,
in batches of ``samples.batch_size``. The same first ``samples.max_samples``
patches (0 = all, in the dataset's deterministic order) are used for every epoch.

Output, one ``.npz`` per checkpoint (atomic, no pickles):

- ``fake_B``: ``(N_A, S, S, 3) uint8`` = G_A(testA), ``ids_A``: ``(N_A,)`` the testA patch ids
- ``fake_A``: ``(N_B, S, S, 3) uint8`` = G_B(testB), ``ids_B``: ``(N_B,)`` the testB patch ids
- ``epoch``: ``() int64``

8-bit values are ``round((x + 1) * 127.5)`` of the generator output ``x`` in [-1, 1].
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import runtime
from deepsnow.gan.data import load_domain, to_tensor_uint8, to_uint8
from deepsnow.io import save_npz

log = logging.getLogger("deepsnow.gan")


def translate_batches(net: torch.nn.Module, rgb: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Apply a generator to ``(N,S,S,3) uint8`` images; ``(N,S,S,3) uint8`` out."""
    out = np.empty_like(rgb)
    net.eval()
    with torch.inference_mode():
        for s in range(0, len(rgb), batch_size):
            x = to_tensor_uint8(rgb[s : s + batch_size]).to(device).float().div_(127.5).sub_(1.0)
            y = to_uint8(net(x)).cpu().numpy()
            out[s : s + batch_size] = y.transpose(0, 2, 3, 1)
    return out


def _test_domain(path, name: str, max_samples: int):
    rgb, ids = load_domain(path, name)
    if max_samples:
        rgb, ids = rgb[:max_samples], ids[:max_samples]
    size = rgb.shape[1]
    if size % 4:
        raise DeepsnowError(
            f"{path}: test patches are {size}x{size} px; the generator needs a side divisible by 4 "
            f"(two stride-2 downsamplings), e.g. {size - size % 4} or {size + 4 - size % 4}"
        )
    return rgb, ids


def generate(
    samples_params: dict,
    checkpoints: list[str | os.PathLike],
    outputs: list[str | os.PathLike],
    test_a: str | os.PathLike,
    test_b: str | os.PathLike,
) -> dict:
    """Write one samples ``.npz`` per checkpoint; returns a summary dict."""
    params = validate_section("samples", samples_params, source="samples params")
    checkpoints, outputs = [Path(c) for c in checkpoints], [Path(o) for o in outputs]
    if len(checkpoints) != len(outputs):
        raise DeepsnowError(
            f"generate: {len(checkpoints)} checkpoints but {len(outputs)} outputs; give one output per checkpoint"
        )
    if not checkpoints:
        raise DeepsnowError("generate: no checkpoints given")
    device = runtime.resolve_device(params["device"], key="samples.device")
    rgb_a, ids_a = _test_domain(test_a, "A", params["max_samples"])
    rgb_b, ids_b = _test_domain(test_b, "B", params["max_samples"])
    bs = int(params["batch_size"])
    epochs = []
    t0 = time.perf_counter()
    for path, out in zip(checkpoints, outputs):
        g_a, info = ckpt.load_generator(path, "G_A", device)
        if info["kind"] != "deepsnow":
            raise DeepsnowError(f"{path}: generate needs a deepsnow checkpoint holding both generators")
        g_b, _ = ckpt.load_generator(path, "G_B", device)
        fake_b = translate_batches(g_a, rgb_a, bs, device)
        fake_a = translate_batches(g_b, rgb_b, bs, device)
        save_npz(out, fake_B=fake_b, ids_A=ids_a, fake_A=fake_a, ids_B=ids_b, epoch=np.int64(info["epoch"]))
        epochs.append(info["epoch"])
        log.info(
            "epoch %d: translated %d A->B and %d B->A test patches -> %s", info["epoch"], len(fake_b), len(fake_a), out
        )
        del g_a, g_b
    return {
        "epochs": epochs,
        "n_A": int(len(rgb_a)),
        "n_B": int(len(rgb_b)),
        "size": int(rgb_a.shape[1]),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
    }
