"""deepsnow train: checkpoints, CSVs, resume (bit-identical, also after SIGKILL), NaN guard, bad inputs."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsnow import DeepsnowError, torchfile
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import train as train_mod
from deepsnow.gan.model import LOSS_NAMES, CycleGAN
from deepsnow.io import save_npz

PARAMS = dict(
    ngf=4,
    ndf=4,
    n_blocks=1,
    load_size=28,
    crop_size=24,
    batch_size=2,
    n_epochs=2,
    n_epochs_decay=2,
    pool_size=3,
    device="cpu",
    threads=1,
    deterministic=True,
    seed=5,
)



def state_of(d: Path) -> Path:
    """The resumable state folder train() made under d/state (one per training data)."""
    subs = sorted((d / "state").glob("data-*"))
    assert len(subs) == 1, subs
    return subs[0]

def make_domain(path: Path, n: int, size: int = 24, seed: int = 0, prefix: str = "p") -> Path:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))
    noise = rng.integers(-40, 40, (n, size, size, 3))
    rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
    save_npz(path, rgb=rgb, ids=np.array([f"{prefix}_{i:03d}" for i in range(n)]))
    return path


@pytest.fixture()
def data(tmp_path):
    return make_domain(tmp_path / "trainA.npz", 5, seed=1, prefix="a"), make_domain(
        tmp_path / "trainB.npz", 4, seed=2, prefix="b"
    )


def gan_params(params=None, **more) -> dict:
    """PARAMS with ``params`` over them, validated as the CLI and the workflow do before train() runs."""
    return validate_section("gan", dict(PARAMS, **(params or {}), **more))


def run(tmp_path, data, params=None, name="run", **kw):
    d = tmp_path / name
    out = train_mod.train(
        gan_params(params),
        data[0],
        data[1],
        d / "checkpoints",
        d / "state",
        d / "losses.csv",
        d / "losses_iter.csv",
        progress=False,
        **kw,
    )
    return d, out


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def tensors(payload: dict) -> dict:
    """Every tensor in the networks' and optimisers' state, flattened."""
    out = {}

    def walk(prefix, obj):
        if isinstance(obj, torch.Tensor):
            out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}[{i}]", v)

    for key in ("G_A", "G_B", "D_A", "D_B", "optimizer_G", "optimizer_D", "pool_fake_A", "pool_fake_B"):
        walk(key, payload[key])
    return out


def assert_same_state(p1: dict, p2: dict) -> None:
    t1, t2 = tensors(p1), tensors(p2)
    assert t1.keys() == t2.keys()
    for k in t1:
        assert torch.equal(t1[k], t2[k]), k
    assert p1["iteration"] == p2["iteration"] and p1["epoch"] == p2["epoch"]
    loss_cols = slice(3, 3 + len(LOSS_NAMES))
    assert torch.equal(p1["history"]["epoch"][:, loss_cols], p2["history"]["epoch"][:, loss_cols])
    assert torch.equal(p1["history"]["iter"], p2["history"]["iter"])


def test_train_end_to_end_via_cli(tmp_path, data):
    from deepsnow.cli import main

    d = tmp_path / "cli"
    params = dict(PARAMS, n_epochs=1, n_epochs_decay=1)
    import json

    rc = main(
        [
            "train",
            "--params",
            json.dumps(params),
            "--train-a",
            str(data[0]),
            "--train-b",
            str(data[1]),
            "--checkpoint-dir",
            str(d / "ck"),
            "--state-dir",
            str(d / "st"),
            "--losses",
            str(d / "l.csv"),
            "--iter-losses",
            str(d / "li.csv"),
            "--no-progress",
        ]
    )
    assert rc == 0
    for e in (1, 2):
        path = d / "ck" / f"epoch_{e:03d}.pt"
        payload = torch.load(path, weights_only=True)  # plain types and tensors only
        assert payload["format"] == "deepsnow-cyclegan" and payload["epoch"] == e
        for key in (
            "G_A",
            "G_B",
            "D_A",
            "D_B",
            "optimizer_G",
            "optimizer_D",
            "scheduler_G",
            "scheduler_D",
            "pool_fake_A",
            "pool_fake_B",
            "rng",
            "iteration",
            "config",
            "arch",
            "history",
        ):
            assert key in payload
        assert payload["arch"]["ngf"] == 4 and payload["config"]["seed"] == 5
        assert payload["iteration"] == 3 * e  # max(5, 4) = 5 samples, batch 2 -> 3 iterations
        assert os.path.samefile(path, next((d / "st").glob("data-*")) / path.name)  # hard link, not a second copy
        assert (d / "ck" / (path.name + ".prov.json")).exists()
    rows = read_csv(d / "l.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "iterations", "lr", *LOSS_NAMES, "seconds", "it_per_s"]
    assert float(rows[0]["lr"]) == pytest.approx(2e-4) and float(rows[1]["lr"]) == pytest.approx(1e-4)
    it_rows = read_csv(d / "li.csv")
    assert len(it_rows) == 6 and list(it_rows[0]) == ["epoch", "iteration", *LOSS_NAMES]
    assert [int(r["iteration"]) for r in it_rows] == list(range(1, 7))
    means = np.mean([[float(r[k]) for k in LOSS_NAMES] for r in it_rows[:3]], axis=0)
    np.testing.assert_allclose(means, [float(rows[0][k]) for k in LOSS_NAMES], rtol=1e-6)
    assert all(np.isfinite(float(r[k])) for r in it_rows for k in LOSS_NAMES)
    assert (d / "l.csv.prov.json").exists() and (d / "li.csv.prov.json").exists()
    # training leaves the process's global torch settings as they were
    assert not torch.are_deterministic_algorithms_enabled()


def test_save_every_and_rerun_after_completion(tmp_path, data):
    d, out = run(tmp_path, data, {"n_epochs": 2, "n_epochs_decay": 1, "save_every": 2})
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["epoch_002.pt", "epoch_003.pt"]
    assert len(read_csv(d / "losses.csv")) == 3
    # Snakemake deletes declared outputs before a rerun: a rerun restores them without training again
    for p in (d / "checkpoints").iterdir():
        p.unlink()
    (d / "losses.csv").unlink()
    d2, out2 = run(tmp_path, data, {"n_epochs": 2, "n_epochs_decay": 1, "save_every": 2})
    assert out2["resumed_from"] == 3 and out2["iterations_this_run"] == 0
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["epoch_002.pt", "epoch_003.pt"]
    assert len(read_csv(d / "losses.csv")) == 3


def test_resume_is_bit_identical(tmp_path, data):
    """Stopped after epoch 3 of 4 (last checkpoint: epoch 2), then resumed: same weights, optimiser
    state, pools and losses as an uninterrupted run; the CSV rows of the unsaved epoch 3 are redone."""
    params = {"save_every": 2}
    d_full, _ = run(tmp_path, data, params, name="full")
    full = ckpt.load(d_full / "checkpoints" / "epoch_004.pt")

    d, out = run(tmp_path, data, params, name="resumed", max_epochs=3)
    assert len(read_csv(d / "losses.csv")) == 3
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["epoch_002.pt"]
    for p in (d / "checkpoints").iterdir():  # Snakemake deletes the declared outputs of the failed job
        p.unlink()
    _, out = run(tmp_path, data, params, name="resumed")
    assert out["resumed_from"] == 2
    resumed = ckpt.load(d / "checkpoints" / "epoch_004.pt")
    assert_same_state(full, resumed)
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["epoch_002.pt", "epoch_004.pt"]
    assert read_csv(d_full / "losses_iter.csv") == read_csv(d / "losses_iter.csv")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "it_per_s")} for r in rows]  # noqa: E731
    assert strip(read_csv(d_full / "losses.csv")) == strip(read_csv(d / "losses.csv"))


def test_resume_after_sigkill(tmp_path, data):
    """A real `kill -9` of a training process; rerunning finishes the run bit-identical to an uninterrupted one."""
    params = gan_params(n_epochs=3, n_epochs_decay=3)
    d_full, _ = run(tmp_path, data, params, name="full")
    full = ckpt.load(d_full / "checkpoints" / "epoch_006.pt")

    d = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import time
        from deepsnow.gan import train as t
        t.train({params!r}, {str(data[0])!r}, {str(data[1])!r}, {str(d / 'checkpoints')!r}, {str(d / 'state')!r},
                {str(d / 'losses.csv')!r}, {str(d / 'losses_iter.csv')!r}, progress=False,
                on_epoch_end=lambda epoch: time.sleep(0.4))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list((d / "state").glob("data-*/epoch_002.pt")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "training subprocess made no progress"
            time.sleep(0.02)
        time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(ckpt.epoch_files(state_of(d)))
    assert 2 <= done[-1] < 6, done  # killed mid-run
    for p in (d / "checkpoints").iterdir():  # Snakemake removes the outputs of the killed job
        p.unlink()
    _, out = run(tmp_path, data, params, name="killed")
    assert out["resumed_from"] == done[-1]
    assert_same_state(full, ckpt.load(d / "checkpoints" / "epoch_006.pt"))
    for e in range(1, 7):  # every checkpoint is there again and complete
        ckpt.load(d / "checkpoints" / f"epoch_{e:03d}.pt", training=True)
    assert not [p for p in state_of(d).iterdir() if ".part" in p.name]
    assert len(read_csv(d / "losses.csv")) == 6 and len(read_csv(d / "losses_iter.csv")) == 6 * 3


def test_nan_loss_stops_with_epoch_and_iteration(tmp_path, data, monkeypatch):
    real_step = CycleGAN.step
    calls = {"n": 0}

    def step(self, a, b):
        calls["n"] += 1
        losses = real_step(self, a, b)
        if calls["n"] == 5:  # epoch 2 (3 iterations per epoch), iteration 2
            losses = losses.clone()
            losses[2] = float("nan")
        return losses

    monkeypatch.setattr(CycleGAN, "step", step)
    with pytest.raises(DeepsnowError, match=r"epoch 2, iteration 2 of 3.*D_A=nan.*epoch_001\.pt"):
        run(tmp_path, data)
    d = tmp_path / "run"
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["epoch_001.pt"]
    ckpt.load(state_of(d) / "epoch_001.pt", training=True)
    assert len(read_csv(d / "losses.csv")) == 1
    # an absurd learning rate blows up for real; the guard names where
    monkeypatch.setattr(CycleGAN, "step", real_step)
    with pytest.raises(DeepsnowError, match=r"non-finite loss at epoch \d+, iteration \d+"):
        run(tmp_path, data, {"lr": 1e30}, name="absurd")


def test_empty_domain(tmp_path, data):
    empty = tmp_path / "emptyB.npz"
    save_npz(empty, rgb=np.zeros((0, 24, 24, 3), np.uint8), ids=np.array([], dtype=str))
    with pytest.raises(DeepsnowError, match=r"emptyB\.npz.*empty"):
        train_mod.train(
            gan_params(), data[0], empty, tmp_path / "c", tmp_path / "s", tmp_path / "l.csv", tmp_path / "li.csv"
        )
    assert not (tmp_path / "l.csv").exists()


def test_bad_sizes_and_precision(tmp_path, data):
    # crop vs load size and the number of epochs are config checks (validate_section, as the CLI runs it)
    with pytest.raises(DeepsnowError, match=r"gan\.crop_size.*larger than gan\.load_size"):
        run(tmp_path, data, {"crop_size": 32, "load_size": 28})
    with pytest.raises(DeepsnowError, match=r"crop_size.*multipleOf|multiple of 4"):
        run(tmp_path, data, {"crop_size": 22})
    with pytest.raises(DeepsnowError, match=r"n_epochs \+ n_epochs_decay must be at least 1"):
        run(tmp_path, data, {"n_epochs": 0, "n_epochs_decay": 0})
    with pytest.raises(DeepsnowError, match="too small for the PatchGAN"):
        run(tmp_path, data, {"crop_size": 16, "load_size": 24})
    with pytest.raises(DeepsnowError, match="fp16.*CUDA"):
        run(tmp_path, data, {"precision": "fp16"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(tmp_path, data):
    with pytest.raises(DeepsnowError, match=r"gan\.device is 'cuda' but no CUDA GPU"):
        run(tmp_path, data, {"device": "cuda"})


def test_resume_refuses_other_config_and_skips_truncated(tmp_path, data, caplog):
    d, _ = run(tmp_path, data, max_epochs=2)
    with pytest.raises(DeepsnowError, match=r"epoch_002\.pt.*different gan config.*ngf: 4 -> 8"):
        run(tmp_path, data, {"ngf": 8})
    # a truncated newest checkpoint (cannot happen with atomic writes, but a disk may fail) is set aside
    state = state_of(d) / "epoch_002.pt"
    state.write_bytes(state.read_bytes()[:1000])
    (d / "checkpoints" / "epoch_002.pt").unlink()
    _, out = run(tmp_path, data, {"threads": 2}, max_epochs=2)  # runtime-only keys may change
    assert out["resumed_from"] == 1
    assert (state_of(d) / "epoch_002.pt.corrupt").exists()
    assert "truncated or corrupt" in caplog.text
    ckpt.load(d / "checkpoints" / "epoch_002.pt", training=True)


def test_truncated_checkpoint_load_error(tmp_path, data):
    d, _ = run(tmp_path, data, {"n_epochs": 1, "n_epochs_decay": 0})
    bad = tmp_path / "bad.pt"
    bad.write_bytes((d / "checkpoints" / "epoch_001.pt").read_bytes()[:5000])
    with pytest.raises(DeepsnowError, match=r"bad\.pt: not a readable checkpoint"):
        ckpt.load(bad)


def test_equal_payloads_give_equal_file_bytes(tmp_path):
    """The bytes of a saved file depend only on what it holds: not on the random temporary name of
    the atomic write (torch.save names the archive's inner folder after a path it is given), nor on
    the target's name; so provenance's sha256 and simcover's identity repeat between runs."""
    net = torch.nn.Conv2d(3, 4, 3)
    payload = {"epoch": 1, "state": net.state_dict(), "note": "x"}
    paths = [torchfile.save(payload, tmp_path / name) for name in ("a.pt", "b.pt", "sub/a.pt")]
    blobs = [p.read_bytes() for p in paths]
    assert blobs[0] == blobs[1] == blobs[2]
    assert b".part" not in blobs[0] and b"a.pt" not in blobs[0]  # no file name inside the archive
    other = torchfile.save({**payload, "epoch": 2}, tmp_path / "c.pt").read_bytes()
    assert other != blobs[0]  # the content still decides the bytes
    assert torch.equal(torchfile.load_raw(paths[1])["state"]["weight"], net.weight.detach())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bf16_on_cpu_trains(tmp_path, data):
    d, out = run(tmp_path, data, {"precision": "bf16", "n_epochs": 1, "n_epochs_decay": 0, "deterministic": False})
    assert out["precision"] == "bf16"
    assert all(np.isfinite(v) for v in out["final_losses"].values())


def test_unaligned_data_and_augmentation():
    from deepsnow.gan.data import UnalignedData

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (7, 24, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    params = dict(load_size=28, crop_size=24, flip=True, batch_size=2, seed=1, n_layers_d=3)
    data = UnalignedData(a, b, params)
    assert data.a.shape == (7, 3, 28, 28) and data.a.dtype == torch.uint8  # resized once to load_size
    assert data.length == 7 and data.iterations_per_epoch == 4  # max(|A|, |B|), last batch partial
    p1, p1b, p2 = data.plan(1), data.plan(1), data.plan(2)
    assert torch.equal(p1.a_idx, p1b.a_idx) and torch.equal(p1.b_off, p1b.b_off)  # reproducible per epoch
    assert not torch.equal(p1.a_idx, p2.a_idx)  # and different between epochs
    assert sorted(p1.a_idx.tolist()) == list(range(7))  # every A once per epoch, shuffled
    assert p1.b_idx.max() < 3 and p1.a_off.max() <= 4 and p1.a_off.min() >= 0
    batches = list(data.batches(1))
    assert [x.shape[0] for x, _ in batches] == [2, 2, 2, 1]
    assert all(x.shape[1:] == (3, 24, 24) and y.shape == x.shape for x, y in batches)
    # a batch is the planned crop (and flip) of the resized image
    x0 = batches[0][0][0]
    i, (oy, ox), f = p1.a_idx[0].item(), p1.a_off[0].tolist(), p1.a_flip[0].item()
    crop = data.a[i, :, oy : oy + 24, ox : ox + 24]
    assert torch.equal(x0, crop.flip(-1) if f else crop)
    flips = torch.cat([data.plan(e).a_flip for e in range(1, 30)]).float().mean().item()
    assert 0.3 < flips < 0.7
    assert not data_no_flip(a, b, params).plan(1).a_flip.any()


def data_no_flip(a, b, params):
    from deepsnow.gan.data import UnalignedData

    return UnalignedData(a, b, dict(params, flip=False))


def test_other_training_data_starts_afresh(tmp_path, data):
    """A rerun on changed training data (say, after a patch setting changed) must not resume
    the run trained on the old data: its state lives in a folder named after the data."""
    d, first = run(tmp_path, data, {"n_epochs": 1, "n_epochs_decay": 1}, max_epochs=1)
    assert first["epochs_done"] == 1
    other = (make_domain(tmp_path / "otherA.npz", 5, seed=7, prefix="a"), data[1])
    _, second = run(tmp_path, other, {"n_epochs": 1, "n_epochs_decay": 1})
    assert second["resumed_from"] is None
    assert len(list((d / "state").glob("data-*"))) == 2
    # the same data again resumes from its own state
    _, third = run(tmp_path, data, {"n_epochs": 1, "n_epochs_decay": 1})
    assert third["resumed_from"] == 1
