"""PatchNCE (Park et al. 2020): the patch sampler and projection head F, and the contrastive loss.

Reference: taesungp/contrastive-unpaired-translation, ``PatchSampleF`` (``--netF mlp_sample``) in
``models/networks.py`` and ``PatchNCELoss`` in ``models/patchnce.py``, with the CUT defaults:
256 patches per layer, a 256-wide head, temperature ``nce_T`` 0.07, negatives only from the same
image (``nce_includes_all_negatives_from_minibatch`` off).

For each tapped encoder layer, F picks the same random locations in every image of the batch,
maps each location's feature vector through that layer's head (Linear(C, 256), ReLU,
Linear(256, 256)) and L2-normalises it. The query (features of the translated image) reuses the
key's (features of the source) locations, so the positive of query patch i is key patch i.

The heads depend on the tapped layers' channel counts, so (as the reference) they are created
from the first batch's features (:meth:`PatchSampleF.create_mlp`); their optimiser must be made
afterwards. Locations come from F's own generator (the reference draws them from NumPy's global
one), saved with the training state so a resumed run draws the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepsnow import DeepsnowError
from deepsnow.gan.networks import init_weights

#: What the reference writes on the self-similarity diagonal of the negatives (before dividing by
#: the temperature): exp(-10 / 0.07) is nothing, so a patch is never its own negative.
DIAGONAL_FILL = -10.0


class PatchSampleF(nn.Module):
    """The reference ``PatchSampleF(use_mlp=True)``: heads ``mlp_0``, ``mlp_1``, ... made at the first call."""

    def __init__(self, nc: int = 256, gain: float = 0.02, seed: int = 0):
        super().__init__()
        self.nc = int(nc)
        self.gain = float(gain)
        self.mlp_init = False
        self.generator = torch.Generator().manual_seed(int(seed))

    def create_mlp(self, channels: Sequence[int]) -> None:
        """One head per tapped layer (``channels``: their channel counts), initialised as the reference
        (``init_net`` of the whole F: xavier, gain 0.02, biases 0)."""
        if self.mlp_init:
            raise DeepsnowError("PatchSampleF: the heads exist already")
        for i, c in enumerate(channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(int(c), self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)))
        init_weights(self, self.gain, init_type="xavier")
        self.mlp_init = True

    def heads_channels(self, state: dict) -> list[int]:
        """The channel counts a saved F state dict's heads were made for (to recreate them before loading)."""
        channels, i = [], 0
        while f"mlp_{i}.0.weight" in state:
            channels.append(int(state[f"mlp_{i}.0.weight"].shape[1]))
            i += 1
        return channels

    def sample_ids(self, feat: torch.Tensor, num_patches: int) -> torch.Tensor:
        """``min(num_patches, H x W)`` distinct random locations (flat indices) of one layer."""
        n = feat.shape[2] * feat.shape[3]
        return torch.randperm(n, generator=self.generator)[: min(int(num_patches), n)].to(feat.device)

    def forward(
        self, feats: Sequence[torch.Tensor], num_patches: int, patch_ids: Sequence[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer, the sampled, projected, L2-normalised features ``(B x P, nc)`` (image-major) and
        the locations used (``patch_ids`` given: those, else new ones)."""
        if not self.mlp_init:
            self.create_mlp([f.shape[1] for f in feats])
        out, ids = [], []
        for i, feat in enumerate(feats):
            pid = patch_ids[i] if patch_ids is not None else self.sample_ids(feat, num_patches)
            x = feat.permute(0, 2, 3, 1).flatten(1, 2)[:, pid, :].flatten(0, 1)  # (B x P, C)
            x = getattr(self, f"mlp_{i}")(x).float()
            out.append(l2_normalize(x))
            ids.append(pid)
        return out, ids

    def rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """The reference's ``Normalize(2)``, ``x / (||x|| + 1e-7)`` per row, with a finite gradient where a
    head outputs an all-zero vector (a dead ReLU layer and zero biases, as initialised): there the
    reference's square root has an infinite derivative and its gradient is NaN. Clamping the squared
    norm at 1e-30 changes no value (1e-15 is lost next to 1e-7 in float32)."""
    return x / (x.pow(2).sum(1, keepdim=True).clamp_min(1e-30).sqrt() + 1e-7)


def patchnce_loss(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int, tau: float = 0.07) -> torch.Tensor:
    """Reference ``PatchNCELoss``: per query patch, the cross-entropy of its positive (the key at the same
    location) against the other locations' keys of the same image, logits divided by ``tau``.

    ``feat_q``, ``feat_k``: ``(batch_size x P, C)`` as :class:`PatchSampleF` returns them; keys are
    detached. Returns the ``batch_size x P`` losses (the caller averages).
    """
    n, dim = feat_q.shape
    if feat_k.shape != feat_q.shape or n % batch_size:
        raise DeepsnowError(
            f"PatchNCE: query {tuple(feat_q.shape)} and key {tuple(feat_k.shape)} do not match a batch of {batch_size}"
        )
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(n, 1, dim), feat_k.view(n, dim, 1)).view(n, 1)
    q = feat_q.view(batch_size, -1, dim)
    k = feat_k.view(batch_size, -1, dim)
    p = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))  # (B, P, P): query i against every key of its image
    diagonal = torch.eye(p, device=q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(diagonal, DIAGONAL_FILL).view(-1, p)
    logits = torch.cat((l_pos, l_neg), dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=q.device), reduction="none")
