"""Shared by the figures: reading and checking inputs, saving, style, notes.

Every reader raises :class:`~deepsnow.DeepsnowError` naming the file and what
was expected, so ``deepsnow figures`` fails before it writes anything.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output, load_npz
from deepsnow.metrics.table import EXTRACTOR_COLUMNS, ROW_KEY_COLUMNS

log = logging.getLogger("deepsnow.figures")

#: matplotlib settings of every figure: sizes readable when printed at the figure's own size
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "figure.titlesize": 10,
    "axes.grid": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "pdf.fonttype": 42,  # TrueType in the PDF: selectable text
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}

METRICS_REQUIRED = (*ROW_KEY_COLUMNS, *EXTRACTOR_COLUMNS)
LOSSES_REQUIRED = ("epoch", "G_A", "D_A", "cycle_A")
#: the loss columns of a one-sided model's log (CUT / FastCUT; deepsnow.gan.cut_model.LOSS_NAMES)
CUT_LOSSES_REQUIRED = ("epoch", "G_GAN", "D_real", "D_fake", "NCE")
CORRELATIONS_REQUIRED = ("metric", "paired", "direction", "spearman_rho", "p_value", "n_epochs", "expected_sign")
PCA_REQUIRED = ("source", "epoch", "direction", "id", "pc1")


@dataclass
class Drawn:
    """What a figure's builder returns; ``deepsnow figures`` writes it."""

    figure: object  # matplotlib Figure
    inputs: list[Path]  # the files it was drawn from, for provenance
    extra: dict  # summary for the provenance sidecar
    #: extra outputs (the figure table's ``outputs``): option name -> writer(path)
    writes: dict[str, Callable[[Path], None]] = field(default_factory=dict)


@contextlib.contextmanager
def style():
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float):
    """A figure with constrained layout, not tied to pyplot (no global state, no GUI)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, png: Path, pdf: Path, dpi: int) -> None:
    """Write ``fig`` as PNG and PDF, each atomically (a partial file never appears)."""
    png, pdf = Path(png), Path(pdf)
    with style():
        with atomic_output(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
        with atomic_output(pdf, suffix=".pdf") as tmp:
            fig.savefig(tmp, format="pdf", dpi=dpi)


def suptitle(fig, text: str) -> None:
    """The figure title, each line wrapped to the figure's width (about 12 characters per inch at 10 pt)."""
    import textwrap

    width = max(20, int(fig.get_size_inches()[0] * 12))
    lines = [w for line in text.split("\n") for w in (textwrap.wrap(line, width) or [""])]
    fig.suptitle("\n".join(lines))


