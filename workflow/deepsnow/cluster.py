"""SLURM preflight: refuse requests no node of their partition can ever satisfy.

SLURM queues a job that asks for more CPUs, memory, GPUs or time than any node of its
partition has, and it pends forever (``PENDING (PartitionConfig)`` or ``(Resources)``) while
Snakemake waits silently. :func:`check` compares what every job the run would submit asks for
(a :class:`Request`: the ``sbatch`` options snakemake-executor-plugin-slurm 2.8 derives from a
job's resources) with the partitions as ``sinfo`` lists them (:func:`read_partitions`), and
returns one line per request that cannot fit.

Two entry points:

* the workflow's ``onstart`` (``workflow/rules/common.smk``) calls :func:`onstart_check`, which
  checks the run's jobs before the first submission when the executor is ``slurm``
  (``DEEPSNOW_CLUSTER_CHECK=off`` skips it);
* ``deepsnow cluster-check [-- SNAKEMAKE OPTIONS]`` builds the run's jobs with Snakemake (they are
  written by ``onstart`` to ``$DEEPSNOW_CLUSTER_REQUESTS``, and Snakemake stops before submitting
  anything) and checks them, or checks a saved ``--requests`` file.

What a job asks for, as the plugin submits it: CPUs = ``cpus_per_task`` or the job's threads
(``--cpus-per-task``); memory = ``mem_mb`` (``--mem``, per node) or ``mem_mb_per_cpu`` × CPUs;
GPUs = ``gpu`` (``--gpus``, of ``gpu_model`` if given) or the count in ``gres: gpu[:type]:N``;
time = ``runtime`` minutes (``-t``); partition = ``slurm_partition`` or the default partition.
A group job (several Snakemake jobs in one SLURM job, ``group-components``) asks for what
Snakemake computes for the group: the sum of its layers' runtimes, and at most ``cores`` CPUs
and the memory of the jobs it runs at once. This module does not import Snakemake: it reads
the job objects it is handed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.commands import plain_command

#: One line per node and partition: partition (``*`` marks the default), node, CPUs, memory (MB),
#: GRES, the partition's time limit.
SINFO_FORMAT = "%P|%N|%c|%m|%G|%l"
SINFO = ("sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}")
#: Set to a path, the workflow's onstart writes the run's requests there and stops (cluster-check).
REQUESTS_ENV = "DEEPSNOW_CLUSTER_REQUESTS"
#: ``off`` skips the automatic preflight of SLURM runs.
SWITCH_ENV = "DEEPSNOW_CLUSTER_CHECK"


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: dict  # GPU type ("" when untyped) -> count


@dataclass
class Partition:
    name: str
    default: bool
    max_minutes: int | None  # None: no time limit
    time_limit: str  # as sinfo prints it
    nodes: list


@dataclass(frozen=True)
class Request:
    """What one SLURM job of the run asks for."""

    name: str  # "rule train", "group eval (embed_samples, metrics_epoch)"
    partition: str | None
    cpus: int
    mem_mb: int | None
    gpus: int = 0
    gpu_model: str | None = None
    runtime: int | None = None  # minutes

    def describe(self) -> str:
        parts = [f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}"]
        if self.mem_mb:
            parts.append(f"{self.mem_mb} MB")
        if self.gpus:
            model = f" {self.gpu_model}" if self.gpu_model else ""
            parts.append(f"{self.gpus}{model} GPU{'s' if self.gpus != 1 else ''}")
        if self.runtime:
            parts.append(f"{self.runtime} min")
        return ", ".join(parts)


# -- sinfo ------------------------------------------------------------------------------------
def parse_minutes(text: str) -> int | None:
    """A SLURM time limit as sinfo prints it (``INFINITE``, ``1-00:00:00``, ``2:00:00``, ``30:00``)
    in minutes, rounded up; None for no limit."""
    text = text.strip()
    if text.upper() in ("INFINITE", "UNLIMITED", "NONE", "N/A", ""):
        return None
    days, _, clock = text.rpartition("-")
    try:
        fields = [int(f) for f in clock.split(":")]
        d = int(days) if days else 0
    except ValueError:
        raise DeepsnowError(f"sinfo: cannot read the time limit {text!r}") from None
    if days:  # days-hours[:minutes[:seconds]]
        h, m, s = (fields + [0, 0])[:3]
    elif len(fields) == 3:
        h, m, s = fields
    elif len(fields) == 2:
        h, (m, s) = 0, fields
    else:
        h, m, s = 0, fields[0], 0
    seconds = ((d * 24 + h) * 60 + m) * 60 + s
    return -(-seconds // 60)


def parse_gres(text: str) -> dict:
    """GPUs per node from a GRES string (``gpu:1``, ``gpu:a100:4(S:0-1),mps:400``, ``(null)``)."""
    gpus: dict = {}
    for item in re.split(r",(?![^(]*\))", text.strip()):
        item = re.sub(r"\(.*\)$", "", item.strip())
        fields = item.split(":")
        if fields[0] != "gpu":
            continue
        count = int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
        kind = fields[1] if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()) else ""
        gpus[kind] = gpus.get(kind, 0) + count
    return gpus


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from the output of :data:`SINFO` (one line per node and partition)."""
    partitions: dict[str, Partition] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split("|")
        if len(fields) != 6:
            raise DeepsnowError(f"sinfo output line {n}: expected {SINFO_FORMAT!r}, got {line!r}")
        pname, node, cpus, mem, gres, limit = fields
        default = pname.endswith("*")
        pname = pname.rstrip("*")
        try:
            entry = Node(node, int(cpus.rstrip("+")), int(mem.rstrip("+")), parse_gres(gres))
        except ValueError:
            raise DeepsnowError(f"sinfo output line {n}: cannot read CPUs {cpus!r} or memory {mem!r}") from None
        part = partitions.setdefault(pname, Partition(pname, default, parse_minutes(limit), limit, []))
        part.default = part.default or default
        part.nodes.append(entry)
    return partitions


