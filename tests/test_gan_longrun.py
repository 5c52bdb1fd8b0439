"""Long-run safety of training: bounded checkpoints (gan.keep_every) with every epoch's samples,
any number of stops and resumes, a full disk during a checkpoint write."""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import generate as gen
from deepsnow.gan import state as state_mod
from deepsnow.gan import train as train_mod
from deepsnow.io import load_npz
from test_gan_train import PARAMS, assert_same_state, make_domain, read_csv

N_EPOCHS = 5  # 3 + 2 decay
LONG = dict(PARAMS, n_epochs=3, n_epochs_decay=2, keep_every=2)
SAMPLES = {"batch_size": 2, "max_samples": 3}


class Stop(Exception):
    """Raised by a hook to stop training the way a killed job stops (nothing after it runs)."""


@pytest.fixture()
def data(tmp_path):
    return {
        "train_a": make_domain(tmp_path / "trainA.npz", 5, seed=1, prefix="a"),
        "train_b": make_domain(tmp_path / "trainB.npz", 4, seed=2, prefix="b"),
        "test_a": make_domain(tmp_path / "testA.npz", 4, size=24, seed=3, prefix="ta"),
        "test_b": make_domain(tmp_path / "testB.npz", 3, size=24, seed=4, prefix="tb"),
    }


def run(d: Path, data, params=None, samples=SAMPLES, **kw):
    """train() as the CLI calls it: both sections validated first."""
    return train_mod.train(
        validate_section("gan", dict(LONG, **(params or {}))),
        data["train_a"],
        data["train_b"],
        d / "checkpoints",
        d / "state",
        d / "losses.csv",
        d / "losses_iter.csv",
        test_a=data["test_a"],
        test_b=data["test_b"],
        samples_params=validate_section("samples", samples),
        samples_dir=d / "samples",
        progress=False,
        **kw,
    )


def state_dir(d: Path) -> Path:
    (sub,) = (d / "state").glob("data-*")
    return sub


def names(folder: Path, pattern: str = "epoch_*") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


def wipe_outputs(d: Path) -> None:
    """What Snakemake does to a failed job's declared outputs before the rerun."""
    for folder in ("checkpoints", "samples"):
        for p in (d / folder).glob("*"):
            p.unlink()


def assert_same_samples(d1: Path, d2: Path) -> None:
    assert names(d1 / "samples", "epoch_*.npz") == names(d2 / "samples", "epoch_*.npz")
    for name in names(d1 / "samples", "epoch_*.npz"):
        s1, s2 = load_npz(d1 / "samples" / name), load_npz(d2 / "samples" / name)
        assert s1.keys() == s2.keys()
        for k in s1:
            assert np.array_equal(s1[k], s2[k]), (name, k)


@pytest.fixture()
def reference(tmp_path, data):
    """An uninterrupted run: what every interrupted one must end as."""
    d = tmp_path / "reference"
    out = run(d, data)
    return d, out


def test_keep_every_bounds_checkpoints_and_keeps_every_epochs_samples(reference, data):
    d, out = reference
    assert out["epochs_done"] == N_EPOCHS
    kept = ["epoch_002.pt", "epoch_004.pt", "epoch_005.pt"]  # every 2nd and the last
    assert names(d / "checkpoints") == kept
    assert names(state_dir(d), "epoch_*.pt") == kept  # the resumable state is pruned too
    assert names(d / "samples") == [f"epoch_{e:03d}.npz" for e in range(1, N_EPOCHS + 1)]
    assert out["samples"] == [str(d / "samples" / f"epoch_{e:03d}.npz") for e in range(1, N_EPOCHS + 1)]
    test_a, test_b = load_npz(data["test_a"]), load_npz(data["test_b"])
    for e in range(1, N_EPOCHS + 1):
        s = load_npz(d / "samples" / f"epoch_{e:03d}.npz")
        assert int(s["epoch"]) == e
        assert s["fake_B"].shape == (3, 24, 24, 3) and s["fake_A"].shape == (3, 24, 24, 3)  # max_samples 3
        assert list(s["ids_A"]) == list(test_a["ids"][:3]) and list(s["ids_B"]) == list(test_b["ids"][:3])
    # the samples written during training are exactly what `deepsnow generate` makes from a kept checkpoint
    for e in (2, 4, 5):
        again = d / f"again_{e}.npz"
        gen.generate(SAMPLES, [d / "checkpoints" / f"epoch_{e:03d}.pt"], [again], data["test_a"], data["test_b"], "cpu")
        ours, theirs = load_npz(d / "samples" / f"epoch_{e:03d}.npz"), load_npz(again)
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours), e
    # different epochs, different generators (the samples are not copies of one epoch)
    s1, s5 = load_npz(d / "samples" / "epoch_001.npz"), load_npz(d / "samples" / "epoch_005.npz")
    assert not np.array_equal(s1["fake_B"], s5["fake_B"])


