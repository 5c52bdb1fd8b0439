#!/usr/bin/env python
"""One short run that measures every CUDA path of deepsnow, for the first minutes on a GPU.

Sections of the JSON written to ``--output`` (docs/performance.md says what each number means):

* ``device``: what ``device: auto`` resolves to, torch / CUDA / cuDNN versions, the GPU and its memory;
* ``train``: iterations/s of the paper-size training step (ngf 64, 9 blocks, 256 px, batch 1): the
  plain fp32 reference loop (``benchmarks/reference_loop.py``) and ours in fp32, bf16 and fp16
  (gradient scaler), with channels_last, with ``torch.compile`` (compile time apart), and bf16 at
  batch 4 and 8; the CUT and FastCUT steps (``gan.model: cut | fastcut``) in fp32 and in bf16 with
  channels_last; peak memory of each, the ratio ours / baseline and CUT's / cycleGAN's;
* ``numerics``: a 20-iteration loss trace from one seed in fp32, bf16 and fp16, the largest relative
  difference to fp32, and whether ``deterministic: true`` runs (and which ops warn); the same for
  CUT in fp32 and bf16 (its PatchNCE indexing has a backward of its own);
* ``embed``: images/s of the Inception (299 px) and ResNet-50 extractors at batch 64, fp32 and bf16
  (random weights: no download);
* ``translate``: Mpx/s of the paper generator translating a 4096 x 4096 scene tile by tile, per-tile
  instance norm in fp32 and bf16, and seam-free (``norm="scene"``, the default of ``deepsnow translate``
  and the synthesize stage) in fp32;
* ``workflow``: the tiny test config (``configs/test.yaml``) run end to end by Snakemake in a scratch
  copy of the repository with the GPU sections on this device: wall time, and whether its metrics
  table has the columns and rows the config implies.

Every measurement is isolated: one that fails (a compile error, out of memory) is recorded with its
error and the others still run; a precision the device lacks (fp16 on a CPU) is recorded as skipped
with the reason. The exit status is 0 unless the script itself is broken. The JSON is rewritten after
every section, so a run killed half-way still leaves what it measured.

``--quick`` runs the very same code paths at tiny sizes (about a minute on 2 CPU cores; a test runs
it so that this script cannot rot). ``--fail PATTERN`` makes the measurements whose names match
raise, to check that a failure is recorded while the rest runs.

Examples::

    srun --gpus=1 python benchmarks/gpu_check.py --output gpu.json     # on a cluster GPU node (<= 7 min)
    python benchmarks/gpu_check.py --device cpu --quick --output x.json
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import gc
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("device", "train", "numerics", "embed", "translate", "workflow")
PAPER_ARCH = dict(ngf=64, ndf=64, n_blocks=9, crop_size=256)


@dataclass(frozen=True)
class Plan:
    """The sizes of one run: the paper's (default) or tiny ones (``--quick``)."""

    arch: dict  # the training step's networks and crop: ngf, ndf, n_blocks, crop_size
    batches: tuple[int, ...]  # further batch sizes of ours in bf16 (batch 1 is the precision runs)
    warmup: int  # untimed steps per variant (cuDNN autotuning, compilation)
    seconds: float  # timed seconds per variant, at least min_iters and at most max_iters steps
    min_iters: int
    max_iters: int
    trace_iters: int  # numerics: length of the loss trace
    cut_trace_iters: int  # numerics: length of CUT's loss traces
    det_iters: int  # numerics: steps of each deterministic run
    embed_batch: int
    embed_images: int
    embed_px: dict  # image side fed to each extractor
    resnet_size: int  # ResNet-50's own resize (features.resnet50.size)
    scene: int  # translate: side of the square scene
    tile: int
    overlap: int
    translate_arch: dict
    threads: int | None = None  # torch CPU threads (None: torch's choice)
    compile_backend: str | None = None  # torch.compile backend (None: the package's, inductor)
    workflow_targets: tuple[str, ...] = ()  # () = the workflow's default target (figures and report)
    workflow_override: dict = field(default_factory=dict)  # merged over configs/test.yaml
    workflow_args: tuple[str, ...] = ()
    budget_s: float = 360.0  # measurements starting later are skipped (330 before CUT's were added)
    workflow_grace_s: float = 30.0  # the workflow may run this long past the budget, then it is killed


FULL = Plan(
    arch=PAPER_ARCH,
    batches=(4, 8),
    warmup=3,
    seconds=4.0,
    min_iters=5,
    max_iters=500,
    trace_iters=20,
    cut_trace_iters=20,
    det_iters=5,
    embed_batch=64,
    embed_images=1024,
    embed_px={"inception": 299, "resnet50": 224},
    resnet_size=224,
    scene=4096,
    tile=256,
    overlap=64,
    translate_arch=dict(ngf=64, n_blocks=9),
)

