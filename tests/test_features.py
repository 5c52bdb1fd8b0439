"""Feature extractors: FID Inception architecture, weights options, registry, embedding."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from deepsnow import DeepsnowError
from deepsnow.features import (
    Extractor,
    FIDInceptionFeatures,
    build_extractor,
    embed_images,
    fid_inception_v3,
    register_extractor,
)
from deepsnow.features import base, registry


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def offline(monkeypatch):
    def fail(name, tag, loader):
        raise OSError(f"<urlopen error [Errno -3] Temporary failure in name resolution> ({tag})")

    monkeypatch.setattr(base, "load_pretrained", fail)


def test_fid_inception_state_dict_has_pytorch_fid_names():
    net = fid_inception_v3()
    sd = net.state_dict()
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_1a_3x3.bn.running_var",
        "Conv2d_4a_3x3.conv.weight",
        "Mixed_5b.branch_pool.conv.weight",
        "Mixed_5d.branch5x5_2.bn.bias",
        "Mixed_6a.branch3x3.conv.weight",
        "Mixed_6e.branch7x7dbl_5.conv.weight",
        "Mixed_7b.branch3x3_2b.conv.weight",
        "Mixed_7c.branch3x3dbl_3a.conv.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert key in sd, key
    assert tuple(sd["fc.weight"].shape) == (1008, 2048)
    assert tuple(sd["Mixed_7c.branch3x3dbl_3a.conv.weight"].shape) == (384, 384, 1, 3)
    assert not any(k.startswith("AuxLogits") for k in sd)
    kinds = {n: type(getattr(net, n)).__name__ for n in ("Mixed_5b", "Mixed_6c", "Mixed_7b", "Mixed_7c")}
    assert kinds == {"Mixed_5b": "FIDInceptionA", "Mixed_6c": "FIDInceptionC", "Mixed_7b": "FIDInceptionE", "Mixed_7c": "FIDInceptionE"}
    assert (net.Mixed_7b.pool, net.Mixed_7c.pool) == ("avg", "max")
    # a state dict of this layout loads strictly, as pytorch-fid's file does
    FIDInceptionFeatures().net.load_state_dict(sd, strict=True)


def test_tf_average_pool_ignores_padding():
    from deepsnow.features.inception import _tf_avg_pool

    x = torch.ones(1, 1, 4, 4)
    assert torch.allclose(_tf_avg_pool(x), x)  # torchvision's pool would give 4/9 in the corners


def test_inception_random_features_shape_and_determinism(images):
    a = build_extractor("inception", {"weights": "random"}, seed=3)
    assert (a.weights, a.pretrained, a.dim) == ("random-seed3", False, 2048)
    fa = embed_images(images[:2], a, batch_size=1)
    assert fa.shape == (2, 2048) and fa.dtype == np.float32 and np.isfinite(fa).all()
    fb = embed_images(images[:2], build_extractor("inception", {"weights": "random"}, seed=3), batch_size=2)
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)


def test_resnet_random_determinism_and_seed(images):
    torch.manual_seed(123)  # global state must not matter
    a = embed_images(images, "resnet50", options={"weights": "random"}, seed=5)
    torch.manual_seed(999)
    b = embed_images(images, "resnet50", options={"weights": "random"}, seed=5)
    c = embed_images(images, "resnet50", options={"weights": "random"}, seed=6)
    assert a.shape == (3, 2048)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert not np.allclose(a, c)


def test_auto_falls_back_to_random_with_a_warning(offline, caplog):
    with caplog.at_level(logging.WARNING, logger="deepsnow.features"):
        ext = build_extractor("resnet50", {"weights": "auto"}, seed=2)
    assert (ext.weights, ext.pretrained) == ("random-seed2", False)
    assert any("FALLING BACK TO RANDOM" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    with pytest.raises(DeepsnowError, match="could not load the pretrained weights IMAGENET1K_V1"):
        build_extractor("resnet50", {"weights": "imagenet"})


def test_pretrained_loader_success_is_recorded(monkeypatch):
    from torchvision.models import resnet50

    calls = []

    def fake(name, tag, loader):
        calls.append((name, tag))
        return fid_inception_v3().state_dict() if name == "inception" else resnet50(weights=None).state_dict()

    monkeypatch.setattr(base, "load_pretrained", fake)
    r = build_extractor("resnet50", {"weights": "auto", "imagenet_weights": "IMAGENET1K_V2"})
    assert (r.weights, r.pretrained) == ("imagenet-IMAGENET1K_V2", True)
    i = build_extractor("inception", {"weights": "imagenet"})
    assert (i.weights, i.pretrained) == ("imagenet-pt_inception-2015-12-05-6726825d", True)
    assert calls == [("resnet50", "IMAGENET1K_V2"), ("inception", "pt_inception-2015-12-05-6726825d")]


def test_path_weights(tmp_path, images):
    from torchvision.models import resnet50

    from deepsnow.io import sha256_file

    torch.manual_seed(0)
    full = resnet50(weights=None)  # with its fc: the ImageNet checkpoint layout
    path = tmp_path / "resnet.pth"
    torch.save(full.state_dict(), path)
    ext = build_extractor("resnet50", {"weights": "path", "weights_path": str(path)})
    assert ext.weights == f"path:{sha256_file(path)[:16]}" and ext.pretrained
    got = embed_images(images, ext)
    full.fc = torch.nn.Identity()
    full.eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = full((x - mean) / std).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # wrong layout, missing file, garbage file: clear errors
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(DeepsnowError, match="do not fit"):
        build_extractor("resnet50", {"weights": "path", "weights_path": str(tmp_path / "bad.pth")})
    with pytest.raises(DeepsnowError, match="not found"):
        build_extractor("inception", {"weights": "path", "weights_path": str(tmp_path / "none.pth")})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DeepsnowError, match="not a loadable"):
        build_extractor("resnet50", {"weights": "path", "weights_path": str(tmp_path / "junk.pth")})


def test_inception_path_weights_load_strictly(tmp_path):
    sd = fid_inception_v3().state_dict()
    path = tmp_path / "pt_inception.pth"
    torch.save(sd, path)
    ext = build_extractor("inception", {"weights": "path", "weights_path": str(path)})
    assert ext.weights.startswith("path:") and ext.pretrained
    assert torch.equal(ext.module.net.fc.weight, sd["fc.weight"])


def test_registered_custom_extractor_is_used(images):
    class ChannelMeans(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    @register_extractor("tiny_test_means", replace=True)
    def build(options, seed):
        return Extractor("tiny_test_means", ChannelMeans(), dim=3, weights="none", pretrained=False)

    feats = embed_images(images, "tiny_test_means")
    np.testing.assert_allclose(feats, images.reshape(3, -1, 3).mean(1) / 255, rtol=1e-6)
    assert "tiny_test_means" in registry.available_extractors()
    with pytest.raises(DeepsnowError, match="already registered"):
        register_extractor("tiny_test_means")(lambda o, s: None)
    registry.EXTRACTORS.pop("tiny_test_means")


def test_builtin_names_have_their_builders_and_are_not_taken_over_silently():
    from deepsnow.features.builtin import BUILDERS

    assert sorted(BUILDERS) == sorted(registry.BUILTIN_EXTRACTORS)
    with pytest.raises(DeepsnowError, match="'resnet50' is already registered"):
        register_extractor("resnet50")(lambda o, s: None)
    assert "resnet50" not in registry.EXTRACTORS  # built in: built from BUILDERS, not registered


def test_unknown_extractor_and_bad_images(images):
    with pytest.raises(DeepsnowError, match="unknown feature extractor 'nope'.*inception.*resnet50"):
        build_extractor("nope")
    with pytest.raises(DeepsnowError, match="uint8"):
        embed_images(images.astype(np.float32), "resnet50", options={"weights": "random"})
    with pytest.raises(DeepsnowError, match=r"\(N, H, W, 3\)"):
        embed_images(images[..., :2], "resnet50", options={"weights": "random"})
