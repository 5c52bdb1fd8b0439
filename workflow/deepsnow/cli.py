"""The ``deepsnow`` command: one subcommand per workflow stage.

Each stage package contributes its subcommands through a ``register(subparsers)``
function in its ``commands`` module, written in the one pattern of
:mod:`deepsnow.commands`; this file only assembles them, sets up logging and
turns :class:`~deepsnow.DeepsnowError` into a one-line message and a non-zero
exit. Every stage command takes its config section with ``--params JSON`` or
``--params @file.yaml`` (validated against the workflow schema, defaults filled),
so it runs the same with or without Snakemake.
"""

from __future__ import annotations

import argparse
import logging
import sys

from deepsnow import DeepsnowError, __version__

log = logging.getLogger("deepsnow")

#: Modules whose ``register(subparsers)`` add subcommands, in workflow order.
COMMAND_MODULES = (
    "deepsnow.plan",
    "deepsnow.data.commands",
    "deepsnow.gan.commands",
    "deepsnow.features.commands",
    "deepsnow.metrics.commands",
    "deepsnow.synthesize.commands",
    "deepsnow.change.commands",
    "deepsnow.figures.commands",
    "deepsnow.figures.report_pages",
    "deepsnow.provenance.commands",
    "deepsnow.cluster",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="deepsnow",
        description="Deep Snow workflow stages: acquire Sentinel-2 scenes, label snow and clouds, "
        "cut patches, train a cycleGAN, generate samples, embed and measure, and trace provenance.",
    )
    parser.add_argument("--version", action="version", version=f"deepsnow {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity (default INFO)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except DeepsnowError as exc:
        print(f"deepsnow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepsnow {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
