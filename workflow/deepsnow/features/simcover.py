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

Trained on a reflectance run's training sets (docs/bands.md) it takes all their bands: the first
convolution has ``len(bands)`` input channels (3 channels: torchvision's own), and each band enters as
``clip(r / s_b, 0, 1)``, the cycleGAN's fixed mapping (``deepsnow.data.bands.UNIT_REFLECTANCE``) on
[0, 1]. Its weights file adds ``bands``: ``{"bands": [...], "encoding": "reflectance",
"unit_reflectance": [...]}`` (as a cycleGAN checkpoint records them); a file without it is an RGB
simcover (8-bit RGB / 255), exactly as before, and its bytes are those of the code before bands.
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
    """Float (N, C, H, W) in [0, 1] -> 512-d features (``forward``) or target predictions (``predict``).
    ``bands`` None: 8-bit RGB (C = 3); else the reflectance bands' record (``bands``, ``encoding``,
    ``unit_reflectance``), C = ``len(bands["bands"])``."""

    dim = DIM

    def __init__(self, n_targets: int, size: int, bands: dict | None = None) -> None:
        super().__init__()
        if n_targets < 2:
            raise DeepsnowError(f"simcover needs at least one class and the snow fraction, got {n_targets} targets")
        self.bands = None if bands is None else {k: list(v) if k != "encoding" else v for k, v in bands.items()}
        channels = 3 if bands is None else len(bands["bands"])
        self.net = resnet18(weights=None)
        if channels != 3:  # torchvision's first convolution, for the run's bands (the rest of the init as RGB's)
            self.net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.net.fc = nn.Identity()
        self.head = nn.Linear(DIM, n_targets)
        self.size = int(size)
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, channels, 1, 1), 0.25))

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

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


def new_network(n_targets: int, size: int, seed: int, bands: dict | None = None) -> SimcoverNet:
    """A seeded random initialisation (torchvision's own init, from a private RNG state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SimcoverNet(n_targets, size, bands)


def weights_payload(net: SimcoverNet, targets: list[str]) -> dict:
    """The weights file's dict; ``bands`` only for a reflectance simcover (an RGB one's is as before bands)."""
    payload = {
        "arch": ARCH,
        "targets": list(map(str, targets)),
        "size": int(net.size),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }
    if net.bands is not None:
        payload["bands"] = dict(net.bands)
    return payload


def reflectance_bands(bands: list[str]) -> dict:
    """The bands record of a reflectance simcover: the bands and their fixed unit reflectance."""
    from deepsnow.data.bands import unit_scales

    return {"bands": list(bands), "encoding": "reflectance", "unit_reflectance": unit_scales(bands)}


def stored_bands(obj: dict, path) -> dict | None:
    """A weights file's ``bands`` record, checked (None: an RGB simcover); errors name the file."""
    from deepsnow.data.bands import check_bands

    rec = obj.get("bands")
    if rec is None:
        return None
    ok = isinstance(rec, dict) and rec.get("encoding") == "reflectance" and isinstance(rec.get("bands"), (list, tuple))
    if ok:
        bands, units = [str(b) for b in rec["bands"]], [float(u) for u in rec.get("unit_reflectance") or []]
        problems = check_bands(bands, "reflectance", key=f"{path}: bands")
        if problems:
            raise DeepsnowError("; ".join(problems))
        ok = len(units) == len(bands) and all(u > 0 for u in units)
    if not ok:
        raise DeepsnowError(
            f"{path}: key 'bands' is {rec!r}; expected {{'bands': [names], 'encoding': 'reflectance', "
            "'unit_reflectance': [one scale > 0 per band]} as 'deepsnow train-simcover' writes"
        )
    return {"bands": bands, "encoding": "reflectance", "unit_reflectance": units}


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
    net = SimcoverNet(len(targets), int(obj.get("size") or 0) or 64, stored_bands(obj, path))
    try:
        net.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        msg = " ".join(str(exc).splitlines()[:3])[:500]
        raise DeepsnowError(
            f"{path}: simcover weights do not fit a {ARCH} with {len(targets)} targets ({msg})"
        ) from exc
    return net.eval(), obj


def preprocessing(net: SimcoverNet) -> str:
    text = (
        f"bilinear resize to {net.size} (align_corners=False, antialias=True), "
        "per-channel mean/std of its training patches"
    )
    if net.bands is None:
        return text
    return f"reflectance bands {net.bands['bands']} as clip(r / unit_reflectance, 0, 1), " + text


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
        bands=net.bands,
    )
