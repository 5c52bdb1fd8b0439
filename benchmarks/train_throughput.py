#!/usr/bin/env python
"""cycleGAN training throughput: our training step vs a plain reference loop, fp32 vs bf16.

Default mode: for the paper architecture (ngf 64, 9 residual blocks, 256 px crops,
batch 1) and the demo size (ngf = ndf = 16, 3 blocks, 64 px), time

  (a) our training step (``deepsnow.gan.model.CycleGAN.step``: stacked generator
      and discriminator forwards, autocast when asked, channels-last and fused Adam
      on CUDA), and
  (b) the reference step written straightforwardly (``benchmarks/reference_loop.py``:
      forward, backward_G, backward_D_A, backward_D_B, fp32),

on the very same networks in the same process, and print iterations/s and the
ratio ours/baseline; then our step in bf16 (autocast) vs fp32.

``--compare-precision``: train the demo-size model for a few epochs on the same
data in fp32 and in bf16, plus fp32 with another seed, and print the per-epoch
mean losses side by side: the fp32-bf16 difference is to be read against the
seed-to-seed difference (the noise of training itself).

Examples::

    python benchmarks/train_throughput.py                      # paper + demo sizes on the default device
    python benchmarks/train_throughput.py --sizes demo --iters 20
    python benchmarks/train_throughput.py --compare-precision --epochs 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "paper": dict(ngf=64, ndf=64, n_blocks=9, crop_size=256, batch_size=1),
    "demo": dict(ngf=16, ndf=16, n_blocks=3, crop_size=64, batch_size=1),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Iterations/s of the cycleGAN training step: ours vs a plain reference loop, fp32 vs bf16; "
        "or (--compare-precision) fp32 vs bf16 loss curves of a short demo-size training.",
    )
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["paper", "demo"], help="architectures to time")
    p.add_argument("--iters", type=int, default=None, help="timed iterations per variant (default: paper 2, demo 10)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up iterations per variant (default 1)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument(
        "--precisions",
        nargs="+",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="precisions of our step to time (default: fp32 bf16; fp16 only on CUDA)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the reference loop")
    p.add_argument(
        "--compare-precision", action="store_true", help="train the demo model in fp32 and bf16 and compare losses"
    )
    p.add_argument("--epochs", type=int, default=4, help="epochs for --compare-precision (default 4)")
    p.add_argument(
        "--n-images", type=int, default=24, help="synthetic images per domain for --compare-precision (default 24)"
    )
    p.add_argument(
        "--train-a", type=Path, default=None, help="real trainA.npz for --compare-precision (default synthetic)"
    )
    p.add_argument(
        "--train-b", type=Path, default=None, help="real trainB.npz for --compare-precision (default synthetic)"
    )
    return p.parse_args(argv)


def gan_params(size: dict, precision: str, device: str, seed: int = 0) -> dict:
    from deepsnow.config import validate_section

    p = dict(size, load_size=size["crop_size"], precision=precision, device=device, seed=seed)
    return validate_section("gan", p)


def time_loop(step, batches, warmup: int, iters: int, sync) -> list[float]:
    times = []
    for i in range(warmup + iters):
        a, b = batches[i % len(batches)]
        t0 = time.perf_counter()
        step(a, b)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def throughput(args) -> None:
    import torch

    from deepsnow.gan import networks, runtime
    from deepsnow.gan.model import CycleGAN
    from reference_loop import reference_step  # next to this script

    device = runtime.resolve_device(args.device, key="--device")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    precisions = args.precisions or (["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"])
    if device.type != "cuda" and "fp16" in precisions:
        precisions = [p for p in precisions if p != "fp16"]
        print("note: fp16 needs CUDA; skipped", file=sys.stderr)
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    rows = []
    for name in args.sizes:
        size = SIZES[name]
        iters = args.iters or (2 if name == "paper" else 10)
        c = size["crop_size"]
        g = torch.Generator().manual_seed(0)
        batches = [
            (
                torch.randint(0, 256, (size["batch_size"], 3, c, c), generator=g, dtype=torch.uint8),
                torch.randint(0, 256, (size["batch_size"], 3, c, c), generator=g, dtype=torch.uint8),
            )
            for _ in range(4)
        ]
        torch.manual_seed(0)
        base_model = CycleGAN(gan_params(size, "fp32", str(device)), device)
        n_g, n_d = networks.count_parameters(base_model.G_A), networks.count_parameters(base_model.D_A)
        print(
            f"\n[{name}] ngf {size['ngf']}, {size['n_blocks']} blocks, {c} px, batch {size['batch_size']}: "
            f"G {n_g:,} / D {n_d:,} parameters; {args.warmup} warm-up + {iters} timed iterations per variant"
        )
        results = {}
        if not args.no_baseline:
            ref = copy.deepcopy(base_model)
            ref.channels_last = False  # plain loop: default memory format, fp32

            def ref_step(a, b, m=ref):
                reference_step(m, a.to(device).float().div(127.5).sub(1), b.to(device).float().div(127.5).sub(1))

            t = time_loop(ref_step, batches, args.warmup, iters, sync)
            results["baseline fp32"] = t
            del ref
        for prec in precisions:
            m = CycleGAN(gan_params(size, prec, str(device)), device)
            m.load_state_dict(base_model.state_dict(), "benchmark")

            def our_step(a, b, m=m):
                m.step(m.prepare(a), m.prepare(b))

            results[f"ours {prec}"] = time_loop(our_step, batches, args.warmup, iters, sync)
            del m
        for k, t in results.items():
            med = statistics.median(t)
            rows.append((name, k, 1.0 / med, med))
            print(f"  {k:<14s} {1.0 / med:9.3f} it/s   ({med * 1000:9.1f} ms/it median, {len(t)} it)")
        med = {k: statistics.median(t) for k, t in results.items()}
        if "baseline fp32" in med and "ours fp32" in med:
            print(f"  ratio ours fp32 / baseline fp32 (it/s): {med['baseline fp32'] / med['ours fp32']:.3f}")
        if "ours bf16" in med and "ours fp32" in med:
            print(f"  ratio ours bf16 / ours fp32 (it/s):     {med['ours fp32'] / med['ours bf16']:.3f}")
        if "ours fp16" in med and "ours fp32" in med:
            print(f"  ratio ours fp16 / ours fp32 (it/s):     {med['ours fp32'] / med['ours fp16']:.3f}")


def synthetic_domains(folder: Path, n: int, size: int) -> tuple[Path, Path]:
    """Two distinguishable domains: 'snow-free' textured mid tones and 'snowy' bright, low-saturation images."""
    import numpy as np

    from deepsnow.io import save_npz

    rng = np.random.default_rng(0)

    def texture(n, lo, hi, sat):
        base = rng.uniform(lo, hi, (n, size // 8, size // 8, 1))
        img = np.kron(base, np.ones((1, 8, 8, 1))) + rng.normal(0, 12, (n, size, size, 1))
        tint = rng.uniform(1 - sat, 1 + sat, (n, 1, 1, 3))
        return np.clip(img * tint, 0, 255).astype(np.uint8)

    a, b = folder / "trainA.npz", folder / "trainB.npz"
    save_npz(a, rgb=texture(n, 40, 140, 0.3), ids=np.array([f"a{i}" for i in range(n)]))
    save_npz(b, rgb=texture(n, 170, 250, 0.05), ids=np.array([f"b{i}" for i in range(n)]))
    return a, b


def sample_metrics(checkpoint: Path, train_a: Path, train_b: Path, out: Path) -> dict:
    """What a run learned, measured on its last epoch's A->B translations against the real B images:
    FRD and CRD on ResNet-50 features (seeded random weights: the same network for every run, so the
    runs are comparable with each other, not with published values) and the mean colour difference."""
    import numpy as np

    from deepsnow.config import validate_section
    from deepsnow.features import embed_images
    from deepsnow.gan.generate import generate
    from deepsnow.io import load_npz
    from deepsnow.metrics import cosine_resnet_distance, frechet_distance

    generate(validate_section("samples", {}), [checkpoint], [out], train_a, train_b, device="cpu")
    fake = load_npz(out)["fake_B"]
    real = load_npz(train_b)["rgb"]
    opts = {"weights": "random", "size": 64}
    f_fake = embed_images(fake, "resnet50", device="cpu", options=opts, seed=0)
    f_real = embed_images(real, "resnet50", device="cpu", options=opts, seed=0)
    return {
        "FRD (random ResNet-50)": frechet_distance(f_fake, f_real),
        "CRD (random ResNet-50)": cosine_resnet_distance(f_fake, f_real),
        "mean |colour - real B| (DN)": float(np.abs(fake.mean(axis=(0, 1, 2)) - real.mean(axis=(0, 1, 2))).mean()),
    }


def compare_precision(args) -> None:
    import csv

    import torch

    from deepsnow.config import validate_section
    from deepsnow.gan import runtime
    from deepsnow.gan.model import LOSS_NAMES
    from deepsnow.gan.train import train

    device = runtime.resolve_device(args.device, key="--device")
    size = SIZES["demo"]
    low = "bf16"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.train_a and args.train_b:
            a, b = args.train_a, args.train_b
        else:
            a, b = synthetic_domains(tmp, args.n_images, size["crop_size"])
        runs, scores = {}, {}
        for label, prec, seed in (("fp32", "fp32", 0), (low, low, 0), ("fp32 seed 1", "fp32", 1)):
            p = dict(
                size,
                load_size=size["crop_size"] + size["crop_size"] // 8,
                precision=prec,
                device=str(device),
                seed=seed,
                n_epochs=args.epochs,
                n_epochs_decay=0,
                pool_size=50,
                threads=args.threads or torch.get_num_threads(),
            )
            p = validate_section("gan", p)  # train() trusts its params, as from the CLI
            d = tmp / label.replace(" ", "_")
            t0 = time.perf_counter()
            out = train(p, a, b, d / "ck", d / "st", d / "losses.csv", d / "li.csv", progress=False)
            with open(d / "losses.csv") as fh:
                runs[label] = list(csv.DictReader(fh))
            print(
                f"{label:>12s}: {args.epochs} epochs x {out['iterations_per_epoch']} it in "
                f"{time.perf_counter() - t0:.1f} s ({out['it_per_s']:.2f} it/s)"
            )
            scores[label] = sample_metrics(d / "ck" / f"epoch_{args.epochs:03d}.pt", a, b, tmp / f"{label}.npz")
    cols = ("G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B")
    print(f"\nper-epoch mean losses, demo size on {device}: fp32 | {low} | fp32 with another seed")
    print("epoch " + "  ".join(f"{c:>26s}" for c in cols))
    for e in range(args.epochs):
        cells = []
        for c in cols:
            v = [float(runs[k][e][c]) for k in ("fp32", low, "fp32 seed 1")]
            cells.append(f"{v[0]:8.4f}|{v[1]:8.4f}|{v[2]:8.4f}")
        print(f"{e + 1:5d} " + "  ".join(f"{s:>26s}" for s in cells))
    print(f"\nmean |difference| over epochs: fp32 vs {low} (precision) and fp32 vs fp32 seed 1 (training noise)")
    for c in LOSS_NAMES:
        dp = statistics.mean(abs(float(runs["fp32"][e][c]) - float(runs[low][e][c])) for e in range(args.epochs))
        ds = statistics.mean(
            abs(float(runs["fp32"][e][c]) - float(runs["fp32 seed 1"][e][c])) for e in range(args.epochs)
        )
        print(f"  {c:<8s} precision {dp:8.4f}   seed {ds:8.4f}   ratio {dp / ds if ds else float('nan'):6.2f}")
    print(f"\nmetrics of the last epoch's A->B samples: fp32 | {low} | fp32 with another seed")
    for name in scores["fp32"]:
        v = [scores[k][name] for k in ("fp32", low, "fp32 seed 1")]
        dp, ds = abs(v[0] - v[1]), abs(v[0] - v[2])
        print(
            f"  {name:<28s} {v[0]:10.4f} | {v[1]:10.4f} | {v[2]:10.4f}   "
            f"precision/seed difference ratio {dp / ds if ds else float('nan'):6.2f}"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compare_precision:
        compare_precision(args)
    else:
        throughput(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
