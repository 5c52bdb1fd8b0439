"""The resumable state of one training run: its folders, where it resumes, what each saved epoch leaves.

:class:`RunState` owns three folders:

- the state folder ``state_dir/data-<hash>`` (the hash being that of the two training
  files, :func:`data_key`, so a run on other training data starts afresh instead of
  resuming a run on the old data); not a Snakemake output, so Snakemake never deletes
  it. It holds the full checkpoints (see :mod:`deepsnow.gan.checkpoint`), written
  atomically, and ``samples-<hash>/epoch_NNN.npz`` (:func:`samples_key`);
- the checkpoint folder, into which the kept checkpoints are published (hard-linked, or
  copied when linking fails) as ``epoch_NNN.pt``;
- the samples folder, into which every saved epoch's samples are published.

Checkpoints outside :func:`~deepsnow.gan.schedule.kept_epochs` (``gan.keep_every``) are
deleted once the next saved epoch is written, so checkpoint disk use is bounded while
every saved epoch keeps its samples. A resume needs, for every saved epoch before it,
its samples or its checkpoint (samples are then remade from it), and the checkpoint of
every kept epoch; otherwise it restarts from the newest kept checkpoint that satisfies
this (or from scratch), dropping the state after it. One trainer at a time holds a
state folder (:meth:`RunState.locked`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsnow import DeepsnowError, __version__, locks, torchfile
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks
from deepsnow.gan.generate import load_test_sets, write_samples
from deepsnow.gan.schedule import checkpoint_name, kept_epochs, saved_epochs, total_epochs, trajectory_params
from deepsnow.io import atomic_output, sha256_file

log = logging.getLogger("deepsnow.gan")


# -- names and keys -------------------------------------------------------------
def samples_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.npz"


def samples_key(samples_params: dict, test_a, test_b, length: int = 12) -> str:
    """Short hash of what the samples depend on besides the generators (names their state folder)."""
    blob = json.dumps(
        {"params": samples_params, "test_A": sha256_file(test_a), "test_B": sha256_file(test_b)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def data_key(train_a, train_b, length: int = 12) -> str:
    """Short hash of the training files' contents (names the resumable state folder)."""
    blob = f"{sha256_file(train_a)}:{sha256_file(train_b)}".encode()
    return hashlib.sha256(blob).hexdigest()[:length]


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


