"""Embedding image sets: batched, ``torch.inference_mode``, eval mode, float32 output.

File formats (all ``.npz``, no pickles; every file also holds the metadata
arrays of :func:`deepsnow.features.files.metadata_arrays`: ``extractor``, ``weights``, ``pretrained``,
``dim``, ``preprocessing``):

* real sets (:func:`embed_real`): ``A`` (N_A, D), ``B`` (N_B, D) float32,
  ``ids_A``, ``ids_B``;
* samples of one epoch (:func:`embed_samples`): ``fake_B`` (N_A, D) = features
  of testA translated A->B, ``fake_A`` (N_B, D), ``ids_A``, ``ids_B``,
  ``epoch`` (int64 scalar);
* any image array (:func:`embed_file`): ``features``, ``ids``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.features.base import Extractor
from deepsnow.features.files import metadata_arrays
from deepsnow.features.registry import build_extractor
from deepsnow.features.rgbview import DEFAULT_RGB, image_key, is_reflectance, rgb_images
from deepsnow.io import load_npz, save_npz

log = logging.getLogger("deepsnow.features")

META_KEYS = ("extractor", "weights", "pretrained", "dim", "preprocessing")

#: built-in per-extractor config keys; any other extractor takes features.extra.<name>
BUILTIN_OPTION_SECTIONS = ("inception", "resnet50", "simcover")


def resolve_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeepsnowError(f"features.device is {device!r} but CUDA is not available here")
    return torch.device(device)


def extractor_options(params: dict, name: str) -> dict:
    """The options section of extractor ``name`` within the ``features`` config section."""
    if name in BUILTIN_OPTION_SECTIONS:
        return dict(params[name])
    return dict(params["extra"].get(name) or {"weights": "auto"})


def build_from_params(name: str, params: dict) -> Extractor:
    """Build extractor ``name`` with its options in ``params``; the name is all the config gives
    (a built-in extractor or one of the ``deepsnow.extractors`` entry points, never a module)."""
    return build_extractor(name, extractor_options(params, name), seed=int(params["seed"]))


def check_images(images, what: str = "images", bands: dict | None = None) -> np.ndarray:
    """``images`` as an extractor takes them: (N, H, W, 3) uint8 RGB, or with ``bands`` (a reflectance
    simcover's, :class:`~deepsnow.features.base.Extractor`) (N, H, W, len(bands)) uint16 unit codes."""
    images = np.asarray(images)
    channels, dtype, kind = (3, np.uint8, "RGB") if bands is None else (len(bands["bands"]), np.uint16, "unit codes")
    if images.ndim != 4 or images.shape[-1] != channels:
        raise DeepsnowError(f"{what}: expected an (N, H, W, {channels}) {kind} array, got shape {images.shape}")
    if images.dtype != dtype:
        raise DeepsnowError(f"{what}: expected {np.dtype(dtype).name} {kind}, got {images.dtype}")
    return images


def _batch_tensor(images: np.ndarray, dev):
    """A batch (n, H, W, C) as float (n, C, H, W) on [0, 1] on ``dev``: RGB / 255, unit codes / 65535."""
    import torch

    if images.dtype == np.uint16:  # torch has few uint16 kernels: through float32 numpy
        return torch.from_numpy(images.astype(np.float32)).to(dev).permute(0, 3, 1, 2).div_(65535.0)
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(dev)
    return batch.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def embed_images(
    images,
    extractor: Extractor | str,
    *,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = False,
    desc: str | None = None,
    options: dict | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Features (N, D) float32 of uint8 RGB images (N, H, W, 3) with a built or registered extractor (a
    reflectance simcover: of unit codes (N, H, W, C) in its bands, :func:`band_images`)."""
    import torch
    from tqdm.auto import tqdm

    if isinstance(extractor, str):
        extractor = build_extractor(extractor, options, seed=seed)
    images = check_images(images, bands=extractor.bands)
    dev = resolve_device(device)
    module = extractor.module.to(dev).eval()
    n = len(images)
    out = np.empty((n, extractor.dim), dtype=np.float32)
    with torch.inference_mode():
        bar = tqdm(
            total=n,
            desc=desc or extractor.name,
            unit="img",
            disable=not progress or n == 0,
            mininterval=5.0,
            leave=False,
        )
        for start in range(0, n, batch_size):
            x = _batch_tensor(images[start : start + batch_size], dev)
            feats = module(x)
            if feats.ndim != 2 or feats.shape[1] != extractor.dim:
                raise DeepsnowError(
                    f"extractor {extractor.name!r} returned shape {tuple(feats.shape)}, expected (N, {extractor.dim})"
                )
            out[start : start + len(x)] = feats.float().cpu().numpy()
            bar.update(len(x))
        bar.close()
    if not np.isfinite(out).all():
        raise DeepsnowError(f"extractor {extractor.name!r} ({extractor.weights}) produced non-finite features")
    return out


def _ids(arrays: dict, key: str, n: int, path) -> np.ndarray:
    if key in arrays:
        ids = np.asarray(arrays[key]).astype(str)
        if len(ids) != n:
            raise DeepsnowError(f"{path}: {key!r} has {len(ids)} entries for {n} images")
        return ids
    return np.array([f"{i}" for i in range(n)])


def _run(images, ext: Extractor, params: dict, desc: str) -> np.ndarray:
    return embed_images(
        images,
        ext,
        batch_size=int(params["batch_size"]),
        device=params["device"],
        progress=bool(params["progress"]),
        desc=desc,
    )


def band_images(arrays: dict, key: str, path, bands: dict, weights: str) -> np.ndarray:
    """A reflectance file's ``arrays[key]`` in the extractor's ``bands`` (by name, in its order) as unit codes;
    an 8-bit RGB file, or one lacking a band, is refused naming the file, the band and the weights."""
    from deepsnow.data.bands import encode_units

    want = list(bands["bands"])
    if key not in arrays:
        raise DeepsnowError(f"{path}: missing arrays [{key!r}]; found {sorted(arrays)}")
    if not is_reflectance(arrays, path):
        raise DeepsnowError(f"{path}:{key}: 8-bit RGB images, but the simcover weights {weights} take reflectance bands {want}")
    have = [str(b) for b in np.asarray(arrays["bands"]).ravel()]
    missing = [b for b in want if b not in have]
    if missing:
        raise DeepsnowError(
            f"{path}: no band {missing[0]} (its bands: {have}); the simcover weights {weights} were trained on "
            f"bands {want}: train simcover on this run's bands, or give weights of these bands"
        )
    picked = np.asarray(arrays[key])[..., [have.index(b) for b in want]]
    return encode_units(picked, bands["unit_reflectance"])


def _embed_array(arrays: dict, key: str, ids_key: str, path, ext: Extractor, params: dict, desc: str, rgb=DEFAULT_RGB):
    """Features of the images ``arrays[key]`` read from ``path`` (a reflectance file's: of their RGB
    composite, rendered with ``rgb`` = (rgb_max, rgb_gamma); :mod:`deepsnow.features.rgbview`; a reflectance
    simcover's: of its bands, :func:`band_images`), and their ids."""
    if ext.bands is None:
        images = rgb_images(arrays, key, path, rgb)
    else:
        images = band_images(arrays, key, path, ext.bands, ext.weights)
    feats = _run(check_images(images, f"{path}:{key}", ext.bands), ext, params, desc)
    return feats, _ids(arrays, ids_key, len(feats), path)


def embed_real(real_a, real_b, output, ext: Extractor, params: dict, key: str = "rgb", rgb=DEFAULT_RGB) -> dict:
    """Embed the real test sets once: ``A``, ``B``, ``ids_A``, ``ids_B`` + metadata (reflectance test
    sets: their RGB composite)."""
    a, b = load_npz(real_a), load_npz(real_b)
    ka, kb = image_key(a, key, real_a), image_key(b, key, real_b)
    fa, ids_a = _embed_array(a, ka, "ids", real_a, ext, params, f"{ext.name} real A", rgb)
    fb, ids_b = _embed_array(b, kb, "ids", real_b, ext, params, f"{ext.name} real B", rgb)
    save_npz(output, A=fa, B=fb, ids_A=ids_a, ids_B=ids_b, **metadata_arrays(ext))
    return {"n_A": len(fa), "n_B": len(fb)}


def _check_sides(arrays: dict, path) -> None:
    """A two-sided model's samples hold ``fake_A`` with ``ids_B``, a one-sided model's (CUT) neither: one
    without the other is a damaged file, not a one-sided model."""
    if ("fake_A" in arrays) != ("ids_B" in arrays):
        missing = [k for k in ("fake_A", "ids_B") if k not in arrays]
        raise DeepsnowError(
            f"{path}: missing arrays {missing}; found {sorted(arrays)} (a two-sided model's samples hold fake_A "
            "and ids_B, a one-sided model's neither)"
        )


def embed_samples(samples, outputs, ext: Extractor, params: dict, rgb=DEFAULT_RGB) -> list[dict]:
    """Embed the samples of one or more epochs, one output file per samples file (reflectance samples:
    their RGB composite, rendered with ``rgb`` = (rgb_max, rgb_gamma))."""
    samples, outputs = list(samples), list(outputs)
    if len(samples) != len(outputs):
        raise DeepsnowError(f"--samples has {len(samples)} files but --outputs has {len(outputs)}; they pair by position")
    summaries = []
    for src, dst in zip(samples, outputs):
        s = load_npz(src, required=("fake_B", "epoch"))
        _check_sides(s, src)
        epoch = int(np.asarray(s["epoch"]).reshape(()))
        feats, ids = {}, {}
        # a one-sided model's samples (CUT, FastCUT) hold A->B only: so does their features file
        for fk, ik, what in (("fake_B", "ids_A", "fake B"), ("fake_A", "ids_B", "fake A")):
            if fk in s:
                feats[fk], ids[ik] = _embed_array(s, fk, ik, src, ext, params, f"{ext.name} epoch {epoch} {what}", rgb)
        save_npz(dst, **feats, **ids, epoch=np.array(epoch, dtype=np.int64), **metadata_arrays(ext))
        counts = {f"n_{fk}": len(feats[fk]) if fk in feats else 0 for fk in ("fake_B", "fake_A")}
        summaries.append({"samples": str(src), "output": str(dst), "epoch": epoch, **counts})
    return summaries


def embed_file(images, key: str, output, ext: Extractor, params: dict, ids_key: str = "ids", rgb=DEFAULT_RGB) -> dict:
    """Embed one image array ``key`` of an ``.npz``: ``features``, ``ids`` + metadata."""
    arrays = load_npz(images)
    key = image_key(arrays, key, images)
    feats, ids = _embed_array(arrays, key, ids_key, images, ext, params, f"{ext.name} {Path(images).name}:{key}", rgb)
    save_npz(output, features=feats, ids=ids, **metadata_arrays(ext))
    return {"n": len(feats)}


def expand_output(template: str | os.PathLike, extractor: str, n_extractors: int) -> Path:
    """Fill ``{extractor}`` in an output path; required when several extractors run in one call."""
    text = str(template)
    if "{extractor}" in text:
        return Path(text.replace("{extractor}", extractor))
    if n_extractors > 1:
        raise DeepsnowError(f"output {text!r} must contain '{{extractor}}' when several extractors run in one call")
    return Path(text)
