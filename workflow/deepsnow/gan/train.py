"""``deepsnow train``: one job trains the whole cycleGAN run, resumably.

Checkpoints (full training state, see :mod:`deepsnow.gan.checkpoint`) are written
at the end of every saved epoch (:func:`saved_epochs`): first atomically into
``state_dir`` (not a Snakemake output, so Snakemake never deletes it), then
hard-linked (or copied when linking fails) into ``checkpoint_dir`` as
``epoch_NNN.pt``. A rerun of the same command, after the job was killed at any
moment, resumes from the newest complete checkpoint in ``state_dir``, re-links
the checkpoints of the epochs already done, and finishes the same epochs. With
``deterministic: true`` on CPU the resumed run ends bit-identical to an
uninterrupted one: every epoch's data order, crops and flips come from a
generator seeded from ``(seed, epoch)``, and the image pools, optimisers,
schedulers and RNG states are part of the checkpoint.

Losses go to two CSV files, rewritten atomically at every epoch end from the
history stored in the checkpoints (so they always agree with the state a rerun
resumes from): per iteration (:data:`~deepsnow.gan.checkpoint.ITER_COLUMNS`) and
per epoch means (:data:`~deepsnow.gan.checkpoint.EPOCH_COLUMNS`; the source of
the paper's Figure 3(a)).

A NaN or infinite loss stops the run with a :class:`DeepsnowError` naming the
epoch and iteration; the last good checkpoint stays as it was.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError, __version__
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks, runtime
from deepsnow.gan.data import UnalignedData, load_domain
from deepsnow.gan.model import LOSS_NAMES, CycleGAN
from deepsnow.gan.schedule import (  # noqa: F401  (re-exported)
    RUNTIME_KEYS,
    checkpoint_name,
    lr_factor,
    saved_epochs,
    state_key,
    total_epochs,
    trajectory_params,
)
from deepsnow.io import atomic_output, sha256_file

log = logging.getLogger("deepsnow.gan")

#: Test hook: called as ``hook(epoch)`` after each epoch's checkpoint and CSVs are written.
_epoch_end_hook = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def publish(src: Path, dst: Path) -> None:
    """Make ``dst`` the same file as ``src``: a hard link, or a copy when linking fails; atomic."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if dst.exists() and os.path.samefile(src, dst):
            return
    except OSError:
        pass
    tmp = dst.with_name(f".{dst.name}.link.part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        with atomic_output(tmp, suffix=".pt") as t:
            shutil.copyfile(src, t)
    os.replace(tmp, dst)


def write_csv(
    path: str | os.PathLike, columns, rows: torch.Tensor, int_columns=("epoch", "iteration", "iterations")
) -> None:
    ints = [c in int_columns for c in columns]
    lines = [",".join(columns)]
    for row in rows.tolist():
        lines.append(",".join(str(int(v)) if is_int else repr(float(v)) for v, is_int in zip(row, ints)))
    with atomic_output(path, suffix=".csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _config_diff(old: dict, new: dict) -> list[str]:
    a, b = trajectory_params(old), trajectory_params(new)
    return [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def _find_resume(
    state_dir: Path, checkpoint_dir: Path, saved: list[int], params: dict, arch: networks.Architecture, dkey: str
):
    """The newest usable checkpoint in ``state_dir`` (every earlier saved epoch present too), loaded; or None.

    ``dkey`` is the training data's :func:`data_key`: checkpoints of a run on other data are never resumed.
    """
    have = ckpt.epoch_files(state_dir)
    # A checkpoint published into checkpoint_dir whose state copy vanished: take it back,
    # if it was trained on the same data.
    for e, p in ckpt.epoch_files(checkpoint_dir).items():
        if e in saved and e not in have:
            try:
                other = ckpt.load(p, training=True).get("data_key")
            except DeepsnowError as exc:
                log.warning("ignoring %s: %s", p, exc)
                continue
            if other != dkey:
                log.warning("ignoring %s: it was trained on other training data (%s, not %s)", p, other, dkey)
                continue
            publish(p, state_dir / checkpoint_name(e))
            have[e] = state_dir / checkpoint_name(e)
    candidates = []
    for e in saved:
        if e not in have:
            break
        candidates.append(e)
    for e in reversed(candidates):
        path = have[e]
        try:
            payload = ckpt.load(path, training=True)
        except DeepsnowError as exc:
            bad = path.with_name(path.name + ".corrupt")
            log.warning("%s; moving it to %s and trying the previous checkpoint", exc, bad.name)
            os.replace(path, bad)
            continue
        diff = _config_diff(payload["config"], params)
        if diff:
            raise DeepsnowError(
                f"{path}: the state folder {state_dir} holds a run with a different gan config "
                f"({'; '.join(diff)}); cannot resume it. Use another --state-dir (e.g. named after "
                f"deepsnow.gan.schedule.state_key(params)) or delete {state_dir} to start afresh"
            )
        if networks.Architecture.from_dict(payload["arch"], str(path)) != arch:
            raise DeepsnowError(f"{path}: architecture {payload['arch']} differs from the config's {arch.as_dict()}")
        if int(payload["epoch"]) != e:
            raise DeepsnowError(f"{path}: file name says epoch {e} but it holds epoch {payload['epoch']}")
        if payload.get("data_key") != dkey:
            raise DeepsnowError(
                f"{path}: trained on other training data ({payload.get('data_key')}, not {dkey}); "
                f"delete {state_dir} to start afresh"
            )
        return e, payload
    return None


def data_key(train_a, train_b, length: int = 12) -> str:
    """Short hash of the training files' contents (names the resumable state folder)."""
    import hashlib

    blob = f"{sha256_file(train_a)}:{sha256_file(train_b)}".encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def train(
    params: dict,
    train_a: str | os.PathLike,
    train_b: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    state_dir: str | os.PathLike,
    losses_csv: str | os.PathLike,
    iter_losses_csv: str | os.PathLike,
    *,
    progress: bool = True,
    max_epochs: int | None = None,
) -> dict:
    """Train (or resume) the whole run; returns a summary dict.

    ``params`` is the ``gan`` config section (validated again here, defaults
    filled). ``max_epochs`` stops early after that epoch (for tests and benchmarks;
    the run then resumes from there on the next call).

    The resumable state lives in ``state_dir/data-<hash>``, the hash being that of
    the two training files: a run on other training data (say, after a patch
    setting changed) starts afresh instead of resuming a run on the old data.
    """
    params = validate_section("gan", params, source="gan params")
    n_total = total_epochs(params)
    if n_total < 1:
        raise DeepsnowError("gan.n_epochs + gan.n_epochs_decay must be at least 1")
    if params["crop_size"] > params["load_size"]:
        raise DeepsnowError(
            f"gan.crop_size ({params['crop_size']}) is larger than gan.load_size ({params['load_size']})"
        )
    saved = saved_epochs(params)
    checkpoint_dir, state_dir = Path(checkpoint_dir), Path(state_dir)
    device = runtime.resolve_device(params["device"])
    runtime.check_precision(params["precision"], device)
    arch = networks.Architecture.from_params(params)

    rgb_a, _ = load_domain(train_a, "A")
    rgb_b, _ = load_domain(train_b, "B")
    dkey = data_key(train_a, train_b)
    state_dir = state_dir / f"data-{dkey}"
    prev = runtime.save_global_state()
    try:
        runtime.configure(device, params["threads"], params["deterministic"], params["cudnn_benchmark"])
        data = UnalignedData(rgb_a, rgb_b, params, str(train_a), str(train_b))
        del rgb_a, rgb_b
        seed_everything(int(params["seed"]))
        model = CycleGAN(params, device, arch)
        return _run(
            params,
            model,
            data,
            device,
            saved,
            n_total,
            checkpoint_dir,
            state_dir,
            Path(losses_csv),
            Path(iter_losses_csv),
            progress,
            max_epochs,
            dkey,
        )
    finally:
        runtime.restore_global_state(prev)


def _run(
    params,
    model: CycleGAN,
    data: UnalignedData,
    device,
    saved,
    n_total,
    checkpoint_dir: Path,
    state_dir: Path,
    losses_csv: Path,
    iter_losses_csv: Path,
    progress: bool,
    max_epochs,
    dkey: str,
):
    from tqdm import tqdm

    state_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    for folder in (state_dir, checkpoint_dir):
        for p in ckpt.remove_partials(folder):
            log.info("removed an incomplete file left by a killed run: %s", p)
    for csv_path in (losses_csv, iter_losses_csv):  # temporary files of an interrupted CSV write
        for p in csv_path.parent.glob(f".{csv_path.name}.*.part*"):
            p.unlink(missing_ok=True)

    ipe = data.iterations_per_epoch
    epoch_hist = torch.zeros((0, len(ckpt.EPOCH_COLUMNS)), dtype=torch.float64)
    iter_hist: list[torch.Tensor] = []
    iteration = 0
    start = 1
    resumed = _find_resume(state_dir, checkpoint_dir, saved, params, model.arch, dkey)
    last_good: Path | None = None
    if resumed is not None:
        e, payload = resumed
        model.load_state_dict(payload, str(state_dir / checkpoint_name(e)))
        ckpt.set_rng_state(payload["rng"], device)
        epoch_hist = payload["history"]["epoch"].to(torch.float64)
        iter_hist = [payload["history"]["iter"].to(torch.float64)]
        iteration = int(payload["iteration"])
        start = e + 1
        last_good = state_dir / checkpoint_name(e)
        for s in saved:
            if s <= e:
                publish(state_dir / checkpoint_name(s), checkpoint_dir / checkpoint_name(s))
        log.info("resuming from %s (epoch %d of %d, iteration %d)", last_good, e, n_total, iteration)
        del payload
    # The CSVs always mirror the state we continue from.
    write_csv(losses_csv, ckpt.EPOCH_COLUMNS, epoch_hist)
    write_csv(
        iter_losses_csv,
        ckpt.ITER_COLUMNS,
        torch.cat(iter_hist) if iter_hist else torch.zeros((0, len(ckpt.ITER_COLUMNS)), dtype=torch.float64),
    )

    sync_every = 1 if device.type == "cpu" else 50
    tty = sys.stderr.isatty()
    t_run = time.perf_counter()
    iters_this_run = 0
    last = min(n_total, max_epochs) if max_epochs else n_total
    log.info(
        "training cycleGAN on %s (%s): %d epochs x %d iterations (|A|=%d, |B|=%d, batch %d), checkpoints at %d epochs",
        device,
        params["precision"],
        n_total,
        ipe,
        len(data.a),
        len(data.b),
        data.batch_size,
        len(saved),
    )
    for epoch in range(start, last + 1):
        model.train_mode()
        lr = model.lr
        t0 = time.perf_counter()
        rows: list[torch.Tensor] = []
        pending: list[torch.Tensor] = []
        bar = tqdm(
            total=ipe,
            desc=f"epoch {epoch}/{n_total}",
            unit="it",
            file=sys.stderr,
            disable=not progress,
            mininterval=0.5 if tty else 30.0,
            dynamic_ncols=tty,
            leave=True,
        )
        try:
            for i, (a, b) in enumerate(data.batches(epoch), start=1):
                losses = model.step(model.prepare(a), model.prepare(b))
                pending.append(losses)
                if i % sync_every == 0 or i == ipe:
                    block = torch.stack(pending).cpu().to(torch.float64)
                    pending = []
                    first_i = i - len(block) + 1
                    _check_finite(block, epoch, first_i, iteration, ipe, last_good, state_dir)
                    rows.append(block)
                    if progress:
                        bar.set_postfix(
                            {k: f"{v:.3f}" for k, v in zip(("G_A", "G_B", "D_A", "D_B"), block[-1, :4].tolist())},
                            refresh=False,
                        )
                bar.update(1)
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        iteration += ipe
        iters_this_run += ipe
        model.end_epoch()
        losses_e = torch.cat(rows)
        idx = torch.arange(iteration - ipe + 1, iteration + 1, dtype=torch.float64)
        iter_hist.append(
            torch.cat([torch.full((ipe, 1), float(epoch), dtype=torch.float64), idx[:, None], losses_e], 1)
        )
        means = losses_e.mean(0)
        row = torch.tensor(
            [[epoch, ipe, lr, *means.tolist(), seconds, ipe / seconds if seconds > 0 else 0.0]], dtype=torch.float64
        )
        epoch_hist = torch.cat([epoch_hist, row])
        iter_cat = torch.cat(iter_hist)
        iter_hist = [iter_cat]
        if epoch in saved:
            payload = {
                "format": ckpt.FORMAT,
                "version": ckpt.VERSION,
                "deepsnow_version": __version__,
                "epoch": epoch,
                "iteration": iteration,
                "total_epochs": n_total,
                "arch": model.arch.as_dict(),
                "config": dict(params),
                "data_key": dkey,
                "device": str(device),
                "precision": params["precision"],
                **model.state_dict(),
                "rng": ckpt.rng_state(device),
                "history": {"epoch": epoch_hist.clone(), "iter": iter_cat.clone()},
            }
            path = ckpt.save(payload, state_dir / checkpoint_name(epoch))
            publish(path, checkpoint_dir / checkpoint_name(epoch))
            last_good = path
            del payload
        write_csv(losses_csv, ckpt.EPOCH_COLUMNS, epoch_hist)
        write_csv(iter_losses_csv, ckpt.ITER_COLUMNS, iter_cat)
        log.info(
            "epoch %d/%d: %d it in %.1f s (%.2f it/s), lr %.3g, %s%s",
            epoch,
            n_total,
            ipe,
            seconds,
            ipe / max(seconds, 1e-9),
            lr,
            " ".join(f"{k}={v:.4f}" for k, v in zip(LOSS_NAMES, means.tolist())),
            f", saved {checkpoint_name(epoch)}" if epoch in saved else "",
        )
        if _epoch_end_hook is not None:
            _epoch_end_hook(epoch)
    elapsed = time.perf_counter() - t_run
    final = dict(zip(LOSS_NAMES, epoch_hist[-1, 3 : 3 + len(LOSS_NAMES)].tolist())) if len(epoch_hist) else {}
    return {
        "epochs": n_total,
        "epochs_done": int(epoch_hist[-1, 0].item()) if len(epoch_hist) else 0,
        "resumed_from": resumed[0] if resumed else None,
        "iterations": iteration,
        "iterations_per_epoch": ipe,
        "iterations_this_run": iters_this_run,
        "it_per_s": iters_this_run / elapsed if elapsed > 0 and iters_this_run else None,
        "seconds": elapsed,
        "device": str(device),
        "precision": params["precision"],
        "n_A": len(data.a),
        "n_B": len(data.b),
        "parameters": {"G": networks.count_parameters(model.G_A), "D": networks.count_parameters(model.D_A)},
        "checkpoints": [str(checkpoint_dir / checkpoint_name(e)) for e in saved if e <= last],
        "final_losses": final,
    }


def _check_finite(
    block: torch.Tensor, epoch: int, first_i: int, done_before: int, ipe: int, last_good, state_dir: Path
) -> None:
    """Raise naming the first non-finite loss of ``block`` (rows = iterations ``first_i``... of ``epoch``)."""
    finite = torch.isfinite(block)
    if bool(finite.all()):
        return
    r, c = (~finite).nonzero()[0].tolist()
    it = first_i + r
    bad = ", ".join(f"{k}={v}" for k, v, ok in zip(LOSS_NAMES, block[r].tolist(), finite[r].tolist()) if not ok)
    keep = f"the last good checkpoint is {last_good}" if last_good else f"no checkpoint was written yet in {state_dir}"
    raise DeepsnowError(
        f"non-finite loss at epoch {epoch}, iteration {it} of {ipe} (global iteration {done_before + it}): {bad}; "
        f"training stopped ({keep}). "
        f"Lower gan.lr or try gan.precision fp32."
    )
