"""Torch-free arithmetic on the networks' input sizes and layers (usable when a config is validated)."""

from __future__ import annotations

from collections.abc import Sequence

from deepsnow import DeepsnowError

#: The reference CUT's ``--nce_layers`` default: the padded input, the two down-sampling convolutions
#: and residual blocks 1 and 5 of the 9-block generator.
REFERENCE_NCE_LAYERS = (0, 4, 8, 12, 16)

#: Index of the first residual block in the antialiased generator's ``model``: pad, conv, norm, relu,
#: then twice (conv, norm, relu, Downsample).
FIRST_BLOCK = 12


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


def encoder_taps(n_blocks: int, nce_layers: Sequence[int] | None = None) -> list[int]:
    """The generator layers PatchNCE compares, for a generator of ``n_blocks`` residual blocks.

    ``nce_layers`` given (``gan.nce_layers``): used as they are, each must lie in the encoder
    (``0 .. 11 + n_blocks``). Not given: the reference's taps 0, 4, 8, 12, 16 (blocks 1 and 5 of the
    9-block generator) with each residual-block tap past the last block moved to the last block and
    repeats dropped: 6 blocks keep 12, 16 (as the reference's ``resnet_6blocks``), 3 blocks give
    12, 14, 1 block gives 12 alone. Without residual blocks the reference's taps do not exist.
    """
    last = FIRST_BLOCK + n_blocks - 1
    if nce_layers is not None:
        layers = sorted({int(i) for i in nce_layers})
        beyond = [i for i in layers if i > last or i < 0]
        if beyond or not layers:
            raise DeepsnowError(
                f"key 'gan.nce_layers': layers {beyond or layers} are not in the generator's encoder: with "
                f"gan.n_blocks = {n_blocks} its layers are 0..{last} (residual block k is layer {FIRST_BLOCK - 1} + k)"
            )
        return layers
    if n_blocks < 1:
        raise DeepsnowError(
            "key 'gan.n_blocks': 0 residual blocks leave none for the NCE layers 12 and 16 (residual blocks 1 "
            "and 5); use gan.n_blocks >= 1, or set gan.nce_layers within 0..11"
        )
    return sorted({i if i < FIRST_BLOCK else min(i, last) for i in REFERENCE_NCE_LAYERS})
