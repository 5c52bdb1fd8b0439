"""Subcommands of the cycleGAN stages: train, generate, translate."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepsnow.commands import Made, path_options, rgb_options, stage_command

log = logging.getLogger("deepsnow.gan")


def register(sub: argparse._SubParsersAction) -> None:
    for add in (_train_command, _generate_command, _translate_command):
        add(sub)


def _train_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "train", _train, section="gan")
    path_options(p, train_a="dataset/trainA.npz (domain A, snow-free)", train_b="dataset/trainB.npz (domain B, snowy)")
    path_options(
        p,
        checkpoint_dir="folder for the epoch_NNN.pt checkpoints",
        state_dir="folder for the resume state (not a workflow output; keep it between reruns)",
        losses="output CSV: per-epoch mean losses",
        iter_losses="output CSV: per-iteration losses",
    )
    path_options(
        p,
        required=False,
        test_a="dataset/testA.npz, translated at every saved epoch",
        test_b="dataset/testB.npz, translated at every saved epoch",
        samples_dir="folder for the per-epoch samples epoch_NNN.npz",
    )
    p.add_argument(
        "--samples-params",
        metavar="JSON|@FILE",
        help="the 'samples' config section (batch_size, max_samples) as JSON, or @file (default: schema defaults)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _generate_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "generate", _generate, section="samples")
    p.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu, cuda or cuda:N")
    path_options(
        p, nargs="+", checkpoints="checkpoints (epoch_NNN.pt)", outputs="output .npz files, one per checkpoint"
    )
    path_options(p, test_a="dataset/testA.npz", test_b="dataset/testB.npz")


def _translate_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "translate", _translate, section=None)
    path_options(
        p,
        checkpoint="deepsnow epoch_NNN.pt or reference *_net_G_?.pth",
        input="scene GeoTIFF or 3-band uint8 RGB GeoTIFF",
        output="output RGB GeoTIFF",
    )
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="AtoB: snow-free to snowy (default)")
    p.add_argument("--tile", type=int, default=256, help="tile side in pixels, a multiple of 4 (default 256)")
    p.add_argument("--overlap", type=int, default=64, help="overlap of neighbouring tiles in pixels (default 64)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    p.add_argument(
        "--norm", default="scene", choices=["scene", "tile"],
        help="instance-norm statistics: of the whole scene (default: seam-free, as one whole-scene pass) "
        "or of each tile (the generator's own behaviour on a tile)",
    )
    p.add_argument(
        "--stats-px", type=int, default=2**20,
        help="--norm scene: pixels measured for the statistics at most (default 1048576; larger scenes "
        "are sampled by an evenly spread grid of tiles)",
    )
    rgb_options(p, "scene input; ")


def _train(args, params) -> list[Made]:
    """Train the cycleGAN (resumable; per saved epoch a checkpoint and the test set's samples, loss CSVs).

    Train the unmodified cycleGAN of Zhu et al. (2017) on domains A (snow-free) and B (snowy). One call
    trains the whole run. At the end of every saved epoch (gan.save_every; the last always) the full
    training state is written atomically into --state-dir and hard-linked into --checkpoint-dir as
    epoch_NNN.pt, and with --samples-dir the held-out test sets are translated by that epoch's generators
    (samples/epoch_NNN.npz, as 'deepsnow generate' writes them). Only the checkpoints of every
    gan.keep_every-th epoch and of the last stay. Rerunning the same command after an interruption resumes
    from the newest complete checkpoint in --state-dir. Losses go to a per-epoch CSV (--losses) and a
    per-iteration CSV (--iter-losses)."""
    from deepsnow.config import parse_params
    from deepsnow.gan import train

    samples_params = parse_params(args.samples_params, "samples")
    summary = train.train(
        params,
        args.train_a,
        args.train_b,
        args.checkpoint_dir,
        args.state_dir,
        args.losses,
        args.iter_losses,
        test_a=args.test_a,
        test_b=args.test_b,
        samples_params=samples_params,
        samples_dir=args.samples_dir,
        progress=not args.no_progress,
    )
    keys = ("epochs", "iterations", "resumed_from", "device", "precision", "parameters", "final_losses")
    outs = [Path(c) for c in summary["checkpoints"]] + [args.losses, args.iter_losses]
    made = [Made(outs, inputs=[args.train_a, args.train_b], extra={k: summary[k] for k in keys})]
    for sample in summary["samples"]:
        epoch = int(Path(sample).stem.split("_")[1])
        extra = {
            "epoch": epoch,
            "samples": f"the test sets translated by G_A, G_B after epoch {epoch}, in the training job",
            "gan": params,
        }
        inputs = [args.train_a, args.train_b, args.test_a, args.test_b]
        made.append(Made([sample], inputs=inputs, config=samples_params, section="samples", extra=extra))
    return made


def _generate(args, params) -> list[Made]:
    """Translate the held-out test set with each checkpoint (per-epoch samples).

    For each checkpoint, translate testA (snow-free) to B with G_A and testB to A with G_B at the test patch
    size, and write an .npz with uint8 fake_B, ids_A, fake_A, ids_B and epoch. Several checkpoints may be
    given with as many outputs, in the same order."""
    from deepsnow import DeepsnowError
    from deepsnow.gan import generate

    if len(args.checkpoints) != len(args.outputs):
        raise DeepsnowError(f"--checkpoints has {len(args.checkpoints)} files but --outputs has {len(args.outputs)}")
    summary = generate.generate(params, args.checkpoints, args.outputs, args.test_a, args.test_b, device=args.device)
    extra = {"n_A": summary["n_A"], "n_B": summary["n_B"], "device": summary["device"]}
    return [
        Made([out], inputs=[ck, args.test_a, args.test_b], extra={"epoch": epoch, **extra})
        for ck, out, epoch in zip(args.checkpoints, args.outputs, summary["epochs"])
    ]


def _translate(args, params) -> Made:
    """Translate a whole georeferenced scene (tiled, seamless) to a RGB GeoTIFF.

    Translate a scene of any size by overlapping tiles blended with a smooth window; with --norm scene
    (the default) every instance-norm layer uses the whole scene's statistics, so the tiles agree with
    one pass over the whole scene. Input: a deepsnow scene
    GeoTIFF (its B04 B03 B02 found by name, rendered to RGB with --rgb-max/--rgb-gamma as the patches stage) or a 3-band uint8 RGB
    GeoTIFF. Output: a 3-band uint8 RGB GeoTIFF with the input's CRS and transform. The checkpoint may be a
    deepsnow checkpoint (G_A for AtoB, G_B for BtoA) or a reference pytorch-CycleGAN-and-pix2pix
    '<epoch>_net_G_A.pth' state dict."""
    from deepsnow.gan import translate

    options = {
        "direction": args.direction,
        "tile": args.tile,
        "overlap": args.overlap,
        "device": args.device,
        "batch_size": args.batch_size,
        "rgb_max": args.rgb_max,
        "rgb_gamma": args.rgb_gamma,
        "norm": args.norm,
        "stats_px": args.stats_px,
    }
    summary = translate.translate_scene(args.checkpoint, args.input, args.output, **options)
    return Made([args.output], inputs=[args.checkpoint, args.input], config=options, extra=summary)
