"""Fault matrix, whole runs: `kill -9` of the training, embedding and metrics jobs (and of Snakemake
itself) followed by a rerun, a second run started in one directory at several moments of a first
(and two at once), and determinism.

Every run is the test config (configs/test.yaml, `gan.deterministic: true`) in a scratch copy of
the workflow; every recovered run must end with the same metrics tables as an undisturbed one (the
suite's shared run, `test_config_run`). A kill test starts from a copy of that finished run with
the killed stage's results and what follows them deleted, so the run redoes only those: the data
half and the real images' features are not recomputed for every kill. The second-run test starts
from nothing, and is also the determinism check: an independent whole run ends with the same
tables. docs/reliability.md lists these rows with what the user sees.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import BIN, copy_run, copy_workflow, env_with_venv, merged_config, snakemake
from deepsnow.config import validate_config

pytestmark = pytest.mark.slow

CONFIG = ("--configfile", "configs/test.yaml")
RES = Path("results") / "test"
TABLES = ("metrics/metrics.csv", "metrics/correlations.csv", "metrics/pca.csv", "train/losses_iter.csv")
# The kill tests compare those tables, so they run to them only: not to the figures, products,
# change testbed and ladders drawn beside them (the shared run makes those). "--" ends --configfile.
TARGETS = ("--", *(str(RES / name) for name in TABLES))
# simcover's weights: the same bytes in two deterministic runs (checkpoints hold each epoch's seconds too)
WEIGHTS = ("features/simcover.pt",)


def tables(work: Path) -> dict[str, bytes]:
    return {name: (work / RES / name).read_bytes() for name in TABLES}


@pytest.fixture(scope="module")
def reference(test_config_run) -> Path:
    """An undisturbed run of the test config (only read here)."""
    return test_config_run


def start(work: Path, *extra: str) -> subprocess.Popen:
    cmd = [str(BIN / "snakemake"), "--cores", "2", *CONFIG, *extra]
    return subprocess.Popen(
        cmd, cwd=work, env=env_with_venv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def job_processes(work: Path, subcommand: str) -> list[tuple[int, list[str]]]:
    """(PID, argv) of the `deepsnow <subcommand>` Python processes running in ``work`` (not their shells)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if len(argv) >= 3 and argv[1].endswith("/deepsnow") and argv[2] == subcommand and Path(cwd) == work:
            pids.append((int(proc.name), argv))
    return pids


