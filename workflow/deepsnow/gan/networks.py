"""The cycleGAN networks of Zhu et al. (2017), exactly as the reference implementation.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py`` with the
``cycle_gan`` defaults: ``resnet_9blocks`` generator, ``basic`` (70x70 PatchGAN)
discriminator, ``InstanceNorm2d(affine=False, track_running_stats=False)`` (so every
convolution has a bias), no dropout, ``normal(0, 0.02)`` initialisation.

The module layout (a ``Sequential`` called ``model``; residual blocks holding a
``Sequential`` called ``conv_block``) is the reference's, so state dicts written by
the reference (``<epoch>_net_G_A.pth``) load directly into :class:`ResnetGenerator`.
At the paper's sizes (ngf = ndf = 64, 9 blocks) the generator has 11,378,179 and
the discriminator 2,764,737 parameters.

``upsample="resize_conv"`` (not the reference) replaces each transposed convolution of the
generator by nearest x2 upsampling, reflection padding and a 3x3 convolution: the reference
FAQ's fix for checkerboard artifacts (Odena et al. 2016, "Deconvolution and Checkerboard
Artifacts"). The convolution has the transposed one's weights, transposed (out, in, 3, 3), and
its bias, so the parameter count is the same; ``transpose`` (the default) is the reference.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
from torch import nn

from deepsnow import DeepsnowError
from deepsnow.gan.sizes import discriminator_norm_sizes, min_discriminator_size  # noqa: F401 (re-exported)

#: Norm-layer buffers that old reference checkpoints may carry (PyTorch < 0.4); never used.
_STALE_NORM_KEYS = ("running_mean", "running_var", "num_batches_tracked")

#: The generator's x2 upsampling layers: the reference's transposed convolution, or resize-convolution.
UPSAMPLE_MODES = ("transpose", "resize_conv")

#: ``(netG, netD, upsample)`` of the antialiased networks of CUT (built by :mod:`deepsnow.gan.cut`).
ANTIALIASED = ("resnet_antialias", "basic_antialias", "antialias")


def norm_layer(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Reference ``ResnetBlock``: x + [pad, conv3, norm, relu, pad, conv3, norm](x), reflection padding."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            norm_layer(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            norm_layer(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResizeConv(nn.Sequential):
    """Nearest x2 upsampling, reflection padding 1, 3x3 convolution: a transposed convolution's
    stand-in without its uneven kernel overlap (the checkerboard's cause, Odena et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            OrderedDict(
                upsample=nn.Upsample(scale_factor=2, mode="nearest"),
                pad=nn.ReflectionPad2d(1),
                conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=0, bias=True),
            )
        )


def upsampling_layer(in_channels: int, out_channels: int, mode: str) -> nn.Module:
    """One x2 upsampling convolution of the generator (see :data:`UPSAMPLE_MODES`)."""
    if mode == "transpose":  # the reference's
        return nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True
        )
    if mode == "resize_conv":
        return ResizeConv(in_channels, out_channels)
    raise DeepsnowError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {mode!r}")


