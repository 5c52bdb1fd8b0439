"""Shared test helpers: paths, and running the workflow and the deepsnow command in a scratch copy.

Tests import them with ``from helpers import ...``; the fixtures are in conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from deepsnow.config import merge_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env_with_venv() -> dict:
    """The environment for subprocesses: this interpreter's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def copy_workflow(dest: Path) -> Path:
    """Copy what a workflow run needs (not results, not the venv) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("workflow", "configs", "envs", "profiles"):
        shutil.copytree(
            REPO / name,
            dest / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    return dest


def copy_run(run: Path, dest: Path, forget: tuple[str, ...] = ()) -> Path:
    """Copy a finished run (workflow, results and Snakemake's .snakemake records, file times kept)
    into ``dest``, then delete the results matching the ``forget`` globs (relative to ``dest``):
    the next run redoes those and what depends on them, as after a user deleted them."""
    shutil.copytree(run, dest, symlinks=True)
    for pattern in forget:
        for path in sorted(dest.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return dest


#: What the SLURM test runs of configs/test.yaml on the cluster (after the data half): the GPU rules
#: train, embed_real, embed_samples (batched with metrics_epoch) and synthesize, and CPU rules of each
#: kind (simcover, table, PCA, a figure); not the other figures, reports and testbed a local run
#: draws beside them, nor the once-per-run ladders (metric_validity: a GPU rule like embed_real, its
#: partition checked in the profile; two minutes of the suite): each SLURM job costs seconds of
#: scheduling and a Snakemake of its own.
CLUSTER_TARGETS = tuple(
    f"results/test/{p}"
    for p in ("metrics/metrics.csv", "metrics/pca.csv", "synthetic/sim02/snow.tif", "figures/figure3.png")
)

#: What a run's data half writes under results/<run>/ (simulator source), and the rules that write it.
DATA_HALF = ("scenes", "truth", "masks", "patches", "dataset", "logs", "benchmarks")
DATA_HALF_RULES = {"simulate", "download", "mask", "patches", "split"}


def copy_data_half(run: Path, dest: Path, name: str = "test", keep: tuple[str, ...] = ()) -> Path:
    """A copy of a finished run (copy_run) keeping only its data half (scenes to split, with the
    logs and benchmarks): a run of the same config in ``dest`` trains, embeds, measures and draws
    anew from the shared data, without simulating, masking and cutting patches again.
    Whole-run tests that need a fresh model, not fresh data, start here. ``keep``: globs (relative
    to results/<name>/) of later results to keep as well, e.g. what does not depend on the model."""
    results = Path("results") / name
    kept_dirs = {Path(k).parts[0] for k in keep}
    forget = []
    for path in sorted((run / results).iterdir()):
        if path.name in DATA_HALF:
            continue
        if path.name not in kept_dirs:
            forget.append(str(results / path.name))
            continue
        for f in sorted(q for q in path.rglob("*") if q.is_file()):
            if not any(f.relative_to(run / results).match(k) for k in keep):
                forget.append(str(results / f.relative_to(run / results)))
    return copy_run(run, dest, tuple(forget))


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with this venv's tools on PATH."""
    cmd = [str(BIN / "snakemake"), "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env_with_venv(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def deepsnow(*args: str, check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the deepsnow command line in a subprocess."""
    cmd = [sys.executable, "-m", "deepsnow.cli", *map(str, args)]
    proc = subprocess.run(cmd, env=env_with_venv(), capture_output=True, text=True, cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def merged_config(*files) -> dict:
    """config.yaml with the given config files merged over it, as Snakemake does (recursively)."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for f in files:
        merge_config(cfg, yaml.safe_load((REPO / f).read_text()))
    return cfg


def simd_level() -> str:
    """The CPU kernels' SIMD level here, as torch names it ('AVX512', 'AVX2', ...); numpy's kernels
    follow the same hardware. Float results pinned by hash (transcendental functions, FFTs, reductions,
    training) round differently between levels, so such pins are recorded per level."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def pinned(per_level: dict, what: str) -> dict:
    """The pins of this CPU's SIMD level (:func:`simd_level`); the test is skipped on a level none was
    recorded for, saying so."""
    import pytest

    level = simd_level()
    if level not in per_level:
        pytest.skip(f"{what}: pinned on {' and '.join(per_level)} CPUs only; this one's kernels are {level}")
    return per_level[level]
