"""Training ``simcover`` on the training patches of both domains (``dataset/trainA.npz``, ``trainB.npz``).

Seeded and deterministic on CPU for a given thread count: the initialisation, the hold-out draw,
the batch order and the flips all come from generators seeded with the seed. A seeded share
``params['holdout']`` of the training patches (of each domain) is held out; the held-out error of
the fractions is the measure of what it learnt, next to the error of always predicting the
training mean (the baseline a network that learnt nothing reaches).

The thread count is part of the numerics, not only of the speed: oneDNN chooses its convolution
kernels by thread count, so one step's gradients differ by up to ~4e-3 between 1 and 2 threads and
two trainings drift apart from there, as two seeds do. So training runs at ``params['threads']``
whatever the caller set (:func:`torch_threads`), and the same count on the same CPU gives the same
bytes. What keeps the held-out quality from depending on where such a drift ends is how training
ends: the learning rate decays to zero along half a cosine (see :func:`cosine_schedule`).
``params['n_seeds']`` trainings (seeds ``seed``, ``seed + 1``, ...) give the spread of the held-out
numbers; the weights kept are those of ``seed``.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.data.bands import code_max
from deepsnow.features.simcover import SNOW_TARGET, SimcoverNet, new_network, reflectance_bands, weights_payload
from deepsnow.io import load_npz

log = logging.getLogger("deepsnow.features")


def training_images(arrays: dict, path) -> tuple[np.ndarray, dict | None]:
    """A training set's images as the network takes them, and its bands record: 8-bit RGB as stored (None),
    or a reflectance set's every band as unit codes (``uint16``, 65535 = ``UNIT_REFLECTANCE`` of the band)."""
    from deepsnow.data.bands import encode_units, image_of

    key, bands, encoding = image_of(arrays, path, "training set")
    if encoding != "reflectance":
        return np.asarray(arrays[key]), None
    rec = reflectance_bands(list(bands))
    return encode_units(arrays[key], rec["unit_reflectance"]), rec


def _targets(arrays: dict, path, first: list[str] | None, paths) -> list[str]:
    """A training set's ``landcover_targets``, checked against the first set's (errors name the file)."""
    if "landcover" not in arrays or "landcover_targets" not in arrays:
        raise DeepsnowError(
            f"{path}: no 'landcover' array: simcover learns the simulator's land-cover fractions, which only "
            "simulator runs have (data.source: simulator); on other data give features.simcover.weights_path"
        )
    t = [str(x) for x in arrays["landcover_targets"]]
    if first is not None and t != first:
        raise DeepsnowError(f"{path}: landcover_targets {t} differ from {first} of {paths[0]}")
    if not t or t[-1] != SNOW_TARGET:
        raise DeepsnowError(f"{path}: landcover_targets {t} must end with {SNOW_TARGET!r}")
    return t


def load_training_sets(paths) -> tuple[np.ndarray, np.ndarray, list[str], dict | None]:
    """Images (N, S, S, C), targets (N, T) float32, the target names and the bands record
    (:func:`training_images`) of the training sets; all must carry ``landcover`` and the same bands.
    An RGB run's are its 8-bit RGB; a reflectance run's, all its bands (docs/bands.md)."""
    images, ys, targets, bands = [], [], None, None
    for path in paths:
        arrays = load_npz(path)
        img, rec = training_images(arrays, path)
        if images and rec != bands:
            raise DeepsnowError(f"{path}: bands {rec and rec['bands'] or 'rgb8'} differ from "
                                f"{bands and bands['bands'] or 'rgb8'} of {paths[0]}")
        targets, bands = _targets(arrays, path, targets, paths), rec
        images.append(img)
        ys.append(np.asarray(arrays["landcover"], dtype=np.float32))
    x, y = np.concatenate(images), np.concatenate(ys)
    if len(x) < 2:
        raise DeepsnowError(f"simcover needs at least 2 training patches, found {len(x)} in {', '.join(map(str, paths))}")
    return x, y, targets, bands


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) index arrays; at least one patch on each side."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(n * fraction)), 1), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) 8-bit RGB or uint16 unit codes -> float (N, C, H, W) on [0, 1]."""
    if images.dtype == np.uint16:  # torch has few uint16 kernels: through float32 numpy
        return torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2).div_(float(code_max(images.dtype)))
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def fraction_errors(pred: np.ndarray, y: np.ndarray) -> dict:
    """Mean absolute error of the class fractions and of the snow fraction, and dominant-class accuracy."""
    return {
        "class_fraction_mae": float(np.abs(pred[:, :-1] - y[:, :-1]).mean()),
        "snow_fraction_mae": float(np.abs(pred[:, -1] - y[:, -1]).mean()),
        "dominant_class_accuracy": float((pred[:, :-1].argmax(1) == y[:, :-1].argmax(1)).mean()),
    }


