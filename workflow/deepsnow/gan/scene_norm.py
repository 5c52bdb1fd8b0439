"""Whole-scene instance normalisation for translating a scene tile by tile (``--norm scene``).

Instance norm normalises every channel by the mean and variance over the image it is given, so a tile
is normalised by its own statistics and a tiled scene differs from one pass over the whole scene
(and neighbouring tiles differ from each other: seams). ``--norm scene`` first measures, layer by
layer, the statistics each instance-norm layer would see over the whole scene, then translates tile
by tile with every norm layer fixed to them: the generator becomes a fixed (translation-equivariant)
operator and the tiles agree with each other and with a single whole-scene pass.

Measuring is exact, not a thumbnail approximation: the scene is cut into cores (the tile size) that
partition it, each read with a ``halo`` of context; all cores run through the generator in lockstep,
and at each norm layer the moments of the core pixels (the halo excluded, so tile edges do not bias
them) of all cores are pooled into the scene's mean and variance, which then normalise every core
before the next layer. A thumbnail pass (Chen et al. 2022) would be cheaper but measures the
statistics of a downsampled scene, whose variance is lower than at full resolution (fine texture is
lost). Memory is bounded by ``stats_px``: when the cores and halos of the whole scene exceed it
(a 10980 px Sentinel-2 tile is 120 Mpx), an evenly spread grid of cores that fits is measured
instead, a sample of the scene's statistics: every tile still shares one normalisation (no seams),
but the result drifts from a whole-scene pass by the sample's error (docs/performance.md: 1.5 DN
with 9 of 16 tiles of a 1024 px test scene, against 0.18 DN exact and 4.5 DN per-tile).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.gan.data import half_code


# -- the generator's view of a tile: measuring here and translating (deepsnow.gan.translate) read tiles alike


def ceil4(n: int) -> int:
    """``n`` rounded up to a multiple of 4, the generator's input grid (two stride-2 layers)."""
    return int(math.ceil(n / 4) * 4)


def _source_index(start: int, size: int, n: int, reflect: bool) -> np.ndarray:
    """Rows (or columns) of the image read for ``[start, start + size)`` of the image padded at its
    end: reflected there as ``torch.nn.functional.pad(mode="reflect")`` does (clamped when the
    image is too small to reflect)."""
    i = np.arange(start, start + size)
    if reflect:
        i = np.where(i >= n, 2 * (n - 1) - i, i)
    return np.clip(i, 0, n - 1)


def tile_tensor(rgb: np.ndarray, y: int, x: int, th: int, tw: int, shape=None, row0: int = 0) -> torch.Tensor:
    """``(C, th, tw)`` float tile in [-1, 1] of the image at ``(y, x)`` (uint8 RGB ``/ 127.5 - 1``, or uint16
    unit codes ``/ 32767.5 - 1``); only the tile is converted. ``rgb`` may be a slab of rows of a larger
    image: its first row is the image's ``row0``, ``shape`` the image's ``(H, W)`` (default: ``rgb``'s own)."""
    h, w = shape if shape is not None else rgb.shape[:2]
    rows, cols = tile_rows(y, th, h, w) - row0, _source_index(x, tw, w, min(h, w) > 3)
    tile = rgb[rows[:, None], cols[None, :]]
    return torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1))).float().div_(half_code(rgb.dtype)).sub_(1.0)


def tile_rows(y: int, th: int, h: int, w: int) -> np.ndarray:
    """The image rows a tile of ``th`` rows at ``y`` reads (reflected past the bottom edge as
    :func:`tile_tensor` pads it) of an ``h x w`` image."""
    return _source_index(y, th, h, min(h, w) > 3)


