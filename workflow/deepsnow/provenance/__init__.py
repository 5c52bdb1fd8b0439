"""Provenance sidecars: every result file ``F`` gets ``F.prov.json``.

A sidecar records how ``F`` was made: the command, the stage and its config
section (and that section's hash), every input with its sha256, the package
version, its git commit and dirty flag, a hash of the package code, library
versions, the seed, the host and start/end times. Nothing from the process
environment is recorded, so credentials never reach a sidecar.

:func:`chain` follows the inputs' own sidecars back to the raw scenes;
:func:`check` re-hashes the inputs and says which changed since.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from deepsnow import DeepsnowError, __version__
from deepsnow.io import sha256_file, write_json

SIDECAR_SUFFIX = ".prov.json"
PACKAGE_DIR = Path(__file__).resolve().parents[1]

#: Libraries whose versions are recorded (when installed).
LIBRARIES = (
    "numpy",
    "scipy",
    "rasterio",
    "torch",
    "torchvision",
    "scikit-learn",
    "scikit-image",
    "pandas",
    "matplotlib",
    "sentinelhub",
    "pystac-client",
    "snakemake",
)


def sidecar_path(result: str | os.PathLike) -> Path:
    return Path(str(result) + SIDECAR_SUFFIX)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def config_hash(section) -> str:
    """sha256 of a config section, independent of key order."""
    blob = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """Commit and dirty flag of the repository holding the package, if any."""

    def run(*args):
        return subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()

    try:
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


@functools.lru_cache(maxsize=None)
def code_hash(*modules: str) -> str:
    """sha256 over the source files of package modules, e.g. ``code_hash("data/patches.py")``.

    Paths are relative to the ``deepsnow`` package folder; a folder hashes all
    its ``.py`` files. The Snakefile passes the same hash as a rule param, so a
    change to a stage's code reruns that stage.
    """
    h = hashlib.sha256()
    for mod in sorted(modules):
        p = PACKAGE_DIR / mod
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        if not files or not all(f.exists() for f in files):
            raise DeepsnowError(f"code_hash: no such module {mod!r} under {PACKAGE_DIR}")
        for f in files:
            h.update(str(f.relative_to(PACKAGE_DIR)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def record(
    outputs,
    *,
    stage: str,
    inputs=(),
    config=None,
    section: str | None = None,
    seed=None,
    started: str | None = None,
    code: tuple[str, ...] = (),
    extra: dict | None = None,
    argv: list[str] | None = None,
) -> list[Path]:
    """Write a sidecar next to each output file. Returns the sidecar paths.

    ``inputs`` are files the outputs were made from; each is hashed and, when it
    has a sidecar itself, linked so :func:`chain` can walk back.
    """
    argv = list(argv if argv is not None else ["deepsnow", *sys.argv[1:]])
    ins = []
    for p in inputs:
        p = Path(p)
        ins.append(
            {
                "path": str(p),
                "sha256": sha256_file(p),
                "provenance": str(sidecar_path(p)) if sidecar_path(p).exists() else None,
            }
        )
    base = {
        "stage": stage,
        "command": argv,
        "config_section": section or stage,
        "config": config,
        "config_sha256": config_hash(config) if config is not None else None,
        "inputs": ins,
        "package": {
            "name": "deepsnow",
            "version": __version__,
            **git_state(),
            "code_sha256": code_hash(*code) if code else None,
        },
        "libraries": library_versions(),
        "seed": seed,
        "host": socket.gethostname(),
        "started": started or now(),
        "finished": now(),
    }
    if extra:
        base["extra"] = extra
    written = []
    for out in outputs:
        out = Path(out)
        if not out.exists():
            raise DeepsnowError(f"provenance: output {out} does not exist")
        doc = dict(base, result=str(out), sha256=sha256_file(out) if out.is_file() else None)
        write_json(sidecar_path(out), doc)
        written.append(sidecar_path(out))
    return written


def load(result: str | os.PathLike) -> dict:
    sc = sidecar_path(result)
    if not sc.exists():
        raise DeepsnowError(f"{result}: no provenance sidecar ({sc.name}) found")
    try:
        return json.loads(sc.read_text())
    except json.JSONDecodeError as exc:
        raise DeepsnowError(f"{sc}: unreadable provenance sidecar ({exc})") from exc


def _base_dir(actual: Path, recorded: str) -> Path:
    """The folder the recorded (relative) paths are relative to.

    Sidecars record paths as the command saw them, usually relative to the
    workflow's working directory. Given where ``actual`` really is, strip the
    recorded relative path from its end to find that directory, so a chain can
    be followed from any current directory.
    """
    rec = Path(recorded)
    if rec.is_absolute():
        return Path("/")
    actual = actual.absolute()
    parts = rec.parts
    if len(actual.parts) >= len(parts) and actual.parts[-len(parts):] == parts:
        return Path(*actual.parts[: -len(parts)]) if len(actual.parts) > len(parts) else Path(".")
    return Path(".")


def _resolve(base: Path, recorded: str) -> Path:
    p = Path(recorded)
    return p if p.is_absolute() else base / p


def chain(result: str | os.PathLike, _seen=None) -> list[dict]:
    """The sidecars from ``result`` back to its raw inputs, depth first, each once.

    Each document gets ``_path``: where its result is on this machine now.
    """
    seen = _seen if _seen is not None else set()
    result = Path(result)
    key = str(result.absolute())
    if key in seen:
        return []
    seen.add(key)
    doc = dict(load(result), _path=str(result))
    base = _base_dir(result, doc.get("result", str(result)))
    out = [doc]
    for inp in doc.get("inputs", []):
        path = _resolve(base, inp["path"])
        if inp.get("provenance") and sidecar_path(path).exists():
            out.extend(chain(path, seen))
    return out


def check(result: str | os.PathLike) -> list[dict]:
    """Re-hash every input along the chain; return each changed or vanished file once.

    Each entry has the file's ``input`` path (as recorded), the ``recorded`` and the ``now`` sha256
    (None when the file is gone) and ``used_by``: the results made from it, in chain order. A
    file several results were made from is one entry, not one per consumer; consumers that
    recorded different hashes of it are separate entries, since each names a different change.
    """
    hashes: dict[Path, str | None] = {}  # each file hashed once, however many results used it
    changed: dict[tuple[Path, str], dict] = {}
    for doc in chain(result):
        base = _base_dir(Path(doc["_path"]), doc.get("result", doc["_path"]))
        for inp in doc.get("inputs", []):
            p = _resolve(base, inp["path"]).absolute()
            if p not in hashes:
                hashes[p] = sha256_file(p) if p.exists() else None
            if hashes[p] == inp["sha256"]:
                continue
            entry = changed.setdefault(
                (p, inp["sha256"]),
                {"input": inp["path"], "recorded": inp["sha256"], "now": hashes[p], "used_by": []},
            )
            entry["used_by"].append(doc["result"])
    return list(changed.values())


def format_chain(docs: list[dict]) -> str:
    lines = []
    for doc in docs:
        pkg = doc.get("package", {})
        commit = (pkg.get("git_commit") or "unknown")[:12]
        dirty = " (dirty)" if pkg.get("git_dirty") else ""
        lines.append(f"{doc['result']}")
        lines.append(f"  stage:    {doc['stage']}  [{doc['started']} -> {doc['finished']} on {doc['host']}]")
        lines.append(f"  command:  {' '.join(doc['command'])}")
        lines.append(
            f"  config:   {doc['config_section']} sha256={str(doc.get('config_sha256'))[:16]} "
            f"{json.dumps(doc.get('config'), sort_keys=True)}"
        )
        lines.append(f"  package:  deepsnow {pkg.get('version')} commit {commit}{dirty} code {str(pkg.get('code_sha256'))[:16]}")
        lines.append(f"  seed:     {doc.get('seed')}")
        for inp in doc.get("inputs", []):
            lines.append(f"  input:    {inp['path']} sha256={inp['sha256'][:16]}")
        if doc.get("extra"):
            lines.append(f"  extra:    {json.dumps(doc['extra'], sort_keys=True)}")
    return "\n".join(lines)
