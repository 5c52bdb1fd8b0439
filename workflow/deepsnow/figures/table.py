"""The figures, one row each: the single source of what a figure is and what it is drawn from.

The workflow (``workflow/rules/common.smk``) derives from :data:`FIGURES` each
figure's rule inputs, the ``{n}`` wildcard of rule ``figure`` and the list of
final outputs; ``deepsnow figures`` derives its ``--<input>`` options and checks
that a figure's inputs are given.

**Adding a figure** is one row in :data:`FIGURES` plus its builder, written next
to its drawing function in the module named for what the figure shows (a builder
reads and checks its input files, draws, and returns a
:class:`~deepsnow.figures.common.Drawn`; nothing is written until
``deepsnow figures`` saves it). A figure that reads a new kind of file adds it to
:data:`INPUTS`. A figure with extra outputs (``outputs=``) has its own rule in
``figures.smk``, as Figure 7 has for ``artifacts.csv``.

**Under a sweep** (docs/sweeps.md) every variant draws its own Figures 1-10; a figure with ``groups``
(Figures 3, 5, 7) is drawn once more from the comparison as ``comparison/figureN.png``, each group's
mean ± s.d. over its seeds, and a ``sweep`` figure (Figure 11) is drawn only from the comparison.
``deepsnow figures --figure N --comparison-summary ...`` draws the group version.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable

from deepsnow import DeepsnowError
from deepsnow.figures import change, common, comparison, generator_artifacts, pca, synthetic, training, translations, validity

log = logging.getLogger("deepsnow.figures")

#: input name (option ``--test-a``, rule input ``test_a``) -> its path under results/<run>/;
#: a path with ``{epoch}`` is one file per saved epoch, all of which the rule gives
INPUTS = {
    "test_a": "dataset/testA.npz",
    "samples": "samples/epoch_{epoch:03d}.npz",
    "losses": "train/losses.csv",
    "metrics": "metrics/metrics.csv",
    "correlations": "metrics/correlations.csv",
    "pca": "metrics/pca.csv",
    "pca_summary": "metrics/pca.json",
    "catalog": "synthetic/catalog.json",
    "change_summary": "change/summary.json",
    "comparison_summary": "comparison/summary.csv",
    "validity": "metrics/validity.csv",
}


@dataclass(frozen=True)
class Figure:
    title: str
    #: names in :data:`INPUTS`; the builder gets them as keyword arguments (paths)
    inputs: tuple[str, ...]
    #: ``build(params, **inputs) -> Drawn``: read and check the inputs, then draw
    build: Callable[..., common.Drawn]
    #: extra outputs: option name (``--output-csv``) -> path under results/<run>/
    outputs: dict[str, str] = field(default_factory=dict)
    #: drawn once per sweep from its comparison (comparison/figureN.png), not per variant
    sweep: bool = False
    #: the figure's per-group version under a sweep (a ``sweep`` figure, comparison/figureN.png)
    groups: Figure | None = None


def _per_group(title: str, build) -> Figure:
    return Figure(title + ", per variant group (mean ± s.d. over seeds)", ("comparison_summary",), build, sweep=True)


FIGURES: dict[int, Figure] = {
    1: Figure("test patches and their snow translations", ("test_a", "samples"), translations.build_figure1),
    2: Figure("close-up: original, translated, per-band differences", ("test_a", "samples"), translations.build_figure2),
    3: Figure(
        "training dynamics: losses, FID, FRD, CRD",
        ("losses", "metrics"),
        training.build_figure3,
        groups=_per_group("training dynamics", comparison.build_figure3),
    ),
    4: Figure("close-up at chosen epochs with the all-band L1 map", ("test_a", "samples"), translations.build_figure4),
    5: Figure(
        "random-forest log loss per epoch",
        ("metrics",),
        training.build_figure5,
        groups=_per_group("random-forest log loss", comparison.build_figure5),
    ),
    6: Figure("PCA pair plot", ("pca", "pca_summary"), pca.build_figure6),
    7: Figure(
        "artifact measures per epoch (+ artifacts.csv)",
        ("test_a", "samples"),
        generator_artifacts.build_figure7,
        outputs={"output_csv": "figures/artifacts.csv"},
        groups=_per_group("checkerboard score", comparison.build_figure7),
    ),
    8: Figure("paired ground-truth error beside the unpaired metrics", ("metrics", "correlations"), training.build_figure8),
    9: Figure("synthetic change products at scene scale, with a zoomed window", ("catalog",), synthetic.build_figure9),
    10: Figure(
        "change detectors on real vs synthetic vs true after-images: ROC curves, score histograms",
        ("change_summary",),
        change.build_figure10,
    ),
    11: Figure(
        "sweep: variant groups' metrics per epoch and at the last epoch, mean ± s.d. over seeds",
        ("comparison_summary",),
        comparison.build_figure11,
        sweep=True,
    ),
    12: Figure(
        "metric validity: every metric along degradation ladders, normalised, with bootstrap bands",
        ("validity",),
        validity.build_figure12,
    ),
}


def option(name: str) -> str:
    """The command-line option of an input or extra output: test_a -> --test-a."""
    return "--" + name.replace("_", "-")


def per_epoch(name: str) -> bool:
    return "{epoch" in INPUTS[name]


def shown_path(name: str) -> str:
    """An input's path as the help shows it: samples/epoch_NNN.npz files."""
    if per_epoch(name):
        return re.sub(r"\{epoch[^}]*\}", "NNN", INPUTS[name]) + " files"
    return INPUTS[name]


def extra_outputs() -> dict[str, str]:
    """Every figure's extra outputs: option name -> path under results/<run>/."""
    return {name: path for fig in FIGURES.values() for name, path in fig.outputs.items()}


def sweep_figures() -> dict[int, Figure]:
    """The figures drawn from a sweep's comparison: number -> the (group version of the) figure."""
    return {n: fig if fig.sweep else fig.groups for n, fig in FIGURES.items() if fig.sweep or fig.groups}


def figure_for(number: int, given: dict) -> Figure:
    """Figure ``number``, or its per-group version when a sweep's comparison summary is given."""
    if number not in FIGURES:
        raise DeepsnowError(f"--figure {number}: no such figure (1..{max(FIGURES)})")
    fig = FIGURES[number]
    return fig.groups if fig.groups is not None and given.get("comparison_summary") else fig


def check_inputs(number: int, given: dict) -> None:
    """Every input (and extra output) figure ``number`` needs is given (non-empty)."""
    fig = figure_for(number, given)
    needed = (*fig.inputs, *fig.outputs)
    missing = [option(k) for k in needed if not given.get(k)]
    if missing:
        raise DeepsnowError(f"figure {number} ({fig.title}) needs {', '.join(missing)}")
    unused = [option(k) for k, v in given.items() if v and k not in needed]
    if unused:
        log.warning("figure %d does not use %s; ignored", number, ", ".join(unused))


def make_figure(number: int, params: dict, **given) -> common.Drawn:
    """Figure ``number`` from ``given`` (input and extra output names -> paths); nothing is written."""
    check_inputs(number, given)
    fig = figure_for(number, given)
    with common.style():  # font sizes are fixed when the text is created
        return fig.build(params, **{k: given[k] for k in fig.inputs})