class ResnetGenerator(nn.Module):
    """Reference ``ResnetGenerator`` (c7s1-ngf, d2ngf, d4ngf, n x R4ngf, u2ngf, ungf, c7s1-3, tanh).

    Input and output are images in [-1, 1]; height and width should be multiples of 4.
    ``upsample`` chooses the two upsampling convolutions (:data:`UPSAMPLE_MODES`).
    """

    def __init__(
        self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9, upsample: str = "transpose"
    ):
        super().__init__()
        if n_blocks < 0:
            raise DeepsnowError(f"n_blocks must be >= 0, got {n_blocks}")
        self.input_nc, self.output_nc, self.ngf, self.n_blocks = input_nc, output_nc, ngf, n_blocks
        self.upsample = upsample
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_down = 2
        for i in range(n_down):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_down
        layers += [ResnetBlock(ngf * mult) for _ in range(n_blocks)]
        for i in range(n_down):
            mult = 2 ** (n_down - i)
            layers += [
                upsampling_layer(ngf * mult, int(ngf * mult / 2), upsample),
                norm_layer(int(ngf * mult / 2)),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """Reference ``NLayerDiscriminator`` (``basic`` = 3 layers: the 70x70 PatchGAN)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        self.input_nc, self.ndf, self.n_layers = input_nc, ndf, n_layers
        kw, padw = 4, 1
        seq: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            seq += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=True),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        seq += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=True),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


#: Reference ``init_type`` values: ``normal`` (cycleGAN: weights ~ N(0, gain)) and ``xavier``
#: (CUT: ``xavier_normal_`` with that gain).
INIT_TYPES = ("normal", "xavier")


def init_weights(net: nn.Module, gain: float = 0.02, init_type: str = "normal") -> nn.Module:
    """Reference ``init_weights``: conv and linear weights by ``init_type`` (:data:`INIT_TYPES`), biases 0."""
    if init_type not in INIT_TYPES:
        raise DeepsnowError(f"init_type must be one of {', '.join(INIT_TYPES)}, got {init_type!r}")

    def init_func(m: nn.Module) -> None:
        classname = m.__class__.__name__
        if (
            hasattr(m, "weight")
            and m.weight is not None
            and (classname.find("Conv") != -1 or classname.find("Linear") != -1)
        ):
            if init_type == "xavier":
                nn.init.xavier_normal_(m.weight.data, gain=gain)
            else:
                nn.init.normal_(m.weight.data, 0.0, gain)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif classname.find("BatchNorm2d") != -1:  # not used with instance norm; kept for parity
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)

    net.apply(init_func)
    return net


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the four networks; stored in every checkpoint."""

    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    n_layers_d: int = 3
    input_nc: int = 3
    output_nc: int = 3
    netG: str = "resnet"
    netD: str = "basic"
    norm: str = "instance"
    #: absent from checkpoints written before it existed: those are the reference's transpose
    upsample: str = "transpose"

    @classmethod
    def from_params(cls, params: dict) -> "Architecture":
        return cls(
            ngf=int(params["ngf"]),
            ndf=int(params["ndf"]),
            n_blocks=int(params["n_blocks"]),
            n_layers_d=int(params["n_layers_d"]),
            upsample=str(params.get("upsample", "transpose")),
        )

    @classmethod
    def from_dict(cls, d: dict, source: str = "checkpoint") -> "Architecture":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DeepsnowError(f"{source}: unknown architecture keys {unknown}")
        arch = cls(**d)
        plain = arch.netG == "resnet" and arch.netD == "basic" and arch.upsample in UPSAMPLE_MODES
        if arch.norm != "instance" or not (plain or arch.antialiased):
            raise DeepsnowError(f"{source}: unsupported architecture {asdict(arch)}")
        return arch

    @property
    def antialiased(self) -> bool:
        """The CUT networks (:mod:`deepsnow.gan.cut`): antialiased down- and up-sampling."""
        return (self.netG, self.netD, self.upsample) == ANTIALIASED

    def as_dict(self) -> dict:
        return asdict(self)


def build_generator(arch: Architecture, init: bool = True, gain: float = 0.02) -> ResnetGenerator:
    net = ResnetGenerator(arch.input_nc, arch.output_nc, arch.ngf, arch.n_blocks, arch.upsample)
    return init_weights(net, gain) if init else net


def build_discriminator(arch: Architecture, init: bool = True, gain: float = 0.02) -> NLayerDiscriminator:
    net = NLayerDiscriminator(arch.output_nc, arch.ndf, arch.n_layers_d)
    return init_weights(net, gain) if init else net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


_BLOCK_KEY = re.compile(r"^model\.(\d+)\.conv_block\.")


def clean_state_dict(state: dict) -> dict:
    """Strip a ``module.`` (DataParallel) prefix and drop stale instance-norm buffers, as the reference loader does."""
    out = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module.") :]
        if k.rsplit(".", 1)[-1] in _STALE_NORM_KEYS:
            continue
        out[k] = v
    return out


def infer_generator_arch(state: dict, source: str = "state dict") -> Architecture:
    """Architecture of a reference ResnetGenerator state dict: ngf from ``model.1.weight``, blocks counted."""
    if not isinstance(state, dict) or not state:
        raise DeepsnowError(
            f"{source}: expected a generator state dict (mapping of tensors), got {type(state).__name__}"
        )
    first = state.get("model.1.weight")
    if not isinstance(first, torch.Tensor) or first.dim() != 4 or tuple(first.shape[2:]) != (7, 7):
        sample = sorted(state)[:5]
        raise DeepsnowError(
            f"{source}: not a ResnetGenerator state dict (key 'model.1.weight' of shape (ngf, 3, 7, 7) is "
            f"missing or wrong; first keys: {sample})"
        )
    ngf, input_nc = int(first.shape[0]), int(first.shape[1])
    # CUT's antialiased generator: a blur buffer after the first down-sampling convolution, blocks from 12
    antialiased = "model.7.filt" in state
    first_block, tail = (12, 9) if antialiased else (10, 7)
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))}
    n_blocks = len(blocks)
    if blocks and blocks != set(range(first_block, first_block + n_blocks)):
        raise DeepsnowError(
            f"{source}: residual blocks at unexpected positions {sorted(blocks)} (expected model.{first_block} ...)"
        )
    last = state.get(f"model.{first_block + n_blocks + tail}.weight")
    if not isinstance(last, torch.Tensor) or last.dim() != 4:
        raise DeepsnowError(
            f"{source}: not a ResnetGenerator state dict: final convolution "
            f"'model.{first_block + n_blocks + tail}.weight' missing"
        )
    if antialiased:
        netG, netD, upsample = ANTIALIASED
        return Architecture(
            ngf=ngf, n_blocks=n_blocks, input_nc=input_nc, output_nc=int(last.shape[0]), netG=netG, netD=netD,
            upsample=upsample,
        )
    # a resize-convolution generator's first upsampling layer holds its convolution as '.conv'
    upsample = "resize_conv" if f"model.{10 + n_blocks}.conv.weight" in state else "transpose"
    return Architecture(
        ngf=ngf, n_blocks=n_blocks, input_nc=input_nc, output_nc=int(last.shape[0]), upsample=upsample
    )


def load_state_strict(net: nn.Module, state: dict, source: str, what: str) -> None:
    """``load_state_dict`` with a :class:`DeepsnowError` naming the file and the first offending keys."""
    if not isinstance(state, dict):
        raise DeepsnowError(f"{source}: '{what}' is not a state dict (got {type(state).__name__})")
    state = clean_state_dict(state)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} != expected {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shape mismatch: {wrong[:3]}")
        if missing:
            parts.append(f"missing keys: {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected[:5]}")
        raise DeepsnowError(
            f"{source}: '{what}' does not fit a {type(net).__name__} "
            f"(checkpoint from another architecture?): " + "; ".join(parts)
        )
    net.load_state_dict(state, strict=True)
