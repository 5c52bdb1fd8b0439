"""The CUT / FastCUT networks of Park, Efros, Zhang and Zhu (ECCV 2020), as the reference code's defaults.

Reference: taesungp/contrastive-unpaired-translation, ``models/networks.py`` with the ``cut``
defaults: ``resnet_9blocks`` generator and ``basic`` (70x70 PatchGAN) discriminator, both
*antialiased* (``no_antialias`` and ``no_antialias_up`` off), ``InstanceNorm2d(affine=False)``
(every convolution has a bias), no dropout, ``xavier_normal`` initialisation with gain 0.02.

Antialiasing (Zhang 2019, "Making convolutional networks shift-invariant again"):

- each stride-2 convolution becomes a stride-1 convolution followed (after its norm and
  activation) by :class:`Downsample`: reflection padding 1 and a stride-2 depthwise blur with the
  binomial [1, 2, 1] x [1, 2, 1] / 16 filter;
- each transposed convolution of the generator becomes :class:`Upsample` (replication padding 1,
  a stride-2 transposed depthwise blur with the [1, 3, 3, 1] x [1, 3, 3, 1] / 64 filter times 4)
  followed by a 3x3 stride-1 convolution.

Output sizes equal the plain networks' (floor(n / 2) down, 2n up), and the parameter counts too:
11,378,179 (generator) and 2,764,737 (discriminator) at the paper's sizes. The blur filters are
persistent buffers called ``filt``, as in the reference, so reference state dicts
(``<epoch>_net_G.pth``, ``<epoch>_net_D.pth``) load directly (docs/cut.md lists the keys).

The PatchNCE taps (:func:`deepsnow.gan.sizes.encoder_taps`) are indices into the generator's ``model`` Sequential;
:meth:`AntialiasedResnetGenerator.encode` returns those layers' outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepsnow import DeepsnowError
from deepsnow.gan.networks import ANTIALIASED, Architecture, ResnetBlock, init_weights, norm_layer
from deepsnow.gan.sizes import FIRST_BLOCK, encoder_taps  # noqa: F401 (re-exported)


def binomial_filter(size: int) -> torch.Tensor:
    """The ``size`` x ``size`` normalised binomial blur (rows of Pascal's triangle, outer product)."""
    if not 1 <= size <= 7:
        raise DeepsnowError(f"blur filter size must be 1..7, got {size}")
    row = torch.ones(1, dtype=torch.float64)
    for _ in range(size - 1):
        row = torch.cat([row, torch.zeros(1, dtype=torch.float64)]) + torch.cat(
            [torch.zeros(1, dtype=torch.float64), row]
        )
    filt = row[:, None] * row[None, :]
    return (filt / filt.sum()).float()


class Downsample(nn.Module):
    """Reflection padding 1, then a stride-2 depthwise blur with the 3x3 binomial filter."""

    def __init__(self, channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d((1, 1, 1, 1))
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """Replication padding 1, a stride-2 transposed depthwise blur (4x4 binomial x 4), trimmed to 2n x 2n."""

    def __init__(self, channels: int):
        super().__init__()
        self.pad = nn.ReplicationPad2d((1, 1, 1, 1))
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (n + 2 - 1) * 2 - 2 * 2 + 4 = 2n + 2 pixels; the reference drops the first and the last row/column
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])
        return out[:, :, 1:-1, 1:-1]


class AntialiasedResnetGenerator(nn.Module):
    """Reference CUT ``ResnetGenerator`` (c7s1-ngf, two antialiased downs, n x R4ngf, two antialiased ups,
    c7s1-3, tanh); input and output in [-1, 1], height and width multiples of 4."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        if n_blocks < 0:
            raise DeepsnowError(f"n_blocks must be >= 0, got {n_blocks}")
        self.input_nc, self.output_nc, self.ngf, self.n_blocks = input_nc, output_nc, ngf, n_blocks
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=1, padding=1, bias=True),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
                Downsample(ngf * mult * 2),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                Upsample(ngf * mult),
                nn.Conv2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=1, padding=1, bias=True),
                norm_layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @property
    def encoder_length(self) -> int:
        """Layers ``0 .. encoder_length - 1`` of ``model`` are the encoder (up to the last residual block)."""
        return FIRST_BLOCK + self.n_blocks

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of ``model[i]`` for each ``i`` in ``layers`` (ascending), running only as far as the last."""
        if list(layers) != sorted(set(layers)) or not layers or layers[-1] >= self.encoder_length:
            raise DeepsnowError(
                f"NCE layers must be ascending encoder layers 0..{self.encoder_length - 1}, got {list(layers)}"
            )
        feats, wanted = [], set(layers)
        for i, layer in enumerate(self.model[: layers[-1] + 1]):
            x = layer(x)
            if i in wanted:
                feats.append(x)
        return feats


class AntialiasedNLayerDiscriminator(nn.Module):
    """Reference CUT ``NLayerDiscriminator`` (``basic``, 3 layers: the 70x70 PatchGAN), each stride-2
    convolution replaced by a stride-1 one and :class:`Downsample` after its activation."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        self.input_nc, self.ndf, self.n_layers = input_nc, ndf, n_layers
        seq: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=1, padding=1),
            nn.LeakyReLU(0.2, True),
            Downsample(ndf),
        ]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_prev, nf_mult = nf_mult, min(2**n, 8)
            seq += [
                nn.Conv2d(ndf * nf_prev, ndf * nf_mult, kernel_size=4, stride=1, padding=1, bias=True),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
                Downsample(ndf * nf_mult),
            ]
        nf_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        seq += [
            nn.Conv2d(ndf * nf_prev, ndf * nf_mult, kernel_size=4, stride=1, padding=1, bias=True),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * nf_mult, 1, kernel_size=4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def architecture(params: dict) -> Architecture:
    """The antialiased networks' :class:`Architecture` from a validated gan section."""
    return Architecture(
        ngf=int(params["ngf"]),
        ndf=int(params["ndf"]),
        n_blocks=int(params["n_blocks"]),
        n_layers_d=int(params["n_layers_d"]),
        netG=ANTIALIASED[0],
        netD=ANTIALIASED[1],
        upsample=ANTIALIASED[2],
    )


def build_generator(arch: Architecture, init: bool = True, gain: float = 0.02) -> AntialiasedResnetGenerator:
    net = AntialiasedResnetGenerator(arch.input_nc, arch.output_nc, arch.ngf, arch.n_blocks)
    return init_weights(net, gain, init_type="xavier") if init else net


def build_discriminator(arch: Architecture, init: bool = True, gain: float = 0.02) -> AntialiasedNLayerDiscriminator:
    net = AntialiasedNLayerDiscriminator(arch.output_nc, arch.ndf, arch.n_layers_d)
    return init_weights(net, gain, init_type="xavier") if init else net
