"""The SLURM preflight (deepsnow.cluster, `deepsnow cluster-check`, the workflow's onstart) against a
fake `sinfo` on PATH that prints what a real one prints for `sinfo --noheader --Node
--format=%P|%N|%c|%m|%G|%l`. tests/test_slurm.py checks the same on a real single-node SLURM."""

from __future__ import annotations

import json
import re
import os
import subprocess
from pathlib import Path

import pytest

from helpers import BIN, REPO, copy_workflow, deepsnow, env_with_venv
from deepsnow import DeepsnowError
from deepsnow.cluster import Request, check, job_request, parse_gres, parse_minutes, parse_sinfo

# A small site: 2-CPU GPU nodes (the cluster), a bigger CPU partition, a 1-day GPU limit.
SITE = """\
cpu*|c01|16|64000|(null)|7-00:00:00
cpu*|c02|16|64000|(null)|7-00:00:00
gpu|g01|2|64000|gpu:1|1-00:00:00
gpu|g02|2|64000|gpu:a100:2(S:0-1),mps:100|1-00:00:00
short|c01|16|64000|(null)|30:00
"""


def fake_sinfo(folder: Path, text: str = SITE) -> Path:
    """A `sinfo` that prints `text` (and fails on any option it does not expect), first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sinfo.txt").write_text(text)
    script = folder / "sinfo"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "--noheader --Node --format=%P|%N|%c|%m|%G|%l" ] || { echo "unexpected: $*" >&2; exit 1; }\n'
        f'cat "{folder / "sinfo.txt"}"\n'
    )
    script.chmod(0o755)
    # and an sbatch that records being called: nothing may be submitted
    sbatch = folder / "sbatch"
    sbatch.write_text(f'#!/bin/sh\necho "$*" >> "{folder / "sbatch.calls"}"\nexit 1\n')
    sbatch.chmod(0o755)
    return folder


def env_with(folder: Path) -> dict:
    env = env_with_venv()
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    env["SNAKEMAKE_PROFILE"] = ""
    env.pop("DEEPSNOW_CLUSTER_CHECK", None)
    return env


def test_sinfo_output_is_read_per_partition():
    parts = parse_sinfo(SITE)
    assert sorted(parts) == ["cpu", "gpu", "short"]
    assert parts["cpu"].default and not parts["gpu"].default
    assert parts["cpu"].max_minutes == 7 * 24 * 60 and parts["short"].max_minutes == 30
    assert [(n.name, n.cpus, n.mem_mb, n.gpus) for n in parts["gpu"].nodes] == [
        ("g01", 2, 64000, {"": 1}),
        ("g02", 2, 64000, {"a100": 2}),
    ]
    assert parse_minutes("INFINITE") is None and parse_minutes("UNLIMITED") is None
    assert parse_minutes("2:00:00") == 120 and parse_minutes("1-12:00:00") == 36 * 60
    assert parse_minutes("30:30") == 31 and parse_minutes("45") == 45 and parse_minutes("2-0") == 48 * 60
    assert parse_gres("gpu:tesla:2,gpu:v100:1") == {"tesla": 2, "v100": 1} and parse_gres("(null)") == {}
    with pytest.raises(DeepsnowError, match="sinfo output line 1"):
        parse_sinfo("cpu*|c01|16|64000\n")
    with pytest.raises(DeepsnowError, match="time limit 'soon'"):
        parse_sinfo("cpu*|c01|16|64000|(null)|soon\n")


def test_a_request_no_node_can_satisfy_is_one_line_naming_rule_request_and_limit():
    parts = parse_sinfo(SITE)
    ok = [
        Request("rule split", None, 1, 4000, runtime=60),  # default partition: cpu
        Request("rule train", "gpu", 2, 8000, gpus=1, runtime=1440),
        Request("rule embed_real", "gpu", 2, 8000, gpus=2, gpu_model="a100", runtime=60),
    ]
    assert check(ok, parts) == []
    bad = [
        Request("group eval (embed_samples, metrics_epoch)", "gpu", 6, 12000, gpus=1, runtime=480),
        Request("rule train", "gpu", 2, 8000, gpus=1, runtime=2880),
        Request("rule figure", None, 1, 128000, runtime=60),
        Request("rule embed_real", "gpu", 2, 8000, gpus=4, runtime=60),
        Request("rule metrics_pca", "a100", 1, 4000, runtime=60),
    ]
    problems = check(bad + bad[:1], parts)  # the same request twice: one line
    assert problems == [
        "group eval (embed_samples, metrics_epoch) asks for 6 CPUs, 12000 MB, 1 GPU, 480 min in partition "
        "'gpu': at most 2 CPUs per node (sinfo)",
        "rule embed_real asks for 2 CPUs, 8000 MB, 4 GPUs, 60 min in partition 'gpu': at most 2 GPUs per node (sinfo)",
        "rule figure asks for 1 CPU, 128000 MB, 60 min in partition 'cpu': at most 64000 MB per node (sinfo)",
        "rule metrics_pca asks for partition 'a100', which sinfo does not list (partitions: cpu, gpu, short)",
        "rule train asks for 2 CPUs, 8000 MB, 1 GPU, 2880 min in partition 'gpu': MaxTime 1-00:00:00 (1440 min) (sinfo)",
    ]
    # every resource fits some node, but no one node has all of it
    mixed = parse_sinfo("p*|n1|32|4000|(null)|INFINITE\np*|n2|4|256000|(null)|INFINITE\n")
    (line,) = check([Request("rule train", "p", 16, 64000)], mixed)
    assert "no node has all of it at once (n1: 32 CPUs, 4000 MB, 0 GPUs; n2: 4 CPUs, 256000 MB, 0 GPUs)" in line


def test_requests_are_what_the_slurm_plugin_submits():
    """threads -> --cpus-per-task unless cpus_per_task; mem_mb -> --mem, or mem_mb_per_cpu x CPUs;
    gpu -> --gpus (gpu_model), else gres gpu[:type]:N; runtime -> -t minutes."""
    r = job_request("rule train", 4, {"mem_mb": 8000, "gpu": 1, "runtime": 600, "slurm_partition": "gpu"})
    assert r == Request("rule train", "gpu", 4, 8000, 1, None, 600)
    r = job_request("rule x", 4, {"cpus_per_task": 8, "mem_mb_per_cpu": 1000, "gres": "gpu:a100:2", "runtime": 5})
    assert r == Request("rule x", None, 8, 8000, 2, "a100", 5)
    r = job_request("rule y", 1, {"mem_mb": "<TBD>", "gpu": 1, "gpu_model": "h100", "slurm_partition": "g"})
    assert r == Request("rule y", "g", 1, None, 1, "h100", None)


def test_cluster_check_refuses_a_saved_request_file_and_passes_one_that_fits(tmp_path: Path):
    fake = fake_sinfo(tmp_path / "bin")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "rule train", "partition": "gpu", "cpus": 8, "mem_mb": 8000, "gpus": 1, "runtime": 60}]))
    proc = subprocess.run(
        [str(BIN / "deepsnow"), "cluster-check", "--requests", str(bad)], env=env_with(fake), capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "rule train asks for 8 CPUs, 8000 MB, 1 GPU, 60 min in partition 'gpu': at most 2 CPUs per node" in proc.stderr
    bad.write_text(json.dumps([{"name": "rule train", "partition": "gpu", "cpus": 2, "mem_mb": 8000, "gpus": 1}]))
    proc = subprocess.run(
        [str(BIN / "deepsnow"), "cluster-check", "--requests", str(bad)], env=env_with(fake), capture_output=True, text=True
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
    bad.write_text("{not json")
    proc = deepsnow("cluster-check", "--requests", bad)
    assert proc.returncode == 2 and f"{bad}: not a requests file" in proc.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("cluster-check"))
    os.symlink(os.readlink(REPO / "slurm"), work / "slurm")
    return work


def test_a_gpu_request_in_a_partition_without_gpus_says_so_and_why():
    """A rule asking for a GPU that lands in a CPU-only partition (as after a command-line
    --set-resources replaced the profile's) is named with the likely cause, not as 'at most 0 GPUs'."""
    parts = parse_sinfo(SITE)
    (line,) = check([Request("rule embed_real", None, 2, 8000, gpus=1, runtime=60)], parts)
    assert line.startswith("rule embed_real asks for 2 CPUs, 8000 MB, 1 GPU, 60 min in partition 'cpu': no GPU on")
    assert "--set-resources replaces the profile's whole set-resources" in line and "at most 0" not in line
    (line,) = check([Request("rule train", "gpu", 2, 8000, gpus=2, gpu_model="v100", runtime=60)], parts)
    assert line.endswith("at most 0 v100 GPUs per node (sinfo)")  # GPUs there, not of that model


def test_a_command_line_set_resources_moving_gpu_rules_off_the_gpu_partition_is_refused(work, tmp_path):
    """Snakemake's command-line --set-resources replaces the profile's whole set-resources: with only
    train named, the other GPU rules fall to the default CPU partition still asking for a GPU.
    cluster-check names each of them; train itself, in the GPU partition, is fine."""
    fake = fake_sinfo(tmp_path / "bin", SITE.replace("|1-00:00:00", "|2-00:00:00"))
    cmd = [str(BIN / "deepsnow"), "cluster-check", "--", "--profile", "slurm", "--configfile", "configs/test.yaml",
           "--cores", "2", "--set-resources", "train:slurm_partition=gpu"]
    proc = subprocess.run(cmd, cwd=work, env=env_with(fake), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if " asks for " in line]
    named = {line.split(" asks for ")[0] for line in lines}
    assert {"rule embed_real", "group eval (embed_samples, metrics_epoch)"} <= named, proc.stderr
    assert all("in partition 'cpu': no GPU on any of its nodes" in line for line in lines), lines
    assert not any(line.startswith("rule train ") for line in lines)
    assert not (fake / "sbatch.calls").exists()


def test_cluster_check_builds_the_runs_jobs_and_finds_the_batch_too_big_for_a_2_cpu_gpu_node(work, tmp_path):
    """The issue's cluster: GPU nodes with 2 CPUs; the profile's cores: 8 makes the eval batch of
    configs/test.yaml ask for 6 CPUs. --cores 2 fits. Nothing is submitted either way."""
    fake = fake_sinfo(tmp_path / "bin")
    cmd = [str(BIN / "deepsnow"), "cluster-check", "--write-requests", str(tmp_path / "req.json"), "--"]
    args = ["--profile", "slurm", "--configfile", "configs/test.yaml"]
    proc = subprocess.run(cmd + args, cwd=work, env=env_with(fake), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if " asks for " in line]
    assert lines == [
        "group eval (embed_samples, metrics_epoch) asks for 6 CPUs, 12000 MB, 1 GPU, 660 min in partition 'gpu': "
        "at most 2 CPUs per node (sinfo)",
        "rule train asks for 2 CPUs, 8000 MB, 1 GPU, 2880 min in partition 'gpu': MaxTime 1-00:00:00 (1440 min) (sinfo)",
    ], proc.stderr
    names = {r["name"] for r in json.loads((tmp_path / "req.json").read_text())}
    assert {"rule simulate", "rule train", "rule embed_real", "group eval (embed_samples, metrics_epoch)"} <= names
    assert "rule all" not in names  # run locally, never submitted
    fake_sinfo(fake, SITE.replace("|1-00:00:00", "|2-00:00:00"))  # a 2-day GPU limit
    args += ["--cores", "2"]
    proc = subprocess.run(cmd + args, cwd=work, env=env_with(fake), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout
    assert not (fake / "sbatch.calls").exists()
    assert not (work / "results").exists()


def test_a_slurm_run_refuses_before_submitting_anything(work, tmp_path):
    """`snakemake --profile slurm` itself runs the check (onstart) and stops before any sbatch."""
    fake = fake_sinfo(tmp_path / "bin")
    cmd = [str(BIN / "snakemake"), "--profile", "slurm", "--configfile", "configs/test.yaml"]
    proc = subprocess.run(cmd, cwd=work, env=env_with(fake), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "2 SLURM request(s) that no node can ever satisfy; nothing was submitted" in out
    assert "group eval (embed_samples, metrics_epoch) asks for 6 CPUs" in out and "at most 2 CPUs per node" in out
    assert not (fake / "sbatch.calls").exists(), (fake / "sbatch.calls").read_text()
    # DEEPSNOW_CLUSTER_CHECK=off skips the check: the run goes on to submit (to a fake sbatch that fails)
    env = dict(env_with(fake), DEEPSNOW_CLUSTER_CHECK="off")
    fast = ["--slurm-init-seconds-before-status-checks", "1", "--retries", "0"]
    proc = subprocess.run(cmd + fast, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no node can ever satisfy" not in proc.stdout + proc.stderr
    assert (fake / "sbatch.calls").exists()


def test_the_profile_marks_what_a_site_must_size_and_the_docs_say_how():
    """cores, the CPU rules' memory and time, the batch size and the partitions/account are the
    `<- site` lines; docs/cluster.md says how to read them off sinfo and explains the account warning."""
    lines = (REPO / "profiles" / "slurm" / "config.yaml").read_text().splitlines()
    for start in ("cores:", "  slurm_partition: cpu", "  runtime:", "  mem_mb:", "  - eval=", "  # slurm_account:"):
        (line,) = [x for x in lines if x.startswith(start)]
        assert "<- site" in line, line
    doc = (REPO / "docs" / "cluster.md").read_text()
    assert 'sinfo -o "%P %c %m %G %l"' in doc and "deepsnow cluster-check" in doc
    assert "No account was given, not able to get a SLURM account via sacct" in doc


def test_the_tested_section_counts_the_jobs_the_test_run_submits(work):
    """docs/cluster.md 'Tested' names the number of SLURM jobs of configs/test.yaml (dry run)."""
    from test_workflow import job_counts

    from helpers import CLUSTER_TARGETS

    cmd = [str(BIN / "snakemake"), "--profile", "slurm", "-n", "--configfile", "configs/test.yaml", "--", *CLUSTER_TARGETS]
    proc = subprocess.run(cmd, cwd=work, env=env_with_venv(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    stats = job_counts(out)
    batches = len(re.findall(r"Group job eval ", out))
    n = sum(stats.values()) - stats.get("all", 0) - stats["embed_samples"] - stats["metrics_epoch"] + batches
    tested = (REPO / "docs" / "cluster.md").read_text().split("## Tested", 1)[1]
    assert re.findall(r"(\d+) jobs, each starting its own Snakemake", tested) == [str(n)], n


def test_cluster_check_says_why_when_snakemake_cannot_build_the_run(work, tmp_path):
    fake = fake_sinfo(tmp_path / "bin")
    cmd = [str(BIN / "deepsnow"), "cluster-check", "--", "--profile", "slurm", "--configfile", "no-such.yaml"]
    proc = subprocess.run(cmd, cwd=work, env=env_with(fake), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "deepsnow cluster-check: error: snakemake --profile slurm --configfile no-such.yaml failed" in proc.stderr
    assert "no-such.yaml" in proc.stderr.split("failed", 1)[1]  # Snakemake's own message follows
