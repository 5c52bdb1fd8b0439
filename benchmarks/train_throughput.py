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

``--compare-models``: the cost of each model (``gan.model``: cycleGAN, CUT, FastCUT) at the
demo size (the ``gan`` section of ``config.yaml``: ngf = ndf = 16, 3 blocks, 64 px) and the paper
size (``configs/paper.yaml`` merged over it: ngf = ndf = 64, 9 blocks, 256 px), batch 1, on the
CPU by default. Each (size, model) runs in its own child process: the training as ``deepsnow train``
sets it up (``runtime.configure``, the model class of ``deepsnow.gan.train.MODELS``), then warm-up
and timed calls of the model's own ``step`` (for CUT the first builds F's heads, as in training). Printed:
iterations/s (1 / median step time), the median CPU time of a step (this process's: less sensitive
than wall time to other processes on a shared machine), the child's peak RSS (``ru_maxrss``) and its growth over the
RSS before the model was built (networks, optimisers, activations and gradients of the step), each
as a ratio to cycleGAN's of the same size measured in the same run, with the 1-minute load
average around each child (other processes on the machine slow the steps down).

``--compare-bands``: the cost of the band count (docs/bands.md): the same models and sizes as
``--compare-models``, each with the networks of every ``--bands`` set (``rgb``: B04 B03 B02 as 8-bit
RGB, 3 -> 3 channels, the reference's; ``all``: the ten reflectance bands as 16-bit unit codes,
10 -> 10), built as ``deepsnow train`` builds them (``deepsnow.gan.train.architecture``), in one child
process each. Printed: the parameters of one generator and one discriminator, the median CPU time and
wall time of a step and the peak RSS, each as a ratio to the first ``--bands`` set's (the baseline) of
the same size and model, measured in the same run.

``--compare-precision``: train the demo-size model for a few epochs on the same
data in fp32 and in bf16, plus fp32 with another seed, and print the per-epoch
mean losses side by side: the fp32-bf16 difference is to be read against the
seed-to-seed difference (the noise of training itself).

Examples::

    python benchmarks/train_throughput.py                      # paper + demo sizes on the default device
    python benchmarks/train_throughput.py --sizes demo --iters 20
    python benchmarks/train_throughput.py --compare-precision --epochs 5
    python benchmarks/train_throughput.py --compare-models                  # cycleGAN vs CUT vs FastCUT, demo + paper, CPU
    python benchmarks/train_throughput.py --compare-models --sizes demo --iters 40 --json cost.json
    python benchmarks/train_throughput.py --compare-bands --sizes paper --models cyclegan cut  # 3 vs 10 bands
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    "paper": dict(ngf=64, ndf=64, n_blocks=9, crop_size=256, batch_size=1),
    "demo": dict(ngf=16, ndf=16, n_blocks=3, crop_size=64, batch_size=1),
}
#: --compare-models: size -> the config files whose merged gan section it is (later ones win)
SIZE_CONFIGS = {"demo": ("config.yaml",), "paper": ("config.yaml", "configs/paper.yaml")}
MODELS = ("cyclegan", "cut", "fastcut")
#: --compare-bands: band set -> (bands, encoding) as in patches.bands / patches.encoding (docs/bands.md)
BAND_SETS = {
    "rgb": (("B04", "B03", "B02"), "rgb8"),
    "all": (("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"), "reflectance"),
}
#: --compare-models defaults per size: (warm-up, timed) iterations; paper size on 2 CPU cores is ~1-10 s/it
MODEL_ITERS = {"demo": (3, 20), "paper": (1, 2)}


