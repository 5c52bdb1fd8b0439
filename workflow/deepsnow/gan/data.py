"""Domain data for the cycleGAN: loading, checking, and the reference augmentation.

The dataset files (``dataset/trainA.npz`` ...) hold ``rgb`` ``(N, S, S, 3) uint8``
and ``ids``, or, with ``patches.encoding: reflectance``, ``reflectance`` ``(N, S, S, C) uint16`` named by
``bands`` (:mod:`deepsnow.data.bands`). Reflectance is held as 16-bit unit codes (the fixed per-band
mapping of :mod:`deepsnow.data.bands`), so every step below treats both alike: an unsigned image whose
largest code (255 or 65535) maps to +1. Training follows the reference ``unaligned`` dataset with
``serial_batches False`` and ``preprocess resize_and_crop``:

- an epoch has ``max(len(A), len(B))`` samples, visited in a random order
  (sample ``i`` takes ``A[i % len(A)]``) and batched without dropping the last
  partial batch, so ``ceil(max(len(A), len(B)) / batch_size)`` iterations;
- each sample takes a uniformly random ``B`` independently of ``A``;
- every image is resized (bicubic, antialiased) to ``load_size``, randomly cropped
  to ``crop_size`` and flipped left-right with probability 0.5 when ``flip``;
  A and B get independent crops and flips;
- pixels are scaled to [-1, 1] (``x / 127.5 - 1``; unit codes ``q / 32767.5 - 1``).

All randomness of an epoch comes from one ``torch.Generator`` seeded from
``(seed, epoch)``, so any epoch can be replayed exactly after a resume.
The resize is done once, up front, to the image's own type (as the reference's PIL resize produces
8-bit images); crops and flips are cheap tensor indexing.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.data.bands import CODE_MAX, RGB_BANDS, check_bands, code_max, encode_units, image_of, unit_scales
from deepsnow.io import load_npz


@dataclass(frozen=True)
class BandSet:
    """The bands a network takes and gives (one channel each) and how: ``encoding`` rgb8 (8-bit RGB) or
    reflectance, whose ``unit_reflectance`` (one per band) maps to +1 (:mod:`deepsnow.data.bands`).
    Stored in every checkpoint (:meth:`as_dict`)."""

    bands: tuple[str, ...]
    encoding: str
    unit_reflectance: tuple[float, ...] | None = None

    @classmethod
    def of(cls, bands, encoding: str) -> "BandSet":
        """The band set of a dataset: reflectance gets the fixed table's scales."""
        bands = tuple(bands)
        return cls(bands, encoding, tuple(unit_scales(bands)) if encoding == "reflectance" else None)

    @classmethod
    def from_dict(cls, d, source: str) -> "BandSet":
        """A checkpoint's band set (None: written before checkpoints had one, so RGB), checked."""
        if d is None:
            return RGB
        try:
            bands, encoding = tuple(str(b) for b in d["bands"]), str(d["encoding"])
            scales = d.get("unit_reflectance")
            scales = None if scales is None else tuple(float(v) for v in scales)
        except (KeyError, TypeError) as exc:
            raise DeepsnowError(f"{source}: unreadable band set {d!r} ({exc})") from None
        problems = check_bands(bands, encoding, key=f"{source}: bands")
        if not problems and (encoding == "reflectance") != (scales is not None and len(scales) == len(bands)):
            problems = [f"{source}: band set {d!r} needs one unit_reflectance per band exactly when reflectance"]
        if problems:
            raise DeepsnowError("; ".join(problems))
        return cls(bands, encoding, scales)

    def as_dict(self) -> dict:
        scales = None if self.unit_reflectance is None else list(self.unit_reflectance)
        return {"bands": list(self.bands), "encoding": self.encoding, "unit_reflectance": scales}

    @property
    def n(self) -> int:
        return len(self.bands)

    def describe(self) -> str:
        return f"{self.encoding} {' '.join(self.bands)}"


#: The paper's setting: B04 B03 B02 as 8-bit RGB (and any checkpoint without a band set).
RGB = BandSet(RGB_BANDS, "rgb8")


def load_domain(
    path: str | os.PathLike, name: str, allow_empty: bool = False, bands: BandSet | None = None
) -> tuple[np.ndarray, np.ndarray, BandSet]:
    """``(images (N,S,S,C), ids (N,), bands)`` of a dataset file, checked; clear errors naming the file.
    Images are ``uint8`` RGB, or reflectance as ``uint16`` unit codes (:func:`deepsnow.data.bands.encode_units`)
    of the fixed table's mapping, or of ``bands``'s (a checkpoint's) when its bands are the file's."""
    arrays = load_npz(path)
    key, names, encoding = image_of(arrays, path, "dataset")
    bandset = BandSet.of(names, encoding)
    if bands is not None and (bands.bands, bands.encoding) == (bandset.bands, bandset.encoding):
        bandset = bands
    rgb = arrays[key] if encoding == "rgb8" else encode_units(arrays[key], bandset.unit_reflectance)
    if rgb.shape[1] != rgb.shape[2]:
        raise DeepsnowError(f"{path}: patches must be square, found {rgb.shape[1]}x{rgb.shape[2]}")
    if len(rgb) == 0 and not allow_empty:
        raise DeepsnowError(f"{path}: domain {name} is empty (0 patches); cannot train or sample without images")
    ids = arrays.get("ids")
    if ids is None:
        ids = np.array([f"{name}_{i:06d}" for i in range(len(rgb))])
    elif len(ids) != len(rgb):
        raise DeepsnowError(f"{path}: 'ids' has {len(ids)} entries but {key!r} has {len(rgb)} patches")
    return rgb, np.asarray(ids).astype(str), bandset