class ArrayRows:
    """Rows of an in-memory ``(H, W, C)`` image (and its valid mask, all valid by default), as
    :func:`scene_statistics` and the translation read them; a scene file is read alike, window by
    window (:class:`deepsnow.gan.translate.SceneRows`). ``read(r0, r1)``: rows ``[r0, r1)`` as
    ``(n, W, C)``; ``valid(r0, r1)``: their mask; ``all_valid()``."""

    def __init__(self, data: np.ndarray, valid: np.ndarray | None = None):
        self.data, self._valid = data, valid
        self.shape, self.channels, self.dtype = data.shape[:2], data.shape[2], data.dtype

    def read(self, r0: int, r1: int) -> np.ndarray:
        return self.data[r0:r1]

    def valid(self, r0: int, r1: int) -> np.ndarray:
        if self._valid is None:
            return np.ones((min(r1, self.shape[0]) - r0, self.shape[1]), bool)
        return self._valid[r0:r1]

    def all_valid(self) -> bool:
        return self._valid is None or bool(self._valid.all())


def as_rows(image):
    """``image`` as a row reader: an ``(H, W, C)`` array wrapped in :class:`ArrayRows`, a reader as it is."""
    return ArrayRows(image) if isinstance(image, np.ndarray) else image


def read_slab(reader, y: int, th: int) -> tuple[np.ndarray, int]:
    """``(rows, row0)``: the rows of ``reader`` a tile of ``th`` rows at ``y`` reads (:func:`tile_rows`),
    read at once, and the image row of their first."""
    h, w = reader.shape
    rows = tile_rows(y, th, h, w)
    r0 = int(rows.min())
    return reader.read(r0, int(rows.max()) + 1), r0


# -- the statistics and the generator that uses them


class _FixedNorm(torch.nn.Module):
    """An affine-free instance norm with given per-channel statistics instead of the input's own."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor, eps: float):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("rstd", torch.rsqrt(var.reshape(1, -1, 1, 1).float() + eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) * self.rstd.to(x.dtype)


def _steps(net: torch.nn.Module) -> list:
    """The generator as a flat list of modules, with "push" / "add" around each residual block."""
    from deepsnow.gan.networks import ResnetBlock

    steps: list = []
    for m in net.model:
        if isinstance(m, ResnetBlock):
            steps += ["push", *m.conv_block, "add"]
        else:
            steps.append(m)
    return steps


def stats_cores(ph: int, pw: int, core: int, halo: int, max_px: int) -> list[tuple[int, int, int, int]]:
    """Cores ``(y, x, ch, cw)`` measured for the scene statistics: all that partition the (padded)
    ``ph x pw`` scene, or an evenly spread grid of them whose cores and halos total <= ``max_px``."""
    ys, xs = list(range(0, ph, core)), list(range(0, pw, core))
    per_core = (core + 2 * halo) ** 2
    k = max(1, max_px // per_core)
    if len(ys) * len(xs) > k:
        ky = max(1, min(len(ys), round(math.sqrt(k * len(ys) / len(xs)))))
        kx = max(1, min(len(xs), k // ky))
        ys = [ys[i] for i in sorted({int(round(v)) for v in np.linspace(0, len(ys) - 1, ky)})]
        xs = [xs[i] for i in sorted({int(round(v)) for v in np.linspace(0, len(xs) - 1, kx)})]
    return [(y, x, min(core, ph - y), min(core, pw - x)) for y in ys for x in xs]


def scene_statistics(
    net: torch.nn.Module, rgb, core: int = 256, halo: int = 32, max_px: int = 2**20, device="cpu"
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], float]:
    """Per instance-norm layer ``(mean, var)`` over the whole scene (see the module docstring); and the fraction of
    the scene's cores measured (1.0: exact). ``rgb``: an ``(H, W, C)`` image or a row reader (:class:`ArrayRows`,
    :class:`deepsnow.gan.translate.SceneRows`), read a row of cores at a time."""
    reader = as_rows(rgb)
    ph, pw = ceil4(reader.shape[0]), ceil4(reader.shape[1])
    core, halo = ceil4(max(core, 4)), ceil4(halo)
    cores = stats_cores(ph, pw, core, halo, max_px)
    xs, regions = _core_tiles(reader, cores, halo, device)
    stats, saved = [], []
    net.eval()
    with torch.inference_mode():
        for step in _steps(net):
            if step == "push":
                saved = list(xs)  # the block's input, kept for its residual sum
            elif step == "add":
                xs, saved = [s + t for s, t in zip(saved, xs)], []
            elif isinstance(step, torch.nn.InstanceNorm2d):
                mean, var = _pooled_moments(xs, regions)
                stats.append((mean.cpu(), var.cpu()))
                norm = _FixedNorm(mean, var, step.eps).to(device)
                _apply(norm, xs)
            else:
                _apply(step, xs)
    n_all = math.ceil(ph / core) * math.ceil(pw / core)
    return stats, len(cores) / n_all


def _core_tiles(reader, cores: list, halo: int, device) -> tuple[list[torch.Tensor], list[tuple]]:
    """Each core's tile with its ``halo`` (clipped to the padded scene) on ``device``, and its region
    ``(cy, cx, ch, cw, tile_h)`` in the tile; the rows of a row of cores are read once."""
    h, w = reader.shape
    ph, pw = ceil4(h), ceil4(w)
    xs, regions, slab = [], [], None
    for y, x, ch, cw in cores:
        y0, x0, y1, x1 = max(0, y - halo), max(0, x - halo), min(ph, y + ch + halo), min(pw, x + cw + halo)
        if slab is None or slab[2] != (y0, y1):
            slab = (*read_slab(reader, y0, y1 - y0), (y0, y1))
        xs.append(tile_tensor(slab[0], y0, x0, y1 - y0, x1 - x0, (h, w), slab[1])[None].to(device))
        regions.append((y - y0, x - x0, ch, cw, y1 - y0))
    return xs, regions


def _apply(step, xs: list) -> None:
    """``xs[i] = step(xs[i])`` in place: each input is freed as soon as its output exists, so the
    cores' activations are held once (not twice) at every layer."""
    for i in range(len(xs)):
        xs[i] = step(xs[i])