def positive_int(text: str, least: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {text!r}")
    return value


def count(text: str) -> int:
    return positive_int(text, least=0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Iterations/s of the cycleGAN training step: ours vs a plain reference loop, fp32 vs bf16; "
        "or (--compare-precision) fp32 vs bf16 loss curves of a short demo-size training.",
    )
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["paper", "demo"], help="architectures to time")
    p.add_argument(
        "--iters",
        type=positive_int,
        default=None,
        help="timed iterations per variant (default: paper 2, demo 10; --compare-models paper 2, demo 20)",
    )
    p.add_argument(
        "--warmup",
        type=count,
        default=None,
        help="untimed warm-up iterations per variant (default 1; --compare-models paper 1, demo 3)",
    )
    p.add_argument(
        "--device", default=None, help="auto, cpu, cuda, cuda:N (default auto; --compare-models cpu)"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads (default: torch's choice; --compare-models 1: on a shared 2-core machine two "
        "threads wait on each other, docs/performance.md)",
    )
    p.add_argument(
        "--compare-models",
        action="store_true",
        help="iterations/s and peak memory of cycleGAN, CUT and FastCUT at demo and paper size, ratios vs cycleGAN",
    )
    p.add_argument(
        "--compare-bands",
        action="store_true",
        help="parameters, CPU s per step and peak memory of each model with 3 (RGB) vs 10 (reflectance) bands, "
        "ratios vs the first --bands set",
    )
    p.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS),
        help="models for --compare-models and --compare-bands (default all)",
    )  # fmt: skip
    p.add_argument(
        "--bands", nargs="+", choices=sorted(BAND_SETS), default=["rgb", "all"],
        help="band sets for --compare-bands, the first the baseline (rgb: B04 B03 B02, 8-bit; all: the ten "
        "reflectance bands, 16-bit; default: rgb all)",
    )  # fmt: skip
    p.add_argument(
        "--json", type=Path, default=None, help="--compare-models, --compare-bands: also write the numbers to this file"
    )
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


def time_loop(step, batches, warmup: int, iters: int, sync, cpu_times: list | None = None) -> list[float]:
    """Wall seconds of each timed step (after ``warmup`` untimed ones); with ``cpu_times``, this process's
    CPU seconds of each are appended to it (less sensitive than wall time to other processes' load)."""
    times = []
    for i in range(warmup + iters):
        a, b = batches[i % len(batches)]
        t0, c0 = time.perf_counter(), time.process_time()
        step(a, b)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            if cpu_times is not None:
                cpu_times.append(time.process_time() - c0)
    return times


def throughput(args) -> None:
    import torch

    from deepsnow.gan import networks, runtime
    from deepsnow.gan.model import CycleGAN
    from gpu_check import make_batches  # next to this script
    from reference_loop import reference_step

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
        batches = make_batches(size["batch_size"], c)
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


# --------------------------------------------------------------------------- --compare-models


