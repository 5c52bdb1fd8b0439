"""``deepsnow train``: one job trains the whole cycleGAN (or CUT / FastCUT) run, resumably.

``gan.model`` picks the model (:data:`MODELS`): :class:`~deepsnow.gan.model.CycleGAN` or
:class:`~deepsnow.gan.cut_model.CUT` (FastCUT is CUT with other settings); everything below is
shared. A one-sided model has no B->A generator: its per-epoch samples hold A->B only.

Training is ``state.resume()`` -> one :func:`_train_epoch` per epoch ->
``state.save_epoch()`` at every saved epoch (:func:`saved_epochs`), the state being
a :class:`~deepsnow.gan.state.RunState`: it owns the state, checkpoint and samples
folders, finds the checkpoint to resume from, writes checkpoints atomically,
publishes them and the per-epoch samples, and prunes what ``gan.keep_every`` does
not keep (see :mod:`deepsnow.gan.state`). A rerun of the same command, after the job
was killed at any moment, resumes from the newest complete checkpoint and finishes
the same epochs. With ``deterministic: true`` on CPU the resumed run ends
bit-identical to an uninterrupted one: every epoch's data order, crops and flips come
from a generator seeded from ``(seed, epoch)``, and the image pools, optimisers,
schedulers and RNG states are part of the checkpoint.

Every saved epoch also translates the fixed held-out test set with that epoch's
generators (:func:`deepsnow.gan.generate.write_samples`) into ``samples_dir``.

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
import sys
import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import cut, networks, runtime
from deepsnow.gan.cut_model import CUT
from deepsnow.gan.data import BandSet, UnalignedData, load_domain, same_bands
from deepsnow.gan.networks import Architecture
from deepsnow.gan.model import CycleGAN
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
from deepsnow.gan.state import RunState, Samples, data_key, publish, samples_key, samples_name  # noqa: F401
from deepsnow.io import atomic_output

log = logging.getLogger("deepsnow.gan")

#: ``gan.model`` -> the model class and its name in the logs (absent: cyclegan).
MODELS = {"cyclegan": (CycleGAN, "cycleGAN"), "cut": (CUT, "CUT"), "fastcut": (CUT, "FastCUT")}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def write_csv(
    path: str | os.PathLike, columns, rows: torch.Tensor, int_columns=("epoch", "iteration", "iterations")
) -> None:
    ints = [c in int_columns for c in columns]
    lines = [",".join(columns)]
    for row in rows.tolist():
        lines.append(",".join(str(int(v)) if is_int else repr(float(v)) for v, is_int in zip(row, ints)))
    with atomic_output(path, suffix=".csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class TrainJob:
    """One call of :func:`train`: the validated gan section, the loss CSVs and how far to go."""

    params: dict
    losses_csv: Path
    iter_losses_csv: Path
    progress: bool = True
    max_epochs: int | None = None
    on_epoch_end: Callable[[int], None] | None = None

    @property
    def n_total(self) -> int:
        return total_epochs(self.params)

    @property
    def last(self) -> int:
        """The last epoch this call trains (``max_epochs`` stops early; the next call resumes)."""
        return min(self.n_total, self.max_epochs) if self.max_epochs else self.n_total

    def remove_csv_partials(self) -> None:
        """Temporary files of an interrupted CSV write."""
        for csv_path in (self.losses_csv, self.iter_losses_csv):
            for p in csv_path.parent.glob(f".{csv_path.name}.*.part*"):
                p.unlink(missing_ok=True)


class LossHistory:
    """The loss logs a checkpoint holds and the two CSVs mirror: per epoch and per iteration (float64),
    for a model with the losses ``loss_names``."""

    def __init__(self, loss_names, resumed=None):
        self.loss_names = tuple(loss_names)
        self.epoch_columns, self.iter_columns = ckpt.epoch_columns(loss_names), ckpt.iter_columns(loss_names)
        if resumed is None:
            self.epoch = torch.zeros((0, len(self.epoch_columns)), dtype=torch.float64)
            self.iter = torch.zeros((0, len(self.iter_columns)), dtype=torch.float64)
            self.iteration = 0
        else:
            self.epoch, self.iter, self.iteration = resumed.epoch_history, resumed.iter_history, resumed.iteration

    def add(self, epoch: int, ipe: int, lr: float, losses: torch.Tensor, seconds: float) -> torch.Tensor:
        """Append one epoch's ``(ipe, len(loss_names))`` losses; returns their means."""
        self.iteration += ipe
        idx = torch.arange(self.iteration - ipe + 1, self.iteration + 1, dtype=torch.float64)
        rows = torch.cat([torch.full((ipe, 1), float(epoch), dtype=torch.float64), idx[:, None], losses], 1)
        self.iter = torch.cat([self.iter, rows])
        means = losses.mean(0)
        row = torch.tensor(
            [[epoch, ipe, lr, *means.tolist(), seconds, ipe / seconds if seconds > 0 else 0.0]], dtype=torch.float64
        )
        self.epoch = torch.cat([self.epoch, row])
        return means

    def write(self, job: TrainJob) -> None:
        write_csv(job.losses_csv, self.epoch_columns, self.epoch)
        write_csv(job.iter_losses_csv, self.iter_columns, self.iter)

    def epochs_done(self) -> int:
        return int(self.epoch[-1, 0].item()) if len(self.epoch) else 0

    def final_losses(self) -> dict:
        names = self.loss_names
        return dict(zip(names, self.epoch[-1, 3 : 3 + len(names)].tolist())) if len(self.epoch) else {}


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
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict:
    """Train (or resume) the whole run; returns a summary dict.

    ``params`` is the validated ``gan`` config section (the CLI and the workflow
    validate it, defaults filled). With ``samples_dir`` (and ``test_a``, ``test_b``,
    the validated ``samples`` section as ``samples_params``), every saved epoch's
    samples are written there as ``epoch_NNN.npz``. ``max_epochs`` stops early after
    that epoch (for tests and benchmarks; the run then resumes from there on the next
    call). ``on_epoch_end(epoch)`` is called after each epoch's checkpoint and CSVs are
    written (tests stop or slow training there).

    The resumable state lives in ``state_dir/data-<hash>`` (see :mod:`deepsnow.gan.state`).
    """
    samples = _samples(params, test_a, test_b, samples_params, samples_dir)
    device = runtime.resolve_device(params["device"])
    runtime.check_precision(params["precision"], device)
    rgb_a, _, bands = load_domain(train_a, "A")
    rgb_b, _, bands_b = load_domain(train_b, "B")
    same_bands({str(train_a): bands, str(train_b): bands_b, **({} if samples is None else samples.test["bands_of"])})
    state = RunState(params, state_dir, checkpoint_dir, data_key(train_a, train_b), device, samples)
    job = TrainJob(params, Path(losses_csv), Path(iter_losses_csv), progress, max_epochs, on_epoch_end)
    prev = runtime.save_global_state()
    with state.locked():
        try:
            runtime.configure(device, params["threads"], params["deterministic"], params["cudnn_benchmark"])
            data = UnalignedData(rgb_a, rgb_b, params, str(train_a), str(train_b))
            del rgb_a, rgb_b
            seed_everything(int(params["seed"]))
            model = MODELS[params.get("model", "cyclegan")][0](params, device, arch=architecture(params, bands))
            model.bands = bands
            return _run(job, state, model, data)
        finally:
            runtime.restore_global_state(prev)


