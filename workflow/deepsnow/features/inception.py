"""The FID Inception-v3: the TensorFlow ``inception-2015-12-05`` graph as pytorch-fid ports it.

FID values are only comparable with the literature when they come from this
network, not torchvision's ImageNet Inception-v3. The port differs from
torchvision's ``Inception3`` in three places, all in the pooling branches:

* ``Mixed_5b/5c/5d`` (A blocks), ``Mixed_6b..6e`` (C blocks) and ``Mixed_7b``
  (first E block) average-pool *without* counting the zero padding
  (``count_include_pad=False``, TensorFlow's semantics);
* ``Mixed_7c`` (second E block) max-pools in its pool branch (a quirk of the
  TensorFlow graph);
* the classifier has 1008 outputs (the TF graph's label set).

The module and parameter names are torchvision's, which are also those of
pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, so that state dict
loads directly into :func:`fid_inception_v3` (strict).

Preprocessing is pytorch-fid's: float RGB in [0, 1], resized to 299 x 299 with
``F.interpolate(mode="bilinear", align_corners=False)`` (no antialias), then
mapped to [-1, 1] by ``2x - 1``. The feature is the 2048-d global average pool
("pool3") before the classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv_inception

#: pytorch-fid's port of the TF FID Inception weights (sha256 prefix 6726825d).
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FID_INPUT_SIZE = 299


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3, stride 1 average pool that ignores the zero padding (TensorFlow 'SAME' average)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv_inception.InceptionA):
    """35x35 block (Mixed_5b/5c/5d) with TF average pooling."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return [b1, b5, b3, bp]


class FIDInceptionC(tv_inception.InceptionC):
    """17x17 block (Mixed_6b..6e) with TF average pooling."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.branch1x1(x)
        b7 = x
        for layer in (self.branch7x7_1, self.branch7x7_2, self.branch7x7_3):
            b7 = layer(b7)
        b7d = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            b7d = layer(b7d)
        bp = self.branch_pool(_tf_avg_pool(x))
        return [b1, b7, b7d, bp]


class FIDInceptionE(tv_inception.InceptionE):
    """8x8 block. ``pool="avg"``: Mixed_7b (TF average pool); ``pool="max"``: Mixed_7c (max pool)."""

    def __init__(self, in_channels: int, pool: str = "avg") -> None:
        super().__init__(in_channels)
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _tf_avg_pool(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return [b1, b3, bd, bp]


def fid_inception_v3() -> tv_inception.Inception3:
    """The FID Inception-v3 with uninitialised-by-design (torch default) weights.

    Its ``state_dict()`` keys and shapes are those of pytorch-fid's weight file,
    e.g. ``Mixed_7c.branch3x3dbl_3a.conv.weight`` and ``fc.weight`` (1008 x 2048).
    """
    net = tv_inception.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, pool="avg")
    net.Mixed_7c = FIDInceptionE(2048, pool="max")
    return net


class FIDInceptionFeatures(nn.Module):
    """Float RGB batch in [0, 1] (N, 3, H, W), any size -> pool3 features (N, 2048)."""

    dim = 2048

    def __init__(self) -> None:
        super().__init__()
        self.net = fid_inception_v3()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        n = self.net
        for layer in (
            n.Conv2d_1a_3x3,
            n.Conv2d_2a_3x3,
            n.Conv2d_2b_3x3,
            n.maxpool1,
            n.Conv2d_3b_1x1,
            n.Conv2d_4a_3x3,
            n.maxpool2,
            n.Mixed_5b,
            n.Mixed_5c,
            n.Mixed_5d,
            n.Mixed_6a,
            n.Mixed_6b,
            n.Mixed_6c,
            n.Mixed_6d,
            n.Mixed_6e,
            n.Mixed_7a,
            n.Mixed_7b,
            n.Mixed_7c,
        ):
            x = layer(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
