"""Peak memory and wall time of the data stages on a full Sentinel-2 tile (10,980 x 10,980 px) and a 2048² scene.

1. Simulates one small area (``deepsnow simulate``, ``--base`` px) and mirror-tiles its snow-free scene
   and its true snow scene into scenes of each ``--sizes`` side, in the project's scene format
   (``scenes/<aoi>/snowfree.tif`` and ``truth/<aoi>/snow.tif`` under ``--work``), strip by strip.
2. Writes a tiny cycleGAN checkpoint (``--ngf``, ``--n-blocks``) for ``deepsnow translate`` and
   ``deepsnow synthesize scene``.
3. Runs the download writer (the scene's pixels rewritten through ``write_dn_strips`` in strips of
   2500 rows, as a Sentinel Hub mosaic arrives), a STAC download's read and write of one item (the
   scene's bands as single-band 10 m / 20 m GeoTIFFs read onto the grid in row windows, without the
   search; files instead of HTTP), ``deepsnow mask``, ``deepsnow patches`` (with the truth scene, as simulator runs do) and
   ``deepsnow translate``, ``deepsnow synthesize scene`` (the synthesize stage's defaults, on the CPU) and
   ``deepsnow change area`` (default ``change`` config: 4 M pixels used
   of the tile's valid ones, the four built-in detectors; with the scene's snow season as the real
   after-image, the true snow scene as truth, and that truth rendered to an RGB product with
   ``dataMask`` as its internal mask standing in for the synthesize stage's product, which is
   not measured here) on each scene as child processes, and prints each one's peak RSS
   (``os.wait4``: the child's own ``ru_maxrss``) and wall time, the sizes side by side, so that memory
   growth with area shows (it should be flat). A child whose RSS passes ``--max-rss-gb`` is killed
   (reported as such) so that the benchmark cannot exhaust a shared machine. A peak above
   ``--budget-gb`` (the project's 2 GB per stage on a full tile) is flagged in the table.

``--bands`` (``patches.bands`` / ``patches.encoding``, docs/bands.md): ``rgb`` (default) is an RGB run:
downloads fetch the mask's and the RGB bands (B04 B03 B02 B08 B11, 7-band scenes), patches are 8-bit
RGB, the checkpoint maps 3 -> 3. ``all`` is a ten-band reflectance run: downloads write all ten
reflectance bands with SCL and dataMask (12-band scenes; the STAC item has ten band assets and SCL,
the 20 m ones at 20 m), ``deepsnow patches`` runs with ``encoding: reflectance`` and the ten bands, and
``deepsnow translate`` with a ten-band reflectance checkpoint (10 -> 10; its output a 10-band uint16 COG),
as ``deepsnow synthesize scene`` (its products the 10-band ``snow_reflectance.tif`` and the RGB composite
``snow.tif``; an RGB run's only ``snow.tif``).
The mirror-tiled scenes hold all twelve bands either way (the simulator writes all ten); ``deepsnow
mask`` does the same work for both. ``deepsnow change area`` runs the RGB band set for both and, for
``all``, the ten-band reflectance band set too, from the synthesize stage's ``snow_reflectance.tif``
(run that stage first, or before in the same ``--work``). The outputs that
depend on the band set go to ``s<size>/<bands>/`` under ``--work``; scenes and masks are shared.

The builders run in child processes too, so the benchmark's own process stays small (a child forked
from a large parent would report the parent's pages as its own peak).

Usage: python benchmarks/tile_memory.py [--work /tmp/tile_memory] [--sizes 2048 10980] [--bands rgb|all]
                                      [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AOI = "tile00"
STAGES = ["download-write", "stac-read-write", "mask", "patches", "translate", "synthesize", "change"]
#: --bands: band set -> (patches.bands, patches.encoding), as in benchmarks/train_throughput.py --compare-bands
BAND_SETS = {
    "rgb": (("B04", "B03", "B02"), "rgb8"),
    "all": (("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"), "reflectance"),
}
#: the bands a Sentinel-2 L2A item stores at 20 m (the others of the ten at 10 m)
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12", "SCL")


def fetched_bands(bands: str) -> tuple[str, ...]:
    """The reflectance bands a download of the ``bands`` set fetches (the mask's plus the patches')."""
    from deepsnow.data.download.common import download_bands

    return download_bands(BAND_SETS[bands][0])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- children


def run_measured(cmd: list[str], max_rss_gb: float, log_path: Path) -> dict:
    """Run ``cmd``; its peak RSS (GB, from ``wait4``), wall time (s), exit status; killed past ``max_rss_gb``."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        killed = threading.Event()
        stop = threading.Event()

        def watch() -> None:
            status = Path(f"/proc/{proc.pid}/status")
            while not stop.wait(0.25):
                try:
                    line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    return
                if int(line.split()[1]) * 1024 > max_rss_gb * 1e9:
                    killed.set()
                    os.kill(proc.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    return {
        "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,  # Linux: kilobytes
        "wall_s": wall,
        "rc": proc.returncode,
        "killed_over_limit": killed.is_set(),
    }


def deepsnow(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepsnow.cli", *args]


# --------------------------------------------------------------------------- builders (run as children)


def mirror_index(n_out: int, n_in: int):
    """Indices ``0 .. n_out`` folded back and forth into ``0 .. n_in`` (mirror tiling: no seams)."""
    import numpy as np

    j = np.arange(n_out) % (2 * n_in)
    return np.where(j < n_in, j, 2 * n_in - 1 - j)


def build_scene(base: Path, out: Path, size: int) -> None:
    """Mirror-tile the scene ``base`` into a ``size`` x ``size`` scene ``out`` (same format, tags, origin)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from deepsnow.data.scene import scene_profile
    from deepsnow.io import atomic_output

    with rasterio.open(base) as src:
        data, crs, transform, tags, names = src.read(), src.crs, src.transform, src.tags(), src.descriptions
    n_bands, h, w = data.shape
    cols = mirror_index(size, w)
    tags["DEEPSNOW_NOTE"] = f"mirror-tiled from {base.name} ({h} x {w} px) by benchmarks/tile_memory.py"
    with atomic_output(out, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **scene_profile(size, size, crs, transform, n_bands)) as dst:
            for r0 in range(0, size, 1024):
                r1 = min(size, r0 + 1024)
                rows = mirror_index(r1, h)[r0:r1]
                dst.write(np.ascontiguousarray(data[:, rows][:, :, cols]), window=Window(0, r0, size, r1 - r0))
            for i, b in enumerate(names, start=1):
                dst.set_band_description(i, b)
            dst.update_tags(**tags)


def write_like_a_download(scene: Path, out: Path, strip_rows: int, bands: str) -> None:
    """The download writer on a full grid: ``scene``'s pixels of the ``bands`` set's fetched bands as
    reflectance x 10000 in strips of ``strip_rows`` rows (a row of Sentinel Hub Process API tiles is at
    most 2500), through :func:`deepsnow.data.download.common.write_dn_strips`, as a download writes them."""
    import rasterio
    from rasterio.windows import Window

    from deepsnow.data.download.common import Grid, write_dn_strips
    from deepsnow.data.download.sentinelhub import AUX_OUTPUTS

    fetched = fetched_bands(bands)
    n = len(fetched)
    with rasterio.open(scene) as src:
        h, w, t = src.height, src.width, src.transform
        grid = Grid(src.crs.to_epsg(), t.c, t.f, w, h, t.a)
        index = [list(src.descriptions).index(b) + 1 for b in fetched + AUX_OUTPUTS]

        def strips():  # uint16 strips of the evalscript's bands, SCL, dataMask, as the Sentinel Hub mosaic yields them
            for r0 in range(0, h, strip_rows):
                stack = src.read(index, window=Window(0, r0, w, min(h, r0 + strip_rows) - r0))
                yield r0, dict(zip(fetched, stack[:n])), stack[n], stack[n + 1] > 0

        write_dn_strips(out, strips(), grid, src.tags(), fetched)


def build_assets(scene: Path, folder: Path, bands: str) -> None:
    """The scene's bands a download of the ``bands`` set reads, and SCL, as single-band tiled GeoTIFFs like a
    Sentinel-2 L2A item's COGs: B02 B03 B04 B08 at 10 m, the others (:data:`BANDS_20M`) at 20 m (every
    other pixel), uint16, nodata 0 where dataMask is 0."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(scene) as src:
        h, w, t = src.height, src.width, src.transform
        index = {b: i for i, b in enumerate(src.descriptions, start=1)}
        for band in (*fetched_bands(bands), "SCL"):
            i = index[band]
            step = 2 if band in BANDS_20M else 1
            prof = dict(driver="GTiff", width=w // step, height=h // step, count=1, dtype="uint16", crs=src.crs,
                        transform=t * t.scale(step), nodata=0, tiled=True, blockxsize=512, blockysize=512,
                        compress="deflate")  # fmt: skip
            with rasterio.open(folder / f"{band}.tif.part", "w", **prof) as dst:
                for r0 in range(0, h - h % step, 2048):
                    win = Window(0, r0, w, min(h - h % step, r0 + 2048) - r0)
                    valid = src.read(index["dataMask"], window=win)[::step, ::step] > 0
                    a = src.read(i, window=win)[::step, ::step] * valid
                    dst.write(a[:, : w // step].astype(np.uint16), 1, window=Window(0, r0 // step, w // step, a.shape[0]))
            os.replace(folder / f"{band}.tif.part", folder / f"{band}.tif")


def read_like_a_stac_download(folder: Path, out: Path, bands: str) -> None:
    """A STAC download's read and write of one item on the scene's grid (no search): the assets read
    a window of rows at a time into band files (``read_item_retrying``), the valid fraction counted,
    then the scene written strip by strip (``raw_strips`` -> ``write_dn_strips``), as
    ``deepsnow download --source stac`` does."""
    import shutil

    import rasterio

    from deepsnow.areas import Area
    from deepsnow.data.download.common import Grid, write_dn_strips
    from deepsnow.data.download.stac import ASSET_KEYS, assets_of, raw_strips, read_item_retrying, valid_fraction

    with rasterio.open(folder / "B04.tif") as ref:
        t = ref.transform
        grid = Grid(ref.crs.to_epsg(), t.c, t.f, ref.width, ref.height, t.a)
    fetched = fetched_bands(bands)
    assets = assets_of(fetched)  # the bands, then SCL, under Earth Search v1's asset keys
    item = {"id": "tile", "assets": {ASSET_KEYS[b][0]: {"href": str(folder / f"{b}.tif")} for b in assets}}
    st = {"resampling": "bilinear", "max_attempts": 1, "retry_delay": 0, "timeout": 10}
    raw_dir = out.parent / "raw"
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw, _ = read_item_retrying(item, grid, st, Area("tile", (0, 0, 1, 1), {}), "snowfree", raw_dir, assets)
    log(f"valid fraction {valid_fraction(raw):.3f}")
    offsets = {b: {"scale": 1e-4, "offset": 0.0} for b in fetched}
    write_dn_strips(out, raw_strips(raw, offsets), grid, {"DEEPSNOW_SOURCE": "stac"}, fetched)
    shutil.rmtree(raw_dir)


def build_product(truth: Path, out: Path) -> None:
    """A stand-in for the synthesize stage's RGB product of a scene: ``truth`` rendered as the
    patches are (rgb_max 1, gamma 2.2), uint8, its ``dataMask`` as the internal mask, strip by strip."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from deepsnow.data.render import render_rgb
    from deepsnow.data.scene import SceneFile

    out.parent.mkdir(parents=True, exist_ok=True)
    with SceneFile(truth) as sc, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        (h, w), prof = sc.shape, dict(driver="GTiff", count=3, dtype="uint8", crs=sc.crs, transform=sc.transform,
                                      tiled=True, blockxsize=512, blockysize=512, compress="deflate")
        with rasterio.open(out.with_suffix(".part.tif"), "w", width=w, height=h, **prof) as dst:
            for r0 in range(0, h, 1024):
                r1 = min(h, r0 + 1024)
                bands = sc.read_bands(r0, r1, ("B04", "B03", "B02", "dataMask"))
                win = Window(0, r0, w, r1 - r0)
                dst.write(np.moveaxis(render_rgb(bands, 1.0, 2.2), -1, 0), window=win)
                dst.write_mask(np.where(bands["dataMask"] == 1, 255, 0).astype(np.uint8), window=win)
    os.replace(out.with_suffix(".part.tif"), out)


def build_checkpoint(out: Path, ngf: int, n_blocks: int, bands: str) -> None:
    """A seeded, untrained cycleGAN checkpoint in deepsnow's format (translate's cost does not depend on
    training), mapping the ``bands`` set (one channel per band) and recording it as training does."""
    import torch

    from deepsnow import torchfile
    from deepsnow.gan import checkpoint as ckpt
    from deepsnow.gan import networks
    from deepsnow.gan.data import BandSet

    torch.manual_seed(0)
    band_set = BandSet.of(*BAND_SETS[bands])
    arch = networks.Architecture(ngf=ngf, ndf=4, n_blocks=n_blocks, input_nc=band_set.n, output_nc=band_set.n)
    payload = {
        "format": ckpt.FORMAT,
        "version": ckpt.VERSION,
        "epoch": 1,
        "iteration": 1,
        "arch": arch.as_dict(),
        "config": {"ngf": ngf, "n_blocks": n_blocks},
        "G_A": networks.build_generator(arch).state_dict(),
        "G_B": networks.build_generator(arch).state_dict(),
        "D_A": networks.build_discriminator(arch).state_dict(),
        "D_B": networks.build_discriminator(arch).state_dict(),
        "bands": band_set.as_dict(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torchfile.save(payload, out)


# --------------------------------------------------------------------------- the benchmark


def prepare(args, work: Path) -> tuple[Path, Path, Path]:
    """The simulated base scenes and the checkpoint (made once, kept in ``work``)."""
    base = work / "base"
    sf, truth = base / "snowfree.tif", base / "truth.tif"
    if not (sf.exists() and truth.exists() and (base / "snow.tif").exists()):
        log(f"simulating a {args.base} x {args.base} px area")
        data = {"simulator": {"size": args.base, "seed": 5, "cloudy_scene_fraction": 1.0, "cloud_cover": 0.1}}
        subprocess.run(
            deepsnow("simulate", "--params", json.dumps(data), "--aoi", "sim00", "--snowfree", str(sf),
                     "--snow", str(base / "snow.tif"), "--truth", str(truth)),
            check=True,
        )  # fmt: skip
    ckpt = work / ("checkpoint" if args.bands == "rgb" else f"checkpoint-{args.bands}") / "epoch_001.pt"
    if not ckpt.exists():
        cmd = [sys.executable, __file__, "_checkpoint", str(ckpt), str(args.ngf), str(args.n_blocks), args.bands]
        subprocess.run(cmd, check=True)
    return sf, truth, ckpt


def stage_commands(args, d: Path, ckpt: Path) -> dict[str, list[str]]:
    """Each stage's command; ``d``: the size's folder (scenes, masks), ``d / args.bands``: the band set's outputs."""
    scene, truth, o = d / "scenes" / AOI / "snowfree.tif", d / "truth" / AOI / "snow.tif", d / args.bands
    bands, encoding = BAND_SETS[args.bands]
    patches = json.dumps({"size": args.patch_size, "stride": args.stride, "encoding": encoding, "bands": list(bands)})
    return {
        "download-write": [sys.executable, __file__, "_write", str(scene), str(o / "downloaded.tif"), "2500",
                           args.bands],
        "stac-read-write": [sys.executable, __file__, "_stac", str(o / "assets"), str(o / "stac" / "downloaded.tif"),
                            args.bands],
        "mask": deepsnow("mask", "--scene", str(scene), "--output", str(d / "masks" / AOI / "snowfree.tif"),
                         "--summary", str(d / "masks" / AOI / "snowfree.json")),
        "patches": deepsnow("patches", "--params", patches, "--scene", str(scene),
                            "--mask", str(d / "masks" / AOI / "snowfree.tif"), "--truth", str(truth),
                            "--output", str(o / "patches" / AOI / "snowfree.npz"),
                            "--table", str(o / "patches" / AOI / "snowfree.csv")),
        "translate": deepsnow("translate", "--checkpoint", str(ckpt), "--input", str(scene), "--device", "cpu",
                              "--output", str(o / "translated" / AOI / "snowy.tif")),
        "synthesize": synthesize_command(args, scene, ckpt, o / "synthetic" / AOI),
        "change": change_command(args, d, scene, truth),
    }  # fmt: skip


def change_command(args, d: Path, scene: Path, truth: Path) -> list[str]:
    """``deepsnow change area`` on the scenes, with the stand-in RGB product; for ten bands (``--bands all``) also
    the reflectance band set, from the synthesize stage's ``snow_reflectance.tif`` (the generator's ten bands)."""
    o = d / args.bands
    refl = o / "synthetic" / AOI / "snow_reflectance.tif"
    extra = ["--synthetic-reflectance", str(refl)] if args.bands != "rgb" else []
    return deepsnow("change", "area", "--area", AOI, "--before", str(scene),
                    "--before-mask", str(d / "masks" / AOI / "snowfree.tif"),
                    "--real", str(d / "scenes" / AOI / "snow.tif"), "--real-mask", str(d / "masks" / AOI / "snow.tif"),
                    "--synthetic", str(d / "synthetic" / AOI / "snow.tif"), "--truth", str(truth),
                    "--output", str(o / "change" / f"{AOI}.json"), *extra)  # fmt: skip


def synthesize_command(args, scene: Path, ckpt: Path, out: Path) -> list[str]:
    """``deepsnow synthesize scene`` of ``scene`` with ``ckpt`` (the stage's defaults, on the CPU) into ``out``:
    ``snow.tif``, and for a reflectance checkpoint (``--bands all``) ``snow_reflectance.tif``."""
    refl = ["--reflectance-output", str(out / "snow_reflectance.tif")] if args.bands != "rgb" else []
    return deepsnow("synthesize", "scene", "--params", json.dumps({"device": "cpu"}), "--name", AOI,
                    "--input", str(scene), "--checkpoints", str(ckpt), "--output", str(out / "snow.tif"),
                    "--summary", str(out / "snow.summary.json"), *refl)  # fmt: skip


def build_change_inputs(work: Path, d: Path) -> None:
    """What ``deepsnow change area`` reads beyond the other stages' files: both seasons' masks
    (``deepsnow mask``, unmeasured) and the stand-in synthetic product (:func:`build_product`)."""
    for season in ("snowfree", "snow"):
        mask = d / "masks" / AOI / f"{season}.tif"
        if not mask.exists():
            cmd = deepsnow("mask", "--scene", str(d / "scenes" / AOI / f"{season}.tif"), "--output", str(mask),
                           "--summary", str(mask.with_suffix(".json")))  # fmt: skip
            if run_measured(cmd, 1e9, work / "build.log")["rc"] != 0:
                raise SystemExit(f"masking {season} failed; see {work / 'build.log'}")
    product = d / "synthetic" / AOI / "snow.tif"
    if not product.exists():
        cmd = [sys.executable, __file__, "_product", str(d / "truth" / AOI / "snow.tif"), str(product)]
        if run_measured(cmd, 1e9, work / "build.log")["rc"] != 0:
            raise SystemExit(f"writing {product} failed; see {work / 'build.log'}")


def run_size(args, work: Path, size: int, sf: Path, truth: Path, ckpt: Path) -> dict:
    d = work / f"s{size}"
    scenes = [(sf, d / "scenes" / AOI / "snowfree.tif"), (truth, d / "truth" / AOI / "snow.tif")]
    if "change" not in args.skip:
        scenes.append((sf.with_name("snow.tif"), d / "scenes" / AOI / "snow.tif"))
    for src, dst in scenes:
        if not dst.exists():
            log(f"building {dst} ({size} x {size} px, mirror-tiled)")
            t = run_measured([sys.executable, __file__, "_build", str(src), str(dst), str(size)], 1e9, work / "build.log")
            if t["rc"] != 0:
                raise SystemExit(f"building {dst} failed; see {work / 'build.log'}")
            log(f"built in {t['wall_s']:.0f} s ({size * size / t['wall_s'] / 1e6:.1f} Mpx/s)")
    o = d / args.bands  # the band set's outputs
    assets = o / "assets"
    if "stac-read-write" not in args.skip and not (assets / "SCL.tif").exists():
        log(f"writing {assets}: the scene as an item's single-band COGs (10 m and 20 m), {args.bands} bands")
        cmd = [sys.executable, __file__, "_assets", str(d / "scenes" / AOI / "snowfree.tif"), str(assets), args.bands]
        if run_measured(cmd, 1e9, work / "build.log")["rc"] != 0:
            raise SystemExit(f"writing {assets} failed; see {work / 'build.log'}")
    if "change" not in args.skip:
        build_change_inputs(work, d)
        refl = o / "synthetic" / AOI / "snow_reflectance.tif"
        if args.bands != "rgb" and "synthesize" in args.skip and not refl.exists():
            raise SystemExit(f"the change stage of {args.bands} bands reads {refl}: run the synthesize stage first")
    (o / "stac").mkdir(parents=True, exist_ok=True)
    out = {}
    for stage, cmd in stage_commands(args, d, ckpt).items():
        if stage in args.skip:
            continue
        log(f"{size} px, {args.bands} bands: {stage} ...")
        r = run_measured(cmd, args.max_rss_gb, o / f"{stage}.log")
        r["mpx_per_s"] = size * size / r["wall_s"] / 1e6
        out[stage] = r
        what = "KILLED over --max-rss-gb" if r["killed_over_limit"] else f"exit {r['rc']}"
        log(f"{size} px: {stage}: peak RSS {r['peak_rss_gb']:.2f} GB, {r['wall_s']:.1f} s "
            f"({r['mpx_per_s']:.2f} Mpx/s), {what}; log {o / (stage + '.log')}")  # fmt: skip
    return out


#: the children this script runs as itself: ``tile_memory.py _name arg ...`` -> function(arg types)
CHILDREN = {
    "_build": (build_scene, (Path, Path, int)),
    "_write": (write_like_a_download, (Path, Path, int, str)),
    "_assets": (build_assets, (Path, Path, str)),
    "_stac": (read_like_a_stac_download, (Path, Path, str)),
    "_product": (build_product, (Path, Path)),
    "_checkpoint": (build_checkpoint, (Path, int, int, str)),
}


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        fn, types = CHILDREN[sys.argv[1]]
        fn(*(t(a) for t, a in zip(types, sys.argv[2:], strict=True)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/tile_memory"), help="scratch folder (scenes are kept)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 10980], help="scene sides in px")
    ap.add_argument("--base", type=int, default=512, help="side of the simulated area that is mirror-tiled")
    ap.add_argument("--patch-size", type=int, default=256, help="patches.size (the paper's 256)")
    ap.add_argument("--stride", type=int, default=256, help="patches.stride")
    ap.add_argument("--ngf", type=int, default=4, help="generator width of the translate checkpoint")
    ap.add_argument("--n-blocks", type=int, default=1, help="residual blocks of the translate checkpoint")
    ap.add_argument("--max-rss-gb", type=float, default=12.0, help="kill a stage whose RSS passes this")
    ap.add_argument("--budget-gb", type=float, default=2.0, help="flag a peak RSS above this (the per-stage budget)")
    ap.add_argument("--skip", nargs="*", default=[], choices=STAGES, help="stages to skip")
    ap.add_argument("--bands", nargs="+", choices=sorted(BAND_SETS), default=["rgb"],
                    help="band sets, each run in turn, the first the baseline of the printed ratios: rgb (default): "
                    "an RGB run (7-band downloads, 8-bit RGB patches, a 3 -> 3 checkpoint); all: a ten-band "
                    "reflectance run (12-band downloads, reflectance patches, a 10 -> 10 checkpoint)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}  # (band set, size) -> stage -> record
    for bands in args.bands:
        one = argparse.Namespace(**dict(vars(args), bands=bands))
        sf, truth, ckpt = prepare(one, args.work)
        log(f"band set {bands}: {' '.join(BAND_SETS[bands][0])} ({BAND_SETS[bands][1]}); "
            f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        for size in args.sizes:
            results[bands, size] = run_size(one, args.work, size, sf, truth, ckpt)
    print_table(results, args.budget_gb)
    log(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        out = {f"{b} {size}": v for (b, size), v in results.items()}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    bad = [(k, st) for k, r in results.items() for st, x in r.items() if x["rc"] != 0]
    return 1 if bad else 0


def print_table(results: dict, budget_gb: float) -> None:
    """One column per (band set, size), then, with several band sets, each later set's peak RSS and wall time
    over the first set's (the baseline) at the same size, this run."""
    keys = list(results)
    sets = list(dict.fromkeys(b for b, _ in keys))
    ratios = [(b, s) for b, s in keys if b != sets[0] and (sets[0], s) in results]
    head = "stage".ljust(15) + "".join(f"| {f'{b} {s} x {s}':>24} " for b, s in keys)
    head += "".join(f"| {f'{b}/{sets[0]} {s}':>20} " for b, s in ratios)
    print("\n" + head + "\n" + "-" * len(head))
    stages = sorted({st for r in results.values() for st in r}, key=STAGES.index)
    for st in stages:
        cells = []
        for k in keys:
            x = results[k].get(st)
            if x is None:
                cells.append("| " + "-".rjust(24) + " ")
                continue
            flag = "!" if x["rc"] else ""
            over = "^" if x["peak_rss_gb"] > budget_gb else ""
            cells.append(f"| {x['peak_rss_gb']:6.2f} GB{over:1} {x['wall_s']:7.1f} s{flag:>1}  ")
        for b, s in ratios:
            x, y = results[b, s].get(st), results[sets[0], s].get(st)
            if x is None or y is None:
                cells.append("| " + "-".rjust(20) + " ")
                continue
            cells.append(f"| {x['peak_rss_gb'] / y['peak_rss_gb']:6.2f}x RSS {x['wall_s'] / y['wall_s']:5.2f}x s ")
        print(st.ljust(15) + "".join(cells))
    print(f"(peak RSS of each child process, wall time; ^ = over the {budget_gb:g} GB budget; "
          "! = failed or killed over --max-rss-gb; b/base: band set b over the baseline set at that size)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
