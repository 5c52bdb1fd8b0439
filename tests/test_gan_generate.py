"""deepsnow generate: per-epoch uint8 samples of the fixed test set, with ids and provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import generate as gen
from deepsnow.gan import train as train_mod
from deepsnow.io import load_npz, save_npz

PARAMS = dict(
    ngf=4,
    ndf=4,
    n_blocks=1,
    load_size=24,
    crop_size=24,
    batch_size=2,
    n_epochs=1,
    n_epochs_decay=1,
    pool_size=2,
    device="cpu",
    threads=1,
    seed=3,
)


def samples(**params) -> dict:
    """The samples section, validated as the CLI and the workflow do before generate() runs."""
    return validate_section("samples", params)


def domain(path, n, size=24, seed=0, prefix="p"):
    rng = np.random.default_rng(seed)
    save_npz(
        path,
        rgb=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        ids=np.array([f"{prefix}_{i:03d}" for i in range(n)]),
    )
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    a, b = domain(d / "trainA.npz", 4, seed=1), domain(d / "trainB.npz", 4, seed=2)
    gan = validate_section("gan", PARAMS)
    train_mod.train(gan, a, b, d / "ck", d / "st", d / "l.csv", d / "li.csv", progress=False)
    test_a = domain(d / "testA.npz", 5, size=32, seed=3, prefix="testa")
    test_b = domain(d / "testB.npz", 3, size=32, seed=4, prefix="testb")
    return d, [d / "ck" / "epoch_001.pt", d / "ck" / "epoch_002.pt"], test_a, test_b


def test_generate_all_epochs_in_one_call(run, tmp_path):
    from deepsnow.cli import main

    d, cks, test_a, test_b = run
    outs = [tmp_path / "samples" / "epoch_001.npz", tmp_path / "samples" / "epoch_002.npz"]
    rc = main(
        [
            "generate",
            "--params",
            json.dumps({"batch_size": 2, "max_samples": 4}),
            "--device",
            "cpu",
            "--checkpoints",
            *map(str, cks),
            "--outputs",
            *map(str, outs),
            "--test-a",
            str(test_a),
            "--test-b",
            str(test_b),
        ]
    )
    assert rc == 0
    ta, tb = load_npz(test_a), load_npz(test_b)
    for e, (ck, out) in enumerate(zip(cks, outs), start=1):
        s = load_npz(out)
        assert set(s) == {"fake_B", "ids_A", "fake_A", "ids_B", "epoch"}
        assert int(s["epoch"]) == e
        assert s["fake_B"].shape == (4, 32, 32, 3) and s["fake_B"].dtype == np.uint8  # max_samples = 4 of 5
        assert s["fake_A"].shape == (3, 32, 32, 3) and s["fake_A"].dtype == np.uint8  # all 3
        assert list(s["ids_A"]) == list(ta["ids"][:4]) and list(s["ids_B"]) == list(tb["ids"])
        # the samples are G_A(testA) and G_B(testB), rounded to 8 bits
        g_a, _ = ckpt.load_generator(ck, "G_A")
        with torch.inference_mode():
            x = torch.from_numpy(ta["rgb"][:4].transpose(0, 3, 1, 2)).float() / 127.5 - 1
            y = ((g_a(x).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().transpose(0, 2, 3, 1)
        assert np.abs(y.astype(int) - s["fake_B"].astype(int)).max() <= 1
        prov = json.loads((out.parent / (out.name + ".prov.json")).read_text())
        assert prov["stage"] == "generate" and {i["path"] for i in prov["inputs"]} == {
            str(ck),
            str(test_a),
            str(test_b),
        }
    e1, e2 = load_npz(outs[0]), load_npz(outs[1])
    assert not np.array_equal(e1["fake_B"], e2["fake_B"])  # different epochs, different generators


def test_batch_size_does_not_change_samples(run, tmp_path):
    _, cks, test_a, test_b = run
    gen.generate(samples(batch_size=1), cks[:1], [tmp_path / "b1.npz"], test_a, test_b, device="cpu")
    gen.generate(samples(batch_size=8), cks[:1], [tmp_path / "b8.npz"], test_a, test_b, device="cpu")
    a, b = load_npz(tmp_path / "b1.npz"), load_npz(tmp_path / "b8.npz")
    assert np.abs(a["fake_B"].astype(int) - b["fake_B"].astype(int)).max() <= 1
    assert len(a["fake_B"]) == 5  # max_samples 0 = all


def test_patch_size_not_divisible_by_4(run, tmp_path):
    _, cks, _, test_b = run
    odd = domain(tmp_path / "testA30.npz", 2, size=30)
    with pytest.raises(DeepsnowError, match=r"testA30\.npz.*30x30.*divisible by 4"):
        gen.generate(samples(), cks[:1], [tmp_path / "o.npz"], odd, test_b, device="cpu")
    assert not (tmp_path / "o.npz").exists()


def test_bad_checkpoints(run, tmp_path):
    _, cks, test_a, test_b = run
    trunc = tmp_path / "epoch_009.pt"
    trunc.write_bytes(cks[0].read_bytes()[:3000])
    with pytest.raises(DeepsnowError, match=r"epoch_009\.pt: not a readable checkpoint"):
        gen.generate(samples(), [trunc], [tmp_path / "t.npz"], test_a, test_b, device="cpu")
    assert not (tmp_path / "t.npz").exists()
    # another architecture under the G_A key
    payload = torch.load(cks[0], weights_only=True)
    payload["arch"]["ngf"] = 8
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(DeepsnowError, match=r"other\.pt: 'G_A' does not fit.*model\.1\.weight"):
        gen.generate(samples(), [tmp_path / "other.pt"], [tmp_path / "x.npz"], test_a, test_b, device="cpu")
    with pytest.raises(DeepsnowError, match="2 checkpoints but 1 outputs"):
        gen.generate(samples(), cks, [tmp_path / "y.npz"], test_a, test_b, device="cpu")
    # a bad checkpoint after a good one: all or nothing, the good one's samples are not left behind
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    with pytest.raises(DeepsnowError, match=r"epoch_009\.pt: not a readable checkpoint"):
        gen.generate(samples(), [cks[0], trunc], [good, bad], test_a, test_b, device="cpu")
    assert not good.exists() and not bad.exists()
    # something that is not a checkpoint at all, and one holding pickled objects
    (tmp_path / "junk.pt").write_text("hello")
    with pytest.raises(DeepsnowError, match=r"junk\.pt"):
        gen.generate(samples(), [tmp_path / "junk.pt"], [tmp_path / "z.npz"], test_a, test_b, device="cpu")
    torch.save({"format": "deepsnow-cyclegan", "obj": object}, tmp_path / "pickled.pt")
    with pytest.raises(DeepsnowError, match=r"pickled\.pt: refusing to load"):
        gen.generate(samples(), [tmp_path / "pickled.pt"], [tmp_path / "w.npz"], test_a, test_b, device="cpu")


def test_empty_test_domain(run, tmp_path):
    _, cks, test_a, _ = run
    empty = tmp_path / "testB.npz"
    save_npz(empty, rgb=np.zeros((0, 32, 32, 3), np.uint8), ids=np.array([], dtype=str))
    with pytest.raises(DeepsnowError, match=r"testB\.npz.*empty"):
        gen.generate(samples(), cks[:1], [tmp_path / "e.npz"], test_a, empty, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(run, tmp_path):
    _, cks, test_a, test_b = run
    with pytest.raises(DeepsnowError, match=r"--device is 'cuda'"):
        gen.generate(samples(), cks[:1], [tmp_path / "c.npz"], test_a, test_b, device="cuda")