def architecture(params: dict, bands: BandSet) -> Architecture:
    """The networks of ``gan.model`` (a validated gan section) with one input and one output channel per
    band; RGB (3 -> 3) is exactly the reference's."""
    base = cut.architecture(params) if params.get("model", "cyclegan") != "cyclegan" else Architecture.from_params(params)
    return dataclasses.replace(base, input_nc=bands.n, output_nc=bands.n)


def _samples(params: dict, test_a, test_b, samples_params: dict | None, samples_dir) -> Samples | None:
    """The test sets every saved epoch translates (None without ``samples_dir``); a ``keep_every``
    that deletes checkpoints needs them, so that every saved epoch's samples are written first."""
    if samples_dir is None:
        if kept_epochs(params) != saved_epochs(params):
            raise DeepsnowError(
                f"gan.keep_every = {params['keep_every']} deletes checkpoints of saved epochs; give the test sets "
                "and a samples folder (--test-a, --test-b, --samples-dir) so every saved epoch's samples are "
                "written first"
            )
        return None
    if test_a is None or test_b is None:
        raise DeepsnowError("train: writing samples needs the test sets (--test-a and --test-b)")
    return Samples.load(samples_params, test_a, test_b, samples_dir)


def _run(job: TrainJob, state: RunState, model, data: UnalignedData) -> dict:
    """Resume, train the remaining epochs (saving the saved ones), return the summary."""
    state.prepare()
    job.remove_csv_partials()
    resumed = state.resume(model)
    history = LossHistory(model.loss_names, resumed)
    history.write(job)  # the CSVs always mirror the state we continue from
    ipe = data.iterations_per_epoch
    log.info(
        "training %s on %s (%s): %d epochs x %d iterations (|A|=%d, |B|=%d, batch %d), checkpoints at %d epochs",
        MODELS[job.params.get("model", "cyclegan")][1],
        model.device,
        job.params["precision"],
        job.n_total,
        ipe,
        len(data.a),
        len(data.b),
        data.batch_size,
        len(state.saved),
    )
    t_run = time.perf_counter()
    first = resumed.epoch + 1 if resumed else 1
    for epoch in range(first, job.last + 1):
        model.train_mode()
        lr = model.lr
        losses, seconds = _train_epoch(job, state, model, data, epoch, history.iteration)
        model.end_epoch()  # the learning-rate schedule steps once per epoch
        means = history.add(epoch, ipe, lr, losses, seconds)
        if epoch in state.saved:
            state.save_epoch(model, epoch, history.iteration, history.epoch, history.iter)
        history.write(job)
        _log_epoch(job, epoch, ipe, seconds, lr, dict(zip(model.loss_names, means.tolist())), epoch in state.saved)
        log.info("%s", run_progress(epoch, job.n_total, epoch - first + 1, time.perf_counter() - t_run, ipe))
        if job.on_epoch_end is not None:
            job.on_epoch_end(epoch)
    return _summary(job, state, model, data, history, resumed, time.perf_counter() - t_run)


