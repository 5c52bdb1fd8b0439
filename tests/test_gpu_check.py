"""benchmarks/gpu_check.py on CPU at quick sizes: every section measured, a failure recorded, the rest run.

The script exists for the first minutes on a GPU; running it here keeps its code paths (the same ones
the GPU run takes, at tiny sizes) from rotting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, env_with_venv

SCRIPT = REPO / "benchmarks" / "gpu_check.py"
INJECTED = "translate/bf16"  # the measurement made to fail (--fail): cheap, and not the last one


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise ValueError(f"non-finite number {constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("gpu_check") / "x.json"
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--output", str(out), "--fail", INJECTED]
    proc = subprocess.run(cmd, env=env_with_venv(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return _strict_json(out.read_text()), proc.stdout


def test_help_works():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--output" in proc.stdout


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cmd = [sys.executable, str(SCRIPT), "--device", "cuda", "--quick", "--output", str(tmp_path / "x.json")]
    proc = subprocess.run(cmd, env=env_with_venv(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_every_section_is_written(quick_run):
    result, stdout = quick_run
    assert {"device", "train", "numerics", "embed", "translate", "workflow"} <= set(result)
    dev = result["device"]
    assert dev["status"] == "ok" and dev["resolved"] == "cpu" and dev["auto_resolves_to"] in ("cpu", "cuda")
    assert dev["torch"] and dev["gpu_name"] is None
    # the readable summary follows the progress lines
    assert "train/baseline fp32 ..." in stdout and "workflow: " in stdout


@pytest.mark.slow
def test_train_rates_and_skipped_precisions(quick_run):
    variants = quick_run[0]["train"]["variants"]
    for label in ("baseline fp32", "ours fp32", "ours bf16", "ours bf16 channels_last batch 8"):
        assert variants[label]["status"] == "ok", variants[label]
        assert variants[label]["it_per_s"] > 0 and variants[label]["peak_rss_mb"] > 0
    assert variants["ours fp32"]["ratio_vs_baseline"] > 0
    assert variants["ours bf16 channels_last batch 8"]["batch"] == 8
    # fp16 needs CUDA: recorded as skipped with the package's reason, not crashed
    assert variants["ours fp16"]["status"] == "skipped" and "CUDA" in variants["ours fp16"]["reason"]
    compiled = variants["ours bf16 channels_last compile"]
    assert compiled["status"] == "ok" and compiled["compile"] is True and compiled["compile_s"] >= 0
    for label in ("cut fp32", "cut bf16 channels_last", "fastcut fp32", "fastcut bf16 channels_last"):
        rec = variants[label]  # the one-sided models' steps, against cycleGAN's of the same precision
        assert rec["status"] == "ok" and rec["model"] == label.split()[0], rec
        assert rec["it_per_s"] > 0 and rec["ratio_vs_cyclegan"] > 0 and "ratio_vs_baseline" not in rec


@pytest.mark.slow
def test_numerics_traces_and_determinism(quick_run):
    num = quick_run[0]["numerics"]
    fp32 = num["traces"]["fp32"]
    assert fp32["status"] == "ok" and len(fp32["losses"]) == num["iterations"] == 20
    assert all(len(row) == 8 for row in fp32["losses"])
    assert num["max_rel_diff_vs_fp32"]["bf16"]["max"] >= 0
    assert num["traces"]["fp16"]["status"] == "skipped" and num["max_rel_diff_vs_fp32"]["fp16"] is None
    det = num["deterministic"]
    assert det["status"] == "ok" and det["runs"] is True and det["bit_identical"] is True  # CPU: bit-reproducible
    cut = num["cut"]  # CUT: its own 6 losses, traced and checked the same way
    assert len(cut["traces"]["fp32"]["losses"]) == cut["iterations"] > 0
    assert all(len(row) == 6 for row in cut["traces"]["fp32"]["losses"])
    assert set(cut["max_rel_diff_vs_fp32"]["bf16"]["per_loss"]) == {"G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y"}
    assert cut["deterministic"]["bit_identical"] is True


@pytest.mark.slow
def test_embed_and_translate_rates(quick_run):
    result = quick_run[0]
    for label in ("inception fp32", "inception bf16", "resnet50 fp32", "resnet50 bf16"):
        assert result["embed"][label]["status"] == "ok" and result["embed"][label]["images_per_s"] > 0
    assert result["translate"]["fp32"]["status"] == "ok" and result["translate"]["fp32"]["mpx_per_s"] > 0
    seam_free = result["translate"]["seam_free"]
    assert seam_free["status"] == "ok" and seam_free["norm"] == "scene" and seam_free["mpx_per_s"] > 0


@pytest.mark.slow
def test_an_injected_failure_is_recorded_and_the_rest_runs(quick_run):
    result, stdout = quick_run
    failed = result["translate"]["bf16"]
    assert failed["status"] == "error" and "injected failure" in failed["error"] and failed["traceback"]
    assert f"ERROR RuntimeError: injected failure (--fail matches '{INJECTED}')" in stdout
    assert result["workflow"]["status"] == "ok"  # measured after the failure


@pytest.mark.slow
def test_workflow_table_has_the_shape_the_config_implies(quick_run):
    wf = quick_run[0]["workflow"]
    assert wf["status"] == "ok", wf
    assert wf["device"] == "cpu" and wf["train_ran_on"] == "cpu" and wf["wall_s"] > 0
    assert wf["shape_matches"] and wf["rows"] == wf["expected_rows"] > 0
    assert wf["columns"] == wf["expected_columns"] > 0
