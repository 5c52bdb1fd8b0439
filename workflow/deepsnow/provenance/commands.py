"""The ``deepsnow provenance`` subcommand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.commands import plain_command


def register(sub: argparse._SubParsersAction) -> None:
    p = plain_command(sub, "provenance", _provenance)
    p.add_argument("result", type=Path, help="any result file with a .prov.json sidecar")
    p.add_argument("--check", action="store_true", help="re-hash inputs; exit non-zero if any changed")
    p.add_argument("--json", action="store_true", help="print the chain as JSON")


def _provenance(args) -> None:
    """Print how a result was made, back to the raw scenes.

    Follow RESULT's .prov.json sidecar and those of its inputs: commands, config sections and their hashes,
    input sha256s, package version and git commit, library versions, seeds, hosts and times. --check
    re-hashes every input and lists each file changed since once: the sha256 recorded, the sha256 now and
    the results made from it."""
    from deepsnow import provenance

    docs = provenance.chain(args.result)
    if args.json:
        print(json.dumps([{k: v for k, v in d.items() if k != "_path"} for d in docs], indent=2, sort_keys=True))
    else:
        print(provenance.format_chain(docs))
    if args.check:
        changed = provenance.check(args.result)
        if changed:
            for c in changed:
                now = "missing" if c["now"] is None else c["now"]
                used_by = ", ".join(c["used_by"])
                print(f"CHANGED: {c['input']} recorded sha256 {c['recorded']}, now {now}; used by {used_by}")
            raise DeepsnowError(f"{len(changed)} input file(s) changed since {args.result} was made")
        print(f"OK: all inputs of {args.result} and its chain are unchanged")
