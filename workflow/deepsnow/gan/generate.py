"""Translate the fixed held-out test set with a saved epoch's generators (the per-epoch samples).

The training job calls :func:`write_samples` at every saved epoch (the workflow's
``samples/epoch_NNN.npz``); ``deepsnow generate`` (:func:`generate`) does the same
from kept checkpoints.

For every checkpoint, ``G_A`` translates ``testA`` (snow-free) to B (snowy) and
``G_B`` translates ``testB`` to A, at the test patch size (no resize or crop;
the side must be divisible by 4), in eval mode under ``torch.inference_mode()``,
in batches of ``samples.batch_size``. The same first ``samples.max_samples``
patches (0 = all, in the dataset's deterministic order) are used for every epoch.

Output, one ``.npz`` per checkpoint (atomic, no pickles):

- ``fake_B``: ``(N_A, S, S, 3) uint8`` = G_A(testA), ``ids_A``: ``(N_A,)`` the testA patch ids
- ``fake_A``: ``(N_B, S, S, 3) uint8`` = G_B(testB), ``ids_B``: ``(N_B,)`` the testB patch ids;
  absent for a one-sided model (CUT, FastCUT: no B->A generator)
- ``epoch``: ``() int64``

8-bit values are ``round((x + 1) * 127.5)`` of the generator output ``x`` in [-1, 1].

Reflectance test sets (``patches.encoding: reflectance``): ``fake_B`` and ``fake_A`` are ``(N, S, S, C)
uint16`` reflectance x 10000 in the checkpoint's bands (the generator output taken back through the
fixed per-band mapping of :mod:`deepsnow.data.bands`), and the file adds ``bands`` ``(C,)`` and
``encoding`` ``()``. The stages after train read either kind, telling them apart by ``bands``:
``deepsnow embed`` gives the feature extractors a reflectance sample's RGB composite (rendered with
``rgb_max``, ``rgb_gamma``), the figures render a composite of it (RGB by default), and the epoch
metrics measure the paired L1 / SSIM in reflectance against the truth patches in the same bands and add
per-band spectral columns (:mod:`deepsnow.metrics.spectral`; none for 8-bit RGB samples).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import runtime
from deepsnow.data.bands import decode_units
from deepsnow.gan.data import BandSet, load_domain, same_bands, to_codes, to_tensor_uint8, to_unit
from deepsnow.io import save_npz

log = logging.getLogger("deepsnow.gan")


def translate_batches(net: torch.nn.Module, rgb: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Apply a generator to ``(N,S,S,C)`` images (uint8 RGB or uint16 unit codes); the same type out."""
    out = np.empty_like(rgb)
    net.eval()
    with torch.inference_mode():
        for s in range(0, len(rgb), batch_size):
            x = to_unit(to_tensor_uint8(rgb[s : s + batch_size]), device)
            y = to_codes(net(x), x_dtype(rgb)).cpu().numpy()
            out[s : s + batch_size] = y.transpose(0, 2, 3, 1)
    return out


def x_dtype(images: np.ndarray) -> torch.dtype:
    """The torch type of a numpy image array (uint8 or uint16)."""
    return torch.from_numpy(images[:0]).dtype


def _test_domain(path, name: str, max_samples: int, bands: BandSet | None = None):
    rgb, ids, bands = load_domain(path, name, bands=bands)
    if max_samples:
        rgb, ids = rgb[:max_samples], ids[:max_samples]
    size = rgb.shape[1]
    if size % 4:
        raise DeepsnowError(
            f"{path}: test patches are {size}x{size} px; the generator needs a side divisible by 4 "
            f"(two stride-2 downsamplings), e.g. {size - size % 4} or {size + 4 - size % 4}"
        )
    return rgb, ids, bands


def load_test_sets(test_a, test_b, max_samples: int, bands: BandSet | None = None) -> dict:
    """The fixed held-out sets: ``rgb_A``, ``ids_A``, ``rgb_B``, ``ids_B`` (first ``max_samples`` of each;
    images as :func:`~deepsnow.gan.data.load_domain` gives them, mapped as ``bands`` when given), ``bands``
    (their :class:`BandSet`) and ``bands_of`` (file -> band set)."""
    rgb_a, ids_a, bands_a = _test_domain(test_a, "A", max_samples, bands)
    rgb_b, ids_b, bands_b = _test_domain(test_b, "B", max_samples, bands)
    bands_of = {str(test_a): bands_a, str(test_b): bands_b}
    same_bands(bands_of)
    return {"rgb_A": rgb_a, "ids_A": ids_a, "rgb_B": rgb_b, "ids_B": ids_b, "bands": bands_a, "bands_of": bands_of}


