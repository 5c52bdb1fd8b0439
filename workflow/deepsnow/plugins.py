"""What installed packages provide through Python entry points: feature extractors
(``deepsnow.extractors``) and change detectors (``deepsnow.detectors``).

Names are looked up without importing anything (the config check lists them); only the entry
point of a selected name is loaded, when a stage runs it. Nothing a config holds is imported by path.
"""

from __future__ import annotations

from typing import Callable

from deepsnow import DeepsnowError


def installed(group: str) -> dict:
    """The entry points of ``group``, by name, none loaded; the first distribution on sys.path wins,
    as for imports."""
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def load(group: str, name: str, kind: str, expected: str, unknown: str) -> Callable:
    """The callable the installed entry point ``name`` of ``group`` points to (imports its package).

    ``kind`` names the thing in errors ("feature extractor"), ``expected`` what it must be ("a
    builder(options, seed) -> Extractor"), ``unknown`` the whole message for a name not installed.
    """
    ep = installed(group).get(name)
    if ep is None:
        raise DeepsnowError(unknown)
    dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
    where = f"{kind} {name!r}: entry point '{ep.name} = {ep.value}' of {dist}"
    try:
        fn = ep.load()
    except Exception as exc:
        raise DeepsnowError(f"{where} (group {group!r}) failed to load ({type(exc).__name__}: {exc})") from exc
    if not callable(fn):
        raise DeepsnowError(f"{where} is a {type(fn).__name__}, expected {expected}")
    return fn
