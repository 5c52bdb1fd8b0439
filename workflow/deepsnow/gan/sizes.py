"""Torch-free arithmetic on the networks' input sizes (usable when a config is validated)."""

from __future__ import annotations


def discriminator_norm_sizes(size: int, n_layers: int) -> list[int]:
    """Side lengths the PatchGAN's normalised layers see for a ``size`` x ``size`` input."""
    sizes, n = [], (size - 2) // 2 + 1  # first conv (no norm)
    for _ in range(1, n_layers):
        n = (n - 2) // 2 + 1
        sizes.append(n)
    sizes.append(n - 1)  # stride-1 conv
    return sizes


def min_discriminator_size(n_layers: int) -> int:
    """Smallest input side (multiple of 4) the PatchGAN can train on (instance norm needs > 1 pixel)."""
    size = 4
    while min(discriminator_norm_sizes(size, n_layers)) < 2:
        size += 4
    return size
