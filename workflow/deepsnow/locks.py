"""Exclusive locks that die with their process (``fcntl.flock``), so a killed holder never leaves
a stale lock behind.

Used for a whole workflow run (Snakemake's own directory lock is a check-then-write that two
runs started at the same moment can both pass) and for a training state folder (a training
process orphaned by a killed Snakemake must not share its state with a rerun's).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from deepsnow import DeepsnowError

_held: dict[str, object] = {}


def _describe(fh, wait: float = 2.0) -> str:
    """The holder as its lock file names it. A holder that has just taken the lock writes its
    details a moment later: an empty or half-written file is read again for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fh.seek(0)
            info = json.loads(fh.read() or "{}")
        except (OSError, ValueError):
            info = {}
        if info:
            return f"process {info.get('pid')} on {info.get('host')} (started {info.get('started')}: {info.get('command')})"
        if time.monotonic() >= deadline:
            return "another process"
        time.sleep(0.05)


def acquire(path: str | os.PathLike, what: str, advice: str):
    """Take an exclusive lock on ``path`` or raise :class:`DeepsnowError` naming its holder.

    Returns the open file; the lock lasts while it stays open (or the process lives).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(fh)
        fh.close()
        raise DeepsnowError(f"{what} is locked by {holder} (lock file {path}). {advice}") from None
    fh.seek(0)
    fh.truncate()
    fh.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join(sys.argv[:3]),
            }
        )
    )
    fh.flush()
    return fh


def hold_for_process(path: str | os.PathLike, what: str, advice: str) -> None:
    """:func:`acquire` and keep the lock until this process exits (idempotent per path)."""
    key = str(Path(path).resolve())
    if key not in _held:
        _held[key] = acquire(path, what, advice)


@contextlib.contextmanager
def held(path: str | os.PathLike, what: str, advice: str):
    """:func:`acquire` for the duration of a ``with`` block."""
    fh = acquire(path, what, advice)
    try:
        yield
    finally:
        fh.close()