def test_keep_every_needs_samples(tmp_path, data):
    x = tmp_path / "x"
    with pytest.raises(DeepsnowError, match=r"keep_every = 2 deletes checkpoints.*--samples-dir"):
        train_mod.train(
            validate_section("gan", LONG), data["train_a"], data["train_b"], x / "ck", x / "st", x / "l.csv", x / "li.csv", progress=False
        )
    assert not x.exists()  # refused before anything was written


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_number_of_stops_and_resumes_end_as_an_uninterrupted_run(tmp_path, data, reference, seed, monkeypatch):
    """Stopped at random points (mid-epoch, after a checkpoint but before its samples, between
    epochs) again and again; each rerun resumes; the end is bit-identical to the reference."""
    d_ref, _ = reference
    d = tmp_path / f"stopped{seed}"
    rng = random.Random(seed)
    real_write, real_step = state_mod.write_samples, train_mod.CycleGAN.step
    stops, resumed_from = 0, []
    for attempt in range(30):
        point = rng.choice(["step", "samples", "epoch_end"])
        countdown = [rng.randint(1, 6)]

        def maybe_stop():
            countdown[0] -= 1
            if countdown[0] == 0:
                raise Stop(point)

        def step(self, *a, **k):
            if point == "step":
                maybe_stop()
            return real_step(self, *a, **k)

        def write_samples(*a, **k):
            if point == "samples":
                maybe_stop()
            return real_write(*a, **k)

        monkeypatch.setattr(train_mod.CycleGAN, "step", step)
        monkeypatch.setattr(state_mod, "write_samples", write_samples)
        try:
            out = run(d, data, on_epoch_end=lambda epoch: maybe_stop() if point == "epoch_end" else None)
        except Stop:
            stops += 1
            wipe_outputs(d)
            continue
        resumed_from.append(out["resumed_from"])
        break
    else:
        pytest.fail("training never finished")
    monkeypatch.undo()
    assert stops >= 2, "the test should stop training several times"
    assert out["epochs_done"] == N_EPOCHS
    assert_same_state(ckpt.load(d_ref / "checkpoints" / "epoch_005.pt"), ckpt.load(d / "checkpoints" / "epoch_005.pt"))
    assert names(d / "checkpoints") == names(d_ref / "checkpoints")
    assert names(state_dir(d), "epoch_*.pt") == names(d_ref / "checkpoints")
    assert_same_samples(d_ref, d)
    assert read_csv(d / "losses_iter.csv") == read_csv(d_ref / "losses_iter.csv")
    assert not [p for p in d.rglob("*") if ".part" in p.name]


def test_killed_between_checkpoint_and_samples_remakes_them(tmp_path, data, reference, monkeypatch):
    """The job dies after epoch 3's checkpoint but before its samples: the rerun remakes epoch 3's
    samples from that checkpoint, then prunes it (3 is not kept)."""
    d_ref, _ = reference
    d = tmp_path / "gap"
    real = state_mod.write_samples

    def write_samples(out, *a, **k):
        if Path(out).name == "epoch_003.npz":
            raise Stop("killed")
        return real(out, *a, **k)

    monkeypatch.setattr(state_mod, "write_samples", write_samples)
    with pytest.raises(Stop):
        run(d, data)
    assert names(state_dir(d), "epoch_*.pt") == ["epoch_002.pt", "epoch_003.pt"]  # 3 is still the latest
    monkeypatch.undo()
    wipe_outputs(d)
    out = run(d, data)
    assert out["resumed_from"] == 3
    assert_same_samples(d_ref, d)
    assert names(d / "checkpoints") == ["epoch_002.pt", "epoch_004.pt", "epoch_005.pt"]


def test_changed_samples_settings(tmp_path, data):
    """New samples settings: with every checkpoint kept they are remade without training; with
    pruned checkpoints training restarts (deterministically) since the pruned generators are gone."""
    d = tmp_path / "all_kept"
    run(d, data, {"keep_every": 1})
    out = run(d, data, {"keep_every": 1}, samples={"batch_size": 1, "max_samples": 2})
    assert out["iterations_this_run"] == 0 and out["resumed_from"] == N_EPOCHS
    assert load_npz(d / "samples" / "epoch_001.npz")["fake_B"].shape[0] == 2
    assert len(list((d / "state").glob("data-*/samples-*"))) == 1  # the old settings' samples are gone

    d = tmp_path / "pruned"
    run(d, data)
    before = ckpt.load(d / "checkpoints" / "epoch_005.pt")
    out = run(d, data, samples={"batch_size": 1, "max_samples": 2})
    assert out["resumed_from"] is None and out["iterations_this_run"] > 0
    assert load_npz(d / "samples" / "epoch_001.npz")["fake_B"].shape[0] == 2
    assert_same_state(before, ckpt.load(d / "checkpoints" / "epoch_005.pt"))


