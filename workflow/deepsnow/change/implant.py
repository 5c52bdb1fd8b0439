"""Pixel-swap implant of anomalous changes (Theiler & Perkins 2006).

In a copy of the after-image, a seeded set of small square blobs (``blob_px`` pixels
on a side) is replaced by after-pixels taken from elsewhere in the same image: each
implanted pixel gets the after-value of a randomly chosen valid pixel outside the
blobs. Every implanted after-value is typical of the after-image and every
before-value typical of the before-image, but the pair is not: an anomalous change.

Blob corners are drawn uniformly (``numpy.random.default_rng(seed)``) until the
implanted valid pixels reach ``fraction`` of the valid area (or no more room is left);
only valid pixels are implanted. The same (seed, grid, valid mask) gives the same
locations and the same donor positions, so the real, synthetic and truth pairs of an
area share them (each pair's donors give that pair's own after-values).
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError


def check_fraction(fraction: float, where: str = "change.implant_fraction") -> float:
    """The implant fraction must lie in the open interval (0, 0.5)."""
    f = float(fraction)
    if not 0.0 < f < 0.5:
        raise DeepsnowError(f"{where} must be in (0, 0.5); got {fraction!r}")
    return f


def implant_mask(valid: np.ndarray, fraction: float, blob_px: int, seed: int) -> np.ndarray:
    """Boolean (H, W) mask of implanted pixels: seeded blobs covering ``fraction`` of ``valid``."""
    check_fraction(fraction)
    if blob_px < 1:
        raise DeepsnowError(f"change.blob_px must be >= 1; got {blob_px!r}")
    valid = np.asarray(valid, dtype=bool)
    h, w = valid.shape
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise DeepsnowError("no valid pixels to implant changes into")
    target = max(1, int(round(fraction * n_valid)))
    rng = np.random.default_rng(seed)
    mask = np.zeros_like(valid)
    b = min(blob_px, h, w)
    got, tries = 0, 0
    while got < target and tries < 50 * (target // (b * b) + 10):
        r, c = rng.integers(0, h - b + 1), rng.integers(0, w - b + 1)
        tries += 1
        block = valid[r : r + b, c : c + b] & ~mask[r : r + b, c : c + b]
        if not block.any():
            continue
        mask[r : r + b, c : c + b] |= block
        got += int(block.sum())
    return mask


def donor_indices(targets: np.ndarray, mask: np.ndarray, valid: np.ndarray, seed: int) -> np.ndarray:
    """Flat donor index per flat target index: valid pixels outside ``mask``, drawn with replacement.

    Drawn by rejection (uniform flat indices, kept when valid and not implanted), so memory is
    O(len(targets)) even on a full tile; the same (seed, targets, mask, valid) give the same donors.
    """
    ok = np.asarray(valid, bool).ravel() & ~np.asarray(mask, bool).ravel()
    n_ok = int(ok.sum())
    if n_ok == 0:
        raise DeepsnowError("no valid pixels outside the implanted blobs to take donors from")
    rng = np.random.default_rng([seed, 1])
    donors = np.empty(len(targets), dtype=np.int64)
    todo = np.arange(len(targets))
    while todo.size:
        draw = rng.integers(0, ok.size, size=max(todo.size * ok.size // n_ok + 16, 16))
        draw = draw[ok[draw]][: todo.size]
        donors[todo[: draw.size]] = draw
        todo = todo[draw.size :]
    return donors


def pixel_swap(after: np.ndarray, mask: np.ndarray, valid: np.ndarray, seed: int) -> np.ndarray:
    """Copy of ``after`` (bands, H, W) whose ``mask`` pixels hold the after-values of donors."""
    targets = np.flatnonzero(np.asarray(mask, bool).ravel())
    donors = donor_indices(targets, mask, valid, seed)
    out = np.array(after, copy=True)
    flat = out.reshape(out.shape[0], -1)
    flat[:, targets] = flat[:, donors]
    return out