def predict(net: SimcoverNet, x: torch.Tensor, batch_size: int) -> np.ndarray:
    net.eval()
    with torch.inference_mode():
        return torch.cat([net.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def _batch(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, gen: torch.Generator):
    """A training batch with seeded random horizontal and vertical flips (the fractions do not change)."""
    xb = x[idx].clone()
    for dim in (2, 3):
        flip = torch.rand(len(idx), generator=gen) < 0.5
        xb[flip] = xb[flip].flip(dim)
    return xb, y[idx]


@contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` inside (0: left as it is); the caller's count comes back after."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def total_steps(n: int, params: dict) -> int:
    """Optimiser steps of a training on ``n`` patches: every batch of every epoch, at most ``max_steps`` (> 0)."""
    steps = int(params["epochs"]) * math.ceil(n / int(params["batch_size"]))
    return min(steps, int(params["max_steps"])) if int(params["max_steps"]) else steps


def cosine_schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate from ``lr`` down to 0 over ``steps`` steps (half a cosine), stepped once per batch.

    At a constant rate every epoch still moved the weights far: on the demo the held-out
    dominant-class accuracy in eval mode jumped by up to 0.4 between the last epochs (seed 2:
    0.71, 0.68, 0.34, 0.77 in epochs 5-8), so where training stopped decided it; the same weights
    with the held-out batch's own BatchNorm statistics moved less (0.79, 0.53, 0.75, 0.79): the
    running statistics, averaged over the last steps' weights, did not fit the final ones.
    Decayed to zero, the last steps settle both."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))


def fit(net: SimcoverNet, x: torch.Tensor, y: torch.Tensor, params: dict, seed: int) -> list[dict]:
    """Adam over ``params['epochs']`` epochs (at most ``params['max_steps']`` steps when > 0), cosine-decayed
    learning rate; per-epoch losses."""
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(net.parameters(), lr=float(params["lr"]))
    steps = total_steps(len(x), params)
    schedule = cosine_schedule(opt, steps)
    bs = int(params["batch_size"])
    history, step, t0 = [], 0, time.monotonic()
    for epoch in range(1, int(params["epochs"]) + 1):
        net.train()
        order, total, seen = torch.randperm(len(x), generator=gen), 0.0, 0
        for start in range(0, len(x), bs):
            if step >= steps:
                break
            xb, yb = _batch(x, y, order[start : start + bs], gen)
            loss = net.loss(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            total, seen, step = total + float(loss.detach()) * len(xb), seen + len(xb), step + 1
        rate = seen / max(time.monotonic() - t0, 1e-9)
        t0 = time.monotonic()
        history.append({"epoch": epoch, "loss": total / max(seen, 1), "patches": seen, "patches_per_s": rate})
        log.info("simcover seed %d epoch %d/%d: loss %.4f (%d patches, %.1f patches/s)",
                 seed, epoch, int(params["epochs"]), history[-1]["loss"], seen, rate)
    return history


def train_one(images: np.ndarray, y: np.ndarray, targets: list[str], params: dict, seed: int, bands: dict | None = None):
    """One seeded training: (network, {seed, n_train, n_heldout, heldout, baseline_train_mean, history}).
    ``images``, ``bands``: :func:`load_training_sets`'s."""
    fit_idx, held_idx = holdout_split(len(images), float(params["holdout"]), seed)
    x, yt = to_tensor(images), torch.from_numpy(y)
    net = new_network(len(targets), int(params["size"]), seed, bands)
    fit_x = x[fit_idx]
    with torch.no_grad():  # input normalisation from the patches it is fitted on
        net.mean.copy_(fit_x.mean(dim=(0, 2, 3)).view(1, -1, 1, 1))
        net.std.copy_(fit_x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1))
    log.info("simcover seed %d: %d training patches (%d held out), %d targets, input %d px",
             seed, len(fit_idx), len(held_idx), len(targets), net.size)
    history = fit(net, fit_x, yt[fit_idx], params, seed)
    held = fraction_errors(predict(net, x[held_idx], int(params["batch_size"])), y[held_idx])
    baseline = fraction_errors(np.broadcast_to(y[fit_idx].mean(0), y[held_idx].shape), y[held_idx])
    log.info("simcover seed %d held out (%d patches): class-fraction MAE %.4f (training-mean baseline %.4f), "
             "snow-fraction MAE %.4f (baseline %.4f), dominant-class accuracy %.3f (baseline %.3f)",
             seed, len(held_idx), held["class_fraction_mae"], baseline["class_fraction_mae"], held["snow_fraction_mae"],
             baseline["snow_fraction_mae"], held["dominant_class_accuracy"], baseline["dominant_class_accuracy"])
    return net, {"seed": int(seed), "n_train": int(len(fit_idx)), "n_heldout": int(len(held_idx)),
                 "heldout": held, "baseline_train_mean": baseline, "history": history}


def spread(results: list[dict]) -> dict:
    """Mean, sample s.d. (0 for one seed), min and max of each held-out and baseline measure over the seeds."""
    out = {}
    for part in ("heldout", "baseline_train_mean"):
        out[part] = {}
        for key in results[0][part]:
            v = np.array([r[part][key] for r in results], dtype=np.float64)
            sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            out[part][key] = {"mean": float(v.mean()), "sd": sd, "min": float(v.min()), "max": float(v.max())}
    return out


def train_simcover(train_paths, params: dict) -> tuple[dict, dict]:
    """Train ``n_seeds`` seeds on the training sets with ``params['threads']`` torch threads, the caller's restored after.

    Returns (weights payload of seed ``params['seed']`` for ``simcover.pt``, summary): the summary's
    top-level ``heldout``, ``baseline_train_mean`` and ``history`` are that kept model's, ``seeds``
    every seed's, ``spread`` their mean/s.d./min/max. The kept model is the configured seed's, not the
    best held-out one: choosing on the held-out patches would make their error an optimistic measure."""
    images, y, targets, bands = load_training_sets(train_paths)
    first, n = int(params["seed"]), int(params["n_seeds"])
    results = []
    with torch_threads(int(params["threads"])) as threads:
        for seed in range(first, first + n):
            net, result = train_one(images, y, targets, params, seed, bands)
            if seed == first:
                payload = weights_payload(net, targets)
            results.append(result)
    kept = results[0]
    summary = {"targets": targets, **({"bands": bands["bands"]} if bands else {}), "seed": first, "n_seeds": n,
               "threads": threads,
               "n_train": kept["n_train"], "n_heldout": kept["n_heldout"], "heldout": kept["heldout"],
               "baseline_train_mean": kept["baseline_train_mean"], "history": kept["history"],
               "seeds": [{k: v for k, v in r.items() if k != "history"} for r in results],
               "spread": spread(results)}
    return payload, summary