QUICK = Plan(
    arch=dict(ngf=8, ndf=8, n_blocks=2, crop_size=32),
    batches=(4, 8),
    warmup=1,
    seconds=0.2,
    min_iters=2,
    max_iters=5,
    trace_iters=20,
    cut_trace_iters=5,  # a CUT step costs ~1.3x cycleGAN's at this size; the quick numbers only show it runs
    det_iters=3,
    embed_batch=4,
    embed_images=8,
    embed_px={"inception": 32, "resnet50": 32},
    resnet_size=64,
    scene=160,
    tile=64,
    overlap=16,
    translate_arch=dict(ngf=8, n_blocks=2),
    # One thread: on a shared 2-core machine two OpenMP threads per process wait on each other
    # (a tiny training step takes 1-5 s instead of 0.04 s).
    threads=1,
    # Dynamo's graph capture without inductor's C++ code generation (minutes on 2 cores).
    compile_backend="eager",
    # Up to the metrics table of one epoch: the figures, the report and more epochs add CPU
    # minutes and no CUDA path.
    workflow_targets=("results/test/metrics/metrics.csv",),
    workflow_override={"gan": {"n_epochs": 1, "n_epochs_decay": 0, "threads": 1}, "metrics": {"n_jobs": 1}},
    workflow_args=("--set-threads", "embed_real=1", "embed_samples=1", "metrics_epoch=1"),
    # 150 s before CUT's steps and traces were added (+15 s idle, +40 s at load 8)
    budget_s=240.0,
    workflow_grace_s=300.0,  # a loaded shared machine may take minutes; the test needs the result
)

#: training variants of our step at batch 1: label -> (precision, channels_last, compile)
TRAIN_VARIANTS = {
    "ours fp32": ("fp32", False, False),
    "ours bf16": ("bf16", False, False),
    "ours fp16": ("fp16", False, False),
    "ours fp32 channels_last": ("fp32", True, False),
    "ours bf16 channels_last": ("bf16", True, False),
    "ours bf16 channels_last compile": ("bf16", True, True),
}

#: one-sided models' variants at batch 1: label -> (model, precision, channels_last); each is compared
#: with the cycleGAN variant of the same precision and memory format (:data:`CYCLEGAN_PEER`)
CUT_VARIANTS = {
    "cut fp32": ("cut", "fp32", False),
    "cut bf16 channels_last": ("cut", "bf16", True),
    "fastcut fp32": ("fastcut", "fp32", False),
    "fastcut bf16 channels_last": ("fastcut", "bf16", True),
}
CYCLEGAN_PEER = {("fp32", False): "ours fp32", ("bf16", True): "ours bf16 channels_last"}

#: the op named by torch's "... does not have a deterministic implementation" warning or error
NONDETERMINISTIC_OP = re.compile(r"(\S+) does not have a deterministic implementation")


class Skipped(Exception):
    """A measurement that cannot run here (the reason is recorded, not an error)."""


# -- running measurements one by one, each isolated --------------------------------------------


class Check:
    """Runs named measurements, each isolated: its result, its skip reason or its error is recorded."""

    def __init__(self, args, plan: Plan, device):
        self.args, self.plan, self.device = args, plan, device
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + (args.budget if args.budget is not None else plan.budget_s)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def run(self, name: str, fn, *fn_args, budgeted: bool = True) -> dict:
        print(f"[{self.elapsed():6.1f} s] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            if any(fnmatch.fnmatchcase(name, pat) for pat in self.args.fail):
                raise RuntimeError(f"injected failure (--fail matches {name!r})")
            if budgeted and self.left() <= 0:
                raise Skipped(f"over the time budget ({self.deadline - self.t0:.0f} s) when it was due to start")
            rec = dict(fn(*fn_args), status="ok")
        except Skipped as exc:
            rec = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 -- recorded: the other measurements still run
            rec = {"status": "error", "error": clip(f"{type(exc).__name__}: {exc}"), "traceback": _tail_traceback()}
        finally:
            free_memory(self.device)
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        print(f"           -> {_one_line(rec)}", flush=True)
        return rec


def clip(text: str, head: int = 1000, tail: int = 5000) -> str:
    """``text`` without its middle when long (a failed workflow's log ends with what matters)."""
    return text if len(text) <= head + tail else f"{text[:head]} [...] {text[-tail:]}"


def _tail_traceback() -> str:
    return traceback.format_exc()[-3000:]


def _one_line(rec: dict) -> str:
    if rec["status"] == "skipped":
        return f"skipped: {rec['reason'][:160]}"
    if rec["status"] == "error":
        return f"ERROR {rec['error'][:300]}"
    for key, unit in (("it_per_s", "it/s"), ("images_per_s", "images/s"), ("mpx_per_s", "Mpx/s")):
        if key in rec:
            return f"{rec[key]:.3f} {unit} ({rec['seconds']:.1f} s)"
    return f"ok ({rec['seconds']:.1f} s)"


# -- the device, synchronisation and memory ----------------------------------------------------


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device) -> dict:
    """Peak GPU memory since :func:`reset_peak`; on a CPU the process's peak RSS so far (it never resets)."""
    import resource

    import torch

    if device.type == "cuda":
        return {"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "peak_rss_mb": None}
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"peak_gpu_mb": None, "peak_rss_mb": round(rss_kb / 1024, 1)}