def _as_stored(images: np.ndarray, bands: BandSet) -> np.ndarray:
    """Translated images as a samples file holds them: 8-bit RGB as they are, unit codes as reflectance x 10000."""
    return images if bands.encoding == "rgb8" else decode_units(images, bands.unit_reflectance)


def write_samples(
    out, g_a: torch.nn.Module, g_b: torch.nn.Module | None, test: dict, epoch: int, batch_size: int, device
) -> Path:
    """Translate ``test`` (:func:`load_test_sets`) with one epoch's generators and write the samples file
    (A->B only when ``g_b`` is None: a one-sided model)."""
    bands = test["bands"]
    fake_b = _as_stored(translate_batches(g_a, test["rgb_A"], batch_size, device), bands)
    arrays = {"fake_B": fake_b, "ids_A": test["ids_A"]}
    if g_b is not None:
        fake_a = _as_stored(translate_batches(g_b, test["rgb_B"], batch_size, device), bands)
        arrays.update(fake_A=fake_a, ids_B=test["ids_B"])
    if bands.encoding != "rgb8":  # an RGB samples file stays as it always was
        arrays.update(bands=np.array(bands.bands, dtype=str), encoding=np.array(bands.encoding, dtype=str))
    save_npz(out, **arrays, epoch=np.int64(epoch))
    back = f" and {len(arrays['fake_A'])} B->A" if g_b is not None else " (one-sided: no B->A)"
    log.info("epoch %d: translated %d A->B%s test patches -> %s", epoch, len(fake_b), back, out)
    return Path(out)


def generate(
    samples_params: dict,
    checkpoints: list[str | os.PathLike],
    outputs: list[str | os.PathLike],
    test_a: str | os.PathLike,
    test_b: str | os.PathLike,
    device: str = "auto",
) -> dict:
    """Write one samples ``.npz`` per checkpoint; returns a summary dict.

    ``samples_params`` is the validated ``samples`` section (the CLI and the workflow
    validate it). The workflow's training job writes every saved epoch's samples itself
    (so that checkpoints can be pruned, see ``gan.keep_every``); this re-translates the
    test set with any kept checkpoint.
    """
    checkpoints, outputs = [Path(c) for c in checkpoints], [Path(o) for o in outputs]
    if len(checkpoints) != len(outputs):
        raise DeepsnowError(
            f"generate: {len(checkpoints)} checkpoints but {len(outputs)} outputs; give one output per checkpoint"
        )
    if not checkpoints:
        raise DeepsnowError("generate: no checkpoints given")
    device = runtime.resolve_device(device, key="--device")
    test = load_test_sets(test_a, test_b, samples_params["max_samples"])
    bs = int(samples_params["batch_size"])
    epochs = []
    t0 = time.perf_counter()
    written: list[Path] = []
    try:
        for path, out in zip(checkpoints, outputs):
            g_a, g_b, info = ckpt.load_generators(path, device)
            if info["bands"] != test["bands"]:  # the same bands mapped otherwise: as the checkpoint maps them
                test = load_test_sets(test_a, test_b, samples_params["max_samples"], info["bands"])
            if info["bands"] != test["bands"]:
                raise DeepsnowError(
                    f"{path}: the checkpoint takes {info['bands'].describe()}, the test sets hold "
                    f"{test['bands'].describe()}; translate them with a checkpoint of their bands"
                )
            written.append(write_samples(out, g_a, g_b, test, info["epoch"], bs, device))
            epochs.append(info["epoch"])
            del g_a, g_b
    except BaseException:
        for out in written:  # all or nothing: no outputs of a call that failed half-way
            out.unlink(missing_ok=True)
        raise
    return {
        "epochs": epochs,
        "n_A": int(len(test["rgb_A"])),
        "n_B": int(len(test["rgb_B"])),
        "size": int(test["rgb_A"].shape[1]),
        "device": str(device),
        "seconds": time.perf_counter() - t0,
    }
