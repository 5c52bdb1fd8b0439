"""CUT / FastCUT training: the step against the reference's order, the settings of each mode, checkpoints,
bit-identical resume after a SIGKILL, and the options refused with the other model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import train as train_mod
from deepsnow.gan.cut_model import CUT, LOSS_NAMES
from deepsnow.gan.generate import generate, translate_batches
from deepsnow.gan.patchnce import patchnce_loss
from deepsnow.io import load_npz
from test_gan_train import data, read_csv, state_of  # noqa: F401 (data is a fixture)

PARAMS = dict(
    ngf=4,
    ndf=4,
    n_blocks=1,
    load_size=28,
    crop_size=24,
    batch_size=2,
    n_epochs=2,
    n_epochs_decay=1,
    device="cpu",
    threads=1,
    deterministic=True,
    seed=5,
)


def cut_params(model: str = "cut", **more) -> dict:
    return validate_section("gan", dict(PARAMS, model=model, **more))


def run(tmp_path, data, params: dict, name: str, **kw):  # noqa: F811
    """train() with validated ``params`` into tmp_path/name, as test_gan_train's run()."""
    d = tmp_path / name
    out = train_mod.train(
        params,
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


def test_each_mode_has_the_reference_settings():
    cut, fast = cut_params("cut"), cut_params("fastcut")
    assert (cut["lambda_GAN"], cut["lambda_NCE"], cut["nce_idt"], cut["flip_equivariance"]) == (1.0, 1.0, True, False)
    assert (fast["lambda_GAN"], fast["lambda_NCE"], fast["nce_idt"], fast["flip_equivariance"]) == (
        1.0,
        10.0,
        False,
        True,
    )
    for p in (cut, fast):
        assert (p["nce_T"], p["num_patches"]) == (0.07, 256)
        assert not {"pool_size", "lambda_cycle", "lambda_identity", "upsample"} & set(p)  # no image pool
    cyc = validate_section("gan", {})
    assert "model" not in cyc and cyc["pool_size"] == 50 and not {"lambda_NCE", "nce_idt"} & set(cyc)


def reference_nce(m: CUT, src, tgt) -> torch.Tensor:
    """Reference ``calculate_NCE_loss``: keys with gradients on (detached in the loss), queries at the keys' ids."""
    feat_q = m.G_A.encode(tgt, m.nce_layers)
    feat_k = m.G_A.encode(src, m.nce_layers)
    k_pool, ids = m.F(feat_k, m.num_patches)
    q_pool, _ = m.F(feat_q, m.num_patches, ids)
    total = 0.0
    for q, k in zip(q_pool, k_pool):
        total = total + patchnce_loss(q, k, src.shape[0], m.nce_T).mean() * m.lambda_NCE
    return total / len(m.nce_layers)


def reference_step(m: CUT, real_A, real_B) -> list[float]:
    """Reference ``CUTModel.optimize_parameters`` written out: separate D forwards, D first, then G and F;
    returns the losses in LOSS_NAMES order."""
    n = real_A.shape[0]
    fake = m.G_A(torch.cat((real_A, real_B)))
    fake_B, idt_B = fake[:n], fake[n:]
    for p in m.D_A.parameters():
        p.requires_grad_(True)
    m.opt_D.zero_grad()
    pred_fake, pred_real = m.D_A(fake_B.detach()), m.D_A(real_B)
    loss_D_fake = F.mse_loss(pred_fake, torch.zeros_like(pred_fake))
    loss_D_real = F.mse_loss(pred_real, torch.ones_like(pred_real))
    (0.5 * (loss_D_fake + loss_D_real)).backward()
    m.opt_D.step()
    for p in m.D_A.parameters():
        p.requires_grad_(False)
    m.opt_G.zero_grad()
    m.opt_F.zero_grad()
    pred = m.D_A(fake_B)
    loss_G_GAN = F.mse_loss(pred, torch.ones_like(pred)) * m.lambda_GAN
    nce, nce_y = reference_nce(m, real_A, fake_B), reference_nce(m, real_B, idt_B)
    loss_G = loss_G_GAN + 0.5 * (nce + nce_y)
    loss_G.backward()
    m.opt_G.step()
    m.opt_F.step()
    return [x.item() for x in (loss_G_GAN, loss_D_real, loss_D_fake, loss_G, nce, nce_y)]


def test_step_matches_the_reference_order_and_losses():
    params = cut_params("cut", num_patches=20)
    real_A, real_B = torch.rand(2, 3, 24, 24) * 2 - 1, torch.rand(2, 3, 24, 24) * 2 - 1
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = CUT(params, torch.device("cpu"))
        m.make_heads([3, 8, 16, 16])  # channels of layers 0, 4, 8, 12 at ngf 4
        models.append(m)
    ours, ref = models
    losses = ours.step(real_A, real_B)
    assert losses.tolist() == pytest.approx(reference_step(ref, real_A, real_B), rel=1e-5)
    # the gradients each optimiser stepped with, to float noise at the network's gradient scale (Adam turns
    # the noise in the gradient of a bias before instance norm into a full step: weights are not compared)
    for a, b in zip(ours.nets, ref.nets):
        scale = max(q.grad.abs().max().item() for q in b.parameters())
        for (k, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.isfinite(p.grad).all(), k
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6 * scale, msg=k)
    assert torch.equal(ours.F.rng_state(), ref.F.rng_state())  # the same locations drawn, as many times


def test_fastcut_flips_and_has_no_identity_term(monkeypatch):
    m = CUT(cut_params("fastcut", num_patches=16), torch.device("cpu"))
    m.make_heads([3, 8, 16, 16])
    seen = []
    real_encode = m.G_A.encode
    monkeypatch.setattr(m.G_A, "encode", lambda x, layers: seen.append(x.detach().clone()) or real_encode(x, layers))
    real_A, real_B = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    flips = []
    for _ in range(12):
        state = m.flips.get_state()
        flips.append(bool(torch.rand((), generator=torch.Generator().set_state(state)).item() < 0.5))
        seen.clear()
        losses = m.step(real_A, real_B)
        assert losses[LOSS_NAMES.index("NCE_Y")] == 0
        assert len(seen) == 2  # query (G(A), flipped or not) and key (real A): no identity term
        assert torch.equal(seen[1], real_A)
    assert any(flips) and not all(flips)


def tensors(payload: dict) -> dict:
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

    for key in ckpt.CUT_TRAINING_KEYS + ("G_A", "D_A", "F"):
        if key != "history":  # its epoch rows hold the timings
            walk(key, payload[key])
    return out


def test_train_writes_cut_checkpoints_and_losses(tmp_path, data):  # noqa: F811
    d, out = run(tmp_path, data, cut_params("cut"), "cut")
    assert out["final_losses"].keys() == set(LOSS_NAMES)
    rows = read_csv(d / "losses.csv")
    assert list(rows[0]) == ["epoch", "iterations", "lr", *LOSS_NAMES, "seconds", "it_per_s"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([2e-4, 2e-4, 1e-4])  # 2 + 1 epochs, linear decay
    assert all(float(r["NCE_Y"]) > 0 for r in rows)
    payload = ckpt.load(d / "checkpoints" / "epoch_003.pt", training=True)
    assert "G_B" not in payload and "pool_fake_A" not in payload
    assert sorted(k.split(".")[0] for k in payload["F"] if k.endswith("0.weight")) == [
        "mlp_0",
        "mlp_1",
        "mlp_2",
        "mlp_3",
    ]
    assert [g["lr"] for g in payload["optimizer_F"]["param_groups"]] == pytest.approx([0.0])  # F decays with G
    g, info = ckpt.load_generator(d / "checkpoints" / "epoch_003.pt", "G_A")
    assert type(g).__name__ == "AntialiasedResnetGenerator" and info["epoch"] == 3
    with pytest.raises(DeepsnowError, match=r"epoch_003\.pt.*G_A only, not G_B"):
        ckpt.load_generator(d / "checkpoints" / "epoch_003.pt", "G_B")
    # a reference CUT generator file (bare netG state dict) loads as one too
    torch.save(payload["G_A"], tmp_path / "400_net_G.pth")
    g_ref, info = ckpt.load_generator(tmp_path / "400_net_G.pth")
    assert info["kind"] == "reference" and info["generator"] == "G" and info["arch"]["netG"] == "resnet_antialias"
    assert all(torch.equal(v, g_ref.state_dict()[k]) for k, v in payload["G_A"].items())


def test_resume_after_sigkill_is_bit_identical(tmp_path, data):  # noqa: F811
    """A real `kill -9` of a CUT training process; rerunning finishes it bit-identical to an uninterrupted run."""
    params = cut_params("fastcut", n_epochs=2, n_epochs_decay=2, num_patches=32)
    d_full, _ = run(tmp_path, data, params, "full")
    full = ckpt.load(d_full / "checkpoints" / "epoch_004.pt", training=True)
    d = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import time
        from deepsnow.gan import train as t
        t.train({params!r}, {str(data[0])!r}, {str(data[1])!r}, {str(d / "checkpoints")!r}, {str(d / "state")!r},
                {str(d / "losses.csv")!r}, {str(d / "losses_iter.csv")!r}, progress=False,
                on_epoch_end=lambda epoch: time.sleep(0.4))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list((d / "state").glob("data-*/epoch_001.pt")):
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
    assert 1 <= done[-1] < 4, done
    for p in (d / "checkpoints").iterdir():  # Snakemake removes the outputs of the killed job
        p.unlink()
    _, out = run(tmp_path, data, params, "killed")
    assert out["resumed_from"] == done[-1]
    resumed = ckpt.load(d / "checkpoints" / "epoch_004.pt", training=True)
    t1, t2 = tensors(full), tensors(resumed)
    assert t1.keys() == t2.keys() and len(t1) > 50
    for k in t1:
        assert torch.equal(t1[k], t2[k]), k
    assert torch.equal(full["history"]["iter"], resumed["history"]["iter"])
    losses = slice(3, 3 + len(LOSS_NAMES))
    assert torch.equal(full["history"]["epoch"][:, losses], resumed["history"]["epoch"][:, losses])
    assert read_csv(d_full / "losses_iter.csv") == read_csv(d / "losses_iter.csv")


def test_cyclegan_checkpoint_is_not_resumed_as_cut(tmp_path, data):  # noqa: F811
    run(tmp_path, data, validate_section("gan", dict(PARAMS, n_epochs=1, n_epochs_decay=0)), "same")
    with pytest.raises(DeepsnowError, match=r"different gan config.*model: '<absent>' -> 'cut'"):
        run(tmp_path, data, cut_params("cut", n_epochs=1, n_epochs_decay=0), "same")


def test_samples_of_a_one_sided_model_are_a_to_b_only_and_remade_after_a_kill(tmp_path, data):  # noqa: F811
    params = cut_params("cut", keep_every=2)  # epoch 1's checkpoint is deleted once epoch 2 is written
    samples = {"samples_dir": tmp_path / "s", "test_a": data[0], "test_b": data[1]}
    samples["samples_params"] = validate_section("samples", {"batch_size": 2})
    d, out = run(tmp_path, data, params, "samples", max_epochs=2, **samples)
    assert [p.name for p in sorted((tmp_path / "s").iterdir())] == ["epoch_001.npz", "epoch_002.npz"]
    npz = load_npz(tmp_path / "s" / "epoch_002.npz")
    assert sorted(npz) == ["epoch", "fake_B", "ids_A"] and npz["fake_B"].shape == (5, 24, 24, 3)
    g, _ = ckpt.load_generator(d / "checkpoints" / "epoch_002.pt", "G_A")
    assert np.array_equal(npz["fake_B"], translate_batches(g, load_npz(data[0])["rgb"], 2, torch.device("cpu")))
    # samples lost after their checkpoint was written are remade from it on resume, A->B only too
    for p in state_of(d).glob("samples-*/epoch_002.npz"):
        p.unlink()
    (tmp_path / "s" / "epoch_002.npz").unlink()
    _, out = run(tmp_path, data, params, "samples", **samples)
    assert out["resumed_from"] == 2
    assert np.array_equal(load_npz(tmp_path / "s" / "epoch_002.npz")["fake_B"], npz["fake_B"])
    assert sorted(load_npz(tmp_path / "s" / "epoch_003.npz")) == ["epoch", "fake_B", "ids_A"]
    # deepsnow generate makes the same file from the checkpoint
    generate(samples["samples_params"], [d / "checkpoints" / "epoch_002.pt"], [tmp_path / "g.npz"], data[0], data[1])
    assert np.array_equal(load_npz(tmp_path / "g.npz")["fake_B"], npz["fake_B"])


@pytest.mark.parametrize(
    "section, needle",
    [
        ({"lambda_NCE": 2.0}, "key 'gan.lambda_NCE': an option of CUT / FastCUT, but gan.model is cyclegan"),
        ({"model": "cyclegan", "nce_idt": False}, "key 'gan.nce_idt': an option of CUT / FastCUT"),
        ({"model": "fastcut", "pool_size": 0}, "key 'gan.pool_size': an option of cycleGAN, but gan.model is fastcut"),
        ({"model": "cut", "upsample": "transpose"}, "key 'gan.upsample': an option of cycleGAN"),
        ({"model": "cut", "n_blocks": 1, "nce_layers": [0, 4, 8, 12, 16]}, "key 'gan.nce_layers': layers [16]"),
        ({"model": "cut", "n_blocks": 0}, "key 'gan.n_blocks': 0 residual blocks"),
    ],
)
def test_options_of_the_other_model_and_too_small_generators_are_refused(section, needle):
    with pytest.raises(DeepsnowError) as err:
        validate_section("gan", section)
    assert needle in str(err.value)


def test_smaller_generators_get_the_mapped_layers():
    assert CUT(cut_params("cut", n_blocks=3), torch.device("cpu")).nce_layers == [0, 4, 8, 12, 14]
    assert CUT(cut_params("cut", n_blocks=1, nce_layers=[4, 12]), torch.device("cpu")).nce_layers == [4, 12]
