"""Domain data for the cycleGAN: loading, checking, and the reference augmentation.

The dataset files (``dataset/trainA.npz`` ...) hold ``rgb`` ``(N, S, S, 3) uint8``
and ``ids``. Training follows the reference ``unaligned`` dataset with
``serial_batches False`` and ``preprocess resize_and_crop``:

- an epoch has ``max(len(A), len(B))`` samples, visited in a random order
  (sample ``i`` takes ``A[i % len(A)]``) and batched without dropping the last
  partial batch, so ``ceil(max(len(A), len(B)) / batch_size)`` iterations;
- each sample takes a uniformly random ``B`` independently of ``A``;
- every image is resized (bicubic, antialiased) to ``load_size``, randomly cropped
  to ``crop_size`` and flipped left-right with probability 0.5 when ``flip``;
  A and B get independent crops and flips;
- pixels are scaled to [-1, 1] (``x / 127.5 - 1``).

All randomness of an epoch comes from one ``torch.Generator`` seeded from
``(seed, epoch)``, so any epoch can be replayed exactly after a resume.
The resize is done once, up front, to uint8 (as the reference's PIL resize
produces 8-bit images); crops and flips are cheap tensor indexing.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.io import load_npz


def load_domain(path: str | os.PathLike, name: str, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (N,S,S,3) uint8, ids (N,))`` of a dataset file, checked; clear errors naming the file."""
    arrays = load_npz(path, required=("rgb",))
    rgb = arrays["rgb"]
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise DeepsnowError(f"{path}: array 'rgb' must have shape (N, S, S, 3), found {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise DeepsnowError(f"{path}: array 'rgb' must be uint8, found {rgb.dtype}")
    if rgb.shape[1] != rgb.shape[2]:
        raise DeepsnowError(f"{path}: patches must be square, found {rgb.shape[1]}x{rgb.shape[2]}")
    if len(rgb) == 0 and not allow_empty:
        raise DeepsnowError(f"{path}: domain {name} is empty (0 patches); cannot train or sample without images")
    ids = arrays.get("ids")
    if ids is None:
        ids = np.array([f"{name}_{i:06d}" for i in range(len(rgb))])
    elif len(ids) != len(rgb):
        raise DeepsnowError(f"{path}: 'ids' has {len(ids)} entries but 'rgb' has {len(rgb)} patches")
    return rgb, np.asarray(ids).astype(str)


def to_tensor_uint8(rgb: np.ndarray) -> torch.Tensor:
    """(N,S,S,3) uint8 numpy -> (N,3,S,S) uint8 contiguous tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))


def to_unit(x_uint8: torch.Tensor, device=None, dtype=torch.float32) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (reference ``ToTensor`` then ``Normalize(0.5, 0.5)``)."""
    if device is not None:
        x_uint8 = x_uint8.to(device, non_blocking=True)
    return x_uint8.to(dtype).div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 ``round((x + 1) * 127.5)`` (the reference truncates instead)."""
    return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 256) -> torch.Tensor:
    """Bicubic, antialiased resize of (N,3,S,S) uint8 to ``size`` (PIL-like), in chunks; uint8 out."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for s in range(0, images.shape[0], chunk):
        out[s : s + chunk] = TF.resize(
            images[s : s + chunk], [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True
        )
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
        out = torch.empty((len(idx), images.shape[1], c, c), dtype=torch.uint8)
        for j, (i, (y, x), f) in enumerate(zip(idx.tolist(), off.tolist(), flip.tolist())):
            crop = images[i, :, y : y + c, x : x + c]
            out[j] = crop.flip(-1) if f else crop
        return out

    def batches(self, epoch: int):
        """Yield ``(real_A, real_B)`` uint8 (B,3,c,c) batches of an epoch, in order."""
        p = self.plan(epoch)
        for s in range(0, self.length, self.batch_size):
            sl = slice(s, s + self.batch_size)
            yield (
                self._gather(self.a, p.a_idx[sl], p.a_off[sl], p.a_flip[sl]),
                self._gather(self.b, p.b_idx[sl], p.b_off[sl], p.b_flip[sl]),
            )