def model_params(size: str, model: str, device: str, threads: int) -> dict:
    """The validated gan section of ``size`` (its config files merged, :data:`SIZE_CONFIGS`) with ``model``."""
    import yaml

    from deepsnow import DeepsnowError
    from deepsnow.config import merge_config, validate_section

    config: dict = {}
    for name in SIZE_CONFIGS[size]:
        path = REPO / name
        try:
            config = merge_config(config, yaml.safe_load(path.read_text()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise DeepsnowError(f"{path}: cannot read the {size} size's gan section ({exc})") from None
    gan = dict(config.get("gan") or {}, model=model, device=device, threads=threads)
    return validate_section("gan", gan, source=" + ".join(SIZE_CONFIGS[size]))


def rss_mb() -> float:
    """This process's resident memory now (MB), from /proc (Linux)."""
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def band_batches(batch: int, crop: int, bands: str | None, n: int = 4) -> list:
    """``n`` pairs of (batch, C, crop, crop) batches, seeded: ``bands`` None or ``rgb``: uint8 RGB as
    :func:`gpu_check.make_batches` makes them; ``all``: uint16 unit codes of the ten reflectance bands, as
    the loaders give reflectance patches (``deepsnow.gan.data.to_unit`` maps both to [-1, 1])."""
    import numpy as np
    import torch

    from gpu_check import make_batches  # next to this script

    if bands is None or BAND_SETS[bands][1] == "rgb8":
        return make_batches(batch, crop, n)
    rng = np.random.default_rng(0)
    shape = (batch, len(BAND_SETS[bands][0]), crop, crop)
    return [tuple(torch.from_numpy(rng.integers(0, 65536, shape, dtype=np.uint16)) for _ in "ab") for _ in range(n)]


def build_model(params: dict, device, bands: str | None):
    """The model of ``params`` as ``deepsnow train`` builds it; with ``bands`` (a :data:`BAND_SETS` key),
    with one input and one output channel per band (``deepsnow.gan.train.architecture``)."""
    from deepsnow.gan.data import BandSet
    from deepsnow.gan.train import MODELS, architecture

    if bands is None:
        return MODELS[params["model"]][0](params, device)
    band_set = BandSet.of(*BAND_SETS[bands])
    model = MODELS[params["model"]][0](params, device, arch=architecture(params, band_set))
    model.bands = band_set
    return model


def conv_macs(net, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of the convolutions (most of the arithmetic) of one forward of ``net`` on a
    zero batch of ``shape``, counted by hooks: a conv's output pixels (a transposed conv's input pixels) x
    in_channels x out_channels x kernel area / groups. Exact for these networks and free of the machine's load."""
    import torch
    from torch import nn

    total = 0

    def hook(m, inp, out) -> None:
        nonlocal total
        pixels = (inp[0] if isinstance(m, nn.ConvTranspose2d) else out)[:, 0].numel()
        total += pixels * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups

    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        with torch.no_grad():
            net(torch.zeros(shape))
    finally:
        for h in handles:
            h.remove()
    return total


def measure_model(spec: dict) -> dict:
    """In a child process: build ``spec``'s model as training does and time its ``step``."""
    import torch

    from deepsnow.gan import networks, runtime
    from deepsnow.gan.train import seed_everything

    params = spec["params"]
    device = runtime.resolve_device(params["device"])
    runtime.configure(device, params["threads"], params["deterministic"], params["cudnn_benchmark"])
    batches = band_batches(params["batch_size"], params["crop_size"], spec.get("bands"))
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    before = rss_mb()
    seed_everything(int(params["seed"]))
    model = build_model(params, device, spec.get("bands"))
    model.train_mode()

    def step(a, b):
        model.step(model.prepare(a), model.prepare(b))

    cpu: list[float] = []
    times = time_loop(step, batches, spec["warmup"], spec["iters"], sync, cpu)
    med = statistics.median(times)
    crop, arch = params["crop_size"], model.arch
    macs = {}
    if device.type == "cpu":  # counted after the timing
        macs["macs_G"] = conv_macs(model.G_A, (1, arch.input_nc, crop, crop))
        macs["macs_D"] = conv_macs(model.D_A, (1, arch.output_nc, crop, crop))
    return {
        **macs,
        "it_per_s": 1.0 / med,
        "ms_per_it_median": med * 1000.0,
        "ms_per_it_min": min(times) * 1000.0,
        "cpu_s_per_it": statistics.median(cpu),
        "iters": len(times),
        "warmup": spec["warmup"],
        "threads": torch.get_num_threads(),
        "parameters": sum(networks.count_parameters(n) for n in model.nets),  # F's heads exist after a step
        "parameters_G": networks.count_parameters(model.G_A),
        "parameters_D": networks.count_parameters(model.D_A),
        "input_nc": model.arch.input_nc,
        "rss_before_model_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # kilobytes on Linux
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def run_child(spec: dict) -> dict:
    """Run :func:`measure_model` in a fresh process (its peak RSS is its own); its record, or exit on failure."""
    cmd = [sys.executable, __file__, "_model", json.dumps(spec)]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {spec['size']} {spec['params']['model']} failed:\n{proc.stderr[-4000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(rec, load_before=load, load_after=os.getloadavg()[0])


def compare_models(args) -> None:
    from deepsnow.gan import runtime

    device = args.device or "cpu"
    runtime.resolve_device(device, key="--device")  # a device that does not exist here: exit 2 before any child
    threads = args.threads or 1
    log(f"cycleGAN vs CUT vs FastCUT training step on {device}, {threads} torch thread(s), batch 1, "
        f"one child process per size and model; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows = []
    for size in args.sizes:
        warmup, iters = MODEL_ITERS[size]
        for model in args.models:
            params = model_params(size, model, device, threads)
            spec = {"size": size, "params": params, "warmup": warmup if args.warmup is None else args.warmup}
            spec["iters"] = args.iters or iters
            log(f"{size} {model}: ngf {params['ngf']}, {params['n_blocks']} blocks, {params['crop_size']} px, "
                f"{spec['warmup']} warm-up + {spec['iters']} timed iterations ...")  # fmt: skip
            rec = dict(run_child(spec), size=size, model=model, ngf=params["ngf"], n_blocks=params["n_blocks"])
            rows.append(dict(rec, crop_size=params["crop_size"]))
            log(f"{size} {model}: {rec['it_per_s']:.3f} it/s, peak RSS {rec['peak_rss_mb']:.0f} MB "
                f"(+{rec['peak_rss_mb'] - rec['rss_before_model_mb']:.0f} MB over the process before the model)")
    add_ratios(rows)
    print_model_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "threads": threads, "rows": rows}, indent=2) + "\n")


def add_ratios(rows: list[dict]) -> None:
    """Each row's it/s and memory over cycleGAN's of the same size (when cycleGAN was measured)."""
    base = {r["size"]: r for r in rows if r["model"] == "cyclegan"}
    for r in rows:
        r["step_mb"] = r["peak_rss_mb"] - r["rss_before_model_mb"]
        b = base.get(r["size"])
        if b is not None:
            r["speed_vs_cyclegan"] = r["it_per_s"] / b["it_per_s"]
            r["cpu_speed_vs_cyclegan"] = b["cpu_s_per_it"] / r["cpu_s_per_it"]
            r["peak_rss_vs_cyclegan"] = r["peak_rss_mb"] / b["peak_rss_mb"]
            r["step_mb_vs_cyclegan"] = r["step_mb"] / (b["peak_rss_mb"] - b["rss_before_model_mb"])


def print_table(rows: list[dict], columns: list[tuple], note: str) -> None:
    """One table for both comparisons: ``columns`` are ``(title, width, cell)``, a negative width left-aligns,
    ``cell(row)`` formats the row's value (justified to the width); ``note`` below says what the columns are."""
    def cell(text: str, width: int) -> str:
        return text.ljust(-width) if width < 0 else text.rjust(width)

    head = " ".join(cell(title, width) for title, width, _ in columns)
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(" ".join(cell(fmt(r), width) for _, width, fmt in columns))
    print(note)


def _x(key: str, digits: int):
    """A ratio column's cell: the ratio to ``digits`` decimals, '-' where the row has none."""
    return lambda r: f"{r[key]:.{digits}f}" if key in r else "-"


def _load(r: dict) -> str:
    return f"{r['load_before']:4.1f}-{r['load_after']:<4.1f}"


MODEL_COLUMNS = [
    ("size", -6, lambda r: r["size"]), ("model", -9, lambda r: r["model"]),
    ("it/s", 8, lambda r: f"{r['it_per_s']:.3f}"), ("x cycleGAN", 10, _x("speed_vs_cyclegan", 2)),
    ("CPU s/it", 9, lambda r: f"{r['cpu_s_per_it']:.3f}"), ("x cycleGAN", 10, _x("cpu_speed_vs_cyclegan", 2)),
    ("peak RSS MB", 11, lambda r: f"{r['peak_rss_mb']:.0f}"), ("x cycleGAN", 10, _x("peak_rss_vs_cyclegan", 2)),
    ("step MB", 8, lambda r: f"{r['step_mb']:.0f}"), ("x cycleGAN", 10, _x("step_mb_vs_cyclegan", 2)),
    ("parameters", 11, lambda r: f"{r['parameters']:,d}"), ("load", 9, _load),
]


def print_model_table(rows: list[dict]) -> None:
    print_table(rows, MODEL_COLUMNS, (
        "(it/s: 1 / median wall time of a step; CPU s/it: median CPU time of a step, x cycleGAN as a speed "
        "(cycleGAN's CPU s/it over this one's: less sensitive to other processes' load than it/s); peak RSS: "
        "the child process's ru_maxrss; step MB: peak RSS minus the RSS before the model was built; "
        "x cycleGAN: over cycleGAN's of the same size, this run; load: 1-minute load average before-after the child)"))


# --------------------------------------------------------------------------- --compare-bands


def compare_bands(args) -> None:
    """Each model at each size with each ``--bands`` set, one child process each; ratios vs the first set."""
    from deepsnow.gan import runtime

    device = args.device or "cpu"
    runtime.resolve_device(device, key="--device")  # a device that does not exist here: exit 2 before any child
    threads = args.threads or 1
    log(f"band sets {' vs '.join(args.bands)} (baseline {args.bands[0]}): training step on {device}, {threads} "
        f"torch thread(s), batch 1, one child process per size, model and band set; "
        f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows = []
    for size in args.sizes:
        warmup, iters = MODEL_ITERS[size]
        for model in args.models:
            params = model_params(size, model, device, threads)
            for bands in args.bands:
                spec = {"size": size, "params": params, "bands": bands, "iters": args.iters or iters,
                        "warmup": warmup if args.warmup is None else args.warmup}  # fmt: skip
                log(f"{size} {model} {bands} ({len(BAND_SETS[bands][0])} bands): ngf {params['ngf']}, "
                    f"{params['n_blocks']} blocks, {params['crop_size']} px, {spec['warmup']} warm-up + "
                    f"{spec['iters']} timed iterations ...")  # fmt: skip
                rec = dict(run_child(spec), size=size, model=model, bands=bands, crop_size=params["crop_size"])
                rows.append(rec)
                log(f"{size} {model} {bands}: {rec['cpu_s_per_it']:.3f} CPU s/it, {rec['it_per_s']:.3f} it/s, "
                    f"peak RSS {rec['peak_rss_mb']:.0f} MB")  # fmt: skip
    add_band_ratios(rows, args.bands[0])
    print_band_table(rows, args.bands[0])
    if args.json:
        out = {"device": device, "threads": threads, "baseline": args.bands[0], "rows": rows}
        args.json.write_text(json.dumps(out, indent=2) + "\n")


BAND_RATIOS = {  # ratio key -> (record key, this over baseline (True) or baseline over this)
    "G_x": ("parameters_G", True),
    "D_x": ("parameters_D", True),
    "cpu_x": ("cpu_s_per_it", True),
    "wall_x": ("ms_per_it_median", True),
    "macs_G_x": ("macs_G", True),
    "rss_x": ("peak_rss_mb", True),
    "step_mb_x": ("step_mb", True),
}


def add_band_ratios(rows: list[dict], baseline: str) -> None:
    """Each row's numbers over the ``baseline`` band set's of the same size and model (cost ratios: > 1 costs more)."""
    base = {(r["size"], r["model"]): r for r in rows if r["bands"] == baseline}
    for r in rows:
        r["step_mb"] = r["peak_rss_mb"] - r["rss_before_model_mb"]
    for r in rows:
        b = base.get((r["size"], r["model"]))
        if b is not None:
            for name, (key, _) in BAND_RATIOS.items():
                if key in r and key in b:
                    r[name] = r[key] / b[key] if b[key] else float("nan")


BAND_COLUMNS = [
    ("size", -6, lambda r: r["size"]), ("model", -9, lambda r: r["model"]), ("bands", -5, lambda r: r["bands"]),
    ("nc", 3, lambda r: f"{r['input_nc']:d}"),
    ("G params", 11, lambda r: f"{r['parameters_G']:,d}"), ("x", 6, _x("G_x", 3)),
    ("D params", 10, lambda r: f"{r['parameters_D']:,d}"), ("x", 6, _x("D_x", 3)),
    ("G GMAC", 7, lambda r: f"{r.get('macs_G', float('nan')) / 1e9:.2f}"), ("x", 6, _x("macs_G_x", 3)),
    ("CPU s/it", 9, lambda r: f"{r['cpu_s_per_it']:.3f}"), ("x", 6, _x("cpu_x", 3)),
    ("s/it wall", 9, lambda r: f"{r['ms_per_it_median'] / 1000:.3f}"), ("x", 6, _x("wall_x", 3)),
    ("peak RSS MB", 11, lambda r: f"{r['peak_rss_mb']:.0f}"), ("x", 6, _x("rss_x", 3)),
    ("load", 9, _load),
]


def print_band_table(rows: list[dict], baseline: str) -> None:
    print_table(rows, BAND_COLUMNS, (
        f"(nc: input = output channels; G / D params: one generator / one discriminator; G GMAC: the "
        f"convolutions' multiply-accumulates of one generator forward of one crop (CPU runs); CPU s/it: median CPU "
        f"time of a step (this process's; less sensitive than wall time to other load); s/it wall: median wall "
        f"time; peak RSS: the child's ru_maxrss; x: this over the {baseline} set's of the same size and model, "
        f"this run (> 1 costs more); load: 1-minute load average before-after the child)"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "_model":
        print(json.dumps(measure_model(json.loads(sys.argv[2]))))
        return 0
    args = parse_args(argv)
    if args.compare_models or args.compare_bands:
        from deepsnow import DeepsnowError

        try:
            (compare_bands if args.compare_bands else compare_models)(args)
        except DeepsnowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    args.device = args.device or "auto"
    args.warmup = 1 if args.warmup is None else args.warmup
    if args.compare_precision:
        compare_precision(args)
    else:
        throughput(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