def epoch_axis(ax) -> None:
    """An x axis of epochs: integer ticks (at most about 6), labelled."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.set_xlabel("epoch")


def panel_label(ax, letter: str, title: str = "") -> None:
    ax.set_title(f"({letter}) {title}".rstrip(), loc="left")


# ----------------------------------------------------------------------------- CSV tables


def read_csv(path, required=(), what: str = "table", allow_empty: bool = False):
    """Read a CSV with pandas, checking it exists, parses and holds ``required`` columns."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: file not found ({what})")
    _check_csv_complete(path, what, required)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DeepsnowError(f"{path}: empty file, expected a {what} with columns {list(required)}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DeepsnowError(f"{path}: not a readable CSV {what} ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DeepsnowError(f"{path}: {what} lacks columns {missing}; found {list(df.columns)}")
    if not allow_empty and len(df) == 0:
        raise DeepsnowError(f"{path}: {what} has no rows")
    return df


def _check_csv_complete(path: Path, what: str, required) -> None:
    """Refuse a CSV cut short: an unfinished last line, or records whose field count differs from the header's.

    Every table of the workflow ends with a newline and has as many fields per record as
    columns; pandas would read a truncated one silently, with the missing cells as NaN.
    """
    import csv
    import io

    try:
        text = path.read_text(encoding="utf-8")
        records = list(csv.reader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise DeepsnowError(f"{path}: not a readable CSV {what} ({exc}); expected a table with columns {list(required)}") from exc
    if text.strip() and not text.endswith("\n"):
        raise DeepsnowError(
            f"{path}: {what} ends in an incomplete line (no final newline): truncated? "
            f"expected a complete CSV with columns {list(required)}"
        )
    records = [r for r in records if r]
    if records:
        width = len(records[0])
        short = [i for i, r in enumerate(records[1:], start=2) if len(r) != width]
        if short:
            raise DeepsnowError(
                f"{path}: {what} records {short[:5]} have a different number of fields than the header's {width} "
                "(truncated or corrupt?)"
            )


def numeric(df, column: str, path) -> np.ndarray:
    """A column as float (empty cells NaN); a non-numeric cell is an error naming the file."""
    import pandas as pd

    if column not in df.columns:
        raise DeepsnowError(f"{path}: lacks column {column!r}; found {list(df.columns)}")
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna() & (df[column].astype(str).str.strip() != "")
    if bad.any():
        raise DeepsnowError(f"{path}: column {column!r} holds non-numeric values {df[column][bad].head(3).tolist()}")
    return values.to_numpy(dtype=float)


def direction_rows(df, direction: str, path):
    """Rows of one direction, sorted by epoch, with an integer epoch column checked unique."""
    rows = df[df["direction"].astype(str) == direction].copy()
    if rows.empty:
        raise DeepsnowError(f"{path}: no {direction} rows (directions present: {sorted(df['direction'].astype(str).unique())})")
    ep = numeric(rows, "epoch", path)
    if np.isnan(ep).any():
        raise DeepsnowError(f"{path}: {direction} rows with an empty epoch")
    rows["epoch"] = ep.astype(int)
    if rows["epoch"].duplicated().any():
        raise DeepsnowError(f"{path}: epoch(s) {sorted(set(rows['epoch'][rows['epoch'].duplicated()]))} appear twice for {direction}")
    return rows.sort_values("epoch").reset_index(drop=True)


def _truthy(v) -> bool | None:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    return None


NOT_COMPARABLE = "not comparable with published values"


def weights_note(df, kinds=("inception", "resnet")) -> str:
    """Title suffix when any feature extractor of ``kinds`` used random (non-pretrained) weights, else "".

    Reads the ``<kind>_pretrained`` / ``<kind>_weights`` / ``<kind>_extractor``
    columns of metrics.csv (``df``: a DataFrame or a list of row dicts).
    """
    rows = df.to_dict("records") if hasattr(df, "to_dict") else list(df)
    names = []
    for kind in kinds:
        random_w = False
        label = kind
        for r in rows:
            pre = _truthy(r.get(f"{kind}_pretrained"))
            weights = str(r.get(f"{kind}_weights", "")).strip().lower()
            label = str(r.get(f"{kind}_extractor") or kind)
            if pre is False or weights.startswith("random"):
                random_w = True
                break
        if random_w:
            names.append(_pretty_extractor(label, kind))
    if not names:
        return ""
    return f" — RANDOM (non-pretrained) {'/'.join(names)} weights: {NOT_COMPARABLE}"


def summary_weights_note(pretrained, weights, extractor: str = "resnet50") -> str:
    """The same note from a PCA summary's ``pretrained``/``weights``."""
    if _truthy(pretrained) is False or str(weights).strip().lower().startswith("random"):
        return f" — RANDOM (non-pretrained) {_pretty_extractor(extractor, 'resnet')} weights: {NOT_COMPARABLE}"
    return ""


def _pretty_extractor(name: str, kind: str) -> str:
    low = name.lower()
    if low.startswith("resnet50") or low == "resnet-50":
        return "ResNet-50"
    if low.startswith("inception"):
        return "Inception"
    return name


# ----------------------------------------------------------------------------- where the data came from

#: How figures name the source of testA's patches (``data.source``); workflow/report/figure.rst
#: uses the same words in its captions (tests/test_figures.py checks they agree).
DATA_LABELS = {
    "simulator": "simulator data",
    "sentinelhub": "Sentinel-2 L2A from Sentinel Hub",
    "stac": "Sentinel-2 L2A from a STAC API",
}
#: When testA's provenance does not say (no sidecars, e.g. files copied without them)
UNKNOWN_DATA = "Sentinel-2-like data"


def data_source(test_a) -> str | None:
    """Where testA's patches came from: ``data.source`` of the stage that acquired its scenes.

    Read from testA's provenance chain (split <- patches <- simulate or download), not from the
    config: the figures stage sees only its own section, and the chain is what the patches
    really came from. Several sources are joined with "+"; None when the chain does not say.
    """
    from deepsnow import provenance

    try:
        docs = provenance.chain(test_a)
    except (DeepsnowError, KeyError, TypeError) as exc:
        log.info("%s: no readable provenance chain (%s); data source unknown", test_a, exc)
        return None
    found = []
    for doc in docs:
        if doc.get("stage") == "simulate":
            found.append("simulator")
        elif doc.get("stage") == "download":
            found.append((doc.get("extra") or {}).get("source") or (doc.get("config") or {}).get("source"))
    found = sorted({f for f in found if f})
    return "+".join(found) or None


def data_label(source: str | None) -> str:
    """The words a figure uses for ``source`` (see :func:`data_source`)."""
    if not source:
        return UNKNOWN_DATA
    return " and ".join(DATA_LABELS.get(s, s) for s in source.split("+"))


# ----------------------------------------------------------------------------- images


#: ``patches.rgb_max`` and ``patches.rgb_gamma``'s defaults: how reflectance is rendered to RGB
DEFAULT_RGB_VIEW = (1.0, 2.2)


def _reflectance_view(d: dict, path, rgb_view) -> dict:
    """A reflectance testA (``encoding``, ``bands``, ``reflectance``; docs/bands.md) seen as the paper's
    rendering: its ``rgb`` (and ``truth``) the RGB composite as the patches stage renders RGB, and the
    reflectance kept (``reflectance``, ``bands``, ``rgb_view``) for the false-colour composite."""
    from deepsnow.data.render import render_composite

    encoding = str(np.asarray(d["encoding"]))
    if encoding != "reflectance" or "bands" not in d or "reflectance" not in d:
        raise DeepsnowError(f"{path}: array 'encoding' is {encoding!r}: a reflectance test set holds 'reflectance' and 'bands'")
    bands = tuple(str(b) for b in np.asarray(d["bands"]).ravel())
    out = {"reflectance": d["reflectance"], "bands": bands, "rgb_view": tuple(rgb_view)}
    for key in ("reflectance", "truth"):
        if key in d:
            out["rgb" if key == "reflectance" else key] = render_composite(d[key], bands, *rgb_view, what=f"{path}:{key}")
    return {**d, **out}


def load_test_a(path, need_water: bool = False, rgb_view=DEFAULT_RGB_VIEW) -> dict:
    """dataset/testA.npz: ``rgb`` (N,S,S,3) uint8 and ``ids``; ``water`` when asked. A reflectance testA is
    seen as its RGB composite rendered with ``rgb_view`` = (rgb_max, rgb_gamma) (:func:`_reflectance_view`)."""
    d = load_npz(path, required=("ids",) + (("water",) if need_water else ()))
    if "encoding" in d:
        d = _reflectance_view(d, path, rgb_view)
    if "rgb" not in d:
        raise DeepsnowError(f"{path}: missing arrays ['rgb']; found {sorted(d)}")
    rgb = d["rgb"]
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.shape[1] < 2 or rgb.shape[2] < 2:
        raise DeepsnowError(f"{path}: 'rgb' should be (N, S, S, 3) images, got shape {rgb.shape}")
    if len(rgb) == 0:
        raise DeepsnowError(f"{path}: holds no test patches")
    ids = d["ids"].astype(str)
    if ids.shape != (len(rgb),):
        raise DeepsnowError(f"{path}: 'ids' shape {ids.shape} does not match {len(rgb)} patches")
    if len(set(ids)) != len(ids):
        raise DeepsnowError(f"{path}: patch ids are not unique")
    out = {"rgb": rgb, "ids": ids, "path": Path(path)}
    if "water" in d:
        water = d["water"].astype(bool)
        if water.shape != rgb.shape[:3]:
            raise DeepsnowError(f"{path}: 'water' shape {water.shape} does not match 'rgb' {rgb.shape[:3]}")
        out["water"] = water
    if "truth" in d:
        if d["truth"].shape != rgb.shape:
            raise DeepsnowError(f"{path}: 'truth' shape {d['truth'].shape} does not match 'rgb' {rgb.shape}")
        out["truth"] = d["truth"]
    out |= {k: d[k] for k in ("reflectance", "bands", "rgb_view") if k in d}
    return out


def rgb_view(params: dict) -> tuple[float, float]:
    """(rgb_max, rgb_gamma) a figure renders reflectance with: ``params["rgb_view"]`` (the command's
    ``--rgb-max``/``--rgb-gamma``), else the patches stage's defaults."""
    return tuple(params.get("rgb_view", DEFAULT_RGB_VIEW))


def false_colour(test_a: dict):
    """testA's false-colour composite (B11, B08, B04) ``(N, S, S, 3) uint8``, or None where testA is 8-bit
    RGB or lacks one of those bands."""
    from deepsnow.data.render import FALSE_COLOUR, has_bands, render_composite

    if "reflectance" not in test_a or not has_bands(test_a["bands"], FALSE_COLOUR):
        return None
    return render_composite(test_a["reflectance"], test_a["bands"], *test_a["rgb_view"], composite=FALSE_COLOUR)


def sample_epoch(path) -> int:
    """The ``epoch`` of a samples file, read without loading its images."""
    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: file not found (samples)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "epoch" not in data.files:
                raise DeepsnowError(f"{path}: missing array 'epoch'; found {sorted(data.files)}")
            return int(np.asarray(data["epoch"]).reshape(-1)[0])
    except DeepsnowError:
        raise
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable samples .npz ({type(exc).__name__}: {exc})") from exc


def sample_epochs(paths) -> dict[int, Path]:
    """``{epoch: path}`` of samples files; the same epoch twice is an error."""
    if not paths:
        raise DeepsnowError("no samples files given (--samples)")
    out: dict[int, Path] = {}
    for p in paths:
        e = sample_epoch(p)
        if e in out:
            raise DeepsnowError(f"{p}: epoch {e} appears twice (also in {out[e]})")
        out[e] = Path(p)
    return dict(sorted(out.items()))


def _samples_view(d: dict, path, test_a: dict, composite) -> np.ndarray:
    """``fake_B`` as drawn: 8-bit RGB as stored, reflectance samples as the ``composite`` of their bands
    (which must be testA's), rendered as testA is (``test_a["rgb_view"]``)."""
    from deepsnow.data.render import TRUE_COLOUR, render_composite

    bands = tuple(str(b) for b in np.asarray(d["bands"]).ravel()) if "bands" in d else None
    if bands != test_a.get("bands"):
        raise DeepsnowError(
            f"{path}: samples in bands {list(bands) if bands else 'rgb8'}, but testA {test_a['path']} is in "
            f"{list(test_a['bands']) if test_a.get('bands') else 'rgb8'}"
        )
    if bands is None:
        if tuple(composite) != TRUE_COLOUR:
            raise DeepsnowError(f"{path}: 8-bit RGB samples have no {list(composite)} composite")
        return d["fake_B"]
    return render_composite(d["fake_B"], bands, *test_a["rgb_view"], composite=composite, what=f"{path}:fake_B")


def load_translated(path, test_a: dict, composite=("B04", "B03", "B02")) -> np.ndarray:
    """``fake_B`` of a samples file reordered to testA order: (N, S, S, 3), one per testA patch
    (reflectance samples: their ``composite``, by default the RGB one, as :func:`_samples_view` renders it).

    Pairs by id; every testA patch must have its translation.
    """
    d = load_npz(path, required=("fake_B", "ids_A"))
    fake, ids = _samples_view(d, path, test_a, composite), d["ids_A"].astype(str)
    if fake.ndim != 4 or fake.shape[1:] != test_a["rgb"].shape[1:]:
        raise DeepsnowError(f"{path}: 'fake_B' shape {fake.shape} does not match testA patches {test_a['rgb'].shape[1:]}")
    if ids.shape != (len(fake),):
        raise DeepsnowError(f"{path}: 'ids_A' shape {ids.shape} does not match {len(fake)} translated patches")
    where = {k: i for i, k in enumerate(ids)}
    missing = [k for k in test_a["ids"] if k not in where]
    if missing:
        raise DeepsnowError(
            f"{path}: no translation of {len(missing)} testA patch(es) of {test_a['path']}, e.g. {missing[:3]}"
        )
    return fake[[where[k] for k in test_a["ids"]]]


def choose_epoch(epochs, wanted: int, key: str = "figures.epoch") -> int:
    """``wanted`` if present, the last epoch when ``wanted`` is 0; else an error listing those present."""
    epochs = sorted(epochs)
    if wanted == 0:
        return epochs[-1]
    if wanted not in epochs:
        raise DeepsnowError(f"{key} = {wanted}: no samples of that epoch given (epochs {epochs})")
    return wanted


def select_epochs(wanted, available) -> tuple[list[int], str]:
    """Figure 4's epochs: the wanted ones when the run has them all; else its first, middle and last.

    A run shorter than the wanted epochs (1, 10, 50 of a 20-epoch run) would otherwise show the
    few it has, often epoch 1 alone, which says nothing about how training went. Returns the
    epochs and a note saying what was substituted ("" if nothing).
    """
    available = sorted(set(int(e) for e in available))
    if not available:
        raise DeepsnowError("no epochs available")
    wanted = list(dict.fromkeys(int(w) for w in wanted))
    missing = [w for w in wanted if w not in available]
    if not missing:
        return sorted(wanted), ""
    mid = available[(len(available) - 1) // 2]
    fallback = sorted({available[0], mid, available[-1]})
    absent = f"none of epochs {wanted}" if len(missing) == len(wanted) else f"epochs {missing} not"
    return fallback, f"{absent} in this run: showing the first/middle/last saved epochs {fallback}"


def closeup_window(window, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``[row, col, height, width]`` clipped to a patch of ``size`` = (H, W); at least 1x1 px."""
    h, w = size
    r, c, hh, ww = (int(v) for v in window)
    r = min(max(r, 0), h - 1)
    c = min(max(c, 0), w - 1)
    hh = max(1, min(hh, h - r))
    ww = max(1, min(ww, w - c))
    if (r, c, hh, ww) != tuple(int(v) for v in window):
        log.info("close-up window %s clipped to %s for %dx%d px patches", list(window), [r, c, hh, ww], h, w)
    return r, c, hh, ww


def check_patch_index(index: int, test_a: dict) -> int:
    n = len(test_a["rgb"])
    if not 0 <= index < n:
        raise DeepsnowError(f"figures.closeup_patch = {index}: {test_a['path']} holds only {n} test patches (0..{n - 1})")
    return index
