"""RGB runs are what they were before multispectral reflectance (issue #28, acceptance): a tiny cycleGAN
and CUT training on 8-bit RGB patches gives the weights, optimizer and RNG states, samples and losses
that the code before the band options gave.

The expected hashes were taken by running this same training with the package at 5bbe83b (main before
issue #28's band options) on this machine's CPU, torch 2.14.1, one thread, ``deterministic: true``,
2026-12-07; main gave the same at d0e959b. CPU float results can differ with another torch build, so
the test is skipped there (the patches' bit-identity is tested everywhere: test_patches_bands.py), and
with the CPU's SIMD level: pinned per level (tests/helpers.py ``pinned``), skipped on others.
"""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import torch

from deepsnow.cli import main
from deepsnow.io import load_npz, save_npz
from helpers import pinned

PARAMS = dict(ngf=4, ndf=4, n_blocks=1, load_size=32, crop_size=32, batch_size=2, n_epochs=1,
              n_epochs_decay=1, device="cpu", threads=1, deterministic=True, seed=3)
MODELS = {"cyclegan": {"pool_size": 2}, "cut": {"model": "cut", "num_patches": 8}}
#: sha256[:16] at 5bbe83b: checkpoint tensors (all but the timings in "history" and the new "bands"),
#: sample arrays, the loss table without its timing columns
EXPECTED = {
    # the machines of earlier sessions (AVX-512: an AVX2-only CPU rounds the training's floats
    # differently, below); the samples (uint8) agree on both
    "AVX512": {
        "cyclegan": {"epoch_001.pt": "823ce4097adfb6a4", "epoch_002.pt": "1021206ff2ac17d1",
                     "epoch_001.npz": "e3f56caef3f86e01", "epoch_002.npz": "4176f953a626837c",
                     "losses": "b3e3372b9c984628"},
        "cut": {"epoch_001.pt": "c9ed92190e59c40e", "epoch_002.pt": "103e927fbbf97e1c",
                "epoch_001.npz": "3fe8140563b349d5", "epoch_002.npz": "f618fc1b40623dcb",
                "losses": "26bed7164b564823"},
    },
    # this training with the package at 5bbe83b on an AVX2 AMD EPYC, torch 2.14.1, 2026-12-07 (main at
    # ba8304e gave the same)
    "AVX2": {
        "cyclegan": {"epoch_001.pt": "e211f61f69116757", "epoch_002.pt": "795ee65ebdb3877c",
                     "epoch_001.npz": "e3f56caef3f86e01", "epoch_002.npz": "4176f953a626837c",
                     "losses": "9f28e646fa4b1b78"},
        "cut": {"epoch_001.pt": "f90d3a4a6a64c5d5", "epoch_002.pt": "61a4658598978b6d",
                "epoch_001.npz": "3fe8140563b349d5", "epoch_002.npz": "f618fc1b40623dcb",
                "losses": "ef7f47ee8a8940aa"},
    },
}
TIMINGS = ("seconds", "it_per_s")

pytestmark = pytest.mark.skipif(
    not torch.__version__.startswith("2.14.1"),
    reason="hashes taken with torch 2.14.1 on CPU; other builds may round differently",
)


def _rgb_set(path, n, seed, size=32):
    rgb = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    save_npz(path, rgb=rgb, ids=np.array([f"{path.stem}_{i}" for i in range(n)]))
    return path


def _hash_tensors(obj, h):
    """Every tensor of a checkpoint in key order, leaving out the timings and the band record."""
    if isinstance(obj, torch.Tensor):
        h.update(obj.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, dict):
        for key in sorted(obj):
            if key not in ("bands", "history"):
                _hash_tensors(obj[key], h)


def _hash_samples(path):
    arrays, h = load_npz(path), hashlib.sha256()
    for key in sorted(arrays):
        if np.asarray(arrays[key]).dtype.kind in "fiu":
            h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()[:16]


def _hash_losses(path):
    with open(path, newline="") as f:
        rows = [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(f)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _train(tmp, model):
    sets = [_rgb_set(tmp / f"{n}.npz", k, s)
            for n, k, s in (("trainA", 4, 1), ("trainB", 3, 2), ("testA", 2, 3), ("testB", 2, 4))]
    d = tmp / "run"
    argv = ["train", "--params", json.dumps(PARAMS | MODELS[model]),
            "--samples-params", json.dumps({"batch_size": 2}),
            "--train-a", str(sets[0]), "--train-b", str(sets[1]), "--test-a", str(sets[2]),
            "--test-b", str(sets[3]), "--checkpoint-dir", str(d / "ck"), "--samples-dir", str(d / "samples"),
            "--state-dir", str(d / "st"), "--losses", str(d / "l.csv"), "--iter-losses", str(d / "li.csv"),
            "--no-progress"]
    assert main(argv) == 0
    return d


@pytest.mark.parametrize("model", sorted(MODELS))
def test_rgb_training_gives_what_it_gave_before_the_band_options(tmp_path, model):
    d = _train(tmp_path, model)
    got = {}
    for f in sorted((d / "ck").glob("*.pt")):
        h = hashlib.sha256()
        _hash_tensors(torch.load(f, weights_only=True, map_location="cpu"), h)
        got[f.name] = h.hexdigest()[:16]
    got |= {f.name: _hash_samples(f) for f in sorted((d / "samples").glob("*.npz"))}
    got["losses"] = _hash_losses(d / "l.csv")
    assert got == pinned(EXPECTED, "RGB training hashes")[model]
    # and the checkpoint says what it is
    assert torch.load(d / "ck" / "epoch_002.pt", weights_only=True)["bands"]["encoding"] == "rgb8"