def _config_diff(old: dict, new: dict) -> list[str]:
    a, b = trajectory_params(old), trajectory_params(new)
    return [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


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


# -- what a run carries -----------------------------------------------------------
@dataclass(frozen=True)
class Samples:
    """The fixed held-out test sets every saved epoch translates, and the folder their samples go to."""

    test: dict
    batch_size: int
    dir: Path
    key: str

    @classmethod
    def load(cls, samples_params: dict, test_a, test_b, samples_dir) -> Samples:
        """``samples_params`` is the validated ``samples`` section."""
        return cls(
            test=load_test_sets(test_a, test_b, samples_params["max_samples"]),
            batch_size=int(samples_params["batch_size"]),
            dir=Path(samples_dir),
            key=samples_key(samples_params, test_a, test_b),
        )


@dataclass(frozen=True)
class Resumed:
    """Where a resumed run continues: after ``epoch``, ``iteration`` iterations done, with its loss history."""

    epoch: int
    iteration: int
    epoch_history: torch.Tensor  # (E, len(EPOCH_COLUMNS)) float64
    iter_history: torch.Tensor  # (N, len(ITER_COLUMNS)) float64


class RunState:
    """The state, checkpoint and samples folders of one run (``params``, the validated gan section)
    on one training data (``dkey``, its :func:`data_key`)."""

    def __init__(self, params: dict, state_root, checkpoint_dir, dkey: str, device, samples: Samples | None = None):
        self.params = params
        self.dkey = dkey
        self.device = device
        self.dir = Path(state_root) / f"data-{dkey}"
        self.checkpoint_dir = Path(checkpoint_dir)
        self.samples = samples
        self.samples_state = self.dir / f"samples-{samples.key}" if samples is not None else None
        self.saved = saved_epochs(params)
        self.kept = kept_epochs(params)
        #: The newest complete checkpoint of this trajectory (named in error messages).
        self.last_good: Path | None = None

    def locked(self):
        """A ``with`` block holding the state folder: a training process orphaned by a killed
        Snakemake must not share its state with a rerun's."""
        return locks.held(
            self.dir.parent / f".data-{self.dkey}.lock",
            f"the training state folder {self.dir}",
            "Wait for that training to finish, or stop it (a killed Snakemake run can leave its training job "
            "running), then rerun.",
        )

    def prepare(self) -> None:
        """Create the folders; remove samples of other samples settings and what a killed writer left."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        folders = [self.dir, self.checkpoint_dir]
        if self.samples is not None:
            for old in self.dir.glob("samples-*"):
                if old != self.samples_state and old.is_dir():
                    log.info("removing samples made with other samples settings or test sets: %s", old)
                    shutil.rmtree(old)
            folders += [self.samples_state, self.samples.dir]
        for folder in folders:
            Path(folder).mkdir(parents=True, exist_ok=True)
            for p in ckpt.remove_partials(folder):
                log.info("removed an incomplete file left by a killed run: %s", p)

    # -- resuming ---------------------------------------------------------------
    def resume(self, model) -> Resumed | None:
        """Load the newest usable checkpoint into ``model`` and the RNGs (None: start afresh), then make
        the folders agree with that point: samples remade and published, checkpoints pruned and published."""
        have_samples = set(_epoch_numbers(self.samples_state, ".npz")) if self.samples_state else set(self.saved)
        found = self._find_resume(have_samples, model.arch, model.bands)
        resumed = None
        if found is not None:
            e, payload = found
            found = None
            self.last_good = self.dir / checkpoint_name(e)
            model.load_state_dict(payload, str(self.last_good))
            ckpt.set_rng_state(payload["rng"], self.device)
            history = payload["history"]
            resumed = Resumed(
                e, int(payload["iteration"]), history["epoch"].to(torch.float64), history["iter"].to(torch.float64)
            )
            log.info(
                "resuming from %s (epoch %d of %d, iteration %d)",
                self.last_good,
                e,
                total_epochs(self.params),
                resumed.iteration,
            )
            del payload, history
        e = resumed.epoch if resumed else 0
        self._remake_samples(upto=e)
        # Then drop checkpoints not kept, and state after the resume point (another or an abandoned trajectory).
        self._prune(latest=e)
        for s in self.kept:
            if s <= e:
                publish(self.dir / checkpoint_name(s), self.checkpoint_dir / checkpoint_name(s))
        return resumed

    def _find_resume(self, have_samples: set[int], arch: networks.Architecture, bands):
        """``(epoch, payload)`` of the newest usable checkpoint in the state folder (see :func:`_resumable`); or None.

        Checkpoints of a run on other data are never resumed.
        """
        have = ckpt.epoch_files(self.dir)
        self._take_back(have)
        kept = set(self.kept)
        for e in reversed(self.saved):
            if e not in have or not _resumable(e, self.saved, kept, have, have_samples):
                continue
            payload = self._load_or_set_aside(have, e)
            if payload is None:
                continue
            self._check_same_run(have[e], payload, e, arch, bands)
            return e, payload
        if have:
            log.warning(
                "no checkpoint in %s can be resumed with every earlier epoch's samples and kept checkpoints "
                "(epochs present: %s); training from the start",
                self.dir,
                sorted(have),
            )
        return None

    def _load_or_set_aside(self, have: dict, e: int) -> dict | None:
        """Epoch ``e``'s checkpoint; an unreadable one is renamed ``*.corrupt`` and dropped from ``have``."""
        path = have[e]
        try:
            return ckpt.load(path, training=True)
        except DeepsnowError as exc:
            bad = path.with_name(path.name + ".corrupt")
            log.warning("%s; moving it to %s and trying the previous checkpoint", exc, bad.name)
            os.replace(path, bad)
            del have[e]
            return None

    def _check_same_run(self, path: Path, payload: dict, e: int, arch: networks.Architecture, bands) -> None:
        """Refuse to resume a checkpoint of another config, architecture, band mapping or training data."""
        diff = _config_diff(payload["config"], self.params)
        if diff:
            raise DeepsnowError(
                f"{path}: the state folder {self.dir} holds a run with a different gan config "
                f"({'; '.join(diff)}); cannot resume it. Use another --state-dir (e.g. named after "
                f"deepsnow.gan.schedule.state_key(params)) or delete {self.dir} to start afresh"
            )
        if networks.Architecture.from_dict(payload["arch"], str(path)) != arch:
            raise DeepsnowError(f"{path}: architecture {payload['arch']} differs from the config's {arch.as_dict()}")
        if int(payload["epoch"]) != e:
            raise DeepsnowError(f"{path}: file name says epoch {e} but it holds epoch {payload['epoch']}")
        stored = ckpt.bands_of(payload)
        if stored != bands:
            raise DeepsnowError(
                f"{path}: a run of {stored.as_dict()}, but the training data map as {bands.as_dict()} (docs/bands.md); "
                f"cannot resume it. Delete {self.dir} to start afresh"
            )
        if payload.get("data_key") != self.dkey:
            raise DeepsnowError(
                f"{path}: trained on other training data ({payload.get('data_key')}, not {self.dkey}); "
                f"delete {self.dir} to start afresh"
            )

    def _take_back(self, have: dict) -> None:
        """Checkpoints published into the checkpoint folder whose state copy vanished: take them back
        (into ``have`` too), if they were trained on the same data."""
        for e, p in ckpt.epoch_files(self.checkpoint_dir).items():
            if e in self.saved and e not in have:
                try:
                    other = ckpt.load(p, training=True).get("data_key")
                except DeepsnowError as exc:
                    log.warning("ignoring %s: %s", p, exc)
                    continue
                if other != self.dkey:
                    log.warning("ignoring %s: it was trained on other training data (%s, not %s)", p, other, self.dkey)
                    continue
                publish(p, self.dir / checkpoint_name(e))
                have[e] = self.dir / checkpoint_name(e)

    def _remake_samples(self, upto: int) -> None:
        """Publish the samples of every saved epoch up to ``upto``, first remaking the missing ones from
        their checkpoints (killed between checkpoint and samples, or new samples settings)."""
        if self.samples is None:
            return
        for s in self.saved:
            if s > upto:
                break
            out = self.samples_state / samples_name(s)
            if not out.exists():
                g_a, g_b, _ = ckpt.load_generators(self.dir / checkpoint_name(s), self.device)
                write_samples(out, g_a, g_b, self.samples.test, s, self.samples.batch_size, self.device)
                del g_a, g_b
            publish(out, self.samples.dir / samples_name(s))

    # -- saving -----------------------------------------------------------------
    def save_epoch(self, model, epoch: int, iteration: int, epoch_history, iter_history) -> None:
        """A saved epoch: its checkpoint (atomic; published when kept), its samples, then the pruning."""
        payload = self._payload(model, epoch, iteration, epoch_history, iter_history)
        path = self._save_checkpoint(payload, self.dir / checkpoint_name(epoch))
        del payload
        if epoch in self.kept:
            publish(path, self.checkpoint_dir / checkpoint_name(epoch))
        self.last_good = path
        if self.samples is not None:
            s = self.samples
            out = write_samples(
                self.samples_state / samples_name(epoch),
                model.G_A,
                getattr(model, "G_B", None),  # None: a one-sided model
                s.test,
                epoch,
                s.batch_size,
                self.device,
            )
            publish(out, s.dir / samples_name(epoch))
        self._prune(latest=epoch)

    def _payload(self, model, epoch: int, iteration: int, epoch_history, iter_history) -> dict:
        """The checkpoint (keys as in :mod:`deepsnow.gan.checkpoint`); the RNG states are taken now."""
        return {
            "format": ckpt.FORMAT,
            "version": ckpt.VERSION,
            "deepsnow_version": __version__,
            "epoch": epoch,
            "iteration": iteration,
            "total_epochs": total_epochs(self.params),
            "arch": model.arch.as_dict(),
            "bands": model.bands.as_dict(),
            "config": dict(self.params),
            "data_key": self.dkey,
            "device": str(self.device),
            "precision": self.params["precision"],
            **model.state_dict(),
            "rng": ckpt.rng_state(self.device),
            "history": {"epoch": epoch_history.clone(), "iter": iter_history.clone()},
        }

    def _save_checkpoint(self, payload: dict, path: Path) -> Path:
        """:func:`deepsnow.torchfile.save` with a full disk (or any write error) reported as a clear error."""
        try:
            return torchfile.save(payload, path)
        except OSError as exc:
            last = self.last_good
            keep = f"the last good checkpoint {last} is intact" if last else "no earlier checkpoint exists"
            raise DeepsnowError(
                f"{path}: could not write the checkpoint ({exc.strerror or exc}); nothing partial was left and "
                f"{keep}. Free disk space (or raise gan.keep_every) and rerun to resume."
            ) from exc

    def _prune(self, latest: int) -> None:
        """Delete checkpoints outside the kept epochs (but the ``latest``) and any state after ``latest``."""
        keep = set(self.kept)
        for e, p in ckpt.epoch_files(self.dir).items():
            if e > latest or (e not in keep and e != latest):
                p.unlink(missing_ok=True)
                log.info("deleted %s (%s)", p, "after the resume point" if e > latest else "not kept, gan.keep_every")
        for e, p in ckpt.epoch_files(self.checkpoint_dir).items():
            if e > latest or e not in keep:
                p.unlink(missing_ok=True)
        for e in _epoch_numbers(self.samples_state, ".npz"):
            if e > latest:
                (self.samples_state / samples_name(e)).unlink(missing_ok=True)

    # -- what a run made --------------------------------------------------------
    def checkpoints(self, last: int) -> list[str]:
        """The published checkpoints of the epochs up to ``last``."""
        return [str(self.checkpoint_dir / checkpoint_name(e)) for e in self.kept if e <= last]

    def sample_files(self, last: int) -> list[str]:
        """The published samples of the epochs up to ``last`` (none without samples)."""
        if self.samples is None:
            return []
        return [str(self.samples.dir / samples_name(e)) for e in self.saved if e <= last]
