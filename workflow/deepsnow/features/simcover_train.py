"""Training ``simcover`` on the training patches of both domains (``dataset/trainA.npz``, ``trainB.npz``).

Seeded and deterministic on CPU: the initialisation, the hold-out draw, the
batch order and the flips all come from generators seeded with
``params['seed']``. A seeded share ``params['holdout']`` of the training
patches (of each domain) is held out; the held-out error of the fractions is
the measure of what it learnt, next to the error of always predicting the
training mean (the baseline a network that learnt nothing reaches).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.features.simcover import SNOW_TARGET, SimcoverNet, new_network, weights_payload
from deepsnow.io import load_npz

log = logging.getLogger("deepsnow.features")


def load_training_sets(paths) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """RGB (N, S, S, 3) uint8 and targets (N, T) float32 of the training sets; all must carry ``landcover``."""
    rgbs, ys, targets = [], [], None
    for path in paths:
        arrays = load_npz(path, required=("rgb",))
        if "landcover" not in arrays or "landcover_targets" not in arrays:
            raise DeepsnowError(
                f"{path}: no 'landcover' array: simcover learns the simulator's land-cover fractions, which only "
                "simulator runs have (data.source: simulator); on other data give features.simcover.weights_path"
            )
        t = [str(x) for x in arrays["landcover_targets"]]
        if targets is not None and t != targets:
            raise DeepsnowError(f"{path}: landcover_targets {t} differ from {targets} of {paths[0]}")
        if not t or t[-1] != SNOW_TARGET:
            raise DeepsnowError(f"{path}: landcover_targets {t} must end with {SNOW_TARGET!r}")
        targets = t
        rgbs.append(arrays["rgb"])
        ys.append(np.asarray(arrays["landcover"], dtype=np.float32))
    rgb, y = np.concatenate(rgbs), np.concatenate(ys)
    if len(rgb) < 2:
        raise DeepsnowError(f"simcover needs at least 2 training patches, found {len(rgb)} in {', '.join(map(str, paths))}")
    return rgb, y, targets


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) index arrays; at least one patch on each side."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(n * fraction)), 1), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


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


def fit(net: SimcoverNet, x: torch.Tensor, y: torch.Tensor, params: dict) -> list[dict]:
    """Adam over ``params['epochs']`` epochs (at most ``params['max_steps']`` steps when > 0); per-epoch losses."""
    gen = torch.Generator().manual_seed(int(params["seed"]))
    opt = torch.optim.Adam(net.parameters(), lr=float(params["lr"]))
    bs, max_steps = int(params["batch_size"]), int(params["max_steps"])
    history, step, t0 = [], 0, time.monotonic()
    for epoch in range(1, int(params["epochs"]) + 1):
        net.train()
        order, total, seen = torch.randperm(len(x), generator=gen), 0.0, 0
        for start in range(0, len(x), bs):
            if max_steps and step >= max_steps:
                break
            xb, yb = _batch(x, y, order[start : start + bs], gen)
            loss = net.loss(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, seen, step = total + float(loss.detach()) * len(xb), seen + len(xb), step + 1
        rate = seen / max(time.monotonic() - t0, 1e-9)
        t0 = time.monotonic()
        history.append({"epoch": epoch, "loss": total / max(seen, 1), "patches": seen, "patches_per_s": rate})
        log.info("simcover epoch %d/%d: loss %.4f (%d patches, %.1f patches/s)",
                 epoch, int(params["epochs"]), history[-1]["loss"], seen, rate)
    return history


def train_simcover(train_paths, params: dict) -> tuple[dict, dict]:
    """Train on the training sets; return (weights payload for ``simcover.pt``, summary with held-out errors)."""
    rgb, y, targets = load_training_sets(train_paths)
    seed = int(params["seed"])
    fit_idx, held_idx = holdout_split(len(rgb), float(params["holdout"]), seed)
    x, yt = to_tensor(rgb), torch.from_numpy(y)
    net = new_network(len(targets), int(params["size"]), seed)
    fit_x = x[fit_idx]
    with torch.no_grad():  # input normalisation from the patches it is fitted on
        net.mean.copy_(fit_x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1))
        net.std.copy_(fit_x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1))
    log.info("simcover: %d training patches (%d held out), %d targets, input %d px",
             len(fit_idx), len(held_idx), len(targets), net.size)
    history = fit(net, fit_x, yt[fit_idx], params)
    held = fraction_errors(predict(net, x[held_idx], int(params["batch_size"])), y[held_idx])
    baseline = fraction_errors(np.broadcast_to(y[fit_idx].mean(0), y[held_idx].shape), y[held_idx])
    log.info("simcover held out (%d patches): class-fraction MAE %.4f (training-mean baseline %.4f), "
             "snow-fraction MAE %.4f (baseline %.4f), dominant-class accuracy %.3f (baseline %.3f)",
             len(held_idx), held["class_fraction_mae"], baseline["class_fraction_mae"], held["snow_fraction_mae"],
             baseline["snow_fraction_mae"], held["dominant_class_accuracy"], baseline["dominant_class_accuracy"])
    summary = {"targets": targets, "n_train": int(len(fit_idx)), "n_heldout": int(len(held_idx)),
               "heldout": held, "baseline_train_mean": baseline, "history": history}
    return weights_payload(net, targets), summary