def _train_epoch(
    job: TrainJob, state: RunState, model, data: UnalignedData, epoch: int, done_before: int
) -> tuple[torch.Tensor, float]:
    """One epoch of training steps; returns its ``(iterations, losses)`` float64 losses and its seconds."""
    ipe = data.iterations_per_epoch
    # Reading losses back forces a device sync: every step on CPU (free), every 50 on a GPU.
    sync_every = 1 if model.device.type == "cpu" else 50
    t0 = time.perf_counter()
    rows: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    bar = _progress_bar(job, epoch, ipe)
    try:
        for i, (a, b) in enumerate(data.batches(epoch), start=1):
            pending.append(model.step(model.prepare(a), model.prepare(b)))
            if i % sync_every == 0 or i == ipe:
                block = torch.stack(pending).cpu().to(torch.float64)
                pending = []
                where = (epoch, i - len(block) + 1, done_before, ipe)
                _check_finite(block, model.loss_names, where, state.last_good, state.dir)
                rows.append(block)
                if job.progress:
                    losses = {k: f"{v:.3f}" for k, v in zip(model.loss_names[:4], block[-1, :4].tolist())}
                    bar.set_postfix(losses, refresh=False)
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return torch.cat(rows), seconds


def _progress_bar(job: TrainJob, epoch: int, ipe: int):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=ipe,
        desc=f"epoch {epoch}/{job.n_total}",
        unit="it",
        file=sys.stderr,
        disable=not job.progress,
        mininterval=0.5 if tty else 30.0,  # a log file gets a line every 30 s, not a stream of them
        dynamic_ncols=tty,
        leave=True,
    )