def declared_outputs(argv: list[str]) -> list[str]:
    """The files after --output / --outputs on a job's command line."""
    outs, taking = [], False
    for a in argv:
        if a.startswith("--"):
            taking = a in ("--output", "--outputs")
        elif taking:
            outs.append(a)
    return outs


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 1500):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()[-4000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def finish(proc: subprocess.Popen, timeout: float = 1800) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


# What a kill test deletes from the copy of the finished run before it starts: the killed stage's
# results, the metrics made from them, and the figures (Snakemake remakes a missing file only where a
# missing or older output needs it: without the figures the run would be complete as it stands;
# the rest of the run is then out of date by file times).
FORGET = {
    "train": ("train", "samples", "features/epoch_*", "metrics", "figures"),  # the data half stays
    "embed": ("features/epoch_003_*", "metrics/epoch_003.json*", "metrics/metrics.csv*", "figures"),
    "metrics": ("metrics/epoch_003.json*", "metrics/metrics.csv*", "figures"),
}
# (job, the moment it is killed, the outputs the killed job had declared)
KILLS = {
    "train": (
        # after epoch 1's checkpoint and samples, while epochs 2 and 3 train
        lambda work: list((work / RES / "train").glob("state-*/data-*/samples-*/epoch_001.npz")),
        ["train/losses.csv", "train/checkpoints/epoch_003.pt", "samples/epoch_003.npz"],
    ),
    "embed": (lambda work: True, None),  # None: the outputs on its command line
    "metrics": (lambda work: True, None),
}


def run_to_redo(reference: Path, dest: Path, job: str) -> Path:
    """A copy of the finished reference run with ``job``'s results (FORGET) deleted."""
    return copy_run(reference, dest, tuple(f"{RES}/{glob}" for glob in FORGET[job]))


def kill_job_and_check(work: Path, job: str) -> None:
    """Start the run, SIGKILL ``job``'s Python process mid-run: Snakemake fails the job, exits non-zero,
    leaves none of its outputs and cleans up its incomplete markers."""
    ready, outputs = KILLS[job]
    proc = start(work, *TARGETS)
    try:
        pid, argv = wait_for(lambda: ready(work) and job_processes(work, job), proc, f"a running {job} job")[0]
        if job != "train":
            time.sleep(0.3)  # let it get going (imports, loading the network)
        os.kill(pid, signal.SIGKILL)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, out[-3000:]
    assert "Error in rule" in out, out[-3000:]
    rule_outputs = [work / RES / o for o in outputs] if outputs else [work / o for o in declared_outputs(argv)]
    assert rule_outputs
    assert not any(p.exists() for p in rule_outputs), [p for p in rule_outputs if p.exists()]  # removed
    assert not (work / RES / "metrics" / "metrics.csv").exists()
    incomplete = work / ".snakemake" / "incomplete"
    assert not incomplete.exists() or not any(incomplete.rglob("*"))  # Snakemake cleaned up its markers


@pytest.mark.parametrize("job", [j for j in KILLS if j != "train"])  # train: in the next test
def test_kill_9_of_a_job_then_rerun(reference, tmp_path, job):
    """The job's Python process gets SIGKILL mid-run: Snakemake fails the job, exits non-zero and
    leaves none of its outputs; the same command run again completes the run, and ends with the
    metrics tables of an undisturbed run."""
    work = run_to_redo(reference, tmp_path / "wf", job)
    kill_job_and_check(work, job)
    snakemake(work, *CONFIG, *TARGETS)  # the same command again, nothing else
    assert tables(work) == tables(reference)
    assert not [p for p in (work / "results").rglob("*.part*")]  # the killed writer's temporaries are gone


def test_kill_9_of_the_train_job_then_of_snakemake_then_rerun(reference, tmp_path):
    """Two losses in a row, then one recovery (one retraining instead of two, for the suite's time).
    1. The train job's process gets SIGKILL after epoch 1 was saved: Snakemake fails the job cleanly
       (as the other jobs in the test above).
    2. The same command again; while its train job runs, the whole run is killed (node lost):
       Snakemake, the job's shell and the job. The next plain run refuses, before any job, to trust
       the outputs Snakemake had marked incomplete and names them; with `--rerun-incomplete` (the
       profiles' default) it names the lock left behind; after `--unlock` the run resumes training
       from the state of step 1 and ends with the tables of an undisturbed run."""
    work = run_to_redo(reference, tmp_path / "wf", "train")
    kill_job_and_check(work, "train")
    proc = start(work, *TARGETS)
    try:
        # once the resumed job has republished epoch 1's samples (a declared output: Snakemake names
        # only outputs that exist as incomplete)
        resumed = work / RES / "samples" / "epoch_001.npz"
        wait_for(lambda: resumed.exists() and job_processes(work, "train"), proc, "a resumed train job")
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake, the job's shell and the job itself
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while job_processes(work, "train") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not job_processes(work, "train")

    again = snakemake(work, *CONFIG, *TARGETS, check=False)
    out = again.stdout + again.stderr
    assert again.returncode != 0, out[-3000:]
    assert "The files below seem to be incomplete" in out and "--rerun-incomplete" in out, out[-3000:]
    assert "results/test/samples/epoch_001.npz" in out.split("Incomplete files:")[-1]
    assert "Error in rule" not in out  # refused before running anything
    # what the profiles run (rerun-incomplete): the lock the killed Snakemake left is named
    again = snakemake(work, *CONFIG, "--rerun-incomplete", *TARGETS, check=False)
    out = again.stdout + again.stderr
    assert again.returncode != 0 and "Directory cannot be locked" in out and "--unlock" in out, out[-3000:]
    assert "Error in rule" not in out
    snakemake(work, *CONFIG, "--unlock")
    snakemake(work, *CONFIG, "--rerun-incomplete", *TARGETS)
    assert tables(work) == tables(reference)
    log = (work / RES / "logs" / "train.log").read_text()
    # from step 1's epoch 1 (or an epoch 2 that step 2's job could have saved): never from scratch
    assert re.search(r"resuming from .* \(epoch [12] of 3", log), log[-2000:]
    assert not [p for p in (work / "results").rglob("*.part*")]


def run_lock_holder(work: Path) -> int | None:
    """PID recorded in deepsnow's run lock file, if any."""
    import json

    try:
        return json.loads((work / ".snakemake" / "deepsnow" / "test.lock").read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


def assert_refused_by_the_run_lock(proc: subprocess.Popen, out: str, holder: int, work: Path) -> None:
    """Stopped while the Snakefile was parsed, with deepsnow's message naming the running run."""
    assert proc.returncode != 0, out[-3000:]
    assert f"workflow run 'test' (results/test/) in {work} is locked by process {holder}" in out, out[-3000:]
    assert "Wait for that run to finish (or stop it) and start again." in out
    assert "incomplete" not in out.lower() and "Directory cannot be locked" not in out, out[-3000:]
    assert "Building DAG of jobs" not in out and "Error in rule" not in out  # refused before the DAG


# The moments of a running first run at which a second one is started, and how each is recognised.
MOMENTS = {
    "before its first job": lambda work, first: run_lock_holder(work) == first.pid,
    "during the data half": lambda work, first: any(
        job_processes(work, c) for c in ("simulate", "mask", "patches", "split")
    ),
    "during training": lambda work, first: job_processes(work, "train"),
}


def test_a_second_run_is_refused_at_every_moment_of_the_first(reference, tmp_path):
    """A second `snakemake` of the same config in the same directory, started before the first run's
    first job, during its data half and during its training, is refused each time with deepsnow's
    message (never Snakemake's "files seem to be incomplete", whose advice would rerun the first
    run's jobs under it), and the first run ends with the results of an undisturbed one: the
    suite's determinism check too, two independent whole runs ending with identical tables."""
    work = copy_workflow(tmp_path / "wf")
    # the first run makes what it is compared on (the tables and simcover's weights),
    # not the figures, products and change testbed drawn from them: the suite's shared run does those
    first = start(work, "--", *(str(RES / name) for name in (*TABLES, *WEIGHTS)))  # "--": not config files
    seconds = {}
    try:
        for moment, reached in MOMENTS.items():
            # not waiting for one refusal before the next moment: the data half is short
            wait_for(lambda: reached(work, first), first, moment)
            seconds[moment] = start(work)
        outs = {moment: finish(p, timeout=300) for moment, p in seconds.items()}
        out1 = finish(first)
    finally:
        for p in [first, *seconds.values()]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert list(outs) == list(MOMENTS)
    for moment, out in outs.items():
        assert_refused_by_the_run_lock(seconds[moment], out, first.pid, work)
    assert first.returncode == 0, out1[-3000:]
    assert tables(work) == tables(reference)
    # equal weights, equal files: simcover's weights repeat byte for byte, so their sha256 in
    # provenance and the simcover identity every features file records repeat too
    for name in WEIGHTS:
        assert (work / RES / name).read_bytes() == (reference / RES / name).read_bytes(), name
    identity = [str(np.load(run / RES / "features" / "real_simcover.npz")["weights"]) for run in (work, reference)]
    assert identity[0] == identity[1] and identity[0].startswith("simcover:"), identity


def test_two_runs_started_at_the_same_moment(reference, tmp_path):
    """Two runs started together: exactly one takes the run lock and runs; the other is refused
    with deepsnow's message naming it; the data half ends as in an undisturbed run."""
    work = copy_workflow(tmp_path / "wf")
    runs = [start(work, "--until", "split") for _ in range(2)]
    try:
        outs = [finish(p) for p in runs]
    finally:
        for p in runs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    codes = [p.returncode for p in runs]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, (codes, [o[-2000:] for o in outs])
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert_refused_by_the_run_lock(runs[loser], outs[loser], runs[winner].pid, work)
    for name in ("trainA", "trainB", "testA", "testB"):
        path = RES / "dataset" / f"{name}.npz"
        assert (work / path).read_bytes() == (reference / path).read_bytes()


def test_the_report_states_the_seeds(reference, tmp_path):
    """The report of a deterministic run names every seed it used (two such runs agree:
    test_a_second_run_is_refused_at_every_moment_of_the_first compares a whole run with this one)."""
    work = copy_run(reference, tmp_path / "wf")
    snakemake(work, *CONFIG, "--report", "results/report.zip")
    with zipfile.ZipFile(work / "results" / "report.zip") as z:
        html = b"".join(z.read(n) for n in z.namelist() if n.endswith(".html")).decode(errors="replace")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html.replace('\\"', '"').replace("\\n", " ")))
    cfg = validate_config(merged_config("configs/test.yaml"))
    seeds = (
        f"Seeds of this run: scene simulator {cfg['data']['simulator']['seed']} (simulated data only), "
        f"train/test split {cfg['split']['seed']}, cycleGAN {cfg['gan']['seed']} (gan.deterministic: True;"
    )
    assert seeds in text, text[text.find("Seeds") - 200 : text.find("Seeds") + 600]
    assert f"random extractor weights {cfg['features']['seed']}, metrics" in text
    assert f"PCA) {cfg['metrics']['seed']}." in text