def unsupported(precision: str, device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (None when it can): the package's own check, and bf16
    on a GPU without bfloat16 (pre-Ampere)."""
    import torch

    from deepsnow import DeepsnowError
    from deepsnow.gan import runtime

    try:
        runtime.check_precision(precision, device)
    except DeepsnowError as exc:
        return str(exc)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return f"bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support"
    return None


def device_info(requested: str, device) -> dict:
    import torch

    from deepsnow.gan import runtime

    cuda = torch.cuda.is_available()
    info = {
        "requested": requested,
        "resolved": str(device),
        "auto_resolves_to": str(runtime.resolve_device("auto")),
        "torch": torch.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "gpu_name": None,
        "gpu_memory_gb": None,
        "gpu_capability": None,
        "bf16_supported": torch.cuda.is_bf16_supported() if cuda else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "host": platform.node(),
    }
    if device.type == "cuda":
        prop = torch.cuda.get_device_properties(device)
        info.update(gpu_name=prop.name, gpu_memory_gb=round(prop.total_memory / 2**30, 2))
        info["gpu_capability"] = f"{prop.major}.{prop.minor}"
    return info


# -- train: the training step, ours and the reference loop --------------------------------------


def gan_params(
    plan: Plan, device, precision="fp32", channels_last=False, compile_=False, batch=1, model="cyclegan"
) -> dict:
    """The validated gan section of one variant (the model trusts its params, as from the CLI)."""
    from deepsnow.config import validate_section

    p = dict(plan.arch, load_size=plan.arch["crop_size"], precision=precision, device=str(device), seed=0)
    p.update(channels_last=channels_last, compile=compile_, batch_size=batch, model=model)
    return validate_section("gan", p)


def build_model(params: dict, device):
    """The model of ``gan.model`` (as training picks it) initialised from seed 0: every variant of a
    model starts from the same weights."""
    import torch

    from deepsnow.gan.train import MODELS

    torch.manual_seed(0)
    return MODELS[params["model"]][0](params, device)


def make_batches(batch: int, crop: int, n: int = 4) -> list:
    """``n`` pairs of uint8 (batch, 3, crop, crop) batches, the same for every variant (seed 0)."""
    import torch

    g = torch.Generator().manual_seed(0)
    shape = (batch, 3, crop, crop)
    return [
        (
            torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
            torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
        )
        for _ in range(n)
    ]


def timed_steps(step, batches, plan: Plan, device) -> tuple[list[float], list[float]]:
    """Seconds of the warm-up steps and of the timed ones (synchronised after each step)."""

    def one(i: int) -> float:
        a, b = batches[i % len(batches)]
        t0 = time.perf_counter()
        step(a, b)
        sync(device)
        return time.perf_counter() - t0

    warm = [one(i) for i in range(plan.warmup)]
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < plan.max_iters and (len(times) < plan.min_iters or time.perf_counter() - start < plan.seconds):
        times.append(one(plan.warmup + len(times)))
    return warm, times


def rate_record(warm: list[float], times: list[float], batch: int) -> dict:
    med = statistics.median(times)
    return {
        "it_per_s": 1.0 / med,
        "images_per_s": batch / med,
        "ms_per_it_median": med * 1000.0,
        "iters": len(times),
        "batch": batch,
        "first_step_s": warm[0] if warm else None,
        # what the warm-up steps took beyond steady state: compilation, cuDNN autotuning
        "warmup_extra_s": max(0.0, sum(warm) - len(warm) * med),
    }


def train_baseline(plan: Plan, device) -> dict:
    """The plain fp32 reference loop on the networks and optimisers of one of our models."""
    from reference_loop import reference_step  # next to this script (on sys.path when run as one)

    model = build_model(gan_params(plan, device), device)

    def step(a, b):
        reference_step(model, a.to(device).float().div(127.5).sub(1), b.to(device).float().div(127.5).sub(1))

    reset_peak(device)
    warm, times = timed_steps(step, make_batches(1, plan.arch["crop_size"]), plan, device)
    return dict(
        rate_record(warm, times, 1), precision="fp32", channels_last=False, compile=False, **peak_memory(device)
    )


def train_ours(
    plan: Plan, device, precision: str, channels_last: bool, compile_: bool, batch: int, model_name="cyclegan"
) -> dict:
    """Our training step (``CycleGAN.step``, or ``CUT.step`` for cut / fastcut) in one precision, memory
    format and batch size."""
    reason = unsupported(precision, device)
    if reason:
        raise Skipped(reason)
    with compile_backend(plan.compile_backend):
        model = build_model(gan_params(plan, device, precision, channels_last, compile_, batch, model_name), device)

    def step(a, b):
        model.step(model.prepare(a), model.prepare(b))

    reset_peak(device)
    warm, times = timed_steps(step, make_batches(batch, plan.arch["crop_size"]), plan, device)
    rec = dict(rate_record(warm, times, batch), precision=precision, compile=compile_, **peak_memory(device))
    rec["model"] = model_name
    # channels_last is applied on CUDA only (the package's rule); record what ran
    rec.update(channels_last=model.channels_last, channels_last_requested=channels_last)
    if compile_:
        rec.update(compile_s=rec["warmup_extra_s"], compile_backend=plan.compile_backend or "inductor")
    return rec


def compile_backend(backend: str | None):
    """While the model is built, ``torch.compile`` with ``backend`` (None: as the package calls it)."""
    import contextlib
    import functools
    from unittest import mock

    import torch

    if backend is None:
        return contextlib.nullcontext()
    return mock.patch.object(torch, "compile", functools.partial(torch.compile, backend=backend))


def train_variants(plan: Plan) -> dict:
    """label -> (precision, channels_last, compile, batch) of every variant of our step."""
    variants = {k: (*v, 1) for k, v in TRAIN_VARIANTS.items()}
    for b in plan.batches:
        variants[f"ours bf16 channels_last batch {b}"] = ("bf16", True, False, b)
    return variants


def measure_train(check: Check) -> dict:
    from deepsnow.gan import networks

    plan, device = check.plan, check.device
    arch = networks.Architecture.from_params(gan_params(plan, device))
    size = dict(plan.arch, G_parameters=networks.count_parameters(networks.build_generator(arch)))
    size["D_parameters"] = networks.count_parameters(networks.build_discriminator(arch))
    runs = {"baseline fp32": check.run("train/baseline fp32", train_baseline, plan, device)}
    for label, variant in train_variants(plan).items():
        runs[label] = check.run(f"train/{label}", train_ours, plan, device, *variant)
    for label, (model, precision, channels_last) in CUT_VARIANTS.items():
        runs[label] = check.run(f"train/{label}", train_ours, plan, device, precision, channels_last, False, 1, model)
    add_train_ratios(runs)
    return {"size": size, "variants": runs}


def add_train_ratios(runs: dict) -> None:
    """cycleGAN variants: images/s over the baseline's (batches differ); CUT / FastCUT: it/s over the
    cycleGAN step's of the same precision and memory format."""
    base = runs["baseline fp32"]
    for label, rec in runs.items():
        if rec["status"] != "ok" or label == "baseline fp32":
            continue
        if label in CUT_VARIANTS:
            peer = runs[CYCLEGAN_PEER[CUT_VARIANTS[label][1:]]]
            if peer["status"] == "ok":
                rec["ratio_vs_cyclegan"] = rec["it_per_s"] / peer["it_per_s"]
        elif base["status"] == "ok":
            rec["ratio_vs_baseline"] = rec["images_per_s"] / base["images_per_s"]


# -- numerics: loss traces per precision, deterministic mode ------------------------------------


def loss_trace(plan: Plan, device, precision: str, iters: int, model_name: str = "cyclegan"):
    """``(iters, n_losses)`` float64 losses of our step from seed 0 on fixed batches (channels_last as in
    training)."""
    import torch

    reason = unsupported(precision, device)
    if reason:
        raise Skipped(reason)
    model = build_model(gan_params(plan, device, precision, channels_last=True, model=model_name), device)
    rows = [model.step(model.prepare(a), model.prepare(b)) for a, b in make_batches(1, plan.arch["crop_size"], iters)]
    return torch.stack(rows).cpu().double()


def trace_record(plan: Plan, device, precision: str, model_name: str = "cyclegan") -> dict:
    iters = plan.trace_iters if model_name == "cyclegan" else plan.cut_trace_iters
    return {"losses": loss_trace(plan, device, precision, iters, model_name).tolist()}


def max_rel_diff(losses: list, reference: list, names=None) -> dict:
    """Largest |x - x_fp32| / |x_fp32| over the trace, overall and per loss term (``names``: the
    model's loss names, cycleGAN's by default)."""
    from deepsnow.gan.model import LOSS_NAMES

    per = {}
    for j, name in enumerate(names or LOSS_NAMES):
        diffs = [abs(x[j] - r[j]) / max(abs(r[j]), 1e-8) for x, r in zip(losses, reference)]
        per[name] = max(diffs)
    return {"max": max(per.values()), "per_loss": per}


def deterministic_run(plan: Plan, device, model_name: str = "cyclegan") -> dict:
    """``deterministic: true`` as training sets it (runtime.configure): does it run, are two runs
    bit-identical, and which ops warn (on CUDA it only warns) or raise."""
    import torch

    from deepsnow.gan import runtime

    prev, env_before = runtime.save_global_state(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    rec = {"runs": True, "error": None}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runtime.configure(device, None, deterministic=True, cudnn_benchmark=False)
            try:
                t1, t2 = (loss_trace(plan, device, "fp32", plan.det_iters, model_name) for _ in range(2))
                rec["bit_identical"] = bool(torch.equal(t1, t2))
            except RuntimeError as exc:
                rec.update(runs=False, error=clip(f"{type(exc).__name__}: {exc}"), bit_identical=None)
    finally:
        runtime.restore_global_state(prev)
        if env_before is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    messages = sorted({str(w.message)[:400] for w in caught})
    ops = {m.group(1) for text in messages + [rec["error"] or ""] for m in NONDETERMINISTIC_OP.finditer(text)}
    return dict(rec, warnings=messages[:20], nondeterministic_ops=sorted(ops))


def measure_numerics(check: Check) -> dict:
    plan, device = check.plan, check.device
    traces = {p: check.run(f"numerics/{p} trace", trace_record, plan, device, p) for p in ("fp32", "bf16", "fp16")}
    diffs = {}
    for p in ("bf16", "fp16"):
        ok = traces[p]["status"] == "ok" and traces["fp32"]["status"] == "ok"
        diffs[p] = max_rel_diff(traces[p]["losses"], traces["fp32"]["losses"]) if ok else None
    det = check.run("numerics/deterministic", deterministic_run, plan, device)
    out = {"iterations": plan.trace_iters, "traces": traces, "max_rel_diff_vs_fp32": diffs, "deterministic": det}
    return dict(out, cut=cut_numerics(check))


def cut_numerics(check: Check) -> dict:
    """CUT's loss traces in fp32 and bf16, their largest relative difference, and its deterministic run."""
    from deepsnow.gan.cut_model import LOSS_NAMES

    plan, device = check.plan, check.device
    traces = {p: check.run(f"numerics/cut {p} trace", trace_record, plan, device, p, "cut") for p in ("fp32", "bf16")}
    ok = all(t["status"] == "ok" for t in traces.values())
    diff = max_rel_diff(traces["bf16"]["losses"], traces["fp32"]["losses"], LOSS_NAMES) if ok else None
    det = check.run("numerics/cut deterministic", deterministic_run, plan, device, "cut")
    return {"iterations": plan.cut_trace_iters, "traces": traces, "max_rel_diff_vs_fp32": {"bf16": diff},
            "deterministic": det}


# -- embed: feature extractors ------------------------------------------------------------------


def extractor_for(plan: Plan, name: str, cache: dict):
    from deepsnow.features import build_extractor

    if name not in cache:
        options = {"weights": "random"} if name == "inception" else {"weights": "random", "size": plan.resnet_size}
        cache[name] = build_extractor(name, options, seed=0)
    return cache[name]


def embed_rate(plan: Plan, device, name: str, precision: str, cache: dict) -> dict:
    """Images/s of ``embed_images`` (the embed stage's loop) with one extractor, under autocast for bf16."""
    import numpy as np

    from deepsnow.features import embed_images
    from deepsnow.gan import runtime

    reason = unsupported(precision, device)
    if reason:
        raise Skipped(reason)
    ext = extractor_for(plan, name, cache)
    px, batch = plan.embed_px[name], plan.embed_batch
    images = np.random.default_rng(0).integers(0, 256, (plan.embed_images, px, px, 3), dtype=np.uint8)
    with runtime.autocast(device, precision):
        embed_images(images[:batch], ext, batch_size=batch, device=str(device))  # warm-up
        sync(device)
        reset_peak(device)
        t0 = time.perf_counter()
        embed_images(images, ext, batch_size=batch, device=str(device))
        sync(device)
        seconds = time.perf_counter() - t0
    rec = {"images_per_s": len(images) / seconds, "images": len(images), "batch": batch, "px": px}
    return dict(rec, precision=precision, weights=ext.weights, timed_s=seconds, **peak_memory(device))


def measure_embed(check: Check) -> dict:
    cache: dict = {}
    out = {}
    for name in ("inception", "resnet50"):
        for p in ("fp32", "bf16"):
            out[f"{name} {p}"] = check.run(f"embed/{name} {p}", embed_rate, check.plan, check.device, name, p, cache)
    return out


# -- translate: a whole scene, tile by tile -----------------------------------------------------


def translate_rate(plan: Plan, device, precision: str, norm: str = "tile") -> dict:
    """Mpx/s of ``translate_array`` (the translate command's tiling and blending) with a random generator;
    with ``norm="scene"`` (seam-free) the time includes the pass that measures the scene's statistics."""
    import numpy as np
    import torch

    from deepsnow.gan import networks, runtime
    from deepsnow.gan.translate import translate_array

    reason = unsupported(precision, device)
    if reason:
        raise Skipped(reason)
    torch.manual_seed(0)
    net = networks.build_generator(networks.Architecture(**plan.translate_arch)).to(device)
    rgb = np.random.default_rng(0).integers(0, 256, (plan.scene, plan.scene, 3), dtype=np.uint8)
    with runtime.autocast(device, precision):
        translate_array(net, rgb[: plan.tile, : plan.tile], plan.tile, plan.overlap, device, norm=norm)  # warm-up
        sync(device)
        reset_peak(device)
        t0 = time.perf_counter()
        _, n_tiles = translate_array(net, rgb, plan.tile, plan.overlap, device, norm=norm)
        sync(device)
        seconds = time.perf_counter() - t0
    rec = {"mpx_per_s": plan.scene**2 / 1e6 / seconds, "scene_px": plan.scene, "tiles": n_tiles, "timed_s": seconds}
    return dict(rec, tile=plan.tile, overlap=plan.overlap, precision=precision, norm=norm, **peak_memory(device))


def measure_translate(check: Check) -> dict:
    out = {p: check.run(f"translate/{p}", translate_rate, check.plan, check.device, p) for p in ("fp32", "bf16")}
    # the default of deepsnow translate and the synthesize stage: whole-scene instance-norm
    # statistics, in fp32 as they run
    out["seam_free"] = check.run("translate/seam_free", translate_rate, check.plan, check.device, "fp32", "scene")
    return out


# -- workflow: the tiny test config end to end --------------------------------------------------


def copy_workflow(dest: Path) -> Path:
    """What a workflow run needs (not results, not the venv), as tests/helpers.py copies it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("workflow", "configs", "envs", "profiles"):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(REPO / name, dest / name, ignore=ignore, dirs_exist_ok=True)
    return dest


def expected_table(work: Path, override: dict) -> dict:
    """The metrics table the config implies: its columns, and one row per saved epoch and direction."""
    import yaml

    from deepsnow.config import merge_config, validate_config
    from deepsnow.gan.schedule import saved_epochs
    from deepsnow.metrics.load import DIRECTIONS
    from deepsnow.metrics.table import PER_EXTRACTOR_PREFIXES, PRDC_PREFIXES, table_columns

    cfg = yaml.safe_load((work / "config.yaml").read_text())
    merge_config(cfg, yaml.safe_load((work / "configs" / "test.yaml").read_text()))
    cfg = validate_config(merge_config(cfg, override))
    rows = sorted((e, d) for e in saved_epochs(cfg["gan"]) for d in DIRECTIONS)
    # fd_/cd_ and precision_/recall_/density_/coverage_<extractor> of every configured extractor,
    # in the config's order
    prefixes = (*PER_EXTRACTOR_PREFIXES, *PRDC_PREFIXES)
    per_extractor = {f"{p}_{x}": None for x in cfg["features"]["extractors"] for p in prefixes}
    return {"run": cfg["run"], "columns": list(table_columns([per_extractor])), "rows": rows}


def table_shape(path: Path) -> dict:
    import csv

    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = sorted((int(r["epoch"]), r["direction"]) for r in reader)
        return {"columns": list(reader.fieldnames or []), "rows": rows}


def snakemake_command(plan: Plan, cores: int) -> list[str]:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    # targets before --configfile, which takes every word after it
    config = ("--configfile", "configs/test.yaml", "gpu_check.yaml")
    # --show-failed-logs: a failed job's log goes into the recorded error
    return [exe, *plan.workflow_targets, "--cores", str(cores), "--show-failed-logs", *plan.workflow_args, *config]


def workflow_env(quick: bool) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if quick:
        env["OMP_NUM_THREADS"] = "1"  # see QUICK.threads
    return env


def run_group(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; past ``timeout`` kill the whole group (Snakemake and its
    jobs, which would otherwise go on using the GPU) and raise."""
    import signal

    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise RuntimeError(f"snakemake killed after {timeout:.0f} s (the time budget):\n{stderr[-6000:]}") from None
    return proc.returncode, stderr


def workflow_run(check: Check, work: Path) -> dict:
    """Run the test config in ``work`` with the GPU sections on this device; compare its table's shape."""
    import yaml

    from deepsnow.config import merge_config

    dev = str(check.device)
    devices = {"gan": {"device": dev}, "features": {"device": dev}}
    override = merge_config(copy.deepcopy(check.plan.workflow_override), devices)
    if work.exists() and any(work.iterdir()):
        raise RuntimeError(f"--workdir {work} is not empty: a finished run there would make the timing meaningless")
    copy_workflow(work)
    (work / "gpu_check.yaml").write_text(yaml.safe_dump(override))
    cmd = snakemake_command(check.plan, 2 if check.args.quick else (os.cpu_count() or 2))
    timeout = max(60.0, check.left() + check.plan.workflow_grace_s)
    t0 = time.perf_counter()
    returncode, stderr = run_group(cmd, work, workflow_env(check.args.quick), timeout)
    wall = time.perf_counter() - t0
    if returncode != 0:
        raise RuntimeError(f"snakemake exited {returncode} after {wall:.0f} s:\n{stderr[-6000:]}")
    want = expected_table(work, override)
    got = table_shape(work / "results" / want["run"] / "metrics" / "metrics.csv")
    columns_match, rows_match = got["columns"] == want["columns"], got["rows"] == want["rows"]
    return {
        "wall_s": wall,
        "device": dev,
        **train_log(work / "results" / want["run"] / "logs" / "train.log"),
        "targets": list(check.plan.workflow_targets) or ["all (default target)"],
        "command": " ".join(cmd),
        "columns_match": columns_match,
        "rows_match": rows_match,
        "shape_matches": columns_match and rows_match,
        "rows": len(got["rows"]),
        "expected_rows": len(want["rows"]),
        "columns": len(got["columns"]),
        "expected_columns": len(want["columns"]),
    }


def train_log(path: Path) -> dict:
    """The device the train job says it trained on, and the warnings in its log (deterministic mode on CUDA)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    m = re.search(r"training cycleGAN on (\S+)", text)
    warned = [line.strip()[:300] for line in text.splitlines() if "Warning" in line]
    return {"train_ran_on": m.group(1) if m else None, "train_log_warnings": warned[:10]}


def measure_workflow(check: Check) -> dict:
    if check.args.workdir:
        return check.run("workflow", workflow_run, check, Path(check.args.workdir))
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        return check.run("workflow", workflow_run, check, Path(tmp) / "wf")


# -- the whole run, the JSON and the summary ----------------------------------------------------


def finite(obj):
    """``obj`` with non-finite floats as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def save(result: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(finite(result), indent=1) + "\n")
    tmp.replace(path)


MEASURES = {
    "train": measure_train,
    "numerics": measure_numerics,
    "embed": measure_embed,
    "translate": measure_translate,
    "workflow": measure_workflow,
}


def run_all(args, plan: Plan, device) -> dict:
    import torch

    from deepsnow.gan import runtime

    # as training configures it (gan.cudnn_benchmark: true); the deterministic check sets its own
    runtime.configure(device, args.threads or plan.threads, deterministic=False, cudnn_benchmark=True)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    check = Check(args, plan, device)
    result = {"meta": {"argv": sys.argv[1:], "quick": args.quick, "plan": plan.__dict__, "started": time.time()}}
    result["device"] = check.run("device", device_info, args.device, device, budgeted=False)  # names the machine
    for name in args.sections:
        if name != "device":
            result[name] = MEASURES[name](check)
            result["meta"]["total_s"] = check.elapsed()
            save(result, args.output)
    result["meta"]["total_s"] = check.elapsed()
    save(result, args.output)
    return result


def _cell(rec: dict, key: str, fmt: str) -> str:
    if rec.get("status") != "ok":
        return rec.get("status", "?")
    v = rec.get(key)
    return "-" if v is None else format(v, fmt)


def summary_lines(result: dict) -> list[str]:
    d = result.get("device", {})
    lines = [
        f"device: {d.get('resolved')} (auto -> {d.get('auto_resolves_to')}), {d.get('gpu_name') or 'CPU'}, "
        f"{d.get('gpu_memory_gb') or '-'} GB, torch {d.get('torch')}, CUDA {d.get('cuda_version')}, "
        f"cuDNN {d.get('cudnn_version')}"
    ]
    train = result.get("train", {}).get("variants", {})
    if train:
        lines.append(f"train {result['train']['size']}:")
        lines.append(
            f"  {'variant':<36s} {'it/s':>9s} {'img/s':>9s} {'x base':>7s} {'x cycleGAN':>10s} {'peak MB':>9s} "
            f"{'compile s':>9s}"
        )
    for label, rec in train.items():
        mem = rec.get("peak_gpu_mb") if rec.get("peak_gpu_mb") is not None else rec.get("peak_rss_mb")
        lines.append(
            f"  {label:<36s} {_cell(rec, 'it_per_s', '9.3f'):>9s} {_cell(rec, 'images_per_s', '9.3f'):>9s} "
            f"{_cell(rec, 'ratio_vs_baseline', '7.2f'):>7s} {_cell(rec, 'ratio_vs_cyclegan', '10.2f'):>10s} "
            f"{'-' if mem is None else format(mem, '9.0f'):>9s} {_cell(rec, 'compile_s', '9.1f'):>9s}"
        )
    return lines + _numerics_lines(result) + _rates_lines(result)


def _numerics_lines(result: dict) -> list[str]:
    num = result.get("numerics")
    if not num:
        return []
    lines = [f"numerics ({num['iterations']} it): max relative loss difference vs fp32: {_diffs_text(num)}"]
    lines.append(f"deterministic: {_det_text(num['deterministic'])}")
    if "cut" in num:
        cut = num["cut"]
        lines.append(f"CUT ({cut['iterations']} it): max relative loss difference vs fp32: {_diffs_text(cut)}")
        lines.append(f"CUT deterministic: {_det_text(cut['deterministic'])}")
    return lines


def _diffs_text(num: dict) -> str:
    return ", ".join(
        f"{p} {v['max']:.3g}" if v else f"{p} {num['traces'][p]['status']}"
        for p, v in num["max_rel_diff_vs_fp32"].items()
    )


def _det_text(det: dict) -> str:
    if det["status"] != "ok":
        return det["status"]
    return f"runs {det['runs']}, bit-identical {det.get('bit_identical')}, ops {det['nondeterministic_ops'] or 'none'}"


def _rates_lines(result: dict) -> list[str]:
    lines = []
    for label, rec in result.get("embed", {}).items():
        lines.append(f"embed {label:<16s} {_cell(rec, 'images_per_s', '.1f')} images/s")
    for label, rec in result.get("translate", {}).items():
        lines.append(f"translate {label:<12s} {_cell(rec, 'mpx_per_s', '.3f')} Mpx/s")
    wf = result.get("workflow")
    if wf:
        text = (
            wf["status"]
            if wf["status"] != "ok"
            else (
                f"{wf['wall_s']:.0f} s on {wf['device']}, table shape matches: {wf['shape_matches']} "
                f"({wf['rows']} rows x {wf['columns']} columns, "
                f"expected {wf['expected_rows']} x {wf['expected_columns']})"
            )
        )
        lines.append(f"workflow: {text}")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Measure every CUDA path of deepsnow in one short run (<= 7 min on one GPU): training step "
        "throughput per precision, loss numerics, deterministic mode, embedding, scene translation and the tiny "
        "workflow end to end. Writes one JSON and prints a summary. See docs/performance.md.",
    )
    p.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--quick", action="store_true", help="tiny sizes: the same code paths in about a minute on a CPU")
    p.add_argument("--output", type=Path, default=Path("gpu_check.json"), help="JSON file (default gpu_check.json)")
    p.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to measure (default: all)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; quick 1)")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds after which measurements are skipped " "(default 360, quick 240)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the workflow's scratch copy here (default: a " "temporary folder, removed)",
    )
    p.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="PATTERN",
        help="make the measurements whose names match (fnmatch, e.g. 'train/*compile') raise: "
        "for testing that a failure is recorded and the rest still runs",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepsnow import DeepsnowError
    from deepsnow.gan import runtime

    try:
        device = runtime.resolve_device(args.device, key="--device")
    except DeepsnowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run_all(args, QUICK if args.quick else FULL, device)
    print("\n" + "\n".join(summary_lines(result)))
    print(f"\n{result['meta']['total_s']:.0f} s in all; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
