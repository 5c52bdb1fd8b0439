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

Every saved epoch also translates the fixed held-out test set with that epoch's
generators (:func:`deepsnow.gan.generate.write_samples`) into
``state_dir/.../samples-<hash>/epoch_NNN.npz``, published into ``samples_dir``.
Checkpoints outside :func:`kept_epochs` (``gan.keep_every``) are deleted once the
next saved epoch is written, so checkpoint disk use is bounded while every saved
epoch keeps its samples. A resume needs, for every saved epoch before it, its
samples or its checkpoint (samples are then remade from it), and the checkpoint
of every kept epoch; otherwise it restarts from the newest kept checkpoint that
satisfies this (or from scratch), dropping the state after it.

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

from deepsnow import DeepsnowError, __version__, locks
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks, runtime
from deepsnow.gan.data import UnalignedData, load_domain
from deepsnow.gan.generate import load_test_sets, write_samples
from deepsnow.gan.model import LOSS_NAMES, CycleGAN
from deepsnow.gan.schedule import (  # noqa: F401  (re-exported)
    RUNTIME_KEYS,
    checkpoint_name,
    kept_epochs,
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


def _take_back(state_dir: Path, checkpoint_dir: Path, saved: list[int], have: dict, dkey: str) -> None:
    """Checkpoints published into ``checkpoint_dir`` whose state copy vanished: take them back,
    if they were trained on the same data."""
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


def _resumable(e: int, saved: list[int], kept: set[int], have: dict, have_samples: set[int]) -> bool:
    """Whether a run resumed after epoch ``e`` can still produce every earlier saved epoch's outputs."""
    for s in saved:
        if s >= e:
            break
        if s not in have_samples and s not in have:
            return False  # neither samples nor generators to remake them from
        if s in kept and s not in have:
            return False  # a kept checkpoint is gone
    return True


def _find_resume(
    state_dir: Path,
    checkpoint_dir: Path,
    saved: list[int],
    kept: set[int],
    have_samples: set[int],
    params: dict,
    arch: networks.Architecture,
    dkey: str,
):
    """The newest usable checkpoint in ``state_dir`` (see :func:`_resumable`), loaded; or None.

    ``dkey`` is the training data's :func:`data_key`: checkpoints of a run on other data are never resumed.
    """
    have = ckpt.epoch_files(state_dir)
    _take_back(state_dir, checkpoint_dir, saved, have, dkey)
    for e in reversed(saved):
        if e not in have or not _resumable(e, saved, kept, have, have_samples):
            continue
        path = have[e]
        try:
            payload = ckpt.load(path, training=True)
        except DeepsnowError as exc:
            bad = path.with_name(path.name + ".corrupt")
            log.warning("%s; moving it to %s and trying the previous checkpoint", exc, bad.name)
            os.replace(path, bad)
            del have[e]
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
    if have:
        log.warning(
            "no checkpoint in %s can be resumed with every earlier epoch's samples and kept checkpoints "
            "(epochs present: %s); training from the start",
            state_dir,
            sorted(have),
        )
    return None


def samples_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.npz"


def samples_key(samples_params: dict, test_a, test_b, length: int = 12) -> str:
    """Short hash of what the samples depend on besides the generators (names their state folder)."""
    import hashlib
    import json

    blob = json.dumps(
        {"params": samples_params, "test_A": sha256_file(test_a), "test_B": sha256_file(test_b)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


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
    test_a: str | os.PathLike | None = None,
    test_b: str | os.PathLike | None = None,
    samples_params: dict | None = None,
    samples_dir: str | os.PathLike | None = None,
    progress: bool = True,
    max_epochs: int | None = None,
) -> dict:
    """Train (or resume) the whole run; returns a summary dict.

    ``params`` is the ``gan`` config section (validated again here, defaults
    filled). With ``samples_dir`` (and ``test_a``, ``test_b``, the ``samples``
    section as ``samples_params``), every saved epoch's samples are written there
    as ``epoch_NNN.npz``. ``max_epochs`` stops early after that epoch (for tests and benchmarks;
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
    kept = kept_epochs(params)
    if samples_dir is None and kept != saved:
        raise DeepsnowError(
            f"gan.keep_every = {params['keep_every']} deletes checkpoints of saved epochs; give the test sets and a "
            "samples folder (--test-a, --test-b, --samples-dir) so every saved epoch's samples are written first"
        )
    samples = None
    if samples_dir is not None:
        if test_a is None or test_b is None:
            raise DeepsnowError("train: writing samples needs the test sets (--test-a and --test-b)")
        sparams = validate_section("samples", samples_params or {}, source="samples params")
        samples = {
            "test": load_test_sets(test_a, test_b, sparams["max_samples"]),
            "batch_size": int(sparams["batch_size"]),
            "dir": Path(samples_dir),
            "key": samples_key(sparams, test_a, test_b),
        }
    checkpoint_dir, state_dir = Path(checkpoint_dir), Path(state_dir)
    device = runtime.resolve_device(params["device"])
    runtime.check_precision(params["precision"], device)
    arch = networks.Architecture.from_params(params)

    rgb_a, _ = load_domain(train_a, "A")
    rgb_b, _ = load_domain(train_b, "B")
    dkey = data_key(train_a, train_b)
    state_dir = state_dir / f"data-{dkey}"
    lock = locks.held(
        state_dir.parent / f".data-{dkey}.lock",
        f"the training state folder {state_dir}",
        "Wait for that training to finish, or stop it (a killed Snakemake run can leave its training job "
        "running), then rerun.",
    )
    prev = runtime.save_global_state()
    with lock:
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
                kept,
                samples,
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
    kept,
    samples: dict | None,
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
    folders = [state_dir, checkpoint_dir]
    samples_state = None
    if samples is not None:
        samples_state = state_dir / f"samples-{samples['key']}"
        for old in state_dir.glob("samples-*"):
            if old != samples_state and old.is_dir():
                log.info("removing samples made with other samples settings or test sets: %s", old)
                shutil.rmtree(old)
        folders += [samples_state, samples["dir"]]
    for folder in folders:
        Path(folder).mkdir(parents=True, exist_ok=True)
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
    have_samples = set(_epoch_numbers(samples_state, ".npz")) if samples_state else set(saved)
    resumed = _find_resume(state_dir, checkpoint_dir, saved, set(kept), have_samples, params, model.arch, dkey)
    last_good: Path | None = None
    e = 0
    if resumed is not None:
        e, payload = resumed
        model.load_state_dict(payload, str(state_dir / checkpoint_name(e)))
        ckpt.set_rng_state(payload["rng"], device)
        epoch_hist = payload["history"]["epoch"].to(torch.float64)
        iter_hist = [payload["history"]["iter"].to(torch.float64)]
        iteration = int(payload["iteration"])
        start = e + 1
        last_good = state_dir / checkpoint_name(e)
        log.info("resuming from %s (epoch %d of %d, iteration %d)", last_good, e, n_total, iteration)
        del payload
    if samples is not None:
        for s in saved:
            if s > e:
                break
            out = samples_state / samples_name(s)
            if not out.exists():  # killed between checkpoint and samples, or new samples settings
                g_a, _ = ckpt.load_generator(state_dir / checkpoint_name(s), "G_A", device)
                g_b, _ = ckpt.load_generator(state_dir / checkpoint_name(s), "G_B", device)
                write_samples(out, g_a, g_b, samples["test"], s, samples["batch_size"], device)
                del g_a, g_b
            publish(out, samples["dir"] / samples_name(s))
    # Then drop checkpoints not kept, and state after the resume point (another or an abandoned trajectory).
    _prune(state_dir, checkpoint_dir, samples_state, kept, latest=e)
    for s in kept:
        if s <= e:
            publish(state_dir / checkpoint_name(s), checkpoint_dir / checkpoint_name(s))
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
            path = _save_checkpoint(payload, state_dir / checkpoint_name(epoch), last_good)
            del payload
            if epoch in kept:
                publish(path, checkpoint_dir / checkpoint_name(epoch))
            last_good = path
            if samples is not None:
                out = write_samples(
                    samples_state / samples_name(epoch),
                    model.G_A,
                    model.G_B,
                    samples["test"],
                    epoch,
                    samples["batch_size"],
                    device,
                )
                publish(out, samples["dir"] / samples_name(epoch))
            _prune(state_dir, checkpoint_dir, samples_state, kept, latest=epoch)
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
        "checkpoints": [str(checkpoint_dir / checkpoint_name(e)) for e in kept if e <= last],
        "samples": [str(samples["dir"] / samples_name(e)) for e in saved if e <= last] if samples else [],
        "final_losses": final,
    }


def _epoch_numbers(folder: Path | None, suffix: str) -> list[int]:
    """Epochs of the complete ``epoch_NNN<suffix>`` files in ``folder``."""
    if folder is None or not folder.is_dir():
        return []
    out = []
    for p in folder.glob(f"epoch_*{suffix}"):
        stem = p.name[len("epoch_") : -len(suffix)]
        if stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def _prune(state_dir: Path, checkpoint_dir: Path, samples_state: Path | None, kept: list[int], latest: int) -> None:
    """Delete checkpoints outside ``kept`` (but the ``latest``) and any state after ``latest``."""
    keep = set(kept)
    for e, p in ckpt.epoch_files(state_dir).items():
        if e > latest or (e not in keep and e != latest):
            p.unlink(missing_ok=True)
            log.info("deleted %s (%s)", p, "after the resume point" if e > latest else "not kept, gan.keep_every")
    for e, p in ckpt.epoch_files(checkpoint_dir).items():
        if e > latest or e not in keep:
            p.unlink(missing_ok=True)
    for e in _epoch_numbers(samples_state, ".npz"):
        if e > latest:
            (samples_state / samples_name(e)).unlink(missing_ok=True)


def _save_checkpoint(payload: dict, path: Path, last_good: Path | None) -> Path:
    """:func:`ckpt.save` with a full disk (or any write error) reported as a clear error."""
    try:
        return ckpt.save(payload, path)
    except OSError as exc:
        keep = f"the last good checkpoint {last_good} is intact" if last_good else "no earlier checkpoint exists"
        raise DeepsnowError(
            f"{path}: could not write the checkpoint ({exc.strerror or exc}); nothing partial was left and "
            f"{keep}. Free disk space (or raise gan.keep_every) and rerun to resume."
        ) from exc


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
