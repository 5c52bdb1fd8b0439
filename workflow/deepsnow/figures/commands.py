"""Subcommand ``deepsnow figures --figure N``: one figure, PNG and PDF (and any extra output, e.g. Figure 7's CSV).

Its ``--<input>`` options come from the figure table (:mod:`deepsnow.figures.table`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.commands import Made, rgb_options, stage_command
from deepsnow.figures.table import FIGURES, INPUTS, extra_outputs, option, per_epoch, shown_path, sweep_figures

log = logging.getLogger("deepsnow.figures")


def _description() -> str:
    listed = "; ".join(
        f"{n}: {fig.title} ({' '.join(option(k) for k in (*fig.inputs, *fig.outputs))})" for n, fig in FIGURES.items()
    )
    return (
        f"The paper's Figures 1-6 and more. {listed}. "
        "Figures 1, 2 and 4 pick their epochs from the given samples files (give all of them). "
        f"Under a sweep, Figures {', '.join(map(str, sweep_figures()))} are drawn from its comparison: "
        "--comparison-summary (Figures 3, 5 and 7 per variant group, mean ± s.d. over seeds)."
    )


def _used_by(name: str) -> str:
    figs = [*FIGURES.items(), *((n, fig.groups) for n, fig in FIGURES.items() if fig.groups)]
    numbers = sorted({n for n, fig in figs if name in fig.inputs or name in fig.outputs})
    numbers = [str(n) for n in numbers]
    return ("figure " if len(numbers) == 1 else "figures ") + ", ".join(numbers)


def register(sub: argparse._SubParsersAction) -> None:
    p = stage_command(
        sub,
        "figures",
        _figures,
        section="figures",
        help=f"Draw one figure ({min(FIGURES)}-{max(FIGURES)}) as PNG and PDF from the results of the earlier stages.",
        description=_description(),
    )
    p.add_argument(
        "--figure", required=True, type=int, choices=sorted(FIGURES), metavar="N",
        help=f"figure number, {min(FIGURES)}..{max(FIGURES)}",
    )
    p.add_argument("--outputs", required=True, nargs=2, type=Path, metavar=("PNG", "PDF"), help="output .png and .pdf")
    rgb_options(p, "reflectance test sets and samples are drawn as their RGB composite; ")
    for name in INPUTS:
        many = {"nargs": "+", "default": []} if per_epoch(name) else {"default": None}
        p.add_argument(option(name), type=Path, help=f"{shown_path(name)} ({_used_by(name)})", **many)
    for name, path in extra_outputs().items():
        p.add_argument(option(name), type=Path, default=None, help=f"{path}, written by {_used_by(name)}")


def _check_outputs(args) -> tuple[Path, Path]:
    """The PNG and PDF paths, and each extra output given, end as they should."""
    png, pdf = args.outputs
    if png.suffix.lower() != ".png" or pdf.suffix.lower() != ".pdf":
        raise DeepsnowError(f"--outputs: expected a .png then a .pdf path, got {png} {pdf}")
    for name, path in extra_outputs().items():
        given, suffix = getattr(args, name), Path(path).suffix
        if given is not None and given.suffix.lower() != suffix:
            raise DeepsnowError(f"{option(name)}: expected a {suffix} path, got {given}")
    return png, pdf


def _figures(args, params) -> Made:
    from deepsnow.figures.common import save_figure
    from deepsnow.figures.table import make_figure

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    png, pdf = _check_outputs(args)
    given = {name: getattr(args, name) for name in (*INPUTS, *extra_outputs())}
    # reflectance runs: testA and the samples are rendered as the patches stage renders RGB (docs/bands.md)
    drawn = make_figure(args.figure, {**params, "rgb_view": (args.rgb_max, args.rgb_gamma)}, **given)
    outputs = [png, pdf]
    for name, write in drawn.writes.items():
        write(getattr(args, name))
        outputs.append(getattr(args, name))
    save_figure(drawn.figure, png, pdf, int(params["dpi"]))
    log.info("figure %d -> %s", args.figure, ", ".join(map(str, outputs)))
    return Made(outputs, inputs=drawn.inputs, extra={"figure": args.figure, **drawn.extra})
