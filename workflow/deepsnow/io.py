"""Small I/O helpers shared by every stage: atomic writes and safe array files.

Nothing a stage writes may look complete when it is not: every writer goes
through :func:`atomic_output`, which hands out a temporary path next to the
target and renames it into place only when the block finishes without error.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from deepsnow import DeepsnowError


def glob_escape(name: str) -> str:
    """``name`` with glob wildcards taken literally."""
    import glob

    return glob.escape(name)


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set it, which would
    race with other threads creating files); falls back to set-and-restore off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched
    (an earlier complete file stays; a missing one stays missing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temporaries of this target left by a killed writer (one writer per output at a time:
    # Snakemake's and deepsnow's run locks, and the training state lock, see deepsnow.locks).
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.part*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    suffix = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file owner-only (0600); a result gets the mode a plain open() would
        # give it, so collaborators on shared or cluster storage can read it (umask 022: 0644)
        os.chmod(tmp_path, 0o666 & ~current_umask())
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Save arrays to a compressed ``.npz``, atomically, never pickling."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object; refusing to pickle it into {path}")
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


class NpzArray:
    """An array of a streamed ``.npz`` (:func:`save_npz_stream`): its dtype, shape and C-order chunks.

    ``chunks`` is an iterable of arrays whose C-order elements, one after the other, are
    the array's; they are produced while the file is written, so the whole array is never
    in memory.
    """

    def __init__(self, dtype, shape, chunks):
        self.dtype, self.shape, self.chunks = np.dtype(dtype), tuple(int(n) for n in shape), chunks


def save_npz_stream(path: str | os.PathLike, arrays: dict) -> None:
    """Save arrays to a compressed ``.npz`` as :func:`save_npz` does, atomically, never pickling;
    a value may be an :class:`NpzArray`, written chunk by chunk. ``np.load`` reads back the same
    arrays as from ``save_npz(path, **arrays)`` with the chunks concatenated."""
    import zipfile

    for key, value in arrays.items():
        dtype = value.dtype if isinstance(value, NpzArray) else np.asarray(value).dtype
        if dtype == object:
            raise TypeError(f"array {key!r} has dtype object; refusing to pickle it into {path}")
    with atomic_output(path, suffix=".npz") as tmp:
        with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for key, value in arrays.items():
                with zf.open(key + ".npy", "w", force_zip64=True) as fh:
                    if isinstance(value, NpzArray):
                        _write_npy_chunks(fh, key, value, path)
                    else:
                        np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def _write_npy_chunks(fh, key: str, value: NpzArray, path) -> None:
    """The ``.npy`` header, then the chunks; their element count must match the shape."""
    header = {"descr": np.lib.format.dtype_to_descr(value.dtype), "fortran_order": False, "shape": value.shape}
    np.lib.format.write_array_header_1_0(fh, header)
    expected, n = int(np.prod(value.shape, dtype=np.int64)), 0
    for chunk in value.chunks:
        chunk = np.ascontiguousarray(chunk, dtype=value.dtype)
        n += chunk.size
        if n > expected:
            break
        fh.write(chunk.tobytes())
    if n != expected:
        raise ValueError(f"array {key!r} of {path}: chunks hold {n} elements, shape {value.shape} needs {expected}")


def load_npz(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load a ``.npz`` written by :func:`save_npz`; never unpickles.

    Raises :class:`DeepsnowError` naming the file when it is missing, empty,
    truncated or corrupt, not an ``.npz`` archive, holds pickled Python objects
    (object arrays, or a pickle instead of an archive), or lacks one of ``required``.
    """
    import zipfile

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: file not found")
    expected = "expected a .npz archive of arrays" + (f" {list(required)}" if required else "")
    size = path.stat().st_size
    if size == 0:
        raise DeepsnowError(f"{path}: empty file (0 bytes), {expected} (truncated or never written?)")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(6)
        if looks_pickled(head):
            raise DeepsnowError(
                f"{path}: refusing to load: the file holds pickled Python objects, not a .npz archive "
                "(deepsnow never unpickles data files)"
            )
        what = "a single .npy array" if head.startswith(b"\x93NUMPY") else "not a zip archive"
        raise DeepsnowError(f"{path}: not a readable .npz archive ({what}; truncated or corrupt?), {expected}")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                try:
                    arrays[key] = data[key]
                except ValueError as exc:
                    if "pickle" not in str(exc):
                        raise
                    raise DeepsnowError(
                        f"{path}: refusing to load: array {key!r} holds pickled Python objects (an object "
                        "array); deepsnow reads .npz files with allow_pickle=False"
                    ) from exc
    except DeepsnowError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, EOFError, zlib.error, OSError, a bad .npy header...
        raise DeepsnowError(
            f"{path}: not a readable .npz archive (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DeepsnowError(f"{path}: missing arrays {missing}; found {sorted(arrays)}")
    return arrays


def looks_pickled(head: bytes) -> bool:
    """Whether a file starts like a pickle stream (protocol 2 to 5: the PROTO opcode, then the protocol)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
