"""The testbed's seeded sample of pixels used, in memory proportional to the sample, not the scene.

The pixels used have always been ``np.sort(rng.choice(flatnonzero(valid), max_pixels,
replace=False))`` with ``rng = default_rng([seed, 2])``. On a full tile that call holds two
arrays of one int64 per valid pixel (~1 GB each for 120 M pixels): the flat indices, and
the ``arange`` numpy's tail shuffle permutes when the sample is more than 1/50 of the
population. This module draws the *same* sample without either:

* :func:`sample_ranks` returns the ranks (positions among the valid pixels) that numpy's
  ``choice`` picks, replaying its tail shuffle from the swap targets alone;
* :func:`flat_indices` maps sorted ranks to flat pixel indices row window by row window.

Replaying the tail shuffle: numpy's ``choice(n, size, replace=False)`` with ``n > 10000`` and
``size > n // 50`` fills ``arange(n)`` and, for ``i = n-1`` down to ``n-size``, swaps slot ``i``
with slot ``j_i``, ``j_i`` uniform in ``[0, i]`` (``random_bounded_uint64``, the same draw
``Generator.integers`` makes per element of an int64 array bound); the sample is the last ``size``
slots. Slot ``i`` is final after step ``i``, holding what slot ``j_i`` held just before: the value
the latest earlier step wrote there (a step ``m`` writes to slot ``j_m`` the value slot ``m``
held), or ``j_i`` itself if no step wrote there. Those "latest earlier write" links form a forest
resolved by pointer jumping, all in arrays of ``size`` entries.
"""

from __future__ import annotations

import numpy as np

#: numpy's ``choice(..., replace=False, shuffle=True)`` permutes a full ``arange`` (the tail
#: shuffle) above this population when the sample exceeds ``population // TAIL_CUTOFF``
TAIL_MIN_POPULATION = 10000
TAIL_CUTOFF = 50


def sample_ranks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """The set ``rng.choice(n, size, replace=False)`` draws (unsorted), with O(size) memory."""
    if not (n > TAIL_MIN_POPULATION and size > n // TAIL_CUTOFF) or size >= n:
        return rng.choice(n, size=size, replace=False)  # Floyd's algorithm: O(size) already
    steps = np.arange(n - 1, n - size - 1, -1, dtype=np.int64)  # processing order
    targets = rng.integers(0, steps, endpoint=True, dtype=np.int64)
    # (target slot, step) pairs sorted: the writes to one slot, in increasing step order
    keys = np.sort(targets * n + steps)

    def last_write(slot: np.ndarray, before_step: np.ndarray) -> np.ndarray:
        """The step that last wrote ``slot`` before ``before_step`` ran (steps run downwards); -1 if none."""
        k = np.searchsorted(keys, slot * n + before_step, side="right")
        found = k < keys.size
        found[found] = keys[k[found]] // n == slot[found]
        return np.where(found, keys[np.minimum(k, keys.size - 1)] % n, -1)

    def order(step: np.ndarray) -> np.ndarray:
        return (n - 1) - step

    # held[t]: what slot steps[t] holds just before its step: the value of its own last writer
    writer = last_write(steps, steps)
    ptr = np.where(writer >= 0, order(writer), np.arange(size))
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    held = steps[ptr]
    del ptr, writer
    source = last_write(targets, steps)
    return np.where(source >= 0, held[order(np.where(source >= 0, source, steps))], targets)


def flat_indices(valid: np.ndarray, ranks: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Flat indices of the valid pixels of sorted ``ranks`` (0 = the first valid pixel in row order)."""
    h, w = valid.shape
    per_row = np.concatenate([[0], np.cumsum(np.count_nonzero(valid, axis=1))])
    out = np.empty(ranks.size, dtype=np.int64)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        lo, hi = np.searchsorted(ranks, per_row[[r0, r1]])
        if lo < hi:
            out[lo:hi] = np.flatnonzero(valid[r0:r1].ravel())[ranks[lo:hi] - per_row[r0]] + r0 * w
    return out
