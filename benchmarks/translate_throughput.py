#!/usr/bin/env python
"""Scene translation throughput (``deepsnow translate`` / the synthesize stage) on this machine.

For the demo generator (ngf 16, 3 residual blocks) and the paper's (ngf 64, 9 blocks), with
random weights (the cost does not depend on them), on a smooth scene-like image:

- the generator alone: Mpx/s of one batch of ``--tile`` px tiles (no overlap, no blending);
- ``translate_array`` with ``--overlap`` px overlap, per-tile norm and whole-scene norm
  (``--norm scene``: the statistics pass is timed on its own): Mpx/s of output pixels;
- the overlap overhead: pixels the generator computes per output pixel (tiles x tile^2 /
  scene px) and the measured time with overlap over the time without;
- the time of a full Sentinel-2 tile (10980 x 10980 px), **extrapolated** from the measured
  per-tile time (the tiles such a scene is cut into, times the time per tile) plus the
  statistics pass (its cost scales with ``--stats-px``, the pixels it measures at most).

Examples::

    python benchmarks/translate_throughput.py                    # demo and paper, CPU or CUDA
    python benchmarks/translate_throughput.py --sizes demo --scene 1024 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

SIZES = {"demo": dict(ngf=16, n_blocks=3), "paper": dict(ngf=64, n_blocks=9)}
SENTINEL2_TILE = 10980


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Mpx/s of whole-scene translation: generator alone, tiled with "
                                "overlap (per-tile and whole-scene norm), overlap overhead, a full 10980 px tile.")
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["demo", "paper"], help="generators to time")
    p.add_argument("--scene", type=int, default=None, help="scene side in px (default: demo 1024, paper 512)")
    p.add_argument("--tile", type=int, default=256, help="tile side (default 256, the command's default)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap (default 64)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    p.add_argument("--stats-px", type=int, default=2**20, help="--norm scene statistics budget (default 1048576)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return p.parse_args(argv)


def smooth_image(side: int):
    import numpy as np
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    img = np.stack([gaussian_filter(rng.normal(size=(side, side)), 6) for _ in range(3)], -1)
    img = img / img.std() + 0.15 * rng.normal(size=img.shape)
    return np.clip(128 + 40 * img, 0, 255).astype(np.uint8)


def stats_pixels(side: int, tile: int, max_px: int, halo: int = 32) -> int:
    """Pixels the --norm scene statistics pass reads on a side x side scene (cores with halos)."""
    from deepsnow.gan.scene_norm import stats_cores

    n = -(-side // 4) * 4
    return sum(
        (min(n, y + ch + halo) - max(0, y - halo)) * (min(n, x + cw + halo) - max(0, x - halo))
        for y, x, ch, cw in stats_cores(n, n, tile, halo, max_px)
    )


def timed(fn, device) -> tuple[float, object]:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def measure(size: str, args, device) -> dict:
    import torch

    from deepsnow.gan import networks
    from deepsnow.gan.scene_norm import scene_statistics
    from deepsnow.gan.translate import positions, translate_array

    torch.manual_seed(0)
    net = networks.build_generator(networks.Architecture(**SIZES[size])).to(device).eval()
    side = args.scene or (1024 if size == "demo" else 512)
    rgb, tile, ov = smooth_image(side), args.tile, args.overlap
    batch = torch.rand(args.batch_size, 3, tile, tile, device=device) * 2 - 1
    with torch.inference_mode():
        net(batch[:1])  # warm-up
        t_net, _ = timed(lambda: net(batch), device)

    def run(overlap, norm):
        return timed(lambda: translate_array(net, rgb, tile, overlap, device, args.batch_size, norm, args.stats_px), device)

    t_plain, (_, n_plain) = run(0, "tile")
    t_tile, (_, n_tiles) = run(ov, "tile")
    t_scene, _ = run(ov, "scene")
    t_stats, _ = timed(lambda: scene_statistics(net, rgb, core=tile, max_px=args.stats_px, device=device), device)
    mpx = side * side / 1e6
    per_tile = (t_scene - t_stats) / n_tiles
    n_s2 = len(positions(SENTINEL2_TILE, tile, ov)) ** 2
    # the statistics pass costs about one forward pass over the pixels it measures (cores and halos)
    stats_s2 = t_stats * stats_pixels(SENTINEL2_TILE, tile, args.stats_px) / stats_pixels(side, tile, args.stats_px)
    return {
        "generator": size, **SIZES[size], "device": str(device), "scene_px": side, "tile": tile, "overlap": ov,
        "generator_mpx_s": round(args.batch_size * tile * tile / 1e6 / t_net, 4),
        "tiled_no_overlap_mpx_s": round(mpx / t_plain, 4),
        "tiled_norm_tile_mpx_s": round(mpx / t_tile, 4),
        "tiled_norm_scene_mpx_s": round(mpx / t_scene, 4),
        "stats_pass_s": round(t_stats, 3),
        "overlap_px_per_output_px": round(n_tiles * tile * tile / (side * side), 3),
        "no_overlap_px_per_output_px": round(n_plain * tile * tile / (side * side), 3),
        "overlap_time_ratio": round(t_tile / t_plain, 3),
        "sentinel2_tiles": n_s2,
        "sentinel2_extrapolated_min": round((n_s2 * per_tile + stats_s2) / 60, 1),
    }


def main(argv=None) -> int:
    import torch

    from deepsnow.gan import runtime

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = runtime.resolve_device(args.device, key="--device")
    rows = []
    for size in args.sizes:
        row = measure(size, args, device)
        rows.append(row)
        print(
            f"{size:5s} ({row['ngf']} ngf, {row['n_blocks']} blocks) on {row['device']}, {row['scene_px']}^2 scene, "
            f"{row['tile']} px tiles: generator {row['generator_mpx_s']:.3f} Mpx/s; tiled, overlap {row['overlap']}: "
            f"{row['tiled_norm_tile_mpx_s']:.3f} Mpx/s (norm tile), {row['tiled_norm_scene_mpx_s']:.3f} Mpx/s "
            f"(norm scene, statistics pass {row['stats_pass_s']:.1f} s); no overlap {row['tiled_no_overlap_mpx_s']:.3f} "
            f"Mpx/s; overlap computes {row['overlap_px_per_output_px']:.2f} px per output px (no overlap "
            f"{row['no_overlap_px_per_output_px']:.2f}), time x{row['overlap_time_ratio']:.2f}; a 10980^2 Sentinel-2 "
            f"tile ({row['sentinel2_tiles']} tiles): ~{row['sentinel2_extrapolated_min']:.0f} min (extrapolated)",
            flush=True,
        )
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
