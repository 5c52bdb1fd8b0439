"""One pattern for every stage command, written once.

A stage command is a subparser whose handler takes ``(args, params)``, is documented by its
docstring (the command's ``--help``), and returns
what it made (:class:`Made`, one or several). :func:`stage_command` adds the
``--params`` option of the command's config section and wires the handler into
:func:`run_stage`, which parses and validates the section (the handler trusts
it), notes the start time, runs the handler and writes the provenance sidecars
with the code hash of ``STAGE_CODE[code]``: the same hash the stage's rule
passes as its ``code`` param, so a sidecar names the code the rule ran.
:func:`command_group` adds a group of stage commands (``deepsnow metrics epoch``),
:func:`plain_command` a tool that is no stage (``deepsnow plan``), each documented
the same way; :func:`path_options` and :func:`rgb_options` declare the options
several commands share.

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


def help_texts(doc: str | None, parser_options: dict) -> dict:
    """``parser_options`` with ``help`` and ``description`` from ``doc`` where not given: its first
    paragraph the one-line help, the rest the description."""
    summary, _, details = inspect.cleandoc(doc or "").partition("\n\n")
    return {"help": " ".join(summary.split()), "description": " ".join(details.split()) or None, **parser_options}


def rgb_options(parser: argparse.ArgumentParser, scope: str = "") -> None:
    """``--rgb-max`` and ``--rgb-gamma``: a scene's reflectance rendered to RGB as the patches stage renders
    it, with its config keys and defaults (``scope``: which input they apply to, e.g. ``"scene input; "``)."""
    for flag, key, meaning, default in (
        ("--rgb-max", "rgb_max", "reflectance rendered as 255", 1.0),
        ("--rgb-gamma", "rgb_gamma", "display gamma", 2.2),
    ):
        help_text = f"patches.{key}: {meaning} ({scope}default {default})"
        parser.add_argument(flag, type=float, default=default, help=help_text)


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
    parser = sub.add_parser(name, **help_texts(handler.__doc__, parser_options))
    if section:
        add_params_argument(parser, section)
    stage = stage or name
    parser.set_defaults(func=functools.partial(run_stage, handler, stage, section, code or stage))
    return parser


def command_group(sub: argparse._SubParsersAction, name: str, doc: str | None, **stage_options) -> Callable:
    """Add the command group ``deepsnow name SUBCOMMAND`` (its help from ``doc`` as a handler's is) and
    return :func:`stage_command` bound to it, with ``stage_options`` (e.g. ``section``, ``code``) as the
    defaults of its subcommands."""
    group = sub.add_parser(name, **help_texts(doc, {}))
    subcommands = group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)
    return functools.partial(stage_command, subcommands, **stage_options)


def plain_command(
    sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], None], **parser_options
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func(args)`` as it is: a tool around the workflow, not a stage
    (no config section, no provenance sidecars). Its help comes from ``func``'s docstring as a handler's does."""
    parser = sub.add_parser(name, **help_texts(func.__doc__, parser_options))
    parser.set_defaults(func=func)
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
