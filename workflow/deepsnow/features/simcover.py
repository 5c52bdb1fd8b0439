"""``simcover``: a small ResNet trained on the simulator's land-cover labels; its 512-d penultimate layer is the feature.

The network is torchvision's ``resnet18`` (random initialisation, seeded) whose
classifier is replaced by a linear head predicting, for each patch, the share
of its pixels in each land-cover class and its mean snow fraction (the
``landcover`` array of the split's training sets, see docs/formats.md). The
class part is a softmax trained with soft cross-entropy against the class
fractions, the snow part a sigmoid trained with binary cross-entropy against
the snow fraction. Trained on the *training* patches of both domains only
(a seeded share of them is held out to measure how well it learnt); the test
patches, on which the metrics are computed, are never seen.

Weights file (``results/<run>/features/simcover.pt``): a ``torch.save`` of a
dict of plain values and tensors (read with ``torch.load(weights_only=True)``):
``arch`` (``"resnet18"``), ``targets`` (the column names), ``size`` (input
size in pixels), ``state_dict`` (the network, head and the per-channel
mean/std of the training patches included). As an extractor it is recorded
as ``simcover:<sha256 prefix of the file>``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from deepsnow import DeepsnowError
from deepsnow.features.base import Extractor

ARCH = "resnet18"
DIM = 512
#: the last target is the snow fraction; the others are class fractions summing to 1
SNOW_TARGET = "snow"


class SimcoverNet(nn.Module):
    """Float RGB (N, 3, H, W) in [0, 1] -> 512-d features (``forward``) or target predictions (``predict``)."""

    dim = DIM

    def __init__(self, n_targets: int, size: int) -> None:
        super().__init__()
        if n_targets < 2:
            raise DeepsnowError(f"simcover needs at least one class and the snow fraction, got {n_targets} targets")
        self.net = resnet18(weights=None)
        self.net.fc = nn.Identity()
        self.head = nn.Linear(DIM, n_targets)
        self.size = int(size)
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))

    @property
    def n_targets(self) -> int:
        return self.head.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return self.net((x - self.mean) / self.std)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class fractions (softmax) then snow fraction (sigmoid), (N, n_targets)."""
        logits = self.head(self(x))
        return torch.cat([logits[:, :-1].softmax(1), logits[:, -1:].sigmoid()], dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Soft cross-entropy on the class fractions + binary cross-entropy on the snow fraction."""
        logits = self.head(self(x))
        ce = -(y[:, :-1] * logits[:, :-1].log_softmax(1)).sum(1).mean()
        bce = F.binary_cross_entropy_with_logits(logits[:, -1], y[:, -1])
        return ce + bce


def new_network(n_targets: int, size: int, seed: int) -> SimcoverNet:
    """A seeded random initialisation (torchvision's own init, from a private RNG state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SimcoverNet(n_targets, size)


def weights_payload(net: SimcoverNet, targets: list[str]) -> dict:
    return {
        "arch": ARCH,
        "targets": list(map(str, targets)),
        "size": int(net.size),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }


def load_network(path, expected_targets: list[str] | None = None) -> tuple[SimcoverNet, dict]:
    """The network stored in a ``simcover.pt``; a file of another architecture or class count is refused."""
    from deepsnow.torchfile import load_raw

    obj = load_raw(path)
    if not isinstance(obj, dict) or obj.get("arch") != ARCH or not isinstance(obj.get("state_dict"), dict):
        found = obj.get("arch") if isinstance(obj, dict) else type(obj).__name__
        raise DeepsnowError(
            f"{path}: not a simcover weights file (expected a dict with arch {ARCH!r}, targets, size and state_dict "
            f"as 'deepsnow train-simcover' writes; found arch {found!r})"
        )
    targets = [str(t) for t in obj.get("targets") or []]
    if expected_targets is not None and targets != list(expected_targets):
        raise DeepsnowError(
            f"{path}: simcover weights for {len(targets)} targets {targets}, expected {len(expected_targets)} "
            f"{list(expected_targets)}"
        )
    if not targets or targets[-1] != SNOW_TARGET:
        raise DeepsnowError(f"{path}: simcover targets {targets} must end with {SNOW_TARGET!r}")
    net = SimcoverNet(len(targets), int(obj.get("size") or 0) or 64)
    try:
        net.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        msg = " ".join(str(exc).splitlines()[:3])[:500]
        raise DeepsnowError(
            f"{path}: simcover weights do not fit a {ARCH} with {len(targets)} targets ({msg})"
        ) from exc
    return net.eval(), obj


def preprocessing(net: SimcoverNet) -> str:
    return (
        f"bilinear resize to {net.size} (align_corners=False, antialias=True), "
        "per-channel mean/std of its training patches"
    )


def build_simcover(options: dict, seed: int):
    """The ``simcover`` extractor from a trained weights file (``options['weights_path']``)."""
    from deepsnow.io import sha256_file

    path = options.get("weights_path") or ""
    if not path:
        raise DeepsnowError(
            "feature extractor 'simcover' needs trained weights: features.simcover.weights_path (or "
            "'deepsnow embed --weights-path'); 'deepsnow train-simcover' trains them on a simulator run's "
            "training patches"
        )
    net, _ = load_network(path)
    return Extractor(
        name="simcover",
        module=net,
        dim=DIM,
        weights=f"simcover:{sha256_file(path)[:16]}",
        pretrained=True,
        preprocessing=preprocessing(net),
    )