def test_changed_keep_every(tmp_path, data):
    """More checkpoints to keep than the state has: retrain (epoch 1's checkpoint is gone, so from the
    start, deterministically); fewer: prune, without training."""
    d = tmp_path / "k"
    run(d, data, {"keep_every": 2})
    before = ckpt.load(d / "checkpoints" / "epoch_005.pt")
    out = run(d, data, {"keep_every": 1})
    assert out["resumed_from"] is None and out["iterations_this_run"] > 0
    assert names(d / "checkpoints") == [f"epoch_{e:03d}.pt" for e in range(1, N_EPOCHS + 1)]
    assert_same_state(before, ckpt.load(d / "checkpoints" / "epoch_005.pt"))
    out = run(d, data, {"keep_every": 4})
    assert out["resumed_from"] == N_EPOCHS and out["iterations_this_run"] == 0
    assert names(d / "checkpoints") == ["epoch_004.pt", "epoch_005.pt"]
    assert names(state_dir(d), "epoch_*.pt") == ["epoch_004.pt", "epoch_005.pt"]


def test_full_disk_during_a_checkpoint_write(tmp_path, data, reference, monkeypatch):
    """torch.save runs out of space half-way through epoch 4's checkpoint: a clear error and exit 2, no
    partial file, the earlier checkpoints intact; after space is freed the rerun resumes and ends right."""
    from deepsnow.cli import main

    d_ref, _ = reference
    d = tmp_path / "full"
    real_save = ckpt.torch.save
    calls = []

    def save(obj, f, *a, **k):
        calls.append(obj["epoch"])
        if obj["epoch"] == 4:
            f.write(b"PK\x03\x04" + b"\0" * 1000)  # some bytes made it to disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", save)
    argv = [
        "train",
        "--params",
        json.dumps(LONG),
        "--samples-params",
        json.dumps(SAMPLES),
        "--train-a",
        str(data["train_a"]),
        "--train-b",
        str(data["train_b"]),
        "--test-a",
        str(data["test_a"]),
        "--test-b",
        str(data["test_b"]),
        "--checkpoint-dir",
        str(d / "checkpoints"),
        "--samples-dir",
        str(d / "samples"),
        "--state-dir",
        str(d / "state"),
        "--losses",
        str(d / "losses.csv"),
        "--iter-losses",
        str(d / "losses_iter.csv"),
        "--no-progress",
    ]
    assert main(argv) == 2
    assert 4 in calls
    assert not [p for p in d.rglob("*") if ".part" in p.name]  # the half-written file is gone
    assert names(state_dir(d), "epoch_*.pt") == ["epoch_002.pt", "epoch_003.pt"]
    ckpt.load(state_dir(d) / "epoch_003.pt", training=True)  # the last good one is complete
    assert "epoch_004.npz" not in names(d / "samples")
    monkeypatch.undo()
    wipe_outputs(d)
    assert main(argv) == 0
    assert_same_state(ckpt.load(d_ref / "checkpoints" / "epoch_005.pt"), ckpt.load(d / "checkpoints" / "epoch_005.pt"))
    assert_same_samples(d_ref, d)


def test_full_disk_message(tmp_path, data, monkeypatch, capsys):
    """The message names the file, the cause, what is intact and what to do."""

    def save(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", save)
    with pytest.raises(DeepsnowError) as info:
        run(tmp_path / "m", data)
    msg = str(info.value)
    assert "epoch_001.pt" in msg and "No space left on device" in msg
    assert "no earlier checkpoint exists" in msg and "rerun to resume" in msg


def test_a_second_trainer_on_the_same_state_is_refused(tmp_path, data):
    """A training process orphaned by a killed Snakemake must not share its state with a rerun."""
    from deepsnow import locks
    from deepsnow.gan.state import data_key

    d = tmp_path / "locked"
    lock = d / "state" / f".data-{data_key(data['train_a'], data['train_b'])}.lock"
    holder = locks.acquire(lock, "x", "y")  # as the other trainer would hold it
    try:
        with pytest.raises(DeepsnowError, match=r"training state folder .* is locked by process \d+"):
            run(d, data)
        assert not (d / "checkpoints").exists() and not (d / "samples").exists()
    finally:
        holder.close()
    assert run(d, data)["epochs_done"] == N_EPOCHS  # released: the next run trains