def _pooled_moments(xs: list[torch.Tensor], regions: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased, as instance norm's) variance over the core pixels of all tiles."""
    total, total_sq, n = 0.0, 0.0, 0
    for t, (cy, cx, ch, cw, tile_h) in zip(xs, regions):
        f = t.shape[-2] / tile_h  # this layer's resolution: 1, 1/2 or 1/4 (cores sit on multiples of 4)
        part = t[0, :, int(cy * f) : int((cy + ch) * f), int(cx * f) : int((cx + cw) * f)].double()
        total = total + part.sum(dim=(1, 2))
        total_sq = total_sq + (part * part).sum(dim=(1, 2))
        n += part.shape[1] * part.shape[2]
    mean = total / n
    return mean, (total_sq / n - mean * mean).clamp_min(0.0)


def with_scene_norm(net: torch.nn.Module, stats: list) -> torch.nn.Module:
    """A copy of ``net`` whose instance-norm layers use ``stats`` (in order); ``net`` is untouched."""
    import copy

    fixed = copy.deepcopy(net)
    modules = dict(fixed.named_modules())
    norms = [  # in forward order (named_modules is depth-first, as the steps are)
        (modules[path.rpartition(".")[0]], path.rpartition(".")[2], m)
        for path, m in fixed.named_modules()
        if isinstance(m, torch.nn.InstanceNorm2d)
    ]
    if len(norms) != len(stats):
        raise DeepsnowError(f"generator has {len(norms)} instance-norm layers but {len(stats)} statistics")
    device = next(fixed.parameters()).device
    for (parent, name, child), (mean, var) in zip(norms, stats):
        setattr(parent, name, _FixedNorm(mean, var, child.eps).to(device))
    return fixed.eval()
