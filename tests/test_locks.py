"""deepsnow.locks: the holder of a run lock is named, even right after it took the lock."""

from __future__ import annotations

import fcntl
import json
import threading
import time

import pytest

from deepsnow import DeepsnowError, locks


def test_a_holder_that_has_not_written_its_details_yet_is_still_named(tmp_path):
    """Two runs started at the same moment: the winner holds the flock a moment before it writes
    its pid; the loser waits for it rather than saying "another process"."""
    path = tmp_path / "run.lock"
    holder = open(path, "a+")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)

    def write_details_late():
        time.sleep(0.3)
        holder.write(json.dumps({"pid": 4242, "host": "h", "started": "s", "command": "snakemake"}))
        holder.flush()

    writer = threading.Thread(target=write_details_late)
    writer.start()
    try:
        with pytest.raises(DeepsnowError, match=r"run is locked by process 4242 on h \(started s: snakemake\)"):
            locks.acquire(path, "run", "Wait.")
    finally:
        writer.join()
        holder.close()


def test_a_holder_that_never_writes_is_another_process(tmp_path):
    path = tmp_path / "run.lock"
    holder = open(path, "a+")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    try:
        with pytest.raises(DeepsnowError, match=r"run is locked by another process \(lock file .*run.lock\)\. Wait\."):
            locks.acquire(path, "run", "Wait.")
    finally:
        holder.close()
    locks.acquire(path, "run", "Wait.").close()  # released with its holder
