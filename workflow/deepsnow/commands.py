"""One pattern for every stage command, written once.

A stage command is a subparser whose handler takes ``(args, params)``, is documented by its
docstring (the command's ``--help``), and returns
what it made (:class:`Made`, one or several). :func:`stage_command` adds the
``--params`` option of the command's config section and wires the handler into
:func:`run_stage`, which parses and validates the section (the handler trusts
it), notes the start time, runs the handler and writes the provenance sidecars
with the code hash of ``STAGE_CODE[code]``: the same hash the stage's rule
passes as its ``code`` param, so a sidecar names the code the rule ran.

Stage modules are imported inside the handlers, so ``deepsnow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from deepsnow import provenance
from deepsnow.stages import STAGE_CODE


@dataclass
class Made:
    """Files one stage call wrote, and what their provenance sidecars say."""

    outputs: Sequence
    inputs: Sequence = ()
    extra: dict | None = None
    #: default: the section's ``seed`` key, if it has one
    seed: Any = None
    #: default: the command's parsed section
    config: dict | None = None
    #: default: the command's section name
    section: str | None = None
    #: default: when the command started
    started: str | None = None


Handler = Callable[[argparse.Namespace, dict], "Made | Iterable[Made] | None"]


def add_params_argument(parser: argparse.ArgumentParser, section: str) -> None:
    """The ``--params`` option every stage command takes."""
    parser.add_argument(
        "--params",
        metavar="JSON|@FILE",
        default=None,
        help=f"the '{section}' config section as inline JSON, or @path to a YAML/JSON file holding it "
        f"(or a whole config with a '{section}' key); missing keys take the schema's defaults",
    )


def path_options(
    parser: argparse.ArgumentParser, *, required: bool = True, nargs: str | None = None, default: Any = None, **helps: str
) -> None:
    """File options declared by name and help text: ``path_options(p, train_a="dataset/trainA.npz")``
    adds ``--train-a TRAIN_A`` (a :class:`~pathlib.Path`; ``nargs`` as argparse's)."""
    for name, text in helps.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), required=required, nargs=nargs, type=Path, default=default, help=text
        )


def stage_command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    *,
    section: str | None,
    stage: str | None = None,
    code: str | None = None,
    **parser_options,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``handler`` through :func:`run_stage`.

    The handler's docstring is the command's help: its first paragraph the one-line help, the
    rest the description (unless ``help=`` / ``description=`` are given).

    ``stage`` (default ``name``) is what the sidecars call the stage; ``code``
    (default ``stage``) the :data:`STAGE_CODE` entry whose hash they record.
    With ``section=None`` the command takes no ``--params`` and its handler gets ``{}``.
    """
    summary, _, details = inspect.cleandoc(handler.__doc__ or "").partition("\n\n")
    parser_options.setdefault("help", " ".join(summary.split()))
    parser_options.setdefault("description", " ".join(details.split()) or None)
    parser = sub.add_parser(name, **parser_options)
    if section:
        add_params_argument(parser, section)
    stage = stage or name
    parser.set_defaults(func=functools.partial(run_stage, handler, stage, section, code or stage))
    return parser


def run_stage(handler: Handler, stage: str, section: str | None, code: str, args: argparse.Namespace) -> None:
    """Parse the section, run the handler, record what it made."""
    from deepsnow.config import parse_params

    params = parse_params(args.params, section) if section else {}
    started = provenance.now()
    made = handler(args, params)
    for m in [made] if isinstance(made, Made) else made or ():
        config = params if m.config is None else m.config
        provenance.record(
            m.outputs,
            stage=stage,
            section=m.section or section,
            inputs=m.inputs,
            config=config,
            seed=m.seed if m.seed is not None else params.get("seed"),
            started=m.started or started,
            code=STAGE_CODE[code],
            extra=m.extra,
        )
