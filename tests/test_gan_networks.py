"""cycleGAN networks: sizes, shapes, initialisation, the reference state-dict layout, schedule, pool, step."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks
from deepsnow.gan.model import CycleGAN, ImagePool
from deepsnow.gan.schedule import lr_factor, saved_epochs, state_key

TINY = validate_section(  # complete, as the CLI and the workflow hand it to the stage code
    "gan",
    dict(
        ngf=4,
        ndf=4,
        n_blocks=1,
        n_layers_d=3,
        lr=2e-4,
        beta1=0.5,
        n_epochs=2,
        n_epochs_decay=2,
        lambda_cycle=10.0,
        lambda_identity=0.5,
        pool_size=3,
        seed=0,
        precision="fp32",
    ),
)


def reference_layout(ngf: int, n_blocks: int, input_nc: int = 3, output_nc: int = 3) -> list[tuple[str, tuple]]:
    """Keys and shapes of a reference ResnetGenerator state dict, written out from the reference's layer list
    (independently of deepsnow.gan.networks):

    0 ReflectionPad2d(3), 1 Conv2d(in, ngf, 7), 2 norm, 3 ReLU,
    4 Conv2d(ngf, 2ngf, 3, s2), 5 norm, 6 ReLU, 7 Conv2d(2ngf, 4ngf, 3, s2), 8 norm, 9 ReLU,
    10 .. 10+n-1 ResnetBlock(4ngf) = conv_block [0 pad, 1 conv3, 2 norm, 3 relu, 4 pad, 5 conv3, 6 norm],
    then ConvTranspose2d(4ngf, 2ngf), norm, ReLU, ConvTranspose2d(2ngf, ngf), norm, ReLU,
    ReflectionPad2d(3), Conv2d(ngf, out, 7), Tanh.
    """
    keys = [
        ("model.1.weight", (ngf, input_nc, 7, 7)),
        ("model.1.bias", (ngf,)),
        ("model.4.weight", (2 * ngf, ngf, 3, 3)),
        ("model.4.bias", (2 * ngf,)),
        ("model.7.weight", (4 * ngf, 2 * ngf, 3, 3)),
        ("model.7.bias", (4 * ngf,)),
    ]
    for b in range(n_blocks):
        i = 10 + b
        for c in (1, 5):
            keys += [
                (f"model.{i}.conv_block.{c}.weight", (4 * ngf, 4 * ngf, 3, 3)),
                (f"model.{i}.conv_block.{c}.bias", (4 * ngf,)),
            ]
    up1 = 10 + n_blocks
    keys += [
        (f"model.{up1}.weight", (4 * ngf, 2 * ngf, 3, 3)),
        (f"model.{up1}.bias", (2 * ngf,)),  # ConvTranspose: (in, out, k, k)
        (f"model.{up1 + 3}.weight", (2 * ngf, ngf, 3, 3)),
        (f"model.{up1 + 3}.bias", (ngf,)),
        (f"model.{up1 + 7}.weight", (output_nc, ngf, 7, 7)),
        (f"model.{up1 + 7}.bias", (output_nc,)),
    ]
    return keys


def reference_state_dict(ngf: int, n_blocks: int, seed: int = 1, stale_norm_buffers: bool = False) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict((k, torch.randn(shape, generator=g) * 0.05) for k, shape in reference_layout(ngf, n_blocks))
    if stale_norm_buffers:  # old (PyTorch 0.3) reference files carry these for InstanceNorm layers
        sd["model.2.running_mean"] = torch.zeros(ngf)
        sd["model.2.running_var"] = torch.ones(ngf)
    return sd


@pytest.fixture(scope="module")
def paper_nets():
    torch.manual_seed(0)
    arch = networks.Architecture()  # paper defaults: ngf = ndf = 64, 9 blocks, 3 layers
    return networks.build_generator(arch), networks.build_discriminator(arch)


def test_parameter_counts_at_paper_defaults(paper_nets):
    g, d = paper_nets
    assert networks.count_parameters(g) == 11_378_179
    assert networks.count_parameters(d) == 2_764_737


def test_generator_state_dict_layout_is_the_reference(paper_nets):
    g, _ = paper_nets
    expected = reference_layout(64, 9)
    got = [(k, tuple(v.shape)) for k, v in g.state_dict().items()]
    assert got == expected  # same keys, same order, same shapes, no norm buffers


def test_instance_norm_has_no_affine_and_no_running_stats(paper_nets):
    for net in paper_nets:
        norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        assert norms
        assert all(not m.affine and not m.track_running_stats for m in norms)
        convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        assert all(m.bias is not None for m in convs)  # use_bias True with instance norm
        assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())


def test_init_statistics(paper_nets):
    g, d = paper_nets
    for net in (g, d):
        weights = torch.cat(
            [
                m.weight.detach().flatten()
                for m in net.modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
            ]
        )
        biases = torch.cat(
            [
                m.bias.detach().flatten()
                for m in net.modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
            ]
        )
        assert abs(weights.mean().item()) < 1e-3
        assert weights.std().item() == pytest.approx(0.02, rel=0.02)
        assert torch.count_nonzero(biases) == 0


def test_forward_shapes_and_range():
    arch = networks.Architecture(ngf=4, ndf=4, n_blocks=2)
    g, d = networks.build_generator(arch), networks.build_discriminator(arch)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1
    assert d(x).shape == (2, 1, 2, 2)
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 PatchGAN: 30x30 map at 256 px
    assert networks.min_discriminator_size(3) == 24


def test_reference_state_dict_loads_directly(tmp_path):
    sd = reference_state_dict(8, 2, stale_norm_buffers=True)
    path = tmp_path / "7_net_G_A.pth"
    torch.save(sd, path)
    arch = networks.infer_generator_arch(networks.clean_state_dict(sd))
    assert (arch.ngf, arch.n_blocks) == (8, 2)
    net, info = ckpt.load_generator(path, "G_A")
    assert info["kind"] == "reference" and info["generator"] == "G_A" and info["epoch"] == "7"
    own = net.state_dict()
    for k, _ in reference_layout(8, 2):
        assert torch.equal(own[k], sd[k])
    # our own generator with the same weights gives the same output
    ours = networks.ResnetGenerator(ngf=8, n_blocks=2)
    ours.load_state_dict({k: v for k, v in sd.items() if "running" not in k})
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), ours(x))
    # a DataParallel-prefixed file loads too
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()), tmp_path / "dp_net_G_A.pth")
    ckpt.load_generator(tmp_path / "dp_net_G_A.pth")
    # and so does one in the legacy (pre-1.6, non-zip) serialisation of old reference models
    torch.save(sd, tmp_path / "old_net_G_B.pth", _use_new_zipfile_serialization=False)
    net_old, info = ckpt.load_generator(tmp_path / "old_net_G_B.pth", "G_B")
    assert info["generator"] == "G_B" and torch.equal(net_old.state_dict()["model.1.weight"], sd["model.1.weight"])


def test_other_architecture_state_dict_is_refused(tmp_path):
    unet = OrderedDict(
        {"model.model.0.weight": torch.zeros(8, 3, 4, 4), "model.model.1.model.1.weight": torch.zeros(16, 8, 4, 4)}
    )
    torch.save(unet, tmp_path / "latest_net_G_A.pth")
    with pytest.raises(DeepsnowError, match=r"latest_net_G_A\.pth.*model\.1\.weight"):
        ckpt.load_generator(tmp_path / "latest_net_G_A.pth")
    # right first layer, wrong block width
    sd = reference_state_dict(8, 1)
    sd["model.10.conv_block.1.weight"] = torch.zeros(16, 16, 3, 3)
    torch.save(sd, tmp_path / "bad_net_G_A.pth")
    with pytest.raises(DeepsnowError, match=r"bad_net_G_A\.pth.*model\.10\.conv_block\.1\.weight"):
        ckpt.load_generator(tmp_path / "bad_net_G_A.pth")


def test_resize_conv_has_the_transpose_parameter_count_at_paper_size(paper_nets):
    g_transpose, _ = paper_nets
    g_resize = networks.build_generator(networks.Architecture(upsample="resize_conv"))
    assert networks.count_parameters(g_resize) == networks.count_parameters(g_transpose) == 11_378_179
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g_resize.modules())
    ups = [m for m in g_resize.modules() if isinstance(m, networks.ResizeConv)]
    assert [(m.conv.in_channels, m.conv.out_channels) for m in ups] == [(256, 128), (128, 64)]
    # every other layer is the reference's, at the reference's position
    t, r = g_transpose.state_dict(), g_resize.state_dict()
    up1 = 10 + 9
    moved = {f"model.{up1}.weight", f"model.{up1}.bias", f"model.{up1 + 3}.weight", f"model.{up1 + 3}.bias"}
    assert {k: v.shape for k, v in t.items() if k not in moved} == {
        k: v.shape for k, v in r.items() if ".conv." not in k
    }
    assert r[f"model.{up1}.conv.weight"].shape == (128, 256, 3, 3)  # a convolution's (out, in, k, k)


def test_resize_conv_is_nearest_upsampling_reflection_pad_and_3x3_conv():
    torch.manual_seed(3)
    layer = networks.init_weights(networks.ResizeConv(6, 4))
    assert layer.conv.weight.std().item() > 0  # initialised as the reference's convolutions
    x = torch.randn(2, 6, 5, 7)
    up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2, written out
    padded = torch.nn.functional.pad(up, (1, 1, 1, 1), mode="reflect")
    expected = torch.nn.functional.conv2d(padded, layer.conv.weight, layer.conv.bias)
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-6)
    g = networks.build_generator(networks.Architecture(ngf=4, n_blocks=1, upsample="resize_conv"))
    y = g(torch.rand(1, 3, 32, 24) * 2 - 1)
    assert y.shape == (1, 3, 32, 24) and y.abs().max() <= 1


def test_resize_conv_maps_a_flat_image_to_a_flat_image_where_transpose_makes_a_checkerboard():
    torch.manual_seed(0)
    flat = torch.ones(1, 8, 6, 6)
    with torch.no_grad():
        resized = networks.upsampling_layer(8, 4, "resize_conv")(flat)
        transposed = networks.upsampling_layer(8, 4, "transpose")(flat)
    assert resized.shape == transposed.shape == (1, 4, 12, 12)
    assert torch.allclose(resized, resized[:, :, :1, :1].expand_as(resized), atol=1e-6)
    inner = transposed[:, :, 2:-2, 2:-2]  # the stride-2 kernel overlap repeats with period 2
    assert torch.allclose(inner[:, :, ::2, ::2], inner[:, :, :1, :1].expand_as(inner[:, :, ::2, ::2]), atol=1e-6)
    assert (inner[:, :, 0, 0] - inner[:, :, 1, 1]).abs().max() > 1e-3
    with pytest.raises(DeepsnowError, match="upsample must be one of transpose, resize_conv, got 'bilinear'"):
        networks.upsampling_layer(8, 4, "bilinear")


def test_upsample_in_config_architecture_and_checkpoints(tmp_path):
    assert validate_section("gan", {})["upsample"] == "transpose"
    with pytest.raises(DeepsnowError, match=r"key 'gan.upsample'.*'bilinear' is not one of"):
        validate_section("gan", {"upsample": "bilinear"})
    arch = networks.Architecture.from_params(dict(TINY, upsample="resize_conv"))
    assert arch.upsample == "resize_conv"
    assert networks.Architecture.from_params(TINY).upsample == "transpose"
    # checkpoints written before the key existed hold the reference's transpose generator
    old = {k: v for k, v in networks.Architecture().as_dict().items() if k != "upsample"}
    assert networks.Architecture.from_dict(old).upsample == "transpose"
    with pytest.raises(DeepsnowError, match="unsupported architecture"):
        networks.Architecture.from_dict(dict(old, upsample="bilinear"))
    # a bare resize-conv generator state dict is recognised and loads
    net = networks.build_generator(networks.Architecture(ngf=4, n_blocks=2, upsample="resize_conv"))
    torch.save(net.state_dict(), tmp_path / "rc_net_G_A.pth")
    assert networks.infer_generator_arch(net.state_dict()).upsample == "resize_conv"
    loaded, _ = ckpt.load_generator(tmp_path / "rc_net_G_A.pth", "G_A")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_lr_schedule_values():
    # constant for n_epochs, then linear decay: lr_l = 1 - max(0, k + 1 - n_epochs) / (n_epochs_decay + 1), k 0-based
    f = [lr_factor(k, 100, 100) for k in range(200)]
    assert f[:100] == [1.0] * 100
    assert f[100] == pytest.approx(1 - 1 / 101)
    assert f[150] == pytest.approx(1 - 51 / 101)
    assert f[199] == pytest.approx(1 / 101)
    assert all(a > b for a, b in zip(f[100:], f[101:]))
    # the optimisers follow it, one step per epoch
    m = CycleGAN(dict(TINY, n_epochs=1, n_epochs_decay=3), torch.device("cpu"))
    lrs = []
    for _ in range(4):
        lrs.append(m.lr)
        m.end_epoch()
    assert lrs == pytest.approx([2e-4, 2e-4 * 3 / 4, 2e-4 * 2 / 4, 2e-4 * 1 / 4])
    assert m.opt_D.param_groups[0]["lr"] == pytest.approx(0.0)


def test_saved_epochs_and_state_key():
    assert saved_epochs({"n_epochs": 100, "n_epochs_decay": 100, "save_every": 1}) == list(range(1, 201))
    assert saved_epochs({"n_epochs": 7, "n_epochs_decay": 5, "save_every": 5}) == [5, 10, 12]
    assert saved_epochs({"n_epochs": 2, "n_epochs_decay": 0, "save_every": 5}) == [2]
    p = dict(TINY, save_every=1, device="cpu", threads=2)
    assert state_key(p) == state_key(dict(p, device="cuda", threads=8, save_every=3))
    assert state_key(p) != state_key(dict(p, ngf=8))


def test_schedule_module_does_not_import_torch():
    code = "import sys, deepsnow.gan.schedule as s; s.saved_epochs({'n_epochs': 1, 'n_epochs_decay': 1}); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, deepsnow.gan.commands; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_image_pool():
    assert ImagePool(0).query(x := torch.rand(2, 3, 4, 4)) is x
    pool = ImagePool(4, seed=3)
    first = [torch.full((1, 3, 2, 2), float(i)) for i in range(4)]
    for im in first:  # filling: every image is stored and returned as is
        assert torch.equal(pool.query(im), im)
    assert len(pool) == 4
    old_returned = 0
    n = 400
    for i in range(n):
        new = torch.full((1, 3, 2, 2), 100.0 + i)
        out = pool.query(new)
        assert out.shape == new.shape and len(pool) == 4
        if not torch.equal(out, new):
            old_returned += 1
            assert out[0, 0, 0, 0].item() < 100.0 + i  # an earlier image, now replaced by the new one
            assert any(torch.equal(im, new) for im in pool.images)
    assert 0.4 < old_returned / n < 0.6  # 50 % once full
    # the state (images and generator) round-trips exactly
    state = pool.state_dict()
    twin = ImagePool(4, seed=999)
    twin.load_state_dict(copy.deepcopy(state))
    for i in range(20):
        im = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(i))
        assert torch.equal(pool.query(im), twin.query(im))


def test_step_matches_the_reference_step(monkeypatch):
    """Our (stacked, one-forward) step computes the reference's losses and updates."""
    monkeypatch.syspath_prepend(Path(__file__).resolve().parents[1] / "benchmarks")
    from reference_loop import reference_step  # outside the package: not part of any stage's code hash

    torch.manual_seed(0)
    ours = CycleGAN(TINY, torch.device("cpu"))
    ref = copy.deepcopy(ours)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        a = torch.rand(2, 3, 24, 24, generator=g) * 2 - 1
        b = torch.rand(2, 3, 24, 24, generator=g) * 2 - 1
        la, lb = ours.step(a, b), reference_step(ref, a, b)
        torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)
    for n1, n2 in zip(ours.nets, ref.nets):
        for (k, v1), v2 in zip(n1.state_dict().items(), n2.state_dict().values()):
            if k.endswith(".weight"):
                torch.testing.assert_close(v1, v2, rtol=1e-4, atol=1e-6, msg=k)
            else:
                # Biases in front of an instance norm have a zero true gradient; Adam turns the rounding
                # noise into steps of up to about lr (1.05-1.11 lr at most in steps 2-3 with beta1 0.5, by
                # Cauchy-Schwarz on the bias-corrected moments), in the reference as here, each side in
                # its own direction: bounded by 2 sides x 3 steps x 1.15 lr. (An AVX2 CPU's rounding
                # noise took them 0.00092 apart, past the former bound of one side's 3 x 1.5 lr.)
                assert (v1 - v2).abs().max().item() <= 2 * 3 * 2e-4 * 1.15, k
