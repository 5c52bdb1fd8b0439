"""Device, precision, threads and determinism settings shared by training and inference."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch

from deepsnow import DeepsnowError

log = logging.getLogger("deepsnow.gan")

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str | None, key: str = "gan.device") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda[:N]`` without that GPU -> :class:`DeepsnowError`."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeepsnowError(
                f"{key} is {spec!r} but no CUDA GPU is available here (torch.cuda.is_available() is False, "
                f"torch {torch.__version__}); set {key}: auto or cpu"
            )
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeepsnowError(f"{key} is {spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return dev
    raise DeepsnowError(f"{key}: unknown device {spec!r}; expected auto, cpu, cuda or cuda:N")


def check_precision(precision: str, device: torch.device, key: str = "gan.precision") -> torch.dtype:
    if precision not in PRECISIONS:
        raise DeepsnowError(f"{key}: unknown precision {precision!r}; expected one of {sorted(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise DeepsnowError(
            f"{key} is 'fp16', which needs a CUDA GPU (float16 autocast with a gradient scaler); "
            f"on {device.type} use 'bf16' (autocast to bfloat16) or 'fp32'"
        )
    return PRECISIONS[precision]


def autocast(device: torch.device, precision: str):
    """Autocast context for ``bf16``/``fp16``; a no-op for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


@dataclass
class GlobalState:
    deterministic: bool
    warn_only: bool
    threads: int
    cudnn_benchmark: bool
    cudnn_deterministic: bool


def save_global_state() -> GlobalState:
    return GlobalState(
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )


def restore_global_state(s: GlobalState) -> None:
    torch.use_deterministic_algorithms(s.deterministic, warn_only=s.warn_only)
    torch.set_num_threads(s.threads)
    torch.backends.cudnn.benchmark = s.cudnn_benchmark
    torch.backends.cudnn.deterministic = s.cudnn_deterministic


def configure(device: torch.device, threads: int | None, deterministic: bool, cudnn_benchmark: bool) -> None:
    """Threads, determinism and cuDNN flags for this process.

    ``deterministic`` turns on ``torch.use_deterministic_algorithms``. On CPU that
    makes training bit-reproducible; on CUDA some kernels the cycleGAN needs (the
    backward of reflection padding) have no deterministic version, so there it only
    warns and results may still differ in the last bits between runs.
    """
    if threads:
        torch.set_num_threads(int(threads))
    if deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = bool(cudnn_benchmark) and device.type == "cuda"
