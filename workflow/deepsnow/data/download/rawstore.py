"""Raw uint16 bands of one acquisition on the area's grid, kept on disk and read back by rows.

A STAC download reads each asset onto the output grid in full-width row windows; the windows go
into one ``.npy`` file per band in a folder (the pixel cache entry, or a scratch folder beside the
output), so a full Sentinel-2 tile (six bands of 10,980² uint16: 1.4 GB) is never whole in memory.
Every access maps the file for the rows it needs and unmaps it again, so the resident memory is a
window, not the band (a mapping kept open would count every page it touched).

Folder layout: ``<band>.npy`` (uint16, C order, the grid's height x width) and ``grid.json``
(the :class:`~deepsnow.data.download.common.Grid` fields), written last: a folder without it is an
incomplete entry.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from deepsnow.io import DeepsnowError

GRID_FILE = "grid.json"


class RawBands:
    """``<band>.npy`` files of one shape under ``folder``; ``bands[band][r0:r1]`` reads rows."""

    def __init__(self, folder, bands, shape: tuple[int, int]):
        self.folder, self.bands, self.shape = Path(folder), tuple(bands), (int(shape[0]), int(shape[1]))

    @classmethod
    def create(cls, folder, bands, shape) -> "RawBands":
        """Zero-filled band files (sparse where the filesystem allows) in a new ``folder``."""
        store = cls(folder, bands, shape)
        store.folder.mkdir(parents=True, exist_ok=False)
        for b in store.bands:
            m = np.lib.format.open_memmap(store.path(b), mode="w+", dtype=np.uint16, shape=store.shape)
            m.flush()
            del m  # the last reference: unmapped now (CPython), as after every access below
        return store

    @classmethod
    def open(cls, folder, bands, shape) -> "RawBands":
        """An existing entry; :class:`DeepsnowError` naming the file when a band is missing or of another shape."""
        store = cls(folder, bands, shape)
        for b in store.bands:
            try:
                m = np.load(store.path(b), mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DeepsnowError(f"{store.path(b)}: unreadable band file ({exc})") from exc
            ok = m.shape == store.shape and m.dtype == np.uint16
            shape_found, dtype_found = m.shape, m.dtype
            del m
            if not ok:
                raise DeepsnowError(
                    f"{store.path(b)}: expected uint16 {store.shape}, found {dtype_found} {shape_found}"
                )
        return store

    def path(self, band: str) -> Path:
        return self.folder / f"{band}.npy"

    def write(self, band: str, row0: int, rows: np.ndarray) -> None:
        m = np.lib.format.open_memmap(self.path(band), mode="r+")
        m[row0 : row0 + rows.shape[0]] = rows
        m.flush()

    def read(self, band: str, row0: int, row1: int) -> np.ndarray:
        m = np.load(self.path(band), mmap_mode="r")
        return np.array(m[row0:row1])  # a copy: the mapping goes with ``m`` on return

    def __getitem__(self, band: str) -> "BandRows":
        return BandRows(self, band)


class BandRows:
    """One band of a :class:`RawBands`, sliced by rows like an array (``band[r0:r1]``)."""

    def __init__(self, store: RawBands, band: str):
        self.store, self.band, self.shape = store, band, store.shape

    def __getitem__(self, rows) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("BandRows takes a row slice (band[r0:r1])")
        r0, r1, _ = rows.indices(self.shape[0])
        return self.store.read(self.band, r0, max(r0, r1))



def write_grid(folder, grid_fields: dict) -> None:
    """``grid.json`` last, atomically: the entry is complete from then on."""
    folder = Path(folder)
    tmp = folder / f".{GRID_FILE}.tmp"
    tmp.write_text(json.dumps(grid_fields, sort_keys=True))
    os.replace(tmp, folder / GRID_FILE)


def read_grid(folder) -> dict:
    f = Path(folder) / GRID_FILE
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise DeepsnowError(f"{f}: incomplete or damaged pixel cache entry ({exc})") from exc


def remove(folder) -> None:
    shutil.rmtree(folder, ignore_errors=True)
