"""Assemble domains A (snow-free) and B (snowy) and split them into train and test by area.

Input: patch shards ``patches/<aoi>/<season>.npz`` (docs/formats.md). The area
and season of a shard are taken **from its path**: the parent folder name is
the area, the file stem is the season (``snowfree`` -> domain A, ``snow`` ->
domain B). A shard with patches must agree: each of its ``ids`` starts with
``<aoi>_<season>_`` (checked; an empty shard has no ids to check).

Whole areas are held out for testing, so no test patch overlaps a training
area: ``split.test_aois`` when given, else ``max(1, round(test_fraction *
n_areas))`` areas (Python ``round``, at most ``n_areas - 1``) drawn with
``numpy.random.default_rng(seed)`` from the sorted area names.

Outputs in ``out_dir``: ``trainA.npz``, ``trainB.npz``, ``testA.npz``,
``testB.npz`` (shard arrays concatenated over areas in sorted order, plus
``aoi``), ``manifest.csv`` and ``summary.json``. All six are written to
temporary files first and renamed into place only when all were written.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.areas import SEASONS
from deepsnow.data.bands import image_of
from deepsnow.io import atomic_output, load_npz, save_npz, write_json

log = logging.getLogger(__name__)

SETS = ("trainA", "trainB", "testA", "testB")
DOMAIN_OF_SEASON = {"snowfree": "A", "snow": "B"}
#: Arrays every shard must have besides its image (``rgb``, or ``reflectance`` with ``bands`` and
#: ``encoding``: :func:`deepsnow.data.bands.image_of`); ``truth``, ``truth_snowfall`` and ``landcover`` +
#: ``landcover_targets`` are optional.
SHARD_ARRAYS = (
    "water",
    "ids",
    "row",
    "col",
    "transform",
    "crs",
    "snow_fraction",
    "cloud_fraction",
    "valid_fraction",
    "water_fraction",
)
#: Per-patch arrays concatenated along the first axis.
PER_PATCH = tuple(a for a in SHARD_ARRAYS if a != "crs")
#: Optional per-patch arrays: kept in a set when every shard of it has them.
OPTIONAL_PER_PATCH = ("truth", "truth_snowfall", "landcover")
MANIFEST_COLUMNS = ("patch_id", "aoi", "season", "domain", "split", "row", "col")


def shard_area_season(path: Path) -> tuple[str, str]:
    """``(aoi, season)`` of a shard from its path ``.../<aoi>/<season>.npz``."""
    season = path.stem
    aoi = path.parent.name
    if season not in SEASONS or not aoi:
        raise DeepsnowError(
            f"{path}: cannot tell area and season from the path; expected patches/<aoi>/<season>.npz "
            f"with season one of {list(SEASONS)}"
        )
    return aoi, season


def _load_shard(path: Path) -> dict:
    aoi, season = shard_area_season(path)
    arrays = load_npz(path, required=SHARD_ARRAYS)
    image, bands, encoding = image_of(arrays, path, "patch shard")
    n = arrays[image].shape[0]
    bad = [k for k in PER_PATCH + tuple(o for o in OPTIONAL_PER_PATCH if o in arrays) if arrays[k].shape[:1] != (n,)]
    if bad:
        raise DeepsnowError(f"{path}: arrays {bad} do not have one entry per patch ({n} patches in {image!r})")
    prefix = f"{aoi}_{season}_"
    wrong = [str(i) for i in arrays["ids"] if not str(i).startswith(prefix)]
    if wrong:
        raise DeepsnowError(
            f"{path}: patch ids {wrong[:3]} do not start with {prefix!r}; the shard's folder must be its "
            "area and its file name its season (patches/<aoi>/<season>.npz)"
        )
    crs = np.broadcast_to(arrays.pop("crs").astype(str), (n,))
    for key in ("bands", "encoding"):
        arrays.pop(key, None)
    return {"path": path, "aoi": aoi, "season": season, "arrays": arrays, "crs": crs, "image": image,
            "bands": bands, "encoding": encoding, "n": n}


def choose_test_areas(areas: list[str], params: dict) -> list[str]:
    """The held-out areas: ``params['test_aois']`` (checked) or a seeded random draw."""
    if len(areas) < 2:
        raise DeepsnowError(
            f"a spatial train/test split needs at least 2 areas, but the shards hold only {areas}; "
            "add areas (data.aois, or data.simulator.n_aois)"
        )
    if params["test_aois"]:
        unknown = sorted(set(params["test_aois"]) - set(areas))
        if unknown:
            raise DeepsnowError(f"split.test_aois: {unknown} are not among the areas of the shards {areas}")
        test = sorted(set(params["test_aois"]))
        if len(test) >= len(areas):
            raise DeepsnowError(
                f"split.test_aois: {test} holds out every area; at least one must remain for training"
            )
        return test
    n_test = min(max(1, round(params["test_fraction"] * len(areas))), len(areas) - 1)
    rng = np.random.default_rng(params["seed"])
    return sorted(str(a) for a in rng.choice(np.array(areas), size=n_test, replace=False))


def _concat(shards: list[dict], size: int, image: str) -> dict:
    """Concatenate shard arrays (the image array ``image`` first); each of :data:`OPTIONAL_PER_PATCH` only
    when every shard has it."""
    out = {}
    for key in (image, *PER_PATCH):
        parts = [s["arrays"][key] for s in shards]
        out[key] = np.concatenate(parts, axis=0)
    for key in OPTIONAL_PER_PATCH:
        if shards and all(key in s["arrays"] for s in shards):
            out[key] = np.concatenate([s["arrays"][key] for s in shards], axis=0)
    if "landcover" in out:
        out["landcover_targets"] = _common_targets(shards)
    out["crs"] = (
        np.concatenate([s["crs"] for s in shards]).astype(str) if shards else np.zeros(0, dtype="<U1")
    )
    out["aoi"] = np.concatenate(
        [np.full(s["n"], s["aoi"], dtype=f"<U{max(1, len(s['aoi']))}") for s in shards]
    ).astype(str)
    out["ids"] = out["ids"].astype(str)
    return out


def _common_targets(shards: list[dict]) -> np.ndarray:
    """The ``landcover_targets`` all shards share (their ``landcover`` columns must mean the same)."""
    first = shards[0]["arrays"].get("landcover_targets")
    for s in shards:
        t = s["arrays"].get("landcover_targets")
        if t is None or first is None or list(t.astype(str)) != list(first.astype(str)):
            raise DeepsnowError(
                f"{s['path']}: 'landcover_targets' {None if t is None else list(t)} differ from those of "
                f"{shards[0]['path']} ({None if first is None else list(first)}); cut all shards with one deepsnow version"
            )
    return first.astype(str)


def split_dataset(shard_paths, params: dict, out_dir: str | os.PathLike) -> dict:
    """Build ``trainA/trainB/testA/testB.npz``, ``manifest.csv`` and ``summary.json`` in ``out_dir``.

    ``params`` is the validated ``split`` section (``test_aois``,
    ``test_fraction``, ``seed``). Raises :class:`DeepsnowError` (naming the
    file or key) for unreadable shards, shards of mixed patch sizes, two
    shards of the same area and season, fewer than two areas, unknown
    ``test_aois``, or when any of the four sets would be empty; in every
    such case nothing is written.

    Returns the summary written to ``summary.json``: ``counts`` (patches per
    set), ``train_aois``, ``test_aois``, ``areas``, ``selection``
    (``test_aois`` or ``random``), ``seed``, ``test_fraction``, ``patch_size``
    and ``shards`` (path, aoi, season, patches).
    """
    shards, size = _load_shards(shard_paths)
    image, bands, encoding = shards[0]["image"], shards[0]["bands"], shards[0]["encoding"]
    areas = sorted({s["aoi"] for s in shards})
    test_aois = choose_test_areas(areas, params)
    train_aois = [a for a in areas if a not in test_aois]
    members = _members(shards, train_aois, test_aois)
    counts = {name: int(sum(s["n"] for s in members[name])) for name in SETS}
    _check_no_empty_set(members, counts, train_aois, test_aois)

    datasets = {name: _concat(members[name], size, image) for name in SETS}
    if encoding != "rgb8":  # the band list travels with the patches (an rgb8 set stays as it always was)
        for arrays in datasets.values():
            arrays |= {"bands": np.array(bands, dtype=str), "encoding": np.array(encoding, dtype=str)}
    summary = {
        "counts": counts,
        "train_aois": train_aois,
        "test_aois": test_aois,
        "areas": areas,
        "selection": "test_aois" if params["test_aois"] else "random",
        "seed": params["seed"],
        "test_fraction": params["test_fraction"],
        "patch_size": size,
        "truth": {name: "truth" in datasets[name] for name in SETS},
        "shards": [
            {
                "path": str(s["path"]),
                "aoi": s["aoi"],
                "season": s["season"],
                "patches": s["n"],
            }
            for s in shards
        ],
    }
    if encoding != "rgb8":
        summary |= {"encoding": encoding, "bands": list(bands)}
    _write_all(Path(out_dir), datasets, _manifest_rows(members), summary)
    log.info("split: %s; test areas %s, train areas %s", counts, test_aois, train_aois)
    return summary


def _load_shards(shard_paths) -> tuple[list[dict], int]:
    """The shards, each area and season once, and their common patch size."""
    shards = [_load_shard(Path(p)) for p in shard_paths]
    if not shards:
        raise DeepsnowError("split: no patch shards given")
    seen: dict[tuple[str, str], Path] = {}
    for s in shards:
        key = (s["aoi"], s["season"])
        if key in seen:
            raise DeepsnowError(
                f"{s['path']}: area {key[0]!r} season {key[1]!r} already given by {seen[key]}"
            )
        seen[key] = s["path"]
    first = shards[0]
    for s in shards:
        if (s["encoding"], s["bands"]) != (first["encoding"], first["bands"]):
            raise DeepsnowError(
                f"{s['path']}: patches of encoding {s['encoding']} bands {list(s['bands'])}, but {first['path']} has "
                f"{first['encoding']} bands {list(first['bands'])}; cut all shards with one patches.bands and patches.encoding"
            )
    sizes = {s["arrays"][s["image"]].shape[1:3] for s in shards}
    if len(sizes) > 1:
        detail = ", ".join(f"{s['path']}: {s['arrays'][s['image']].shape[1]} px" for s in shards)
        raise DeepsnowError(
            f"patch shards have different patch sizes ({detail}); cut them with one patches.size"
        )
    return shards, int(next(iter(sizes))[0])


def _members(shards: list[dict], train_aois: list[str], test_aois: list[str]) -> dict[str, list[dict]]:
    """The shards of each set: its split's areas (sorted), its domain's season, then shard order."""
    members = {}
    for name in SETS:
        split, domain = name[:-1], name[-1]
        group = train_aois if split == "train" else test_aois
        members[name] = [
            s for a in group for s in shards if s["aoi"] == a and DOMAIN_OF_SEASON[s["season"]] == domain
        ]
    return members


def _check_no_empty_set(members: dict, counts: dict, train_aois: list[str], test_aois: list[str]) -> None:
    empty = [name for name in SETS if counts[name] == 0]
    if not empty:
        return
    details = "; ".join(
        f"{name} from areas {train_aois if name.startswith('train') else test_aois} "
        f"({', '.join(str(s['path']) for s in members[name]) or 'no shard of that season'})"
        for name in empty
    )
    raise DeepsnowError(
        f"config produces zero patches in {', '.join(empty)}: {details}. Check the 'reason' column of "
        "patches/*.csv (nodata, cloud, ambiguous, season_mismatch) and the patches/mask thresholds, "
        "or choose other split.test_aois"
    )


def _manifest_rows(members: dict[str, list[dict]]) -> list[tuple]:
    """One ``MANIFEST_COLUMNS`` row per patch, sets in ``SETS`` order."""
    rows = []
    for name in SETS:
        split, domain = name[:-1], name[-1]
        for s in members[name]:
            a = s["arrays"]
            for pid, r, c in zip(a["ids"], a["row"], a["col"]):
                rows.append((str(pid), s["aoi"], s["season"], domain, split, int(r), int(c)))
    return rows


def _write_all(out_dir: Path, datasets: dict, manifest: list[tuple], summary: dict) -> None:
    """All six files go to temporary paths; they are renamed into place only when all were written."""
    with contextlib.ExitStack() as stack:
        for name in SETS:
            tmp = stack.enter_context(atomic_output(out_dir / f"{name}.npz", suffix=".npz"))
            save_npz(tmp, **datasets[name])
        tmp = stack.enter_context(atomic_output(out_dir / "manifest.csv", suffix=".csv"))
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows(manifest)
        tmp = stack.enter_context(atomic_output(out_dir / "summary.json", suffix=".json"))
        write_json(tmp, summary)
