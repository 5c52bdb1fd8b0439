"""A throwaway single-node SLURM for the tests: install, configure, start, stop.

Everything lives in one folder (config, keys, state, spool, logs, pid files); the clients
find it through the ``SLURM_CONF`` environment variable (:meth:`SlurmCluster.env`) and the
daemons through ``-f``. munged listens on its own socket in that folder and the daemons on
free ports, so a system SLURM or munge on the same machine is left alone. The cluster has
one node (this machine, ``CPUs`` and ``RealMemory`` as found, one dummy GPU) and two
partitions, ``cpu`` (default) and ``gpu``. There is no accounting database, so job status
comes from ``squeue`` (``MinJobAge`` keeps finished jobs visible there for 2 hours: the tests read every job of the module back, and a loaded machine may take longer than 10 minutes).

Needs root (to install packages and to run slurmd, which starts jobs as their users).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
# Where SLURM clients look when SLURM_CONF is not set. snakemake-executor-plugin-slurm-jobstep
# (0.6.1) drops every SLURM_* variable but a few before the srun inside a job, SLURM_CONF
# included, so that srun finds the config only here (or configless, from slurmd's cache).
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    """SLURM could not be installed or started here (the tests skip with this message)."""


def stale_test_link(link: Path) -> bool:
    """Whether ``link`` points at a test cluster's config whose slurmctld no longer runs.

    A killed test run leaves /etc/slurm/slurm.conf pointing into its pytest folder, which
    pytest keeps for a few runs, so the link may still resolve. It is ours (and stale) when
    the target is gone, or names this module's cluster and its slurmctld pid file names no
    live process. Anything else (a system SLURM, a test cluster still running) is not stale.
    """
    if not link.is_symlink():
        return False
    if not link.exists():
        return True
    text = link.read_text(errors="replace")
    if "ClusterName=deepsnow-test" not in text.splitlines():
        return False
    pidfiles = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("SlurmctldPidFile=")]
    for pidfile in map(Path, pidfiles):
        words = pidfile.read_text().split() if pidfile.exists() else []
        if words and words[0].isdigit() and _alive(int(words[0])):
            return False
    return True


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def missing_tools() -> list[str]:
    tools = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
    return [t for t in tools if not (shutil.which(t) or Path("/usr/sbin", t).exists())]


def install(timeout: int = 900) -> None:
    """``apt-get install slurm-wlm munge`` (non-interactive) unless their tools are there."""
    if not missing_tools():
        return
    if not shutil.which("apt-get"):
        raise SlurmUnavailable(f"SLURM tools missing ({', '.join(missing_tools())}) and no apt-get to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if missing_tools():
        raise SlurmUnavailable(f"still missing after apt-get install: {', '.join(missing_tools())}")


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmUnavailable("cannot read MemTotal from /proc/meminfo")


@dataclass
class SlurmCluster:
    root: Path
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    hostname: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    pids: dict[str, int] = field(default_factory=dict)
    linked_system_conf: bool = False

    # -- files ---------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def log(self, daemon: str) -> Path:
        return self.root / "log" / f"{daemon}.log"

    def pidfile(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def env(self, base: dict | None = None) -> dict:
        """Environment for SLURM clients (sbatch, squeue, ...) and for snakemake."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def configure(self) -> None:
        for sub in ("etc", "munge", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        # slurmd allocates memory to jobs; keep some for the system but never claim more
        # than the machine has (slurmd drains a node whose RealMemory is too large).
        real_mb = max(1000, _memory_mb() - 1000)
        host = self.hostname
        # A dummy GPU: gres/gpu needs a device file to bind; a char device like /dev/null
        # works (nothing in the job touches it, CUDA_VISIBLE_DEVICES is set to it by slurmd).
        (self.conf.parent / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/null\n")
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=deepsnow-test",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.pidfile('slurmctld')}",
                    f"SlurmdPidFile={self.pidfile('slurmd')}",
                    f"SlurmctldLogFile={self.log('slurmctld')}",
                    f"SlurmdLogFile={self.log('slurmd')}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    # no cgroups in a container: plain process tracking, no task binding
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "GresTypes=gpu",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "MinJobAge=7200",  # finished jobs stay visible to squeue and scontrol for the whole test module
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=60",
                    "InactiveLimit=0",
                    "KillWait=5",
                    "Waittime=0",
                    "PlugStackConfig=" + str(self.conf.parent / "plugstack.conf"),
                    f"NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={real_mb} Gres=gpu:1 State=UNKNOWN",
                    f"PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                    f"PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (self.conf.parent / "plugstack.conf").write_text("")
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run([_tool("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        key.chmod(0o600)

    # -- daemons -------------------------------------------------------------------
    def _start(self, name: str, cmd: list[str]) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=self.env())
        if proc.returncode != 0:
            raise SlurmUnavailable(f"{name} did not start ({proc.returncode}): {proc.stderr}\n{self._tail(name)}")
        pidfile = self.pidfile(name)
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text().split()[0])
                return
            time.sleep(0.1)
        raise SlurmUnavailable(f"{name} wrote no pid file {pidfile}\n{self._tail(name)}")

    def _tail(self, name: str, n: int = 3000) -> str:
        log = self.log(name)
        return log.read_text(errors="replace")[-n:] if log.exists() else f"(no {log})"

    def link_system_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at this cluster's config (for the srun inside jobs).

        Refuses to touch a slurm.conf that is already there (a real SLURM on this machine).
        """
        if SYSTEM_CONF.is_symlink() and stale_test_link(SYSTEM_CONF):
            SYSTEM_CONF.unlink()  # left by a test run that was killed before its teardown
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise SlurmUnavailable(f"{SYSTEM_CONF} exists already; not replacing a system SLURM configuration")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self.linked_system_conf = True

    def unlink_system_conf(self) -> None:
        if self.linked_system_conf and SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == self.conf:
            SYSTEM_CONF.unlink()
        self.linked_system_conf = False

    def start(self, timeout: float = 120) -> None:
        self.configure()
        self.link_system_conf()
        m = self.root / "munge"
        self._start(
            "munged",
            [
                _tool("munged"),
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={m / 'munge.key'}",
                f"--log-file={self.log('munged')}",
                f"--pid-file={self.pidfile('munged')}",
                f"--seed-file={m / 'munged.seed'}",
            ],
        )
        self._start("slurmctld", [_tool("slurmctld"), "-f", str(self.conf)])
        self._start("slurmd", [_tool("slurmd"), "-f", str(self.conf), "-N", self.hostname])
        self.wait_idle(timeout)

    def run(self, *cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env())
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def wait_idle(self, timeout: float = 120) -> None:
        """Wait until sinfo shows the node idle in both partitions."""
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            proc = self.run("sinfo", "--noheader", "--format=%P %t", check=False)
            out = proc.stdout + proc.stderr
            states = dict(line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2)
            if states.get("cpu*") == "idle" and states.get("gpu") == "idle":
                return
            if any(s.startswith(("drain", "down", "inval")) for s in states.values()) and time.monotonic() > deadline - timeout + 20:
                node = self.run("scontrol", "show", "node", self.hostname, check=False).stdout
                raise SlurmUnavailable(f"node not usable: {out}\n{node}\n{self._tail('slurmd')}")
            time.sleep(1)
        raise SlurmUnavailable(
            f"node not idle after {timeout}s: {out}\n--- slurmctld\n{self._tail('slurmctld')}\n--- slurmd\n{self._tail('slurmd')}"
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop the daemons this object started, by their pids, and remove the /etc/slurm link.

        Cancel jobs first (``scancel``): slurmstepd processes of running jobs outlive slurmd.
        """
        for name in reversed(DAEMONS):
            pid = self.pids.get(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                self.pids.pop(name)
                continue
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            self.pids.pop(name)
        self.unlink_system_conf()

    def alive(self) -> dict[str, int]:
        """The daemons of this cluster that still run."""
        return {name: pid for name, pid in self.pids.items() if _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0): look at its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return False