def test_run_lock_stops_a_run_that_passed_snakemakes_check(tmp_path):
    """The race Snakemake's check-then-write lock cannot close, made certain: another process holds
    deepsnow's run lock (as a run that started at the same moment would). The new run stops before
    any job, names the holder, and exits non-zero, while commands that run no job (a dry run,
    --list-rules, --summary, --unlock) still work; once the holder is gone, the lock is free."""
    from deepsnow import locks

    work = copy_workflow(tmp_path / "wf")
    holder = locks.acquire(work / ".snakemake" / "deepsnow" / "test.lock", "x", "y")
    try:
        proc = snakemake(work, *CONFIG, "--until", "split", check=False)
        for looks in (["-n"], ["--list-rules"], ["--summary"], ["--unlock"]):  # run no job: no lock
            snakemake(work, *CONFIG, "--until", "split", *looks)
    finally:
        holder.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"workflow run 'test' (results/test/) in {work} is locked by process {os.getpid()}" in out, out[-3000:]
    assert "Building DAG of jobs" not in out  # refused while the Snakefile is parsed
    assert "Error in rule" not in out and not (work / "results").exists()
    snakemake(work, *CONFIG, "--until", "split")  # the holder is gone: the run goes ahead
    assert (work / RES / "dataset" / "trainA.npz").exists()
