"""The workflow on a real single-node SLURM, through `snakemake --profile slurm`.

Installs Debian's slurm-wlm and munge when missing, starts munged, slurmctld and slurmd
from a scratch folder (tests/slurm_cluster.py), runs configs/test.yaml through the slurm
profile and checks: every job ran as a SLURM job, the GPU rules in the gpu partition with a
GPU requested and the CPU rules in cpu, per-epoch jobs batched, results equal to a local
run, a failing job retried and then failing the run with its log shown, and a metrics-only
config change submitting only metrics jobs. Needs root; skips otherwise. Stops only the
daemons it started, by pid.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import BIN, CLUSTER_TARGETS, DATA_HALF_RULES, REPO, copy_data_half, env_with_venv, merged_config
from slurm_cluster import SlurmCluster, SlurmUnavailable, install, is_root

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GPU_RULES = {"train", "embed_real", "embed_samples", "synthesize", "metric_validity"}
# metrics_epoch is CPU work, but it runs batched with embed_samples (group "eval"),
# and one SLURM job has one partition: the profile sends it to the GPU partition too.
GPU_PARTITION_RULES = GPU_RULES | {"metrics_epoch"}
# What a metrics-only config change may rerun: the metrics, and what is drawn from them.
METRICS_AND_AFTER = re.compile(r"metrics?_\w+|figure\w*|report\w*|all")
GROUPS = {"eval": {"embed_samples", "metrics_epoch"}}
# Fast status checks for a test (the profile keeps the plugin's cluster-friendly defaults);
# squeue, since this cluster has no accounting database for sacct.
TEST_FLAGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
    "--max-status-checks-per-second",
    "10",
    "--latency-wait",
    "10",
    "--verbose",
    "--cores",  # CPUs per batched job: the test node has 2
    "2",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not is_root():
        pytest.skip("the SLURM tests need root (to apt-get install slurm-wlm munge and to run slurmd)")
    try:
        install()
    except (SlurmUnavailable, subprocess.SubprocessError, OSError) as err:
        # As root the test is meant to run: a failed install is a failure, not a skip.
        pytest.fail(f"cannot install SLURM (apt-get install slurm-wlm munge): {err}")
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except (SlurmUnavailable, subprocess.SubprocessError, OSError) as err:
        c.stop()
        pytest.fail(f"cannot start a single-node SLURM: {err}")
    try:
        yield c
    finally:
        c.run("scancel", "--user", "root", check=False)
        c.stop()
        assert not c.alive(), f"daemons still running: {c.alive()}"


def cluster_snakemake(cluster, workdir: Path, *args: str, check: bool = True, timeout: int = 900):
    """`snakemake --profile slurm ...` in workdir, as a user types it from the repository root."""
    cmd = [str(BIN / "snakemake"), "--profile", "slurm", *TEST_FLAGS, *args]
    env = cluster.env(env_with_venv())
    env["SNAKEMAKE_PROFILE"] = ""  # no profile from the caller's environment
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    proc.seconds = time.monotonic() - start
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        tail = cluster.run("squeue", "--states=all", check=False).stdout
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-12000:]}\n{tail}")
    return proc


def slurm_jobs(cluster, after: int = 0) -> list[dict]:
    """Jobs slurmctld knows (finished ones stay MinJobAge): id, partition, comment, TRES."""
    out = cluster.run("scontrol", "show", "job", "--oneliner").stdout
    jobs = []
    for line in out.splitlines():
        if not line.strip() or "JobId=" not in line:
            continue
        fields = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
        if int(fields["JobId"]) > after:
            jobs.append(fields)
    return sorted(jobs, key=lambda j: int(j["JobId"]))


def last_job_id(cluster) -> int:
    return max((int(j["JobId"]) for j in slurm_jobs(cluster)), default=0)


def submitted(out: str) -> dict[str, str]:
    """{SLURM job id: log path} from the 'submitted with SLURM jobid' lines of Snakemake."""
    return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", out))


def job_rules(log: Path) -> set[str]:
    """Rules a SLURM job ran, from its log (the job step's Snakemake prints '(Rule: <name>)')."""
    text = log.read_text(errors="replace")
    return set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", text))


def job_stats(out: str) -> dict[str, int]:
    from test_workflow import job_counts

    return job_counts(out)


@pytest.fixture(scope="module")
def workdir(test_config_run, tmp_path_factory) -> Path:
    """The suite's local run of configs/test.yaml with everything after its data half deleted
    (helpers.copy_data_half), and the `slurm` link as in the repository root: the cluster run
    trains, embeds, measures and draws on SLURM from the shared scenes, masks, patches and split."""
    work = copy_data_half(test_config_run, tmp_path_factory.mktemp("slurm") / "wf")
    link = REPO / "slurm"
    assert link.is_symlink() and link.resolve() == (REPO / "profiles" / "slurm").resolve(), (
        "the repository root needs a `slurm` link to profiles/slurm for `snakemake --profile slurm`"
    )
    os.symlink(os.readlink(link), work / "slurm")
    return work


@pytest.fixture(scope="module")
def local_run(test_config_run) -> Path:
    """configs/test.yaml run locally (the suite's shared run, only read here)."""
    return test_config_run


@pytest.fixture(scope="module")
def cluster_run(cluster, workdir):
    proc = cluster_snakemake(cluster, workdir, "--configfile", "configs/test.yaml", "--", *CLUSTER_TARGETS)
    print(f"SLURM run of configs/test.yaml after its data half: {proc.seconds:.0f} s")
    ran = set(job_stats(proc.stdout + proc.stderr))
    assert ran and not ran & DATA_HALF_RULES, ran  # the shared data half is up to date, not redone
    return proc


def test_profile_is_found_by_name_and_has_no_default_profile():
    assert (REPO / "slurm" / "config.yaml").is_file()
    assert not (REPO / "profiles" / "default").exists(), "profiles/default would override every profile"
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert set(profile["set-resources"]) >= GPU_RULES
    assert {profile["set-resources"][r]["slurm_partition"] for r in GPU_RULES} == {"gpu"}
    assert profile["default-resources"]["slurm_partition"] == "cpu"


def test_a_200_epoch_run_submits_a_bounded_number_of_jobs(workdir, tmp_path):
    """Dry run (no cluster needed) of a 200-epoch config through the profile: batches."""
    cfg = yaml.safe_load((workdir / "configs" / "test.yaml").read_text())
    cfg["run"] = "epochs200"
    cfg["gan"].update(n_epochs=100, n_epochs_decay=100, save_every=1)
    path = tmp_path / "epochs200.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [str(BIN / "snakemake"), "--profile", "slurm", "-n", "--configfile", str(path)]
    proc = subprocess.run(cmd, cwd=workdir, env=env_with_venv(), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    stats = job_stats(out)
    n_extractors = len(merged_config("configs/test.yaml")["features"]["extractors"])  # 3: simcover too
    assert stats["train"] == 1 and stats["embed_samples"] == 200 * n_extractors and stats["metrics_epoch"] == 200
    profile = yaml.safe_load((workdir / "slurm" / "config.yaml").read_text())
    k = dict(item.split("=") for item in profile["group-components"])
    batches = {group: len(re.findall(rf"Group job {group} ", out)) for group in GROUPS}
    assert batches == {group: -(-200 // int(k[group])) for group in GROUPS}, batches
    grouped = sum(stats[r] for rules in GROUPS.values() for r in rules)
    n_slurm = sum(stats.values()) - stats["all"] - grouped + sum(batches.values())
    print(f"a 200-epoch run submits {n_slurm} SLURM jobs ({stats})")
    assert n_slurm <= 100


def test_every_job_runs_on_slurm_in_its_partition(cluster, workdir, cluster_run):
    out = cluster_run.stdout + cluster_run.stderr
    stats = job_stats(out)
    ids = submitted(out)
    jobs = {j["JobId"]: j for j in slurm_jobs(cluster)}
    assert ids and set(ids) <= set(jobs), (ids, jobs.keys())
    ran = set()
    for jobid, log in ids.items():
        log = workdir / log if not Path(log).is_absolute() else Path(log)
        assert log.exists(), f"no SLURM log {log}"
        rules = job_rules(log)
        assert rules, f"{log} names no rule:\n{log.read_text()[-3000:]}"
        ran |= rules
        job = jobs[jobid]
        assert job["JobState"] == "COMPLETED", job
        gpu = "gres/gpu" in job.get("TRES", "") or "gpu" in job.get("TresPerJob", "")
        if rules & GPU_PARTITION_RULES:
            assert job["Partition"] == "gpu", (rules, job)
        else:
            assert job["Partition"] == "cpu", (rules, job)
        assert gpu == bool(rules & GPU_RULES), (rules, job)
    # every rule of the run ran in some SLURM job (`all` has no command: it stays local)
    assert set(stats) - {"all"} == ran, (stats, ran)
    # the per-epoch jobs ran batched: one SLURM job per group (the test config has 2 epochs,
    # fewer than a batch), its log under group_<name>_<rules>
    logdir = workdir / ".snakemake" / "slurm_logs"
    for group, rules in GROUPS.items():
        logs = [log for log in ids.values() if f"/group_{group}_" in log]
        assert len(logs) == 1, (group, sorted(ids.values()))
        assert job_rules(workdir / logs[0]) == rules
        assert not any((logdir / f"rule_{r}").exists() for r in rules)
    grouped = sum(stats[r] for rules in GROUPS.values() for r in rules)
    assert grouped > len(GROUPS)  # more per-epoch jobs than batches
    assert len(ids) == sum(stats.values()) - stats.get("all", 0) - grouped + len(GROUPS)


def rows(path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_cluster_results_equal_a_local_run(workdir, cluster_run, local_run):
    from deepsnow.io import load_npz

    a, b = workdir / "results" / "test", local_run / "results" / "test"
    # deterministic simcover training from the same split: the same weights, so the same file bytes
    assert (a / "features" / "simcover.pt").read_bytes() == (b / "features" / "simcover.pt").read_bytes()
    # deterministic training: the same losses, epoch by epoch (not the same seconds)
    timing = {"seconds", "it_per_s"}
    la, lb = rows(a / "train" / "losses.csv"), rows(b / "train" / "losses.csv")
    assert [{k: v for k, v in r.items() if k not in timing} for r in la] == [
        {k: v for k, v in r.items() if k not in timing} for r in lb
    ]
    for e in sorted(p.name for p in (b / "samples").glob("epoch_*.npz")):
        x, y = load_npz(a / "samples" / e), load_npz(b / "samples" / e)
        for key in y:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"samples/{e}[{key}]")

    ra, rb = rows(a / "metrics" / "metrics.csv"), rows(b / "metrics" / "metrics.csv")
    assert len(ra) == len(rb) and ra[0].keys() == rb[0].keys()
    for x, y in zip(ra, rb):
        for key in y:
            try:
                fx, fy = float(x[key]), float(y[key])
            except ValueError:
                assert x[key] == y[key], key
                continue
            assert np.isclose(fx, fy, rtol=1e-6, atol=1e-9, equal_nan=True), (key, x[key], y[key])


def test_metrics_change_submits_only_metrics_jobs(cluster, workdir, cluster_run, tmp_path):
    changed = yaml.safe_load((workdir / "configs" / "test.yaml").read_text())
    changed["metrics"]["rf_repeats"] = 4
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(yaml.safe_dump(changed))
    # to the metrics table: what depends on it (figures, reports) is "metrics and after" anyway
    table = "results/test/metrics/metrics.csv"
    dry = cluster_snakemake(cluster, workdir, "-n", "--configfile", str(cfg), "--", table)
    dry_out = dry.stdout + dry.stderr
    assert "params" in dry_out.lower()  # the reasons name the changed params
    planned = job_stats(dry_out)
    assert all(METRICS_AND_AFTER.fullmatch(r) for r in planned), planned
    assert planned.get("metrics_epoch") and planned.get("metrics_table"), planned
    before = last_job_id(cluster)
    proc = cluster_snakemake(cluster, workdir, "--configfile", str(cfg), "--", table)
    out = proc.stdout + proc.stderr
    new = slurm_jobs(cluster, after=before)
    ids = submitted(out)
    assert new and {j["JobId"] for j in new} == set(ids)
    ran = set()
    for log in ids.values():
        ran |= job_rules(workdir / log)
    assert all(METRICS_AND_AFTER.fullmatch(r) for r in ran) and "metrics_epoch" in ran, ran
    assert ran == set(planned) - {"all"}, (ran, planned)


def test_failing_job_is_retried_then_fails_the_run_with_its_log(cluster, workdir, cluster_run):
    test_a = workdir / "results" / "test" / "dataset" / "testA.npz"
    backup = test_a.with_suffix(".bak")
    shutil.copy2(test_a, backup)
    try:
        test_a.write_bytes(b"this is not an npz file\n")
        before = last_job_id(cluster)
        proc = cluster_snakemake(
            cluster,
            workdir,
            "--configfile",
            "configs/test.yaml",
            "--forcerun",
            "embed_real",
            "--",
            "results/test/features/real_inception.npz",
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-5000:]
        new = slurm_jobs(cluster, after=before)
        # retries: 1 in the profile, so two SLURM jobs (attempts) for the one job, both failed
        assert len(new) == 2, new
        assert all(j["JobState"] == "FAILED" for j in new), new
        assert all(j["Partition"] == "gpu" for j in new), new
        assert out.count("Trying to restart job") == 1, out[-5000:]
        # --show-failed-logs: the rule's log (the traceback of deepsnow embed) is in the output
        log = workdir / "results" / "test" / "logs" / "embed" / "real_inception.log"
        last_line = log.read_text().strip().splitlines()[-1]
        assert last_line and last_line in out, (last_line, out[-5000:])
    finally:
        shutil.move(backup, test_a)


def test_an_oversized_profile_is_refused_before_anything_is_submitted(cluster, workdir, tmp_path):
    """The SLURM preflight (deepsnow.cluster, run by the workflow's onstart) on the real cluster: a
    profile asking for more CPUs (the eval batch) and memory (train) than the node has stops
    `snakemake --profile` in seconds, before any sbatch, one line per request naming the rule,
    what it asks and the partition's limit (from the real sinfo)."""
    profile = yaml.safe_load((workdir / "slurm" / "config.yaml").read_text())
    profile["cores"] = 512
    profile["set-threads"] = {"embed_samples": 512}
    profile["set-resources"]["train"]["mem_mb"] = 1_000_000_000
    oversized = tmp_path / "oversized"
    oversized.mkdir()
    (oversized / "config.yaml").write_text(yaml.safe_dump(profile))
    node_mb = int(cluster.run("sinfo", "--noheader", "--Node", "--partition=gpu", "--format=%m").stdout.split()[0])
    env = cluster.env(env_with_venv())
    env["SNAKEMAKE_PROFILE"] = ""
    env.pop("DEEPSNOW_CLUSTER_CHECK", None)
    cmd = [str(BIN / "snakemake"), "--profile", str(oversized), "--slurm-status-command", "squeue"]
    cmd += ["--configfile", "configs/test.yaml", "--config", "run=oversized"]
    before = last_job_id(cluster)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-5000:]
    assert "2 SLURM request(s) that no node can ever satisfy; nothing was submitted" in out, out[-5000:]
    lines = sorted(line.strip() for line in out.splitlines() if " asks for " in line)
    assert lines[0].startswith("group eval (embed_samples, metrics_epoch) asks for 512 CPUs"), lines
    assert lines[0].endswith(f"in partition 'gpu': at most {cluster.cpus} CPUs per node (sinfo)"), lines
    assert lines[1].startswith("rule train asks for 2 CPUs, 1000000000 MB, 1 GPU"), lines
    assert lines[1].endswith(f"in partition 'gpu': at most {node_mb} MB per node (sinfo)"), lines
    assert not submitted(out) and last_job_id(cluster) == before, out[-5000:]
    assert not (workdir / "results" / "oversized" / "scenes").exists()
    assert seconds < 120, seconds


def _test_conf(folder: Path, pid: int | None) -> Path:
    folder.mkdir()
    pidfile = folder / "slurmctld.pid"
    if pid is not None:
        pidfile.write_text(f"{pid}\n")
    conf = folder / "slurm.conf"
    conf.write_text(f"ClusterName=deepsnow-test\nSlurmctldPidFile={pidfile}\n")
    return conf


def test_a_link_left_by_a_killed_test_run_is_stale_but_a_live_or_system_one_is_not(tmp_path):
    from slurm_cluster import stale_test_link

    dead = subprocess.Popen(["true"])
    dead.wait()
    link = tmp_path / "link.conf"
    cases = {
        "pid file names a dead slurmctld": (_test_conf(tmp_path / "a", dead.pid), True),
        "no pid file": (_test_conf(tmp_path / "b", None), True),
        "slurmctld alive": (_test_conf(tmp_path / "c", os.getpid()), False),
        "target gone": (tmp_path / "gone.conf", True),
    }
    system = tmp_path / "system.conf"
    system.write_text("ClusterName=site\nSlurmctldPidFile=/nonexistent\n")
    cases["a system SLURM's config"] = (system, False)
    for why, (target, stale) in cases.items():
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        assert stale_test_link(link) is stale, why
    link.unlink()
    link.write_text("ClusterName=deepsnow-test\n")
    assert stale_test_link(link) is False, "a plain file is never replaced"
