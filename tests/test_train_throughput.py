"""benchmarks/train_throughput.py --compare-models: its help and its bad input (exit 2 naming the option).

Its measurements take minutes (docs/cut.md, "Cost per model"); the models' steps it times are the
ones tests/test_gan_cut_train.py and tests/test_gan_train.py check.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO, env_with_venv

SCRIPT = REPO / "benchmarks" / "train_throughput.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env_with_venv(), capture_output=True, text=True,
                          timeout=120)


def test_help_names_the_model_comparison():
    proc = run("--help")
    assert proc.returncode == 0 and "--compare-models" in proc.stdout and "--models" in proc.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--iters", "0"], ["--iters", "expected an integer >= 1"]),
        (["--models", "pix2pix"], ["--models", "invalid choice"]),
        (["--device", "gpu"], ["--device", "unknown device 'gpu'"]),
    ],
)
def test_bad_options_exit_2_naming_the_option(args, words):
    proc = run("--compare-models", *args)
    assert proc.returncode == 2, proc.stderr
    for word in words:
        assert word in proc.stderr


def test_help_names_the_band_comparison():
    proc = run("--help")
    assert proc.returncode == 0 and "--compare-bands" in proc.stdout and "--bands" in proc.stdout


def test_an_unknown_band_set_exits_2_naming_the_option():
    proc = run("--compare-bands", "--bands", "rgb", "swir")
    assert proc.returncode == 2 and "--bands" in proc.stderr and "invalid choice" in proc.stderr