def same_bands(sets: dict) -> None:
    """Refuse dataset files (path -> :class:`BandSet`) of different bands, naming them."""
    (first, fb), *rest = sets.items()
    for path, b in rest:
        if b != fb:
            raise DeepsnowError(
                f"{path}: patches of {b.describe()}, but {first} has {fb.describe()}; training and test "
                "sets must come from one split of one patches.bands and patches.encoding"
            )


def to_tensor_uint8(rgb: np.ndarray) -> torch.Tensor:
    """(N,S,S,3) uint8 numpy -> (N,3,S,S) uint8 contiguous tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))


def half_code(dtype) -> float:
    """Half the largest code of an image type: 127.5 (uint8 RGB) or 32767.5 (uint16 unit codes)."""
    return {torch.uint8: 127.5, torch.uint16: CODE_MAX / 2}[dtype] if isinstance(dtype, torch.dtype) else code_max(dtype) / 2


def to_unit(x_uint8: torch.Tensor, device=None, dtype=torch.float32) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (reference ``ToTensor`` then ``Normalize(0.5, 0.5)``); uint16
    unit codes likewise (``q / 32767.5 - 1``)."""
    half = half_code(x_uint8.dtype)
    if device is not None:
        x_uint8 = x_uint8.to(device, non_blocking=True)
    return x_uint8.to(dtype).div_(half).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 ``round((x + 1) * 127.5)`` (the reference truncates instead)."""
    return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)


def to_codes(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float images in [-1, 1] -> codes of ``dtype``: :func:`to_uint8`, or uint16 ``round((x + 1) * 32767.5)``."""
    if dtype == torch.uint8:
        return to_uint8(x)
    return ((x.float().clamp(-1, 1) + 1.0) * half_code(dtype)).round_().to(torch.int32).to(dtype)


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 256) -> torch.Tensor:
    """Bicubic, antialiased resize of (N,C,S,S) uint8 to ``size`` (PIL-like), in chunks; uint8 out.
    uint16 unit codes are resized in float32 and rounded back to uint16."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=images.dtype)
    for s in range(0, images.shape[0], chunk):
        part = images[s : s + chunk]
        if images.dtype != torch.uint8:
            part = part.to(torch.float32)
        part = TF.resize(part, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        if images.dtype != torch.uint8:
            part = part.round_().clamp_(0, CODE_MAX).to(torch.int32).to(images.dtype)
        out[s : s + chunk] = part
    return out


def epoch_seed(seed: int, epoch: int, stream: str = "data") -> int:
    """A 63-bit seed for one epoch's random stream, independent of everything else."""
    digest = hashlib.sha256(f"deepsnow-gan:{stream}:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class EpochPlan:
    """All random choices of one epoch (index tensors, CPU)."""

    a_idx: torch.Tensor
    b_idx: torch.Tensor
    a_off: torch.Tensor  # (L, 2) crop offsets (y, x)
    b_off: torch.Tensor
    a_flip: torch.Tensor  # (L,) bool
    b_flip: torch.Tensor


class UnalignedData:
    """Both training domains in memory (uint8, resized to ``load_size``) and the per-epoch sampling."""

    def __init__(self, rgb_a: np.ndarray, rgb_b: np.ndarray, params: dict, source_a: str = "A", source_b: str = "B"):
        for rgb, src, name in ((rgb_a, source_a, "A"), (rgb_b, source_b, "B")):
            if len(rgb) == 0:
                raise DeepsnowError(f"{src}: domain {name} is empty (0 patches); cannot train without images")
        self.load_size = int(params["load_size"])
        self.crop_size = int(params["crop_size"])
        # crop_size <= load_size, % 4 and >= the PatchGAN's minimum are config checks (deepsnow.config).
        self.flip = bool(params["flip"])
        self.batch_size = int(params["batch_size"])
        self.seed = int(params["seed"])
        self.a = resize_uint8(to_tensor_uint8(rgb_a), self.load_size)
        self.b = resize_uint8(to_tensor_uint8(rgb_b), self.load_size)
        self.length = max(len(self.a), len(self.b))

    @property
    def iterations_per_epoch(self) -> int:
        return math.ceil(self.length / self.batch_size)

    def plan(self, epoch: int) -> EpochPlan:
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        n = self.length
        perm = torch.randperm(n, generator=g)
        a_idx = perm % len(self.a)
        b_idx = torch.randint(0, len(self.b), (n,), generator=g)
        span = self.load_size - self.crop_size + 1
        a_off = torch.randint(0, span, (n, 2), generator=g)
        b_off = torch.randint(0, span, (n, 2), generator=g)
        flips = torch.rand((n, 2), generator=g) < 0.5
        if not self.flip:
            flips[:] = False
        return EpochPlan(a_idx, b_idx, a_off, b_off, flips[:, 0].clone(), flips[:, 1].clone())

    def _gather(self, images: torch.Tensor, idx, off, flip) -> torch.Tensor:
        c = self.crop_size
        out = torch.empty((len(idx), images.shape[1], c, c), dtype=images.dtype)
        for j, (i, (y, x), f) in enumerate(zip(idx.tolist(), off.tolist(), flip.tolist())):
            crop = images[i, :, y : y + c, x : x + c]
            out[j] = crop.flip(-1) if f else crop
        return out

    def batches(self, epoch: int):
        """Yield ``(real_A, real_B)`` (B,C,c,c) batches of an epoch (uint8, or uint16 unit codes), in order."""
        p = self.plan(epoch)
        for s in range(0, self.length, self.batch_size):
            sl = slice(s, s + self.batch_size)
            yield (
                self._gather(self.a, p.a_idx[sl], p.a_off[sl], p.a_flip[sl]),
                self._gather(self.b, p.b_idx[sl], p.b_off[sl], p.b_flip[sl]),
            )
