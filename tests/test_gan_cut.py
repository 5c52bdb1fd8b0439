"""CUT / FastCUT networks: antialiased sampling, layer taps, PatchSampleF, PatchNCE, the reference layouts.

Expected values are computed here by hand (NumPy, written-out key lists), independently of
deepsnow.gan.cut and deepsnow.gan.patchnce.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deepsnow import DeepsnowError
from deepsnow.gan import cut, networks
from deepsnow.gan.patchnce import PatchSampleF, l2_normalize, patchnce_loss


def reference_generator_layout(ngf: int, n_blocks: int) -> list[tuple[str, tuple]]:
    """Keys and shapes of the reference CUT ResnetGenerator (antialiased) state dict:

    0 ReflectionPad2d(3), 1 Conv2d(3, ngf, 7), 2 norm, 3 ReLU,
    4 Conv2d(ngf, 2ngf, 3, s1), 5 norm, 6 ReLU, 7 Downsample(2ngf) [filt (2ngf, 1, 3, 3)],
    8 Conv2d(2ngf, 4ngf, 3, s1), 9 norm, 10 ReLU, 11 Downsample(4ngf),
    12 .. 12+n-1 ResnetBlock(4ngf) [conv_block 1 and 5 are the convolutions],
    Upsample(4ngf) [filt (4ngf, 1, 4, 4)], Conv2d(4ngf, 2ngf, 3), norm, ReLU,
    Upsample(2ngf), Conv2d(2ngf, ngf, 3), norm, ReLU, ReflectionPad2d(3), Conv2d(ngf, 3, 7), Tanh.
    """
    keys = [
        ("model.1.weight", (ngf, 3, 7, 7)),
        ("model.1.bias", (ngf,)),
        ("model.4.weight", (2 * ngf, ngf, 3, 3)),
        ("model.4.bias", (2 * ngf,)),
        ("model.7.filt", (2 * ngf, 1, 3, 3)),
        ("model.8.weight", (4 * ngf, 2 * ngf, 3, 3)),
        ("model.8.bias", (4 * ngf,)),
        ("model.11.filt", (4 * ngf, 1, 3, 3)),
    ]
    for b in range(n_blocks):
        for c in (1, 5):
            keys += [
                (f"model.{12 + b}.conv_block.{c}.weight", (4 * ngf, 4 * ngf, 3, 3)),
                (f"model.{12 + b}.conv_block.{c}.bias", (4 * ngf,)),
            ]
    up = 12 + n_blocks
    keys += [
        (f"model.{up}.filt", (4 * ngf, 1, 4, 4)),
        (f"model.{up + 1}.weight", (2 * ngf, 4 * ngf, 3, 3)),
        (f"model.{up + 1}.bias", (2 * ngf,)),
        (f"model.{up + 4}.filt", (2 * ngf, 1, 4, 4)),
        (f"model.{up + 5}.weight", (ngf, 2 * ngf, 3, 3)),
        (f"model.{up + 5}.bias", (ngf,)),
        (f"model.{up + 9}.weight", (3, ngf, 7, 7)),
        (f"model.{up + 9}.bias", (3,)),
    ]
    return keys


def reference_discriminator_layout(ndf: int) -> list[tuple[str, tuple]]:
    """The reference CUT ``basic`` discriminator (antialiased): conv s1, LReLU, Downsample, then twice
    (conv s1, norm, LReLU, Downsample), conv s1, norm, LReLU, conv to 1 channel."""
    return [
        ("model.0.weight", (ndf, 3, 4, 4)),
        ("model.0.bias", (ndf,)),
        ("model.2.filt", (ndf, 1, 3, 3)),
        ("model.3.weight", (2 * ndf, ndf, 4, 4)),
        ("model.3.bias", (2 * ndf,)),
        ("model.6.filt", (2 * ndf, 1, 3, 3)),
        ("model.7.weight", (4 * ndf, 2 * ndf, 4, 4)),
        ("model.7.bias", (4 * ndf,)),
        ("model.10.filt", (4 * ndf, 1, 3, 3)),
        ("model.11.weight", (8 * ndf, 4 * ndf, 4, 4)),
        ("model.11.bias", (8 * ndf,)),
        ("model.14.weight", (1, 8 * ndf, 4, 4)),
        ("model.14.bias", (1,)),
    ]


def shapes(net_or_state) -> list[tuple[str, tuple]]:
    state = net_or_state.state_dict() if isinstance(net_or_state, torch.nn.Module) else net_or_state
    return [(k, tuple(v.shape)) for k, v in state.items()]


@pytest.fixture(scope="module")
def paper_nets():
    torch.manual_seed(0)
    arch = cut.architecture(dict(ngf=64, ndf=64, n_blocks=9, n_layers_d=3))
    return cut.build_generator(arch), cut.build_discriminator(arch)


def test_state_dict_layouts_are_the_reference(paper_nets):
    g, d = paper_nets
    assert shapes(g) == reference_generator_layout(64, 9)
    assert shapes(d) == reference_discriminator_layout(64)
    # the same parameter counts as the plain cycleGAN networks (stride-1 conv + blur; blur + conv)
    assert networks.count_parameters(g) == 11_378_179
    assert networks.count_parameters(d) == 2_764_737


def test_xavier_init_with_gain_002(paper_nets):
    g, d = paper_nets
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.weight.numel() > 10_000:
                fan_in = m.weight.shape[1] * m.weight[0, 0].numel()
                fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
                expected = 0.02 * np.sqrt(2.0 / (fan_in + fan_out))  # xavier_normal_ std
                assert m.weight.std().item() == pytest.approx(expected, rel=0.05)
                assert torch.count_nonzero(m.bias) == 0


def test_blur_filters_are_the_binomial_ones():
    np.testing.assert_array_equal(cut.binomial_filter(3).numpy(), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    np.testing.assert_array_equal(cut.binomial_filter(4).numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)


def test_downsample_by_hand():
    x = np.arange(2 * 6 * 6, dtype=np.float64).reshape(1, 2, 6, 6) ** 1.5
    got = cut.Downsample(2)(torch.tensor(x, dtype=torch.float32)).numpy()
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    w = np.outer([1, 2, 1], [1, 2, 1]) / 16
    want = np.zeros((1, 2, 3, 3))
    for c in range(2):
        for i in range(3):
            for j in range(3):
                want[0, c, i, j] = (padded[0, c, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * w).sum()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_upsample_by_hand():
    x = np.random.default_rng(0).normal(size=(1, 1, 3, 3))
    got = cut.Upsample(1)(torch.tensor(x, dtype=torch.float32)).numpy()
    # transposed conv = scatter each padded pixel times the 4x4 filter (x4) at stride 2, then crop
    padded = np.pad(x[0, 0], 1, mode="edge")  # 5 x 5
    w = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64 * 4
    full = np.zeros((2 * 4 + 4, 2 * 4 + 4))
    for i in range(5):
        for j in range(5):
            full[2 * i : 2 * i + 4, 2 * j : 2 * j + 4] += padded[i, j] * w
    want = full[3:-3, 3:-3]  # padding 2 of conv_transpose2d, then the reference's 1-pixel trims
    assert got.shape == (1, 1, 6, 6)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5, atol=1e-6)
    flat = cut.Upsample(3)(torch.full((1, 3, 4, 4), 0.25))
    torch.testing.assert_close(flat, torch.full((1, 3, 8, 8), 0.25))  # a flat image stays flat


def test_forward_sizes_match_the_plain_networks():
    arch = cut.architecture(dict(ngf=4, ndf=4, n_blocks=2, n_layers_d=3))
    g, d = cut.build_generator(arch), cut.build_discriminator(arch)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert d(x).shape == (2, 1, 2, 2)
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_encoder_taps_are_the_reference_modules():
    torch.manual_seed(0)
    g = cut.AntialiasedResnetGenerator(ngf=2, n_blocks=9)
    taps = cut.encoder_taps(9)
    assert taps == [0, 4, 8, 12, 16]
    kinds = [type(g.model[i]).__name__ for i in taps]
    assert kinds == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"]
    assert g.model[4].out_channels == 4 and g.model[4].stride == (1, 1)  # the first down-sampling convolution
    assert g.model[8].out_channels == 8  # the second, after the first Downsample
    seen = {}
    hooks = [g.model[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out)) for i in taps]
    x = torch.rand(2, 3, 16, 16)
    feats = g.encode(x, taps)
    g(x)
    for h in hooks:
        h.remove()
    assert [tuple(f.shape) for f in feats] == [(2, 3, 22, 22), (2, 4, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 4, 4)]
    for i, f in zip(taps, feats):
        assert torch.equal(f, seen[i])
    torch.testing.assert_close(feats[0], torch.nn.functional.pad(x, (3, 3, 3, 3), mode="reflect"))


def test_encoder_taps_for_smaller_generators_and_too_small_ones():
    assert cut.encoder_taps(6) == [0, 4, 8, 12, 16]  # as the reference's resnet_6blocks
    assert cut.encoder_taps(3) == [0, 4, 8, 12, 14]  # block 5 -> the last block (3)
    assert cut.encoder_taps(1) == [0, 4, 8, 12]  # blocks 1 and 5 are the one block
    with pytest.raises(DeepsnowError, match=r"gan\.n_blocks.*0 residual blocks"):
        cut.encoder_taps(0)
    assert cut.encoder_taps(0, [0, 4, 8]) == [0, 4, 8]
    with pytest.raises(DeepsnowError, match=r"gan\.nce_layers.*\[16\].*0\.\.12"):
        cut.encoder_taps(1, [0, 4, 8, 12, 16])
    with pytest.raises(DeepsnowError, match=r"encoder layers 0\.\.12"):
        cut.AntialiasedResnetGenerator(ngf=2, n_blocks=1).encode(torch.zeros(1, 3, 8, 8), [0, 13])


def test_patch_sample_f_shares_the_key_locations_with_the_query():
    f = PatchSampleF(nc=8, seed=3)
    key = [torch.randn(2, 5, 4, 4), torch.randn(2, 7, 2, 2)]
    query = [torch.randn(2, 5, 4, 4), torch.randn(2, 7, 2, 2)]
    k_out, ids = f(key, num_patches=6)
    q_out, q_ids = f(query, num_patches=6, patch_ids=ids)
    assert [len(i) for i in ids] == [6, 4]  # at most H x W locations per layer
    assert all(torch.equal(a, b) for a, b in zip(ids, q_ids))
    assert len(set(ids[0].tolist())) == 6
    assert [tuple(o.shape) for o in k_out] == [(12, 8), (8, 8)] == [tuple(o.shape) for o in q_out]
    # row b x P + p is image b's feature at location ids[p], through the layer's head, L2-normalised
    mlp = f.mlp_0
    for b in range(2):
        for p, loc in enumerate(ids[0].tolist()):
            v = query[0][b, :, loc // 4, loc % 4]
            h = mlp(v[None])[0]
            torch.testing.assert_close(q_out[0][b * 6 + p], h / (h.norm() + 1e-7))
    # unit length but for the reference's 1e-7 (visible here: gain-0.02 heads give outputs near 1e-4)
    assert torch.all(k_out[1].norm(dim=1) < 1) and torch.allclose(k_out[1].norm(dim=1), torch.ones(8), atol=1e-2)
    # the heads are Linear(C, nc) - ReLU - Linear(nc, nc), in the reference's key layout
    assert shapes(f) == [
        ("mlp_0.0.weight", (8, 5)),
        ("mlp_0.0.bias", (8,)),
        ("mlp_0.2.weight", (8, 8)),
        ("mlp_0.2.bias", (8,)),
        ("mlp_1.0.weight", (8, 7)),
        ("mlp_1.0.bias", (8,)),
        ("mlp_1.2.weight", (8, 8)),
        ("mlp_1.2.bias", (8,)),
    ]
    assert f.heads_channels(f.state_dict()) == [5, 7]


def test_l2_normalisation_has_finite_gradients_at_zero():
    x = torch.tensor([[0.0, 0.0, 0.0], [3e-4, -4e-4, 0.0]], requires_grad=True)
    y = l2_normalize(x)
    # the reference's values: x / (||x|| + 1e-7)
    torch.testing.assert_close(y.detach(), torch.tensor([[0.0, 0.0, 0.0], [0.6, -0.8, 0.0]]) * (5e-4 / (5e-4 + 1e-7)))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    z = torch.zeros(1, 3, requires_grad=True)  # the reference's formula gives NaN here
    (z / (z.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)).sum().backward()
    assert torch.isnan(z.grad).all()


def test_patch_sample_f_locations_repeat_with_the_seed_and_its_saved_state():
    a, b = PatchSampleF(nc=4, seed=1), PatchSampleF(nc=4, seed=1)
    feats = [torch.randn(1, 3, 8, 8)]
    state = a.rng_state()
    _, ids_a = a(feats, 16)
    b.set_rng_state(state)
    _, ids_b = b(feats, 16)
    assert torch.equal(ids_a[0], ids_b[0])
    _, ids_next = a(feats, 16)
    assert not torch.equal(ids_a[0], ids_next[0])


def patchnce_by_hand(q: np.ndarray, k: np.ndarray, tau: float) -> np.ndarray:
    """Per image b and query patch i: logits [q_i.k_i, q_i.k_0 .. q_i.k_{P-1} with the i-th -10] / tau,
    loss = logsumexp(logits) - logits[0]."""
    out = []
    for qb, kb in zip(q, k):
        for i in range(len(qb)):
            neg = kb @ qb[i]
            neg[i] = -10.0
            logits = np.concatenate([[qb[i] @ kb[i]], neg]) / tau
            m = logits.max()
            out.append(m + np.log(np.exp(logits - m).sum()) - logits[0])
    return np.array(out)


def test_patchnce_loss_by_hand():
    rng = np.random.default_rng(7)
    q = rng.normal(size=(2, 4, 3))
    k = rng.normal(size=(2, 4, 3))
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    k /= np.linalg.norm(k, axis=2, keepdims=True)
    got = patchnce_loss(torch.tensor(q.reshape(8, 3)), torch.tensor(k.reshape(8, 3)), batch_size=2, tau=0.07)
    np.testing.assert_allclose(got.numpy(), patchnce_by_hand(q, k, 0.07), rtol=1e-10)
    # negatives come from the same image only: another image's keys change nothing
    k2 = k.copy()
    k2[1] = rng.normal(size=(4, 3))
    got2 = patchnce_loss(torch.tensor(q.reshape(8, 3)), torch.tensor(k2.reshape(8, 3)), batch_size=2, tau=0.07)
    assert torch.equal(got[:4], got2[:4]) and not torch.equal(got[4:], got2[4:])


def test_patchnce_loss_of_a_perfect_match_and_key_detached():
    # queries equal to orthonormal keys: positive logit 1/tau, negatives 0 and the diagonal -10/tau
    q = torch.eye(3, dtype=torch.float64).requires_grad_(True)
    k = torch.eye(3, dtype=torch.float64).requires_grad_(True)
    loss = patchnce_loss(q, k, batch_size=1, tau=0.5)
    want = np.log(np.exp(2.0) + 2 * np.exp(0.0) + np.exp(-20.0)) - 2.0
    np.testing.assert_allclose(loss.detach().numpy(), [want] * 3, rtol=1e-12)
    loss.sum().backward()
    assert q.grad is not None and k.grad is None
    with pytest.raises(DeepsnowError, match="do not match"):
        patchnce_loss(q, k[:2], batch_size=1)


def test_reference_cut_state_dicts_load_directly():
    g = cut.AntialiasedResnetGenerator(ngf=4, n_blocks=2)
    d = cut.AntialiasedNLayerDiscriminator(ndf=4)
    gen = torch.Generator().manual_seed(0)
    for net, layout in ((g, reference_generator_layout(4, 2)), (d, reference_discriminator_layout(4))):
        sd = {k: torch.randn(s, generator=gen) for k, s in layout}
        networks.load_state_strict(net, sd, "ref.pth", "net")
        assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())
    arch = networks.Architecture.from_dict(cut.architecture(dict(ngf=4, ndf=4, n_blocks=2, n_layers_d=3)).as_dict())
    assert arch.antialiased and not networks.Architecture().antialiased
    with pytest.raises(DeepsnowError, match="unsupported architecture"):
        networks.Architecture.from_dict({**arch.as_dict(), "upsample": "transpose"})
