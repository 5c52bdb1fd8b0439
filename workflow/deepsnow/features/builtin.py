"""The built-in extractors: ``inception`` (FID), ``resnet50`` (FRD, CRD, RF test, PCA) and ``simcover``.

``resnet50``: torchvision ResNet-50, ``fc`` replaced by the identity, so the
feature is the 2048-d global average pool. ImageNet weights ``IMAGENET1K_V1``
(``resnet50-0676ba61.pth``, the 2020-era ``pretrained=True``; the paper's
time) by default, ``IMAGENET1K_V2`` selectable: they give different features.
Preprocessing: float RGB in [0, 1] resized to ``size`` x ``size`` (224) with
bilinear interpolation, ``align_corners=False``, ``antialias=True``, then
ImageNet mean/std normalisation. The whole patch is resized (no
Resize(256)+CenterCrop(224) as in the ImageNet evaluation transform), because
cropping would discard the patch border, which matters for 64 px patches.
Sentinel-2 patches are smaller than 224 px, so this is an upsampling, where
antialias changes nothing; it only matters for patches larger than ``size``.

``inception``: see :mod:`deepsnow.features.inception`; ``simcover``: :mod:`deepsnow.features.simcover`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from deepsnow import DeepsnowError
from deepsnow.features.base import Extractor, apply_weights
from deepsnow.features.simcover import build_simcover

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_SHA256_PREFIX = {"IMAGENET1K_V1": "0676ba61", "IMAGENET1K_V2": "11ad3fa6"}


def _init_convnet(module, gen, *, conv_mode: str) -> None:
    """Seeded re-initialisation of every parameter (He normal convs, unit batch norms, small linear)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu", generator=gen)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1.0)
            m.bias.zero_()
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
        elif isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.01)
            if m.bias is not None:
                m.bias.zero_()


def _extractor(
    module: nn.Module,
    *,
    name: str,
    options: dict,
    seed: int,
    pretrained_tag: str,
    pretrained_loader,
    conv_mode: str,
    load,
    known_sha256: dict[str, str],
    preprocessing: str,
) -> Extractor:
    """``module`` with the weights ``options`` ask for (pretrained, a file, or seeded random), as extractor ``name``."""
    weights, pretrained = apply_weights(
        module,
        name=name,
        options=options,
        seed=seed,
        pretrained_tag=pretrained_tag,
        pretrained_loader=pretrained_loader,
        random_init=lambda m, g: _init_convnet(m, g, conv_mode=conv_mode),
        load=load,
        known_sha256=known_sha256,
    )
    return Extractor(
        name=name, module=module, dim=module.dim, weights=weights, pretrained=pretrained, preprocessing=preprocessing
    )


class ResNet50Features(nn.Module):
    """Float RGB batch in [0, 1] (N, 3, H, W) -> ResNet-50 global-average-pool features (N, 2048)."""

    dim = 2048

    def __init__(self, size: int = 224, antialias: bool = True) -> None:
        super().__init__()
        self.net = resnet50(weights=None)
        self.net.fc = nn.Identity()
        self.size = int(size)
        self.antialias = bool(antialias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=self.antialias
            )
        return self.net((x - self.mean) / self.std)


def _load_resnet(module, state: dict) -> None:
    # ImageNet checkpoints carry the classifier; the feature network has none.
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    module.net.load_state_dict(state, strict=True)


def build_resnet50(options: dict, seed: int) -> Extractor:
    from torchvision.models import ResNet50_Weights

    tag = options.get("imagenet_weights", "IMAGENET1K_V1")
    if tag not in RESNET_SHA256_PREFIX:
        raise DeepsnowError(f"features.resnet50.imagenet_weights: expected one of {sorted(RESNET_SHA256_PREFIX)}, got {tag!r}")
    size = int(options.get("size", 224))
    antialias = bool(options.get("antialias", True))
    return _extractor(
        ResNet50Features(size, antialias),
        name="resnet50",
        options=options,
        seed=seed,
        pretrained_tag=tag,
        pretrained_loader=lambda: ResNet50_Weights[tag].get_state_dict(progress=False, check_hash=True),
        conv_mode="fan_out",
        load=_load_resnet,
        known_sha256={f"torchvision ResNet-50 {k}": v for k, v in RESNET_SHA256_PREFIX.items()},
        preprocessing=f"bilinear resize to {size} (align_corners=False, antialias={antialias}), ImageNet mean/std",
    )


def _load_inception(module, state: dict) -> None:
    module.net.load_state_dict(state, strict=True)


def build_inception(options: dict, seed: int) -> Extractor:
    from deepsnow.features.inception import (
        FID_INPUT_SIZE,
        FID_WEIGHTS_SHA256_PREFIX,
        FID_WEIGHTS_URL,
        FIDInceptionFeatures,
    )

    return _extractor(
        FIDInceptionFeatures(),
        name="inception",
        options=options,
        seed=seed,
        pretrained_tag=f"pt_inception-2015-12-05-{FID_WEIGHTS_SHA256_PREFIX}",
        pretrained_loader=lambda: torch.hub.load_state_dict_from_url(
            FID_WEIGHTS_URL, progress=False, check_hash=True, map_location="cpu"
        ),
        conv_mode="fan_in",
        load=_load_inception,
        known_sha256={"pytorch-fid FID Inception": FID_WEIGHTS_SHA256_PREFIX},
        preprocessing=f"bilinear resize to {FID_INPUT_SIZE} (align_corners=False, no antialias), 2x-1 (pytorch-fid)",
    )


#: name -> builder of the extractors of ``deepsnow.features.registry.BUILTIN_EXTRACTORS``
BUILDERS = {
    "inception": build_inception,
    "resnet50": build_resnet50,
    # trained by 'deepsnow train-simcover' on the simulator's land-cover labels
    "simcover": build_simcover,
}