def _check_finite(
    block: torch.Tensor, loss_names, where: tuple[int, int, int, int], last_good, state_dir: Path
) -> None:
    """Raise naming the first non-finite loss of ``block`` (rows = iterations ``first_i``... of ``epoch``;
    ``where``: ``(epoch, first_i, done_before, ipe)``)."""
    epoch, first_i, done_before, ipe = where
    finite = torch.isfinite(block)
    if bool(finite.all()):
        return
    r, c = (~finite).nonzero()[0].tolist()
    it = first_i + r
    bad = ", ".join(f"{k}={v}" for k, v, ok in zip(loss_names, block[r].tolist(), finite[r].tolist()) if not ok)
    keep = f"the last good checkpoint is {last_good}" if last_good else f"no checkpoint was written yet in {state_dir}"
    raise DeepsnowError(
        f"non-finite loss at epoch {epoch}, iteration {it} of {ipe} (global iteration {done_before + it}): {bad}; "
        f"training stopped ({keep}). "
        f"Lower gan.lr or try gan.precision fp32."
    )


def _log_epoch(job: TrainJob, epoch: int, ipe: int, seconds: float, lr: float, means: dict, saved: bool) -> None:
    log.info(
        "epoch %d/%d: %d it in %.1f s (%.2f it/s), lr %.3g, %s%s",
        epoch,
        job.n_total,
        ipe,
        seconds,
        ipe / max(seconds, 1e-9),
        lr,
        " ".join(f"{k}={v:.4f}" for k, v in means.items()),
        f", saved {checkpoint_name(epoch)}" if saved else "",
    )


def _clock(seconds: float) -> str:
    """Seconds as [D days, ]H:MM:SS."""
    days, rest = divmod(int(round(seconds)), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days} day{'s' if days != 1 else ''}, " if days else "") + f"{h}:{m:02d}:{s:02d}"


def run_progress(epoch: int, n_total: int, done_this_run: int, elapsed: float, ipe: int, now: float | None = None) -> str:
    """The whole-run progress line logged after each epoch: epoch k of N, the rate of this run's
    epochs (training, checkpoints and samples included) and the time left at that rate."""
    per_epoch = elapsed / max(done_this_run, 1)
    left = max(n_total - epoch, 0) * per_epoch
    finish = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((time.time() if now is None else now) + left))
    eta = f"ETA {_clock(left)} (about {finish})" if epoch < n_total else "done"
    return (
        f"run: epoch {epoch} of {n_total} ({100 * epoch / max(n_total, 1):.1f} %), "
        f"{done_this_run} epoch{'s' if done_this_run != 1 else ''} in {_clock(elapsed)} this run "
        f"({per_epoch:.1f} s/epoch, {ipe / max(per_epoch, 1e-9):.2f} it/s), {eta}"
    )


def _summary(job, state: RunState, model, data: UnalignedData, history, resumed, elapsed: float) -> dict:
    iters_this_run = history.iteration - (resumed.iteration if resumed else 0)
    return {
        "epochs": job.n_total,
        "epochs_done": history.epochs_done(),
        "resumed_from": resumed.epoch if resumed else None,
        "iterations": history.iteration,
        "iterations_per_epoch": data.iterations_per_epoch,
        "iterations_this_run": iters_this_run,
        "it_per_s": iters_this_run / elapsed if elapsed > 0 and iters_this_run else None,
        "seconds": elapsed,
        "device": str(model.device),
        "precision": job.params["precision"],
        "n_A": len(data.a),
        "n_B": len(data.b),
        "parameters": {"G": networks.count_parameters(model.G_A), "D": networks.count_parameters(model.D_A)},
        "checkpoints": state.checkpoints(job.last),
        "samples": state.sample_files(job.last),
        "final_losses": history.final_losses(),
    }
