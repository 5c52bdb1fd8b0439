"""Subcommand ``deepsnow embed``: features of the real test sets, of epoch samples, or of any image array."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Iterator

from deepsnow import DeepsnowError, provenance
from deepsnow.commands import Made, path_options, rgb_options, stage_command

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
    rgb_options(p, "reflectance inputs are embedded as their RGB composite, except by a reflectance simcover; ")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (overrides features.threads)")
    p.add_argument(
        "--weights-path",
        type=Path,
        default=None,
        help="weights file of the (one) extractor run, in place of its features.<name>.weights_path "
        "(simcover: a simcover.pt from 'deepsnow train-simcover')",
    )
    _register_train_simcover(sub)


def _register_train_simcover(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "train-simcover", _train_simcover, section="simcover", stage="train_simcover")
    path_options(
        p,
        train_a="dataset/trainA.npz (with landcover: a simulator run)",
        train_b="dataset/trainB.npz (with landcover)",
        output="weights file to write (simcover.pt)",
        summary="JSON summary to write: held-out errors of the fractions, training-mean baseline, loss history",
    )
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads torch trains with (overrides simcover.threads; another count gives other weights)")


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
    params = _with_weights_path(params, names, args.weights_path)
    rgb = (args.rgb_max, args.rgb_gamma)
    for name in names:
        started = provenance.now()
        ext = embed.build_from_params(name, params)
        log.info("extractor %s: weights %s (pretrained: %s)", name, ext.weights, ext.pretrained)
        meta = {"extractor": name, "weights": ext.weights, "pretrained": ext.pretrained, "dim": ext.dim}
        if real:
            out = embed.expand_output(args.output, name, len(names))
            summary = embed.embed_real(args.real_a, args.real_b, out, ext, params, key=args.images_key, rgb=rgb)
            yield Made([out], inputs=[args.real_a, args.real_b], extra={**meta, **summary}, started=started)
        elif args.images is not None:
            out = embed.expand_output(args.output, name, len(names))
            summary = embed.embed_file(args.images, args.images_key, out, ext, params, rgb=rgb)
            yield Made([out], inputs=[args.images], extra={**meta, **summary}, started=started)
        else:
            outs = [embed.expand_output(o, name, len(names)) for o in args.outputs]
            for src, dst in zip(args.samples, outs):
                one_started = provenance.now()
                (summary,) = embed.embed_samples([src], [dst], ext, params, rgb=rgb)
                yield Made([dst], inputs=[src], extra={**meta, **summary}, started=one_started)


def _with_weights_path(params: dict, names: list[str], weights_path) -> dict:
    """``params`` with ``--weights-path`` as the weights file of the one extractor run."""
    if weights_path is None:
        return params
    if len(names) != 1:
        raise DeepsnowError(f"--weights-path goes with one extractor, got {len(names)} ({', '.join(names)})")
    from deepsnow.features import embed

    (name,) = names
    options = {**embed.extractor_options(params, name), "weights_path": str(weights_path)}
    if name != "simcover":
        options["weights"] = "path"
    if name in embed.BUILTIN_OPTION_SECTIONS:
        return {**params, name: options}
    return {**params, "extra": {**params["extra"], name: options}}


def _train_simcover(args, params) -> Iterator[Made]:
    """Train the simcover extractor on a simulator run's training patches (both domains).

    A torchvision resnet18 (seeded random initialisation) learns each patch's land-cover class
    fractions and snow fraction (the split's 'landcover' arrays); its 512-d penultimate layer is the
    'simcover' feature. A seeded share (simcover.holdout) of the training patches is held out: the
    summary JSON (and the log) give its mean absolute error of the class and snow fractions and its
    dominant-class accuracy, next to those of always predicting the training mean. simcover.n_seeds
    trainings (seeds simcover.seed, seed + 1, ...) give the spread of those numbers (summary 'seeds',
    'spread'); the weights file holds the model of simcover.seed. Test patches are never read. The
    weights file is read back with torch.load(weights_only=True). Reflectance training sets are learnt
    from all their bands (each as clip(r / unit reflectance, 0, 1)); the weights file records the bands
    and 'deepsnow embed' refuses images that lack one of them."""
    from deepsnow.features.simcover_train import train_simcover
    from deepsnow.io import write_json
    from deepsnow.torchfile import save

    if args.threads is not None:
        params = {**params, "threads": args.threads}
    payload, summary = train_simcover([args.train_a, args.train_b], params)
    save(payload, args.output)
    write_json(args.summary, summary)
    yield Made([args.output, args.summary], inputs=[args.train_a, args.train_b],
               extra={"n_train": summary["n_train"], "n_heldout": summary["n_heldout"], "n_seeds": summary["n_seeds"],
                      "threads": summary["threads"], **summary["heldout"]})