def read_partitions() -> dict[str, Partition]:
    """The cluster's partitions, from ``sinfo``."""
    if shutil.which(SINFO[0]) is None:
        raise DeepsnowError("sinfo not found on PATH: cannot read the SLURM partitions")
    try:
        proc = subprocess.run(SINFO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise DeepsnowError(f"sinfo failed: {err}") from None
    if proc.returncode != 0:
        raise DeepsnowError(f"sinfo failed ({proc.returncode}): {proc.stderr.strip()}")
    partitions = parse_sinfo(proc.stdout)
    if not partitions:
        raise DeepsnowError("sinfo lists no partitions")
    return partitions


# -- the check --------------------------------------------------------------------------------
def _node_fits(node: Node, req: Request) -> bool:
    gpus = node.gpus.get(req.gpu_model, 0) if req.gpu_model else sum(node.gpus.values())
    return node.cpus >= req.cpus and (req.mem_mb or 0) <= node.mem_mb and gpus >= req.gpus


def _limits(part: Partition, req: Request) -> str:
    """The partition's limits for the resources the request exceeds, as one phrase."""
    over = []
    most_cpus = max(n.cpus for n in part.nodes)
    most_mem = max(n.mem_mb for n in part.nodes)
    most_gpus = max((n.gpus.get(req.gpu_model, 0) if req.gpu_model else sum(n.gpus.values())) for n in part.nodes)
    if req.cpus > most_cpus:
        over.append(f"at most {most_cpus} CPUs per node")
    if (req.mem_mb or 0) > most_mem:
        over.append(f"at most {most_mem} MB per node")
    if req.gpus and not any(n.gpus for n in part.nodes):
        over.append(
            "no GPU on any of its nodes: name a GPU partition for this rule (a command-line --set-resources "
            "replaces the profile's whole set-resources, moving every GPU rule it does not name to the default "
            "partition; docs/cluster.md)"
        )
    elif req.gpus > most_gpus:
        model = f" {req.gpu_model}" if req.gpu_model else ""
        over.append(f"at most {most_gpus}{model} GPUs per node")
    if req.runtime and part.max_minutes is not None and req.runtime > part.max_minutes:
        over.append(f"MaxTime {part.time_limit} ({part.max_minutes} min)")
    if not over and not any(_node_fits(n, req) for n in part.nodes):
        nodes = "; ".join(f"{n.name}: {n.cpus} CPUs, {n.mem_mb} MB, {sum(n.gpus.values())} GPUs" for n in part.nodes[:3])
        over.append(f"no node has all of it at once ({nodes}{'; ...' if len(part.nodes) > 3 else ''})")
    return ", ".join(over)


def check(requests, partitions: dict[str, Partition]) -> list[str]:
    """One line per request that no node of its partition can ever satisfy (empty: all fit)."""
    default = next((p.name for p in partitions.values() if p.default), None)
    problems = []
    for req in sorted(set(requests), key=lambda r: (r.name, r.describe())):
        pname = req.partition or default
        if pname is None:
            problems.append(f"{req.name} names no partition (slurm_partition) and sinfo shows no default one")
            continue
        part = partitions.get(pname)
        if part is None:
            known = ", ".join(sorted(partitions))
            problems.append(f"{req.name} asks for partition '{pname}', which sinfo does not list (partitions: {known})")
            continue
        limits = _limits(part, req)
        if limits:
            problems.append(f"{req.name} asks for {req.describe()} in partition '{pname}': {limits} (sinfo)")
    return problems


def refusal(problems: list[str]) -> str:
    return (
        f"{len(problems)} SLURM request(s) that no node can ever satisfy; nothing was submitted:\n"
        + "\n".join(problems)
        + "\nLower the request (profile cores, the rule's resources from the config) or name a larger "
        "partition: the '<- site' lines of profiles/slurm/config.yaml, docs/cluster.md"
    )


# -- requests of a Snakemake run --------------------------------------------------------------
def _gres_gpus(gres) -> tuple[int, str | None]:
    gpus = parse_gres(str(gres or ""))
    if not gpus:
        return 0, None
    (kind, count), *_ = gpus.items()
    return count, kind or None


def job_request(name: str, threads: int, resources: dict) -> Request:
    """What the SLURM executor plugin asks for, for a job (or group job) with these resources."""

    def number(key):
        value = resources.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    cpus = number("cpus_per_task") or int(threads or 1)
    mem = number("mem_mb")
    if number("mem_mb_per_cpu"):
        mem = number("mem_mb_per_cpu") * cpus
    gpus, model = number("gpu") or 0, resources.get("gpu_model") or None
    if not gpus:
        gpus, model = _gres_gpus(resources.get("gres"))
    partition = resources.get("slurm_partition") or None
    return Request(name, str(partition) if partition else None, max(cpus, 1), mem, gpus, model, number("runtime"))


def dag_requests(dag) -> list[Request]:
    """The request of every SLURM job a Snakemake DAG would submit: one per group job, one per
    other job that is not run locally (``all``, local rules)."""
    seen, requests = set(), []
    for job in dag.needrun_jobs():
        group = dag.get_job_group(job)
        unit = group if group is not None else job
        if id(unit) in seen or unit.is_local:
            continue
        seen.add(id(unit))
        if group is not None:
            name = f"group {group.groupid} ({', '.join(sorted({j.rule.name for j in group.jobs}))})"
        else:
            name = f"rule {job.rule.name}"
        requests.append(job_request(name, unit.threads, dict(unit.resources.items())))
    return sorted(set(requests), key=lambda r: (r.name, r.describe()))


def onstart_check(workflow) -> None:
    """The workflow's onstart: write the requests and stop (``deepsnow cluster-check``), or, when
    the executor is slurm, refuse requests no node can satisfy before anything is submitted."""
    path = os.environ.get(REQUESTS_ENV)
    if path:
        requests = dag_requests(workflow.dag)
        Path(path).write_text(json.dumps([asdict(r) for r in requests], indent=1))
        raise DeepsnowError(f"cluster-check: wrote the {len(requests)} SLURM requests to {path}; stopping before submission")
    plugin = getattr(workflow, "executor_plugin", None)
    if getattr(plugin, "name", None) != "slurm" or os.environ.get(SWITCH_ENV, "").lower() == "off":
        return
    requests = dag_requests(workflow.dag)
    try:
        partitions = read_partitions()
    except DeepsnowError as err:  # the preflight helps; it does not stop a run it cannot check
        print(f"deepsnow cluster-check: skipped ({err})", file=sys.stderr)
        return
    problems = check(requests, partitions)
    if problems:
        raise DeepsnowError(refusal(problems))


# -- the command ------------------------------------------------------------------------------
def load_requests(path: Path) -> list[Request]:
    try:
        items = json.loads(Path(path).read_text())
        return [Request(**item) for item in items]
    except (OSError, ValueError, TypeError) as err:
        raise DeepsnowError(f"{path}: not a requests file (a JSON list of requests): {err}") from None


def run_requests(snakemake_args: list[str]) -> list[Request] | None:
    """The requests of the run these snakemake options would start, without submitting anything
    (None: nothing to do)."""
    with tempfile.TemporaryDirectory(prefix="deepsnow-cluster-check-") as tmp:
        out = Path(tmp) / "requests.json"
        env = dict(os.environ, **{REQUESTS_ENV: str(out)})
        cmd = [sys.executable, "-m", "snakemake", *snakemake_args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.exists():
            return load_requests(out)
        text = proc.stdout + proc.stderr
        if proc.returncode == 0:
            return None
        raise DeepsnowError(f"snakemake {' '.join(snakemake_args)} failed ({proc.returncode}):\n{text[-4000:]}")


def _cluster_check(args) -> None:
    """Check a run's SLURM requests against the partitions (sinfo) before submitting anything.

    Build the jobs the given snakemake options would run (default: --profile slurm), without submitting
    any, and compare what each SLURM job asks for (CPUs, memory, GPUs, time; a group job as Snakemake sums
    it) with the nodes and MaxTime of its partition from sinfo. Prints one line per request no node can
    ever satisfy and exits 2, or OK. Snakemake runs the same check itself before submitting a SLURM run
    (DEEPSNOW_CLUSTER_CHECK=off skips it). Example: deepsnow cluster-check -- --profile slurm --configfile
    configs/paper.yaml"""
    if args.requests:
        requests = load_requests(args.requests)
    else:
        snakemake_args = [a for a in args.snakemake_args if a != "--"] or ["--profile", "slurm"]
        requests = run_requests(snakemake_args)
        if requests is None:
            print("cluster-check: nothing to submit (every job is up to date)")
            return
    if args.write_requests:
        args.write_requests.write_text(json.dumps([asdict(r) for r in requests], indent=1))
    problems = check(requests, read_partitions())
    if problems:
        raise DeepsnowError(refusal(problems))
    print(f"cluster-check: OK, each of the {len(requests)} distinct SLURM requests fits a node of its partition")


def register(sub: argparse._SubParsersAction) -> None:
    p = plain_command(sub, "cluster-check", _cluster_check)
    p.add_argument("--requests", type=Path, help="check a saved requests file (JSON, from --write-requests) instead")
    p.add_argument("--write-requests", type=Path, help="also write the run's requests to this JSON file")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="snakemake options, after --")
