"""Subcommand ``deepsnow embed``: features of the real test sets, of epoch samples, or of any image array."""

from __future__ import annotations

import argparse
import logging
from typing import Iterator

from deepsnow import DeepsnowError, provenance
from deepsnow.commands import Made, path_options, stage_command

log = logging.getLogger("deepsnow.features")


def register(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "embed", _embed, section="features")
    p.add_argument(
        "--extractor",
        nargs="+",
        default=None,
        metavar="NAME",
        help="extractor(s) to run (default: features.extractors); built in: inception, resnet50; "
        "installed packages add more through the Python entry-point group 'deepsnow.extractors'",
    )
    path_options(
        p,
        required=False,
        real_a="real domain-A test set (.npz with rgb, ids)",
        real_b="real domain-B test set (.npz with rgb, ids)",
        images="any .npz holding an (N, H, W, 3) uint8 array",
    )
    path_options(
        p, required=False, nargs="+", samples="per-epoch samples (.npz with fake_B, fake_A, ids_A, ids_B, epoch)"
    )
    p.add_argument("--outputs", nargs="+", help="one output per --samples file, in the same order")
    p.add_argument("--images-key", default="rgb", help="array holding the images in --images / --real-a / --real-b (default rgb)")
    p.add_argument("--output", help="output .npz for --real-a/--real-b or --images")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (overrides features.threads)")


def _check_mode(args) -> bool:
    """Exactly one input mode with the outputs it needs; True for the real test sets."""
    real = args.real_a is not None or args.real_b is not None
    modes = [name for name, on in (("--real-a/--real-b", real), ("--samples", bool(args.samples)), ("--images", args.images is not None)) if on]
    if len(modes) != 1:
        raise DeepsnowError("give exactly one of --real-a/--real-b, --samples or --images" + (f" (got {', '.join(modes)})" if modes else ""))
    if real and (args.real_a is None or args.real_b is None):
        raise DeepsnowError("--real-a and --real-b go together")
    if (real or args.images is not None) and not args.output:
        raise DeepsnowError("--output is required with " + modes[0])
    if args.samples and not args.outputs:
        raise DeepsnowError("--outputs (one per --samples file) is required with --samples")
    if args.samples and len(args.samples) != len(args.outputs):
        raise DeepsnowError(f"--samples has {len(args.samples)} files but --outputs has {len(args.outputs)}")
    return real


def _embed(args, params) -> Iterator[Made]:
    """Embed images with the FID Inception-v3 / ImageNet ResNet-50 (2048-d features).

    Three modes. (1) Real test sets, once per extractor: --real-a dataset/testA.npz --real-b
    dataset/testB.npz --output features/real_{extractor}.npz (arrays A, B, ids_A, ids_B). (2) Samples of one
    or more epochs: --samples samples/epoch_001.npz ... --outputs features/epoch_001_{extractor}.npz ...
    (arrays fake_B, fake_A, ids_A, ids_B, epoch). (3) Any image array: --images X.npz --images-key rgb
    --output OUT.npz (arrays features, ids). Every file also stores extractor, weights (imagenet-<tag> |
    path:<sha256 prefix> | random-seed<k>), pretrained, dim and preprocessing. '{extractor}' in an output
    path is replaced by the extractor name, so one call can run several extractors."""
    # One output per extractor (and samples file), each recorded as soon as it is written.
    real = _check_mode(args)
    names = list(dict.fromkeys(args.extractor or params["extractors"]))

    import torch

    from deepsnow.features import embed

    threads = args.threads if args.threads is not None else params["threads"]
    if threads:
        torch.set_num_threads(int(threads))
    for name in names:
        started = provenance.now()
        ext = embed.build_from_params(name, params)
        log.info("extractor %s: weights %s (pretrained: %s)", name, ext.weights, ext.pretrained)
        meta = {"extractor": name, "weights": ext.weights, "pretrained": ext.pretrained, "dim": ext.dim}
        if real:
            out = embed.expand_output(args.output, name, len(names))
            summary = embed.embed_real(args.real_a, args.real_b, out, ext, params, key=args.images_key)
            yield Made([out], inputs=[args.real_a, args.real_b], extra={**meta, **summary}, started=started)
        elif args.images is not None:
            out = embed.expand_output(args.output, name, len(names))
            summary = embed.embed_file(args.images, args.images_key, out, ext, params)
            yield Made([out], inputs=[args.images], extra={**meta, **summary}, started=started)
        else:
            outs = [embed.expand_output(o, name, len(names)) for o in args.outputs]
            for src, dst in zip(args.samples, outs):
                one_started = provenance.now()
                (summary,) = embed.embed_samples([src], [dst], ext, params)
                yield Made([dst], inputs=[src], extra={**meta, **summary}, started=one_started)
